"""`/api/v1/notification-channels` (CRUD and `POST …/{id}/test`) and `/api/v1/notifications`."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Body, Query, Response

from connector.api.deps import Engineer, ServicesDep, Session, Viewer, after_commit, configuration_changed
from connector.api.schemas import Offset
from connector.audit.domain import Actor
from connector.notifications import service
from connector.notifications.schemas import ChannelIn, ChannelOut, NotificationOut

router = APIRouter(prefix="/api/v1", tags=["notifications"])
ENTITY = "notification_channel"
PATCH_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {"type": "object", "additionalProperties": True},
                "example": {"events": ["delivery.dead"], "enabled": True},
            }
        },
    }
}


@router.get("/notification-channels", response_model=list[ChannelOut])
async def list_channels(session: Session, who: Viewer) -> list[ChannelOut]:
    return [service.out(row) for row in await service.list_channels(session, who.tenant_id)]


@router.post("/notification-channels", response_model=ChannelOut, status_code=201)
async def create_channel(
    services: ServicesDep, session: Session, who: Engineer, body: ChannelIn
) -> ChannelOut:
    row = await service.create(services, session, who.tenant_id, body, actor=Actor.key(who.api_key_id))
    configuration_changed(session, who, ENTITY, "create", row.id, body.model_fields_set)
    return service.out(row)


@router.get("/notification-channels/{channel_id}", response_model=ChannelOut)
async def get_channel(channel_id: str, session: Session, who: Viewer) -> ChannelOut:
    return service.out(await service.get(session, who.tenant_id, channel_id))


@router.patch("/notification-channels/{channel_id}", response_model=ChannelOut, openapi_extra=PATCH_BODY)
async def patch_channel(
    channel_id: str, services: ServicesDep, session: Session, who: Engineer, body: dict[str, Any] = Body(...)
) -> ChannelOut:
    """Merges the given fields into the stored ones; secrets left out are kept (422 naming a field)."""
    row = await service.update(
        services, session, who.tenant_id, channel_id, body, actor=Actor.key(who.api_key_id)
    )
    configuration_changed(session, who, ENTITY, "update", channel_id, body)
    return service.out(row)


@router.delete("/notification-channels/{channel_id}", status_code=204)
async def delete_channel(channel_id: str, session: Session, who: Engineer) -> Response:
    await service.delete(session, who.tenant_id, channel_id, actor=Actor.key(who.api_key_id))
    configuration_changed(session, who, ENTITY, "delete", channel_id)
    return Response(status_code=204)


@router.post("/notification-channels/{channel_id}/test", response_model=NotificationOut, status_code=202)
async def test_channel(
    channel_id: str, services: ServicesDep, session: Session, who: Engineer
) -> NotificationOut:
    """Queue a test notification to this channel (its outcome shows in `/api/v1/notifications`)."""
    row = await service.send_test(session, who.tenant_id, channel_id)
    after_commit(session, services.wake_workers)
    return NotificationOut.model_validate(row, from_attributes=True)


@router.get("/notifications", response_model=list[NotificationOut])
async def list_notifications(
    session: Session,
    who: Viewer,
    channel_id: str | None = None,
    limit: int = Query(100, ge=1, le=1000),
    offset: Offset = 0,
) -> list[NotificationOut]:
    return await service.list_notifications(
        session, who.tenant_id, limit=limit, offset=offset, channel_id=channel_id
    )
