"""Huntress settings and payload models: the connection's credentials and options, the REST API's
records (Swagger 2.0 `definitions`: `Organization`, `OrganizationWithActualProductUsages`, `Agent`,
`IncidentReport`, `Pagination`) and the webhook payload (`IncidentReportPayload` of the webhooks
document). Reads ignore fields they do not use; the adapter writes nothing to Huntress."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

from adapters.common import LenientRead, id_text

API_BASE = "https://api.huntress.io"
"""The one API host (`host: api.huntress.io`, `schemes: [https]`); paths start with `/v1`."""
MAX_PAGE_SIZE = 500
"""`limit`: "Defaults to 10, with a minimum of 1 and maximum 500" on every list operation."""
REQUESTS_PER_MINUTE = 60
""""Every Huntress API account is rate limited to 60 requests per minute, on a sliding window.\""""


class HuntressCredentials(BaseModel):
    """The API key pair generated under `<account>.huntress.io/account/api_credentials`."""

    model_config = ConfigDict(extra="forbid")

    api_key: str = Field(min_length=1, max_length=200, description="API Key (the public half)")
    api_secret: SecretStr = Field(min_length=1, max_length=500, description="API Secret Key")


class HuntressOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    page_size: int = Field(default=MAX_PAGE_SIZE, ge=1, le=MAX_PAGE_SIZE)
    requests_per_minute: int = Field(
        default=REQUESTS_PER_MINUTE,
        ge=1,
        le=REQUESTS_PER_MINUTE,
        description="Requests this connection sends in any 60 s window (the account's limit is 60; "
        "lower it when other tools use the same API key)",
    )
    licence_counts: Literal["billable", "agents"] = Field(
        default="billable",
        description="billable: each organization's actual_usages (GET /v1/organizations/{id}, one call "
        "per organization); agents: agents_count of the organization listing (no extra calls)",
    )
    offline_after_minutes: int = Field(
        default=60,
        ge=5,
        le=7 * 24 * 60,
        description="An agent whose last callback is older than this is reported offline",
    )
    max_concurrency: int = Field(default=2, ge=1, le=8)


# ---------------------------------------------------------------------------------------------
# What the adapter reads
# ---------------------------------------------------------------------------------------------


class _Read(LenientRead):
    pass


class PaginationRead(_Read):
    next_page_token: str | None = None
    next_page_url: str | None = None


class OrganizationRead(_Read):
    id: str | None = None
    name: str | None = None
    key: str | None = None
    account_id: str | None = None
    agents_count: int | None = None
    billable_identity_count: int | None = None
    sat_learner_count: int | None = None
    logs_sources_count: int | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None

    _ids = field_validator("id", "account_id", mode="before")(id_text)


class EdrUsageRead(_Read):
    billable_agents_count: int | None = None
    unresponsive_agents_count: int | None = None
    outdated_agents_count: int | None = None
    isolated_agents_count: int | None = None


class IdentityUsageRead(_Read):
    type: str | None = None
    identity_provider_tenant_id: str | None = None
    billable_identities_count: int | None = None
    total_identities_count: int | None = None


class SiemUsageRead(_Read):
    billable_log_sources_count: int | None = None
    retention: str | None = None


class SatUsageRead(_Read):
    learners_count: int | None = None


class ActualUsagesRead(_Read):
    edr: EdrUsageRead | None = None
    itdr: list[IdentityUsageRead] | None = None
    ispm: list[IdentityUsageRead] | None = None
    sat: SatUsageRead | None = None
    siem: SiemUsageRead | None = None


class OrganizationUsageRead(OrganizationRead):
    """`OrganizationWithActualProductUsages` (GET /v1/organizations/{id}). The document types
    `actual_usages` as a string, but its example (and the API) give an object by product."""

    actual_usages: ActualUsagesRead | None = None


class AgentRead(_Read):
    id: str | None = None
    organization_id: str | None = None
    account_id: str | None = None
    hostname: str | None = None
    serial_number: str | None = None
    mac_addresses: list[str] | None = None
    os: str | None = None
    platform: str | None = None
    version: str | None = None
    edr_version: str | None = None
    defender_status: str | None = None
    defender_substatus: str | None = None
    defender_policy_status: str | None = None
    firewall_status: str | None = None
    tamper_protection_configured: bool | None = None
    tamper_protection_actual: bool | None = None
    tags: list[str] | None = None
    last_callback_at: datetime | None = None
    last_survey_at: datetime | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None

    _ids = field_validator("id", "organization_id", "account_id", mode="before")(id_text)


class IncidentReportRead(_Read):
    id: str | None = None
    account_id: str | None = None
    organization_id: str | None = None
    agent_id: str | None = None
    subject: str | None = None
    summary: str | None = None
    status: str | None = None
    severity: str | None = None
    platform: str | None = None
    indicator_types: list[str] | None = None
    indicator_counts: dict[str, Any] | None = None
    sent_at: datetime | None = None
    closed_at: datetime | None = None
    status_updated_at: datetime | None = None
    updated_at: datetime | None = None

    _ids = field_validator("id", "account_id", "organization_id", "agent_id", mode="before")(id_text)


class NamedRefRead(_Read):
    id: str | None = None
    name: str | None = None

    _id = field_validator("id", mode="before")(id_text)


class IncidentReportEventRead(IncidentReportRead):
    """A webhook `IncidentReportPayload` (`incident_report.created|closed|comment_added`): the
    incident report with `event_type`, `organization{id, name}`, `account{id, name}` and
    `created_at`; `organization_id` / `account_id` are deprecated there but still sent."""

    event_type: str | None = None
    organization: NamedRefRead | None = None
    account: NamedRefRead | None = None
    created_at: datetime | None = None
    api_url: str | None = None
    comment: str | None = None


__all__ = [
    "API_BASE",
    "MAX_PAGE_SIZE",
    "REQUESTS_PER_MINUTE",
    "ActualUsagesRead",
    "AgentRead",
    "HuntressCredentials",
    "HuntressOptions",
    "IncidentReportEventRead",
    "IncidentReportRead",
    "OrganizationRead",
    "OrganizationUsageRead",
    "PaginationRead",
]
