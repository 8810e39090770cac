"""Tenants, their settings (the status thresholds) and their API keys."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from connector.audit import service as audit
from connector.audit.domain import CLI, Actor, changed
from connector.infra.db import tenant_rows
from connector.infra.errors import FieldError, NotFound
from connector.infra.security.apikeys import ApiRole, generate_api_key
from connector.models import ApiKey, Tenant
from connector.tenants.schemas import CurrencySettings

DEFAULT_TENANT = "default"


async def get_or_create_tenant(session: AsyncSession, name: str = DEFAULT_TENANT) -> Tenant:
    tenant = await session.scalar(select(Tenant).where(Tenant.name == name))
    if tenant is None:
        tenant = Tenant(name=name, settings={})
        session.add(tenant)
        await session.flush()
    return tenant


async def get_tenant(session: AsyncSession, tenant_id: str) -> Tenant:
    tenant = await session.get(Tenant, tenant_id)
    if tenant is None:
        raise NotFound("tenant")
    return tenant


async def create_api_key(
    session: AsyncSession, tenant: Tenant, role: ApiRole, name: str, *, actor: Actor = CLI
) -> tuple[ApiKey, str]:
    """Returns the row and the plaintext key, which is never stored and cannot be shown again."""
    new = generate_api_key()
    row = ApiKey(tenant_id=tenant.id, name=name, role=role.value, prefix=new.prefix, key_hash=new.key_hash)
    session.add(row)
    await session.flush()
    audit.record(
        session,
        tenant.id,
        "api_key.created",
        actor,
        target_type="api_key",
        target_id=row.id,
        summary=f"{role.value} API key {name!r} created (prefix {new.prefix})",
        after={"name": name, "role": role.value, "prefix": new.prefix},
    )
    return row, new.plaintext


async def issue_api_key(
    session: AsyncSession, tenant_id: str, role: ApiRole, name: str, *, actor: Actor
) -> tuple[ApiKey, str]:
    """`create_api_key` for the caller's tenant, with the row's stored values loaded for the answer."""
    tenant = await get_tenant(session, tenant_id)
    row, plaintext = await create_api_key(session, tenant, role, name, actor=actor)
    await session.refresh(row)
    return row, plaintext


async def list_api_keys(session: AsyncSession, tenant_id: str) -> list[ApiKey]:
    return list(await session.scalars(tenant_rows(ApiKey, tenant_id).order_by(ApiKey.created_at)))


async def revoke_api_key(
    session: AsyncSession, tenant_id: str, key_id: str, *, current_key_id: str, actor: Actor
) -> None:
    """Revoke one of the tenant's keys; never the key making the request (it would lock the caller out)."""
    row = await session.scalar(tenant_rows(ApiKey, tenant_id).where(ApiKey.id == key_id))
    if row is None:
        raise NotFound("api key")
    if row.id == current_key_id:
        raise FieldError("key_id", "cannot revoke the key making this request")
    if row.revoked_at is None:
        audit.record(
            session,
            tenant_id,
            "api_key.revoked",
            actor,
            target_type="api_key",
            target_id=row.id,
            summary=f"{row.role} API key {row.name!r} revoked (prefix {row.prefix})",
            before={"revoked": False},
            after={"revoked": True},
        )
    revoke(row)


async def has_active_admin_key(session: AsyncSession) -> bool:
    found = await session.scalar(
        select(ApiKey.id).where(ApiKey.role == ApiRole.ADMIN.value, ApiKey.revoked_at.is_(None)).limit(1)
    )
    return found is not None


def revoke(row: ApiKey) -> None:
    row.revoked_at = datetime.now(UTC)


CURRENCY_SETTINGS = "currency"
"""The key of the money display settings in `tenant.settings`."""


def currency_of(tenant: Tenant) -> CurrencySettings:
    return CurrencySettings.model_validate((tenant.settings or {}).get(CURRENCY_SETTINGS, {}))


async def get_currency(session: AsyncSession, tenant_id: str) -> CurrencySettings:
    return currency_of(await get_tenant(session, tenant_id))


async def set_currency(
    session: AsyncSession, tenant_id: str, settings: CurrencySettings, *, actor: Actor
) -> CurrencySettings:
    """Only how amounts are shown changes; no amount is converted."""
    tenant = await get_tenant(session, tenant_id)
    before = currency_of(tenant).model_dump(mode="json")
    after = settings.model_dump(mode="json")
    tenant.settings = {**(tenant.settings or {}), CURRENCY_SETTINGS: after}
    old, new = changed(before, after)
    if new:
        audit.record(
            session,
            tenant_id,
            "currency.updated",
            actor,
            target_type="currency",
            target_id=None,
            summary=f"currency settings changed: {', '.join(sorted(new))}",
            before=old,
            after=new,
        )
    return settings
