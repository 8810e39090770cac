"""Endpoint rows as the normalized status the domain reasons about, and the tenant's thresholds:
shared by the sync (which stores and evaluates them) and the configuration pushes."""

from __future__ import annotations

from adapters.base import EndpointStatus
from connector.fleet import domain
from connector.models import Endpoint, Tenant

STATUS_FIELDS = (
    "client_id",
    "client_name",
    "hostname",
    "serial_number",
    "os_name",
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
