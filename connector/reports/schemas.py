"""The JSON body of `/api/v1/reports/clients/{company_id}?format=json`: the report's figures."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

from connector.reports.domain import ClientReport


class TrendDayOut(BaseModel):
    day: str
    protected: int
    known: int = Field(description="Endpoints with a known status: the base of the share.")
    share: float = Field(description="protected / known, 0..1 (4 decimals).")


class TrendOut(BaseModel):
    days: list[TrendDayOut]
    first: float | None
    last: float | None
    lowest: float | None
    highest: float | None
    average: float | None


class KindCountOut(BaseModel):
    kind: str
    opened: int
    resolved: int


class ProblemsOut(BaseModel):
    opened: int
    resolved: int
    open_at_end: int
    by_kind: list[KindCountOut]


class ThreatOut(BaseModel):
    hostname: str | None
    source: str = Field(description="`console` or `rmm`.")
    opened_at: datetime
    cleared_at: datetime | None
    message: str


class ThreatsOut(BaseModel):
    opened: int
    resolved: int
    from_console: int
    from_rmm: int
    items: list[ThreatOut]


class CoverageOut(BaseModel):
    consoles: list[str]
    devices: int
    with_agent: int
    without_agent: int
    without_agent_hosts: list[str]


class DevicesOut(BaseModel):
    total: int
    protected: int
    not_protected: int = Field(description="At risk, unprotected or offline.")
    unknown: int
    by_health: dict[str, int]
    not_protected_hosts: list[str]
    unknown_hosts: list[str]
    coverage: CoverageOut | None = Field(description="None: no security console covers the client.")


class ClientReportOut(BaseModel):
    period: str
    company_id: str
    company_name: str | None
    sources: list[str]
    generated_at: datetime
    trend: TrendOut
    problems: ProblemsOut
    threats: ThreatsOut
    devices: DevicesOut


def report_out(report: ClientReport) -> ClientReportOut:
    trend, problems, threats, devices = report.trend, report.problems, report.threats, report.devices
    coverage = devices.coverage
    return ClientReportOut(
        period=report.period,
        company_id=report.company_id,
        company_name=report.company_name,
        sources=report.sources,
        generated_at=report.generated_at,
        trend=TrendOut(
            days=[
                TrendDayOut(day=d.day, protected=d.protected, known=d.known, share=d.share)
                for d in trend.days
            ],
            first=trend.first,
            last=trend.last,
            lowest=trend.lowest,
            highest=trend.highest,
            average=trend.average,
        ),
        problems=ProblemsOut(
            opened=problems.opened,
            resolved=problems.resolved,
            open_at_end=problems.open_at_end,
            by_kind=[
                KindCountOut(kind=k.kind, opened=k.opened, resolved=k.resolved) for k in problems.by_kind
            ],
        ),
        threats=ThreatsOut(
            opened=threats.opened,
            resolved=threats.resolved,
            from_console=threats.from_console,
            from_rmm=threats.from_rmm,
            items=[
                ThreatOut(
                    hostname=t.hostname,
                    source=t.source,
                    opened_at=t.opened_at,
                    cleared_at=t.cleared_at,
                    message=t.message,
                )
                for t in threats.items
            ],
        ),
        devices=DevicesOut(
            total=devices.total,
            protected=devices.protected,
            not_protected=devices.not_protected,
            unknown=devices.unknown,
            by_health=devices.by_health,
            not_protected_hosts=devices.not_protected_hosts,
            unknown_hosts=devices.unknown_hosts,
            coverage=None
            if coverage is None
            else CoverageOut(
                consoles=coverage.consoles,
                devices=coverage.devices,
                with_agent=coverage.with_agent,
                without_agent=coverage.without_agent,
                without_agent_hosts=coverage.without_agent_hosts,
            ),
        ),
    )
