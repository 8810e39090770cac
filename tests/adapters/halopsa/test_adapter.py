"""HaloPSA specifics against the stateful fake: the OAuth token flow, Halo's paging and filters,
actions with outcomes, asset notes and custom fields, recurring-invoice lines. What every PSA must
do is `test_conformance.py`'s."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from adapters.base import BillingLine, ConfigurationUpdate, ConnectionContext, TicketSpec
from adapters.common import STATUS_BLOCK_BEGIN
from adapters.errors import (
    ConfigurationError,
    CredentialsError,
    VendorRequestError,
)
from adapters.halopsa import SPEC, HaloPsaAdapter
from adapters.halopsa.adapter import marker_token
from adapters.halopsa.fake import DemoSeed, HaloFake
from adapters.halopsa.models import HaloCredentials, HaloOptions
from tests.support.adapter_helpers import (
    Clock,
    Sleeps,
    asgi_transports,
    billing_line,
    build_adapter,
    ticket_spec,
)

INSTANCE = "https://acme.halopsa.com"


def make_adapter(
    fake: HaloFake,
    *,
    options: dict[str, Any] | None = None,
    credentials: dict[str, Any] | None = None,
    sleep: Sleeps | None = None,
    clock: Clock | None = None,
    urls: list[str] | None = None,
) -> HaloPsaAdapter:
    return build_adapter(
        SPEC,
        HaloPsaAdapter,
        connection_id="halo-1",
        base_url=INSTANCE,
        credentials=HaloCredentials(**(credentials or fake.credentials())),
        options=HaloOptions(**(options or {})),
        transport_factory=asgi_transports(fake.app, urls),
        sleep=sleep,
        extra={"clock": clock} if clock else {},
    )


@pytest.fixture
def fake() -> HaloFake:
    return HaloFake(tenant="acme")


@pytest.fixture
def seed(fake: HaloFake) -> DemoSeed:
    return fake.seed_demo(clients=3, devices_per_client=2)


@pytest.fixture
async def adapter(fake: HaloFake, seed: DemoSeed) -> AsyncIterator[HaloPsaAdapter]:
    instance = make_adapter(fake)
    yield instance
    await instance.aclose()


def spec_for(seed: DemoSeed, marker: str = "cn:ep-1:not_protected", **extra: Any) -> TicketSpec:
    ids = {
        "company_id": seed.client_ids[0],
        "board_id": seed.team_ids["Security Operations"],
        "priority_id": seed.priority_ids["High"],
        "type_id": seed.type_ids["Security Alert"],
        "status_id": seed.new_status_id,
    }
    return ticket_spec(marker, ids, extra)


def line_for(seed: DemoSeed, quantity: str = "5", **extra: Any) -> BillingLine:
    client = seed.client_ids[0]
    ids = {
        "company_id": client,
        "agreement_id": seed.contract_ids[client],
        "product_id": seed.item_ids["EDR-SEAT"],
        "description": "Endpoint detection & response, per endpoint",
    }
    return billing_line(f"bill:{client}:EDR-SEAT", ids, quantity, extra)


# ---------------------------------------------------------------------------------------------
# Declaration and connection
# ---------------------------------------------------------------------------------------------


def test_spec_declares_halos_fields() -> None:
    assert set(SPEC.credentials_schema()["properties"]) == {"client_id", "client_secret", "tenant", "scope"}


async def test_urls_token_request_and_connection_check(fake: HaloFake, seed: DemoSeed) -> None:
    urls: list[str] = []
    adapter = make_adapter(fake, urls=urls)
    await adapter.test_connection()
    await adapter.aclose()
    assert sorted(urls) == [f"{INSTANCE}/api", f"{INSTANCE}/auth"]
    assert fake.token_requests == [
        {
            "grant_type": "client_credentials",
            "client_id": "connector-app",
            "client_secret": "halo-secret-1",
            "scope": "all",
        }
    ]
    token_call = next(r for r in fake.requests if r.path == "/auth/token")
    assert token_call.query == {"tenant": "acme"}


async def test_base_url_with_api_suffix_is_accepted(fake: HaloFake, seed: DemoSeed) -> None:
    ctx = ConnectionContext(
        connection_id="halo-2",
        base_url="acme.halopsa.com/api/",
        credentials=HaloCredentials(**fake.credentials()),
        options=HaloOptions(),
        transport_factory=fake.transport_factory,
    )
    adapter = HaloPsaAdapter(ctx)
    assert adapter.api_base == f"{INSTANCE}/api"
    await adapter.test_connection()
    await adapter.aclose()


async def test_wrong_secret_is_a_credentials_error_naming_it(fake: HaloFake, seed: DemoSeed) -> None:
    adapter = make_adapter(fake, credentials={**fake.credentials(), "client_secret": "nope"})
    with pytest.raises(CredentialsError) as info:
        await adapter.test_connection()
    assert info.value.field == "client_secret"
    assert "invalid_client" in info.value.message
    await adapter.aclose()


async def test_wrong_tenant_is_a_credentials_error_naming_it(fake: HaloFake, seed: DemoSeed) -> None:
    adapter = make_adapter(fake, credentials={**fake.credentials(), "tenant": "other"})
    with pytest.raises(CredentialsError) as info:
        await adapter.test_connection()
    assert info.value.field == "tenant"
    assert fake.call_count("POST", "/auth/token") == 1  # a refused grant is not retried
    await adapter.aclose()


async def test_refused_token_on_api_is_a_credentials_error(fake: HaloFake, seed: DemoSeed) -> None:
    adapter = make_adapter(fake)
    await adapter.test_connection()
    fake.fail_next(2, 401, path="/Client")
    with pytest.raises(CredentialsError):
        await adapter.test_connection()
    fake.fail_next(1, 403, path="/Client")
    with pytest.raises(CredentialsError):
        await adapter.test_connection()
    await adapter.aclose()


# ---------------------------------------------------------------------------------------------
# Token refresh
# ---------------------------------------------------------------------------------------------


async def test_token_is_refreshed_before_it_expires(seed: DemoSeed) -> None:
    fake = HaloFake(token_lifetime=300)
    fake.seed_demo(clients=1)
    clock = Clock()
    adapter = make_adapter(fake, clock=clock, options={"token_refresh_margin": 60})
    await adapter.test_connection()
    clock.now += 200
    fake.advance(200)
    await adapter.test_connection()
    assert fake.call_count("POST", "/auth/token") == 1
    clock.now += 50  # 250s: inside the refresh margin
    fake.advance(50)
    await adapter.test_connection()
    assert fake.call_count("POST", "/auth/token") == 2
    assert [r.status for r in fake.requests if r.path == "/Client"] == [200, 200, 200]
    await adapter.aclose()


async def test_token_is_refreshed_once_on_401(adapter: HaloPsaAdapter, fake: HaloFake) -> None:
    await adapter.test_connection()
    fake.expire_tokens()
    await adapter.test_connection()
    assert fake.call_count("POST", "/auth/token") == 2
    assert [r.status for r in fake.requests if r.path == "/Client"] == [200, 401, 200]


# ---------------------------------------------------------------------------------------------
# Companies, agreements, options
# ---------------------------------------------------------------------------------------------


async def test_list_companies_pages_through_all_clients(fake: HaloFake, seed: DemoSeed) -> None:
    fake.add_client("Dormant Co", inactive=True)
    fake.add_client("  Spaced   Name  ")
    fake.add_client("")
    adapter = make_adapter(fake, options={"page_size": 2})
    companies = [c async for c in adapter.list_companies()]
    await adapter.aclose()
    assert [c.name for c in companies] == [
        "Client 001 Ltd",
        "Client 002 Ltd",
        "Client 003 Ltd",
        "Spaced Name",
        f"Client {max(fake.clients)}",
    ]
    pages = [r.query for r in fake.requests if r.path == "/Client"]
    assert [p["page_no"] for p in pages] == ["1", "2", "3"]
    assert all(p["pageinate"] == "true" and p["page_size"] == "2" for p in pages)


async def test_list_agreements_reads_client_contracts(
    adapter: HaloPsaAdapter, fake: HaloFake, seed: DemoSeed
) -> None:
    client = seed.client_ids[1]
    fake.add_contract(client, "OLD-1", expired=True)
    agreements = await adapter.list_agreements(str(client))
    assert [(a.id, a.name, a.active) for a in agreements] == [
        (str(seed.contract_ids[client]), "MSA-002", True),
        (str(max(fake.contracts)), "OLD-1", False),
    ]
    assert all(a.company_id == str(client) for a in agreements)


async def test_list_ticket_options(adapter: HaloPsaAdapter, seed: DemoSeed) -> None:
    options = await adapter.list_ticket_options()
    assert [o.name for o in options["boards"]] == ["Service Desk", "Security Operations"]
    assert [(o.name, o.closed) for o in options["statuses"]][-1] == ("Closed", True)
    assert {o.name for o in options["types"]} == {"Incident", "Security Alert", "Service Request"}
    assert [(o.id, o.parent_id) for o in options["priorities"]][:2] == [("1", "1"), ("2", "1")]


# ---------------------------------------------------------------------------------------------
# Tickets
# ---------------------------------------------------------------------------------------------


async def test_create_note_close_ticket(adapter: HaloPsaAdapter, fake: HaloFake, seed: DemoSeed) -> None:
    spec = spec_for(seed)
    ref = await adapter.create_ticket(spec)
    ticket = fake.tickets[int(ref.id)]
    assert ticket["summary"] == f"WS-001: antivirus protection is off {marker_token(spec.marker)}"
    assert ticket["team_id"] == seed.team_ids["Security Operations"]
    assert ticket["tickettype_id"] == seed.type_ids["Security Alert"]
    assert ticket["priority_id"] == 2 and ticket["status_id"] == 1
    assert ref.url == f"{INSTANCE}/ticket?id={ref.id}" and not ref.closed

    await adapter.add_note(ref.id, "Still unprotected at 10:00.")
    await adapter.close_ticket(ref.id, None, "Protection re-enabled by the RMM.")
    actions = fake.actions_for(int(ref.id))
    assert [(a["outcome"], a["note"], a["new_status"]) for a in actions] == [
        ("Private Note", "Still unprotected at 10:00.", None),
        ("Close", "Protection re-enabled by the RMM.", 9),
    ]
    assert ticket["status_id"] == 9 and ticket["hasbeenclosed"]

    await adapter.close_ticket(ref.id, None, "Protection re-enabled by the RMM.")
    assert len(fake.actions_for(int(ref.id))) == 2
    found = await adapter.find_ticket(spec.marker, spec.company_id)
    assert found is not None and found.id == ref.id and found.closed


async def test_find_ticket_by_marker_prefers_open_and_checks_client(
    adapter: HaloPsaAdapter, fake: HaloFake, seed: DemoSeed
) -> None:
    spec = spec_for(seed)
    assert await adapter.find_ticket(spec.marker, spec.company_id) is None
    token = marker_token(spec.marker)
    closed = fake.add_ticket(seed.client_ids[0], f"old {token}", status_id=9)
    other_client = fake.add_ticket(seed.client_ids[1], f"elsewhere {token}")
    fake.add_ticket(seed.client_ids[0], "unrelated cn:ep-1:not_protected mention")
    open_one = fake.add_ticket(seed.client_ids[0], f"current {token}")
    found = await adapter.find_ticket(spec.marker, spec.company_id)
    assert found is not None and found.id == str(open_one["id"]) and not found.closed
    assert found.id not in (str(closed["id"]), str(other_client["id"]))
    search = next(r.query for r in fake.requests if r.path == "/Tickets")
    assert search["client_id"] == str(seed.client_ids[0]) and search["search"] == token[1:-1]


async def test_close_after_timeout_checks_the_status(
    adapter: HaloPsaAdapter, fake: HaloFake, seed: DemoSeed
) -> None:
    ref = await adapter.create_ticket(spec_for(seed))
    fake.timeout_next(method="POST", path="/Actions")
    await adapter.close_ticket(ref.id, "9", "Resolved.")
    assert len(fake.actions_for(int(ref.id))) == 1


async def test_halo_validation_errors_name_the_field(fake: HaloFake, seed: DemoSeed) -> None:
    adapter = make_adapter(fake, options={"note_outcome": "No Such Outcome"})
    ref = await adapter.create_ticket(spec_for(seed))
    with pytest.raises(VendorRequestError) as info:
        await adapter.add_note(ref.id, "hello")
    assert info.value.field == "outcome"
    assert info.value.message == "An Outcome must be entered for this Action"
    with pytest.raises(VendorRequestError) as bad_client:
        await adapter.create_ticket(spec_for(seed, company_id="999"))
    assert bad_client.value.field == "client_id" and bad_client.value.status == 400
    with pytest.raises(VendorRequestError) as bad_type:
        await adapter.create_ticket(spec_for(seed, type_id="77"))
    assert bad_type.value.field == "tickettype_id"
    with pytest.raises(VendorRequestError) as not_an_id:
        await adapter.add_note("abc", "x")
    assert not_an_id.value.field == "ticket_id"
    await adapter.aclose()


async def test_outcome_ids_and_marker_custom_field(fake: HaloFake, seed: DemoSeed) -> None:
    adapter = make_adapter(
        fake, options={"note_outcome_id": 8, "close_outcome_id": 9, "marker_custom_field_id": 201}
    )
    spec = spec_for(seed)
    ref = await adapter.create_ticket(spec)
    await adapter.add_note(ref.id, "n")
    await adapter.close_ticket(ref.id, None, "done")
    await adapter.aclose()
    assert fake.tickets[int(ref.id)]["customfields"] == [{"id": 201, "value": spec.marker}]
    assert [a["outcome"] for a in fake.actions_for(int(ref.id))] == ["Note", "Close"]


# ---------------------------------------------------------------------------------------------
# Assets
# ---------------------------------------------------------------------------------------------


async def test_asset_status_block_keeps_what_was_there(
    adapter: HaloPsaAdapter, fake: HaloFake, seed: DemoSeed
) -> None:
    client = seed.client_ids[0]
    asset = fake.assets_for(client)[0]
    asset["notes"] = "Bought 2023."
    update = ConfigurationUpdate(
        company_id=str(client),
        device_name=asset["inventory_number"].lower(),
        fields={"AV status": "protected", "Definitions": "2026-01-01"},
    )
    assert await adapter.upsert_configuration(update) == str(asset["id"])
    assert asset["notes"].startswith("Bought 2023.\n\n" + STATUS_BLOCK_BEGIN)
    assert "AV status: protected" in asset["notes"]
    changed = update.model_copy(update={"fields": {"AV status": "disabled", "Definitions": "2026-01-01"}})
    await adapter.upsert_configuration(changed)
    assert asset["notes"].startswith("Bought 2023.\n\n")
    assert asset["notes"].count(STATUS_BLOCK_BEGIN) == 1 and "AV status: disabled" in asset["notes"]


async def test_asset_create_needs_a_type_and_lands_on_the_clients_site(
    adapter: HaloPsaAdapter, fake: HaloFake, seed: DemoSeed
) -> None:
    client = seed.client_ids[2]
    update = ConfigurationUpdate(
        company_id=str(client), device_name="NEW-LAPTOP", fields={"AV": "on"}, create_if_missing=True
    )
    with pytest.raises(ConfigurationError) as info:
        await adapter.upsert_configuration(update)
    assert info.value.field == "type_id"
    asset_id = await adapter.upsert_configuration(
        update.model_copy(update={"type_id": str(seed.asset_type_id)})
    )
    [created] = [a for a in fake.assets_for(client) if a["inventory_number"] == "NEW-LAPTOP"]
    assert str(created["id"]) == asset_id
    assert created["site_id"] == seed.site_ids[client] and "AV: on" in created["notes"]


async def test_asset_custom_fields_target(fake: HaloFake, seed: DemoSeed) -> None:
    adapter = make_adapter(fake, options={"asset_fields_target": "customfields"})
    client = seed.client_ids[0]
    asset = fake.assets_for(client)[1]
    update = ConfigurationUpdate(
        company_id=str(client), device_name=asset["inventory_number"], fields={"AV Status": "protected"}
    )
    await adapter.upsert_configuration(update)
    values = {cf["label"]: cf["value"] for cf in asset["customfields"]}
    assert values == {"AV Product": None, "AV Status": "protected"}
    with pytest.raises(ConfigurationError) as info:
        await adapter.upsert_configuration(update.model_copy(update={"fields": {"Nope": "x"}}))
    assert info.value.field == "fields.Nope"
    await adapter.aclose()


# ---------------------------------------------------------------------------------------------
# Billing
# ---------------------------------------------------------------------------------------------


async def test_billing_line_is_marked_and_the_other_lines_go_back_untouched(
    adapter: HaloPsaAdapter, fake: HaloFake, seed: DemoSeed
) -> None:
    client = seed.client_ids[0]
    invoice = fake.recurring_invoices[seed.recurring_invoice_ids[client]]
    gold = dict(invoice["lines"][0])
    await adapter.upsert_billing_line(line_for(seed, "5"))
    await adapter.upsert_billing_line(line_for(seed, "7"))
    lines = invoice["lines"]
    [edr] = [line for line in lines if line["_itemid"] == seed.item_ids["EDR-SEAT"]]
    assert (edr["qty_order"], edr["unit_price"], edr["unit_cost"]) == (7.0, 6.0, 2.5)
    assert edr["item_internal_reference"] == marker_token(line_for(seed).marker)
    assert lines[0] == gold  # the other line went back untouched
    assert fake.call_count("POST", "/RecurringInvoice") == 2


async def test_billing_line_found_by_item_when_unmarked_is_read_and_written_once_linked(
    adapter: HaloPsaAdapter, fake: HaloFake, seed: DemoSeed
) -> None:
    client = seed.client_ids[1]
    invoice_id = seed.recurring_invoice_ids[client]
    manual = fake.add_invoice_line(invoice_id, seed.item_ids["EDR-SEAT"], 3, 6.0, unit_cost=2.5)
    line = line_for(
        seed,
        "4",
        company_id=str(client),
        agreement_id=str(seed.contract_ids[client]),
        marker=f"bill:{client}:EDR-SEAT",
    )
    read = await adapter.read_billing_line(line)
    assert read is not None and (read.line_id, read.quantity, read.marked) == (str(manual["id"]), 3, False)
    result = await adapter.upsert_billing_line(line.model_copy(update={"line_id": str(manual["id"])}))
    assert (result.action, result.line_id) == ("updated", str(manual["id"]))
    assert len(fake.recurring_invoices[invoice_id]["lines"]) == 2


async def test_billing_without_recurring_invoice_is_a_configuration_error(
    adapter: HaloPsaAdapter, fake: HaloFake, seed: DemoSeed
) -> None:
    client = seed.client_ids[0]
    bare = fake.add_contract(client, "NO-INVOICE")
    with pytest.raises(ConfigurationError) as info:
        await adapter.upsert_billing_line(line_for(seed, agreement_id=str(bare["id"])))
    assert info.value.field == "agreement_id"
    with pytest.raises(VendorRequestError) as bad_item:
        await adapter.upsert_billing_line(line_for(seed, product_id="424242"))
    assert bad_item.value.field == "_itemid"


# ---------------------------------------------------------------------------------------------
# Resilience
# ---------------------------------------------------------------------------------------------


async def test_slow_responses_still_work(fake: HaloFake, seed: DemoSeed) -> None:
    fake.set_latency(0.01)
    adapter = make_adapter(fake)
    assert len([c async for c in adapter.list_companies()]) == 3
    await adapter.aclose()


async def test_catalog_reads_teams_items_contracts_and_clients(
    adapter: HaloPsaAdapter, fake: HaloFake, seed: DemoSeed
) -> None:
    from adapters.base import CatalogKind

    boards = await adapter.list_catalog(CatalogKind.BOARDS)
    assert [b.name for b in boards] == ["Service Desk", "Security Operations"]
    products = await adapter.list_catalog(CatalogKind.PRODUCTS)
    assert {p.id for p in products} == {str(i) for i in seed.item_ids.values()}
    agreement_types = await adapter.list_catalog(CatalogKind.AGREEMENT_TYPES)
    assert agreement_types[0].name == "Contract"
    assert {f"MSA-{n + 1:03d}" for n in range(len(seed.client_ids))} <= {t.name for t in agreement_types}
    companies = await adapter.list_catalog(CatalogKind.COMPANIES)
    assert {c.id for c in companies} >= {str(i) for i in seed.client_ids}
