"""Protocols for RMM and PSA adapters and the normalized records they exchange.

The service core only ever talks to vendors through these types, so every adapter maps its vendor's
shapes onto them and nothing vendor-specific leaks into the core. Records read from vendors are
lenient (extra fields ignored); records the core hands to adapters for writing are strict.
"""

from __future__ import annotations

import enum
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any, Literal, Protocol, runtime_checkable

import httpx
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from adapters.budgets import RequestBudget


class Role(enum.StrEnum):
    RMM = "rmm"
    PSA = "psa"
    SECURITY = "security"
    """A security vendor's console (EDR/AV management): agents, threats and licence use."""


class ProblemKind(enum.StrEnum):
    """Conditions on an endpoint that need a technician."""

    NOT_PROTECTED = "not_protected"
    PROTECTION_DISABLED = "protection_disabled"
    DEFINITIONS_OUTDATED = "definitions_outdated"
    THREAT_DETECTED = "threat_detected"
    SCAN_OVERDUE = "scan_overdue"
    AGENT_OFFLINE = "agent_offline"
    UNMANAGED_AGENT = "unmanaged_agent"
    """A security console's agent that no RMM endpoint of the mapped client matches."""


class ActionKind(enum.StrEnum):
    SCAN = "scan"
    UPDATE_DEFINITIONS = "update_definitions"
    DEPLOY_AGENT = "deploy_agent"


class _Record(BaseModel):
    """A value read from a vendor: unknown fields are ignored, the record is immutable."""

    model_config = ConfigDict(frozen=True, extra="ignore")


class _Command(BaseModel):
    """A value the core asks an adapter to write: strict, so a typo is an error, not a no-op."""

    model_config = ConfigDict(frozen=True, extra="forbid")


# ---------------------------------------------------------------------------------------------
# Records read from RMMs
# ---------------------------------------------------------------------------------------------


def _macs_or_none(value: Any) -> Any:
    if value is None or isinstance(value, str):
        return None if value is None else normal_macs([value])
    return normal_macs(value)


MacAddresses = Annotated[tuple[str, ...] | None, BeforeValidator(_macs_or_none)]
"""A device's MAC addresses as `normal_macs` writes them, from one address or any sequence."""


class RmmClient(_Record):
    id: str
    name: str
    psa_company_ids: Mapping[str, str] = Field(default_factory=dict)
    """Companies the RMM itself links this client to, by PSA kind (`{"autotask": "29684"}`): the
    core proposes these mappings ahead of name matches."""


class EndpointStatus(_Record):
    """One endpoint's security status as observed in an RMM, normalized across vendors.

    `None` means "the RMM does not report this", which is different from "off" or "zero".
    """

    endpoint_id: str
    client_id: str
    client_name: str | None = None
    site_id: str | None = None
    hostname: str
    serial_number: str | None = None
    mac_addresses: MacAddresses = None
    """The endpoint's network adapters' MAC addresses as `AA:BB:CC:DD:EE:FF`, sorted, for matching
    the same device across sources; anything not a 48-bit address is dropped."""
    os_name: str | None = None
    device_type: str | None = None
    product: str | None = None
    protection_enabled: bool | None = None
    definitions_date: datetime | None = None
    last_scan_at: datetime | None = None
    active_threats: int | None = None
    online: bool | None = None
    last_seen_at: datetime | None = None


def normal_macs(values: Any) -> tuple[str, ...]:
    """`aa-bb-cc-dd-ee-ff`, `AABB.CCDD.EEFF` and `aabbccddeeff` alike as `AA:BB:CC:DD:EE:FF`, unique
    and sorted; the all-zero address and anything not 12 hex digits are dropped."""
    found = set()
    for value in values:
        digits = "".join(ch for ch in str(value) if ch not in ":-. ").upper()
        if len(digits) == 12 and all(ch in "0123456789ABCDEF" for ch in digits) and digits != "0" * 12:
            found.add(":".join(digits[i : i + 2] for i in range(0, 12, 2)))
    return tuple(sorted(found))


class AlertEvent(_Record):
    """A problem becoming active or clearing on an endpoint, as reported by an RMM alert."""

    event_id: str
    client_id: str
    endpoint_id: str
    hostname: str | None = None
    problem: ProblemKind
    state: Literal["active", "cleared"]
    message: str = ""
    occurred_at: datetime
    vendor_alert_id: str | None = None
    """The RMM's own id of the alert, where the RMM can resolve it by that id (`ClearsAlerts`)."""


class SkippedEndpoint(_Record):
    """An endpoint an RMM listed but the adapter could not read (fully) into an `EndpointStatus`: a
    field missing or malformed. It travels on the page that listed it (`EndpointPage.skipped`); the
    sync reports it by name and field and does not retire it (unreadable is not deleted)."""

    endpoint_id: str
    field: str
    message: str


@dataclass(frozen=True)
class EndpointPage:
    """One vendor page of an endpoint listing: the statuses read, and the endpoints on that page the
    adapter could not read. An endpoint whose identity was read but part of whose status was not may
    be in both (its status then holds None for what could not be read)."""

    statuses: list[EndpointStatus]
    skipped: list[SkippedEndpoint] = field(default_factory=list)


@dataclass(frozen=True)
class PolledAlerts:
    """What one `poll_alerts` call read.

    `complete_for` names the clients this poll was a complete snapshot of: every alert currently
    open on them is among `events`. The core clears the open polled problems of those clients that
    are absent, so the adapter needs no memory of earlier polls. Empty for an RMM whose poll is not
    a snapshot (a feed of alerts since a time) and for clients whose alerts could not be read."""

    events: list[AlertEvent]
    complete_for: frozenset[str] = frozenset()


class ActionResult(_Record):
    accepted: bool
    vendor_reference: str | None = None
    message: str = ""


# ---------------------------------------------------------------------------------------------
# Records read from security consoles
# ---------------------------------------------------------------------------------------------


class SecurityCustomer(_Record):
    """One customer of the MSP in a security console: a KSC virtual server, a SentinelOne site, a
    Huntress organization, a Sophos tenant. Mapped to PSA companies like an RMM client."""

    id: str
    name: str
    psa_company_ids: Mapping[str, str] = Field(default_factory=dict)
    """Companies the console itself links this customer to, by PSA kind, where a vendor field
    carries the PSA company id (SentinelOne's site `externalId` and the like)."""


class AgentStatus(_Record):
    """One console agent's protection as the security vendor reports it, normalized across vendors.

    `None` means "the console does not report this". Identity fields (`serial_number`,
    `mac_addresses`, `hostname`) are what the agent is matched to its RMM endpoint by."""

    agent_id: str
    customer_id: str
    customer_name: str | None = None
    hostname: str
    serial_number: str | None = None
    mac_addresses: MacAddresses = None
    """As `EndpointStatus.mac_addresses`: `AA:BB:CC:DD:EE:FF`, sorted, anything else dropped."""
    os_name: str | None = None
    device_type: str | None = None
    product: str | None = None
    agent_version: str | None = None
    protection_enabled: bool | None = None
    definitions_up_to_date: bool | None = None
    definitions_date: datetime | None = None
    last_scan_at: datetime | None = None
    active_threats: int | None = None
    online: bool | None = None
    last_seen_at: datetime | None = None
    isolated: bool | None = None
    """Network isolation (containment) by the console, where the vendor has it."""


@dataclass(frozen=True)
class AgentPage:
    """One vendor page of an agent listing, with the agents on it that could not be read
    (`SkippedEndpoint.endpoint_id` holds the agent id)."""

    agents: list[AgentStatus]
    skipped: list[SkippedEndpoint] = field(default_factory=list)


class ConsoleThreat(_Record):
    """A threat (detection, incident) in a security console, in the vendor's own terms."""

    threat_id: str
    customer_id: str
    agent_id: str | None = None
    hostname: str | None = None
    name: str
    classification: str | None = None
    """The vendor's classification (`Malware`, `Ransomware`, `PUA`, …) as it spells it."""
    severity: str | None = None
    mitigation_state: str | None = None
    """The vendor's mitigation / incident state (`mitigated`, `not_mitigated`, `sent`, …)."""
    resolved: bool = False
    detected_at: datetime
    updated_at: datetime | None = None


@dataclass(frozen=True)
class ThreatSnapshot:
    """What one `list_threats` call read: the open threats (and those resolved since `since`).

    `complete_for` names the customers whose every open threat is among `threats`: the core
    closes the open threat problems of those customers that are absent or resolved."""

    threats: list[ConsoleThreat]
    complete_for: frozenset[str] = frozenset()


class LicenceUse(_Record):
    """Seats of one product (SKU) a customer uses, as the vendor counts them for its invoice."""

    customer_id: str
    product: str
    sku: str | None = None
    seats_used: int
    seats_purchased: int | None = None
    """None: unlimited, or the vendor does not say."""


# ---------------------------------------------------------------------------------------------
# Records read from PSAs
# ---------------------------------------------------------------------------------------------


class PsaCompany(_Record):
    id: str
    name: str
    identifier: str | None = None


class PsaAgreement(_Record):
    id: str
    company_id: str
    name: str
    type_name: str | None = None
    type_id: str | None = None
    active: bool = True


class PsaOption(_Record):
    """A pick-list value (board, status, priority, type, queue) with its parent where it has one."""

    id: str
    name: str
    parent_id: str | None = None
    closed: bool = False


class CatalogKind(enum.StrEnum):
    """The PSA look-ups an engineer picks ids from when writing rules and mappings."""

    BOARDS = "boards"
    """Where tickets are opened: Manage service boards, Autotask queues, Halo teams."""
    STATUSES = "statuses"
    """Ticket statuses (`parent_id`: the board, where statuses are per board)."""
    PRIORITIES = "priorities"
    TICKET_TYPES = "ticket-types"
    """Ticket types (`parent_id`: the board, where types are per board)."""
    AGREEMENT_TYPES = "agreement-types"
    """What a billing rule's `agreement_type` names (matched by name, case-insensitively)."""
    PRODUCTS = "products"
    """What a billing rule's `psa_product_id` names."""
    COMPANIES = "companies"


class TicketRef(_Record):
    id: str
    number: str | None = None
    url: str | None = None
    closed: bool = False


class TicketActivity(_Record):
    """Work on a ticket done by someone other than the integration's own API identity."""

    kind: Literal["note", "time_entry", "status", "assignment", "edit"]
    by: str | None = None
    at: datetime | None = None


class TicketReadback(_Record):
    """A ticket as the PSA has it now, for deciding whether the connector may still close it."""

    id: str
    closed: bool
    closed_by_human: bool = False
    merged_into: str | None = None
    """The ticket it was merged into (the PSA keeps the merged one closed, pointing there)."""
    human_activity: list[TicketActivity] = []

    @property
    def touched(self) -> bool:
        return bool(self.human_activity) or self.closed_by_human


class BillingLineResult(_Record):
    action: Literal["created", "updated", "unchanged"]
    line_id: str
    previous_quantity: Decimal | None = None


class BillingLineRead(_Record):
    """A billed line as the PSA holds it now, read back before and after connector writes it."""

    line_id: str
    quantity: Decimal
    unit_price: Decimal | None = None
    marked: bool | None = None
    """Whether the line carries connector's marker: False for a line of the product someone else
    made; None where the PSA keeps one line per product by construction (nothing to mark)."""


# ---------------------------------------------------------------------------------------------
# Commands the core sends to PSAs
# ---------------------------------------------------------------------------------------------


class TicketSpec(_Command):
    """A ticket to open. `marker` is stable per problem so the ticket can be found after a crash."""

    marker: str
    company_id: str
    board_id: str
    summary: str
    description: str
    priority_id: str | None = None
    type_id: str | None = None
    status_id: str | None = None
    configuration_id: str | None = None
    """The PSA configuration record (configuration, configuration item, asset) of the problem's
    endpoint, as `upsert_configuration` returned it: the adapter attaches the ticket to it where
    the PSA can. A record the PSA refuses (deleted since) is left off; the ticket is still made."""


class ConfigurationUpdate(_Command):
    """Security status to write onto the PSA's configuration record for an endpoint."""

    company_id: str
    device_name: str
    serial_number: str | None = None
    create_if_missing: bool = False
    type_id: str | None = None
    fields: Mapping[str, str] = Field(default_factory=dict)


class BillingLine(_Command):
    """Desired state of one billed product line on a company's agreement for a period."""

    marker: str
    company_id: str
    agreement_id: str
    product_id: str
    description: str
    quantity: Decimal
    unit_price: Decimal
    unit_cost: Decimal
    line_id: str | None = None
    """The PSA line connector created or was linked to, when known: it is the one written, before any
    line found by product."""


# ---------------------------------------------------------------------------------------------
# Protocols
# ---------------------------------------------------------------------------------------------


class WebhookRequest(_Record):
    """What an adapter sees of a received webhook: raw body (signatures are over bytes), headers
    (lower-cased names) and query parameters."""

    body: bytes
    headers: Mapping[str, str]
    query: Mapping[str, str] = Field(default_factory=dict)
    received_at: datetime


@runtime_checkable
class Adapter(Protocol):
    """Lifetime: the core builds one adapter object per connection and reuses it (across jobs and
    requests, concurrently) until the connection changes; a restart, or any change to the
    connection, builds a fresh one. An adapter may cache what makes calls cheaper (a token, a
    discovered API address), but it keeps nothing the core needs across a rebuild: what a poll or a
    listing means is said in what it returns, never in what an earlier call left behind."""

    async def test_connection(self) -> None:
        """Make one cheap authenticated call; raise an AdapterError describing what is wrong."""

    async def aclose(self) -> None: ...


@runtime_checkable
class RmmAdapter(Adapter, Protocol):
    def list_clients(self) -> AsyncIterator[RmmClient]: ...

    def iter_endpoint_pages(self, changed_since: datetime | None) -> AsyncIterator[EndpointPage]:
        """Endpoints changed since the cursor (all when None), a vendor page at a time, each page
        with the endpoints on it that could not be read."""
        ...

    def verify_webhook(self, request: WebhookRequest, secret: str) -> bool | None:
        """True/False for the vendor's own signature scheme; None when the vendor has none, so the
        core applies its generic HMAC-header / token check."""
        ...

    def parse_webhook(self, request: WebhookRequest) -> list[AlertEvent]:
        """Vendor-native alert body → events. Raise WebhookParseError naming what is wrong."""
        ...

    async def poll_alerts(self, since: datetime | None) -> PolledAlerts:
        """Alerts for vendors without push (`since` is the sync's cursor; a snapshot may ignore
        it), and the clients the poll was complete for; nothing for vendors that push."""
        ...

    async def run_action(self, endpoint_id: str, action: ActionKind) -> ActionResult:
        """Ask the RMM to run one of the actions `AdapterSpec.actions` declares; any other action
        (and one the connection's options leave unconfigured) raises UnsupportedActionError."""
        ...


@runtime_checkable
class PsaAdapter(Adapter, Protocol):
    def list_companies(self) -> AsyncIterator[PsaCompany]: ...

    async def list_agreements(self, company_id: str) -> list[PsaAgreement]: ...

    async def list_ticket_options(self) -> dict[str, list[PsaOption]]:
        """Boards/queues, statuses, priorities and types, keyed by those names."""
        ...

    async def list_catalog(self, kind: CatalogKind) -> list[PsaOption]:
        """Every current value of one look-up, with `id` as rules and mappings store it."""
        ...

    async def find_ticket(self, marker: str, company_id: str) -> TicketRef | None: ...

    async def create_ticket(self, spec: TicketSpec) -> TicketRef: ...

    async def add_note(self, ticket_id: str, text: str) -> None: ...

    async def close_ticket(self, ticket_id: str, status_id: str | None, resolution: str) -> None: ...

    async def read_ticket(self, ticket_id: str) -> TicketReadback | None:
        """The ticket read back before the connector closes or notes it: whether it is closed (and
        by a person), merged into another, and every note, time entry, status change or
        reassignment made by anyone but the integration's API identity. None when it is gone."""
        ...

    async def upsert_configuration(self, update: ConfigurationUpdate) -> str | None:
        """Write status onto the configuration record; its id, or None when missing and not created."""
        ...

    async def read_billing_line(self, line: BillingLine) -> BillingLineRead | None:
        """The line as the PSA holds it (found like `upsert_billing_line` finds it: by `line_id`,
        the marker, then the product); None when the agreement has no such line. Writes nothing."""
        ...

    async def upsert_billing_line(self, line: BillingLine) -> BillingLineResult: ...


@runtime_checkable
class SecurityAdapter(Adapter, Protocol):
    """A security vendor's console: the third kind of source, beside the RMM, of protection status,
    and the only one of threats as the vendor classifies them and of licence use."""

    def list_customers(self) -> AsyncIterator[SecurityCustomer]: ...

    def iter_agent_pages(self, changed_since: datetime | None) -> AsyncIterator[AgentPage]:
        """Agents changed since the cursor (all when None; a vendor that cannot filter lists all),
        a vendor page at a time."""
        ...

    async def list_threats(self, since: datetime | None) -> ThreatSnapshot:
        """Every open threat, plus those resolved since `since`, and the customers read completely."""
        ...

    async def licence_use(self) -> list[LicenceUse]:
        """Seats in use (and purchased) per customer and product, as the vendor bills them now."""
        ...

    def verify_webhook(self, request: WebhookRequest, secret: str) -> bool | None:
        """As `RmmAdapter.verify_webhook`."""
        ...

    def parse_webhook(self, request: WebhookRequest) -> list[AlertEvent]:
        """Vendor-native push → events whose `endpoint_id` is the agent id and `client_id` the
        customer id; raise WebhookParseError for a body it cannot read (or when it has no push)."""
        ...


TICKET_RULE_FIELDS = frozenset({"board_id", "type_id", "priority_id", "status_new_id"})
"""The fields of a ticket rule that route a new ticket (`TicketSpec` board, type, priority, status)."""


@runtime_checkable
class RequiresTicketFields(Protocol):
    """A PSA whose tenants decide which ticket fields are required. The core asks when a ticket
    rule is saved, so a rule that leaves one unset is refused then, naming the field, rather than
    every ticket failing later."""

    async def required_ticket_fields(self) -> frozenset[str]:
        """The `TICKET_RULE_FIELDS` every new ticket must carry that the adapter cannot fill from
        its own options."""
        ...


@runtime_checkable
class RegistersWebhook(Protocol):
    """An RMM whose API registers the webhook it posts alerts to (NinjaOne's `PUT /v2/webhook`).
    The core calls it from a connection action with the connection's webhook URL and secret, so
    the engineer need not paste them into the vendor's settings."""

    async def register_webhook(self, url: str, secret: str) -> None:
        """Point the vendor's webhook at `url`, authenticated with `secret`; replaces an earlier one."""
        ...


@runtime_checkable
class ClearsAlerts(Protocol):
    """An RMM whose API can resolve or acknowledge the alert behind a problem. When a ticket rule
    says so, the core calls it once a technician closes the problem's ticket, with the vendor's
    alert id the problem kept from its latest active event (`AlertEvent.vendor_alert_id`). Datto
    RMM implements it (`POST /api/v2/alert/{alertUid}/resolve`). NinjaOne's API can reset an alert
    (`/v2/alert/{uid}/reset`), but its webhook names the condition's series, not that uid, so it
    does not claim to."""

    async def clear_alert(self, endpoint_id: str, problem: ProblemKind, alert_id: str | None) -> bool:
        """Resolve the alert; False when there is nothing this RMM can resolve (no alert id)."""
        ...


# ---------------------------------------------------------------------------------------------
# Adapter declaration
# ---------------------------------------------------------------------------------------------


class NoOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")


OUTBOUND = "x-connector-outbound"
OUTBOUND_URL: dict[str, Any] = {OUTBOUND: "url", "format": "uri"}
"""`Field(json_schema_extra=OUTBOUND_URL)` on a credentials or options field holding a URL the
adapter connects to (or links to): the core holds it to the same outbound address policy as the
connection's base URL, and stores the normalized URL."""
OUTBOUND_HOST: dict[str, Any] = {OUTBOUND: "host"}
"""The same for a field holding a bare host name that replaces the base URL's host."""


def outbound_fields(model: type[BaseModel]) -> dict[str, str]:
    """The fields of a settings model marked `OUTBOUND_URL` or `OUTBOUND_HOST`: name → "url"/"host"."""
    found: dict[str, str] = {}
    for name, info in model.model_fields.items():
        extra = info.json_schema_extra
        if isinstance(extra, dict) and extra.get(OUTBOUND) in ("url", "host"):
            found[name] = str(extra[OUTBOUND])
    return found


TransportFactory = Callable[[str], httpx.AsyncBaseTransport | None]
"""Given a base URL, the transport to use (None = the default network transport). The core uses it
to apply its outbound address policy; tests use it to route to the stateful fakes."""


@dataclass(frozen=True)
class ConnectionContext:
    """Everything an adapter is constructed from (see `Adapter` for how long the object lives)."""

    connection_id: str
    base_url: str
    credentials: BaseModel
    options: BaseModel
    transport_factory: TransportFactory = field(default=lambda _url: None)
    sleep: Callable[[float], Awaitable[None]] | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)
    budget: RequestBudget | None = None
    """The connection's request budget, shared by every process of the deployment; an adapter hands
    it to the clients that carry its `max_concurrency`. None: each client limits this process alone."""


@dataclass(frozen=True)
class AdapterSpec:
    """What an adapter package exports under the `connector.adapters` entry-point group."""

    kind: str
    role: Role
    title: str
    credentials_model: type[BaseModel]
    factory: Callable[[ConnectionContext], Adapter]
    options_model: type[BaseModel] = NoOptions
    webhook_scheme: str = "generic"
    """How deliveries are authenticated: 'generic' = X-Connector-Signature HMAC or token."""
    default_base_url: str | None = None
    actions: frozenset[ActionKind] = frozenset()
    """The remote actions this RMM kind can run (`run_action`), declared so the core can refuse
    any other before queuing it and show them without building an adapter."""
    refusals: Mapping[ActionKind, str] = field(default_factory=dict)
    """Why the RMM's API cannot run an action it does not declare: named in the refusal."""
    endpoint_url: Callable[[str, BaseModel, str], str | None] | None = None
    """For an RMM: the endpoint's page in the vendor's console, from the connection's base URL,
    its options (an `options_model`) and the RMM's endpoint id, for a ticket's body to link to.
    Pure (no call to the vendor). None: the console's address pattern is not known, and the ticket
    names the endpoint without a link."""
    harness: str | None = None
    """Import path of the test harness over this kind's fake (`"package.module:Class"`), loaded only
    by `adapters.testing.harness.load_harness`; None = the package ships no fake."""

    def credentials_schema(self) -> dict[str, Any]:
        return self.credentials_model.model_json_schema()

    def options_schema(self) -> dict[str, Any]:
        return self.options_model.model_json_schema()
