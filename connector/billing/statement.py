"""A client's statement for a closed period: every product billed to its PSA company on one page,
as HTML and as PDF. Pure: no I/O. Totals follow `domain`'s rounding (each line rounded to cents,
the grand total the sum of the rounded lines), so the statement adds up like the invoice. Amounts are
shown in the tenant's currency, formatted for its locale by Babel (never converted).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from html import escape

from babel.numbers import format_currency, get_currency_symbol
from fpdf import FPDF

from connector.billing.domain import money


@dataclass(frozen=True)
class StatementLine:
    product: str
    quantity: Decimal | int
    """Whole seats, or a prorated line's quantity with 2 decimals."""
    unit_price: Decimal

    @property
    def total(self) -> Decimal:
        return money(self.unit_price * self.quantity)


@dataclass(frozen=True)
class Statement:
    period: str
    company_id: str
    company_name: str | None
    lines: Sequence[StatementLine]
    currency: str = "USD"
    locale: str = "en_US"

    def amount(self, value: Decimal) -> str:
        return amount(value, self.currency, self.locale)

    @property
    def total(self) -> Decimal:
        return sum((line.total for line in self.lines), Decimal(0))

    @property
    def title(self) -> str:
        return f"Statement {self.period} — {self.company_name or self.company_id}"


def amount(value: Decimal, currency: str, locale: str) -> str:
    """`$1,234.50`, `1.234,50 €`: the amount in the currency's style for the locale. A unit price
    keeps the digits it was set with (4.335 is not shown as 4.34)."""
    return format_currency(value, currency, locale=locale, decimal_quantization=False)


def html(statement: Statement) -> str:
    rows = "".join(
        f"<tr><td>{escape(line.product)}</td><td class=num>{line.quantity}</td>"
        f"<td class=num>{escape(statement.amount(line.unit_price))}</td>"
        f"<td class=num>{escape(statement.amount(line.total))}</td></tr>"
        for line in statement.lines
    )
    return (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        f"<title>{escape(statement.title)}</title>"
        "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}"
        "td,th{padding:.3em .8em;border-bottom:1px solid #ccc}.num{text-align:right}</style></head>"
        f"<body><h1>{escape(statement.title)}</h1>"
        f"<p>Client: {escape(statement.company_name or '')} (PSA company {escape(statement.company_id)})</p>"
        "<table><thead><tr><th>Product</th><th>Quantity</th><th>Unit price</th><th>Total</th></tr></thead>"
        f"<tbody>{rows}</tbody><tfoot><tr><th colspan=3>Total</th>"
        f'<th class=num id="grand-total">{escape(statement.amount(statement.total))}</th></tr></tfoot>'
        f"</table><p>Amounts in {escape(statement.currency)}.</p></body></html>"
    )


def pdf(statement: Statement) -> bytes:
    """Core PDF fonts cover Windows-1252 (Latin-1 and the euro sign): other characters are replaced
    rather than failing, and a currency symbol they lack is written as its ISO code."""
    document = FPDF()
    document.core_fonts_encoding = ENCODING
    document.add_page()
    document.set_font("Helvetica", "B", 14)
    document.cell(0, 10, _latin1(statement.title.replace("—", "-")), new_x="LMARGIN", new_y="NEXT")
    document.set_font("Helvetica", size=10)
    widths = (90, 25, 35, 35)
    for row, bold in (
        (("Product", "Quantity", "Unit price", "Total"), True),
        *(
            (
                (
                    line.product,
                    str(line.quantity),
                    _pdf_amount(statement, line.unit_price),
                    _pdf_amount(statement, line.total),
                ),
                False,
            )
            for line in statement.lines
        ),
        (("Total", "", "", _pdf_amount(statement, statement.total)), True),
    ):
        document.set_font("Helvetica", "B" if bold else "", 10)
        for index, (width, text) in enumerate(zip(widths, row, strict=True)):
            document.cell(width, 8, _latin1(text), border=1, align="L" if index == 0 else "R")
        document.ln()
    return bytes(document.output())


ENCODING = "windows-1252"
NARROW_SPACES = str.maketrans({"\u202f": "\u00a0", "\u2009": "\u00a0"})


def _pdf_amount(statement: Statement, value: Decimal) -> str:
    text = statement.amount(value).translate(NARROW_SPACES)
    symbol = get_currency_symbol(statement.currency, locale=statement.locale)
    try:
        symbol.encode(ENCODING)
    except UnicodeEncodeError:
        text = text.replace(
            symbol, f"{statement.currency}\u00a0" if text.startswith(symbol) else statement.currency
        )
    return text


def _latin1(text: str) -> str:
    return text.encode(ENCODING, "replace").decode(ENCODING)
