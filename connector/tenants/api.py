"""`/api/v1/api-keys` (admin only): keys of the caller's tenant; `/api/v1/settings/currency`: how
the dashboard shows money."""

from __future__ import annotations

from fastapi import APIRouter, Response

from connector.api.deps import Admin, Engineer, Session, Viewer, configuration_changed
from connector.audit.domain import Actor
from connector.infra.security.apikeys import ApiRole
from connector.tenants import service
from connector.tenants.schemas import ApiKeyCreated, ApiKeyIn, ApiKeyOut, CurrencySettings

router = APIRouter(prefix="/api/v1", tags=["admin"])


@router.get("/api-keys", response_model=list[ApiKeyOut])
async def list_keys(session: Session, who: Admin) -> list[ApiKeyOut]:
    rows = await service.list_api_keys(session, who.tenant_id)
    return [ApiKeyOut.model_validate(row, from_attributes=True) for row in rows]


@router.post("/api-keys", response_model=ApiKeyCreated, status_code=201)
async def create_key(body: ApiKeyIn, session: Session, who: Admin) -> ApiKeyCreated:
    row, plaintext = await service.issue_api_key(
        session, who.tenant_id, ApiRole(body.role), body.name, actor=Actor.key(who.api_key_id)
    )
    configuration_changed(session, who, "api_key", "create", row.id, ("name", "role"))
    return ApiKeyCreated(**ApiKeyOut.model_validate(row, from_attributes=True).model_dump(), key=plaintext)


@router.delete("/api-keys/{key_id}", status_code=204)
async def revoke_key(key_id: str, session: Session, who: Admin) -> Response:
    await service.revoke_api_key(
        session, who.tenant_id, key_id, current_key_id=who.api_key_id, actor=Actor.key(who.api_key_id)
    )
    configuration_changed(session, who, "api_key", "revoke", key_id)
    return Response(status_code=204)


@router.get("/settings/currency", response_model=CurrencySettings, tags=["settings"])
async def get_currency(session: Session, who: Viewer) -> CurrencySettings:
    """The currency (ISO 4217) and locale the dashboard's billing pages format amounts with."""
    return await service.get_currency(session, who.tenant_id)


@router.put("/settings/currency", response_model=CurrencySettings, tags=["settings"])
async def put_currency(body: CurrencySettings, session: Session, who: Engineer) -> CurrencySettings:
    """Replace the settings (omitted fields take their defaults, USD and en_US); no amount is converted."""
    settings = await service.set_currency(session, who.tenant_id, body, actor=Actor.key(who.api_key_id))
    configuration_changed(session, who, "currency", "update", who.tenant_id, body.model_fields_set)
    return settings
