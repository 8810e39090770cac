"""Request and response bodies of `/api/v1/connections` and `/api/v1/adapters`."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, SecretStr

from connector.api.schemas import RequestBody


class ConnectionIn(RequestBody):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "name": "Manage (production)",
                    "kind": "connectwise_manage",
                    "base_url": "https://api-na.myconnectwise.net",
                    "credentials": {
                        "company_id": "acme",
                        "public_key": "pub",
                        "private_key": "priv",
                        "client_id": "00000000-0000-0000-0000-000000000000",
                    },
                }
            ]
        }
    )

    name: str = Field(min_length=1, max_length=200)
    kind: str = Field(min_length=1, max_length=64)
    base_url: str | None = Field(default=None, max_length=500)
    credentials: dict[str, Any] = Field(default_factory=dict)
    options: dict[str, Any] = Field(default_factory=dict)
    enabled: bool = Field(default=True, strict=True)
    webhook_secret: SecretStr | None = Field(default=None, min_length=8, max_length=500)
    """The signing secret the vendor issued for its webhooks (Huntress shows one per account as
    `whsec_…`), used instead of a generated one; write-only, stored encrypted, never returned."""


class ConnectionPatch(RequestBody):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"enabled": False}, {"credentials": {"private_key": "new-key"}}]}
    )

    name: str | None = Field(default=None, min_length=1, max_length=200)
    base_url: str | None = Field(default=None, max_length=500)
    credentials: dict[str, Any] | None = None
    """Fields given here replace the stored ones; fields left out keep their stored values."""
    options: dict[str, Any] | None = None
    enabled: bool | None = Field(default=None, strict=True)
    webhook_secret: SecretStr | None = Field(default=None, min_length=8, max_length=500)
    """The signing secret the vendor issued for its webhooks (Huntress shows one per account as
    `whsec_…`), used instead of a generated one; write-only, stored encrypted, never returned."""


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


class CatalogItemOut(BaseModel):
    id: str
    """As rules and mappings name it (`board_id`, `psa_product_id`, ...; agreement types by name)."""
    name: str
    parent_id: str | None = None
    """The board a status or ticket type belongs to, where the PSA keeps them per board."""
    closed: bool = False
    """Statuses: a status that closes the ticket."""


class CatalogOut(BaseModel):
    connection_id: str
    kind: str
    fetched_at: datetime
    """When the items were read from the PSA."""
    cached: bool
    """Served from this process's copy (kept up to a minute); `?refresh=true` reads the PSA again."""
    items: list[CatalogItemOut]
