"""NinjaOne connection settings and wire models.

Shapes are those of NinjaOne's "Public API 2.0" OpenAPI document (2.0.9-draft): `Organization`,
`Device` (`/v2/devices-detailed`), `Cursor` and the query reports (`AntivirusStatusReport`,
`AntivirusThreatsReport`, `ComputerSystemsReport`), `Activity` (webhook payloads),
`WebhookConfiguration` + `HTTPHeader`, `RunScriptRequest`. The token answer is the OAuth2 one
(RFC 6749 §5.1: `access_token`, `token_type`, `expires_in`).

What the adapter SENDS is strict (`extra="forbid"`); what it READS is lenient: every field optional,
unknown fields ignored, ids kept as text.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

from adapters.common import LenientRead, id_text

REGIONS: dict[str, str] = {
    "us": "https://app.ninjarmm.com",
    "eu": "https://eu.ninjarmm.com",
    "oc": "https://oc.ninjarmm.com",
    "ca": "https://ca.ninjarmm.com",
    "us2": "https://us2.ninjarmm.com",
}
"""NinjaOne instance hosts by region; the token host is the API host."""

Region = Literal["us", "eu", "oc", "ca", "us2"]


# ---------------------------------------------------------------------------------------------
# Connection settings
# ---------------------------------------------------------------------------------------------


class NinjaOneCredentials(BaseModel):
    """A NinjaOne API client (Administration → Apps → API) of the "API Services (machine-to-machine)"
    type, with the client-credentials grant and the monitoring, management and control scopes."""

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


class NinjaOneOptions(BaseModel):
    """Per-connection options. `region` picks the instance host (`us` = app.ninjarmm.com); without
    it the connection's base URL is the instance."""

    model_config = ConfigDict(extra="forbid")

    region: Region | None = Field(default=None, description="us, eu, oc, ca or us2")
    scope: str = Field(default="monitoring management control", min_length=1, max_length=200)
    page_size: int = Field(default=1000, ge=1, le=1000)
    billed_product: str | None = Field(
        default=None,
        max_length=200,
        description="The security product the MSP bills (matched case-insensitively within the "
        "antivirus-status productName); a device reporting other products but not this one is "
        "unprotected. Unset: the product that is on, else the first reported.",
    )
    read_serials: bool = Field(default=True, description="Read serial numbers (computer-systems query)")
    outdated_definitions_age_days: int = Field(
        default=30,
        ge=1,
        le=3650,
        description="NinjaOne reports definitions as up to date or out of date, without a date: an "
        "out-of-date product is reported with definitions this many days older than the report",
    )
    webhook_header: str = Field(
        default="X-Connector-Token",
        min_length=1,
        max_length=100,
        pattern=r"^[A-Za-z0-9-]+$",
        description="The custom header NinjaOne sends the connection's webhook secret in",
    )
    scan_script_id: int | None = Field(default=None, ge=1)
    scan_script_parameters: str | None = Field(default=None, max_length=2000)
    definitions_script_id: int | None = Field(default=None, ge=1)
    definitions_script_parameters: str | None = Field(default=None, max_length=2000)
    deploy_script_id: int | None = Field(default=None, ge=1)
    deploy_script_parameters: str | None = Field(default=None, max_length=2000)
    run_as: str = Field(default="system", min_length=1, max_length=100)
    token_refresh_margin_seconds: int = Field(default=120, ge=0, le=1800)
    max_concurrency: int = Field(default=4, ge=1, le=32)


# ---------------------------------------------------------------------------------------------
# What the adapter sends
# ---------------------------------------------------------------------------------------------


class _Write(BaseModel):
    model_config = ConfigDict(extra="forbid")

    def wire(self) -> dict[str, Any]:
        return self.model_dump(exclude_none=True)


class HttpHeaderWrite(_Write):
    name: str
    value: str


class WebhookConfigurationWrite(_Write):
    url: str
    activities: dict[str, list[str]] | None = None
    expand: list[str] | None = None
    headers: list[HttpHeaderWrite] | None = None
    organizationIds: list[int] | None = None


class RunScriptWrite(_Write):
    type: Literal["ACTION", "SCRIPT"]
    id: int | None = None
    uid: str | None = None
    parameters: str | None = None
    runAs: str | None = None


# ---------------------------------------------------------------------------------------------
# What the adapter reads
# ---------------------------------------------------------------------------------------------


class _Read(LenientRead):
    pass


class TokenRead(_Read):
    access_token: str | None = None
    token_type: str | None = None
    expires_in: float | None = None
    scope: str | None = None


class OrganizationRead(_Read):
    id: str | None = None
    name: str | None = None

    _id = field_validator("id", mode="before")(id_text)


class DeviceRead(_Read):
    id: str | None = None
    uid: str | None = None
    organizationId: str | None = None
    locationId: str | None = None
    nodeClass: str | None = None
    offline: bool | None = None
    displayName: str | None = None
    systemName: str | None = None
    dnsName: str | None = None
    netbiosName: str | None = None
    created: float | None = None
    lastContact: float | None = None
    lastUpdate: float | None = None
    macAddresses: list[str] | None = None
    deviceType: str | None = None

    _ids = field_validator("id", "organizationId", "locationId", mode="before")(id_text)


class CursorRead(_Read):
    name: str | None = None
    offset: int | None = None
    count: int | None = None
    expires: float | None = None


class AntivirusStatusRead(_Read):
    deviceId: str | None = None
    productName: str | None = None
    productState: str | None = None
    definitionStatus: str | None = None
    version: str | None = None
    timestamp: float | None = None

    _id = field_validator("deviceId", mode="before")(id_text)


class AntivirusThreatRead(_Read):
    deviceId: str | None = None
    threatId: str | None = None
    name: str | None = None
    status: str | None = None
    productCode: str | None = None
    timestamp: float | None = None

    _ids = field_validator("deviceId", "threatId", mode="before")(id_text)


class ComputerSystemRead(_Read):
    deviceId: str | None = None
    serialNumber: str | None = None
    biosSerialNumber: str | None = None
    manufacturer: str | None = None
    model: str | None = None
    timestamp: float | None = None

    _id = field_validator("deviceId", mode="before")(id_text)


class ActivityDeviceRead(_Read):
    id: str | None = None
    organizationId: str | None = None
    systemName: str | None = None
    displayName: str | None = None

    _ids = field_validator("id", "organizationId", mode="before")(id_text)


class ActivityRead(_Read):
    id: str | None = None
    activityTime: float | None = None
    deviceId: str | None = None
    severity: str | None = None
    seriesUid: str | None = None
    activityType: str | None = None
    statusCode: str | None = None
    status: str | None = None
    sourceName: str | None = None
    subject: str | None = None
    message: str | None = None
    device: ActivityDeviceRead | None = None

    _ids = field_validator("id", "deviceId", mode="before")(id_text)
