"""What the overview computes from numbers already read: each client's protected share with
`unknown` as a class of its own, clients mapped but not billed, open problems by severity, tickets
opened and closed per day, and the overview tables sorted, filtered, paged and exported as CSV.
Pure: no I/O, no clock of its own."""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from adapters.base import ProblemKind
from connector.alerts.storms.domain import SEVERITY, Severity
from connector.fleet.stats import ClientCounts, Counts

PAGE_SIZE = 25
SEVERITIES = tuple(Severity)
"""Most severe first."""


def known_share(counts: Counts) -> float | None:
    """Protected endpoints among those whose antivirus state is known; None when none is known
    (such a client is not 0 % protected: nothing is known about it)."""
    return counts.protected / counts.known if counts.known else None


def health_class(counts: Counts) -> str:
    """`unknown` when the RMM reports no antivirus state for any of the client's endpoints."""
    return "unknown" if counts.total and not counts.known else "known"


# -- unbilled clients ----------------------------------------------------------------------------


def unbilled_clients(
    clients: Iterable[ClientCounts],
    companies: Mapping[tuple[str, str], tuple[str, str]],
    billed: set[tuple[str, str]],
) -> list[ClientCounts]:
    """Mapped clients with endpoints whose PSA company has no billing line this period (no billing
    rule counts their product). `companies`: (RMM connection, client) → (PSA connection, company
    id); `billed` holds the same pairs (company ids are only unique within one PSA)."""
    found = []
    for client in clients:
        company = companies.get((client.rmm_connection_id, client.client_id))
        if company is not None and client.counts.total and company not in billed:
            found.append(client)
    return sorted(found, key=lambda c: (-c.counts.total, c.client_name or c.client_id))


# -- problems by severity ------------------------------------------------------------------------


def by_severity(open_by_kind: Mapping[str, int]) -> list[tuple[Severity, int]]:
    """Open problems per severity, most severe first, every severity listed (0 too). A kind this
    version does not know counts as medium."""
    totals = dict.fromkeys(SEVERITIES, 0)
    for kind, count in open_by_kind.items():
        try:
            severity = SEVERITY[ProblemKind(kind)]
        except (ValueError, KeyError):
            severity = Severity.MEDIUM
        totals[severity] += count
    return list(totals.items())


# -- ticket trend --------------------------------------------------------------------------------


@dataclass(frozen=True)
class TicketDay:
    day: str
    opened: int
    closed: int


def ticket_days(events: Iterable[tuple[datetime, str]], days: int, today: date) -> list[TicketDay]:
    """Every day of the window (0 on days without tickets) from audit entries (`at`, kind):
    `ticket.created` and `ticket.reraised` open a ticket, `ticket.closed` closes one."""
    start = today - timedelta(days=days - 1)
    opened = dict.fromkeys(range(days), 0)
    closed = dict.fromkeys(range(days), 0)
    for at, kind in events:
        offset = (at.date() - start).days
        if not 0 <= offset < days:
            continue
        if kind in ("ticket.created", "ticket.reraised"):
            opened[offset] += 1
        elif kind == "ticket.closed":
            closed[offset] += 1
    return [TicketDay((start + timedelta(days=i)).isoformat(), opened[i], closed[i]) for i in range(days)]


# -- tables --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Column:
    key: str
    label: str
    value: Callable[[Any], Any]
    """The cell's value, also what sorting and the CSV use (None sorts last either way)."""
    numeric: bool = False


@dataclass(frozen=True)
class TablePage:
    rows: list[Any]
    total: int
    """Rows after the filter."""
    page: int
    pages: int
    sort: str
    """`key` ascending or `-key` descending."""
    q: str


def sort_key(sort: str, columns: Sequence[Column], default: str) -> tuple[Column, bool]:
    """The column and direction of `?sort=` (an unknown column falls back to the default)."""
    descending = sort.startswith("-")
    by_key = {c.key: c for c in columns}
    column = by_key.get(sort.removeprefix("-"))
    if column is None:
        descending = default.startswith("-")
        column = by_key[default.removeprefix("-")]
    return column, descending


def table_page(
    rows: Sequence[Any],
    columns: Sequence[Column],
    *,
    sort: str,
    default: str,
    q: str = "",
    page: int = 1,
    size: int = PAGE_SIZE,
    text: Callable[[Any], str] | None = None,
) -> TablePage:
    """Filter (`q` in any text cell, case-insensitive), sort (rows without a value last, ties in
    the given order) and cut one page (a page past the end shows the last)."""
    column, descending = sort_key(sort, columns, default)
    needle = q.strip().casefold()
    if needle:
        about = text or (lambda row: " ".join(str(c.value(row) or "") for c in columns if not c.numeric))
        rows = [row for row in rows if needle in about(row).casefold()]
    present = [row for row in rows if column.value(row) is not None]
    missing = [row for row in rows if column.value(row) is None]
    present.sort(key=lambda row: _comparable(column.value(row)), reverse=descending)
    ordered = present + missing
    pages = max(math.ceil(len(ordered) / size), 1)
    page = min(max(page, 1), pages)
    return TablePage(
        rows=ordered[(page - 1) * size : page * size],
        total=len(ordered),
        page=page,
        pages=pages,
        sort=f"-{column.key}" if descending else column.key,
        q=q.strip(),
    )


def _comparable(value: Any) -> Any:
    return value.casefold() if isinstance(value, str) else value


def to_csv(rows: Iterable[Any], columns: Sequence[Column]) -> str:
    """Every filtered and sorted row (not one page); a cell starting with = + - @ is prefixed with
    a quote so a spreadsheet does not run it as a formula."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow([c.label for c in columns])
    for row in rows:
        writer.writerow([_cell(c.value(row)) for c in columns])
    return out.getvalue()


def _cell(value: Any) -> str:
    if value is None:
        return ""
    text = f"{value:.4f}".rstrip("0").rstrip(".") if isinstance(value, float) else str(value)
    return "'" + text if isinstance(value, str) and text[:1] in ("=", "+", "-", "@") else text
