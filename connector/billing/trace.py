"""Which devices a billed line counts, and what changed between two closed periods. Pure: no I/O.

A device counts in a period when connector knew it during the period: first seen before the
period's end and not retired before its start. With `end_of_period` counting, a device retired
before the period's end is not billed, so it is not listed either.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from connector.billing.domain import BillingTerms, CompanyMapping, MappingKey, model_of
from mappings.resolution import billing_rule_matches

CONSOLE_SEATS = "console_seats"


@dataclass(frozen=True)
class Device:
    """An RMM endpoint or a console agent, with what is needed to place it on a line."""

    id: str
    connection_id: str
    client_id: str
    hostname: str
    serial_number: str | None
    product: str | None
    protected: bool | None
    first_seen_at: datetime
    last_seen_at: datetime | None
    retired_at: datetime | None
    category: str | None = None
    """The device category it bills in (`domain.device_category`); None for console agents."""


@dataclass(frozen=True)
class Counted:
    """A device as a snapshot keeps it: seen within the period from `first_seen_at` to `last_seen_at`."""

    device_id: str
    hostname: str
    serial_number: str | None
    first_seen_at: datetime
    last_seen_at: datetime


@dataclass(frozen=True)
class ProductChange:
    product: str
    previous_count: int | None
    """Devices billed for the product in the previous period (None: not billed then)."""
    count: int | None
    added: list[Counted]
    removed: list[Counted]


def period_bounds(first: date, last: date) -> tuple[datetime, datetime]:
    """[start, end) of a period in UTC."""
    start = datetime.combine(first, time(), UTC)
    return start, datetime.combine(last, time(), UTC) + timedelta(days=1)


def owners(
    rule: BillingTerms, company_id: str, mappings: Mapping[MappingKey, CompanyMapping]
) -> set[tuple[str, str]]:
    """The (connection, client) pairs whose devices a company's line of the rule counts: the same
    mappings the line's usage went through."""
    return {
        (connection_id, client_id)
        for (connection_id, client_id, psa_connection_id), mapping in mappings.items()
        if psa_connection_id == rule.psa_connection_id and mapping.psa_company_id == company_id
    }


def counted(
    rule: BillingTerms,
    clients: set[tuple[str, str]],
    devices: Iterable[Device],
    start: datetime,
    end: datetime,
) -> list[Counted]:
    """The devices behind one line, by hostname: of the line's clients, with the rule's product (a
    console agent that reports no product counts: the console's seat is the product), in the rule's
    scope and device category, present during the period (for a rule billed in arrears, the caller
    passes the previous month)."""
    console = rule.count_scope == CONSOLE_SEATS
    category = model_of(rule).device_category
    found = []
    for device in devices:
        if (device.connection_id, device.client_id) not in clients:
            continue
        if category is not None and device.category != category:
            continue
        if device.product is None:
            if not console:
                continue
        elif not billing_rule_matches(rule, device.product):
            continue
        if rule.count_scope == "protected" and device.protected is not True:
            continue
        window = _window(device, start, end, rule.count_method == "end_of_period")
        if window is not None:
            found.append(Counted(device.id, device.hostname, device.serial_number, *window))
    return sorted(found, key=lambda c: (c.hostname.lower(), c.device_id))


def _window(device: Device, start: datetime, end: datetime, at_end: bool) -> tuple[datetime, datetime] | None:
    retired = device.retired_at
    if device.first_seen_at >= end or (retired is not None and retired <= start):
        return None
    if at_end and retired is not None and retired < end:
        return None
    last_moment = end - timedelta(seconds=1)
    first = max(device.first_seen_at, start)
    last = min(retired or device.last_seen_at or last_moment, last_moment)
    return first, max(first, last)


def changes(
    previous: Mapping[str, Sequence[Counted]], current: Mapping[str, Sequence[Counted]]
) -> list[ProductChange]:
    """Per product (sorted), the devices billed now and not before, and before and not now."""
    result = []
    for product in sorted({*previous, *current}):
        before = {c.device_id: c for c in previous.get(product, ())}
        now = {c.device_id: c for c in current.get(product, ())}
        result.append(
            ProductChange(
                product,
                len(before) if product in previous else None,
                len(now) if product in current else None,
                [c for key, c in now.items() if key not in before],
                [c for key, c in before.items() if key not in now],
            )
        )
    return result
