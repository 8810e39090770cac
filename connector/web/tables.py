"""Sortable, filterable, paged tables for the dashboard's drill-down pages, and their CSV export.
Pure: rows are plain dicts of raw values; the request's query (`table`, `sort`, `q`, `page`) picks
what one table shows, and the CSV of a table is the same rows (filtered and sorted) without paging.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from urllib.parse import urlencode

PAGE_SIZE = 50
MAX_QUERY = 200
"""Characters of a filter kept (a longer one is cut, never refused)."""


@dataclass(frozen=True)
class Column:
    key: str
    label: str
    numeric: bool = False


@dataclass(frozen=True)
class View:
    """What the query asks of one table."""

    sort: str | None = None
    descending: bool = False
    q: str = ""
    page: int = 1


@dataclass
class Table:
    name: str
    caption: str
    columns: Sequence[Column]
    rows: list[dict[str, Any]]
    """The current page's rows."""
    view: View
    total: int
    """Rows matching the filter (all pages)."""
    pages: int
    base: str
    """The page's path, the links' base."""
    keep: dict[str, str] = field(default_factory=dict)

    def url(self, **changes: str | int | None) -> str:
        """This table's link with some of sort / q / page / format changed (None drops one)."""
        query: dict[str, str | int] = {"table": self.name}
        current: dict[str, str | int | None] = {
            "sort": (("-" if self.view.descending else "") + self.view.sort) if self.view.sort else None,
            "q": self.view.q or None,
            "page": self.view.page if self.view.page > 1 else None,
        }
        for name, value in {**current, **changes}.items():
            if value is not None and value != "":
                query[name] = value
        return f"{self.base}?{urlencode(query)}#{self.name}"

    def sort_url(self, key: str) -> str:
        """Ascending first; the sorted column's link turns the order round."""
        descending = self.view.sort == key and not self.view.descending
        return self.url(sort=("-" if descending else "") + key, page=None)

    def aria_sort(self, key: str) -> str:
        if self.view.sort != key:
            return "none"
        return "descending" if self.view.descending else "ascending"

    @property
    def csv_url(self) -> str:
        return self.url(format="csv", page=None)

    @property
    def previous_url(self) -> str | None:
        return self.url(page=self.view.page - 1) if self.view.page > 1 else None

    @property
    def next_url(self) -> str | None:
        return self.url(page=self.view.page + 1) if self.view.page < self.pages else None


def parse_view(query: Mapping[str, str], name: str, columns: Sequence[Column], default: str | None) -> View:
    """The view the query asks of table `name`. Only the table the query names (`table=`) takes
    `sort`, `q` and `page`; the others show their default order, unfiltered, from the first page
    (a page names its first table when the query names none). An unknown column or page falls
    back quietly."""
    keys = {c.key for c in columns}
    chosen = query.get("table") == name
    sort = query.get("sort", "") if chosen else ""
    descending = sort.startswith("-")
    key = sort.removeprefix("-")
    if key not in keys:
        key, descending = (default or "").removeprefix("-"), (default or "").startswith("-")
    page_text = query.get("page", "") if chosen else ""
    page = int(page_text) if page_text.isdigit() and len(page_text) <= 6 else 1
    q = (query.get("q", "") if chosen else "").strip()[:MAX_QUERY]
    return View(key or None, descending, q, max(page, 1))


def cell_text(value: Any) -> str:
    """A value as a cell's text: the filter matches it and the CSV writes it."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, datetime):
        moment = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
        return moment.isoformat(timespec="seconds")
    if isinstance(value, Decimal):
        return f"{value:.2f}"
    if isinstance(value, (list, tuple)):
        return ", ".join(cell_text(v) for v in value)
    return str(value)


def _sort_key(value: Any) -> tuple[int, int, Any]:
    """Blanks last whichever way round; then numbers, times (in UTC) and text (case-insensitively),
    each kind among its own, so a column holding several kinds still sorts."""
    if value is None or value == "" or value == []:
        return (1, 0, "")
    if isinstance(value, bool):
        return (0, 2, cell_text(value))
    if isinstance(value, (int, float, Decimal)):
        return (0, 0, value)
    if isinstance(value, datetime):
        return (0, 1, value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC))
    return (0, 2, cell_text(value).casefold())


def matching(rows: Sequence[dict[str, Any]], columns: Sequence[Column], view: View) -> list[dict[str, Any]]:
    """The rows the filter keeps (every word must appear in some column), in the view's order."""
    words = view.q.casefold().split()
    kept = [
        row
        for row in rows
        if all(any(word in cell_text(row.get(c.key)).casefold() for c in columns) for word in words)
    ]
    if view.sort is not None:
        key = view.sort
        present = [r for r in kept if _sort_key(r.get(key))[0] == 0]
        blank = [r for r in kept if _sort_key(r.get(key))[0] == 1]
        present.sort(key=lambda r: _sort_key(r.get(key)), reverse=view.descending)
        kept = present + blank
    return kept


def build(
    name: str,
    caption: str,
    columns: Sequence[Column],
    rows: Sequence[dict[str, Any]],
    query: Mapping[str, str],
    base: str,
    *,
    default: str | None = None,
) -> Table:
    view = parse_view(query, name, columns, default)
    kept = matching(rows, columns, view)
    pages = max(math.ceil(len(kept) / PAGE_SIZE), 1)
    page = min(view.page, pages)
    view = View(view.sort, view.descending, view.q, page)
    start = (page - 1) * PAGE_SIZE
    return Table(name, caption, columns, kept[start : start + PAGE_SIZE], view, len(kept), pages, base)


def to_csv(columns: Sequence[Column], rows: Sequence[dict[str, Any]]) -> str:
    """A header of the column labels, then one line per row. A cell that a spreadsheet would read
    as a formula is prefixed with an apostrophe."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow([c.label for c in columns])
    for row in rows:
        cells = [cell_text(row.get(c.key)) for c in columns]
        writer.writerow(
            ["'" + cell if cell[:1] in ("=", "+", "-", "@") and not _number(cell) else cell for cell in cells]
        )
    return out.getvalue()


def _number(cell: str) -> bool:
    try:
        Decimal(cell)
    except ArithmeticError:
        return False
    return True


def all_rows(
    columns: Sequence[Column],
    rows: Sequence[dict[str, Any]],
    query: Mapping[str, str],
    name: str,
    default: str | None,
) -> list[dict[str, Any]]:
    """Every row the table's filter keeps, in its order (the CSV's rows)."""
    return matching(rows, columns, parse_view(query, name, columns, default))
