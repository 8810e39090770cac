"""Deliveries and problems as the API and dashboard read them, and the replay of a delivery."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from connector.alerts.jobs import DELIVERY, DeliveryJob
from connector.infra.db import scoped, tenant_rows
from connector.infra.errors import FieldError, NotFound
from connector.infra.jobs.kinds import enqueue
from connector.models import ClientMapping, Connection, Delivery, Endpoint, Problem, TicketLink
from connector.statuses import DeliveryStatus


async def list_deliveries(
    session: AsyncSession,
    tenant_id: str,
    *,
    status: str | None = None,
    connection_id: str | None = None,
    limit: int = 100,
    offset: int = 0,
) -> list[Delivery]:
    """Newest first."""
    query = tenant_rows(Delivery, tenant_id)
    if status:
        query = query.where(Delivery.status == status)
    if connection_id:
        query = query.where(Delivery.connection_id == connection_id)
    rows = await session.scalars(query.order_by(Delivery.received_at.desc()).limit(limit).offset(offset))
    return list(rows)


async def get_delivery(session: AsyncSession, tenant_id: str, delivery_id: str) -> Delivery:
    row = await session.scalar(tenant_rows(Delivery, tenant_id).where(Delivery.id == delivery_id))
    if row is None:
        raise NotFound("delivery")
    return row


async def count_deliveries(session: AsyncSession, tenant_id: str, *, status: str) -> int:
    query = scoped(select(func.count()).select_from(Delivery), Delivery, tenant_id)
    return int(await session.scalar(query.where(Delivery.status == status)) or 0)


async def replay_delivery(session: AsyncSession, tenant_id: str, delivery_id: str) -> Delivery:
    """Process the stored delivery again. Events already applied are not counted twice; the
    problems they touched are reconciled again (reviving a dead-lettered ticket action)."""
    row = await get_delivery(session, tenant_id, delivery_id)
    if row.body is None:
        raise FieldError("delivery_id", "a refused delivery has no stored body to replay")
    await enqueue(
        session, DELIVERY, DeliveryJob(delivery_id=row.id), tenant_id=row.tenant_id, delivery_id=row.id
    )
    row.status = DeliveryStatus.QUEUED
    row.error = None
    await session.flush()
    session.info["wake_workers"] = True
    return row


async def list_problems(
    session: AsyncSession,
    tenant_id: str,
    *,
    state: str | None = None,
    routing: str | None = None,
    client_id: str | None = None,
    endpoint_id: str | None = None,
    kind: str | None = None,
    limit: int = 200,
    offset: int = 0,
) -> list[tuple[Problem, TicketLink | None]]:
    """Most recently seen first, each with its ticket link if it has one."""
    query = scoped(select(Problem, TicketLink), Problem, tenant_id).outerjoin(
        TicketLink, TicketLink.problem_id == Problem.id
    )
    for column, value in (
        (Problem.state, state),
        (Problem.routing, routing),
        (Problem.client_id, client_id),
        (Problem.endpoint_id, endpoint_id),
        (Problem.kind, kind),
    ):
        if value is not None:
            query = query.where(column == value)
    rows = await session.execute(query.order_by(Problem.last_seen_at.desc()).limit(limit).offset(offset))
    return [(problem, link) for problem, link in rows.all()]


async def count_problems(
    session: AsyncSession, tenant_id: str, *, state: str, routing: str | None = None
) -> int:
    query = scoped(select(func.count()).select_from(Problem), Problem, tenant_id).where(
        Problem.state == state
    )
    if routing is not None:
        query = query.where(Problem.routing == routing)
    return int(await session.scalar(query) or 0)


async def count_problems_by_kind(session: AsyncSession, tenant_id: str, *, state: str) -> dict[str, int]:
    """Problems in this state per kind (kinds without any are left out)."""
    query = (
        scoped(select(Problem.kind, func.count()).select_from(Problem), Problem, tenant_id)
        .where(Problem.state == state)
        .group_by(Problem.kind)
    )
    return {str(kind): int(count) for kind, count in (await session.execute(query)).all()}


@dataclass(frozen=True)
class ProblemContext:
    """One problem with what a technician looks at next to it."""

    problem: Problem
    link: TicketLink | None
    endpoint: Endpoint | None
    mapping: ClientMapping | None
    connection: Connection | None
    """The RMM connection that reported it."""


async def problem_context(session: AsyncSession, tenant_id: str, problem_id: str) -> ProblemContext:
    found = (
        await session.execute(
            scoped(select(Problem, TicketLink), Problem, tenant_id)
            .outerjoin(TicketLink, TicketLink.problem_id == Problem.id)
            .where(Problem.id == problem_id)
        )
    ).first()
    if found is None:
        raise NotFound("problem")
    problem, link = found
    endpoint = await session.scalar(
        tenant_rows(Endpoint, tenant_id).where(
            Endpoint.rmm_connection_id == problem.rmm_connection_id,
            Endpoint.endpoint_id == problem.endpoint_id,
        )
    )
    mapping = await session.scalar(
        tenant_rows(ClientMapping, tenant_id).where(
            ClientMapping.rmm_connection_id == problem.rmm_connection_id,
            ClientMapping.rmm_client_id == problem.client_id,
        )
    )
    connection = await session.scalar(
        tenant_rows(Connection, tenant_id).where(Connection.id == problem.rmm_connection_id)
    )
    return ProblemContext(problem, link, endpoint, mapping, connection)
