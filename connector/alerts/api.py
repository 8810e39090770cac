"""`/api/v1/deliveries` (received webhooks, incl. refused ones) and `/api/v1/problems`."""

from __future__ import annotations

from fastapi import APIRouter, Query

from connector.alerts import service
from connector.alerts.schemas import DELIVERY_STATUSES, DeliveryOut, ProblemOut
from connector.api.deps import Engineer, Session, Viewer
from connector.api.schemas import Offset

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
    rows = await service.list_deliveries(
        session, who.tenant_id, status=status, connection_id=connection_id, limit=limit, offset=offset
    )
    return [DeliveryOut.model_validate(row, from_attributes=True) for row in rows]


@router.get("/deliveries/{delivery_id}", response_model=DeliveryOut)
async def get_delivery(delivery_id: str, session: Session, who: Viewer) -> DeliveryOut:
    row = await service.get_delivery(session, who.tenant_id, delivery_id)
    return DeliveryOut.model_validate(row, from_attributes=True)


@router.post("/deliveries/{delivery_id}/replay", response_model=DeliveryOut, status_code=202)
async def replay_delivery(delivery_id: str, session: Session, who: Engineer) -> DeliveryOut:
    """Process the stored delivery again. Events already applied are not counted twice; the
    problems they touched are reconciled again (reviving a dead-lettered ticket action)."""
    row = await service.replay_delivery(session, who.tenant_id, delivery_id)
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
    rows = await service.list_problems(
        session,
        who.tenant_id,
        state=state,
        routing=routing,
        client_id=client_id,
        endpoint_id=endpoint_id,
        kind=kind,
        limit=limit,
        offset=offset,
    )
    return [ProblemOut.of(problem, link) for problem, link in rows]
