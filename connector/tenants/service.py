"""Tenants and API keys."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from connector.infra.security.apikeys import ApiRole, generate_api_key
from connector.models import ApiKey, Tenant

DEFAULT_TENANT = "default"


async def get_or_create_tenant(session: AsyncSession, name: str = DEFAULT_TENANT) -> Tenant:
    tenant = await session.scalar(select(Tenant).where(Tenant.name == name))
    if tenant is None:
        tenant = Tenant(name=name, settings={})
        session.add(tenant)
        await session.flush()
    return tenant


async def create_api_key(
    session: AsyncSession, tenant: Tenant, role: ApiRole, name: str
) -> tuple[ApiKey, str]:
    """Returns the row and the plaintext key, which is never stored and cannot be shown again."""
    new = generate_api_key()
    row = ApiKey(tenant_id=tenant.id, name=name, role=role.value, prefix=new.prefix, key_hash=new.key_hash)
    session.add(row)
    await session.flush()
    return row, new.plaintext


async def has_active_admin_key(session: AsyncSession) -> bool:
    found = await session.scalar(
        select(ApiKey.id).where(ApiKey.role == ApiRole.ADMIN.value, ApiKey.revoked_at.is_(None)).limit(1)
    )
    return found is not None


def revoke(row: ApiKey) -> None:
    row.revoked_at = datetime.now(UTC)
