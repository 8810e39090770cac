"""N-central connection settings and wire models.

Shapes follow N-able's "N-central API-Service" OpenAPI 3.0.1 document (as mirrored in
sgibson-adt/N-central_MCP `test/openapi-spec.json`@53e31e5c: `AuthenticateResponse`/`AuthTokens`/
`AuthToken`, `QueryResponseDevice`/`Device`, `Customer`, `Site`, `Links`,
`ListResponseDeviceServiceMonitoringStatus`/`DeviceServiceMonitoringStatus`) and, for the direct
task body, the public clients cited in `adapter.py`. See vendor-notes/rmm.md §2.

What the adapter SENDS is strict (`extra="forbid"`); what it READS is lenient: every field optional,
unknown fields ignored, ids accepted as numbers or strings (the spec types `Customer.customerId` as a
string and `Device.customerId` as an integer) and kept as strings. Timestamps are read as text: N-central
mixes ISO-8601 with offsets, `2024-02-28 15:25:05.939 -0500` and offset-less server-local forms.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

from adapters.common import LenientRead, id_text

# ---------------------------------------------------------------------------------------------
# Connection settings
# ---------------------------------------------------------------------------------------------

_EXPIRY = re.compile(r"^\d+[smh]$")

TaskType = Literal["Script", "AutomationPolicy", "MacScript"]


class NcentralCredentials(BaseModel):
    """The "N-central User-API Token": a JWT generated for an API-only user (MFA/2FA off). It is a
    permanent secret used only to obtain access and refresh tokens."""

    model_config = ConfigDict(extra="forbid")

    api_token: SecretStr = Field(min_length=10, description="N-central User-API Token (JWT)")

    @field_validator("api_token")
    @classmethod
    def _strip(cls, value: SecretStr) -> SecretStr:
        text = value.get_secret_value().strip()
        if text.lower().startswith("bearer "):
            text = text[7:].strip()
        if not text or any(c.isspace() for c in text):
            raise ValueError("must be the JWT text, without spaces")
        return SecretStr(text)


DEFAULT_PROTECTION_SERVICES = [
    r"^AV Status",
    r"AV Defender",
    r"Security Manager",
    r"Endpoint (Security|Protection)",
    r"Defender",
    r"Anti-?Virus",
    r"Anti-?Malware",
    r"\bEDR\b",
]
DEFAULT_THREAT_SERVICES = [r"Threat", r"Infect", r"Quarantin"]
DEFAULT_AGENT_SERVICES = [r"^Agent Status"]


def _check_patterns(value: list[str]) -> list[str]:
    for pattern in value:
        try:
            re.compile(pattern)
        except re.error as exc:
            raise ValueError(f"not a regular expression: {pattern!r} ({exc})") from None
    return value


class NcentralOptions(BaseModel):
    """Per-connection options. The connection's base URL is the N-central server,
    e.g. https://ncentral.example.com (a URL ending in /api is accepted too)."""

    model_config = ConfigDict(extra="forbid")

    page_size: int = Field(
        default=500, ge=1, le=1000, description="pageSize of list reads; N-central allows 1 to 1000"
    )
    max_concurrency: int = Field(
        default=4,
        ge=1,
        le=16,
        description="Requests in flight; N-central limits concurrent calls per endpoint (3 to 50)",
    )
    device_filter_id: int | None = Field(
        default=None, ge=1, description="An N-central device filter (filterId) that scopes the listing"
    )
    sort_devices_by: str | None = Field(
        default="deviceId",
        description="sortBy of the device listing (a stable order keeps pages consistent); empty = none",
    )
    read_service_status: bool = Field(
        default=True,
        description="Read each listed device's monitored services (one request per device) for its "
        "antivirus and agent state; off = identity and last check-in only",
    )
    protection_services: list[str] = Field(
        default_factory=lambda: list(DEFAULT_PROTECTION_SERVICES),
        description="Regular expressions (case-insensitive) for monitored-service names (moduleName) "
        "that report antivirus protection; the names depend on the AV product in use",
    )
    threat_services: list[str] = Field(
        default_factory=lambda: list(DEFAULT_THREAT_SERVICES),
        description="Of the protection services, those whose failure means a detected threat",
    )
    agent_services: list[str] = Field(
        default_factory=lambda: list(DEFAULT_AGENT_SERVICES),
        description="Monitored services whose state says whether the agent is checking in",
    )
    server_timezone: str = Field(
        default="UTC",
        description="IANA zone of the N-central server: how offset-less server-local times are read "
        "(TimeOfStateChange in notifications, the API's …Local fields); the API's other times are UTC",
    )
    access_expiry_override: str | None = Field(
        default=None, description="X-ACCESS-EXPIRY-OVERRIDE sent when authenticating, e.g. 30m"
    )
    refresh_expiry_override: str | None = Field(
        default=None, description="X-REFRESH-EXPIRY-OVERRIDE sent when authenticating, e.g. 25h"
    )
    token_refresh_margin_seconds: int = Field(
        default=120, ge=0, le=1800, description="Refresh the access token this long before it expires"
    )
    scan_item_id: int | None = Field(
        default=None, ge=1, description="Script/Software Repository ID run for 'scan' (Enable API on)"
    )
    scan_task_type: TaskType = "AutomationPolicy"
    scan_parameters: dict[str, str] = Field(default_factory=dict)
    definitions_item_id: int | None = Field(
        default=None, ge=1, description="Repository ID run for 'update_definitions' (Enable API on)"
    )
    definitions_task_type: TaskType = "AutomationPolicy"
    definitions_parameters: dict[str, str] = Field(default_factory=dict)

    @field_validator("scan_parameters", "definitions_parameters")
    @classmethod
    def _parameter_names(cls, value: dict[str, str]) -> dict[str, str]:
        if any(not name.strip() for name in value):
            raise ValueError("a script parameter needs a name")
        return value

    @field_validator("server_timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r}") from None
        return value

    @field_validator("access_expiry_override", "refresh_expiry_override")
    @classmethod
    def _expiry(cls, value: str | None) -> str | None:
        if value is not None and not _EXPIRY.match(value.strip()):
            raise ValueError("a number with s, m or h, e.g. 120s, 30m, 1h")
        return value.strip() if value else None

    @field_validator("protection_services", "threat_services", "agent_services")
    @classmethod
    def _patterns(cls, value: list[str]) -> list[str]:
        return _check_patterns(value)


# ---------------------------------------------------------------------------------------------
# Read models (lenient)
# ---------------------------------------------------------------------------------------------


class AuthTokenRead(LenientRead):
    token: str | None = None
    type: str | None = None
    expirySeconds: int | None = None


class AuthTokensRead(LenientRead):
    access: AuthTokenRead | None = None
    refresh: AuthTokenRead | None = None


class AuthenticateRead(LenientRead):
    """`AuthenticateResponse` and `AuthRefreshResponse` share this shape."""

    tokens: AuthTokensRead | None = None


class PageRead(LenientRead):
    """`QueryResponse*`: one page of a paged list."""

    data: list[Any] | None = None
    pageNumber: int | None = None
    pageSize: int | None = None
    itemCount: int | None = None
    totalItems: int | None = None
    totalPages: int | None = None
    warning: str | None = Field(default=None, alias="_warning")


class CustomerRead(LenientRead):
    customerId: str | None = None
    customerName: str | None = None
    parentId: str | None = None
    orgUnitType: str | None = None
    externalId: str | None = None

    _ids = field_validator("customerId", "parentId", mode="before")(id_text)


class SiteRead(LenientRead):
    siteId: str | None = None
    siteName: str | None = None
    parentId: str | None = None
    orgUnitType: str | None = None

    _ids = field_validator("siteId", "parentId", mode="before")(id_text)


class DeviceRead(LenientRead):
    deviceId: str | None = None
    longName: str | None = None
    discoveredName: str | None = None
    deviceClass: str | None = None
    deviceClassLabel: str | None = None
    supportedOs: str | None = None
    supportedOsLabel: str | None = None
    osId: str | None = None
    isProbe: bool | None = None
    customerId: str | None = None
    customerName: str | None = None
    siteId: str | None = None
    siteName: str | None = None
    soId: str | None = None
    uri: str | None = None
    lastApplianceCheckinTime: str | None = None
    """Per the description, the agent's last check-in; without an offset it is UTC."""
    lastApplianceCheckinTimeLocal: str | None = None
    """The same "in server local time with timezone offset"; without one, server-local."""

    _ids = field_validator("deviceId", "customerId", "siteId", "soId", mode="before")(id_text)


class ServiceStatusRead(LenientRead):
    """`DeviceServiceMonitoringStatus`: one monitored service (task) on a device."""

    taskId: str | None = None
    serviceId: str | None = None
    moduleName: str | None = None
    stateStatus: str | None = None
    taskIdent: str | None = None
    lastScanTime: str | None = None
    transitionTime: str | None = None
    applianceName: str | None = None

    _ids = field_validator("taskId", "serviceId", mode="before")(id_text)


# ---------------------------------------------------------------------------------------------
# Write models (strict)
# ---------------------------------------------------------------------------------------------


class _Write(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    def wire(self) -> dict[str, Any]:
        return self.model_dump(mode="json", exclude_none=True)


class TaskCredential(_Write):
    type: Literal["LocalSystem", "DeviceCredentials", "CustomCredentials"] = "LocalSystem"
    username: str | None = None
    password: str | None = None


class TaskParameter(_Write):
    """`ScheduledTaskParameter`: `name`, `description` and `type` are required, the first two non-empty."""

    name: str = Field(min_length=1)
    value: str
    type: Literal["string", "integer", "boolean", "text", "dword", "password"] = "string"
    description: str = Field(min_length=1)


class DirectTaskWrite(_Write):
    """`POST /api/scheduled-tasks/direct` (`DirectSupportTask`): run one repository item on one
    device now."""

    name: str = Field(min_length=1, max_length=200)
    itemId: int
    taskType: TaskType
    customerId: int
    deviceId: int
    credential: TaskCredential = Field(default_factory=TaskCredential)
    parameters: list[TaskParameter] = Field(default_factory=list)
