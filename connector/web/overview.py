"""The fleet overview page: endpoints by health with `unknown` apart, clients not mapped or not
billed, open problems by severity, the protected-share and ticket trends, and the per-client and
console-coverage tables (sortable, filterable, paged, as CSV). Also what the billing pages share
with it: the clients a period does not bill and the tenant's money format."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response
from sqlalchemy.ext.asyncio import AsyncSession

from connector.alerts import service as alerts
from connector.api.deps import Session
from connector.audit import service as audit
from connector.billing.service import Preview, build_preview
from connector.connections.service import list_connections
from connector.fleet import consoles
from connector.fleet import stats as fleet_stats
from connector.fleet.stats import ClientCounts
from connector.rules import service as rules
from connector.statuses import DeliveryStatus, ProblemStatus, Routing
from connector.tenants.service import get_currency
from connector.web import insights, setup
from connector.web.auth import User
from connector.web.charts import ticket_chart, trend_chart
from connector.web.insights import Column
from connector.web.render import HEADERS, label, render

router = APIRouter(include_in_schema=False)

TREND_DAYS = 30
TICKET_KINDS = ("ticket.created", "ticket.reraised", "ticket.closed")
BILLING_RULES_HELP = "/docs#/billing"
"""Billing rules are kept through the API (its interactive documentation)."""


# -- shared with the billing pages ----------------------------------------------------------------


async def money_in(session: AsyncSession, tenant_id: str) -> tuple[str, str]:
    """(currency, locale) for the `money` filter of a page."""
    settings = await get_currency(session, tenant_id)
    return settings.currency, settings.locale


async def unbilled(
    session: AsyncSession, tenant_id: str, preview: Preview, clients: list[ClientCounts]
) -> list[ClientCounts]:
    """Mapped clients with endpoints that the period's preview bills nothing for."""
    mappings = await rules.list_rows(rules.CLIENT_MAPPINGS, session, tenant_id, limit=5000, offset=0)
    companies = {
        (m.rmm_connection_id, m.rmm_client_id): (m.psa_connection_id, m.psa_company_id) for m in mappings
    }
    billed = {
        (item.rule.psa_connection_id, item.line.company_id)
        for item in preview.lines
        if item.line.quantity or item.line.total
    }
    return insights.unbilled_clients(clients, companies, billed)


# -- tables ---------------------------------------------------------------------------------------


def _count_of(health: str) -> Callable[[ClientCounts], int]:
    return lambda c: int(getattr(c.counts, health))


def _client_columns(connections: dict[str, str], several_rmms: bool) -> list[Column]:
    def name(c: ClientCounts) -> str:
        shown = c.client_name or c.client_id
        return f"{shown} · {connections.get(c.rmm_connection_id, 'RMM')}" if several_rmms else shown

    columns = [
        Column("client", "Client", name),
        Column("company", "PSA company", lambda c: c.mapped_company),
    ]
    for health in fleet_stats.HEALTH_CLASSES:
        columns.append(Column(health, label(health), _count_of(health), numeric=True))
    columns += [
        Column("total", "Total", lambda c: c.counts.total, numeric=True),
        Column("known", "Known", lambda c: c.counts.known, numeric=True),
        Column("share", "Share protected (of known)", lambda c: insights.known_share(c.counts), numeric=True),
    ]
    return columns


COVERAGE_COLUMNS = [
    Column("company", "Company", lambda c: c.company_name),
    Column("console", "Console", lambda c: ", ".join(c.consoles)),
    Column("endpoints", "RMM endpoints", lambda c: c.endpoints, numeric=True),
    Column("with_agent", "With agent", lambda c: c.with_agent, numeric=True),
    Column("without_agent", "Without agent", lambda c: c.without_agent, numeric=True),
    Column("unmanaged_agents", "Agents unknown to the RMM", lambda c: c.unmanaged_agents, numeric=True),
    Column("seats", "Console seats", lambda c: c.seats, numeric=True),
    Column("covered", "Covered", lambda c: c.covered_share, numeric=True),
]
DEFAULT_SORT = {"clients": "share", "coverage": "covered"}


@dataclass(frozen=True)
class Header:
    column: Column
    href: str
    aria_sort: str
    """`ascending`, `descending` or `none`"""


@dataclass(frozen=True)
class TableView:
    name: str
    page: insights.TablePage
    headers: list[Header]
    csv_href: str
    prev_href: str | None
    next_href: str | None


def _view(name: str, rows: list[Any], columns: list[Column], sort: str, q: str, page: int) -> TableView:
    result = insights.table_page(rows, columns, sort=sort, default=DEFAULT_SORT[name], q=q, page=page)

    def href(**changes: str | int) -> str:
        query = {"table": name, "sort": result.sort, "q": result.q, "page": result.page, **changes}
        return "/?" + urlencode({k: v for k, v in query.items() if v not in ("", None)}) + f"#{name}-title"

    headers = []
    for column in columns:
        current = result.sort.removeprefix("-") == column.key
        descending = result.sort.startswith("-")
        flipped = column.key if current and descending else f"-{column.key}" if current else column.key
        aria = ("descending" if descending else "ascending") if current else "none"
        headers.append(Header(column, href(sort=flipped, page=1), aria))
    csv_query = {"table": name, "sort": result.sort, "q": result.q, "format": "csv"}
    return TableView(
        name=name,
        page=result,
        headers=headers,
        csv_href="/?" + urlencode({k: v for k, v in csv_query.items() if v}),
        prev_href=href(page=result.page - 1) if result.page > 1 else None,
        next_href=href(page=result.page + 1) if result.page < result.pages else None,
    )


# -- the page -------------------------------------------------------------------------------------


@router.get("/")
async def overview(
    request: Request,
    session: Session,
    user: User,
    table: str = Query("clients", pattern="^(clients|coverage)$"),
    sort: str = Query("", max_length=40),
    q: str = Query("", max_length=200),
    page: int = Query(1, ge=1, le=100_000),
    format: str | None = Query(None, pattern="^(html|csv)$"),
) -> Response:
    """`?table=clients|coverage` with `sort` (a column, `-column` descending), `q` (text filter),
    `page`, and `format=csv` (every filtered row) applies to that table; the other keeps its defaults."""
    tenant_id = user.principal.tenant_id
    overall, clients = await fleet_stats.summary(session, tenant_id)
    connections = {c.id: c.name for c in await list_connections(session, tenant_id)}
    several_rmms = len({c.rmm_connection_id for c in clients}) > 1
    client_columns = _client_columns(connections, several_rmms)
    coverage = await consoles.coverage_by_company(session, tenant_id)
    wanted: dict[str, tuple[list[Any], list[Column]]] = {
        "clients": (list(clients), client_columns),
        "coverage": (list(coverage), COVERAGE_COLUMNS),
    }

    if format == "csv":
        rows, columns = wanted[table]
        everything = insights.table_page(
            rows, columns, sort=sort, default=DEFAULT_SORT[table], q=q, size=max(len(rows), 1)
        )
        return Response(
            insights.to_csv(everything.rows, columns),
            media_type="text/csv; charset=utf-8",
            headers={**HEADERS, "Content-Disposition": f'attachment; filename="{table}.csv"'},
        )

    views = {
        name: _view(name, rows, columns, *((sort, q, page) if name == table else ("", "", 1)))
        for name, (rows, columns) in wanted.items()
    }
    today = datetime.now(UTC).date()
    since = datetime.combine(today - timedelta(days=TREND_DAYS - 1), datetime.min.time(), UTC)
    ticket_events = await audit.entries_since(session, tenant_id, TICKET_KINDS, since)
    period = today.strftime("%Y-%m")
    preview = await build_preview(session, tenant_id, period)
    unknown_clients = [c for c in clients if insights.health_class(c.counts) == "unknown"]
    return render(
        request,
        "overview.html",
        user,
        classes=fleet_stats.HEALTH_CLASSES,
        overall={h: getattr(overall, h) for h in fleet_stats.HEALTH_CLASSES},
        total=overall.total,
        known=overall.known,
        share=insights.known_share(overall),
        unknown_clients=unknown_clients,
        unmapped=[c for c in clients if c.mapped_company is None],
        unbilled=await unbilled(session, tenant_id, preview, clients),
        period=period,
        billing_rules_help=BILLING_RULES_HELP,
        connections=connections,
        several_rmms=several_rmms,
        has_clients=bool(clients),
        clients_view=views["clients"],
        coverage_view=views["coverage"] if coverage else None,
        chart=trend_chart(await fleet_stats.trend(session, tenant_id, TREND_DAYS), TREND_DAYS, today),
        tickets=ticket_chart(insights.ticket_days(ticket_events, TREND_DAYS, today)),
        days=TREND_DAYS,
        severities=insights.by_severity(
            await alerts.count_problems_by_kind(session, tenant_id, state=ProblemStatus.OPEN)
        ),
        open_problems=await alerts.count_problems(session, tenant_id, state=ProblemStatus.OPEN),
        unmapped_problems=await alerts.count_problems(
            session, tenant_id, state=ProblemStatus.OPEN, routing=Routing.UNMAPPED
        ),
        dead_deliveries=await alerts.count_deliveries(session, tenant_id, status=DeliveryStatus.DEAD),
        checklist=await setup.checklist(session, tenant_id),
    )
