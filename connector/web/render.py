"""Jinja2 rendering for the dashboard: autoescaped templates, display filters, and the response
headers every page carries (a strict CSP with no inline script, no caching, no referrer to PSA links)."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import quote

import jinja2
import jinja2.runtime
from babel.numbers import format_currency
from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from connector.web.auth import WebUser

TEMPLATES = Path(__file__).parent / "templates"
STATIC = Path(__file__).parent / "static"
STATIC_URL = "/static/dashboard"

HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'self'; script-src 'self'; img-src 'self'; "
        "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}

NAV = (
    ("/", "Overview"),
    ("/problems", "Problems"),
    ("/activity", "Syncs & deliveries"),
    ("/billing", "Billing"),
    ("/mappings", "Mappings"),
    ("/maintenance", "Maintenance & notifications"),
    ("/audit", "Audit"),
    ("/setup", "Set-up"),
)

HEALTH_LABELS = {
    "protected": "Protected",
    "at_risk": "At risk",
    "unprotected": "Unprotected",
    "offline": "Offline",
    "unknown": "Unknown",
}


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def when(value: datetime | None) -> str:
    return "—" if value is None else _utc(value).strftime("%Y-%m-%d %H:%M UTC")


def iso(value: datetime | None) -> str:
    return "" if value is None else _utc(value).isoformat(timespec="seconds")


def age(value: datetime | None, now: datetime | None = None) -> str:
    """Coarse and short: '3 d 4 h', '5 h 12 min', '7 min'."""
    if value is None:
        return "—"
    seconds = max(int(((now or datetime.now(UTC)) - _utc(value)).total_seconds()), 0)
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes = rest // 60
    if days:
        return f"{days} d {hours} h"
    if hours:
        return f"{hours} h {minutes} min"
    return f"{minutes} min" if minutes else "just now"


def pct(value: float | None) -> str:
    return "—" if value is None else f"{value * 100:.0f}%"


DEFAULT_CURRENCY, DEFAULT_LOCALE = "USD", "en_US"


def money(
    value: Decimal | int | float, currency: str = DEFAULT_CURRENCY, locale: str = DEFAULT_LOCALE
) -> str:
    """In the currency's own style for the locale (`€1,234.50` for EUR in en_IE, `1.234,50 €` in
    de_DE), by Babel's CLDR data; the amount is shown, never converted."""
    return format_currency(Decimal(value), currency, locale=locale)


@jinja2.pass_context
def _money(context: jinja2.runtime.Context, value: Decimal | int | float) -> str:
    """`|money` in the page's `money_in` (currency, locale), else USD in en_US."""
    currency, locale = context.get("money_in") or (DEFAULT_CURRENCY, DEFAULT_LOCALE)
    return money(value, currency, locale)


def external(url: str | None) -> str | None:
    """Only http(s) links to the PSA: a vendor-supplied `javascript:` URL is dropped, not linked."""
    return url if url and url.lower().startswith(("https://", "http://")) else None


def client_url(rmm_connection_id: str, client_id: str) -> str:
    """The client drill-down page of one RMM client."""
    return f"/clients/{quote(rmm_connection_id, safe='')}/{quote(client_id, safe='')}"


def label(health: str) -> str:
    return HEALTH_LABELS.get(health, health.replace("_", " ").capitalize())


ENV = jinja2.Environment(
    loader=jinja2.FileSystemLoader(TEMPLATES),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)
ENV.filters.update(when=when, iso=iso, age=age, pct=pct, money=_money, label=label, external=external)
ENV.globals.update(nav=NAV, static=STATIC_URL, client_url=client_url)


def render(
    request: Request, template: str, user: WebUser | None, *, status: int = 200, **context: Any
) -> HTMLResponse:
    html = ENV.get_template(template).render(
        request_path=request.url.path, user=user, notice=context.pop("notice", None), **context
    )
    return HTMLResponse(html, status_code=status, headers=HEADERS)


def redirect(location: str) -> Response:
    """303 so the browser follows a form POST with a GET."""
    return RedirectResponse(location, status_code=303, headers=HEADERS)
