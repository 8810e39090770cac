"""Counting methods, tier selection at the boundaries, rounding and line diffs: pure, no mocks."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest

from connector.billing import domain as b

TIERS = [b.Tier(1, Decimal("2.10")), b.Tier(101, Decimal("1.85")), b.Tier(501, Decimal("1.60"))]


def days(*counts: tuple[int, int]) -> list[b.DayCount]:
    return [b.DayCount(date(2026, 10, i + 1), peak, last) for i, (peak, last) in enumerate(counts)]


def test_peak_is_the_highest_daily_peak() -> None:
    assert b.count_for_period(days((10, 9), (14, 12), (11, 11)), "peak") == 14


def test_average_rounds_up() -> None:
    assert b.count_for_period(days((10, 10), (11, 11), (11, 11)), "average") == 11  # 10.67 → 11
    assert b.count_for_period(days((10, 10), (10, 10)), "average") == 10  # exact stays exact


def test_end_of_period_is_the_last_observed_days_last_count() -> None:
    shuffled = [b.DayCount(date(2026, 10, 31), 20, 7), b.DayCount(date(2026, 10, 2), 30, 30)]
    assert b.count_for_period(shuffled, "end_of_period") == 7


def test_no_observations_bill_nothing() -> None:
    for method in ("peak", "average", "end_of_period"):
        assert b.count_for_period([], method) == 0  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("seats", "cost"),
    [(0, "2.10"), (1, "2.10"), (100, "2.10"), (101, "1.85"), (500, "1.85"), (501, "1.60"), (10_000, "1.60")],
)
def test_tier_boundaries(seats: int, cost: str) -> None:
    assert b.tier_cost(TIERS, seats) == Decimal(cost)


def test_no_tiers_means_zero_cost() -> None:
    assert b.tier_cost([], 50) == Decimal(0)


def test_aggregated_tier_prices_every_clients_seats() -> None:
    lines = b.priced_lines(
        "r1", "EDR", Decimal("4.50"), TIERS, [("1", "A", 60), ("2", "B", 45), ("3", "C", 0)]
    )
    assert [(line.company_id, line.quantity) for line in lines] == [
        ("1", 60),
        ("2", 45),
    ]  # zero lines dropped
    assert {line.unit_cost for line in lines} == {Decimal("1.85")}  # 105 seats in all reach tier 2


def test_money_rounds_half_up_per_line() -> None:
    line = b.Line("r", "1", None, "EDR", 3, Decimal("0.3350"), Decimal("0.1250"))
    assert line.total == Decimal("1.01")  # 1.005 → 1.01
    assert line.cost == Decimal("0.38")  # 0.375 → 0.38
    assert line.margin == Decimal("0.63")
    assert isinstance(line.total, Decimal)


def test_period_parsing() -> None:
    assert b.parse_period("2024-02") == (date(2024, 2, 1), date(2024, 2, 29))
    for bad in ("2024-13", "2024-2", "24-02", "2024-02-01"):
        with pytest.raises(ValueError, match="YYYY-MM"):
            b.parse_period(bad)


def test_line_diff() -> None:
    line = b.Line("r", "1", None, "EDR", 10, Decimal("4.50"), Decimal("2.10"))
    assert b.plan(line, None) == "create"
    assert b.plan(line, b.Pushed(10, Decimal("4.50"), Decimal("2.10"), None)) == "create"  # never confirmed
    assert b.plan(line, b.Pushed(10, Decimal("4.5000"), Decimal("2.1"), "77")) == "unchanged"
    assert b.plan(line, b.Pushed(9, Decimal("4.50"), Decimal("2.10"), "77")) == "update"
    assert b.plan(line, b.Pushed(10, Decimal("4.00"), Decimal("2.10"), "77")) == "update"
    assert b.plan(line, b.Pushed(10, Decimal("4.50"), Decimal("1.85"), "77")) == "update"
