"""N-sight RMM connection settings and the records parsed from its Data Extraction API.

Settings are strict (a typo is an error). Parsed records are plain frozen dataclasses filled by
`parsing.py`; every vendor field except the identity ones is optional because the XML omits or
empties elements freely (`<last_boot_time />` in the documented examples).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

from adapters.base import SkippedEndpoint

DEFAULT_SECURITY_CHECK_TYPES = (1026, 1034)
"""Check types counted as Managed Antivirus failures by a public community dashboard
(vendor-notes/rmm.md §3, "unverified"); descriptions are matched as well, see `alerts.py`."""


class NsightCredentials(BaseModel):
    """The Data Extraction API key (Settings → General Settings → API). It travels as the
    `apikey` query parameter, so it must never reach a log line or an error message."""

    model_config = ConfigDict(extra="forbid")

    api_key: SecretStr = Field(min_length=8, description="N-sight Data Extraction API key")

    @field_validator("api_key")
    @classmethod
    def _no_spaces(cls, value: SecretStr) -> SecretStr:
        raw = value.get_secret_value().strip()
        if not raw or any(c.isspace() for c in raw):
            raise ValueError("must be non-empty and contain no whitespace")
        return SecretStr(raw)


class NsightOptions(BaseModel):
    """Per-connection options. The connection's base URL is the regional dashboard server, e.g.
    https://www.am.remote.management or https://wwweurope1.systemmonitor.eu.com."""

    model_config = ConfigDict(extra="forbid")

    security_check_types: list[int] = Field(
        default_factory=lambda: list(DEFAULT_SECURITY_CHECK_TYPES),
        description="check_type ids always treated as antivirus checks (descriptions are matched too)",
    )
    failing_checks_scope: Literal["per_client", "account"] = Field(
        default="per_client",
        description="per_client: one list_failing_checks call per client (recommended by N-able for "
        "large accounts); account: a single call for the whole account",
    )
    managed_antivirus: bool = Field(
        default=True,
        description="read each listed device's Managed Antivirus state (list_mav_scans and "
        "list_mav_threats: two calls per device and sync) so endpoints get a product, scans and threats",
    )
    mav_engine: Literal[1, 2] = Field(
        default=2, description="Managed Antivirus engine the `v` parameter asks for: 1 VIPRE, 2 Bitdefender"
    )
    without_mav: Literal["unprotected", "unknown"] = Field(
        default="unknown",
        description="what a device without Managed Antivirus is: unknown (another antivirus N-sight "
        "does not report may protect it; no ticket) or unprotected (every device should run MAV)",
    )
    max_concurrency: int = Field(default=2, ge=1, le=8)
    malformed_retries: int = Field(
        default=1, ge=0, le=3, description="re-requests of a listing whose XML could not be parsed"
    )


# ---------------------------------------------------------------------------------------------
# Parsed records
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class NsightClient:
    id: str
    name: str
    server_count: int | None = None
    workstation_count: int | None = None


@dataclass(frozen=True)
class NsightSite:
    id: str
    name: str
    client_id: str


DeviceKind = Literal["server", "workstation"]


@dataclass(frozen=True)
class NsightDevice:
    id: str
    name: str
    kind: DeviceKind
    os: str | None = None
    online: bool | None = None
    last_boot_at: datetime | None = None
    last_contact_at: datetime | None = None
    serial_number: str | None = None


@dataclass(frozen=True)
class FailingCheck:
    client_id: str
    site_id: str
    device_id: str
    device_name: str | None
    check_id: str
    check_type: int | None
    description: str
    output: str = ""
    last_run_at: datetime | None = None


@dataclass(frozen=True)
class MavScan:
    """One Managed Antivirus scan (`list_mav_scans`); type and status upper-cased, spaces as `_`."""

    type: str
    status: str
    started_at: datetime | None = None
    ended_at: datetime | None = None


@dataclass(frozen=True)
class MavThreat:
    """The latest occurrence of one threat (`list_mav_threats`); status upper-cased."""

    name: str
    category: str | None
    status: str
    last_event_at: datetime | None = None


@dataclass
class ParseReport:
    """Items skipped while parsing one response, each naming the item and the field; the devices
    among them also as `SkippedEndpoint`s, for the listing page that held them."""

    skipped: list[str] = field(default_factory=list)
    devices: list[SkippedEndpoint] = field(default_factory=list)
