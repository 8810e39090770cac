"""`/api/v1/endpoints`, `/api/v1/fleet/summary` and `/api/v1/settings/thresholds`."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query
from sqlalchemy import select

from connector.actions.schemas import ActionOut
from connector.api.deps import Engineer, Session, Viewer
from connector.api.schemas import Offset
from connector.fleet import stats as fleet_stats
from connector.fleet.domain import Thresholds
from connector.fleet.schemas import EndpointDetail, EndpointOut, EndpointProblemOut
from connector.infra.errors import NotFound
from connector.models import Endpoint, EndpointAction, Problem, Tenant, TicketLink

router = APIRouter(prefix="/api/v1", tags=["fleet"])


# -- endpoints ------------------------------------------------------------------------------------


@router.get("/endpoints", response_model=list[EndpointOut])
async def list_endpoints(
    session: Session,
    who: Viewer,
    client_id: str | None = None,
    connection_id: str | None = None,
    status: str | None = Query(None, pattern="^(protected|at_risk|unprotected|offline|unknown|retired)$"),
    problem: str | None = Query(None, description="only endpoints with an open problem of this kind"),
    limit: int = Query(200, ge=1, le=5000),
    offset: Offset = 0,
) -> list[EndpointOut]:
    query = select(Endpoint).where(Endpoint.tenant_id == who.tenant_id)
    if client_id:
        query = query.where(Endpoint.client_id == client_id)
    if connection_id:
        query = query.where(Endpoint.rmm_connection_id == connection_id)
    if status == "retired":
        query = query.where(Endpoint.retired_at.is_not(None))
    elif status:
        query = query.where(Endpoint.health == status, Endpoint.retired_at.is_(None))
    if problem:
        query = query.where(
            select(Problem.id)
            .where(
                Problem.rmm_connection_id == Endpoint.rmm_connection_id,
                Problem.endpoint_id == Endpoint.endpoint_id,
                Problem.kind == problem,
                Problem.state == "open",
            )
            .exists()
        )
    rows = await session.scalars(query.order_by(Endpoint.hostname, Endpoint.id).limit(limit).offset(offset))
    return [EndpointOut.model_validate(r, from_attributes=True) for r in rows]


async def _endpoint(session: Any, endpoint_id: str, tenant_id: str) -> Endpoint:
    row: Endpoint | None = await session.scalar(
        select(Endpoint).where(Endpoint.id == endpoint_id, Endpoint.tenant_id == tenant_id)
    )
    if row is None:
        raise NotFound("endpoint")
    return row


@router.get("/endpoints/{endpoint_id}", response_model=EndpointDetail)
async def get_endpoint(endpoint_id: str, session: Session, who: Viewer) -> EndpointDetail:
    row = await _endpoint(session, endpoint_id, who.tenant_id)
    problems = (
        await session.execute(
            select(Problem, TicketLink)
            .outerjoin(TicketLink, TicketLink.problem_id == Problem.id)
            .where(Problem.rmm_connection_id == row.rmm_connection_id, Problem.endpoint_id == row.endpoint_id)
            .order_by(Problem.first_seen_at.desc())
            .limit(50)
        )
    ).all()
    actions = await session.scalars(
        select(EndpointAction)
        .where(EndpointAction.endpoint_row_id == row.id)
        .order_by(EndpointAction.requested_at.desc())
        .limit(20)
    )
    detail = EndpointDetail.model_validate(
        {
            **EndpointOut.model_validate(row, from_attributes=True).model_dump(),
            "problems": [],
            "actions": [ActionOut.model_validate(a, from_attributes=True) for a in actions],
        }
    )
    for problem, link in problems:
        item = EndpointProblemOut.model_validate(problem, from_attributes=True)
        if link is not None:
            item.ticket_id, item.ticket_number, item.ticket_state = (
                link.ticket_id,
                link.ticket_number,
                link.state,
            )
        detail.problems.append(item)
    return detail


# -- fleet summary --------------------------------------------------------------------------------


@router.get("/fleet/summary")
async def fleet_summary(session: Session, who: Viewer, days: int = Query(30, ge=1, le=366)) -> dict[str, Any]:
    """Endpoints per health class overall and per RMM client, and the daily protected-share trend."""
    overall, clients = await fleet_stats.summary(session, who.tenant_id)
    points = await fleet_stats.trend(session, who.tenant_id, days)

    def counts(c: fleet_stats.Counts) -> dict[str, int]:
        return {**{h: getattr(c, h) for h in fleet_stats.HEALTH_CLASSES}, "total": c.total}

    return {
        "overall": counts(overall),
        "clients": [
            {
                "rmm_connection_id": c.rmm_connection_id,
                "client_id": c.client_id,
                "client_name": c.client_name,
                "psa_company": c.mapped_company,
                **counts(c.counts),
            }
            for c in clients
        ],
        "trend": [{"day": p.day, "protected": p.protected, "total": p.total} for p in points],
    }


# -- thresholds -----------------------------------------------------------------------------------


@router.get("/settings/thresholds", response_model=Thresholds)
async def get_thresholds(session: Session, who: Viewer) -> Thresholds:
    tenant = await session.get(Tenant, who.tenant_id)
    assert tenant is not None
    return Thresholds.model_validate((tenant.settings or {}).get("thresholds", {}))


@router.put("/settings/thresholds", response_model=Thresholds)
async def put_thresholds(body: Thresholds, session: Session, who: Engineer) -> Thresholds:
    """New limits apply at the next sync, which re-evaluates every endpoint against them."""
    tenant = await session.get(Tenant, who.tenant_id)
    assert tenant is not None
    tenant.settings = {**(tenant.settings or {}), "thresholds": body.model_dump()}
    return body
