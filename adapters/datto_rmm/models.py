"""Datto RMM connection settings and wire models.

Shapes follow Datto's own OpenAPI 3.1 description of API v2 ("Datto RMM API 2.0.0", schemas `Site`,
`SitesPage`, `Device`, `Antivirus`, `DevicesPage`, `PaginationData`, `Alert`, `AlertSourceInfo`,
`AlertsPage`, `CreateQuickJobRequest`, `JobComponentRequest`, `JobComponentVariable`,
`CreateQuickJobResponse`, `Job`); the token answer is Spring Security OAuth2's (`access_token`,
`token_type`, `expires_in`), which the description does not carry (see `adapter.py`).

What the adapter SENDS is strict (`extra="forbid"`); what it READS is lenient: every field optional,
unknown fields ignored, ids kept as text. Times are read by the adapter (`parse_time`): the
description types them `date-time`, and the API is seen answering epoch milliseconds as well.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

from adapters.common import LenientRead, id_text

# ---------------------------------------------------------------------------------------------
# Connection settings
# ---------------------------------------------------------------------------------------------


class DattoCredentials(BaseModel):
    """An API key and secret generated for a Datto RMM user (Setup → Users → Generate API Keys,
    with API access enabled under Setup → Global Settings → Access Control)."""

    model_config = ConfigDict(extra="forbid")

    api_key: str = Field(min_length=1, max_length=200, description="The user's API key (the token username)")
    api_secret: SecretStr = Field(min_length=1, description="The user's API secret key")

    @field_validator("api_key")
    @classmethod
    def _strip(cls, value: str) -> str:
        value = value.strip()
        if not value:
            raise ValueError("must not be blank")
        return value


class DattoOptions(BaseModel):
    """Per-connection options. The connection's base URL is the account's platform API URL, e.g.
    https://concord-api.centrastage.net (a URL ending in /api or /api/v2 is accepted too)."""

    model_config = ConfigDict(extra="forbid")

    page_size: int = Field(
        default=250,
        ge=1,
        le=250,
        description="`max` of list reads; Datto serves at most 250 per page (GET /v2/system/pagination)",
    )
    reads_per_minute: int = Field(
        default=600,
        ge=1,
        le=600,
        description="Requests this connection sends in any rolling 60 s (Datto allows 600 per account; "
        "lower it when other integrations share the account)",
    )
    writes_per_minute: int = Field(
        default=100, ge=1, le=100, description="Writes (quick jobs) in any rolling 60 s (Datto allows 100)"
    )
    max_concurrency: int = Field(default=4, ge=1, le=16)
    token_refresh_margin_seconds: int = Field(
        default=600, ge=0, le=3600, description="Renew the token this long before it expires"
    )
    scan_component_uid: str | None = Field(
        default=None, min_length=1, description="Component run as a quick job for a scan"
    )
    update_component_uid: str | None = Field(
        default=None, min_length=1, description="Component run as a quick job for a definitions update"
    )
    deploy_component_uid: str | None = Field(
        default=None, min_length=1, description="Component run as a quick job to deploy the security agent"
    )
    component_variables: dict[str, str] = Field(
        default_factory=dict, description="Variables (name → value) passed to every quick job's component"
    )
    include_muted_alerts: bool = Field(
        default=True, description="Whether muted open alerts count as open problems in the alert poll"
    )


# ---------------------------------------------------------------------------------------------
# Records read (lenient)
# ---------------------------------------------------------------------------------------------


class _Read(LenientRead):
    @field_validator("*", mode="before")
    @classmethod
    def _ids(cls, value: Any) -> Any:
        return id_text(value) if isinstance(value, int | str) and not isinstance(value, bool) else value


class TokenRead(LenientRead):
    access_token: str | None = None
    token_type: str | None = None
    expires_in: float | None = None


class PageDetailsRead(LenientRead):
    count: int | None = None
    totalCount: int | None = None
    prevPageUrl: str | None = None
    nextPageUrl: str | None = None


class SiteRead(_Read):
    id: str | None = None
    uid: str | None = None
    name: str | None = None
    autotaskCompanyId: str | None = None
    autotaskCompanyName: str | None = None


class AntivirusRead(LenientRead):
    antivirusProduct: str | None = None
    antivirusStatus: str | None = None


class DeviceTypeRead(LenientRead):
    category: str | None = None
    type: str | None = None


class DeviceRead(_Read):
    id: str | None = None
    uid: str | None = None
    siteUid: str | None = None
    siteName: str | None = None
    hostname: str | None = None
    operatingSystem: str | None = None
    deviceType: DeviceTypeRead | None = None
    online: bool | None = None
    deleted: bool | None = None
    lastSeen: str | None = None
    antivirus: AntivirusRead | None = None


class AlertSourceRead(LenientRead):
    deviceUid: str | None = None
    deviceName: str | None = None
    siteUid: str | None = None
    siteName: str | None = None


class AlertRead(_Read):
    alertUid: str | None = None
    priority: str | None = None
    diagnostics: str | None = None
    resolved: bool | None = None
    muted: bool | None = None
    timestamp: str | None = None
    alertContext: dict[str, Any] | None = None
    alertSourceInfo: AlertSourceRead | None = None


class JobRead(_Read):
    id: str | None = None
    uid: str | None = None
    name: str | None = None
    status: str | None = None


class QuickJobResponseRead(LenientRead):
    job: JobRead | None = None


# ---------------------------------------------------------------------------------------------
# Bodies sent (strict)
# ---------------------------------------------------------------------------------------------


class _Write(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    def wire(self) -> dict[str, Any]:
        return self.model_dump(exclude_none=True)


class JobComponentVariableWrite(_Write):
    name: str
    value: str


class JobComponentWrite(_Write):
    componentUid: str
    variables: list[JobComponentVariableWrite] | None = None


class QuickJobWrite(_Write):
    jobName: str
    jobComponent: JobComponentWrite
