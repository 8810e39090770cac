"""`/api/v1/sync-runs`, `/api/v1/endpoints` (+ actions) and `/api/v1/settings/thresholds`."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import func, select

from adapters.base import ActionKind
from connector.actions.service import check_supported, request_action
from connector.api.deps import Engineer, ServicesDep, Session, Viewer
from connector.api.schemas import Offset
from connector.fleet import stats as fleet_stats
from connector.fleet.domain import Thresholds
from connector.infra.errors import FieldError, NotFound
from connector.models import Connection, Endpoint, EndpointAction, Problem, SyncRun, Tenant, TicketLink
from connector.sync.run import SyncConflict, enqueue_run, rmm_connections, start_run

router = APIRouter(prefix="/api/v1", tags=["fleet"])


class SyncRunOut(BaseModel):
    id: str
    connection_id: str
    trigger: str
    status: str
    full: bool
    changed_since: datetime | None
    started_at: datetime
    finished_at: datetime | None
    pages: int
    endpoints_seen: int
    endpoints_changed: int
    endpoints_retired: int
    problems_opened: int
    problems_closed: int
    psa_calls: int
    errors: list[dict[str, Any]]


class SyncRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    connection_id: str | None = Field(default=None, description="one RMM connection; default: all")


class EndpointOut(BaseModel):
    id: str
    rmm_connection_id: str
    endpoint_id: str
    client_id: str
    client_name: str | None
    hostname: str
    serial_number: str | None
    os_name: str | None
    product: str | None
    protection_enabled: bool | None
    definitions_date: datetime | None
    last_scan_at: datetime | None
    active_threats: int | None
    online: bool | None
    last_seen_at: datetime | None
    health: str
    first_seen_at: datetime
    updated_at: datetime
    retired_at: datetime | None


class EndpointProblemOut(BaseModel):
    id: str
    kind: str
    state: str
    source: str
    message: str
    first_seen_at: datetime
    cleared_at: datetime | None
    ticket_id: str | None = None
    ticket_number: str | None = None
    ticket_state: str | None = None


class ActionOut(BaseModel):
    id: str
    action: str
    problem_id: str | None
    requested_by: str
    status: str
    vendor_reference: str | None
    message: str
    requested_at: datetime
    finished_at: datetime | None


class EndpointDetail(EndpointOut):
    problems: list[EndpointProblemOut]
    actions: list[ActionOut]


class ActionRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    action: ActionKind
    problem_id: str | None = None


# -- sync runs ------------------------------------------------------------------------------------


@router.post("/sync-runs", status_code=202, response_model=list[SyncRunOut])
async def trigger_sync(body: SyncRequest, session: Session, who: Engineer) -> Any:
    """Start a sync of one RMM connection (409 if one is running) or of all (running ones skipped)."""
    if body.connection_id is not None:
        connection = await session.scalar(
            select(Connection).where(
                Connection.id == body.connection_id, Connection.tenant_id == who.tenant_id
            )
        )
        if connection is None:
            raise NotFound("connection")
        if connection.role != "rmm":
            raise FieldError("connection_id", "is a PSA connection; syncs read RMM connections")
        if not connection.enabled:
            raise FieldError("connection_id", "the connection is disabled")
        connections = [connection]
    else:
        connections = await rmm_connections(session, who.tenant_id)
    runs = []
    for connection in connections:
        try:
            run = await start_run(session, connection, "api")
        except SyncConflict as conflict:
            if body.connection_id is not None:
                return JSONResponse(
                    {
                        "error": "conflict",
                        "message": "a sync of this connection is already running",
                        "run_id": conflict.run_id,
                    },
                    status_code=409,
                )
            continue
        await enqueue_run(session, run)
        runs.append(run)
    await session.flush()
    session.info["wake_workers"] = True
    return [SyncRunOut.model_validate(run, from_attributes=True) for run in runs]


@router.get("/sync-runs", response_model=list[SyncRunOut])
async def list_sync_runs(
    session: Session,
    who: Viewer,
    connection_id: str | None = None,
    status: str | None = Query(None, pattern="^(running|succeeded|failed|interrupted)$"),
    limit: int = Query(50, ge=1, le=500),
    offset: Offset = 0,
) -> list[SyncRunOut]:
    query = select(SyncRun).where(SyncRun.tenant_id == who.tenant_id)
    if connection_id:
        query = query.where(SyncRun.connection_id == connection_id)
    if status:
        query = query.where(SyncRun.status == status)
    rows = await session.scalars(query.order_by(SyncRun.started_at.desc()).limit(limit).offset(offset))
    return [SyncRunOut.model_validate(r, from_attributes=True) for r in rows]


@router.get("/sync-runs/{run_id}", response_model=SyncRunOut)
async def get_sync_run(run_id: str, session: Session, who: Viewer) -> SyncRunOut:
    row = await session.scalar(
        select(SyncRun).where(SyncRun.id == run_id, SyncRun.tenant_id == who.tenant_id)
    )
    if row is None:
        raise NotFound("sync run")
    return SyncRunOut.model_validate(row, from_attributes=True)


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


@router.post("/endpoints/{endpoint_id}/actions", status_code=202, response_model=ActionOut)
async def post_action(
    endpoint_id: str, body: ActionRequest, session: Session, services: ServicesDep, who: Engineer
) -> ActionOut:
    row = await _endpoint(session, endpoint_id, who.tenant_id)
    if row.retired_at is not None:
        raise FieldError("endpoint_id", "the endpoint is retired (no longer in the RMM)")
    connection = await session.get(Connection, row.rmm_connection_id)
    assert connection is not None
    check_supported(services.registry.get(connection.kind), body.action)
    if body.problem_id is not None:
        owned = await session.scalar(
            select(func.count())
            .select_from(Problem)
            .where(
                Problem.id == body.problem_id,
                Problem.tenant_id == who.tenant_id,
                Problem.endpoint_id == row.endpoint_id,
            )
        )
        if not owned:
            raise FieldError("problem_id", "no such problem on this endpoint")
    action = await request_action(session, row, body.action, requested_by="api", problem_id=body.problem_id)
    return ActionOut.model_validate(action, from_attributes=True)


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
