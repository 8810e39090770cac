"""Response bodies of `/api/v1/endpoints` and `/api/v1/fleet/summary`."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from connector.fleet.stats import HEALTH_CLASSES, ClientCounts, Counts


class ActionOut(BaseModel):
    id: str
    action: str
    problem_id: str | None
    requested_by: str
    status: str
    vendor_reference: str | None
    message: str
    requested_at: datetime
    finished_at: datetime | None


class EndpointOut(BaseModel):
    id: str
    rmm_connection_id: str
    endpoint_id: str
    client_id: str
    client_name: str | None
    hostname: str
    serial_number: str | None
    mac_addresses: list[str] | None = None
    os_name: str | None
    product: str | None
    protection_enabled: bool | None
    definitions_date: datetime | None
    last_scan_at: datetime | None
    active_threats: int | None
    online: bool | None
    last_seen_at: datetime | None
    health: str
    first_seen_at: datetime
    updated_at: datetime
    retired_at: datetime | None


class EndpointProblemOut(BaseModel):
    id: str
    kind: str
    state: str
    source: str
    message: str
    first_seen_at: datetime
    cleared_at: datetime | None
    ticket_id: str | None = None
    ticket_number: str | None = None
    ticket_state: str | None = None


class DeploymentOut(BaseModel):
    """An agent deployment a deploy rule requested; `status` is its action's."""

    id: str
    rule_id: str | None
    action_id: str | None
    status: str | None
    message: str | None
    requested_at: datetime
    interval_minutes: int
    next_allowed_at: datetime = Field(description="no other automatic deployment before this time")


class ConsoleAgentOut(BaseModel):
    """An agent in a security console, with the RMM endpoint it was matched to and by which rule."""

    id: str
    connection_id: str
    agent_id: str
    customer_id: str
    customer_name: str | None
    hostname: str
    serial_number: str | None
    mac_addresses: list[str] | None = None
    os_name: str | None
    device_type: str | None
    product: str | None
    agent_version: str | None
    protection_enabled: bool | None
    definitions_up_to_date: bool | None
    definitions_date: datetime | None
    last_scan_at: datetime | None
    active_threats: int | None
    online: bool | None
    last_seen_at: datetime | None
    isolated: bool | None
    endpoint_id: str | None = Field(
        validation_alias="endpoint_ref", description="the matched endpoint (`/api/v1/endpoints/{id}`)"
    )
    match_rule: str | None = Field(description="serial, mac, hostname or manual")
    match_note: str | None = Field(description="why there is no match although there were candidates")
    first_seen_at: datetime
    updated_at: datetime


class MatchIn(BaseModel):
    """Match a console agent to this endpoint by hand, over the automatic rules."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"endpoint_id": "0f3a…"}]})

    endpoint_id: str = Field(min_length=1, max_length=32)


class EndpointDetail(EndpointOut):
    """Status fields are the effective ones: the security console's where it reports them."""

    problems: list[EndpointProblemOut]
    actions: list[ActionOut]
    deployments: list[DeploymentOut] = Field(default_factory=list)
    sources: dict[str, str] = Field(
        default_factory=dict, description="status field → `rmm` or `console:<console connection name>`"
    )
    console_agent: ConsoleAgentOut | None = Field(default=None, description="the matched console agent")


class HealthCountsOut(BaseModel):
    """Current (not retired) endpoints per health class."""

    protected: int
    at_risk: int
    unprotected: int
    offline: int
    unknown: int
    total: int

    @classmethod
    def of(cls, counts: Counts) -> HealthCountsOut:
        return cls(**{h: getattr(counts, h) for h in HEALTH_CLASSES}, total=counts.total)


class ClientHealthOut(BaseModel):
    rmm_connection_id: str
    client_id: str
    client_name: str | None
    psa_company: str | None = Field(description="the PSA company it is mapped to (name, else id)")
    protected: int
    at_risk: int
    unprotected: int
    offline: int
    unknown: int
    total: int

    @classmethod
    def of_client(cls, client: ClientCounts) -> ClientHealthOut:
        return cls(
            rmm_connection_id=client.rmm_connection_id,
            client_id=client.client_id,
            client_name=client.client_name,
            psa_company=client.mapped_company,
            **HealthCountsOut.of(client.counts).model_dump(),
        )


class TrendPointOut(BaseModel):
    day: str
    protected: int
    total: int = Field(description="endpoints with a known status that day")


class FleetSummaryOut(BaseModel):
    overall: HealthCountsOut
    clients: list[ClientHealthOut]
    trend: list[TrendPointOut]


class CompanyCoverageOut(BaseModel):
    """How far the security consoles cover one PSA company's RMM endpoints."""

    company_id: str
    company_name: str
    consoles: list[str]
    endpoints: int = Field(description="current RMM endpoints of the company's clients")
    with_agent: int = Field(description="of them, matched to a console agent")
    without_agent: int = Field(description="of them, with no console agent (not protected)")
    agents: int
    unmanaged_agents: int = Field(description="console agents no RMM endpoint matches")
    seats: int | None = Field(description="seats the consoles count for the company (latest day)")
    covered_share: float
