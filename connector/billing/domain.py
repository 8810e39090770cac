"""Daily usage → billing lines. Pure: no I/O; money is `Decimal` throughout.

Rounding (also stated in the README):
- quantities are whole seats; `average` rounds the mean of the daily counts **up** (a seat used for
  part of the month is billed);
- unit prices and unit costs are kept as configured (up to 4 decimal places);
- a `prorated` rule's quantity is the seat-days divided by the days of the period, rounded to
  2 decimal places with ROUND_HALF_UP (`Line.prorated`; `Line.quantity` is then that rounded up to
  whole seats, for the review's tolerances, and is not what is priced);
- line totals, costs and margins are rounded to cents with ROUND_HALF_UP, per line; product and overall
  totals are sums of the rounded line figures, so they always add up on the invoice.

Billing models, applied per company in this order: the seats of the rule's device category are counted
(for the previous month when the rule bills in arrears), the rule's included seats are taken off
(never below 0), the result is raised to the rule's minimum quantity, and the line is priced at the
company's price override when it has one, else at the rule's price.
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
DeviceCategory = Literal["server", "workstation", "other"]
DEVICE_CATEGORIES: tuple[DeviceCategory, ...] = ("server", "workstation", "other")
BillingTiming = Literal["current", "arrears", "prorated"]
BILLING_TIMINGS: tuple[BillingTiming, ...] = ("current", "arrears", "prorated")
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
    prorated: Decimal | None = None
    """A prorated rule's quantity (2 decimals): what is priced and written to the PSA."""
    counted: int | None = None
    """The seats counted before the rule's included seats and minimum (None: not modelled)."""
    overridden: bool = False
    """The unit price is the company's price override, not the rule's."""

    @property
    def billed(self) -> Decimal:
        """The quantity priced and written: the prorated one, else the whole seats."""
        return self.prorated if self.prorated is not None else Decimal(self.quantity)

    @property
    def total(self) -> Decimal:
        return money(self.unit_price * self.billed)

    @property
    def cost(self) -> Decimal:
        return money(self.unit_cost * self.billed)

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
    billed: Decimal | None = None
    """The exact quantity written when it was not whole seats (a prorated line)."""


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
    category: str = ""
    """The endpoints' device category (`DeviceCategory`); "" for rows recorded before categories were
    counted, which only rules without a category count."""


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


_WORKSTATION_TYPES = ("workstation", "desktop", "laptop", "notebook")
_WORKSTATION_OS = re.compile(
    r"windows\s*(7|8(\.1)?|10|11|xp|vista)\b|mac\s*os|macos|os\s*x|darwin|chrome\s*os|"
    r"linux\s*mint|desktop|fedora\s*workstation|elementary\s*os|pop!?_os|zorin"
)


def device_category(device_type: str | None, os_name: str | None) -> DeviceCategory:
    """The category an endpoint bills in: the RMM's device type when it says server or workstation
    (laptops and desktops are workstations), else the OS name: "server" in it → server, a known
    desktop OS (Windows 7 to 11, macOS, ChromeOS, desktop Linux) → workstation; anything else other."""
    kind = (device_type or "").strip().lower()
    if "server" in kind:
        return "server"
    if any(word in kind for word in _WORKSTATION_TYPES):
        return "workstation"
    system = (os_name or "").strip().lower()
    if "server" in system:
        return "server"
    if _WORKSTATION_OS.search(system):
        return "workstation"
    return "other"


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
    written = pushed.billed if pushed.billed is not None else Decimal(pushed.quantity)
    same = (
        pushed.quantity == line.quantity
        and written == line.billed
        and pushed.unit_price == line.unit_price
        and pushed.unit_cost == line.unit_cost
    )
    return "unchanged" if same else "update"


@dataclass(frozen=True)
class Model:
    """How a rule turns counted seats into a billed quantity (the defaults bill every seat counted,
    of every device category, for the period itself)."""

    device_category: DeviceCategory | None = None
    included_seats: int = 0
    minimum_quantity: int = 0
    billing_timing: BillingTiming = "current"


def model_of(rule: object) -> Model:
    """A rule's billing model; a rule without the model's fields bills as the defaults."""
    category = getattr(rule, "device_category", None)
    timing = getattr(rule, "billing_timing", None) or "current"
    return Model(
        cast(DeviceCategory, category) if category in DEVICE_CATEGORIES else None,
        max(int(getattr(rule, "included_seats", 0) or 0), 0),
        max(int(getattr(rule, "minimum_quantity", 0) or 0), 0),
        cast(BillingTiming, timing) if timing in BILLING_TIMINGS else "current",
    )


def previous_period(first: date) -> tuple[date, date]:
    """The month before the one starting at `first` (January → the previous year's December)."""
    year, month = (first.year - 1, 12) if first.month == 1 else (first.year, first.month - 1)
    return date(year, month, 1), date(year, month, calendar.monthrange(year, month)[1])


def counted_window(timing: BillingTiming, first: date, last: date) -> tuple[date, date]:
    """The days whose usage a period's line counts: the previous month's when billed in arrears."""
    return previous_period(first) if timing == "arrears" else (first, last)


def billed_seats(seats: int, model: Model) -> int:
    """Whole seats beyond the included ones (never below 0), raised to the minimum quantity."""
    return max(max(seats - model.included_seats, 0), model.minimum_quantity)


def prorated_quantity(seat_days: int, days: int, model: Model) -> tuple[Decimal, Decimal]:
    """(counted, billed): the seat-days over the period's days as a quantity rounded to 2 decimals,
    then beyond the included seats (never below 0) and raised to the minimum quantity."""
    counted = (Decimal(seat_days) / days).quantize(CENT, rounding=ROUND_HALF_UP) if days else Decimal(0)
    billed = max(max(counted - model.included_seats, Decimal(0)), Decimal(model.minimum_quantity))
    return counted, billed.quantize(CENT)


def lines_for_rule(
    rule: BillingTerms,
    usage: Iterable[UsageRow],
    mappings: Mapping[MappingKey, CompanyMapping],
    *,
    period: tuple[date, date] | None = None,
    overrides: Mapping[str, Decimal] | None = None,
) -> RuleLines:
    """A rule's lines for the period: per RMM client, the daily counts of every product name the
    rule matches (and of its device category, if it has one) are added up, counted for the period by
    the rule's method, and the clients' seats summed per mapped PSA company; the rule's billing model
    (`Model`) turns them into the billed quantity, priced at the company's override or the rule's
    price, at the cost of the tier the counted total reaches.

    `period` (first and last day) limits the usage to the days the line counts (the previous month
    for a rule billed in arrears) and gives a prorated rule its days; without it every row given
    counts, and a prorated rule divides by the days of the month of the earliest row."""
    model = model_of(rule)
    window = counted_window(model.billing_timing, *period) if period is not None else None
    protected = rule.count_scope == "protected"
    per_client_day: dict[tuple[str, str], dict[date, list[int]]] = defaultdict(dict)
    earliest: date | None = None
    for name, rows in _by_product_name(usage).items():
        if not billing_rule_matches(rule, name):
            continue
        for row in rows:
            if window is not None and not window[0] <= row.day <= window[1]:
                continue
            if model.device_category is not None and row.category != model.device_category:
                continue
            earliest = row.day if earliest is None else min(earliest, row.day)
            peak, last = (
                (row.peak_protected, row.last_protected)
                if protected
                else (row.peak_installed, row.last_installed)
            )
            slot = per_client_day[(row.rmm_connection_id, row.client_id)].setdefault(row.day, [0, 0, 0])
            # A day recorded both before and after categories were counted (the upgrade's day) keeps
            # the higher of its two peaks; the uncategorised row's `last` was zeroed by then.
            slot[2 if row.category == "" else 0] += peak
            slot[1] += last
    method = cast(CountMethod, rule.count_method)
    per_company: dict[str, tuple[str | None, int, int, list[str]]] = {}
    """company id → (name, seats, seat-days, clients)"""
    unmapped: list[UnmappedClient] = []
    for (connection_id, client_id), days in per_client_day.items():
        counts = [DayCount(day, max(peak, legacy), last) for day, (peak, last, legacy) in days.items()]
        seats = count_for_period(counts, method)
        mapping = mappings.get((connection_id, client_id, rule.psa_connection_id))
        if mapping is None:
            if seats:
                unmapped.append(UnmappedClient(connection_id, client_id, seats, rule.product))
            continue
        company_name, billed, seat_days, clients = per_company.get(
            mapping.psa_company_id, (mapping.psa_company_name, 0, 0, [])
        )
        per_company[mapping.psa_company_id] = (
            company_name,
            billed + seats,
            seat_days + sum(c.peak for c in counts),
            [*clients, client_id],
        )
    overrides = overrides or {}
    if model.minimum_quantity:  # a minimum bills every mapped company that has a price agreed too
        for (_, _, psa_id), mapping in mappings.items():
            company_id = mapping.psa_company_id
            if psa_id == rule.psa_connection_id and company_id in overrides and company_id not in per_company:
                per_company[company_id] = (mapping.psa_company_name, 0, 0, [])
    if window is not None:
        days_in_period = (window[1] - window[0]).days + 1
    elif earliest is not None:
        days_in_period = calendar.monthrange(earliest.year, earliest.month)[1]
    else:
        days_in_period = 0
    tiers = [Tier(int(t["min_seats"]), Decimal(str(t["unit_cost"]))) for t in rule.cost_tiers]
    prorate = model.billing_timing == "prorated"
    quantities: list[tuple[str, str | None, Decimal, Decimal]] = []
    for company_id, (company_name, seats, seat_days, _) in sorted(per_company.items()):
        if prorate:
            counted, billed_ = prorated_quantity(seat_days, days_in_period, model)
        else:
            counted, billed_ = Decimal(seats), Decimal(billed_seats(seats, model))
        quantities.append((company_id, company_name, counted, billed_))
    cost = tier_cost(tiers, math.ceil(sum((c for _, _, c, _ in quantities), Decimal(0))))
    price = Decimal(rule.unit_price)
    lines = [
        Line(
            rule.id,
            company_id,
            name,
            rule.product,
            math.ceil(billed_),
            overrides.get(company_id, price),
            cost,
            prorated=billed_ if prorate else None,
            counted=int(counted) if not prorate else math.ceil(counted),
            overridden=company_id in overrides,
        )
        for company_id, name, counted, billed_ in quantities
        if billed_ > 0
    ]
    return RuleLines(
        lines, {company_id: clients for company_id, (_, _, _, clients) in per_company.items()}, unmapped
    )


def _by_product_name(usage: Iterable[UsageRow]) -> dict[str, list[UsageRow]]:
    """Rows per product name, case-insensitively (the names in order of first appearance, which
    is the order a line lists its clients in)."""
    groups: dict[str, list[UsageRow]] = defaultdict(list)
    for row in usage:
        groups[row.product.lower()].append(row)
    return groups
