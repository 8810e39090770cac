"""Console agents as the fleet reads them: their status records, which PSA company each side is
mapped to, and what the console covering an endpoint's client says about it (`console_views`,
merged into the endpoint's status by `connector.fleet.coverage`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from sqlalchemy import case, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from adapters.base import AgentStatus
from connector.audit import service as audit
from connector.audit.domain import Actor
from connector.fleet import coverage
from connector.infra import db
from connector.infra.errors import FieldError, NotFound
from connector.models import (
    AgentMatchOverride,
    ClientMapping,
    Connection,
    ConsoleAgent,
    Endpoint,
    LicenceDaily,
    SyncCursor,
)

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


async def _read_consoles(session: AsyncSession, tenant_id: str) -> dict[str, Connection]:
    """The tenant's enabled consoles that have been read completely once."""
    return {
        c.id: c
        for c in await consoles_of(session, tenant_id)
        if (cursor := await session.get(SyncCursor, c.id)) is not None and cursor.last_full_at is not None
    }


def _covering(consoles: dict[str, Connection], scopes: dict[tuple[str, str], str]) -> dict[str, str]:
    """PSA company scope → the name of the console covering it."""
    covering: dict[str, str] = {}
    for (conn, _customer), scope in scopes.items():
        if conn in consoles:
            covering.setdefault(scope, consoles[conn].name)
    return covering


@dataclass(frozen=True)
class ConsoleReach:
    """Which of an RMM connection's endpoints a console may speak for: those of the clients a
    console covers, and any endpoint one of `consoles`' agents is matched to."""

    consoles: list[str]
    clients: list[str]


async def console_reach(session: AsyncSession, rmm_connection_id: str, tenant_id: str) -> ConsoleReach:
    consoles = await _read_consoles(session, tenant_id)
    if not consoles:
        return ConsoleReach([], [])
    scopes = await company_scopes(session, tenant_id)
    covering = _covering(consoles, scopes)
    clients = sorted(
        client for (conn, client), scope in scopes.items() if conn == rmm_connection_id and scope in covering
    )
    return ConsoleReach(sorted(consoles), clients)


async def console_views(
    session: AsyncSession,
    rmm_connection_id: str,
    tenant_id: str,
    rows: Sequence[Endpoint],
) -> dict[str, coverage.ConsoleView]:
    """Endpoint row id → what the console covering its client says (absent: no console covers it).
    A console covers the PSA companies its customers are mapped to once it has been read completely
    once (a console run marks that before it evaluates): before that, missing agents mean nothing."""
    consoles = await _read_consoles(session, tenant_id)
    if not consoles or not rows:
        return {}
    scopes = await company_scopes(session, tenant_id)
    covering = _covering(consoles, scopes)
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


# ---------------------------------------------------------------------------------------------
# Reading agents and overriding their match over the API
# ---------------------------------------------------------------------------------------------


async def list_agents(
    session: AsyncSession,
    tenant_id: str,
    *,
    connection_id: str | None = None,
    customer_id: str | None = None,
    matched: bool | None = None,
    limit: int = 200,
    offset: int = 0,
) -> list[ConsoleAgent]:
    """Current agents (retired ones are left out), by hostname."""
    query = db.tenant_rows(ConsoleAgent, tenant_id).where(ConsoleAgent.retired_at.is_(None))
    if connection_id:
        query = query.where(ConsoleAgent.connection_id == connection_id)
    if customer_id:
        query = query.where(ConsoleAgent.customer_id == customer_id)
    if matched is not None:
        query = query.where(
            ConsoleAgent.endpoint_ref.is_not(None) if matched else ConsoleAgent.endpoint_ref.is_(None)
        )
    rows = await session.scalars(
        query.order_by(ConsoleAgent.hostname, ConsoleAgent.id).limit(limit).offset(offset)
    )
    return list(rows)


async def get_agent(session: AsyncSession, tenant_id: str, agent_row_id: str) -> ConsoleAgent:
    row = await session.scalar(db.tenant_rows(ConsoleAgent, tenant_id).where(ConsoleAgent.id == agent_row_id))
    if row is None:
        raise NotFound("console agent")
    return row


async def set_match(
    session: AsyncSession, tenant_id: str, agent: ConsoleAgent, endpoint_row_id: str, *, actor: Actor
) -> ConsoleAgent:
    """The engineer's word: this agent is that endpoint, whatever the rules say (until cleared).
    Applied at once to the agent; the problems follow at the next sync's evaluation."""
    endpoint = await session.scalar(db.tenant_rows(Endpoint, tenant_id).where(Endpoint.id == endpoint_row_id))
    if endpoint is None or endpoint.retired_at is not None:
        raise FieldError("endpoint_id", "no such current endpoint in this tenant")
    override = await session.scalar(
        db.tenant_rows(AgentMatchOverride, tenant_id).where(
            AgentMatchOverride.connection_id == agent.connection_id,
            AgentMatchOverride.agent_id == agent.agent_id,
        )
    )
    before = {"endpoint_id": agent.endpoint_ref, "rule": agent.match_rule}
    if override is None:
        session.add(
            AgentMatchOverride(
                tenant_id=tenant_id,
                connection_id=agent.connection_id,
                agent_id=agent.agent_id,
                endpoint_ref=endpoint.id,
            )
        )
    else:
        override.endpoint_ref = endpoint.id
    # The endpoint was some other agent's by the rules: that agent is unmatched until the next sync.
    for other in await session.scalars(
        db.tenant_rows(ConsoleAgent, tenant_id).where(
            ConsoleAgent.connection_id == agent.connection_id,
            ConsoleAgent.endpoint_ref == endpoint.id,
            ConsoleAgent.id != agent.id,
        )
    ):
        other.endpoint_ref, other.match_rule = None, None
        other.match_note = f"the endpoint was matched by hand to agent {agent.agent_id}"
    agent.endpoint_ref, agent.match_rule, agent.match_note = endpoint.id, "manual", None
    audit.record(
        session,
        tenant_id,
        "agent_match.set",
        actor,
        target_type="console_agent",
        target_id=agent.id,
        connection_id=agent.connection_id,
        client_id=agent.customer_id,
        summary=f"console agent {agent.hostname!r} matched by hand to endpoint {endpoint.hostname!r}",
        before=before,
        after={"endpoint_id": endpoint.id, "rule": "manual"},
    )
    await session.flush()
    return agent


async def clear_match(
    session: AsyncSession, tenant_id: str, agent: ConsoleAgent, *, actor: Actor
) -> ConsoleAgent:
    """Back to the rules: the override goes, and the next sync matches the agent again."""
    override = await session.scalar(
        db.tenant_rows(AgentMatchOverride, tenant_id).where(
            AgentMatchOverride.connection_id == agent.connection_id,
            AgentMatchOverride.agent_id == agent.agent_id,
        )
    )
    if override is None:
        raise NotFound("match override")
    await session.delete(override)
    before = {"endpoint_id": agent.endpoint_ref, "rule": agent.match_rule}
    agent.endpoint_ref, agent.match_rule, agent.match_note = (
        None,
        None,
        "override cleared: matched again at the next sync",
    )
    audit.record(
        session,
        tenant_id,
        "agent_match.cleared",
        actor,
        target_type="console_agent",
        target_id=agent.id,
        connection_id=agent.connection_id,
        client_id=agent.customer_id,
        summary=f"manual match of console agent {agent.hostname!r} cleared",
        before=before,
        after={"endpoint_id": None, "rule": None},
    )
    await session.flush()
    return agent


async def endpoint_view(session: AsyncSession, endpoint: Endpoint) -> coverage.ConsoleView | None:
    views = await console_views(session, endpoint.rmm_connection_id, endpoint.tenant_id, [endpoint])
    return views.get(endpoint.id)


async def matched_agent(session: AsyncSession, endpoint: Endpoint) -> ConsoleAgent | None:
    return await session.scalar(
        db.tenant_rows(ConsoleAgent, endpoint.tenant_id)
        .where(ConsoleAgent.endpoint_ref == endpoint.id, ConsoleAgent.retired_at.is_(None))
        .order_by(ConsoleAgent.connection_id)
        .limit(1)
    )


# ---------------------------------------------------------------------------------------------
# Coverage per client, for the dashboard and the API
# ---------------------------------------------------------------------------------------------


@dataclass
class CompanyCoverage:
    """One PSA company a security console covers: its RMM endpoints, how many of them a console
    agent matches, the agents no endpoint matches, and the seats the console bills for it."""

    company_id: str
    company_name: str
    consoles: list[str] = field(default_factory=list)
    endpoints: int = 0
    with_agent: int = 0
    agents: int = 0
    unmanaged_agents: int = 0
    seats: int | None = None

    @property
    def without_agent(self) -> int:
        return self.endpoints - self.with_agent

    @property
    def covered_share(self) -> float:
        return self.with_agent / self.endpoints if self.endpoints else 0.0


async def coverage_by_company(session: AsyncSession, tenant_id: str) -> list[CompanyCoverage]:
    """Companies a console covers, least covered first."""
    consoles = {c.id: c.name for c in await consoles_of(session, tenant_id)}
    if not consoles:
        return []
    mappings = list(await session.scalars(db.tenant_rows(ClientMapping, tenant_id)))
    scope_of = {
        (m.rmm_connection_id, m.rmm_client_id): f"{m.psa_connection_id}:{m.psa_company_id}" for m in mappings
    }
    out: dict[str, CompanyCoverage] = {}
    for m in mappings:
        if m.rmm_connection_id in consoles:
            company = out.setdefault(
                scope_of[(m.rmm_connection_id, m.rmm_client_id)],
                CompanyCoverage(m.psa_company_id, m.psa_company_name or m.psa_company_id),
            )
            if consoles[m.rmm_connection_id] not in company.consoles:
                company.consoles.append(consoles[m.rmm_connection_id])
    matched = select(ConsoleAgent.endpoint_ref).where(
        ConsoleAgent.endpoint_ref.is_not(None), ConsoleAgent.retired_at.is_(None)
    )
    endpoint_rows = await session.execute(
        db.scoped(
            select(
                Endpoint.rmm_connection_id,
                Endpoint.client_id,
                func.count(),
                func.sum(case((Endpoint.id.in_(matched), 1), else_=0)),
            ),
            Endpoint,
            tenant_id,
        )
        .where(Endpoint.retired_at.is_(None))
        .group_by(Endpoint.rmm_connection_id, Endpoint.client_id)
    )
    for conn, client, total, with_agent in endpoint_rows:
        entry = out.get(scope_of.get((conn, client), ""))
        if entry is not None:
            entry.endpoints += int(total)
            entry.with_agent += int(with_agent or 0)
    agent_rows = await session.execute(
        db.scoped(
            select(
                ConsoleAgent.connection_id,
                ConsoleAgent.customer_id,
                func.count(),
                func.sum(case((ConsoleAgent.endpoint_ref.is_(None), 1), else_=0)),
            ),
            ConsoleAgent,
            tenant_id,
        )
        .where(ConsoleAgent.retired_at.is_(None))
        .group_by(ConsoleAgent.connection_id, ConsoleAgent.customer_id)
    )
    for conn, customer, total, unmatched in agent_rows:
        entry = out.get(scope_of.get((conn, customer), ""))
        if entry is not None:
            entry.agents += int(total)
            entry.unmanaged_agents += int(unmatched or 0)
    latest = (
        db.scoped(
            select(LicenceDaily.connection_id, func.max(LicenceDaily.day).label("day")),
            LicenceDaily,
            tenant_id,
        )
        .group_by(LicenceDaily.connection_id)
        .subquery()
    )
    seat_rows = await session.execute(
        db.scoped(
            select(LicenceDaily.connection_id, LicenceDaily.customer_id, func.sum(LicenceDaily.last_used)),
            LicenceDaily,
            tenant_id,
        )
        .join(
            latest,
            (latest.c.connection_id == LicenceDaily.connection_id) & (latest.c.day == LicenceDaily.day),
        )
        .group_by(LicenceDaily.connection_id, LicenceDaily.customer_id)
    )
    for conn, customer, seats in seat_rows:
        entry = out.get(scope_of.get((conn, customer), ""))
        if entry is not None:
            entry.seats = (entry.seats or 0) + int(seats or 0)
    return sorted(out.values(), key=lambda c: (c.covered_share, -c.unmanaged_agents, c.company_name))
