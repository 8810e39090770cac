"""`/api/v1/deliveries` (received webhooks, incl. refused ones) and `/api/v1/problems`."""

from __future__ import annotations

from fastapi import APIRouter, Query
from sqlalchemy import select

from connector.alerts.schemas import DELIVERY_STATUSES, DeliveryOut, ProblemOut
from connector.api.deps import Engineer, Session, Viewer
from connector.api.schemas import Offset
from connector.infra.errors import FieldError, NotFound
from connector.infra.jobs import queue
from connector.models import Delivery, Problem, TicketLink

router = APIRouter(prefix="/api/v1", tags=["alerts"])


@router.get("/deliveries", response_model=list[DeliveryOut])
async def list_deliveries(
    session: Session,
    who: Viewer,
    status: str | None = Query(None, pattern="^(" + "|".join(DELIVERY_STATUSES) + ")$"),
    connection_id: str | None = None,
    limit: int = Query(100, ge=1, le=1000),
    offset: Offset = 0,
) -> list[DeliveryOut]:
    query = select(Delivery).where(Delivery.tenant_id == who.tenant_id)
    if status:
        query = query.where(Delivery.status == status)
    if connection_id:
        query = query.where(Delivery.connection_id == connection_id)
    rows = await session.scalars(query.order_by(Delivery.received_at.desc()).limit(limit).offset(offset))
    return [DeliveryOut.model_validate(row, from_attributes=True) for row in rows]


@router.get("/deliveries/{delivery_id}", response_model=DeliveryOut)
async def get_delivery(delivery_id: str, session: Session, who: Viewer) -> DeliveryOut:
    row = await session.scalar(
        select(Delivery).where(Delivery.id == delivery_id, Delivery.tenant_id == who.tenant_id)
    )
    if row is None:
        raise NotFound("delivery")
    return DeliveryOut.model_validate(row, from_attributes=True)


@router.post("/deliveries/{delivery_id}/replay", response_model=DeliveryOut, status_code=202)
async def replay_delivery(delivery_id: str, session: Session, who: Engineer) -> DeliveryOut:
    """Process the stored delivery again. Events already applied are not counted twice; the
    problems they touched are reconciled again (reviving a dead-lettered ticket action)."""
    row = await session.scalar(
        select(Delivery).where(Delivery.id == delivery_id, Delivery.tenant_id == who.tenant_id)
    )
    if row is None:
        raise NotFound("delivery")
    if row.body is None:
        raise FieldError("delivery_id", "a refused delivery has no stored body to replay")
    await queue.enqueue(
        session,
        tenant_id=row.tenant_id,
        kind="delivery",
        payload={"delivery_id": row.id},
        unique_key=f"delivery:{row.id}",
        delivery_id=row.id,
    )
    row.status = "queued"
    row.error = None
    await session.flush()
    session.info["wake_workers"] = True
    return DeliveryOut.model_validate(row, from_attributes=True)


@router.get("/problems", response_model=list[ProblemOut])
async def list_problems(
    session: Session,
    who: Viewer,
    state: str | None = Query(None, pattern="^(open|cleared)$"),
    routing: str | None = Query(None, pattern="^(pending|ticketed|unmapped|no_rule)$"),
    client_id: str | None = None,
    endpoint_id: str | None = None,
    kind: str | None = None,
    limit: int = Query(200, ge=1, le=5000),
    offset: Offset = 0,
) -> list[ProblemOut]:
    query = (
        select(Problem, TicketLink)
        .outerjoin(TicketLink, TicketLink.problem_id == Problem.id)
        .where(Problem.tenant_id == who.tenant_id)
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
    out = []
    for problem, link in rows.all():
        item = ProblemOut.model_validate(problem, from_attributes=True)
        if link is not None:
            item.ticket_id, item.ticket_number = link.ticket_id, link.ticket_number
            item.ticket_url, item.ticket_state = link.ticket_url, link.state
        out.append(item)
    return out
