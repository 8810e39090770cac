"""Sophos Central connection settings and wire models.

Shapes are those of the example requests and responses in Sophos's own Postman collection
"Sophos Central APIs" (see `adapter.py` for the source): the token answer, `whoami/v1`, the
partner/organization tenant pages (`items` + page-number `pages`), the endpoint and alert pages
(`items` + key-based `pages`), the partner billing usage report and the tenant licences.

What the adapter SENDS is strict (`extra="forbid"`); what it READS is lenient: every field
optional, unknown fields ignored, ids kept as text.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, SecretStr, field_validator

from adapters.base import OUTBOUND_URL
from adapters.common import LenientRead, id_text

GLOBAL_API = "https://api.central.sophos.com"
TOKEN_URL = "https://id.sophos.com/api/v2/oauth2/token"

IdText = Annotated[str | None, BeforeValidator(id_text)]


# ---------------------------------------------------------------------------------------------
# Connection settings
# ---------------------------------------------------------------------------------------------


class SophosCredentials(BaseModel):
    """A Sophos Central API credential (Global Settings → API Credentials Management) of a
    partner, an organization or a tenant: its client id and secret."""

    model_config = ConfigDict(extra="forbid")

    client_id: str = Field(min_length=1, max_length=200)
    client_secret: SecretStr = Field(min_length=1)

    @field_validator("client_id")
    @classmethod
    def _strip(cls, value: str) -> str:
        value = value.strip()
        if not value:
            raise ValueError("must not be blank")
        return value


class SophosOptions(BaseModel):
    """Per-connection options. The connection's base URL is the global API
    (`https://api.central.sophos.com`); tenants' own regional hosts come from the API."""

    model_config = ConfigDict(extra="forbid")

    token_url: str = Field(
        default=TOKEN_URL,
        description="The Sophos ID token endpoint (OAuth2 client credentials).",
        json_schema_extra=OUTBOUND_URL,
    )
    page_size: int = Field(
        default=500,
        ge=1,
        le=1000,
        description="Items asked for per page of endpoints, alerts and billing usage (lowered to "
        "the `pages.maxSize` an answer states).",
    )
    tenant_page_size: int = Field(
        default=100, ge=1, le=1000, description="Tenants per page (partner, organization)."
    )
    tenant_name: str | None = Field(
        default=None,
        max_length=200,
        description="The customer name of a tenant-level credential (whoami names none).",
    )
    max_concurrency: int = Field(default=4, ge=1, le=16)
    token_refresh_margin_seconds: int = Field(default=60, ge=0, le=1800)


# ---------------------------------------------------------------------------------------------
# Reads
# ---------------------------------------------------------------------------------------------


class TokenRead(LenientRead):
    access_token: str | None = None
    refresh_token: str | None = None
    token_type: str | None = None
    expires_in: int | None = None
    errorCode: str | None = None
    message: str | None = None


class ApiHostsRead(LenientRead):
    model_config = ConfigDict(extra="ignore", frozen=True, populate_by_name=True)

    global_: str | None = Field(default=None, alias="global")
    dataRegion: str | None = None


class WhoAmIRead(LenientRead):
    id: IdText = None
    idType: str | None = None
    apiHosts: ApiHostsRead | None = None


class IdRef(LenientRead):
    id: IdText = None
    name: str | None = None


class KeyPagesRead(LenientRead):
    """`pages` of a key-paged list: `nextKey` is the next request's `pageFromKey`."""

    fromKey: str | None = None
    nextKey: str | None = None
    size: int | None = None
    total: int | None = None
    items: int | None = None
    maxSize: int | None = None


class NumberPagesRead(LenientRead):
    """`pages` of a page-number list (tenants): `current` of `total` (with `pageTotal=true`)."""

    current: int | None = None
    size: int | None = None
    total: int | None = None
    items: int | None = None
    maxSize: int | None = None


class TenantRead(LenientRead):
    id: IdText = None
    name: str | None = None
    showAs: str | None = None
    dataGeography: str | None = None
    dataRegion: str | None = None
    billingType: str | None = None
    partner: IdRef | None = None
    organization: IdRef | None = None
    apiHost: str | None = None
    status: str | None = None


class TenantPageRead(LenientRead):
    items: list[dict[str, Any]] = Field(default_factory=list)
    pages: NumberPagesRead | None = None


class KeyPageRead(LenientRead):
    items: list[dict[str, Any]] = Field(default_factory=list)
    pages: KeyPagesRead | None = None


class StatusRead(LenientRead):
    status: str | None = None


class ServiceDetailRead(LenientRead):
    name: str | None = None
    status: str | None = None


class ServicesRead(LenientRead):
    status: str | None = None
    serviceDetails: list[ServiceDetailRead] = Field(default_factory=list)


class HealthRead(LenientRead):
    overall: str | None = None
    threats: StatusRead | None = None
    services: ServicesRead | None = None


class OsRead(LenientRead):
    isServer: bool | None = None
    platform: str | None = None
    name: str | None = None
    majorVersion: int | None = None
    minorVersion: int | None = None
    build: int | None = None


class ProductRead(LenientRead):
    code: str | None = None
    version: str | None = None
    status: str | None = None


class IsolationRead(LenientRead):
    status: str | None = None
    adminIsolated: bool | None = None
    selfIsolated: bool | None = None


class EndpointRead(LenientRead):
    """One item of `GET /endpoint/v1/endpoints` (`view=full`) or `GET /endpoint/v1/endpoints/{id}`."""

    id: IdText = None
    type: str | None = None
    tenant: IdRef | None = None
    hostname: str | None = None
    health: HealthRead | None = None
    os: OsRead | None = None
    ipv4Addresses: list[str] = Field(default_factory=list)
    macAddresses: list[str] = Field(default_factory=list)
    serialNumber: str | None = None
    associatedPerson: dict[str, Any] | None = None
    tamperProtectionSupported: bool | None = None
    tamperProtectionEnabled: bool | None = None
    assignedProducts: list[ProductRead] = Field(default_factory=list)
    lastSeenAt: str | None = None
    online: bool | None = None
    isolation: IsolationRead | None = None
    lockdown: StatusRead | None = None
    lastAgentUpdateAt: str | None = None


class AlertRead(LenientRead):
    """One item of `GET /common/v1/alerts`."""

    id: IdText = None
    allowedActions: list[str] = Field(default_factory=list)
    category: str | None = None
    description: str | None = None
    groupKey: str | None = None
    managedAgent: IdRef | None = None
    person: IdRef | None = None
    product: str | None = None
    raisedAt: str | None = None
    severity: str | None = None
    tenant: IdRef | None = None
    type: str | None = None


class UsageRead(LenientRead):
    """One item of `GET /partner/v1/billing/usage/{year}/{month}`. Dates stay text: the vendor's
    own example carries `2021-04-31`."""

    partnerAccountId: IdText = None
    partnerAccountName: str | None = None
    billingStartDate: str | None = None
    billingEndDate: str | None = None
    orderNumber: str | None = None
    orderLineItemNumber: str | None = None
    accountNumberOrSerialNumber: str | None = None
    productDescription: str | None = None
    productGroup: str | None = None
    sku: str | None = None
    billableQuantity: int | None = None
    actualQuantity: int | None = None
    externalId: str | None = None
    accountId: IdText = None
    accountStatus: str | None = None
    productCode: str | None = None


class LicenceRead(LenientRead):
    id: IdText = None
    licenseIdentifier: str | None = None
    product: ProductRead | None = None
    startDate: str | None = None
    endDate: str | None = None
    perpetual: bool | None = None
    type: str | None = None
    quantity: int | None = None
    unlimited: bool | None = None
    usage: dict[str, Any] | None = None


class LicencesRead(LenientRead):
    organization: IdRef | None = None
    tenant: IdRef | None = None
    licenses: list[LicenceRead] = Field(default_factory=list)


class ErrorRead(LenientRead):
    error: str | None = None
    message: str | None = None
    correlationId: str | None = None
    code: str | None = None
    requestId: str | None = None
    errorCode: str | None = None


# ---------------------------------------------------------------------------------------------
# Writes
# ---------------------------------------------------------------------------------------------


class TokenRequestWrite(BaseModel):
    """The form `POST {token_url}` takes (the collection's "Authenticate" request)."""

    model_config = ConfigDict(extra="forbid")

    grant_type: Literal["client_credentials"] = "client_credentials"
    scope: Literal["token"] = "token"
    client_id: str
    client_secret: str
