"""The overview's computations without I/O: the share of known endpoints, clients not billed,
problems by severity, the ticket days, table sorting/filtering/paging/CSV, and money formatting."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

from connector.alerts.storms.domain import Severity
from connector.fleet.stats import ClientCounts, Counts
from connector.web import insights
from connector.web.charts import ticket_chart
from connector.web.insights import Column
from connector.web.render import money


def _client(client_id: str, company: str | None = None, **counts: int) -> ClientCounts:
    return ClientCounts("rmm", client_id, client_id.upper(), company, Counts(**counts))


def test_a_client_with_only_unknown_endpoints_has_no_share_not_zero() -> None:
    assert insights.known_share(Counts(unknown=4)) is None
    assert insights.health_class(Counts(unknown=4)) == "unknown"
    assert insights.known_share(Counts(protected=3, unprotected=1, unknown=6)) == 0.75
    assert insights.health_class(Counts(protected=1, unknown=6)) == "known"
    assert insights.known_share(Counts(unprotected=2)) == 0.0


def test_unbilled_clients_are_mapped_with_endpoints_and_no_line() -> None:
    clients = [
        _client("billed", "Billed Co", protected=2),
        _client("unbilled", "Other Co", protected=5),
        _client("unmapped", None, protected=9),
        _client("empty", "Empty Co"),
    ]
    clients.append(_client("same-id", "Elsewhere Co", protected=1))
    companies = {
        ("rmm", "billed"): ("psa-a", "1"),
        ("rmm", "unbilled"): ("psa-a", "2"),
        ("rmm", "empty"): ("psa-a", "3"),
        ("rmm", "same-id"): ("psa-b", "1"),  # company 1 of another PSA is another company
    }
    found = insights.unbilled_clients(clients, companies, billed={("psa-a", "1")})
    assert [c.client_id for c in found] == ["unbilled", "same-id"]


def test_problems_by_severity_follow_the_ticket_rules_mapping() -> None:
    counts = insights.by_severity(
        {"threat_detected": 2, "not_protected": 1, "protection_disabled": 3, "scan_overdue": 1, "new_kind": 4}
    )
    assert counts == [
        (Severity.CRITICAL, 2),
        (Severity.HIGH, 4),
        (Severity.MEDIUM, 4),
        (Severity.LOW, 1),
    ]
    assert insights.by_severity({}) == [(s, 0) for s in Severity]


def test_ticket_days_cover_every_day_and_ignore_other_kinds_and_old_entries() -> None:
    today = date(2026, 12, 3)

    def at(day: int, hour: int = 9) -> datetime:
        return datetime(2026, 12, day, hour, tzinfo=UTC)

    events = [
        (at(2), "ticket.created"),
        (at(2, 23), "ticket.created"),
        (at(3), "ticket.closed"),
        (at(3), "ticket.reraised"),
        (at(3), "ticket.noted"),
        (datetime(2026, 10, 1, tzinfo=UTC), "ticket.created"),
    ]
    days = insights.ticket_days(events, 30, today)
    assert len(days) == 30 and days[0].day == "2026-11-04" and days[-1].day == "2026-12-03"
    assert (days[-2].opened, days[-2].closed) == (2, 0)
    assert (days[-1].opened, days[-1].closed) == (1, 1)
    assert sum(d.opened for d in days) == 3
    chart = ticket_chart(days)
    assert chart.total_opened == 3 and chart.total_closed == 1 and chart.peak == 2
    assert len(chart.opened.split()) == 30


COLUMNS = [
    Column("name", "Name", lambda r: r["name"]),
    Column("share", "Share", lambda r: r["share"], numeric=True),
]
ROWS = [
    {"name": "Bravo", "share": 0.5},
    {"name": "alpha", "share": None},
    {"name": "Charlie", "share": 0.1},
    {"name": "=cmd", "share": 1.0},
]


def test_tables_sort_with_missing_values_last_either_way() -> None:
    up = insights.table_page(ROWS, COLUMNS, sort="share", default="name")
    assert [r["name"] for r in up.rows] == ["Charlie", "Bravo", "=cmd", "alpha"]
    down = insights.table_page(ROWS, COLUMNS, sort="-share", default="name")
    assert [r["name"] for r in down.rows] == ["=cmd", "Bravo", "Charlie", "alpha"]
    assert down.sort == "-share"
    fallback = insights.table_page(ROWS, COLUMNS, sort="nope", default="name")
    assert fallback.sort == "name" and [r["name"] for r in fallback.rows][:2] == ["=cmd", "alpha"]


def test_tables_filter_and_page() -> None:
    found = insights.table_page(ROWS, COLUMNS, sort="name", default="name", q="  AR ")
    assert [r["name"] for r in found.rows] == ["Charlie"] and found.q == "AR" and found.total == 1
    first = insights.table_page(ROWS, COLUMNS, sort="name", default="name", page=1, size=3)
    last = insights.table_page(ROWS, COLUMNS, sort="name", default="name", page=99, size=3)
    assert first.pages == 2 and len(first.rows) == 3
    assert last.page == 2 and [r["name"] for r in last.rows] == ["Charlie"]


def test_csv_has_every_row_and_defuses_formulas() -> None:
    text = insights.to_csv(ROWS, COLUMNS)
    assert text.splitlines() == ["Name,Share", "Bravo,0.5", "alpha,", "Charlie,0.1", "'=cmd,1"]


def test_money_in_the_tenants_currency_and_locale() -> None:
    assert money(Decimal("1234.5"), "EUR", "en_IE") == "€1,234.50"
    assert money(Decimal("1234.5")) == "$1,234.50"
    assert money(Decimal("1234.5"), "EUR", "de_DE") == "1.234,50\xa0€"
    assert money(Decimal("-3"), "GBP", "en_GB") == "-£3.00"
