"""Billing models on a rule, without a database (`billing.domain`): device categories, included seats
and minimum quantity, per-company price overrides, billing in arrears and proration."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

import pytest

from connector.billing import domain as b
from connector.billing.reconciliation import reconcile


@dataclass(frozen=True)
class Rule:
    product: str = "acme edr"
    count_scope: str = "installed"
    count_method: str = "peak"
    id: str = "rule-1"
    psa_connection_id: str = "psa"
    unit_price: Decimal = Decimal("4.50")
    cost_tiers: list[dict[str, Any]] = field(
        default_factory=lambda: [
            {"min_seats": 1, "unit_cost": "2.10"},
            {"min_seats": 50, "unit_cost": "1.85"},
        ]
    )
    device_category: str | None = None
    included_seats: int = 0
    minimum_quantity: int = 0
    billing_timing: str = "current"


@dataclass(frozen=True)
class Mapping:
    psa_company_id: str
    psa_company_name: str | None = None


MAPPINGS = {
    ("rmm", "c-1", "psa"): Mapping("1", "Company 1"),
    ("rmm", "c-2", "psa"): Mapping("2", "Company 2"),
    ("rmm", "c-3", "psa"): Mapping("3", "Company 3"),
}
OCTOBER = (date(2026, 10, 1), date(2026, 10, 31))


def usage(
    client: str, counts: list[int], category: str = "workstation", start: date = date(2026, 10, 1)
) -> list[b.UsageRow]:
    return [
        b.UsageRow("rmm", client, "Acme EDR 12", start + timedelta(days=n), c, c, c, c, category)
        for n, c in enumerate(counts)
    ]


def lines(rule: Rule, rows: list[b.UsageRow], **kwargs: Any) -> dict[str, b.Line]:
    billed = b.lines_for_rule(rule, rows, MAPPINGS, period=kwargs.pop("period", OCTOBER), **kwargs)
    return {line.company_id: line for line in billed.lines}


# -- device categories ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("device_type", "os_name", "expected"),
    [
        ("server", "Windows 11 Pro", "server"),  # the RMM's type comes first
        ("workstation", "Windows Server 2022", "workstation"),
        ("Laptop", None, "workstation"),
        ("desktop", None, "workstation"),
        ("vmware_vm_guest", "Microsoft Windows Server 2019 Standard", "server"),
        (None, "Ubuntu 22.04 Server", "server"),
        (None, "Microsoft Windows 10 Pro", "workstation"),
        (None, "Windows 11 Enterprise", "workstation"),
        (None, "macOS 14.5 Sonoma", "workstation"),
        (None, "Mac OS X 10.15", "workstation"),
        (None, "Linux Mint 21", "workstation"),
        (None, "Ubuntu 24.04 Desktop", "workstation"),
        (None, "Ubuntu 22.04", "other"),  # a Linux that does not say what it is
        (None, "Android 14", "other"),
        (None, None, "other"),
        ("", "", "other"),
    ],
)
def test_device_category_from_the_rmm_type_then_the_os_name(
    device_type: str | None, os_name: str | None, expected: str
) -> None:
    assert b.device_category(device_type, os_name) == expected


def test_a_category_rule_counts_only_its_category_and_a_rule_without_one_counts_all() -> None:
    rows = usage("c-1", [10, 12], "workstation") + usage("c-1", [3, 2], "server") + usage("c-1", [1], "other")

    assert lines(Rule(device_category="server"), rows)["1"].quantity == 3
    assert lines(Rule(device_category="workstation"), rows)["1"].quantity == 12
    assert lines(Rule(device_category="other"), rows)["1"].quantity == 1
    # Without a category the day's categories add up before the peak: 10+3+1, 12+2.
    assert lines(Rule(), rows)["1"].quantity == 14


def test_rows_from_before_categories_count_only_for_rules_without_a_category() -> None:
    legacy = usage("c-1", [20, 20], category="")
    upgrade_day = usage("c-1", [15], "workstation", start=date(2026, 10, 2)) + usage(
        "c-1", [4], "server", start=date(2026, 10, 2)
    )

    assert lines(Rule(), legacy + upgrade_day)["1"].quantity == 20  # the day's higher peak, not 39
    assert lines(Rule(device_category="server"), legacy + upgrade_day)["1"].quantity == 4
    assert lines(Rule(device_category="server"), legacy) == {}


# -- included seats and minimum ---------------------------------------------------------------------


def test_included_seats_leave_only_the_overage_to_bill() -> None:
    rows = usage("c-1", [25]) + usage("c-2", [8])

    billed = lines(Rule(included_seats=10), rows)

    assert billed["1"].quantity == 15
    assert billed["1"].counted == 25
    assert billed["1"].total == Decimal("67.50")
    assert "2" not in billed  # 8 seats within the 10 included: nothing beyond the fixed fee


def test_included_seats_still_count_towards_the_cost_tier() -> None:
    rows = usage("c-1", [40]) + usage("c-2", [10])

    billed = lines(Rule(included_seats=10), rows)

    assert billed["1"].unit_cost == Decimal("1.85")  # 50 seats counted reach the second tier
    assert billed["1"].cost == Decimal("55.50")  # on the 30 seats billed


def test_minimum_applies_to_the_quantity_after_included_seats() -> None:
    rule = Rule(included_seats=10, minimum_quantity=5)

    assert lines(rule, usage("c-1", [12]))["1"].quantity == 5  # 2 beyond the included, raised to 5
    assert lines(rule, usage("c-1", [30]))["1"].quantity == 20
    assert lines(rule, usage("c-1", [3]))["1"].quantity == 5


def test_minimum_with_zero_usage_bills_a_company_the_rule_counts_or_prices() -> None:
    rows = usage("c-1", [0, 0])  # the product is there, on no endpoint this month

    billed = lines(Rule(minimum_quantity=3), rows, overrides={"2": Decimal("3.00")})

    assert billed["1"].quantity == 3 and billed["1"].counted == 0
    assert billed["2"].quantity == 3  # no usage, but an agreed price for the rule
    assert billed["2"].total == Decimal("9.00")
    assert "3" not in billed  # neither counted nor priced: not a customer of the product
    assert lines(Rule(), rows) == {}  # without a minimum nothing is billed


# -- per-company prices -----------------------------------------------------------------------------


def test_a_price_override_prices_its_company_only() -> None:
    rows = usage("c-1", [10]) + usage("c-2", [10])

    billed = lines(Rule(), rows, overrides={"2": Decimal("3.7500")})

    assert (billed["1"].unit_price, billed["1"].overridden) == (Decimal("4.50"), False)
    assert (billed["2"].unit_price, billed["2"].overridden) == (Decimal("3.7500"), True)
    assert billed["2"].total == Decimal("37.50")
    assert billed["2"].unit_cost == billed["1"].unit_cost  # the cost is the tier's either way
    assert billed["2"].margin == Decimal("16.50")


def test_a_price_override_of_zero_is_a_price() -> None:
    billed = lines(Rule(), usage("c-1", [10]), overrides={"1": Decimal(0)})

    assert billed["1"].total == Decimal("0.00") and billed["1"].margin == Decimal("-21.00")


# -- arrears ----------------------------------------------------------------------------------------


def test_previous_period_of_january_is_the_previous_december() -> None:
    assert b.previous_period(date(2027, 1, 1)) == (date(2026, 12, 1), date(2026, 12, 31))
    assert b.previous_period(date(2026, 3, 1)) == (date(2026, 2, 1), date(2026, 2, 28))


def test_arrears_bill_the_previous_months_count() -> None:
    december = usage("c-1", [7, 9], start=date(2026, 12, 30))
    january = usage("c-1", [30, 31], start=date(2027, 1, 1))
    period = (date(2027, 1, 1), date(2027, 1, 31))

    assert lines(Rule(billing_timing="arrears"), december + january, period=period)["1"].quantity == 9
    assert lines(Rule(), december + january, period=period)["1"].quantity == 31


# -- proration ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("period", "counts", "expected"),
    [
        ((date(2026, 2, 1), date(2026, 2, 28)), [10] * 14, Decimal("5.00")),  # 140 seat-days / 28
        ((date(2026, 4, 1), date(2026, 4, 30)), [10] * 10, Decimal("3.33")),  # 100 / 30
        ((date(2026, 7, 1), date(2026, 7, 31)), [7] * 10, Decimal("2.26")),  # 70 / 31 = 2.258…
        ((date(2026, 7, 1), date(2026, 7, 31)), [4] * 31, Decimal("4.00")),  # the whole month
    ],
)
def test_prorated_quantity_is_seat_days_over_the_days_of_the_month(
    period: tuple[date, date], counts: list[int], expected: Decimal
) -> None:
    (line,) = lines(
        Rule(billing_timing="prorated"), usage("c-1", counts, start=period[0]), period=period
    ).values()

    assert line.prorated == expected
    assert line.billed == expected
    assert line.total == b.money(Decimal("4.50") * expected)
    assert line.quantity == math.ceil(expected)  # whole seats rounded up, for the review only


def test_prorated_quantity_minus_included_seats_and_raised_to_the_minimum() -> None:
    february = (date(2026, 2, 1), date(2026, 2, 28))
    rows = usage("c-1", [10] * 14, start=february[0])

    assert lines(Rule(billing_timing="prorated", included_seats=2), rows, period=february)[
        "1"
    ].billed == Decimal("3.00")
    assert lines(Rule(billing_timing="prorated", minimum_quantity=6), rows, period=february)[
        "1"
    ].billed == Decimal("6.00")
    assert lines(Rule(billing_timing="prorated", included_seats=9), rows, period=february) == {}


def test_a_prorated_line_changes_when_its_fraction_does() -> None:
    line = b.Line("r", "1", None, "EDR", 4, Decimal("4.50"), Decimal("2.10"), prorated=Decimal("3.40"))

    assert b.plan(line, b.Pushed(4, Decimal("4.50"), Decimal("2.10"), "L1", Decimal("3.40"))) == "unchanged"
    assert b.plan(line, b.Pushed(4, Decimal("4.50"), Decimal("2.10"), "L1", Decimal("3.60"))) == "update"
    assert b.plan(line, b.Pushed(4, Decimal("4.50"), Decimal("2.10"), "L1")) == "update"  # was whole seats


def test_a_rule_without_the_model_fields_bills_as_before() -> None:
    @dataclass(frozen=True)
    class Plain:
        product: str = "acme edr"
        count_scope: str = "installed"
        count_method: str = "peak"
        id: str = "rule-1"
        psa_connection_id: str = "psa"
        unit_price: Decimal = Decimal("4.50")
        cost_tiers: list[dict[str, Any]] = field(default_factory=list)

    assert b.model_of(Plain()) == b.Model()
    billed = b.lines_for_rule(Plain(), usage("c-1", [5, 6]), MAPPINGS)
    assert [(line.quantity, line.billed, line.prorated) for line in billed.lines] == [(6, Decimal(6), None)]


# -- reconciliation of modelled rules --------------------------------------------------------------


def test_reconciliation_counts_a_category_rules_devices_without_its_pricing_model() -> None:
    rule = Rule(device_category="server", included_seats=2, minimum_quantity=5)
    rows = usage("c-1", [4], "server") + usage("c-1", [30], "workstation")
    licences = [b.UsageRow("console", "cust-1", "Acme EDR 12", date(2026, 10, 1), 34, 34, 34, 34)]
    mappings = {**MAPPINGS, ("console", "cust-1", "psa"): Mapping("1", "Company 1")}

    [row] = reconcile([rule], rows, licences, mappings, {}, [], [], {"console"}, OCTOBER)

    assert row.rmm_count == 4  # the servers, before included seats and minimum
    assert row.console_count == 34  # consoles report no category: every seat of the product


def test_reconciliation_of_an_arrears_rule_counts_the_previous_month() -> None:
    september = usage("c-1", [6], start=date(2026, 9, 30))
    october = usage("c-1", [9], start=date(2026, 10, 31))

    [row] = reconcile(
        [Rule(billing_timing="arrears")], september + october, [], MAPPINGS, {}, [], [], set(), OCTOBER
    )

    assert row.rmm_count == 6
