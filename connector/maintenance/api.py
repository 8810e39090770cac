"""`/api/v1/maintenance-windows`: one-off and weekly maintenance windows per tenant or client."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Body, Query, Response

from connector.api.deps import Engineer, Session, Viewer, configuration_changed
from connector.api.schemas import Offset
from connector.audit.domain import Actor
from connector.maintenance import service
from connector.maintenance.schemas import WindowIn, WindowOut

router = APIRouter(prefix="/api/v1/maintenance-windows", tags=["maintenance"])
ENTITY = "maintenance_window"


@router.get("", response_model=list[WindowOut])
async def list_windows(
    session: Session, who: Viewer, limit: int = Query(500, ge=1, le=5000), offset: Offset = 0
) -> list[WindowOut]:
    now = datetime.now(UTC)
    return [
        service.out(row, now)
        for row in await service.list_rows(session, who.tenant_id, limit=limit, offset=offset)
    ]


@router.post("", response_model=WindowOut, status_code=201)
async def create_window(session: Session, who: Engineer, body: WindowIn) -> WindowOut:
    row = await service.create(session, who.tenant_id, body, actor=Actor.key(who.api_key_id))
    configuration_changed(session, who, ENTITY, "create", row.id, body.model_dump(mode="json"))
    return service.out(row, datetime.now(UTC))


@router.get("/{window_id}", response_model=WindowOut)
async def get_window(window_id: str, session: Session, who: Viewer) -> WindowOut:
    return service.out(await service.get(session, who.tenant_id, window_id), datetime.now(UTC))


PATCH_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {"type": "object", "additionalProperties": True},
                "example": {"end_local": "2026-12-13T04:00:00"},
            }
        },
    }
}


@router.patch("/{window_id}", response_model=WindowOut, openapi_extra=PATCH_BODY)
async def patch_window(
    window_id: str, session: Session, who: Engineer, body: dict[str, Any] = Body(...)
) -> WindowOut:
    """Merges the given fields into the stored ones, then validates the whole (422 naming a field)."""
    row = await service.update(session, who.tenant_id, window_id, body, actor=Actor.key(who.api_key_id))
    configuration_changed(session, who, ENTITY, "update", window_id, body)
    return service.out(row, datetime.now(UTC))


@router.delete("/{window_id}", status_code=204)
async def delete_window(window_id: str, session: Session, who: Engineer) -> Response:
    await service.delete(session, who.tenant_id, window_id, actor=Actor.key(who.api_key_id))
    configuration_changed(session, who, ENTITY, "delete", window_id)
    return Response(status_code=204)
