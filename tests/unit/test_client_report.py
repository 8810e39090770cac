"""The client security report's figures from plain rows, and its HTML and PDF."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from connector.reports import document
from connector.reports.domain import (
    DayCounts,
    DeviceRow,
    ProblemRow,
    build,
    devices,
    month,
    problems,
    threats,
    trend,
)
from tests.support.pdf import text

NOW = datetime(2026, 11, 15, 12, tzinfo=UTC)
START, END = datetime(2026, 10, 1, tzinfo=UTC), datetime(2026, 11, 1, tzinfo=UTC)


def at(day: int, month_number: int = 10) -> datetime:
    return datetime(2026, month_number, day, 9, tzinfo=UTC)


def test_month_bounds_and_bad_periods() -> None:
    assert month("2026-10", NOW) == (START, END)
    assert month("2026-12", NOW + timedelta(days=30)) == (
        datetime(2026, 12, 1, tzinfo=UTC),
        datetime(2027, 1, 1, tzinfo=UTC),
    )
    assert month("2026-11", NOW)[0] == datetime(2026, 11, 1, tzinfo=UTC)  # the current month
    for bad in ("2026-13", "2026-1", "26-10", "2026-10-01", "", "0000-01"):
        with pytest.raises(ValueError, match="YYYY-MM"):
            month(bad, NOW)
    for future in ("2026-12", "9999-12"):
        with pytest.raises(ValueError, match="future"):
            month(future, NOW)


def test_trend_sums_clients_per_day_leaves_unknown_out_of_the_share_and_skips_other_months() -> None:
    found = trend(
        [
            DayCounts("2026-10-02", protected=8, unprotected=2, unknown=5),
            DayCounts("2026-10-02", protected=1, offline=1),  # a second RMM client, same day
            DayCounts("2026-10-01", protected=9, at_risk=1),
            DayCounts("2026-09-30", protected=1),
            DayCounts("2026-11-01", protected=1),
            DayCounts("2026-10-03", unknown=4),  # nothing known that day: not drawn as zero
        ],
        START,
        END,
    )
    assert [(d.day, d.protected, d.known, d.share) for d in found.days] == [
        ("2026-10-01", 9, 10, 0.9),
        ("2026-10-02", 9, 12, 0.75),
    ]
    assert (found.first, found.last, found.lowest, found.highest, found.average) == (
        0.9,
        0.75,
        0.75,
        0.9,
        0.825,
    )
    empty = trend([], START, END)
    assert empty.days == [] and empty.last is None and empty.average is None


ROWS = [
    ProblemRow("not_protected", "status", "PC-1", at(3), at(5)),
    ProblemRow("not_protected", "status", "PC-2", at(4), None),
    ProblemRow("definitions_outdated", "status", "PC-3", at(20, 9), at(2)),  # opened last month
    ProblemRow("threat_detected", "console", "PC-4", at(10), at(11), "1 open threat(s): Eicar"),
    ProblemRow("threat_detected", "alert", "PC-1", at(12), None, "Trojan found"),
    ProblemRow("agent_offline", "status", "PC-5", at(28), at(2, 11)),  # resolved next month
    ProblemRow("scan_overdue", "status", "PC-6", at(2, 11), None),  # opened next month
]


def test_problems_opened_and_resolved_in_the_month_by_kind() -> None:
    found = problems(ROWS, START, END)
    assert [(k.kind, k.opened, k.resolved) for k in found.by_kind] == [
        ("not_protected", 2, 1),
        ("threat_detected", 2, 1),
        ("agent_offline", 1, 0),
        ("definitions_outdated", 0, 1),
    ]
    assert (found.opened, found.resolved) == (5, 3)
    # Open at the month's end: PC-2, the RMM threat on PC-1, the offline agent resolved in November.
    assert found.open_at_end == 3


def test_threats_of_the_month_with_their_source() -> None:
    found = threats(ROWS, START, END)
    assert [(t.hostname, t.source, t.cleared_at) for t in found.items] == [
        ("PC-4", "console", at(11)),
        ("PC-1", "rmm", None),
    ]
    assert (found.opened, found.resolved, found.from_console, found.from_rmm) == (2, 1, 1, 1)


def test_devices_at_the_end_with_console_coverage() -> None:
    rows = [
        DeviceRow("pc-b", "protected", at(1), console="Sophos", with_agent=True),
        DeviceRow("PC-A", "unprotected", at(1), console="Sophos", with_agent=False),
        DeviceRow("PC-C", "offline", at(2)),
        DeviceRow("PC-D", "unknown", at(2)),
        DeviceRow("PC-E", "at_risk", at(2)),
        DeviceRow("PC-NEW", "protected", at(3, 11)),  # first seen after the month
        DeviceRow("PC-OLD", "protected", at(1, 9), retired_at=at(20)),  # gone before the end
        DeviceRow("PC-LATE", "protected", at(1, 9), retired_at=at(5, 11)),  # retired after it
    ]
    found = devices(rows, END)
    assert found.by_health == {"protected": 2, "at_risk": 1, "unprotected": 1, "offline": 1, "unknown": 1}
    assert (found.total, found.protected, found.not_protected, found.unknown) == (6, 2, 3, 1)
    assert found.not_protected_hosts == ["PC-A", "PC-C", "PC-E"]
    assert found.unknown_hosts == ["PC-D"]
    assert found.coverage is not None
    assert (found.coverage.consoles, found.coverage.devices, found.coverage.with_agent) == (["Sophos"], 2, 1)
    assert (found.coverage.without_agent, found.coverage.without_agent_hosts) == (1, ["PC-A"])
    assert devices([DeviceRow("x", "protected", at(1))], END).coverage is None


def test_build_html_and_pdf_name_the_client() -> None:
    report = build(
        period="2026-10",
        company_id="250",
        company_name="Contoso (Europe) Ltd — Zürich",
        days=[DayCounts("2026-10-01", protected=3, unprotected=1)],
        problem_rows=ROWS,
        device_rows=[DeviceRow("PC-1", "protected", at(1)), DeviceRow("PC-<2>", "unprotected", at(1))],
        now=NOW,
        sources=["RMM b", "RMM A"],
    )
    assert report.sources == ["RMM A", "RMM b"] and report.trend.last == 0.75
    page = document.html(report)
    assert '<span id="client-name">Contoso (Europe) Ltd — Zürich</span>' in page
    assert "PC-&lt;2&gt;" in page and "PC-<2>" not in page
    assert 'data-day="2026-10-01"' in page and "75.0%" in page
    assert 'href="?period=2026-10&amp;format=pdf"' in page
    shown = text(document.pdf(report))
    assert "Security report 2026-10 - Contoso (Europe) Ltd - Zürich" in shown
    assert "Threat detected" in shown and "PC-4" in shown and "75.0%" in shown
    with pytest.raises(ValueError, match="future"):
        build(
            period="2027-01",
            company_id="250",
            company_name=None,
            days=[],
            problem_rows=[],
            device_rows=[],
            now=NOW,
        )


def test_an_empty_month_still_renders() -> None:
    report = build(
        period="2026-10", company_id="9", company_name=None, days=[], problem_rows=[], device_rows=[], now=NOW
    )
    assert report.client == "9"
    assert "No sync recorded this month." in document.html(report)
    assert "No threat detected this month." in text(document.pdf(report))
