"""Endpoint rows as the normalized status the domain reasons about, and the tenant's thresholds
(read and set over the API; applied by the sync, which stores and evaluates endpoints, and by the
configuration pushes)."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from adapters.base import EndpointStatus
from connector.audit import service as audit
from connector.audit.domain import Actor, changed
from connector.fleet import domain
from connector.models import Endpoint, Tenant
from connector.tenants.service import get_tenant

STATUS_FIELDS = (
    "client_id",
    "client_name",
    "hostname",
    "serial_number",
    "mac_addresses",
    "os_name",
    "device_type",
    "product",
    "protection_enabled",
    "definitions_date",
    "last_scan_at",
    "active_threats",
    "online",
    "last_seen_at",
)

"""The stored status fields, as `EndpointStatus` and `Endpoint` both name them."""


def to_status(row: Endpoint) -> EndpointStatus:
    return EndpointStatus(endpoint_id=row.endpoint_id, **{name: getattr(row, name) for name in STATUS_FIELDS})


def thresholds_of(tenant: Tenant) -> domain.Thresholds:
    return domain.Thresholds.model_validate((tenant.settings or {}).get("thresholds", {}))


async def get_thresholds(session: AsyncSession, tenant_id: str) -> domain.Thresholds:
    return thresholds_of(await get_tenant(session, tenant_id))


async def set_thresholds(
    session: AsyncSession, tenant_id: str, thresholds: domain.Thresholds, *, actor: Actor
) -> domain.Thresholds:
    """New limits apply at the next sync, which re-evaluates every endpoint against them."""
    tenant = await get_tenant(session, tenant_id)
    before = (tenant.settings or {}).get("thresholds")
    tenant.settings = {**(tenant.settings or {}), "thresholds": thresholds.model_dump()}
    old, new = changed(dict(before or {}), thresholds.model_dump())
    if new:
        audit.record(
            session,
            tenant_id,
            "thresholds.updated",
            actor,
            target_type="thresholds",
            target_id=None,
            summary=f"status thresholds changed: {', '.join(sorted(new))}",
            before=old,
            after=new,
        )
    return thresholds
