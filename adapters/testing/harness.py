"""What a vendor's stateful fake offers to the conformance suites, the end-to-end matrix and the demo.

A harness (`RmmHarness`, `PsaHarness`) starts a *world*: a freshly seeded fake of the vendor's API,
plus everything needed to point connector at it and to see what was done there. The world answers
in the core's vocabulary (client and company ids, ticket-rule ids, billing lines) so a test or the
demo never needs to know the vendor's API:

- the connection body (kind, base URL, credentials, options) and the in-process transport reaching
  the fake for every host it answers on (`hosts`);
- the ids seeded (clients and endpoints; companies, board/status/priority/type ids, agreements,
  the billable product);
- state changes (an endpoint into trouble and out of it, endpoints changed after a cursor,
  native alerts, an endpoint the adapter cannot read);
- readers of what an adapter wrote (tickets with their notes and closed flag, configuration records
  as text, billing lines and their quantities);
- fault injection by operation (fail the next call with a status, after applying it, as a timeout;
  429 with `Retry-After`; persistent 429), and a latency for every call (benchmarks).

A harness says whether `connector demo` stands its vendor up (`in_demo`), so the demo, the e2e
matrix and the benchmarks iterate the installed kinds and name no vendor.

Every name a seeded device gets comes from `device_name`, so an RMM world and a PSA world seeded with
the same client names hold the same devices (the e2e matrix relies on it).

An adapter package names its harness in `AdapterSpec.harness` as an import path; `load_harness`
imports it only when asked, so the service never imports a fake.
"""

from __future__ import annotations

import enum
import importlib
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any, Generic, Literal, Protocol, TypeVar, cast, runtime_checkable

import httpx

from adapters.base import (
    ActionKind,
    Adapter,
    AdapterSpec,
    BillingLine,
    ConnectionContext,
    ProblemKind,
    PsaAdapter,
    RmmAdapter,
    Role,
    SecurityAdapter,
    TicketSpec,
    WebhookRequest,
)
from adapters.testing.faults import AsgiFake

CLIENT_NAMES = ("Acme Dental", "Blue Harbor Logistics", "Cedar Law Group")
"""The customers a world is seeded with unless told otherwise (one RMM client / PSA company each)."""

CONFIGURATION_FIELDS = ("Antivirus Status", "Definitions Date", "Last Scan", "Threats")
"""Status fields a PSA world accepts on configuration records unless told otherwise (vendors that
need them declared up front, such as Autotask's user-defined fields, get them at start)."""


def device_name(client_name: str, number: int) -> str:
    """The name of a client's `number`th seeded device: `ACME-00`, `ACME-01`, …"""
    return f"{client_name[:4].upper()}-{number:02d}"


def host_of(url: str) -> str:
    return httpx.URL(url if "://" in url else f"https://{url}").host


# ---------------------------------------------------------------------------------------------
# Operations faults are aimed at
# ---------------------------------------------------------------------------------------------


class RmmOperation(enum.StrEnum):
    LIST_CLIENTS = "list_clients"
    LIST_ENDPOINTS = "list_endpoints"
    """The vendor call that lists devices (per page, or per site where the vendor lists that way)."""


class PsaOperation(enum.StrEnum):
    LIST_COMPANIES = "list_companies"
    CREATE_TICKET = "create_ticket"
    ADD_NOTE = "add_note"
    CREATE_CONFIGURATION = "create_configuration"
    UPDATE_CONFIGURATION = "update_configuration"
    CREATE_BILLING_LINE = "create_billing_line"
    """The write that makes a new billed line (or, where seats are deltas, adjusts them)."""


class SecurityOperation(enum.StrEnum):
    LIST_CUSTOMERS = "list_customers"
    LIST_AGENTS = "list_agents"
    """The vendor call that lists agents (per page, or per customer where the vendor lists that way)."""
    LIST_THREATS = "list_threats"
    LICENCE_USE = "licence_use"


# ---------------------------------------------------------------------------------------------
# Records a world hands out
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ConnectionBody:
    """What `POST /api/v1/connections` takes to reach the world's fake."""

    kind: str
    name: str
    base_url: str
    credentials: Mapping[str, Any]
    options: Mapping[str, Any] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "name": self.name,
            "kind": self.kind,
            "base_url": self.base_url,
            "credentials": dict(self.credentials),
        }
        if self.options:
            body["options"] = dict(self.options)
        return body


@dataclass(frozen=True)
class SeededEndpoint:
    id: str
    client_id: str
    hostname: str


@dataclass(frozen=True)
class SeededAgent:
    """A console agent as seeded: the identity the core matches it to an RMM endpoint by."""

    id: str
    customer_id: str
    hostname: str
    serial_number: str | None = None
    mac_addresses: tuple[str, ...] = ()


def device_serial(hostname: str) -> str:
    """The serial number a seeded device of this name has in every fake that reports serials."""
    return "SN-" + hostname.replace("-", "")


def device_mac(hostname: str) -> str:
    """The MAC address a seeded device of this name has in every fake that reports MACs
    (locally administered, derived from the name so two fakes agree)."""
    digest = sum((i + 1) * ord(ch) for i, ch in enumerate(hostname))
    tail = [(digest >> shift) & 0xFF for shift in (0, 8, 16)]
    head = [0x02, len(hostname) & 0xFF, (ord(hostname[0]) if hostname else 0) & 0xFF]
    return ":".join(f"{octet:02X}" for octet in head + tail)


@dataclass(frozen=True)
class NativeAlert:
    """A webhook delivery in the vendor's own format, and what it says."""

    request: WebhookRequest
    endpoint_id: str
    problem: ProblemKind
    state: Literal["active", "cleared"]


@dataclass(frozen=True)
class TicketIds:
    """Where a seeded PSA takes tickets; field names are those of a ticket rule."""

    board_id: str
    status_new_id: str
    status_closed_id: str
    priority_id: str | None = None
    type_id: str | None = None

    def rule_fields(self) -> dict[str, str]:
        values = {
            "board_id": self.board_id,
            "status_new_id": self.status_new_id,
            "status_closed_id": self.status_closed_id,
            "priority_id": self.priority_id,
            "type_id": self.type_id,
        }
        return {name: value for name, value in values.items() if value is not None}


@dataclass(frozen=True)
class BillingIds:
    """What a seeded PSA bills on; field names are those of a billing rule."""

    agreement_type: str
    product_id: str
    one_line_per_product: bool = False
    """The agreement holds one line per product by construction (nothing marks whose it is)."""

    def rule_fields(self) -> dict[str, str]:
        return {"agreement_type": self.agreement_type, "psa_product_id": self.product_id}


@dataclass(frozen=True)
class TicketSeen:
    id: str
    summary: str
    closed: bool
    notes: tuple[str, ...]
    """Every note, action or resolution text on the ticket, oldest first."""
    description: str = ""
    """The ticket's own text, as created."""


@dataclass(frozen=True)
class BillingLineSeen:
    id: str
    quantity: Decimal


class RecordingSleep:
    """A `ConnectionContext.sleep` that records each wait instead of waiting."""

    def __init__(self) -> None:
        self.calls: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)


# ---------------------------------------------------------------------------------------------
# Worlds and harnesses
# ---------------------------------------------------------------------------------------------


class VendorWorld(Protocol):
    """One seeded fake and the means to point connector at it."""

    @property
    def spec(self) -> AdapterSpec: ...

    @property
    def connection(self) -> ConnectionBody: ...

    @property
    def hosts(self) -> tuple[str, ...]:
        """Every host name the adapter calls for this connection (discovery included)."""
        ...

    @property
    def page_size(self) -> int | None:
        """The page size the connection's options ask for; None = the vendor's default."""
        ...

    def transport(self) -> httpx.AsyncBaseTransport:
        """A fresh in-process transport to the fake, whatever the host."""
        ...

    def wrong_credentials(self) -> dict[str, Any]:
        """Credentials of the right shape that the fake refuses."""
        ...

    def reset_calls(self) -> None: ...

    def clear_faults(self) -> None: ...


@runtime_checkable
class RmmWorld(VendorWorld, Protocol):
    @property
    def clients(self) -> Mapping[str, str]:
        """Seeded client id → name, in seeding order."""
        ...

    @property
    def endpoints(self) -> Mapping[str, SeededEndpoint]:
        """Seeded endpoint id → endpoint, in seeding order."""
        ...

    @property
    def reports_products(self) -> bool:
        """Whether endpoint listings name the security product (billing counts from it)."""
        ...

    @property
    def trouble_kinds(self) -> tuple[ProblemKind, ...]:
        """The problems `put_in_trouble` can cause, the default first."""
        ...

    def adapter(
        self,
        *,
        sleep: Callable[[float], Awaitable[None]] | None = None,
        credentials: Mapping[str, Any] | None = None,
        options: Mapping[str, Any] | None = None,
    ) -> RmmAdapter:
        """The adapter for `connection`, with these credentials/options merged over its own."""
        ...

    def endpoint_page_sizes(self) -> list[int]:
        """The page sizes, in order, a full endpoint listing comes in for this world's fleet."""
        ...

    def cursor(self) -> datetime:
        """A changed-since cursor later than every change seeded so far."""
        ...

    def touch(self, endpoint_ids: Sequence[str]) -> None:
        """These endpoints change after `cursor()` (the agent checks in)."""
        ...

    def put_in_trouble(self, endpoint_id: str, kind: ProblemKind | None = None) -> ProblemKind:
        """The endpoint develops a problem the RMM reports on its next read (listing or alert
        poll) and counts as changed; returns the problem."""
        ...

    def clear_trouble(self, endpoint_id: str) -> None:
        """The endpoint is healthy again and counts as changed."""
        ...

    def break_endpoint(self, endpoint_id: str) -> bool:
        """The endpoint stays listed but without a field the adapter needs to read it, from the next
        listing on; False when the fake cannot serve such a record."""
        ...

    def native_alert(self, endpoint_id: str, *, active: bool) -> NativeAlert | None:
        """A delivery in the vendor's own webhook format; None when the vendor has none."""
        ...

    def raise_polled_alert(self, endpoint_id: str) -> ProblemKind | None:
        """An alert the next `poll_alerts` reports; None when the vendor pushes instead. For a
        vendor whose poll is a snapshot, `clear_trouble` ends it."""
        ...

    @property
    def polls_snapshots(self) -> bool:
        """Whether `poll_alerts` reads every open alert of the clients it names in `complete_for`
        (a poll of alerts since a time, or a vendor that pushes, names none)."""
        ...

    def actions_run(self) -> list[tuple[str, ActionKind]]:
        """The remote actions the fake was asked to run (endpoint id, action). The world's
        connection configures whatever the declared actions need (script ids and the like)."""
        ...

    def calls(self, operation: RmmOperation) -> int: ...

    def fail_next(self, operation: RmmOperation, status: int = 500, *, times: int | None = 1) -> None: ...

    def rate_limit(self, operation: RmmOperation, *, times: int | None = 1, retry_after: float = 1.0) -> None:
        """429 with `Retry-After: retry_after` for the next `times` calls (None = until cleared)."""
        ...


@runtime_checkable
class PsaWorld(VendorWorld, Protocol):
    @property
    def companies(self) -> Mapping[str, str]:
        """Seeded company id → name, in seeding order."""
        ...

    @property
    def ticket_ids(self) -> TicketIds: ...

    @property
    def billing_ids(self) -> BillingIds: ...
    @property
    def configuration_type_id(self) -> str | None:
        """The type a new configuration record is created with (None: the adapter needs none)."""
        ...

    @property
    def configuration_fields(self) -> tuple[str, ...]: ...

    def adapter(
        self,
        *,
        sleep: Callable[[float], Awaitable[None]] | None = None,
        credentials: Mapping[str, Any] | None = None,
        options: Mapping[str, Any] | None = None,
    ) -> PsaAdapter:
        """The adapter for `connection`, with these credentials/options merged over its own."""
        ...

    def agreement_id(self, company_id: str) -> str:
        """The seeded agreement (contract) billing lines of this company go on."""
        ...

    def device_names(self, company_id: str) -> list[str]:
        """The company's seeded configuration records, by name."""
        ...

    def add_companies(self, count: int, *, active: bool = True) -> list[str]: ...

    def tickets(self, company_id: str) -> list[TicketSeen]: ...

    # A technician's work in the PSA's own UI, recorded as the PSA records it (another member or
    # resource than the integration's API identity), for the read-back before a close.
    def human_note(self, ticket_id: str, text: str) -> None: ...

    def human_time_entry(self, ticket_id: str) -> None: ...

    def human_close(self, ticket_id: str) -> None: ...

    def human_reassign(self, ticket_id: str) -> None: ...

    def delete_ticket(self, ticket_id: str) -> None: ...

    def configurations(self, company_id: str, device: str) -> list[str]:
        """Every configuration record of the company with this name, each as the text written on it."""
        ...

    def ticket_configurations(self, ticket_id: str) -> list[str]:
        """The configuration records the ticket is attached to, by the ids `upsert_configuration`
        returns, in the order attached (a record attached twice shows twice)."""
        ...

    def delete_configuration(self, configuration_id: str) -> None:
        """Someone deletes the configuration record in the PSA."""
        ...

    def billing_lines(self, company_id: str) -> list[BillingLineSeen]:
        """The lines of the billed product on the company's agreement."""
        ...

    # Billing edits made in the PSA by someone else, as the PSA records them.
    def human_set_billing_quantity(self, company_id: str, line_id: str, quantity: int) -> None:
        """Another user changes the quantity of a billed line."""
        ...

    def human_billing_line(self, company_id: str, quantity: int) -> str:
        """Another user adds a line of the billed product to the company's agreement; its id.
        (Where a contract holds one line per product, the existing line is set to `quantity`.)"""
        ...

    def calls(self, operation: PsaOperation) -> int: ...

    def fail_next(
        self, operation: PsaOperation, status: int = 500, *, times: int | None = 1, after_apply: bool = False
    ) -> None:
        """The next `times` calls answer `status`; with `after_apply` the write takes effect first."""
        ...

    def time_out_next(self, operation: PsaOperation, *, after_apply: bool = True) -> None:
        """The next call times out on the client side, by default after the vendor applied it."""
        ...

    def rate_limit(
        self, operation: PsaOperation, *, times: int | None = 1, retry_after: float = 1.0
    ) -> None: ...

    def set_latency(self, seconds: float) -> None:
        """Every call to the fake answers after `seconds` (benchmarks)."""
        ...

    def request_count(self, method: str | None = None) -> int:
        """Requests the fake answered since `reset_calls`, of one HTTP method or all."""
        ...


@runtime_checkable
class SecurityWorld(VendorWorld, Protocol):
    """A seeded security console. Agents are named by `device_name` and carry `device_serial` and
    `device_mac` where the vendor reports those, so they match an RMM world seeded with the same
    client names."""

    @property
    def customers(self) -> Mapping[str, str]:
        """Seeded customer id → name, in seeding order."""
        ...

    @property
    def agents(self) -> Mapping[str, SeededAgent]:
        """Current agent id → agent, in seeding order (added agents included, removed ones not)."""
        ...

    @property
    def reports_serials(self) -> bool: ...

    @property
    def reports_macs(self) -> bool: ...

    def adapter(
        self,
        *,
        sleep: Callable[[float], Awaitable[None]] | None = None,
        credentials: Mapping[str, Any] | None = None,
        options: Mapping[str, Any] | None = None,
    ) -> SecurityAdapter: ...

    def agent_page_sizes(self) -> list[int]:
        """The page sizes, in order, a full agent listing comes in for this world."""
        ...

    def cursor(self) -> datetime:
        """A changed-since cursor later than every change seeded so far."""
        ...

    def touch(self, agent_ids: Sequence[str]) -> None:
        """These agents change after `cursor()` (they check in)."""
        ...

    def add_agent(
        self,
        customer_id: str,
        hostname: str,
        *,
        serial_number: str | None = None,
        mac_addresses: Sequence[str] = (),
    ) -> str:
        """A new healthy agent (changed after `cursor()`); its id."""
        ...

    def remove_agent(self, agent_id: str) -> None:
        """The agent is uninstalled / decommissioned: gone from listings."""
        ...

    def set_protection(self, agent_id: str, enabled: bool) -> None:
        """Real-time protection off (or back on), reported on the next listing as changed."""
        ...

    def set_last_seen(self, agent_id: str, at: datetime) -> None:
        """The agent last checked in at `at` (offline), reported as changed."""
        ...

    def raise_threat(self, agent_id: str, name: str = "Trojan.Generic") -> str:
        """An open threat on the agent, listed by the next `list_threats`; the threat id."""
        ...

    def resolve_threat(self, threat_id: str) -> None:
        """The vendor resolves the threat (mitigated and closed)."""
        ...

    def set_licences(self, customer_id: str, used: int, purchased: int | None) -> None:
        """What `licence_use` reports for the customer's (one) product from now on."""
        ...

    @property
    def licence_product(self) -> str:
        """The product name `licence_use` reports seats under."""
        ...

    def native_threat_webhook(self, threat_id: str) -> WebhookRequest | None:
        """A delivery in the vendor's own webhook format about the threat, signed with the
        connection's webhook secret as `webhook_secret` says; None when the vendor has no push."""
        ...

    @property
    def webhook_secret(self) -> str | None:
        """The secret `native_threat_webhook` signs with (None when the vendor has no push)."""
        ...

    def calls(self, operation: SecurityOperation) -> int: ...

    def fail_next(
        self, operation: SecurityOperation, status: int = 500, *, times: int | None = 1
    ) -> None: ...

    def rate_limit(
        self, operation: SecurityOperation, *, times: int | None = 1, retry_after: float = 1.0
    ) -> None:
        """429 with `Retry-After: retry_after` for the next `times` calls (None = until cleared)."""
        ...


@runtime_checkable
class SecurityHarness(Protocol):
    @property
    def spec(self) -> AdapterSpec: ...

    @property
    def in_demo(self) -> bool: ...

    def start(
        self,
        *,
        customers: Sequence[str] = CLIENT_NAMES,
        agents_per_customer: int = 20,
        page_size: int | None = None,
        base_url: str | None = None,
    ) -> SecurityWorld:
        """A fresh console with these customers of healthy, up-to-date agents named by
        `device_name` (numbered from 0), each customer with a product licensed for its agents."""
        ...


@runtime_checkable
class RmmHarness(Protocol):
    @property
    def spec(self) -> AdapterSpec: ...

    @property
    def in_demo(self) -> bool:
        """Whether `connector demo` stands this vendor up (with a share of the demo's clients)."""
        ...

    def start(
        self,
        *,
        clients: Sequence[str] = CLIENT_NAMES,
        endpoints_per_client: int = 20,
        page_size: int | None = None,
        base_url: str | None = None,
    ) -> RmmWorld:
        """A fresh fake with these clients of healthy endpoints (named by `device_name`), reached at
        `base_url` (None = the vendor's usual address)."""
        ...


@runtime_checkable
class PsaHarness(Protocol):
    @property
    def spec(self) -> AdapterSpec: ...

    @property
    def in_demo(self) -> bool:
        """Whether `connector demo` stands this vendor up (the clients it gets become its companies)."""
        ...

    def start(
        self,
        *,
        companies: Sequence[str] = CLIENT_NAMES,
        devices_per_company: int = 20,
        page_size: int | None = None,
        base_url: str | None = None,
        configuration_fields: Sequence[str] = CONFIGURATION_FIELDS,
    ) -> PsaWorld:
        """A fresh fake with these companies, each with an agreement to bill on and configuration
        records named by `device_name`, ticket boards/statuses/priorities and a billable product."""
        ...


def load_harness(spec: AdapterSpec) -> RmmHarness | PsaHarness | SecurityHarness:
    """The harness `spec.harness` names (`"package.module:Name"`, a harness class, a zero-argument
    callable or an instance), imported now and not before."""
    if not spec.harness:
        raise LookupError(f"adapter kind {spec.kind!r} names no harness")
    module_name, _, attribute = spec.harness.partition(":")
    target: object = getattr(importlib.import_module(module_name), attribute)
    harness = target() if callable(target) else target
    if not isinstance(harness, RmmHarness | PsaHarness | SecurityHarness) or harness.spec is not spec:
        raise TypeError(f"{spec.harness} is not a harness for adapter kind {spec.kind!r}")
    return harness


def installed_harnesses(specs: Sequence[AdapterSpec]) -> tuple[list[RmmHarness], list[PsaHarness]]:
    """The harnesses of these specs (e.g. `registry.all()`) that name one, RMMs and PSAs, by kind."""
    rmms: list[RmmHarness] = []
    psas: list[PsaHarness] = []
    for spec in sorted(specs, key=lambda s: s.kind):
        if not spec.harness or spec.role is Role.SECURITY:
            continue
        harness = load_harness(spec)
        # The two protocols have the same member names, so the spec's role tells them apart.
        if spec.role is Role.RMM:
            rmms.append(cast(RmmHarness, harness))
        else:
            psas.append(cast(PsaHarness, harness))
    return rmms, psas


def installed_security_harnesses(specs: Sequence[AdapterSpec]) -> list[SecurityHarness]:
    """The harnesses of the security-console specs among these that name one, by kind."""
    return [
        cast(SecurityHarness, load_harness(spec))
        for spec in sorted(specs, key=lambda s: s.kind)
        if spec.harness and spec.role is Role.SECURITY
    ]


# ---------------------------------------------------------------------------------------------
# Plumbing the vendor harnesses share
# ---------------------------------------------------------------------------------------------


def build_adapter(
    spec: AdapterSpec,
    connection: ConnectionBody,
    transport: Callable[[], httpx.AsyncBaseTransport],
    *,
    sleep: Callable[[float], Awaitable[None]] | None = None,
    credentials: Mapping[str, Any] | None = None,
    options: Mapping[str, Any] | None = None,
    extra: Mapping[str, Any] | None = None,
) -> Adapter:
    """`spec.factory` over the connection, the credentials and options validated by the spec's own
    models (so a harness cannot hand an adapter what the API would refuse)."""
    ctx = ConnectionContext(
        connection_id=f"{spec.kind}-conformance",
        base_url=connection.base_url,
        credentials=spec.credentials_model.model_validate({**connection.credentials, **(credentials or {})}),
        options=spec.options_model.model_validate({**connection.options, **(options or {})}),
        transport_factory=lambda _url: transport(),
        sleep=sleep,
        extra=dict(extra or {}),
    )
    return spec.factory(ctx)


def rmm_adapter(adapter: Adapter) -> RmmAdapter:
    if not isinstance(adapter, RmmAdapter):
        raise TypeError(f"{type(adapter).__name__} does not satisfy RmmAdapter")
    return adapter


def security_adapter(adapter: Adapter) -> SecurityAdapter:
    if not isinstance(adapter, SecurityAdapter):
        raise TypeError(f"{type(adapter).__name__} does not satisfy SecurityAdapter")
    return adapter


def psa_adapter(adapter: Adapter) -> PsaAdapter:
    if not isinstance(adapter, PsaAdapter):
        raise TypeError(f"{type(adapter).__name__} does not satisfy PsaAdapter")
    return adapter


def ticket_spec(world: PsaWorld, marker: str, company_id: str | None = None) -> TicketSpec:
    """The antivirus-off ticket the suites open, routed by the world's ticket ids."""
    ids = world.ticket_ids
    return TicketSpec(
        marker=marker,
        company_id=company_id or next(iter(world.companies)),
        board_id=ids.board_id,
        priority_id=ids.priority_id,
        type_id=ids.type_id,
        status_id=ids.status_new_id,
        summary="WS-001: antivirus protection is off",
        description="Defender reports real-time protection disabled since 09:14.",
    )


def billing_line(world: PsaWorld, quantity: int | str, company_id: str | None = None) -> BillingLine:
    """Seats of the world's billable product at 6.00 (cost 2.50) on the company's agreement."""
    company = company_id or next(iter(world.companies))
    return BillingLine(
        marker=f"bill:{company}:{world.billing_ids.product_id}",
        company_id=company,
        agreement_id=world.agreement_id(company),
        product_id=world.billing_ids.product_id,
        description="Endpoint detection & response, per endpoint",
        quantity=Decimal(quantity),
        unit_price=Decimal("6.00"),
        unit_cost=Decimal("2.50"),
    )


FakeT = TypeVar("FakeT", bound=AsgiFake)


@dataclass
class FakeWorld(Generic[FakeT]):
    """The parts every world over an in-process ASGI fake has the same way."""

    spec: AdapterSpec
    fake: FakeT
    connection: ConnectionBody
    hosts: tuple[str, ...]
    page_size: int | None

    def transport(self) -> httpx.AsyncBaseTransport:
        return httpx.ASGITransport(app=self.fake.app)

    def build(
        self,
        *,
        sleep: Callable[[float], Awaitable[None]] | None,
        credentials: Mapping[str, Any] | None,
        options: Mapping[str, Any] | None,
        extra: Mapping[str, Any] | None = None,
    ) -> Adapter:
        return build_adapter(
            self.spec,
            self.connection,
            self.transport,
            sleep=sleep,
            credentials=credentials,
            options=options,
            extra=extra,
        )
