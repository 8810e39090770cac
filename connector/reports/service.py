"""Reads one client's month for its security report: the company's mapped sources, their daily
health counts, their problems and their endpoints (with what a covering console says)."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime

from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from connector.fleet import consoles
from connector.infra import db
from connector.infra.errors import FieldError, NotFound
from connector.models import ClientMapping, Connection, Endpoint, HealthDaily, Problem
from connector.reports import domain


async def client_report(
    session: AsyncSession, tenant_id: str, company_id: str, period: str, *, now: datetime | None = None
) -> domain.ClientReport:
    """NotFound when no client of the tenant is mapped to the company; FieldError (`period`) for a
    malformed period or one not yet begun."""
    now = now or datetime.now(UTC)
    try:
        start, end = domain.month(period, now)
    except ValueError as exc:
        raise FieldError("period", str(exc)) from exc
    mappings = list(
        await session.scalars(
            db.tenant_rows(ClientMapping, tenant_id)
            .where(ClientMapping.psa_company_id == company_id)
            .order_by(ClientMapping.rmm_connection_id, ClientMapping.rmm_client_id)
        )
    )
    if not mappings:
        raise NotFound("client")
    sources = {(m.rmm_connection_id, m.rmm_client_id) for m in mappings}
    connections = sorted({conn for conn, _ in sources})
    clients = sorted({client for _, client in sources})

    health = await session.scalars(
        db.tenant_rows(HealthDaily, tenant_id).where(
            HealthDaily.rmm_connection_id.in_(connections),
            HealthDaily.client_id.in_(clients),
            HealthDaily.day >= start.date().isoformat(),
            HealthDaily.day < end.date().isoformat(),
        )
    )
    days = [
        domain.DayCounts(h.day, h.protected, h.at_risk, h.unprotected, h.offline, h.unknown)
        for h in health
        if (h.rmm_connection_id, h.client_id) in sources
    ]
    problem_rows = await session.scalars(
        db.tenant_rows(Problem, tenant_id).where(
            Problem.rmm_connection_id.in_(connections),
            Problem.client_id.in_(clients),
            Problem.first_seen_at < end,
            or_(Problem.cleared_at.is_(None), Problem.cleared_at >= start),
        )
    )
    # A console's own findings (its threats, agents no RMM endpoint matches) are problems of the
    # console connection, whichever way they were read.
    console_ids = set(
        await session.scalars(
            db.scoped(select(Connection.id), Connection, tenant_id).where(
                Connection.id.in_(connections), Connection.role == "security"
            )
        )
    )
    problems = [
        domain.ProblemRow(
            p.kind,
            "console" if p.rmm_connection_id in console_ids else str(p.source),
            p.hostname,
            p.first_seen_at,
            p.cleared_at,
            p.message,
        )
        for p in problem_rows
        if (p.rmm_connection_id, p.client_id) in sources
    ]
    endpoint_rows = await session.scalars(
        db.tenant_rows(Endpoint, tenant_id)
        .where(
            Endpoint.rmm_connection_id.in_(connections),
            Endpoint.client_id.in_(clients),
            Endpoint.first_seen_at < end,
            or_(Endpoint.retired_at.is_(None), Endpoint.retired_at >= end),
        )
        .order_by(Endpoint.hostname, Endpoint.id)
    )
    per_connection: dict[str, list[Endpoint]] = defaultdict(list)
    for row in endpoint_rows:
        if (row.rmm_connection_id, row.client_id) in sources:
            per_connection[row.rmm_connection_id].append(row)
    devices: list[domain.DeviceRow] = []
    for connection_id, rows in sorted(per_connection.items()):
        views = await consoles.console_views(session, connection_id, tenant_id, rows)
        for row in rows:
            view = views.get(row.id)
            devices.append(
                domain.DeviceRow(
                    row.hostname,
                    str(row.health),
                    row.first_seen_at,
                    row.retired_at,
                    console=view.console if view is not None else None,
                    with_agent=view is not None and view.agent is not None,
                )
            )
    names = {m.rmm_client_name or m.rmm_client_id for m in mappings}
    return domain.build(
        period=period,
        company_id=company_id,
        company_name=next((m.psa_company_name for m in mappings if m.psa_company_name), None),
        days=days,
        problem_rows=problems,
        device_rows=devices,
        now=now,
        sources=sorted(names),
    )
