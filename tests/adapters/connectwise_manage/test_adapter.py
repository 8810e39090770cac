"""ConnectWise Manage specifics against the stateful fake: cloud/on-premises discovery, Manage's
paging and `conditions`, the marker in the summary, notes-block and custom-field configurations,
agreement additions. What every PSA must do is `test_conformance.py`'s."""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import pytest

from adapters.base import (
    BillingLine,
    ConfigurationUpdate,
    TicketSpec,
)
from adapters.common import STATUS_BLOCK_BEGIN
from adapters.connectwise_manage import SPEC, ConnectWiseManageAdapter
from adapters.connectwise_manage.adapter import marker_token
from adapters.connectwise_manage.fake import DemoSeed, ManageFake
from adapters.connectwise_manage.models import ManageCredentials, ManageOptions
from adapters.errors import (
    ConfigurationError,
    CredentialsError,
    VendorRequestError,
)
from tests.support.adapter_helpers import (
    CountingBudget,
    Sleeps,
    asgi_transports,
    billing_line,
    build_adapter,
    ticket_spec,
)

SITE = "https://na.myconnectwise.net"


def make_adapter(
    fake: ManageFake,
    *,
    base_url: str = SITE,
    options: dict[str, Any] | None = None,
    credentials: dict[str, str] | None = None,
    sleep: Sleeps | None = None,
    urls: list[str] | None = None,
    budget: CountingBudget | None = None,
) -> ConnectWiseManageAdapter:
    return build_adapter(
        SPEC,
        ConnectWiseManageAdapter,
        connection_id="cw-1",
        base_url=base_url,
        credentials=ManageCredentials(**(credentials or fake.credentials())),
        options=ManageOptions(**(options or {})),
        transport_factory=asgi_transports(fake.app, urls),
        sleep=sleep,
        budget=budget,
    )


@pytest.fixture
def fake() -> ManageFake:
    return ManageFake(is_cloud=True)


@pytest.fixture
def seed(fake: ManageFake) -> DemoSeed:
    return fake.seed_demo(companies=3, devices_per_company=2)


@pytest.fixture
async def adapter(fake: ManageFake, seed: DemoSeed) -> AsyncIterator[ConnectWiseManageAdapter]:
    instance = make_adapter(fake)
    yield instance
    await instance.aclose()


def spec_for(seed: DemoSeed, marker: str = "cn:ep-1:not_protected", **extra: Any) -> TicketSpec:
    ids = {
        "company_id": seed.company_ids[0],
        "board_id": seed.board_id,
        "priority_id": seed.priority_ids["Priority 2 - High"],
        "type_id": seed.type_ids["Security Alert"],
        "status_id": seed.new_status_id,
    }
    return ticket_spec(marker, ids, extra)


def line_for(seed: DemoSeed, quantity: str = "5", **extra: Any) -> BillingLine:
    company = seed.company_ids[0]
    ids = {
        "company_id": company,
        "agreement_id": seed.agreement_ids[company],
        "product_id": "EDR-SEAT",
        "description": "Endpoint detection & response, per endpoint",
    }
    return billing_line(f"bill:{company}:EDR-SEAT", ids, quantity, extra)


# ---------------------------------------------------------------------------------------------
# Declaration, connection, discovery
# ---------------------------------------------------------------------------------------------


def test_spec_declares_manages_fields() -> None:
    assert set(SPEC.credentials_schema()["properties"]) == {
        "company_id",
        "public_key",
        "private_key",
        "client_id",
    }
    assert SPEC.options_schema()["properties"]["api_version"]["default"] == "2025.1"


async def test_cloud_site_discovers_codebase_and_uses_api_prefix(fake: ManageFake, seed: DemoSeed) -> None:
    urls: list[str] = []
    adapter = make_adapter(fake, urls=urls)
    await adapter.test_connection()
    assert urls == [SITE, "https://api-na.myconnectwise.net/v2025_1/apis/3.0"]
    assert fake.call_count("GET", "/login/companyinfo/{companyId}") == 1
    assert fake.call_count("GET", "/system/info") == 1
    assert fake.api_versions == {"2025.1": 1}
    await adapter.aclose()


async def test_codebase_discovery_takes_a_slot_of_the_connections_budget(
    fake: ManageFake, seed: DemoSeed
) -> None:
    """Every request to the vendor counts against the connection's limit, the discovery too: a
    second process's first call would otherwise be one more in flight than the limit."""
    budget = CountingBudget()
    adapter = make_adapter(fake, options={"max_concurrency": 3}, budget=budget)
    await adapter.test_connection()
    await adapter.aclose()
    assert fake.call_count("GET", "/login/companyinfo/{companyId}") == 1
    assert len(budget.taken) == sum(fake.calls.values()) == 2
    assert {limits.concurrency for limits in budget.taken} == {3}


async def test_on_premises_site_keeps_its_host(seed: DemoSeed) -> None:
    fake = ManageFake(is_cloud=False, codebase="v4_6_release/")
    fake.seed_demo(companies=1)
    urls: list[str] = []
    adapter = make_adapter(fake, base_url="https://psa.example.com/", urls=urls)
    await adapter.test_connection()
    assert urls[-1] == "https://psa.example.com/v4_6_release/apis/3.0"
    await adapter.aclose()


async def test_codebase_option_skips_discovery(fake: ManageFake, seed: DemoSeed) -> None:
    urls: list[str] = []
    adapter = make_adapter(fake, options={"codebase": "v2025_1"}, urls=urls)
    await adapter.test_connection()
    assert urls == ["https://api-na.myconnectwise.net/v2025_1/apis/3.0"]
    assert fake.call_count("GET", "/login/companyinfo/{companyId}") == 0
    await adapter.aclose()


async def test_unknown_company_id_is_a_configuration_error(fake: ManageFake, seed: DemoSeed) -> None:
    creds = {**fake.credentials(), "company_id": "nosuchco"}
    adapter = make_adapter(fake, credentials=creds)
    with pytest.raises(ConfigurationError) as info:
        await adapter.test_connection()
    assert info.value.field == "company_id"
    await adapter.aclose()


@pytest.mark.parametrize("wrong", ["public_key", "client_id"])
async def test_wrong_keys_are_refused_without_a_retry(fake: ManageFake, seed: DemoSeed, wrong: str) -> None:
    creds = {**fake.credentials(), wrong: "not-the-right-one"}
    adapter = make_adapter(fake, credentials=creds)
    with pytest.raises(CredentialsError):
        await adapter.test_connection()
    assert fake.call_count("GET", "/system/info") == 1  # Basic auth: nothing to refresh, no retry
    await adapter.aclose()


# ---------------------------------------------------------------------------------------------
# Reads and paging
# ---------------------------------------------------------------------------------------------


async def test_list_companies_pages_forward_only(fake: ManageFake) -> None:
    fake.add_companies(2500)
    adapter = make_adapter(fake)
    companies = [c async for c in adapter.list_companies()]
    assert len(companies) == 2500
    assert len({c.id for c in companies}) == 2500
    assert fake.call_count("GET", "/company/companies") == 3  # 1000 + 1000 + 500
    pages = [r for r in fake.requests if r.template == "/company/companies"]
    assert [r.query.get("pageId") for r in pages] == [None, "1000", "2000"]
    assert all(r.headers["pagination-type"] == "forward-only" for r in pages)
    assert all(r.query["pageSize"] == "1000" for r in pages)
    await adapter.aclose()


async def test_agreements_conditions_preserved_on_page_2(fake: ManageFake) -> None:
    mine = fake.add_company("Mine")["id"]
    other = fake.add_company("Other")["id"]
    for n in range(1500):
        fake.add_agreement(mine if n % 2 else other, f"Agreement {n}")
    fake.add_agreement(mine, "Old", status="Cancelled")
    adapter = make_adapter(fake)
    agreements = await adapter.list_agreements(str(mine))
    assert len(agreements) == 751
    assert {a.company_id for a in agreements} == {str(mine)}
    assert [a.name for a in agreements if not a.active] == ["Old"]
    pages = [r for r in fake.requests if r.template == "/finance/agreements"]
    assert [r.query["page"] for r in pages] == ["1"]  # 751 < 1000: one page

    for n in range(600):
        fake.add_agreement(mine, f"More {n}")
    fake.reset_calls()
    agreements = await adapter.list_agreements(str(mine))
    assert len(agreements) == 1351
    assert {a.company_id for a in agreements} == {str(mine)}
    pages = [r for r in fake.requests if r.template == "/finance/agreements"]
    assert [r.query["page"] for r in pages] == ["1", "2"]
    assert all(r.query["conditions"] == f"company/id = {mine}" for r in pages)
    await adapter.aclose()


async def test_ticket_options(adapter: ConnectWiseManageAdapter, fake: ManageFake, seed: DemoSeed) -> None:
    fake.add_board("Retired", inactive=True)
    fake.add_board_status(seed.board_id, "Old status", inactive=True)
    options = await adapter.list_ticket_options()
    assert [b.name for b in options["boards"]] == ["Security Alerts"]
    assert [s.name for s in options["statuses"]] == ["New", "In Progress", "Waiting Customer", "Closed"]
    assert [s.closed for s in options["statuses"]] == [False, False, False, True]
    assert {s.parent_id for s in options["statuses"]} == {str(seed.board_id)}
    assert options["priorities"][0].name == "Priority 1 - Critical"
    assert {t.name for t in options["types"]} == {"Security Alert", "Maintenance"}


# ---------------------------------------------------------------------------------------------
# Tickets
# ---------------------------------------------------------------------------------------------


async def test_ticket_carries_the_marker_refs_and_a_resolution_note(
    adapter: ConnectWiseManageAdapter, fake: ManageFake, seed: DemoSeed
) -> None:
    spec = spec_for(seed)
    ref = await adapter.create_ticket(spec)
    ticket = fake.tickets.rows[int(ref.id)]
    assert ticket["summary"] == f"WS-001: antivirus protection is off {marker_token(spec.marker)}"
    assert ticket["board"]["id"] == seed.board_id
    assert ticket["priority"]["id"] == seed.priority_ids["Priority 2 - High"]
    assert ticket["type"]["id"] == seed.type_ids["Security Alert"]
    assert ticket["externalXRef"] == spec.marker
    assert ref.url and ref.url.endswith(f"recid={ref.id}")
    assert [n["text"] for n in fake.notes_for(int(ref.id))] == [spec.description]

    await adapter.close_ticket(ref.id, None, "Protection re-enabled; closing.")
    ticket = fake.tickets.rows[int(ref.id)]
    assert ticket["status"]["id"] == seed.closed_status_id and ticket["closedFlag"] is True
    assert fake.notes_for(int(ref.id))[-1]["resolutionFlag"] is True

    # Closing again is a no-op: no second resolution note, no patch.
    patches = fake.call_count("PATCH", "/service/tickets/{id}")
    await adapter.close_ticket(ref.id, str(seed.closed_status_id), "Protection re-enabled; closing.")
    assert len(fake.notes_for(int(ref.id))) == 2
    assert fake.call_count("PATCH", "/service/tickets/{id}") == patches


async def test_find_ticket_condition_escapes_the_marker_and_names_the_company(
    adapter: ConnectWiseManageAdapter, fake: ManageFake, seed: DemoSeed
) -> None:
    spec = spec_for(seed)
    assert await adapter.find_ticket("cn:ep-2:not_protected", spec.company_id) is None
    request = [r for r in fake.requests if r.template == "/service/tickets" and r.method == "GET"][-1]
    assert request.query["conditions"] == (
        f'summary contains "[[]cn:ep-2:not_protected]" and company/id = {spec.company_id}'
    )


async def test_long_summary_keeps_marker_within_100_chars(
    adapter: ConnectWiseManageAdapter, fake: ManageFake, seed: DemoSeed
) -> None:
    spec = spec_for(seed, summary="Endpoint WORKSTATION-0042 " * 10, marker="x" * 80)
    ref = await adapter.create_ticket(spec)
    summary = fake.tickets.rows[int(ref.id)]["summary"]
    assert len(summary) <= 100 and summary.endswith(marker_token(spec.marker))
    assert await adapter.find_ticket(spec.marker, spec.company_id) == ref


async def test_prefix_marker_style(fake: ManageFake, seed: DemoSeed) -> None:
    adapter = make_adapter(fake, options={"marker_style": "prefix"})
    spec = spec_for(seed)
    ref = await adapter.create_ticket(spec)
    assert fake.tickets.rows[int(ref.id)]["summary"].startswith(marker_token(spec.marker) + " WS-001")
    assert (await adapter.find_ticket(spec.marker, spec.company_id)) == ref
    await adapter.aclose()


async def test_vendor_validation_error_names_the_field(
    adapter: ConnectWiseManageAdapter, seed: DemoSeed
) -> None:
    with pytest.raises(VendorRequestError) as info:
        await adapter.create_ticket(spec_for(seed, type_id="999"))
    assert info.value.field == "type"
    assert info.value.status == 400
    with pytest.raises(VendorRequestError) as bad_id:
        await adapter.create_ticket(spec_for(seed, board_id="abc"))
    assert bad_id.value.field == "board_id"


async def test_close_with_explicit_status(
    adapter: ConnectWiseManageAdapter, fake: ManageFake, seed: DemoSeed
) -> None:
    ref = await adapter.create_ticket(spec_for(seed))
    board_statuses = fake.statuses.by_parent[seed.board_id]
    waiting = next(i for i in board_statuses if fake.statuses.rows[i]["name"] == "Waiting Customer")
    await adapter.close_ticket(ref.id, str(waiting), "")
    assert fake.tickets.rows[int(ref.id)]["status"]["id"] == waiting
    assert len(fake.notes_for(int(ref.id))) == 1  # no empty resolution note


# ---------------------------------------------------------------------------------------------
# Configurations
# ---------------------------------------------------------------------------------------------


async def test_configuration_status_block_keeps_the_technicians_notes(
    adapter: ConnectWiseManageAdapter, fake: ManageFake, seed: DemoSeed
) -> None:
    company = seed.company_ids[0]
    name = f"WS-{company:03d}-001"
    config_id = int(fake.configurations.ids[0])
    fake.configurations.rows[config_id]["notes"] = "Front desk PC."
    update = ConfigurationUpdate(
        company_id=str(company), device_name=name, fields={"Antivirus": "Defender", "Protection": "on"}
    )
    assert await adapter.upsert_configuration(update) == str(config_id)
    notes = fake.configurations.rows[config_id]["notes"]
    assert notes.startswith("Front desk PC.\n\n" + STATUS_BLOCK_BEGIN)
    assert "Antivirus: Defender\nProtection: on" in notes

    changed = update.model_copy(update={"fields": {"Antivirus": "Defender", "Protection": "off"}})
    await adapter.upsert_configuration(changed)
    notes = fake.configurations.rows[config_id]["notes"]
    assert notes.startswith("Front desk PC.\n\n")
    assert notes.count(STATUS_BLOCK_BEGIN) == 1 and "Protection: off" in notes


async def test_configuration_found_by_serial_and_quoted_name(
    adapter: ConnectWiseManageAdapter, fake: ManageFake, seed: DemoSeed
) -> None:
    company = seed.company_ids[1]
    odd = fake.add_configuration(company, 'Reception "Main" PC\\1', serial_number="SER-77")
    by_name = ConfigurationUpdate(
        company_id=str(company), device_name='Reception "Main" PC\\1', fields={"a": "1"}
    )
    assert await adapter.upsert_configuration(by_name) == str(odd["id"])
    by_serial = ConfigurationUpdate(
        company_id=str(company), device_name="renamed-pc", serial_number="ser-77", fields={"a": "2"}
    )
    assert await adapter.upsert_configuration(by_serial) == str(odd["id"])
    # a device of the same name in another company is not touched
    other = ConfigurationUpdate(company_id=str(seed.company_ids[2]), device_name='Reception "Main" PC\\1')
    assert await adapter.upsert_configuration(other) is None


async def test_configuration_create_needs_a_type_and_keeps_the_serial(
    adapter: ConnectWiseManageAdapter, fake: ManageFake, seed: DemoSeed
) -> None:
    company = str(seed.company_ids[0])
    missing = ConfigurationUpdate(
        company_id=company, device_name="NEW-LAPTOP", fields={"AV": "ok"}, create_if_missing=True
    )
    with pytest.raises(ConfigurationError) as info:
        await adapter.upsert_configuration(missing)
    assert info.value.field == "type_id"
    create = missing.model_copy(update={"type_id": str(seed.configuration_type_id), "serial_number": "SN-9"})
    new_id = await adapter.upsert_configuration(create)
    assert new_id is not None
    row = fake.configurations.rows[int(new_id)]
    assert (row["name"], row["serialNumber"], row["company"]["id"]) == ("NEW-LAPTOP", "SN-9", int(company))


async def test_configuration_custom_fields(fake: ManageFake, seed: DemoSeed) -> None:
    fake.add_configuration_custom_field("AV Status")
    fake.add_configuration_custom_field("Last Scan")
    adapter = make_adapter(fake, options={"configuration_fields_target": "custom_fields"})
    company = seed.company_ids[0]
    config_id = fake.configurations.ids[0]
    update = ConfigurationUpdate(
        company_id=str(company), device_name=f"WS-{company:03d}-001", fields={"av status": "Protected"}
    )
    await adapter.upsert_configuration(update)
    values = {cf["caption"]: cf["value"] for cf in fake.configurations.rows[config_id]["customFields"]}
    assert values == {"AV Status": "Protected", "Last Scan": None}
    with pytest.raises(ConfigurationError) as info:
        await adapter.upsert_configuration(update.model_copy(update={"fields": {"Nope": "x"}}))
    assert info.value.field == "fields.Nope"
    await adapter.aclose()


# ---------------------------------------------------------------------------------------------
# Billing
# ---------------------------------------------------------------------------------------------


async def test_billing_line_is_an_agreement_addition_marked_in_its_description(
    adapter: ConnectWiseManageAdapter, fake: ManageFake, seed: DemoSeed
) -> None:
    line = line_for(seed)
    agreement = seed.agreement_ids[seed.company_ids[0]]
    await adapter.upsert_billing_line(line)
    await adapter.upsert_billing_line(line.model_copy(update={"quantity": Decimal("7")}))
    [row] = fake.additions_for(agreement)
    assert (row["quantity"], row["unitPrice"], row["unitCost"]) == (7.0, 6.0, 2.5)
    assert row["invoiceDescription"] == line.description
    assert marker_token(line.marker) in row["description"]
    assert fake.call_count("POST", "/finance/agreements/{parentId}/additions") == 1
    assert fake.call_count("PATCH", "/finance/agreements/{parentId}/additions/{id}") == 1


async def test_billing_reads_an_unmarked_product_line_and_adopts_it_only_once_linked(
    adapter: ConnectWiseManageAdapter, fake: ManageFake, seed: DemoSeed
) -> None:
    agreement = seed.agreement_ids[seed.company_ids[0]]
    fake.add_addition(agreement, "AV-SEAT", 3, unit_price=3, unit_cost=1)
    existing = fake.add_addition(agreement, "EDR-SEAT", 4, unit_price=6, unit_cost=2.5)
    fake.add_addition(agreement, "EDR-SEAT", 9, cancelledDate="2024-06-01T00:00:00Z")
    read = await adapter.read_billing_line(line_for(seed, "12.5"))
    assert read is not None and (read.line_id, read.quantity, read.marked) == (str(existing["id"]), 4, False)
    linked = line_for(seed, "12.5").model_copy(update={"line_id": str(existing["id"])})
    result = await adapter.upsert_billing_line(linked)
    assert (result.action, result.line_id, result.previous_quantity) == ("updated", str(existing["id"]), 4)
    assert fake.additions.rows[existing["id"]]["quantity"] == 12.5
    patch = [r for r in fake.requests if r.method == "PATCH"][-1]
    described = f"{line_for(seed).description} {marker_token(line_for(seed).marker)}"
    assert patch.body == [
        {"op": "replace", "path": "quantity", "value": 12.5},
        {"op": "replace", "path": "description", "value": described},
    ]
    assert len(fake.additions_for(agreement)) == 3


async def test_billing_unknown_product_is_a_vendor_error(
    adapter: ConnectWiseManageAdapter, seed: DemoSeed
) -> None:
    with pytest.raises(VendorRequestError) as info:
        await adapter.upsert_billing_line(line_for(seed, product_id="NO-SUCH"))
    assert info.value.field == "product"


# ---------------------------------------------------------------------------------------------
# Catalog
# ---------------------------------------------------------------------------------------------


async def test_catalog_reads_every_look_up_from_its_endpoint(
    adapter: ConnectWiseManageAdapter, fake: ManageFake, seed: DemoSeed
) -> None:
    from adapters.base import CatalogKind

    fake.agreement_type("Retired Plan", inactive=True)
    fake.add_product("OLD-SEAT")["inactiveFlag"] = True
    boards = await adapter.list_catalog(CatalogKind.BOARDS)
    assert [(b.id, b.name) for b in boards] == [(str(seed.board_id), "Security Alerts")]
    statuses = await adapter.list_catalog(CatalogKind.STATUSES)
    assert str(seed.closed_status_id) in {s.id for s in statuses if s.closed}
    assert {p.id for p in await adapter.list_catalog(CatalogKind.PRIORITIES)} == {
        str(i) for i in seed.priority_ids.values()
    }
    types = await adapter.list_catalog(CatalogKind.TICKET_TYPES)
    assert {(t.id, t.parent_id) for t in types} == {
        (str(i), str(seed.board_id)) for i in seed.type_ids.values()
    }
    agreement_types = await adapter.list_catalog(CatalogKind.AGREEMENT_TYPES)
    assert [t.name for t in agreement_types] == ["Managed Services"]  # the inactive one is not offered
    assert fake.call_count("GET", "/finance/agreements/types") == 1
    products = await adapter.list_catalog(CatalogKind.PRODUCTS)
    assert [p.id for p in products] == seed.product_identifiers  # as billing lines name them
    companies = await adapter.list_catalog(CatalogKind.COMPANIES)
    assert [c.id for c in companies] == [str(i) for i in seed.company_ids]


# -- a ticket's configuration ----------------------------------------------------------------------


def _first_configuration(fake: ManageFake, seed: DemoSeed) -> int:
    company = int(seed.company_ids[0])
    return int(next(c["id"] for c in fake.configurations if c["company"]["id"] == company))


async def test_ticket_configuration_is_attached_after_the_create(
    adapter: ConnectWiseManageAdapter, fake: ManageFake, seed: DemoSeed
) -> None:
    config = _first_configuration(fake, seed)
    ref = await adapter.create_ticket(spec_for(seed, configuration_id=str(config)))
    assert fake.ticket_configurations[int(ref.id)] == [config]
    posted = [r for r in fake.requests if r.template == "/service/tickets/{parentId}/configurations"]
    assert [(r.method, r.body) for r in posted if r.method == "POST"] == [("POST", {"id": config})]


async def test_ticket_configuration_post_that_timed_out_is_not_repeated(
    fake: ManageFake, seed: DemoSeed
) -> None:
    config = _first_configuration(fake, seed)
    adapter = make_adapter(fake, sleep=Sleeps())
    try:
        fake.fail_path(
            "/service/tickets/{parentId}/configurations", 504, method="POST", times=1, after_apply=True
        )
        ref = await adapter.create_ticket(spec_for(seed, configuration_id=str(config)))
    finally:
        await adapter.aclose()
    assert fake.ticket_configurations[int(ref.id)] == [config]
    posts = [
        r.status
        for r in fake.requests
        if r.method == "POST" and r.template == "/service/tickets/{parentId}/configurations"
    ]
    assert posts == [504]  # applied, answered with a timeout, looked up rather than posted again


async def test_a_configuration_manage_refuses_leaves_the_ticket_created(
    adapter: ConnectWiseManageAdapter, fake: ManageFake, seed: DemoSeed, caplog: pytest.LogCaptureFixture
) -> None:
    ref = await adapter.create_ticket(spec_for(seed, configuration_id="999999"))
    assert [t["id"] for t in fake.tickets_for(int(seed.company_ids[0]))] == [int(ref.id)]
    assert fake.ticket_configurations.get(int(ref.id), []) == []
    assert any("not attached to configuration 999999" in r.getMessage() for r in caplog.records)
