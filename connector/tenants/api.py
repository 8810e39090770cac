"""`/api/v1/api-keys` (admin only): keys of the caller's tenant."""

from __future__ import annotations

from fastapi import APIRouter, Response
from sqlalchemy import select

from connector.api.deps import Admin, Session
from connector.infra.errors import FieldError, NotFound
from connector.infra.security.apikeys import ApiRole
from connector.models import ApiKey, Tenant
from connector.tenants.schemas import ApiKeyCreated, ApiKeyIn, ApiKeyOut
from connector.tenants.service import create_api_key, revoke

router = APIRouter(prefix="/api/v1", tags=["admin"])


@router.get("/api-keys", response_model=list[ApiKeyOut])
async def list_keys(session: Session, who: Admin) -> list[ApiKeyOut]:
    rows = await session.scalars(
        select(ApiKey).where(ApiKey.tenant_id == who.tenant_id).order_by(ApiKey.created_at)
    )
    return [ApiKeyOut.model_validate(row, from_attributes=True) for row in rows]


@router.post("/api-keys", response_model=ApiKeyCreated, status_code=201)
async def create_key(body: ApiKeyIn, session: Session, who: Admin) -> ApiKeyCreated:
    tenant = await session.get(Tenant, who.tenant_id)
    assert tenant is not None
    row, plaintext = await create_api_key(session, tenant, ApiRole(body.role), body.name)
    await session.refresh(row)
    return ApiKeyCreated(**ApiKeyOut.model_validate(row, from_attributes=True).model_dump(), key=plaintext)


@router.delete("/api-keys/{key_id}", status_code=204)
async def revoke_key(key_id: str, session: Session, who: Admin) -> Response:
    row = await session.scalar(select(ApiKey).where(ApiKey.id == key_id, ApiKey.tenant_id == who.tenant_id))
    if row is None:
        raise NotFound("api key")
    if row.id == who.api_key_id:
        raise FieldError("key_id", "cannot revoke the key making this request")
    revoke(row)
    return Response(status_code=204)
