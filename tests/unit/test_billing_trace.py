"""The devices behind a billed line and the month-over-month diff: pure functions."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from connector.billing import statement, trace
from tests.support import pdf

START, END = trace.period_bounds(date(2026, 10, 1), date(2026, 10, 31))


@dataclass
class Rule:
    id: str = "r-1"
    product: str = "acme edr"
    psa_connection_id: str = "psa"
    count_scope: str = "installed"
    count_method: str = "peak"
    unit_price: Decimal = Decimal("4.50")
    cost_tiers: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class Mapping:
    psa_company_id: str
    psa_company_name: str | None = None


def device(n: int, **changes: Any) -> trace.Device:
    values: dict[str, Any] = {
        "id": f"e-{n}",
        "connection_id": "rmm",
        "client_id": "c-1",
        "hostname": f"PC-{n}",
        "serial_number": f"SN{n}",
        "product": "Acme EDR 12",
        "protected": True,
        "first_seen_at": datetime(2026, 9, 1, tzinfo=UTC),
        "last_seen_at": None,
        "retired_at": None,
        **changes,
    }
    return trace.Device(**values)


def ids(found: list[trace.Counted]) -> list[str]:
    return [c.device_id for c in found]


def test_period_bounds_are_utc_month_edges() -> None:
    assert START == datetime(2026, 10, 1, tzinfo=UTC)
    assert END == datetime(2026, 11, 1, tzinfo=UTC)


def test_owners_are_the_clients_mapped_to_the_company_on_the_rules_psa() -> None:
    mappings = {
        ("rmm", "c-1", "psa"): Mapping("100"),
        ("rmm", "c-2", "psa"): Mapping("100"),
        ("rmm", "c-3", "psa"): Mapping("200"),
        ("rmm", "c-4", "other-psa"): Mapping("100"),
    }
    assert trace.owners(Rule(), "100", mappings) == {("rmm", "c-1"), ("rmm", "c-2")}


def test_a_line_counts_its_clients_devices_with_the_product_present_in_the_period() -> None:
    devices = [
        device(1),
        device(2, client_id="c-other"),
        device(3, product="Other AV"),
        device(4, product=None),
        device(5, first_seen_at=datetime(2026, 11, 1, tzinfo=UTC)),  # arrived after the period
        device(6, retired_at=datetime(2026, 9, 30, tzinfo=UTC)),  # gone before it
        device(7, retired_at=datetime(2026, 10, 10, tzinfo=UTC)),  # gone during it: billed at peak
        device(8, protected=False),
    ]
    found = trace.counted(Rule(), {("rmm", "c-1")}, devices, START, END)
    assert ids(found) == ["e-1", "e-7", "e-8"]
    assert found[0].first_seen_at == START  # known before the period: seen from its start
    assert found[0].last_seen_at == datetime(2026, 10, 31, 23, 59, 59, tzinfo=UTC)
    assert found[1].last_seen_at == datetime(2026, 10, 10, tzinfo=UTC)


def test_scope_and_count_method_narrow_the_list() -> None:
    devices = [
        device(1),
        device(7, retired_at=datetime(2026, 10, 10, tzinfo=UTC)),
        device(8, protected=False),
    ]
    clients = {("rmm", "c-1")}
    assert ids(trace.counted(Rule(count_scope="protected"), clients, devices, START, END)) == ["e-1", "e-7"]
    assert ids(trace.counted(Rule(count_method="end_of_period"), clients, devices, START, END)) == [
        "e-1",
        "e-8",
    ]


def test_console_rules_count_agents_that_report_no_product() -> None:
    agents = [device(1, product=None), device(2, product="Acme EDR Complete")]
    assert ids(trace.counted(Rule(count_scope="console_seats"), {("rmm", "c-1")}, agents, START, END)) == [
        "e-1",
        "e-2",
    ]


def counted(n: int) -> trace.Counted:
    return trace.Counted(f"e-{n}", f"PC-{n}", None, START, END)


def test_changes_list_devices_added_and_removed_per_product() -> None:
    previous = {"acme edr": [counted(1), counted(2)], "backup": [counted(9)]}
    current = {"acme edr": [counted(2), counted(3)], "mail": [counted(5)]}
    result = {c.product: c for c in trace.changes(previous, current)}
    assert list(result) == ["acme edr", "backup", "mail"]
    edr = result["acme edr"]
    assert (edr.previous_count, edr.count) == (2, 2)
    assert ids(edr.added) == ["e-3"] and ids(edr.removed) == ["e-1"]
    assert (result["backup"].count, ids(result["backup"].removed)) == (None, ["e-9"])
    assert (result["mail"].previous_count, ids(result["mail"].added)) == (None, ["e-5"])


def test_no_previous_period_means_everything_is_added() -> None:
    [change] = trace.changes({}, {"acme edr": [counted(1)]})
    assert ids(change.added) == ["e-1"] and change.removed == []


def test_statement_totals_round_per_line_and_add_up() -> None:
    document = statement.Statement(
        "2026-10",
        "100",
        "Acme & Sons",
        [
            statement.StatementLine("acme edr", 3, Decimal("4.335")),
            statement.StatementLine("backup", 2, Decimal("1.005")),
        ],
    )
    assert [line.total for line in document.lines] == [Decimal("13.01"), Decimal("2.01")]
    assert document.total == Decimal("15.02")
    page = statement.html(document)
    assert "Acme &amp; Sons" in page and '<th class=num id="grand-total">$15.02</th>' in page
    assert "<td class=num>$4.335</td>" in page  # a unit price keeps its digits
    assert statement.pdf(document).startswith(b"%PDF")


def test_statement_amounts_are_in_the_tenants_currency() -> None:
    lines = [statement.StatementLine("acme edr", 300, Decimal("4.335"))]
    euros = statement.Statement("2026-10", "100", "Acme", lines, currency="EUR", locale="de_DE")
    page = statement.html(euros)
    assert '<th class=num id="grand-total">1.300,50\xa0€</th>' in page and "Amounts in EUR." in page
    assert "4,335\xa0€" in page and "$" not in page
    # the PDF's core fonts speak Windows-1252: the euro sign is kept
    shown = pdf.text(statement.pdf(euros)).encode("latin-1").decode("cp1252")
    assert "1.300,50\xa0€" in shown and "4,335\xa0€" in shown
    # a symbol those fonts lack is written as the currency's code, not as "?"
    rupees = statement.Statement("2026-10", "100", "Acme", lines, currency="INR", locale="en_IN")
    assert "₹" in statement.html(rupees)
    shown = pdf.text(statement.pdf(rupees))
    assert "INR\xa01,300.50" in shown and "?" not in shown
