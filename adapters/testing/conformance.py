"""Conformance suites every RMM, PSA and security adapter inherits in one line, run against its harness.

    from adapters.testing.conformance import PsaConformance
    from my_psa.fake.harness import MyPsaHarness

    class TestMyPsaConformance(PsaConformance):
        harness = MyPsaHarness()

The suites check what the core relies on whatever the vendor: the spec declares the adapter and is
installed under its kind, the adapter satisfies its Protocol, listings are complete and page the
way the vendor pages, incremental reads return only what changed, wrong credentials are a
`CredentialsError`, 429s wait what `Retry-After` asks and a lasting one is a `RateLimitedError`,
reads survive 5xx; for RMMs, an unreadable endpoint is reported on the page that listed it, the
declared actions run and any other is refused, a poll says which clients it was complete for and
needs no memory of earlier polls; for PSAs, a create the vendor may have applied is found rather than repeated
(tickets, notes, configuration records, billing lines), lookups stay within their company, billing
upserts are idempotent. Vendor quirks (auth flows, field mappings, error wording) stay in the
vendor's own tests.

The adapters' sleeps are injected (`RecordingSleep`), so no test waits for real. Tests are async and
carry the `asyncio` mark, so they run under pytest-asyncio in auto and strict mode alike.
"""

from __future__ import annotations

import types
import typing
from collections.abc import AsyncIterator, Sequence
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, ClassVar, Literal

import pytest
import pytest_asyncio
from pydantic import SecretStr

from adapters.base import (
    ActionKind,
    AdapterSpec,
    AgentPage,
    AgentStatus,
    AlertEvent,
    CatalogKind,
    ConfigurationUpdate,
    EndpointPage,
    EndpointStatus,
    PolledAlerts,
    ProblemKind,
    PsaAdapter,
    RmmAdapter,
    Role,
    SecurityAdapter,
    WebhookRequest,
)
from adapters.errors import (
    CredentialsError,
    RateLimitedError,
    TransientVendorError,
    UnsupportedActionError,
    WebhookParseError,
)
from adapters.registry import discover
from adapters.testing.harness import (
    PsaHarness,
    PsaOperation,
    PsaWorld,
    RecordingSleep,
    RmmHarness,
    RmmOperation,
    RmmWorld,
    SecurityHarness,
    SecurityOperation,
    SecurityWorld,
    billing_line,
    load_harness,
    ticket_spec,
)

MARKER = "cn:ep-1:not_protected"
OTHER_MARKER = "cn:ep-2:not_protected"
Fault = Literal["timeout", "applied_500"]
MAYBE_APPLIED: tuple[Fault, ...] = ("timeout", "applied_500")
"""The two ways a write can fail after the vendor acted on it: the answer never came back, or an
error came back for a write that was applied anyway."""


# ---------------------------------------------------------------------------------------------
# Shared checks
# ---------------------------------------------------------------------------------------------


def _is_secret(annotation: Any) -> bool:
    if annotation is SecretStr:
        return True
    origin = typing.get_origin(annotation)
    return origin in (typing.Union, types.UnionType) and SecretStr in typing.get_args(annotation)


def _schema_formats(schema: dict[str, Any]) -> set[str]:
    variants = [schema, *schema.get("anyOf", [])]
    return {str(v["format"]) for v in variants if "format" in v}


def check_spec(spec: AdapterSpec, role: Role, credentials: dict[str, Any], options: dict[str, Any]) -> None:
    """The spec is installed under its kind, declares its role, shows secrets as passwords, and
    accepts the connection the harness builds."""
    assert spec.role is role
    assert discover().get(spec.kind) is spec, (
        f"{spec.kind} is not installed under the connector.adapters group"
    )
    schema = spec.credentials_schema()
    assert schema["properties"], "the credentials model declares no fields"
    for name, declared in spec.credentials_model.model_fields.items():
        if _is_secret(declared.annotation):
            shown = schema["properties"][declared.alias or name]
            assert "password" in _schema_formats(shown), f"credential {name} is not shown as a password"
    assert spec.options_schema()["type"] == "object"
    model = spec.credentials_model.model_validate(credentials)
    spec.options_model.model_validate(options)
    for name, declared in spec.credentials_model.model_fields.items():
        value = credentials.get(declared.alias or name)
        if _is_secret(declared.annotation) and isinstance(value, str) and value:
            assert value not in repr(model), f"credential {name} shows in the model's repr"


def check_names_harness(spec: AdapterSpec, harness: object) -> None:
    assert spec.harness, f"{spec.kind}'s spec names no harness"
    assert type(load_harness(spec)) is type(harness)


def secrets_of(spec: AdapterSpec, credentials: dict[str, Any]) -> list[str]:
    return [
        str(credentials[declared.alias or name])
        for name, declared in spec.credentials_model.model_fields.items()
        if _is_secret(declared.annotation) and credentials.get(declared.alias or name)
    ]


async def endpoint_pages(adapter: RmmAdapter, changed_since: datetime | None = None) -> list[EndpointPage]:
    """Every page of an endpoint listing."""
    return [page async for page in adapter.iter_endpoint_pages(changed_since)]


def statuses_of(pages: Sequence[EndpointPage]) -> list[EndpointStatus]:
    return [status for page in pages for status in page.statuses]


def listed_per_page(pages: Sequence[EndpointPage]) -> list[int]:
    """How many endpoints each page listed: those read and those it could not read."""
    return [
        len({s.endpoint_id for s in page.statuses} | {s.endpoint_id for s in page.skipped}) for page in pages
    ]


def polled_events(result: PolledAlerts) -> list[AlertEvent]:
    """The events of a `poll_alerts` answer."""
    return list(result.events)


def polled_state(result: PolledAlerts) -> set[tuple[str, str, str]]:
    """(endpoint, problem, state) of every event a poll read: what it says, whatever the times."""
    return {(e.endpoint_id, e.problem.value, e.state) for e in result.events}


# ---------------------------------------------------------------------------------------------
# Every role
# ---------------------------------------------------------------------------------------------


class AdapterConformance:
    """What every role's suite checks first: the spec declares the role and names this harness, the
    adapter satisfies the role's Protocol, the connection test passes, and wrong credentials are a
    `CredentialsError` that does not show them. A role's suite sets `ROLE` and `PROTOCOL` and
    provides the `world` fixture."""

    harness: ClassVar[Any]
    ROLE: ClassVar[Role]
    PROTOCOL: ClassVar[type]
    pytestmark: ClassVar[list[pytest.MarkDecorator]] = [pytest.mark.asyncio]

    @pytest.fixture
    def sleeps(self) -> RecordingSleep:
        return RecordingSleep()

    @pytest_asyncio.fixture
    async def adapter(self, world: Any, sleeps: RecordingSleep) -> AsyncIterator[Any]:
        adapter = world.adapter(sleep=sleeps)
        yield adapter
        await adapter.aclose()

    async def test_spec_declares_its_role(self, world: Any) -> None:
        connection = world.connection
        check_spec(self.harness.spec, self.ROLE, dict(connection.credentials), dict(connection.options))
        assert connection.kind == self.harness.spec.kind

    async def test_spec_names_this_harness(self) -> None:
        check_names_harness(self.harness.spec, self.harness)

    async def test_adapter_satisfies_the_protocol(self, adapter: Any) -> None:
        assert isinstance(adapter, self.PROTOCOL)

    async def test_connection_test_passes(self, adapter: Any) -> None:
        await adapter.test_connection()

    async def test_wrong_credentials_are_a_credentials_error(
        self, world: Any, sleeps: RecordingSleep
    ) -> None:
        wrong = world.wrong_credentials()
        adapter = world.adapter(sleep=sleeps, credentials=wrong)
        try:
            with pytest.raises(CredentialsError) as caught:
                await adapter.test_connection()
        finally:
            await adapter.aclose()
        for secret in secrets_of(self.harness.spec, wrong):
            assert secret not in str(caught.value), "the error shows the credential"


# ---------------------------------------------------------------------------------------------
# RMM
# ---------------------------------------------------------------------------------------------


class RmmConformance(AdapterConformance):
    """Inherit and set `harness`; every `test_*` here then runs against that vendor's fake."""

    harness: ClassVar[RmmHarness]
    ROLE: ClassVar[Role] = Role.RMM
    PROTOCOL: ClassVar[type] = RmmAdapter
    PAGE_SIZE: ClassVar[int] = 25
    """Endpoint page size asked of vendors that page (3 clients x 20 endpoints = pages of 25, 25, 10)."""

    @pytest.fixture
    def world(self) -> RmmWorld:
        return self.harness.start(page_size=self.PAGE_SIZE)

    # -- listing --------------------------------------------------------------------------------

    async def test_list_clients_names_every_client_once(self, adapter: RmmAdapter, world: RmmWorld) -> None:
        clients = [c async for c in adapter.list_clients()]
        assert len({c.id for c in clients}) == len(clients)
        assert {c.id: c.name for c in clients if c.id in world.clients} == dict(world.clients)

    async def test_endpoints_are_listed_once_in_the_vendors_pages(
        self, adapter: RmmAdapter, world: RmmWorld
    ) -> None:
        pages = await endpoint_pages(adapter)
        assert [len(page.statuses) for page in pages] == world.endpoint_page_sizes()
        statuses = statuses_of(pages)
        assert sorted(s.endpoint_id for s in statuses) == sorted(world.endpoints)
        assert [s for page in pages for s in page.skipped] == []
        for status in statuses:
            seeded = world.endpoints[status.endpoint_id]
            assert (status.client_id, status.hostname) == (seeded.client_id, seeded.hostname)

    async def test_incremental_read_returns_only_changed_endpoints(
        self, adapter: RmmAdapter, world: RmmWorld
    ) -> None:
        cursor = world.cursor()
        changed = list(world.endpoints)[::7]  # spread over every page
        world.touch(changed)
        statuses = statuses_of(await endpoint_pages(adapter, cursor))
        assert sorted(s.endpoint_id for s in statuses) == sorted(changed)
        everything = statuses_of(await endpoint_pages(adapter, None))
        assert len(everything) == len(world.endpoints)

    async def test_an_unreadable_endpoint_is_reported_on_the_page_that_listed_it(
        self, adapter: RmmAdapter, world: RmmWorld
    ) -> None:
        endpoints = list(world.endpoints)
        broken = endpoints[len(endpoints) // 2]  # not on the first page of a vendor that pages
        if not world.break_endpoint(broken):
            pytest.skip(f"the {world.spec.kind} fake cannot serve an unreadable endpoint")
        pages = await endpoint_pages(adapter)
        [skipped] = [s for page in pages for s in page.skipped]
        assert skipped.endpoint_id == broken and skipped.field and skipped.message
        assert broken not in {s.endpoint_id for s in statuses_of(pages)}
        assert listed_per_page(pages) == world.endpoint_page_sizes()  # on its own page, nowhere else
        assert len(statuses_of(pages)) == len(world.endpoints) - 1

    # -- alerts ---------------------------------------------------------------------------------

    async def test_native_webhook_is_parsed_into_active_and_cleared_events(
        self, adapter: RmmAdapter, world: RmmWorld
    ) -> None:
        endpoint = list(world.endpoints)[3]
        active = world.native_alert(endpoint, active=True)
        cleared = world.native_alert(endpoint, active=False)
        if active is None or cleared is None:
            pytest.skip(f"{world.spec.kind} has no native webhook format")
        await endpoint_pages(adapter)  # the adapter has seen the fleet, as after a first sync
        [opened] = adapter.parse_webhook(active.request)
        [closed] = adapter.parse_webhook(cleared.request)
        client = world.endpoints[endpoint].client_id
        assert (opened.endpoint_id, opened.client_id, opened.problem, opened.state) == (
            endpoint,
            client,
            active.problem,
            "active",
        )
        assert (closed.endpoint_id, closed.problem, closed.state) == (endpoint, cleared.problem, "cleared")
        assert opened.event_id != closed.event_id

    async def test_unreadable_webhook_body_names_what_is_wrong(
        self, adapter: RmmAdapter, world: RmmWorld
    ) -> None:
        if world.native_alert(next(iter(world.endpoints)), active=True) is None:
            pytest.skip(f"{world.spec.kind} has no native webhook format")
        garbage = WebhookRequest(body=b"\x00 not a delivery", headers={}, received_at=world.cursor())
        with pytest.raises(WebhookParseError) as caught:
            adapter.parse_webhook(garbage)
        assert caught.value.field

    async def test_generic_webhook_scheme_leaves_verification_to_the_core(
        self, adapter: RmmAdapter, world: RmmWorld
    ) -> None:
        if world.spec.webhook_scheme != "generic":
            pytest.skip("the vendor's own signature scheme is for its own tests")
        request = WebhookRequest(body=b"{}", headers={}, received_at=world.cursor())
        assert adapter.verify_webhook(request, "webhook-secret") is None

    async def test_polled_alert_is_reported(self, adapter: RmmAdapter, world: RmmWorld) -> None:
        endpoint = list(world.endpoints)[5]
        problem = world.raise_polled_alert(endpoint)
        events = polled_events(await adapter.poll_alerts(None))
        if problem is None:
            assert events == []  # a vendor that pushes has nothing to poll
            return
        assert [
            (e.client_id, e.state) for e in events if e.endpoint_id == endpoint and e.problem == problem
        ] == [(world.endpoints[endpoint].client_id, "active")]

    async def test_a_complete_poll_names_its_clients_and_needs_no_memory(
        self, adapter: RmmAdapter, world: RmmWorld, sleeps: RecordingSleep
    ) -> None:
        endpoint = list(world.endpoints)[5]
        client = world.endpoints[endpoint].client_id
        problem = world.raise_polled_alert(endpoint)
        first = await adapter.poll_alerts(None)
        if not world.polls_snapshots:
            assert first.complete_for == frozenset()  # absence means nothing: the core clears nothing
            return
        assert problem is not None
        assert first.complete_for >= set(world.clients)
        assert (endpoint, problem.value, "active") in polled_state(first)

        world.clear_trouble(endpoint)
        second = await adapter.poll_alerts(None)
        assert client in second.complete_for  # so the core reads the alert's absence as its clear
        assert not {e for e in polled_state(second) if e[:2] == (endpoint, problem.value)}

        rebuilt = world.adapter(sleep=sleeps)  # what a restart or a changed connection gives
        try:
            again = await rebuilt.poll_alerts(None)
        finally:
            await rebuilt.aclose()
        assert (again.complete_for, polled_state(again)) == (second.complete_for, polled_state(second))

    # -- actions --------------------------------------------------------------------------------

    async def test_declared_actions_run(self, adapter: RmmAdapter, world: RmmWorld) -> None:
        endpoint = list(world.endpoints)[2]
        declared = sorted(self.harness.spec.actions)
        for action in declared:
            result = await adapter.run_action(endpoint, action)
            assert result.accepted, result.message
        assert sorted(a for e, a in world.actions_run() if e == endpoint) == declared

    async def test_undeclared_actions_are_refused(self, adapter: RmmAdapter, world: RmmWorld) -> None:
        for action in sorted(set(ActionKind) - self.harness.spec.actions):
            with pytest.raises(UnsupportedActionError):
                await adapter.run_action(list(world.endpoints)[2], action)
        assert world.actions_run() == []

    # -- rate limits and outages ----------------------------------------------------------------

    async def test_429_waits_what_retry_after_asks(
        self, adapter: RmmAdapter, world: RmmWorld, sleeps: RecordingSleep
    ) -> None:
        world.rate_limit(RmmOperation.LIST_CLIENTS, times=2, retry_after=7)
        clients = [c async for c in adapter.list_clients()]
        assert {c.id for c in clients} >= set(world.clients)
        assert [s for s in sleeps.calls if s >= 7] == [7.0, 7.0]

    async def test_persistent_429_is_a_rate_limited_error(self, adapter: RmmAdapter, world: RmmWorld) -> None:
        world.rate_limit(RmmOperation.LIST_CLIENTS, times=None, retry_after=3)
        with pytest.raises(RateLimitedError) as caught:
            [c async for c in adapter.list_clients()]
        assert caught.value.retry_after == 3.0  # the core schedules the next try by it

    async def test_5xx_on_a_read_is_retried(self, adapter: RmmAdapter, world: RmmWorld) -> None:
        await endpoint_pages(adapter)
        clean = world.calls(RmmOperation.LIST_ENDPOINTS)
        world.reset_calls()
        world.fail_next(RmmOperation.LIST_ENDPOINTS, 500, times=2)
        statuses = statuses_of(await endpoint_pages(adapter))
        assert len(statuses) == len(world.endpoints)
        assert world.calls(RmmOperation.LIST_ENDPOINTS) == clean + 2

    async def test_lasting_5xx_is_a_transient_error(self, adapter: RmmAdapter, world: RmmWorld) -> None:
        world.fail_next(RmmOperation.LIST_ENDPOINTS, 503, times=None)
        with pytest.raises(TransientVendorError):
            await endpoint_pages(adapter)


# ---------------------------------------------------------------------------------------------
# PSA
# ---------------------------------------------------------------------------------------------


def inject(world: PsaWorld, operation: PsaOperation, fault: Fault) -> None:
    if fault == "timeout":
        world.time_out_next(operation)
    else:
        world.fail_next(operation, 500, after_apply=True)


class PsaConformance(AdapterConformance):
    """Inherit and set `harness`; every `test_*` here then runs against that vendor's fake."""

    harness: ClassVar[PsaHarness]
    ROLE: ClassVar[Role] = Role.PSA
    PROTOCOL: ClassVar[type] = PsaAdapter
    PAGE_SIZE: ClassVar[int] = 10
    """Company page size for the paging test."""

    @pytest.fixture
    def world(self) -> PsaWorld:
        return self.harness.start(devices_per_company=2)

    @staticmethod
    def first_company(world: PsaWorld) -> str:
        return next(iter(world.companies))

    # -- reads ----------------------------------------------------------------------------------

    async def test_list_companies_names_every_company_once(
        self, adapter: PsaAdapter, world: PsaWorld
    ) -> None:
        companies = [c async for c in adapter.list_companies()]
        assert len({c.id for c in companies}) == len(companies)
        assert {c.id: c.name for c in companies if c.id in world.companies} == dict(world.companies)

    async def test_paging_keeps_the_filter_on_every_page(self, sleeps: RecordingSleep) -> None:
        world = self.harness.start(devices_per_company=0, page_size=self.PAGE_SIZE)
        active: list[str] = list(world.companies)
        inactive: list[str] = []
        for _ in range(2 * self.PAGE_SIZE + 1):  # interleaved, so every page holds both kinds
            active += world.add_companies(1)
            inactive += world.add_companies(1, active=False)
        adapter = world.adapter(sleep=sleeps)
        try:
            listed = [c.id async for c in adapter.list_companies()]
        finally:
            await adapter.aclose()
        assert sorted(listed) == sorted(active)
        assert world.calls(PsaOperation.LIST_COMPANIES) >= 3

    async def test_agreements_of_a_company(self, adapter: PsaAdapter, world: PsaWorld) -> None:
        company = self.first_company(world)
        agreements = {a.id: a for a in await adapter.list_agreements(company)}
        billed = agreements[world.agreement_id(company)]
        assert (billed.company_id, billed.active) == (company, True)
        assert billed.type_name == world.billing_ids.agreement_type
        assert all(a.company_id == company for a in agreements.values())

    async def test_ticket_options_hold_the_seeded_ids(self, adapter: PsaAdapter, world: PsaWorld) -> None:
        options = await adapter.list_ticket_options()
        assert {"boards", "statuses", "priorities"} <= set(options)
        ids = world.ticket_ids
        assert ids.board_id in {o.id for o in options["boards"]}
        statuses = {o.id: o for o in options["statuses"]}
        assert statuses[ids.status_closed_id].closed and not statuses[ids.status_new_id].closed
        if ids.priority_id is not None:
            assert ids.priority_id in {o.id for o in options["priorities"]}
        if ids.type_id is not None:
            assert ids.type_id in {o.id for o in options.get("types", [])}

    async def test_catalog_holds_every_seeded_id_a_rule_names(
        self, adapter: PsaAdapter, world: PsaWorld
    ) -> None:
        """Rules and mappings are checked against `list_catalog`: every id the harness seeds for a
        ticket rule, a billing rule and a mapping must be in it, under the kind the core checks."""
        catalog = {kind: await adapter.list_catalog(kind) for kind in CatalogKind}
        ids = world.ticket_ids
        assert ids.board_id in {o.id for o in catalog[CatalogKind.BOARDS]}
        statuses = {o.id: o for o in catalog[CatalogKind.STATUSES]}
        assert statuses[ids.status_closed_id].closed and not statuses[ids.status_new_id].closed
        if ids.priority_id is not None:
            assert ids.priority_id in {o.id for o in catalog[CatalogKind.PRIORITIES]}
        if ids.type_id is not None:
            assert ids.type_id in {o.id for o in catalog[CatalogKind.TICKET_TYPES]}
        agreement_types = {o.name.casefold() for o in catalog[CatalogKind.AGREEMENT_TYPES]}
        assert world.billing_ids.agreement_type.casefold() in agreement_types
        assert world.billing_ids.product_id in {o.id for o in catalog[CatalogKind.PRODUCTS]}
        assert self.first_company(world) in {o.id for o in catalog[CatalogKind.COMPANIES]}

    # -- tickets --------------------------------------------------------------------------------

    async def test_create_note_close_ticket(self, adapter: PsaAdapter, world: PsaWorld) -> None:
        spec = ticket_spec(world, MARKER)
        ref = await adapter.create_ticket(spec)
        [seen] = world.tickets(spec.company_id)
        assert seen.id == ref.id and not seen.closed and not ref.closed
        assert spec.summary in seen.summary
        found = await adapter.find_ticket(MARKER, spec.company_id)
        assert found is not None and found.id == ref.id and not found.closed

        await adapter.add_note(ref.id, "Seen again at 10:02.")
        await adapter.close_ticket(ref.id, None, "Protection re-enabled; closing.")
        [seen] = world.tickets(spec.company_id)
        assert seen.closed
        assert "Seen again at 10:02." in seen.notes
        assert any("Protection re-enabled; closing." in note for note in seen.notes)
        closed = await adapter.find_ticket(MARKER, spec.company_id)
        assert closed is not None and closed.id == ref.id and closed.closed

        await adapter.close_ticket(ref.id, None, "Protection re-enabled; closing.")  # again: a no-op
        [again] = world.tickets(spec.company_id)
        assert again.closed and again.notes == seen.notes

    async def test_read_back_sees_only_the_integrations_own_work_as_untouched(
        self, adapter: PsaAdapter, world: PsaWorld
    ) -> None:
        spec = ticket_spec(world, MARKER)
        ref = await adapter.create_ticket(spec)
        await adapter.add_note(ref.id, "Seen again at 10:02.")
        back = await adapter.read_ticket(ref.id)
        assert back is not None and back.id == ref.id and not back.closed
        assert not back.touched, back.human_activity
        await adapter.close_ticket(ref.id, None, "Cleared.")
        back = await adapter.read_ticket(ref.id)
        assert back is not None and back.closed and not back.touched, back

    @pytest.mark.parametrize("edit", ["note", "time_entry", "reassign", "close"])
    async def test_read_back_reports_a_technicians_work(
        self, adapter: PsaAdapter, world: PsaWorld, edit: str
    ) -> None:
        spec = ticket_spec(world, MARKER)
        ref = await adapter.create_ticket(spec)
        if edit == "note":
            world.human_note(ref.id, "Called the user; looking at it.")
        elif edit == "time_entry":
            world.human_time_entry(ref.id)
        elif edit == "reassign":
            world.human_reassign(ref.id)
        else:
            world.human_close(ref.id)
        back = await adapter.read_ticket(ref.id)
        assert back is not None and back.touched, back
        assert back.closed == back.closed_by_human == (edit == "close"), back
        if edit in ("note", "time_entry"):
            assert edit in {a.kind for a in back.human_activity}, back.human_activity

    async def test_read_back_of_a_deleted_ticket_is_none(self, adapter: PsaAdapter, world: PsaWorld) -> None:
        spec = ticket_spec(world, MARKER)
        ref = await adapter.create_ticket(spec)
        world.delete_ticket(ref.id)
        assert await adapter.read_ticket(ref.id) is None

    @pytest.mark.parametrize("fault", MAYBE_APPLIED)
    async def test_create_the_vendor_may_have_applied_is_found_not_repeated(
        self, adapter: PsaAdapter, world: PsaWorld, fault: Fault
    ) -> None:
        spec = ticket_spec(world, MARKER)
        inject(world, PsaOperation.CREATE_TICKET, fault)
        ref = await adapter.create_ticket(spec)
        [seen] = world.tickets(spec.company_id)
        assert seen.id == ref.id
        assert world.calls(PsaOperation.CREATE_TICKET) == 1  # never re-posted
        found = await adapter.find_ticket(MARKER, spec.company_id)  # the core's retry after a crash
        assert found is not None and found.id == ref.id

    async def test_create_that_failed_unapplied_raises_without_reposting(
        self, adapter: PsaAdapter, world: PsaWorld
    ) -> None:
        spec = ticket_spec(world, MARKER)
        world.fail_next(PsaOperation.CREATE_TICKET, 500)
        with pytest.raises(TransientVendorError) as caught:
            await adapter.create_ticket(spec)
        assert caught.value.maybe_applied
        assert world.tickets(spec.company_id) == []
        assert world.calls(PsaOperation.CREATE_TICKET) == 1
        ref = await adapter.create_ticket(spec)  # the next run creates it, once
        assert [t.id for t in world.tickets(spec.company_id)] == [ref.id]

    async def test_create_refused_with_429_is_resent(self, adapter: PsaAdapter, world: PsaWorld) -> None:
        spec = ticket_spec(world, MARKER)
        world.rate_limit(PsaOperation.CREATE_TICKET, times=1, retry_after=1)
        ref = await adapter.create_ticket(spec)
        assert [t.id for t in world.tickets(spec.company_id)] == [ref.id]
        assert world.calls(PsaOperation.CREATE_TICKET) == 2

    @pytest.mark.parametrize("fault", MAYBE_APPLIED)
    async def test_note_the_vendor_may_have_applied_is_not_doubled(
        self, adapter: PsaAdapter, world: PsaWorld, fault: Fault
    ) -> None:
        spec = ticket_spec(world, MARKER)
        ref = await adapter.create_ticket(spec)
        inject(world, PsaOperation.ADD_NOTE, fault)
        await adapter.add_note(ref.id, "Threat quarantined.")
        [seen] = world.tickets(spec.company_id)
        assert seen.notes.count("Threat quarantined.") == 1

    async def test_find_ticket_is_scoped_to_the_company(self, adapter: PsaAdapter, world: PsaWorld) -> None:
        first, second, *_ = world.companies
        ref = await adapter.create_ticket(ticket_spec(world, MARKER, first))
        assert await adapter.find_ticket(MARKER, second) is None
        assert await adapter.find_ticket(OTHER_MARKER, first) is None
        found = await adapter.find_ticket(MARKER, first)
        assert found is not None and found.id == ref.id

    # -- configuration records ------------------------------------------------------------------

    def status_fields(self, world: PsaWorld, prefix: str = "value") -> dict[str, str]:
        return {name: f"{prefix} {n}" for n, name in enumerate(world.configuration_fields)}

    async def test_configuration_status_is_written_and_not_rewritten(
        self, adapter: PsaAdapter, world: PsaWorld
    ) -> None:
        company = self.first_company(world)
        device = world.device_names(company)[0]
        fields = self.status_fields(world)
        update = ConfigurationUpdate(company_id=company, device_name=device, fields=fields)
        record = await adapter.upsert_configuration(update)
        assert record is not None
        [text] = world.configurations(company, device)
        assert all(value in text for value in fields.values())

        world.reset_calls()
        assert await adapter.upsert_configuration(update) == record
        assert world.calls(PsaOperation.UPDATE_CONFIGURATION) == 0  # unchanged: nothing written

        changed = self.status_fields(world, "changed")
        assert await adapter.upsert_configuration(update.model_copy(update={"fields": changed})) == record
        [text] = world.configurations(company, device)
        assert all(value in text for value in changed.values())

    async def test_configuration_is_created_only_when_asked(
        self, adapter: PsaAdapter, world: PsaWorld
    ) -> None:
        company = self.first_company(world)
        fields = self.status_fields(world)
        missing = ConfigurationUpdate(company_id=company, device_name="NEW-LAPTOP", fields=fields)
        assert await adapter.upsert_configuration(missing) is None
        assert world.configurations(company, "NEW-LAPTOP") == []

        world.reset_calls()
        create = missing.model_copy(
            update={"create_if_missing": True, "type_id": world.configuration_type_id}
        )
        record = await adapter.upsert_configuration(create)
        assert record is not None
        [text] = world.configurations(company, "NEW-LAPTOP")
        assert all(value in text for value in fields.values())
        assert await adapter.upsert_configuration(create) == record
        assert len(world.configurations(company, "NEW-LAPTOP")) == 1
        assert world.calls(PsaOperation.CREATE_CONFIGURATION) == 1

    async def test_configuration_create_after_timeout_makes_one_record(
        self, adapter: PsaAdapter, world: PsaWorld
    ) -> None:
        company = self.first_company(world)
        create = ConfigurationUpdate(
            company_id=company,
            device_name="NEW-LAPTOP",
            fields=self.status_fields(world),
            create_if_missing=True,
            type_id=world.configuration_type_id,
        )
        world.time_out_next(PsaOperation.CREATE_CONFIGURATION)
        record = await adapter.upsert_configuration(create)
        assert record is not None
        assert len(world.configurations(company, "NEW-LAPTOP")) == 1

    # -- a ticket's configuration record --------------------------------------------------------

    async def _record(self, adapter: PsaAdapter, world: PsaWorld, company: str) -> str:
        device = world.device_names(company)[0]
        update = ConfigurationUpdate(company_id=company, device_name=device, fields=self.status_fields(world))
        record = await adapter.upsert_configuration(update)
        assert record is not None
        return record

    async def test_ticket_is_attached_to_its_configuration_record(
        self, adapter: PsaAdapter, world: PsaWorld
    ) -> None:
        company = self.first_company(world)
        record = await self._record(adapter, world, company)
        spec = ticket_spec(world, MARKER, company).model_copy(update={"configuration_id": record})
        ref = await adapter.create_ticket(spec)
        assert world.ticket_configurations(ref.id) == [record]
        plain = await adapter.create_ticket(ticket_spec(world, OTHER_MARKER, company))
        assert world.ticket_configurations(plain.id) == []

    @pytest.mark.parametrize("fault", MAYBE_APPLIED)
    async def test_a_retried_create_attaches_its_configuration_once(
        self, adapter: PsaAdapter, world: PsaWorld, fault: Fault
    ) -> None:
        company = self.first_company(world)
        record = await self._record(adapter, world, company)
        spec = ticket_spec(world, MARKER, company).model_copy(update={"configuration_id": record})
        inject(world, PsaOperation.CREATE_TICKET, fault)
        ref = await adapter.create_ticket(spec)
        assert [t.id for t in world.tickets(company)] == [ref.id]
        assert world.ticket_configurations(ref.id) == [record]
        found = await adapter.find_ticket(MARKER, company)  # the core's retry after a crash
        assert found is not None and found.id == ref.id
        assert world.ticket_configurations(ref.id) == [record]

    async def test_a_deleted_configuration_record_leaves_the_ticket_unattached(
        self, adapter: PsaAdapter, world: PsaWorld
    ) -> None:
        company = self.first_company(world)
        record = await self._record(adapter, world, company)
        world.delete_configuration(record)
        spec = ticket_spec(world, MARKER, company).model_copy(update={"configuration_id": record})
        ref = await adapter.create_ticket(spec)
        assert [t.id for t in world.tickets(company)] == [ref.id]
        assert world.ticket_configurations(ref.id) == []

    # -- billing --------------------------------------------------------------------------------

    async def test_billing_upsert_is_idempotent(self, adapter: PsaAdapter, world: PsaWorld) -> None:
        company = self.first_company(world)
        line = billing_line(world, 5, company)
        first = await adapter.upsert_billing_line(line)
        assert first.action in ("created", "updated")  # "updated": a vendor that keeps a 0-seat line
        assert [seen.quantity for seen in world.billing_lines(company)] == [Decimal(5)]

        second = await adapter.upsert_billing_line(line)
        assert (second.action, second.line_id, second.previous_quantity) == (
            "unchanged",
            first.line_id,
            Decimal(5),
        )

        third = await adapter.upsert_billing_line(line.model_copy(update={"quantity": Decimal(7)}))
        assert (third.action, third.line_id, third.previous_quantity) == (
            "updated",
            first.line_id,
            Decimal(5),
        )
        assert [seen.quantity for seen in world.billing_lines(company)] == [Decimal(7)]

    async def test_billing_read_back_sees_the_write_and_an_edit_by_someone_else(
        self, adapter: PsaAdapter, world: PsaWorld
    ) -> None:
        company = self.first_company(world)
        line = billing_line(world, 5, company)
        if not world.billing_lines(company):
            assert await adapter.read_billing_line(line) is None
        written = await adapter.upsert_billing_line(line)
        read = await adapter.read_billing_line(line)
        assert read is not None
        assert (read.line_id, read.quantity, read.marked in (True, None)) == (
            written.line_id,
            Decimal(5),
            True,
        )

        world.human_set_billing_quantity(company, written.line_id, 9)
        edited = await adapter.read_billing_line(line.model_copy(update={"line_id": written.line_id}))
        assert edited is not None
        assert (edited.line_id, edited.quantity) == (written.line_id, Decimal(9))
        assert [seen.quantity for seen in world.billing_lines(company)] == [Decimal(9)]

    async def test_billing_read_tells_a_line_someone_else_made_and_a_linked_write_adopts_it(
        self, adapter: PsaAdapter, world: PsaWorld
    ) -> None:
        company = self.first_company(world)
        theirs = world.human_billing_line(company, 4)
        line = billing_line(world, 6, company)
        read = await adapter.read_billing_line(line)
        assert read is not None
        assert (read.line_id, read.quantity, read.marked) in (
            (theirs, Decimal(4), False),
            (theirs, Decimal(4), None),
        )

        written = await adapter.upsert_billing_line(line.model_copy(update={"line_id": theirs}))
        assert written.line_id == theirs
        assert [seen.quantity for seen in world.billing_lines(company)] == [Decimal(6)]
        after = await adapter.read_billing_line(line)
        assert after is not None and after.line_id == theirs and after.marked in (True, None)

    @pytest.mark.parametrize("fault", MAYBE_APPLIED)
    async def test_billing_write_the_vendor_may_have_applied_adds_one_line(
        self, adapter: PsaAdapter, world: PsaWorld, fault: Fault
    ) -> None:
        company = self.first_company(world)
        line = billing_line(world, 5, company)
        inject(world, PsaOperation.CREATE_BILLING_LINE, fault)
        result = await adapter.upsert_billing_line(line)
        assert result.action in ("created", "updated")
        assert [seen.quantity for seen in world.billing_lines(company)] == [Decimal(5)]
        assert world.calls(PsaOperation.CREATE_BILLING_LINE) == 1
        assert (await adapter.upsert_billing_line(line)).action == "unchanged"

    # -- rate limits and outages ----------------------------------------------------------------

    async def test_429_waits_what_retry_after_asks(
        self, adapter: PsaAdapter, world: PsaWorld, sleeps: RecordingSleep
    ) -> None:
        world.rate_limit(PsaOperation.LIST_COMPANIES, times=2, retry_after=7)
        companies = [c async for c in adapter.list_companies()]
        assert {c.id for c in companies} >= set(world.companies)
        assert [s for s in sleeps.calls if s >= 7] == [7.0, 7.0]

    async def test_persistent_429_is_a_rate_limited_error(self, adapter: PsaAdapter, world: PsaWorld) -> None:
        world.rate_limit(PsaOperation.LIST_COMPANIES, times=None, retry_after=3)
        with pytest.raises(RateLimitedError) as caught:
            [c async for c in adapter.list_companies()]
        assert caught.value.retry_after == 3.0  # the core schedules the next try by it

    async def test_5xx_on_a_read_is_retried(self, adapter: PsaAdapter, world: PsaWorld) -> None:
        [c async for c in adapter.list_companies()]
        clean = world.calls(PsaOperation.LIST_COMPANIES)
        world.reset_calls()
        world.fail_next(PsaOperation.LIST_COMPANIES, 500, times=2)
        companies = [c async for c in adapter.list_companies()]
        assert {c.id for c in companies} >= set(world.companies)
        assert world.calls(PsaOperation.LIST_COMPANIES) == clean + 2

    async def test_lasting_5xx_is_a_transient_error(self, adapter: PsaAdapter, world: PsaWorld) -> None:
        world.fail_next(PsaOperation.LIST_COMPANIES, 503, times=None)
        with pytest.raises(TransientVendorError):
            [c async for c in adapter.list_companies()]


# ---------------------------------------------------------------------------------------------
# Security consoles
# ---------------------------------------------------------------------------------------------


async def agent_pages(adapter: SecurityAdapter, changed_since: datetime | None = None) -> list[AgentPage]:
    """Every page of an agent listing."""
    return [page async for page in adapter.iter_agent_pages(changed_since)]


def agents_of(pages: Sequence[AgentPage]) -> list[AgentStatus]:
    return [agent for page in pages for agent in page.agents]


class SecurityConformance(AdapterConformance):
    """Inherit and set `harness`; every `test_*` here then runs against that console's fake."""

    harness: ClassVar[SecurityHarness]
    ROLE: ClassVar[Role] = Role.SECURITY
    PROTOCOL: ClassVar[type] = SecurityAdapter
    PAGE_SIZE: ClassVar[int] = 25
    """Agent page size asked of vendors that page (3 customers x 20 agents)."""

    @pytest.fixture
    def world(self) -> SecurityWorld:
        return self.harness.start(page_size=self.PAGE_SIZE)

    # -- customers and agents -------------------------------------------------------------------

    async def test_customers_are_named_once(self, adapter: SecurityAdapter, world: SecurityWorld) -> None:
        customers = [c async for c in adapter.list_customers()]
        assert len({c.id for c in customers}) == len(customers)
        assert {c.id: c.name for c in customers if c.id in world.customers} == dict(world.customers)

    async def test_agents_are_listed_once_in_the_vendors_pages_with_their_identity(
        self, adapter: SecurityAdapter, world: SecurityWorld
    ) -> None:
        pages = await agent_pages(adapter)
        assert [len(page.agents) for page in pages] == world.agent_page_sizes()
        agents = agents_of(pages)
        assert sorted(a.agent_id for a in agents) == sorted(world.agents)
        assert [s for page in pages for s in page.skipped] == []
        for agent in agents:
            seeded = world.agents[agent.agent_id]
            assert (agent.customer_id, agent.hostname.casefold()) == (
                seeded.customer_id,
                seeded.hostname.casefold(),
            )
            if world.reports_serials:
                assert agent.serial_number == seeded.serial_number
            if world.reports_macs:
                assert set(seeded.mac_addresses) <= set(agent.mac_addresses or ())
            assert agent.protection_enabled is not False, "a seeded agent is healthy"

    async def test_incremental_read_returns_the_changed_agents(
        self, adapter: SecurityAdapter, world: SecurityWorld
    ) -> None:
        cursor = world.cursor()
        changed = list(world.agents)[::7]
        world.touch(changed)
        listed = {a.agent_id for a in agents_of(await agent_pages(adapter, cursor))}
        assert set(changed) <= listed  # a console that cannot filter lists everything
        assert len(agents_of(await agent_pages(adapter, None))) == len(world.agents)

    async def test_added_and_removed_agents_show_in_the_next_full_listing(
        self, adapter: SecurityAdapter, world: SecurityWorld
    ) -> None:
        customer = next(iter(world.customers))
        removed = next(a for a in world.agents.values() if a.customer_id == customer).id
        added = world.add_agent(customer, "NEW-LAPTOP-9")
        world.remove_agent(removed)
        listed = {a.agent_id: a for a in agents_of(await agent_pages(adapter))}
        assert added in listed and listed[added].hostname.casefold() == "new-laptop-9"
        assert removed not in listed

    async def test_protection_off_and_silence_are_reported(
        self, adapter: SecurityAdapter, world: SecurityWorld
    ) -> None:
        off, silent = list(world.agents)[1], list(world.agents)[2]
        cursor = world.cursor()
        world.set_protection(off, False)
        long_ago = cursor - timedelta(days=30)
        world.set_last_seen(silent, long_ago)
        listed = {a.agent_id: a for a in agents_of(await agent_pages(adapter, cursor))}
        assert listed[off].protection_enabled is not True
        seen = listed[silent].last_seen_at
        assert seen is not None and abs((seen - long_ago).total_seconds()) < 86_400

    # -- threats --------------------------------------------------------------------------------

    async def test_a_threat_is_open_until_the_vendor_resolves_it(
        self, adapter: SecurityAdapter, world: SecurityWorld
    ) -> None:
        agent_id = list(world.agents)[4]
        customer = world.agents[agent_id].customer_id
        before = world.cursor()
        threat = world.raise_threat(agent_id, "Trojan.Conformance")
        snapshot = await adapter.list_threats(None)
        open_ = [t for t in snapshot.threats if t.threat_id == threat]
        assert len(open_) == 1 and not open_[0].resolved
        assert (open_[0].agent_id, open_[0].customer_id) == (agent_id, customer)
        assert customer in snapshot.complete_for
        world.resolve_threat(threat)
        after = await adapter.list_threats(before)
        assert all(t.resolved for t in after.threats if t.threat_id == threat)
        assert customer in after.complete_for

    async def test_native_threat_webhook_is_verified_and_parsed(
        self, adapter: SecurityAdapter, world: SecurityWorld
    ) -> None:
        agent_id = list(world.agents)[5]
        delivery = world.native_threat_webhook(world.raise_threat(agent_id))
        if delivery is None or world.webhook_secret is None:
            assert adapter.verify_webhook(
                WebhookRequest(body=b"{}", headers={}, received_at=world.cursor()), "secret"
            ) in (None, False)
            with pytest.raises(WebhookParseError):
                adapter.parse_webhook(WebhookRequest(body=b"{}", headers={}, received_at=world.cursor()))
            return
        assert adapter.verify_webhook(delivery, world.webhook_secret) is True
        assert adapter.verify_webhook(delivery, world.webhook_secret + "x") is not True
        events = adapter.parse_webhook(delivery)
        assert [(e.endpoint_id, e.problem, e.state) for e in events] == [
            (agent_id, ProblemKind.THREAT_DETECTED, "active")
        ]

    # -- licences -------------------------------------------------------------------------------

    async def test_licence_use_per_customer_and_product(
        self, adapter: SecurityAdapter, world: SecurityWorld
    ) -> None:
        customer = list(world.customers)[1]
        world.set_licences(customer, 17, 25)
        uses = [u for u in await adapter.licence_use() if u.customer_id == customer]
        [use] = [u for u in uses if u.product == world.licence_product]
        assert use.seats_used == 17
        assert use.seats_purchased in (25, None)  # None: the vendor does not publish purchased seats

    # -- rate limits and outages ----------------------------------------------------------------

    async def test_429_waits_what_retry_after_asks(
        self, adapter: SecurityAdapter, world: SecurityWorld, sleeps: RecordingSleep
    ) -> None:
        world.rate_limit(SecurityOperation.LIST_CUSTOMERS, times=2, retry_after=7)
        customers = [c async for c in adapter.list_customers()]
        assert {c.id for c in customers} >= set(world.customers)
        assert [s for s in sleeps.calls if s >= 7] == [7.0, 7.0]

    async def test_5xx_on_a_read_is_retried(self, adapter: SecurityAdapter, world: SecurityWorld) -> None:
        world.fail_next(SecurityOperation.LIST_AGENTS, 500, times=2)
        assert len(agents_of(await agent_pages(adapter))) == len(world.agents)

    async def test_lasting_5xx_is_a_transient_error(
        self, adapter: SecurityAdapter, world: SecurityWorld
    ) -> None:
        world.fail_next(SecurityOperation.LIST_AGENTS, 503, times=None)
        with pytest.raises(TransientVendorError):
            await agent_pages(adapter)
