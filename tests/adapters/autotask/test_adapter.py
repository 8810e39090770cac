"""Autotask specifics against the stateful fake: zone discovery, POSTed next pages, picklists,
externalID markers, UDFs, seat adjustments as deltas, the threshold guard. What every PSA must do
is `test_conformance.py`'s."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import httpx
import pytest

from adapters.autotask import SPEC, AutotaskAdapter
from adapters.autotask.adapter import marker_token
from adapters.autotask.fake import AutotaskFake, DemoSeed
from adapters.autotask.models import AutotaskCredentials, AutotaskOptions
from adapters.base import BillingLine, ConfigurationUpdate, TicketSpec
from adapters.errors import (
    ConfigurationError,
    CredentialsError,
    RateLimitedError,
    TransientVendorError,
    VendorRequestError,
)
from tests.support.adapter_helpers import (
    Clock,
    CountingBudget,
    Sleeps,
    asgi_transports,
    billing_line,
    build_adapter,
    ticket_spec,
)

DISCOVERY = "https://webservices.autotask.net/ATServicesRest"
NOW = datetime(2025, 3, 14, 10, 30, tzinfo=UTC)


def make_adapter(
    fake: AutotaskFake,
    *,
    options: dict[str, Any] | None = None,
    credentials: dict[str, Any] | None = None,
    sleep: Sleeps | None = None,
    clock: Clock | None = None,
    urls: list[str] | None = None,
    budget: CountingBudget | None = None,
) -> AutotaskAdapter:
    extra: dict[str, Any] = {"now": lambda: NOW}
    if clock is not None:
        extra["clock"] = clock
    return build_adapter(
        SPEC,
        AutotaskAdapter,
        connection_id="at-1",
        base_url=DISCOVERY,
        credentials=AutotaskCredentials(**(credentials or fake.credentials())),
        options=AutotaskOptions(**(options or {})),
        transport_factory=asgi_transports(fake.app, urls),
        sleep=sleep,
        extra=extra,
        budget=budget,
    )


@pytest.fixture
def fake() -> AutotaskFake:
    return AutotaskFake(now=lambda: NOW)


@pytest.fixture
def seed(fake: AutotaskFake) -> DemoSeed:
    return fake.seed_demo(companies=3, configuration_items_per_company=2, seats=5)


@pytest.fixture
async def adapter(fake: AutotaskFake, seed: DemoSeed) -> AsyncIterator[AutotaskAdapter]:
    instance = make_adapter(fake, options={"configuration_product_id": seed.product_id})
    yield instance
    await instance.aclose()


def spec_for(seed: DemoSeed, marker: str = "cn:ep-1:not_protected", **extra: Any) -> TicketSpec:
    ids = {
        "company_id": seed.company_ids[0],
        "board_id": seed.queue_ids["Security Operations"],
        "priority_id": seed.priority_ids["High"],
        "type_id": seed.issue_type_ids["Security"],
        "status_id": seed.new_status_id,
    }
    return ticket_spec(marker, ids, extra)


def line_for(seed: DemoSeed, quantity: str = "8", company: int = 0, **extra: Any) -> BillingLine:
    cid = seed.company_ids[company]
    ids = {
        "company_id": cid,
        "agreement_id": seed.contract_ids[cid],
        "product_id": seed.service_ids["EDR"],
        "description": "Managed EDR, per endpoint",
    }
    return billing_line(f"bill:{cid}:EDR", ids, quantity, extra)


# ---------------------------------------------------------------------------------------------
# Declaration, discovery, auth
# ---------------------------------------------------------------------------------------------


def test_spec_declares_autotasks_fields() -> None:
    properties = SPEC.credentials_schema()["properties"]
    assert set(properties) == {"username", "secret", "integration_code", "impersonation_resource_id"}
    assert properties["integration_code"]["format"] == "password"


async def test_zone_discovery_then_calls_go_to_the_zone(fake: AutotaskFake, seed: DemoSeed) -> None:
    urls: list[str] = []
    adapter = make_adapter(fake, urls=urls)
    await adapter.test_connection()
    await adapter.aclose()
    assert urls == [DISCOVERY, "https://webservices14.autotask.net/ATServicesRest/V1.0"]
    zone, threshold = fake.requests
    assert zone.url == f"{DISCOVERY}/V1.0/ZoneInformation?user=connector%40acme.example"
    assert threshold.url == "https://webservices14.autotask.net/ATServicesRest/V1.0/ThresholdInformation"
    for recorded in fake.requests:
        assert recorded.headers["apiintegrationcode"] == fake.integration_code
        assert recorded.headers["username"] == fake.username
        assert recorded.headers["secret"] == fake.secret
    assert adapter.guard.usage is not None


async def test_zone_discovery_takes_a_slot_of_the_connections_budget(
    fake: AutotaskFake, seed: DemoSeed
) -> None:
    """Every request to the vendor counts against the connection's limit, the discovery too."""
    budget = CountingBudget()
    adapter = make_adapter(fake, options={"max_concurrency": 2}, budget=budget)
    await adapter.test_connection()
    await adapter.aclose()
    assert len(budget.taken) == len(fake.requests) == 2
    assert {limits.concurrency for limits in budget.taken} == {2}


async def test_zone_url_option_skips_discovery(fake: AutotaskFake, seed: DemoSeed) -> None:
    adapter = make_adapter(fake, options={"zone_url": "https://webservices2.autotask.net/ATServicesRest"})
    await adapter.test_connection()
    await adapter.aclose()
    assert [r.template for r in fake.requests] == ["/ThresholdInformation"]
    assert fake.requests[0].url.startswith("https://webservices2.autotask.net/ATServicesRest/V1.0/")


async def test_refused_secret_is_not_retried(fake: AutotaskFake, seed: DemoSeed) -> None:
    adapter = make_adapter(fake, credentials={**fake.credentials(), "secret": "wrong"})
    with pytest.raises(CredentialsError):
        await adapter.test_connection()
    await adapter.aclose()
    assert fake.call_count("GET", "/ThresholdInformation") == 1  # 401 is never retried


async def test_unknown_user_is_a_credentials_error_naming_username(
    fake: AutotaskFake, seed: DemoSeed
) -> None:
    adapter = make_adapter(fake, credentials={**fake.credentials(), "username": "nobody@x.example"})
    with pytest.raises(CredentialsError) as caught:
        await adapter.test_connection()
    await adapter.aclose()
    assert caught.value.field == "username"


# ---------------------------------------------------------------------------------------------
# Reads
# ---------------------------------------------------------------------------------------------


async def test_list_companies_follows_next_page_url_with_post_and_same_body(fake: AutotaskFake) -> None:
    fake.seed_demo(companies=1203)
    fake.add_company("Dormant Ltd", active=False)
    adapter = make_adapter(fake)
    companies = [c async for c in adapter.list_companies()]
    await adapter.aclose()
    assert len(companies) == 1203
    assert companies[0].name == "Customer 001" and companies[0].identifier == "C0001"
    assert len({c.id for c in companies}) == 1203
    queries = [r for r in fake.requests if r.template.startswith("/Companies")]
    assert [r.template for r in queries] == [
        "/Companies/query",
        "/Companies/query/next",
        "/Companies/query/next",
    ]
    assert all(r.method == "POST" and r.body == queries[0].body for r in queries)
    assert queries[0].body["maxRecords"] == 500
    assert queries[1].query["paging"]


async def test_list_agreements_reads_contracts_with_type_names(
    adapter: AutotaskAdapter, seed: DemoSeed
) -> None:
    cid = seed.company_ids[1]
    agreements = await adapter.list_agreements(str(cid))
    assert [(a.id, a.name, a.type_name, a.active) for a in agreements] == [
        (str(seed.contract_ids[cid]), "Managed Services 002", "Recurring Service", True)
    ]


async def test_list_ticket_options_reads_picklists(adapter: AutotaskAdapter, seed: DemoSeed) -> None:
    options = await adapter.list_ticket_options()
    assert {o.name for o in options["boards"]} == set(seed.queue_ids)
    closed = [o for o in options["statuses"] if o.closed]
    assert [(o.id, o.name) for o in closed] == [("5", "Complete")]
    assert [o.name for o in options["priorities"]] == ["Critical", "High", "Medium", "Low"]
    assert {o.name for o in options["types"]} == {"Security", "Hardware", "Software"}
    assert {(o.name, o.parent_id) for o in options["subtypes"]} >= {("Antivirus", "10")}


# ---------------------------------------------------------------------------------------------
# Tickets
# ---------------------------------------------------------------------------------------------


async def test_create_note_close_ticket(adapter: AutotaskAdapter, fake: AutotaskFake, seed: DemoSeed) -> None:
    ref = await adapter.create_ticket(spec_for(seed))
    ticket = fake.data["Tickets"][int(ref.id)]
    assert ticket["companyID"] == seed.company_ids[0]
    assert ticket["queueID"] == seed.queue_ids["Security Operations"]
    assert (ticket["status"], ticket["priority"], ticket["issueType"]) == (1, 1, 10)
    assert ticket["externalID"] == "cn:ep-1:not_protected"
    assert ref.number == ticket["ticketNumber"] and not ref.closed
    assert ref.url == (
        "https://ww14.autotask.net/Autotask/AutotaskExtend/ExecuteCommand.aspx"
        f"?Code=OpenTicketDetail&TicketID={ref.id}"
    )

    await adapter.add_note(ref.id, "Still unprotected at 11:00.\nSecond line.")
    notes = fake.notes_for(int(ref.id))
    assert [(n["title"], n["noteType"], n["publish"]) for n in notes] == [
        ("Still unprotected at 11:00.", 1, 1)
    ]

    await adapter.close_ticket(ref.id, None, "Protection re-enabled by policy.")
    assert ticket["status"] == 5 and ticket["completedDate"]
    assert ticket["resolution"] == "Protection re-enabled by policy."
    assert [n["title"] for n in fake.notes_for(int(ref.id))] == ["Still unprotected at 11:00.", "Resolution"]

    found = await adapter.find_ticket("cn:ep-1:not_protected", str(seed.company_ids[0]))
    assert found is not None and found.id == ref.id and found.closed

    # Closing again changes nothing and adds no second resolution note.
    fake.reset_calls()
    await adapter.close_ticket(ref.id, "5", "Protection re-enabled by policy.")
    assert len(fake.notes_for(int(ref.id))) == 2
    assert fake.call_count("PATCH") == 0


async def test_create_looks_for_an_open_ticket_with_the_marker_first(
    adapter: AutotaskAdapter, fake: AutotaskFake, seed: DemoSeed
) -> None:
    ref = await adapter.create_ticket(spec_for(seed))
    again = await adapter.create_ticket(spec_for(seed))  # e.g. the core's retry after a crash
    assert again.id == ref.id
    assert fake.call_count("POST", "/Tickets") == 1


async def test_long_marker_is_hashed_into_external_id(
    adapter: AutotaskAdapter, fake: AutotaskFake, seed: DemoSeed
) -> None:
    marker = "cn:" + "x" * 80
    ref = await adapter.create_ticket(spec_for(seed, marker=marker))
    assert fake.data["Tickets"][int(ref.id)]["externalID"] == marker_token(marker)
    assert len(marker_token(marker)) <= 50
    assert (await adapter.find_ticket(marker, str(seed.company_ids[0]))) is not None


async def test_vendor_validation_error_names_the_field(
    adapter: AutotaskAdapter, fake: AutotaskFake, seed: DemoSeed
) -> None:
    with pytest.raises(VendorRequestError) as caught:
        await adapter.create_ticket(spec_for(seed, board_id="424242"))
    assert caught.value.field == "queueID"
    assert "existing entity for queueID" in caught.value.message
    assert fake.call_count("POST", "/Tickets") == 1  # a refused write is never retried


# ---------------------------------------------------------------------------------------------
# Configuration items
# ---------------------------------------------------------------------------------------------


async def test_upsert_configuration_patches_the_changed_udfs_only(
    adapter: AutotaskAdapter, fake: AutotaskFake, seed: DemoSeed
) -> None:
    cid = seed.company_ids[0]
    item_id = seed.configuration_item_ids[cid][0]
    fake.data["ConfigurationItems"][item_id]["userDefinedFields"][0]["value"] = "Protected"
    update = ConfigurationUpdate(
        company_id=str(cid),
        device_name="c001-ws01",
        fields={"Antivirus Status": "Protected", "Threats": "0"},
    )
    assert await adapter.upsert_configuration(update) == str(item_id)
    udfs = {u["name"]: u["value"] for u in fake.data["ConfigurationItems"][item_id]["userDefinedFields"]}
    assert udfs["Antivirus Status"] == "Protected" and udfs["Threats"] == "0"
    patches = [r for r in fake.requests if r.method == "PATCH"]
    assert patches[-1].body == {"id": item_id, "userDefinedFields": [{"name": "Threats", "value": "0"}]}


async def test_upsert_configuration_matches_by_serial(adapter: AutotaskAdapter, seed: DemoSeed) -> None:
    cid = seed.company_ids[1]
    update = ConfigurationUpdate(company_id=str(cid), device_name="renamed-pc", serial_number="SN002002")
    assert await adapter.upsert_configuration(update) == str(seed.configuration_item_ids[cid][1])


async def test_created_configuration_item_carries_the_product_and_udfs(
    adapter: AutotaskAdapter, fake: AutotaskFake, seed: DemoSeed
) -> None:
    cid = seed.company_ids[2]
    update = ConfigurationUpdate(
        company_id=str(cid),
        device_name="NEW-LAPTOP",
        fields={"Threats": "2"},
        create_if_missing=True,
        type_id="1",
    )
    created = await adapter.upsert_configuration(update)
    assert created is not None
    item = fake.data["ConfigurationItems"][int(created)]
    assert (item["companyID"], item["productID"], item["referenceTitle"]) == (
        cid,
        seed.product_id,
        "NEW-LAPTOP",
    )
    assert {"name": "Threats", "value": "2"} in item["userDefinedFields"]


async def test_create_configuration_needs_a_product(fake: AutotaskFake, seed: DemoSeed) -> None:
    adapter = make_adapter(fake)
    update = ConfigurationUpdate(
        company_id=str(seed.company_ids[0]), device_name="NEW", create_if_missing=True
    )
    with pytest.raises(ConfigurationError):
        await adapter.upsert_configuration(update)
    await adapter.aclose()


async def test_unknown_udf_is_reported_with_its_name(adapter: AutotaskAdapter, seed: DemoSeed) -> None:
    cid = seed.company_ids[0]
    update = ConfigurationUpdate(company_id=str(cid), device_name="C001-WS01", fields={"Colour": "blue"})
    with pytest.raises(VendorRequestError) as caught:
        await adapter.upsert_configuration(update)
    assert caught.value.field == "Colour"


# ---------------------------------------------------------------------------------------------
# Billing: seat adjustments are deltas
# ---------------------------------------------------------------------------------------------


async def test_upsert_billing_line_posts_the_difference_once(
    adapter: AutotaskAdapter, fake: AutotaskFake, seed: DemoSeed
) -> None:
    cid = seed.company_ids[0]
    service_line = seed.contract_service_ids[cid]
    result = await adapter.upsert_billing_line(line_for(seed, "8"))
    assert (result.action, result.line_id, result.previous_quantity) == (
        "updated",
        str(service_line),
        Decimal(5),
    )
    assert fake.current_units(service_line) == 8
    assert [a["unitChange"] for a in fake.adjustments] == [3]
    assert fake.adjustments[0]["effectiveDate"] == "2025-03-14T00:00:00"

    again = await adapter.upsert_billing_line(line_for(seed, "8"))
    assert again.action == "unchanged"
    assert len(fake.adjustments) == 1 and fake.current_units(service_line) == 8

    down = await adapter.upsert_billing_line(line_for(seed, "6"))
    assert down.action == "updated" and down.previous_quantity == Decimal(8)
    assert [a["unitChange"] for a in fake.adjustments] == [3, -2]
    assert fake.current_units(service_line) == 6
    # The adjustment split March at the 14th; the first row keeps the seeded count.
    rows = fake.units_for(service_line)
    assert [(r["startDate"][:10], r["endDate"][:10], r["units"]) for r in rows] == [
        ("2025-03-01", "2025-03-13", 5),
        ("2025-03-14", "2025-03-31", 6),
    ]


async def test_billing_ledger_blocks_a_second_post_the_units_do_not_show_yet(
    fake: AutotaskFake, seed: DemoSeed
) -> None:
    clock = Clock()
    adapter = make_adapter(fake, clock=clock)
    cid = seed.company_ids[0]
    # The first POST is lost before Autotask acts on it, but the client cannot know that.
    fake.fail_next(status=500, method="POST", path="/ContractServiceAdjustments")
    with pytest.raises(TransientVendorError):
        await adapter.upsert_billing_line(line_for(seed, "9"))
    with pytest.raises(TransientVendorError) as caught:
        await adapter.upsert_billing_line(line_for(seed, "9"))
    assert caught.value.field == "quantity"
    assert fake.call_count("POST", "/ContractServiceAdjustments") == 1
    clock.now += 901  # the ledger entry expires: the count is re-read and the change posted once
    result = await adapter.upsert_billing_line(line_for(seed, "9"))
    assert result.action == "updated"
    assert fake.current_units(seed.contract_service_ids[cid]) == 9
    await adapter.aclose()


async def test_billing_creates_missing_contract_service_and_updates_prices(
    adapter: AutotaskAdapter, fake: AutotaskFake, seed: DemoSeed
) -> None:
    cid = seed.company_ids[1]
    av = line_for(seed, "4", company=1, product_id=str(seed.service_ids["AV"]), unit_price=Decimal("3.50"))
    created = await adapter.upsert_billing_line(av)
    assert created.action == "created" and created.previous_quantity is None
    service = fake.data["ContractServices"][int(created.line_id)]
    assert (service["contractID"], service["serviceID"]) == (seed.contract_ids[cid], seed.service_ids["AV"])
    assert fake.current_units(service["id"]) == 4

    priced = await adapter.upsert_billing_line(av.model_copy(update={"unit_price": Decimal("3.75")}))
    assert priced.action == "updated" and service["unitPrice"] == 3.75
    assert len(fake.adjustments) == 1


async def test_fractional_seats_are_refused(adapter: AutotaskAdapter, seed: DemoSeed) -> None:
    with pytest.raises(VendorRequestError) as caught:
        await adapter.upsert_billing_line(line_for(seed, "2.5"))
    assert caught.value.field == "quantity"


# ---------------------------------------------------------------------------------------------
# Rate limits, errors, thresholds
# ---------------------------------------------------------------------------------------------


async def test_threshold_back_off_slows_then_refuses(fake: AutotaskFake, seed: DemoSeed) -> None:
    sleeps = Sleeps()
    clock = Clock()
    adapter = make_adapter(
        fake,
        sleep=sleeps,
        clock=clock,
        options={"threshold_check_every": 2, "threshold_slow_delay": 0.75},
    )
    fake.other_usage = 5_500  # other integrations already used 55% of the hour
    await adapter.list_agreements(str(seed.company_ids[0]))
    assert 0.55 <= (adapter.guard.usage or 0) < 0.8
    assert 0.75 in sleeps.calls

    fake.other_usage = 8_500
    fake.reset_calls()
    with pytest.raises(RateLimitedError) as caught:
        await adapter.list_agreements(str(seed.company_ids[0]))
        await adapter.list_agreements(str(seed.company_ids[0]))
    assert caught.value.retry_after == 300
    refused_at = len(fake.requests)
    with pytest.raises(RateLimitedError):  # refused without spending a request
        await adapter.list_agreements(str(seed.company_ids[0]))
    assert len(fake.requests) == refused_at

    fake.other_usage = 0
    clock.now += 301
    assert len(await adapter.list_agreements(str(seed.company_ids[0]))) == 1
    await adapter.aclose()


async def test_vendor_threshold_429_forces_a_threshold_read(fake: AutotaskFake, seed: DemoSeed) -> None:
    adapter = make_adapter(fake, options={"threshold_check_every": 1000})
    await adapter.list_agreements(str(seed.company_ids[0]))
    fake.reset_calls()
    fake.rate_limit(times=5, retry_after=None, path="/Contracts/query")
    with pytest.raises(RateLimitedError):
        await adapter.list_agreements(str(seed.company_ids[0]))
    await adapter.list_agreements(str(seed.company_ids[0]))
    await adapter.aclose()
    assert fake.call_count("GET", "/ThresholdInformation") == 1


async def test_concurrency_is_capped_at_three(fake: AutotaskFake, seed: DemoSeed) -> None:
    import asyncio

    fake.set_latency(0.01)
    adapter = make_adapter(fake)
    await adapter.test_connection()
    active = 0
    peak = 0
    original = fake.app

    async def counting(scope: Any, receive: Any, send: Any) -> None:
        nonlocal active, peak
        active += 1
        peak = max(peak, active)
        try:
            await original(scope, receive, send)
        finally:
            active -= 1

    fake.app = counting  # type: ignore[assignment]
    assert adapter._client is not None
    adapter._client._client._transport = httpx.ASGITransport(app=counting)
    await asyncio.gather(*(adapter.list_agreements(str(cid)) for cid in seed.company_ids * 3))
    await adapter.aclose()
    assert peak == 3


async def test_catalog_reads_picklists_services_and_companies(
    adapter: AutotaskAdapter, fake: AutotaskFake, seed: DemoSeed
) -> None:
    from adapters.base import CatalogKind

    retired = fake.add_service("Retired seat", unit_price=1.0, unit_cost=0.5)
    retired["isActive"] = False
    boards = await adapter.list_catalog(CatalogKind.BOARDS)
    assert {b.id for b in boards} == {str(i) for i in seed.queue_ids.values()}
    assert ("5", True) in {(s.id, s.closed) for s in await adapter.list_catalog(CatalogKind.STATUSES)}
    agreement_types = await adapter.list_catalog(CatalogKind.AGREEMENT_TYPES)
    assert "Recurring Service" in {t.name for t in agreement_types}
    products = await adapter.list_catalog(CatalogKind.PRODUCTS)
    assert [p.id for p in products] == [str(seed.service_ids["EDR"]), str(seed.service_ids["AV"])]
    companies = await adapter.list_catalog(CatalogKind.COMPANIES)
    assert {c.id for c in companies} >= {str(i) for i in seed.company_ids}
