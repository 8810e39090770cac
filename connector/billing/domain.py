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
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, Literal, NamedTuple, Protocol, cast

from mappings.resolution import billing_rule_matches

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


class UsageRow(NamedTuple):
    """One day's seat counts of one product on one RMM client (a `usage_daily` row). A tuple:
    a month of a large fleet is tens of thousands of them."""

    rmm_connection_id: str
    client_id: str
    product: str
    day: date
    peak_installed: int
    last_installed: int
    peak_protected: int
    last_protected: int


class BillingTerms(Protocol):
    """The parts of a billing rule that price its lines (a `BillingRule` row has them)."""

    @property
    def id(self) -> str: ...
    @property
    def product(self) -> str: ...
    @property
    def psa_connection_id(self) -> str: ...
    @property
    def count_scope(self) -> str: ...
    @property
    def count_method(self) -> str: ...
    @property
    def unit_price(self) -> Decimal: ...
    @property
    def cost_tiers(self) -> Sequence[Mapping[str, Any]]: ...


class CompanyMapping(Protocol):
    """Where an RMM client bills (a `ClientMapping` row has it)."""

    @property
    def psa_company_id(self) -> str: ...
    @property
    def psa_company_name(self) -> str | None: ...


MappingKey = tuple[str, str, str]
"""(RMM connection id, RMM client id, PSA connection id)"""


@dataclass(frozen=True)
class UnmappedClient:
    """An RMM client with seats of a rule's product and no company in the rule's PSA: not billed."""

    rmm_connection_id: str
    client_id: str
    seats: int
    product: str


@dataclass(frozen=True)
class RuleLines:
    """What one rule bills for a period."""

    lines: list[Line]
    clients: dict[str, list[str]]
    """Per PSA company id: the RMM clients whose seats its line counts."""
    unmapped: list[UnmappedClient]


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


def lines_for_rule(
    rule: BillingTerms, usage: Iterable[UsageRow], mappings: Mapping[MappingKey, CompanyMapping]
) -> RuleLines:
    """A rule's lines for the period: per RMM client, the daily counts of every product name the
    rule matches are added up, counted for the period by the rule's method, and the clients'
    seats summed per mapped PSA company; priced at the rule's price and the tier the total reaches."""
    protected = rule.count_scope == "protected"
    per_client_day: dict[tuple[str, str], dict[date, list[int]]] = defaultdict(dict)
    for name, rows in _by_product_name(usage).items():
        if not billing_rule_matches(rule, name):
            continue
        for row in rows:
            peak, last = (
                (row.peak_protected, row.last_protected)
                if protected
                else (row.peak_installed, row.last_installed)
            )
            slot = per_client_day[(row.rmm_connection_id, row.client_id)].setdefault(row.day, [0, 0])
            slot[0] += peak
            slot[1] += last
    method = cast(CountMethod, rule.count_method)
    per_company: dict[str, tuple[str | None, int, list[str]]] = {}
    unmapped: list[UnmappedClient] = []
    for (connection_id, client_id), days in per_client_day.items():
        seats = count_for_period([DayCount(day, peak, last) for day, (peak, last) in days.items()], method)
        mapping = mappings.get((connection_id, client_id, rule.psa_connection_id))
        if mapping is None:
            if seats:
                unmapped.append(UnmappedClient(connection_id, client_id, seats, rule.product))
            continue
        company_name, billed, clients = per_company.get(
            mapping.psa_company_id, (mapping.psa_company_name, 0, [])
        )
        per_company[mapping.psa_company_id] = (company_name, billed + seats, [*clients, client_id])
    tiers = [Tier(int(t["min_seats"]), Decimal(str(t["unit_cost"]))) for t in rule.cost_tiers]
    lines = priced_lines(
        rule.id,
        rule.product,
        Decimal(rule.unit_price),
        tiers,
        ((company_id, name, seats) for company_id, (name, seats, _) in sorted(per_company.items())),
    )
    return RuleLines(
        lines, {company_id: clients for company_id, (_, _, clients) in per_company.items()}, unmapped
    )


def _by_product_name(usage: Iterable[UsageRow]) -> dict[str, list[UsageRow]]:
    """Rows per product name, case-insensitively (the names in order of first appearance, which
    is the order a line lists its clients in)."""
    groups: dict[str, list[UsageRow]] = defaultdict(list)
    for row in usage:
        groups[row.product.lower()].append(row)
    return groups
