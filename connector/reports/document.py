"""A client report as one HTML page and as PDF. Pure: no I/O. The HTML needs no script or external
resource; the PDF uses the core fonts (Latin-1: other characters are replaced, never failing)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from html import escape

from fpdf import FPDF

from connector.reports.domain import ClientReport

HOST_LIMIT = 50
"""Host names listed per group; more are counted, not named."""
KIND_LABELS = {
    "not_protected": "Not protected",
    "protection_disabled": "Protection disabled",
    "definitions_outdated": "Definitions out of date",
    "threat_detected": "Threat detected",
    "scan_overdue": "Scan overdue",
    "agent_offline": "Agent offline",
    "unmanaged_agent": "Security agent on an unmanaged device",
}


def kind_label(kind: str) -> str:
    return KIND_LABELS.get(kind, kind.replace("_", " ").capitalize())


def percent(share: float | None) -> str:
    return "—" if share is None else f"{share * 100:.1f}%"


def _day(at: datetime | None) -> str:
    return "" if at is None else at.strftime("%Y-%m-%d")


def _hosts(hosts: Sequence[str]) -> str:
    named = ", ".join(hosts[:HOST_LIMIT])
    return named + (f" and {len(hosts) - HOST_LIMIT} more" if len(hosts) > HOST_LIMIT else "")


def summary_lines(report: ClientReport) -> list[tuple[str, str]]:
    devices, coverage = report.devices, report.devices.coverage
    lines = [
        ("Protected share at the month's end", percent(report.trend.last)),
        ("Average protected share", percent(report.trend.average)),
        ("Devices", str(devices.total)),
        (
            "Protected / not protected / unknown",
            f"{devices.protected} / {devices.not_protected} / {devices.unknown}",
        ),
        ("Problems opened / resolved", f"{report.problems.opened} / {report.problems.resolved}"),
        ("Problems still open at the month's end", str(report.problems.open_at_end)),
        ("Threats detected / resolved", f"{report.threats.opened} / {report.threats.resolved}"),
    ]
    if coverage is not None:
        lines.append(
            (
                f"Devices with a security console agent ({', '.join(coverage.consoles)})",
                f"{coverage.with_agent} of {coverage.devices}",
            )
        )
    return lines


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]], table_id: str, empty: str) -> str:
    if not rows:
        return f'<p id="{table_id}" class=empty>{escape(empty)}</p>'
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{escape(cell)}</td>" for cell in row) + "</tr>" for row in rows)
    return f'<table id="{table_id}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def html(report: ClientReport) -> str:
    summary = "".join(
        f"<tr><th>{escape(name)}</th><td>{escape(value)}</td></tr>" for name, value in summary_lines(report)
    )
    bars = "".join(
        f'<tr data-day="{d.day}"><td>{d.day}</td><td>{d.protected} of {d.known}</td>'
        f"<td>{percent(d.share)}</td>"
        f'<td><span class=bar style="width:{round(d.share * 200)}px"></span></td></tr>'
        for d in report.trend.days
    )
    trend = (
        f'<table id="trend"><thead><tr><th>Day</th><th>Protected</th><th>Share</th><th></th></tr></thead>'
        f"<tbody>{bars}</tbody></table>"
        if report.trend.days
        else '<p id="trend" class=empty>No sync recorded this month.</p>'
    )
    problems = _table(
        ("Problem", "Opened", "Resolved"),
        [(kind_label(k.kind), str(k.opened), str(k.resolved)) for k in report.problems.by_kind],
        "problems",
        "No problem opened or resolved this month.",
    )
    threats = _table(
        ("Device", "Found by", "Detected", "Resolved", "Details"),
        [
            (t.hostname or "", t.source, _day(t.opened_at), _day(t.cleared_at) or "open", t.message)
            for t in report.threats.items
        ],
        "threats",
        "No threat detected this month.",
    )
    devices = report.devices
    health = _table(
        ("Health", "Devices"),
        [(name.replace("_", " "), str(count)) for name, count in devices.by_health.items()],
        "devices",
        "No device.",
    )
    gaps = ""
    if devices.not_protected_hosts:
        gaps += f"<p>Not protected: {escape(_hosts(devices.not_protected_hosts))}</p>"
    if devices.unknown_hosts:
        gaps += f"<p>Status unknown: {escape(_hosts(devices.unknown_hosts))}</p>"
    coverage = devices.coverage
    if coverage is not None and coverage.without_agent_hosts:
        gaps += f"<p>Without a console agent: {escape(_hosts(coverage.without_agent_hosts))}</p>"
    name = escape(report.client)
    return (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        f"<title>{escape(report.title)}</title>"
        "<style>body{font-family:sans-serif;margin:2em;max-width:60em}table{border-collapse:collapse;"
        "margin-bottom:1em}td,th{padding:.3em .8em;border-bottom:1px solid #ccc;text-align:left}"
        ".bar{display:inline-block;height:.8em;background:#2a7}.empty{color:#666}</style></head>"
        f"<body><h1>{escape(report.title)}</h1>"
        f'<p>Client: <span id="client-name">{name}</span> (PSA company {escape(report.company_id)}). '
        f"Period {report.period}, generated {report.generated_at.strftime('%Y-%m-%d %H:%M')} UTC. "
        f'<a id="pdf-link" href="?period={report.period}&amp;format=pdf">Download PDF</a></p>'
        f'<h2>Summary</h2><table id="summary">{summary}</table>'
        f"<h2>Protection over the month</h2>{trend}"
        f"<h2>Problems</h2>{problems}"
        f"<h2>Threats</h2>{threats}"
        f"<h2>Devices at the month's end</h2>{health}{gaps}"
        "</body></html>"
    )


def pdf(report: ClientReport) -> bytes:
    document = FPDF()
    document.set_title(_latin1(report.title))
    document.add_page()

    def heading(text: str, size: int = 12) -> None:
        document.set_font("Helvetica", "B", size)
        document.cell(0, 9, _latin1(text), new_x="LMARGIN", new_y="NEXT")

    def row(cells: Sequence[str], widths: Sequence[int], *, bold: bool = False) -> None:
        document.set_font("Helvetica", "B" if bold else "", 9)
        for width, text in zip(widths, cells, strict=True):
            document.cell(width, 7, _latin1(text)[: max(width // 2, 4)], border=1)
        document.ln()

    def paragraph(text: str) -> None:
        document.set_font("Helvetica", size=9)
        document.multi_cell(0, 5, _latin1(text), new_x="LMARGIN", new_y="NEXT")

    heading(report.title, 14)
    paragraph(
        f"Client: {report.client} (PSA company {report.company_id}). Period {report.period}, "
        f"generated {report.generated_at.strftime('%Y-%m-%d %H:%M')} UTC."
    )
    heading("Summary")
    for name, value in summary_lines(report):
        row((name, value), (120, 60))
    heading("Protection over the month")
    if report.trend.days:
        row(("Day", "Protected", "Share"), (40, 40, 30), bold=True)
        for day in report.trend.days:
            row((day.day, f"{day.protected} of {day.known}", percent(day.share)), (40, 40, 30))
    else:
        paragraph("No sync recorded this month.")
    heading("Problems")
    if report.problems.by_kind:
        row(("Problem", "Opened", "Resolved"), (90, 30, 30), bold=True)
        for kind in report.problems.by_kind:
            row((kind_label(kind.kind), str(kind.opened), str(kind.resolved)), (90, 30, 30))
    else:
        paragraph("No problem opened or resolved this month.")
    heading("Threats")
    if report.threats.items:
        row(("Device", "Found by", "Detected", "Resolved"), (70, 30, 35, 35), bold=True)
        for threat in report.threats.items:
            row(
                (
                    threat.hostname or "",
                    threat.source,
                    _day(threat.opened_at),
                    _day(threat.cleared_at) or "open",
                ),
                (70, 30, 35, 35),
            )
    else:
        paragraph("No threat detected this month.")
    heading("Devices at the month's end")
    for name, count in report.devices.by_health.items():
        row((name.replace("_", " "), str(count)), (60, 30))
    if report.devices.not_protected_hosts:
        paragraph(f"Not protected: {_hosts(report.devices.not_protected_hosts)}")
    if report.devices.unknown_hosts:
        paragraph(f"Status unknown: {_hosts(report.devices.unknown_hosts)}")
    coverage = report.devices.coverage
    if coverage is not None and coverage.without_agent_hosts:
        paragraph(f"Without a console agent: {_hosts(coverage.without_agent_hosts)}")
    return bytes(document.output())


def _latin1(text: str) -> str:
    return text.replace("—", "-").encode("latin-1", "replace").decode("latin-1")
