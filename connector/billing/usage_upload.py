"""A vendor's monthly usage report (CSV: one row per customer and SKU with a seat count) read with a
saved column profile, and its customers matched to PSA companies. Pure: no I/O.

Every vendor names its columns differently, so a profile names the customer, product and quantity
columns (matched to the header case-insensitively), the delimiter (`,` `;` or tab; detected from
the header line when not set) and how many lines come before the header. A row that cannot be read
is rejected with its line number, column and reason; a customer that matches no PSA company is
reported, never dropped.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from email.parser import BytesParser
from email.policy import HTTP
from typing import Literal

CustomerKind = Literal["psa_company_id", "psa_company_name", "customer_name"]
"""What the customer column holds: a PSA company id, a PSA company's own name (exact), or the
vendor's customer name (matched to PSA company names ignoring case and repeated spaces)."""
DELIMITERS = (",", ";", "\t")
WHOLE = re.compile(r"[+-]?\d+")
MAX_SEATS = 1_000_000
"""The most seats one row may give (a larger number is a mistake in the file, not a customer)."""


class ReportError(ValueError):
    """The file as a whole cannot be read with the profile (e.g. a column is not in its header)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


@dataclass(frozen=True)
class Columns:
    """How one vendor's report is laid out (the reading half of a saved profile)."""

    customer_column: str
    product_column: str
    quantity_column: str
    delimiter: str | None = None
    header_row: int = 0
    """Lines before the header (a title, a date range)."""


@dataclass(frozen=True)
class ReportRow:
    line: int
    """The file's line number (1 = the first line) on which the row ends."""
    customer: str
    product: str
    quantity: int


@dataclass(frozen=True)
class Rejection:
    line: int
    column: str
    reason: str


@dataclass(frozen=True)
class Report:
    rows: list[ReportRow]
    rejected: list[Rejection]


def decode(data: bytes) -> str:
    """UTF-8 (a byte order mark dropped), else Windows-1252, the two encodings spreadsheets export."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return data.decode("cp1252", errors="replace")


def detect_delimiter(header: str) -> str:
    """The delimiter the header line uses most (`,` when it uses none)."""
    counts = {d: header.count(d) for d in DELIMITERS}
    best = max(DELIMITERS, key=lambda d: counts[d])
    return best if counts[best] else ","


def _key(name: str) -> str:
    return " ".join(name.split()).casefold()


def read_report(text: str, columns: Columns) -> Report:
    """Rows of the report; `ReportError` naming the profile field when the header lacks a column."""
    text = text.removeprefix("\ufeff")
    if "\0" in text:
        raise ReportError("body", "the file contains NUL characters: is it CSV text?")
    lines = text.splitlines(keepends=True)
    if len(lines) <= columns.header_row:
        raise ReportError(
            "header_row", f"the file has {len(lines)} lines, the header is line {columns.header_row + 1}"
        )
    body = lines[columns.header_row :]
    delimiter = columns.delimiter or detect_delimiter(body[0])
    reader = csv.reader(body, delimiter=delimiter)
    try:
        header = next(reader)
    except StopIteration:
        raise ReportError("header_row", "no header line") from None
    except csv.Error as exc:
        raise ReportError("body", f"line {columns.header_row + 1}: {exc}") from None
    positions = {_key(name): index for index, name in reversed(list(enumerate(header)))}
    wanted = {
        "customer_column": columns.customer_column,
        "product_column": columns.product_column,
        "quantity_column": columns.quantity_column,
    }
    index: dict[str, int] = {}
    named: dict[str, str] = {}
    for field_name, name in wanted.items():
        if _key(name) not in positions:
            found = ", ".join(repr(h.strip()) for h in header)
            raise ReportError(field_name, f"column {name!r} is not in the header ({found})")
        index[field_name] = positions[_key(name)]
        named[field_name] = header[index[field_name]].strip()
    rows: list[ReportRow] = []
    rejected: list[Rejection] = []
    while True:
        try:
            record = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            rejected.append(Rejection(columns.header_row + reader.line_num, "", str(exc)))
            continue
        line = columns.header_row + reader.line_num
        if not any(value.strip() for value in record):
            continue  # a blank line, or one of empty cells
        values: dict[str, str] = {}
        problem: Rejection | None = None
        extra = [value for value in record[len(header) :] if value.strip()]
        if extra:
            cells = f"{len(extra)} more cell{'s' if len(extra) > 1 else ''}"
            rejected.append(
                Rejection(
                    line, f"column {len(header) + 1}", f"{cells} than the header has (an unquoted delimiter?)"
                )
            )
            continue
        for field_name, position in index.items():
            column = named[field_name]
            value = record[position].strip() if position < len(record) else None
            if not value:
                problem = Rejection(line, column, "missing" if value is None else "empty")
                break
            values[field_name] = value
        if problem is None:
            raw = values["quantity_column"]
            if not WHOLE.fullmatch(raw):
                problem = Rejection(line, named["quantity_column"], f"not a whole number: {raw!r}")
            elif int(raw) < 0:
                problem = Rejection(line, named["quantity_column"], f"negative: {raw!r}")
            elif int(raw) > MAX_SEATS:
                problem = Rejection(line, named["quantity_column"], f"more than {MAX_SEATS} seats: {raw!r}")
        if problem is not None:
            rejected.append(problem)
            continue
        rows.append(
            ReportRow(
                line, values["customer_column"], values["product_column"], int(values["quantity_column"])
            )
        )
    return Report(rows, rejected)


@dataclass(frozen=True)
class Company:
    id: str
    name: str | None


@dataclass
class Usage:
    """A customer's seats of one product, summed over its rows; `company` None when unmatched."""

    customer: str
    product: str
    quantity: int
    company: Company | None
    lines: list[int] = field(default_factory=list)
    reason: str | None = None
    """Why the customer matched no PSA company."""


def match(
    rows: Sequence[ReportRow],
    kind: CustomerKind,
    companies: Sequence[Company],
    aliases: Mapping[str, str],
) -> list[Usage]:
    """Each customer × product with its PSA company. A company may be listed more than once under
    different names (the PSA's, a client mapping's): the first listing is the one returned for its
    id. An alias (customer → PSA company id, its customer compared ignoring case and repeated
    spaces) wins over the column's own meaning."""
    by_id: dict[str, Company] = {}
    for known in companies:
        by_id.setdefault(known.id, known)
    by_name: dict[str, list[Company]] = {}
    for known in companies:
        if known.name:
            name = known.name.strip() if kind == "psa_company_name" else _key(known.name)
            if all(other.id != known.id for other in by_name.get(name, [])):
                by_name.setdefault(name, []).append(known)
    alias_of = {_key(customer): company_id for customer, company_id in aliases.items()}
    grouped: dict[tuple[str, str], Usage] = {}
    for row in rows:
        company, reason = _company(row.customer, kind, by_id, by_name, alias_of)
        key = (company.id if company else "\0" + _key(row.customer), _key(row.product))
        usage = grouped.get(key)
        if usage is None:
            usage = grouped[key] = Usage(row.customer, row.product, 0, company, reason=reason)
        usage.quantity += row.quantity
        usage.lines.append(row.line)
    return list(grouped.values())


def _company(
    customer: str,
    kind: CustomerKind,
    by_id: Mapping[str, Company],
    by_name: Mapping[str, list[Company]],
    alias_of: Mapping[str, str],
) -> tuple[Company | None, str | None]:
    aliased = alias_of.get(_key(customer))
    if aliased is not None:
        return by_id.get(aliased, Company(aliased, None)), None
    if kind == "psa_company_id":
        found = by_id.get(customer)
        return (found, None) if found else (None, "no PSA company has this id")
    named = by_name.get(customer.strip() if kind == "psa_company_name" else _key(customer), [])
    if len(named) > 1:
        return None, f"{len(named)} PSA companies have this name; add an alias"
    return (by_id[named[0].id], None) if named else (None, "no PSA company has this name")


def multipart_file(content_type: str, body: bytes) -> tuple[str | None, bytes]:
    """The file name and content of the first file part of a `multipart/form-data` body (or of
    the part named `file`); ValueError when there is none."""
    message = BytesParser(policy=HTTP).parsebytes(
        b"Content-Type: " + content_type.encode("latin-1") + b"\r\n\r\n" + body
    )
    if not message.is_multipart():
        raise ValueError("not a multipart body")
    parts = list(message.iter_parts())
    chosen = next((p for p in parts if p.get_filename()), None) or next(
        (p for p in parts if p.get_param("name", header="content-disposition") == "file"), None
    )
    if chosen is None:
        raise ValueError("no file in the form")
    payload = chosen.get_payload(decode=True)
    return chosen.get_filename(), payload if isinstance(payload, bytes) else b""
