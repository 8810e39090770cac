"""Console agents as the fleet reads them: their status records, which PSA company each side is
mapped to, and what the console covering an endpoint's client says about it (`console_views`,
merged into the endpoint's status by `connector.fleet.coverage`)."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from adapters.base import AgentStatus
from connector.fleet import coverage
from connector.infra import db
from connector.models import ClientMapping, Connection, ConsoleAgent, Endpoint, SyncCursor

AGENT_FIELDS = (
    "customer_id",
    "customer_name",
    "hostname",
    "serial_number",
    "mac_addresses",
    "os_name",
    "device_type",
    "product",
    "agent_version",
    "protection_enabled",
    "definitions_up_to_date",
    "definitions_date",
    "last_scan_at",
    "active_threats",
    "online",
    "last_seen_at",
    "isolated",
)
"""The stored status fields, as `AgentStatus` and `ConsoleAgent` both name them."""


def to_agent_status(row: ConsoleAgent) -> AgentStatus:
    return AgentStatus(agent_id=row.agent_id, **{name: getattr(row, name) for name in AGENT_FIELDS})


async def company_scopes(session: AsyncSession, tenant_id: str) -> dict[tuple[str, str], str]:
    """(source connection, client or customer id) → the PSA company it is mapped to."""
    rows = await session.execute(
        db.scoped(
            select(
                ClientMapping.rmm_connection_id,
                ClientMapping.rmm_client_id,
                ClientMapping.psa_connection_id,
                ClientMapping.psa_company_id,
            ),
            ClientMapping,
            tenant_id,
        )
    )
    return {(conn, client): f"{psa}:{company}" for conn, client, psa, company in rows}


async def consoles_of(session: AsyncSession, tenant_id: str) -> list[Connection]:
    query = db.scoped(select(Connection), Connection, tenant_id).where(
        Connection.role == "security", Connection.enabled.is_(True)
    )
    return list(await session.scalars(query.order_by(Connection.name)))


async def console_views(
    session: AsyncSession, rmm_connection_id: str, tenant_id: str, rows: Sequence[Endpoint]
) -> dict[str, coverage.ConsoleView]:
    """Endpoint row id → what the console covering its client says (absent: no console covers it).
    A console covers the PSA companies its customers are mapped to once it has been read completely
    once: before its first full sync, missing agents mean nothing."""
    consoles = {
        c.id: c
        for c in await consoles_of(session, tenant_id)
        if (cursor := await session.get(SyncCursor, c.id)) is not None and cursor.last_full_at is not None
    }
    if not consoles or not rows:
        return {}
    scopes = await company_scopes(session, tenant_id)
    covering: dict[str, str] = {}
    for (conn, _customer), scope in scopes.items():
        if conn in consoles:
            covering.setdefault(scope, consoles[conn].name)
    agents: dict[str, ConsoleAgent] = {}
    for agent in await session.scalars(
        select(ConsoleAgent)
        .where(
            ConsoleAgent.endpoint_ref.in_([r.id for r in rows]),
            ConsoleAgent.retired_at.is_(None),
            ConsoleAgent.connection_id.in_(list(consoles)),
        )
        .order_by(ConsoleAgent.connection_id)
    ):
        assert agent.endpoint_ref is not None
        agents.setdefault(agent.endpoint_ref, agent)
    views: dict[str, coverage.ConsoleView] = {}
    for row in rows:
        matched = agents.get(row.id)
        if matched is not None:
            views[row.id] = coverage.ConsoleView(
                consoles[matched.connection_id].name, to_agent_status(matched), matched.match_rule
            )
        else:
            found_scope = scopes.get((rmm_connection_id, row.client_id))
            if found_scope is not None and found_scope in covering:
                views[row.id] = coverage.ConsoleView(covering[found_scope], None)
    return views
