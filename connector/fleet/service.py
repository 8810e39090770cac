"""Endpoints as the API and dashboard read them: the tenant's fleet filtered by client, connection,
health or open problem, and one endpoint with its recent problems and actions."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from connector.infra.db import scoped, tenant_rows
from connector.infra.errors import NotFound
from connector.models import AgentDeployment, ClientMapping, Endpoint, EndpointAction, Problem, TicketLink
from connector.statuses import ProblemStatus

RECENT_PROBLEMS = 50
RECENT_ACTIONS = 20


async def list_endpoints(
    session: AsyncSession,
    tenant_id: str,
    *,
    client_id: str | None = None,
    connection_id: str | None = None,
    health: str | None = None,
    problem: str | None = None,
    limit: int = 200,
    offset: int = 0,
) -> list[Endpoint]:
    """`health` is a health class, or `retired` for endpoints the RMM no longer lists (the other
    classes list current endpoints only); `problem` keeps endpoints with an open problem of that kind."""
    query = tenant_rows(Endpoint, tenant_id)
    if client_id:
        query = query.where(Endpoint.client_id == client_id)
    if connection_id:
        query = query.where(Endpoint.rmm_connection_id == connection_id)
    if health == "retired":
        query = query.where(Endpoint.retired_at.is_not(None))
    elif health:
        query = query.where(Endpoint.health == health, Endpoint.retired_at.is_(None))
    if problem:
        query = query.where(
            select(Problem.id)
            .where(
                Problem.rmm_connection_id == Endpoint.rmm_connection_id,
                Problem.endpoint_id == Endpoint.endpoint_id,
                Problem.kind == problem,
                Problem.state == ProblemStatus.OPEN,
            )
            .exists()
        )
    rows = await session.scalars(query.order_by(Endpoint.hostname, Endpoint.id).limit(limit).offset(offset))
    return list(rows)


async def reported_products(session: AsyncSession, tenant_id: str, limit: int = 200) -> list[str]:
    """The product names the tenant's current endpoints report, as the RMMs spell them (what a
    billing rule's product matches), alphabetically."""
    query = scoped(select(Endpoint.product).distinct(), Endpoint, tenant_id).where(
        Endpoint.product.is_not(None), Endpoint.retired_at.is_(None)
    )
    return sorted(str(p) for p in await session.scalars(query.limit(limit)) if p)


async def get_endpoint(session: AsyncSession, tenant_id: str, endpoint_row_id: str) -> Endpoint:
    row = await session.scalar(tenant_rows(Endpoint, tenant_id).where(Endpoint.id == endpoint_row_id))
    if row is None:
        raise NotFound("endpoint")
    return row


@dataclass(frozen=True)
class EndpointHistory:
    problems: Sequence[tuple[Problem, TicketLink | None]]
    """Newest first, each with its ticket link if it has one."""
    actions: Sequence[EndpointAction]
    """Newest first."""
    deployments: Sequence[tuple[AgentDeployment, EndpointAction | None]] = ()
    """Agent deployments a deploy rule requested, newest first, each with its action."""


async def endpoint_history(session: AsyncSession, endpoint: Endpoint) -> EndpointHistory:
    problems = await session.execute(
        scoped(select(Problem, TicketLink), Problem, endpoint.tenant_id)
        .outerjoin(TicketLink, TicketLink.problem_id == Problem.id)
        .where(
            Problem.rmm_connection_id == endpoint.rmm_connection_id,
            Problem.endpoint_id == endpoint.endpoint_id,
        )
        .order_by(Problem.first_seen_at.desc())
        .limit(RECENT_PROBLEMS)
    )
    actions = await session.scalars(
        tenant_rows(EndpointAction, endpoint.tenant_id)
        .where(EndpointAction.endpoint_row_id == endpoint.id)
        .order_by(EndpointAction.requested_at.desc())
        .limit(RECENT_ACTIONS)
    )
    deployments = await session.execute(
        scoped(select(AgentDeployment, EndpointAction), AgentDeployment, endpoint.tenant_id)
        .outerjoin(EndpointAction, EndpointAction.id == AgentDeployment.action_id)
        .where(AgentDeployment.endpoint_row_id == endpoint.id)
        .order_by(AgentDeployment.requested_at.desc())
        .limit(RECENT_ACTIONS)
    )
    return EndpointHistory(
        [(problem, link) for problem, link in problems.all()],
        list(actions),
        [(deployment, action) for deployment, action in deployments.all()],
    )


async def client_mapping(
    session: AsyncSession, tenant_id: str, rmm_connection_id: str, client_id: str
) -> ClientMapping | None:
    """The PSA company an RMM client is mapped to, if it is."""
    return await session.scalar(
        tenant_rows(ClientMapping, tenant_id).where(
            ClientMapping.rmm_connection_id == rmm_connection_id, ClientMapping.rmm_client_id == client_id
        )
    )
