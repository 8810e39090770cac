"""Request and response bodies of the configuration API."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any

from fastapi import Query
from pydantic import BaseModel, ConfigDict, Field

from mappings.rules import CostTier

MAX_OFFSET = 1_000_000_000
"""Far past any real listing, and far below the 64-bit integers SQLite and PostgreSQL bind (an
offset of 2**63 would fail in the driver instead of being refused)."""

Offset = Annotated[int, Query(ge=0, le=MAX_OFFSET, description="rows to skip")]


class _In(BaseModel):
    """Request bodies. Flags are strict (`1` or `"false"` is refused, not read as a boolean)."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class ConnectionIn(_In):
    name: str = Field(min_length=1, max_length=200)
    kind: str = Field(min_length=1, max_length=64)
    base_url: str | None = Field(default=None, max_length=500)
    credentials: dict[str, Any] = Field(default_factory=dict)
    options: dict[str, Any] = Field(default_factory=dict)
    enabled: bool = Field(default=True, strict=True)


class ConnectionPatch(_In):
    name: str | None = Field(default=None, min_length=1, max_length=200)
    base_url: str | None = Field(default=None, max_length=500)
    credentials: dict[str, Any] | None = None
    """Fields given here replace the stored ones; fields left out keep their stored values."""
    options: dict[str, Any] | None = None
    enabled: bool | None = Field(default=None, strict=True)


class ConnectionOut(BaseModel):
    id: str
    name: str
    kind: str
    role: str
    base_url: str
    options: dict[str, Any]
    enabled: bool
    credentials_set: dict[str, bool]
    webhook_url: str | None = None
    webhook_secret_set: bool = False
    created_at: datetime
    updated_at: datetime


class ConnectionCreated(ConnectionOut):
    webhook_secret: str | None = None
    """Shown once, on creation (and on rotation); stored encrypted."""


class WebhookSecretOut(BaseModel):
    webhook_url: str
    webhook_secret: str


class ConnectionTestOut(BaseModel):
    ok: bool
    error_kind: str | None = None
    """credentials | configuration | vendor | unreachable"""
    message: str | None = None


class AdapterOut(BaseModel):
    kind: str
    role: str
    title: str
    webhook_scheme: str
    default_base_url: str | None
    credentials_schema: dict[str, Any]
    options_schema: dict[str, Any]
    actions: list[str] = Field(default_factory=list, description="remote actions this RMM kind can run")


class ApiKeyIn(_In):
    name: str = Field(min_length=1, max_length=200)
    role: str = Field(pattern="^(admin|engineer|viewer)$")


class ApiKeyOut(BaseModel):
    id: str
    name: str
    role: str
    prefix: str
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None


class ApiKeyCreated(ApiKeyOut):
    key: str
    """The API key itself: shown once, only a hash is stored."""


class ClientMappingOut(BaseModel):
    id: str
    rmm_connection_id: str
    rmm_client_id: str
    rmm_client_name: str | None
    psa_connection_id: str
    psa_company_id: str
    psa_company_name: str | None
    created_at: datetime
    updated_at: datetime


class SuggestionOut(BaseModel):
    rmm_client_id: str
    rmm_client_name: str
    psa_company_id: str
    psa_company_name: str
    score: float


class TicketRuleOut(BaseModel):
    id: str
    psa_connection_id: str
    problem: str | None
    board_id: str
    type_id: str | None
    priority_id: str | None
    status_new_id: str | None
    status_closed_id: str | None
    summary_template: str
    note_interval_minutes: int
    auto_action: str | None
    update_configurations: bool
    create_configurations: bool
    enabled: bool
    created_at: datetime
    updated_at: datetime


class BillingRuleOut(BaseModel):
    id: str
    psa_connection_id: str
    product: str
    count_scope: str
    count_method: str
    agreement_type: str | None
    agreement_id: str | None
    psa_product_id: str
    description: str | None
    unit_price: Decimal
    cost_tiers: list[CostTier]
    enabled: bool
    created_at: datetime
    updated_at: datetime
