"""ConnectWise Automate connection settings and wire models.

Shapes follow ConnectWise's Automate OpenAPI documents as generated into public clients:
HealthITAU/pyconnectwise `models/automate/Automate/Api/Domain/Contracts/Security.py` (`TokenCredentials`,
`TokenResult`), `.../Contracts/Alerts.py` (`Alert`), `.../Contracts/BatchScripts.py`
(`ScheduleScriptBatchRequest`/`Response`); asachs01/node-connectwise-automate `src/types/computers.ts`
(`LabTech.Models.Computer`), `src/types/scripts.ts` (batch parameters as `{Key, Value}` pairs,
`OfflineActionFlags`). See vendor-notes/rmm.md §1.

What the adapter SENDS is strict (`extra="forbid"`); what it READS is lenient: every field optional,
unknown fields ignored, ids accepted as numbers or strings (the schema types `Computer.Id` as a string
while nested references carry integers) and kept as strings. Timestamps are read as text and parsed
by the adapter, which knows the server's time zone for offset-less values.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

from adapters.common import LenientRead, id_text

# ---------------------------------------------------------------------------------------------
# Connection settings
# ---------------------------------------------------------------------------------------------


class AutomateCredentials(BaseModel):
    """An Automate user for the API (an integrator user is the usual choice: no 2FA) and the
    integration's registered ClientId, required on every call since Automate 2020.11."""

    model_config = ConfigDict(extra="forbid")

    username: str = Field(min_length=1, max_length=200)
    password: SecretStr = Field(min_length=1)
    client_id: SecretStr = Field(
        min_length=1, description="ClientId from developer.connectwise.com/ClientID (keep private)"
    )
    two_factor_passcode: SecretStr | None = Field(
        default=None,
        description="Sent as TwoFactorPasscode. A one-time code cannot renew tokens: prefer a user "
        "without 2FA (an integrator user).",
    )

    @field_validator("username")
    @classmethod
    def _strip(cls, value: str) -> str:
        value = value.strip()
        if not value:
            raise ValueError("must not be blank")
        return value


class AutomateOptions(BaseModel):
    """Per-connection options. The connection's base URL is the Automate server, e.g.
    https://example.hostedrmm.com (a base URL ending in /cwa/api/v1 is accepted too)."""

    model_config = ConfigDict(extra="forbid")

    page_size: int = Field(
        default=1000, ge=1, le=1000, description="pageSize of list reads; Automate serves at most 1000"
    )
    max_concurrency: int = Field(default=4, ge=1, le=16)
    server_timezone: str = Field(
        default="UTC",
        description="IANA zone of the Automate server: how timestamps without an offset are read, and "
        "how the changed-since cursor is written into `condition`",
    )
    changed_since_fields: list[str] = Field(
        default_factory=lambda: ["RemoteAgentLastContact"],
        min_length=1,
        description="Computer fields compared with the cursor for incremental reads (or-ed together)",
    )
    computer_condition: str | None = Field(
        default=None, description="Extra Automate `condition` and-ed into every computer read"
    )
    alert_condition: str | None = Field(
        default=None,
        description="Extra `condition` and-ed into the alert poll, e.g. Monitor.Name like '%Antivirus%'",
    )
    include_fields: bool = Field(
        default=True, description="Ask only for the computer fields the adapter maps (includeFields)"
    )
    missing_scanner_means_unprotected: bool = Field(
        default=False,
        description="A computer whose VirusScanner is empty or unrecognised reports 'no protection' "
        "(not_protected) instead of unknown; turn on only when every AV product in use is one "
        "Automate detects",
    )
    scan_script_id: int | None = Field(default=None, ge=1, description="Automate script run for 'scan'")
    scan_script_parameters: dict[str, str] = Field(default_factory=dict)
    definitions_script_id: int | None = Field(
        default=None, ge=1, description="Automate script run for 'update_definitions'"
    )
    definitions_script_parameters: dict[str, str] = Field(default_factory=dict)
    skip_offline_agents: bool = Field(
        default=False, description="OfflineActionFlags.SkipsOfflineAgents for script runs"
    )
    token_refresh_margin_seconds: int = Field(
        default=120, ge=0, le=1800, description="Re-authenticate this long before ExpirationDate"
    )

    @field_validator("server_timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r}") from None
        return value

    @field_validator("changed_since_fields")
    @classmethod
    def _fields(cls, value: list[str]) -> list[str]:
        for name in value:
            if not all(part.isidentifier() for part in name.split(".")):
                raise ValueError(f"not a field name: {name!r}")
        return value


# ---------------------------------------------------------------------------------------------
# Read models (lenient)
# ---------------------------------------------------------------------------------------------


class Ref(LenientRead):
    """`{Id, Name}` as Automate nests clients, locations, monitors, scanners in other records."""

    Id: str | None = None
    Name: str | None = None

    _ids = field_validator("Id", mode="before")(id_text)


class TokenResultRead(LenientRead):
    AccessToken: str | None = None
    TokenType: str | None = None
    ExpirationDate: str | None = None
    AbsoluteExpirationDate: str | None = None
    UserId: str | None = None
    IsTwoFactorRequired: bool | None = None
    IsInternalTwoFactorRequired: bool | None = None

    _ids = field_validator("UserId", mode="before")(id_text)


class ClientRead(LenientRead):
    Id: str | None = None
    Name: str | None = None
    Company: str | None = None
    ExternalId: str | None = None

    _ids = field_validator("Id", "ExternalId", mode="before")(id_text)


class LocationRead(LenientRead):
    Id: str | None = None
    Name: str | None = None
    Client: Ref | None = None
    ExternalId: str | None = None

    _ids = field_validator("Id", "ExternalId", mode="before")(id_text)


class ComputerRead(LenientRead):
    Id: str | None = None
    ComputerName: str | None = None
    FriendlyName: str | None = None
    Client: Ref | None = None
    Location: Ref | None = None
    Status: str | None = None
    Type: str | None = None
    OperatingSystemName: str | None = None
    SerialNumber: str | None = None
    RemoteAgentLastContact: str | None = None
    VirusScanner: Ref | None = None
    AntivirusDefinitionDate: str | None = None

    _ids = field_validator("Id", mode="before")(id_text)


class AlertRead(LenientRead):
    AlertId: str | None = None
    Client: Ref | None = None
    Computer: Ref | None = None
    Location: Ref | None = None
    Monitor: Ref | None = None
    AlertDate: str | None = None
    Severity: Ref | None = None
    Source: str | None = None
    Message: str | None = None
    FieldName: str | None = None

    _ids = field_validator("AlertId", mode="before")(id_text)


class ResponseResultRead(LenientRead):
    ResultStatus: int | None = None
    ReasonCode: int | None = None
    Message: str | None = None


class ScriptBatchResultRead(LenientRead):
    EntityId: str | None = None
    ResultDetails: ResponseResultRead | None = None

    _ids = field_validator("EntityId", mode="before")(id_text)


class ScriptBatchResponseRead(LenientRead):
    ScriptResults: list[ScriptBatchResultRead] | None = None
    ContainsUnsuccessfulResults: bool | None = None


# ---------------------------------------------------------------------------------------------
# Write models (strict)
# ---------------------------------------------------------------------------------------------


class _Write(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    def wire(self) -> dict[str, Any]:
        return self.model_dump(mode="json", exclude_none=True)


class TokenCredentialsWrite(_Write):
    Username: str
    """`TokenCredentials.Username` as the document spells it (the server binds names case-insensitively)."""
    Password: str
    TwoFactorPasscode: str | None = None


class KeyValue(_Write):
    Key: str
    Value: str


class OfflineFlags(_Write):
    """`ScheduledScriptOfflineActionFlags`."""

    SkipsOfflineAgents: bool = False
    WakesOfflineAgents: bool = False
    OnlyRunsOnOfflineAgents: bool = False


class ScriptExecuteWrite(_Write):
    """`POST /Batch/ScriptExecute` (`ScheduleScriptBatchRequest`): one call, per-target acceptance."""

    EntityType: Literal["Computer"] = "Computer"
    EntityIds: list[int]
    ScriptId: int
    Parameters: list[KeyValue] | None = None
    OfflineActionFlags: OfflineFlags | None = None
