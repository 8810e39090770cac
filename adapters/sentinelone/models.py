"""SentinelOne connection settings and wire models (Management API 2.1).

Field names are those of the 2.1 swagger as its generated client documents them (`Agents…
ViewSchemaMany200Data`, `SitesSiteResponseSchema200Data…`, the threat item of `GET /threats`) and
as the real payloads under ../shared/specs/sentinelone/samples carry them.

What the adapter SENDS (query strings: every call is a GET) is strict (`extra="forbid"`); what it
READS is lenient: every field optional, unknown fields ignored, ids kept as text, and SentinelOne's
string booleans (`"isUpToDate": "True"` in a real agent record) read as booleans.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, SecretStr, field_validator

from adapters.common import LenientRead, id_text

API_PREFIX = "/web/api/v2.1"
MAX_PAGE_SIZE = 1000
"""`limit` is 1–1000 on every list endpoint (NOTES.md "Paging")."""
PSA_KINDS = ("autotask", "connectwise_manage", "halopsa")


# ---------------------------------------------------------------------------------------------
# Connection settings
# ---------------------------------------------------------------------------------------------


class SentinelOneCredentials(BaseModel):
    """An API token of a console user or service user (Settings → Users → Service Users). The token
    inherits that user's scope: Global, Account or Site."""

    model_config = ConfigDict(extra="forbid")

    api_token: SecretStr = Field(min_length=1)

    @field_validator("api_token")
    @classmethod
    def _not_blank(cls, value: SecretStr) -> SecretStr:
        text = value.get_secret_value().strip()
        if not text:
            raise ValueError("must not be blank")
        return SecretStr(text)


class SentinelOneOptions(BaseModel):
    """Per-connection options. The connection's base URL is the console (`https://<tenant>.
    sentinelone.net`); the API lives under `/web/api/v2.1` there."""

    model_config = ConfigDict(extra="forbid")

    page_size: int = Field(default=MAX_PAGE_SIZE, ge=1, le=MAX_PAGE_SIZE)
    site_ids: list[str] = Field(
        default_factory=list,
        max_length=200,
        description="Read only these sites (ids); empty: every site the token can see",
    )
    external_id_psa_kinds: list[str] = Field(
        default_factory=lambda: list(PSA_KINDS),
        max_length=10,
        description="The PSA kinds a site's externalId (the CRM id SentinelOne keeps per site) is "
        "proposed as the company id for; empty: externalId is not a PSA company id",
    )
    include_decommissioned: bool = Field(
        default=False, description="List decommissioned agents too (they protect nothing)"
    )
    max_concurrency: int = Field(default=4, ge=1, le=16)

    @field_validator("site_ids")
    @classmethod
    def _ids(cls, value: list[str]) -> list[str]:
        cleaned = [v.strip() for v in value if v.strip()]
        if any(not v.isdigit() for v in cleaned):
            raise ValueError("site ids are numbers")
        return cleaned


# ---------------------------------------------------------------------------------------------
# What the adapter sends: query strings
# ---------------------------------------------------------------------------------------------


def iso_z(when: datetime) -> str:
    """SentinelOne's timestamp form: UTC, microseconds, `Z` (`2018-02-27T04:49:26.257525Z`)."""
    aware = when if when.tzinfo else when.replace(tzinfo=UTC)
    return aware.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class _Query(BaseModel):
    """Query parameters of one list call; a misspelt filter is an error here, not a filter the
    console ignores. Lists are sent comma-separated, booleans as `true`/`false`."""

    model_config = ConfigDict(extra="forbid")

    limit: int = Field(ge=1, le=MAX_PAGE_SIZE)
    cursor: str | None = None
    skipCount: bool | None = None

    def params(self) -> dict[str, str]:
        out: dict[str, str] = {}
        for name, value in self.model_dump(exclude_none=True).items():
            if isinstance(value, bool):
                out[name] = "true" if value else "false"
            elif isinstance(value, list):
                if value:
                    out[name] = ",".join(str(v) for v in value)
            elif isinstance(value, datetime):
                out[name] = iso_z(value)
            else:
                out[name] = str(value)
        return out


class SitesQuery(_Query):
    siteIds: list[str] | None = None


class AgentsQuery(_Query):
    siteIds: list[str] | None = None
    isDecommissioned: bool | None = None
    updatedAt__gt: datetime | None = None


class ThreatsQuery(_Query):
    siteIds: list[str] | None = None
    resolved: bool | None = None
    updatedAt__gte: datetime | None = None


# ---------------------------------------------------------------------------------------------
# What the adapter reads
# ---------------------------------------------------------------------------------------------


def _loose_bool(value: Any) -> Any:
    """`"True"` / `"False"` (as the console writes `isUpToDate`) → bool; anything else unchanged."""
    if isinstance(value, str):
        folded = value.strip().lower()
        if folded in ("true", "false"):
            return folded == "true"
        if not folded:
            return None
    return value


def _date_or_none(value: Any) -> Any:
    """A timestamp field that holds something else (`"agentDecommissionedAt": true`) reads as None."""
    if value is None or isinstance(value, datetime):
        return value
    if isinstance(value, str):
        return value or None
    return None


LooseBool = Annotated[bool | None, BeforeValidator(_loose_bool)]
Stamp = Annotated[datetime | None, BeforeValidator(_date_or_none)]
Id = Annotated[str | None, BeforeValidator(id_text)]


class _Read(LenientRead):
    pass


class PaginationRead(_Read):
    totalItems: int | None = None
    nextCursor: str | None = None


class NetworkInterfaceRead(_Read):
    id: Id = None
    name: str | None = None
    physical: str | None = None
    inet: list[str] | None = None
    inet6: list[str] | None = None
    gatewayMacAddress: str | None = None


class AgentRead(_Read):
    id: Id = None
    uuid: str | None = None
    computerName: str | None = None
    serialNumber: str | None = None
    modelName: str | None = None
    domain: str | None = None
    osType: str | None = None
    osName: str | None = None
    osRevision: str | None = None
    machineType: str | None = None
    agentVersion: str | None = None
    isActive: LooseBool = None
    isUpToDate: LooseBool = None
    isDecommissioned: LooseBool = None
    isUninstalled: LooseBool = None
    isPendingUninstall: LooseBool = None
    infected: LooseBool = None
    activeThreats: int | None = None
    networkStatus: str | None = None
    operationalState: str | None = None
    mitigationMode: str | None = None
    scanStatus: str | None = None
    scanFinishedAt: Stamp = None
    lastSuccessfulScanDate: Stamp = None
    lastActiveDate: Stamp = None
    registeredAt: Stamp = None
    createdAt: Stamp = None
    updatedAt: Stamp = None
    siteId: Id = None
    siteName: str | None = None
    accountId: Id = None
    accountName: str | None = None
    groupId: Id = None
    groupName: str | None = None
    externalId: str | None = None
    networkInterfaces: list[NetworkInterfaceRead] | None = None


class BundleRead(_Read):
    name: str | None = None
    displayName: str | None = None
    majorVersion: int | None = None
    minorVersion: int | None = None
    totalSurfaces: int | None = None


class LicensesRead(_Read):
    bundles: list[BundleRead] | None = None


class SiteRead(_Read):
    id: Id = None
    name: str | None = None
    accountId: Id = None
    accountName: str | None = None
    state: str | None = None
    siteType: str | None = None
    externalId: Id = None
    activeLicenses: int | None = None
    totalLicenses: int | None = None
    unlimitedLicenses: LooseBool = None
    sku: str | None = None
    licenses: LicensesRead | None = None


class SitesDataRead(_Read):
    sites: list[dict[str, Any]] | None = None


class AgentRealtimeInfoRead(_Read):
    agentId: Id = None
    agentUuid: str | None = None
    agentComputerName: str | None = None
    siteId: Id = None
    siteName: str | None = None
    accountId: Id = None
    agentInfected: LooseBool = None
    agentIsActive: LooseBool = None
    agentNetworkStatus: str | None = None


class ThreatInfoRead(_Read):
    threatId: Id = None
    threatName: str | None = None
    classification: str | None = None
    confidenceLevel: str | None = None
    mitigationStatus: str | None = None
    incidentStatus: str | None = None
    analystVerdict: str | None = None
    createdAt: Stamp = None
    updatedAt: Stamp = None
    identifiedAt: Stamp = None
    sha1: str | None = None
    filePath: str | None = None


class ThreatRead(_Read):
    id: Id = None
    agentRealtimeInfo: AgentRealtimeInfoRead | None = None
    threatInfo: ThreatInfoRead | None = None


class ErrorRead(_Read):
    code: int | None = None
    title: str | None = None
    detail: Any = None
