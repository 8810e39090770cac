"""Daily usage → billing lines. Pure: no I/O; money is `Decimal` throughout.

Rounding (also stated in the README):
- quantities are whole seats; `average` rounds the mean of the daily counts **up** (a seat used for
  part of the month is billed);
- unit prices and unit costs are kept as configured (up to 4 decimal places);
- line totals, costs and margins are rounded to cents with ROUND_HALF_UP, per line; product and overall
  totals are sums of the rounded line figures, so they always add up on the invoice.
"""

from __future__ import annotations

import calendar
import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date
from decimal import ROUND_HALF_UP, Decimal
from typing import Literal

CountMethod = Literal["peak", "average", "end_of_period"]
CENT = Decimal("0.01")
PERIOD_PATTERN = r"^(000[1-9]|00[1-9]\d|0[1-9]\d{2}|[1-9]\d{3})-(0[1-9]|1[0-2])$"
"""`YYYY-MM` from 0001-01 to 9999-12 (there is no year 0 to bill); the API and dashboard use it too."""
PERIOD = re.compile(PERIOD_PATTERN)


@dataclass(frozen=True)
class DayCount:
    day: date
    peak: int
    last: int


@dataclass(frozen=True)
class Tier:
    min_seats: int
    unit_cost: Decimal


@dataclass(frozen=True)
class Line:
    """The desired state of one billed line: one PSA company × one billing rule for a period."""

    rule_id: str
    company_id: str
    company_name: str | None
    product: str
    quantity: int
    unit_price: Decimal
    unit_cost: Decimal

    @property
    def total(self) -> Decimal:
        return money(self.unit_price * self.quantity)

    @property
    def cost(self) -> Decimal:
        return money(self.unit_cost * self.quantity)

    @property
    def margin(self) -> Decimal:
        return self.total - self.cost


@dataclass(frozen=True)
class Pushed:
    """What was last written to the PSA for a rule × company."""

    quantity: int
    unit_price: Decimal
    unit_cost: Decimal
    line_id: str | None


Action = Literal["create", "update", "unchanged"]


def money(value: Decimal) -> Decimal:
    return value.quantize(CENT, rounding=ROUND_HALF_UP)


def parse_period(text: str) -> tuple[date, date]:
    """`YYYY-MM` → (first day, last day). ValueError names the expected form."""
    match = PERIOD.match(text)
    if match is None:
        raise ValueError("period must look like YYYY-MM (0001-01 to 9999-12)")
    year, month = int(match.group(1)), int(match.group(2))
    return date(year, month, 1), date(year, month, calendar.monthrange(year, month)[1])


def count_for_period(days: Sequence[DayCount], method: CountMethod) -> int:
    """Seats for the period from the days that have observations (days without a sync are not
    zeros: the service may simply not have run)."""
    if not days:
        return 0
    if method == "peak":
        return max(d.peak for d in days)
    if method == "average":
        return math.ceil(Decimal(sum(d.peak for d in days)) / len(days))
    return max(days, key=lambda d: d.day).last


def tier_cost(tiers: Sequence[Tier], total_seats: int) -> Decimal:
    """Aggregated volume pricing: the tier reached by the tenant's total seats of the product prices
    every seat. No tiers → cost 0."""
    reached = [t for t in tiers if t.min_seats <= max(total_seats, 1)]
    if not reached:
        return Decimal(0)
    return max(reached, key=lambda t: t.min_seats).unit_cost


def priced_lines(
    rule_id: str,
    product: str,
    unit_price: Decimal,
    tiers: Sequence[Tier],
    quantities: Iterable[tuple[str, str | None, int]],
) -> list[Line]:
    """(company id, name, seats) → lines at the rule's price and the tier its total seats reach."""
    rows = [(cid, name, qty) for cid, name, qty in quantities if qty > 0]
    cost = tier_cost(tiers, sum(qty for _, _, qty in rows))
    return [Line(rule_id, cid, name, product, qty, unit_price, cost) for cid, name, qty in rows]


def plan(line: Line, pushed: Pushed | None) -> Action:
    if pushed is None or pushed.line_id is None:
        return "create"
    same = (
        pushed.quantity == line.quantity
        and pushed.unit_price == line.unit_price
        and pushed.unit_cost == line.unit_cost
    )
    return "unchanged" if same else "update"
