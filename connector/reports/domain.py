"""A client's monthly security report, computed from plain rows. Pure: no I/O.

One client is one PSA company; its sources are the RMM clients and console customers mapped to it.
For one month (`YYYY-MM`, UTC):

- the protected share per day, from the daily health counts of its RMM clients (the share of
  endpoints with a known status that are protected, as on the dashboard's trend; days without a
  sync are left out, not counted as zero);
- problems opened in the month (first seen in it) and resolved in it (cleared in it), by kind, and
  those still open at the month's end;
- threats: the month's `threat_detected` problems, from the RMM or read from a security console;
- devices at the month's end: the endpoints that existed then (first seen before the end, not yet
  retired), with their last known health — protected, not protected (at risk, unprotected,
  offline) or unknown — and, where a console covers the client, whether a console agent matches
  each of them.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

PERIOD = re.compile(r"^(000[1-9]|00[1-9]\d|0[1-9]\d{2}|[1-9]\d{3})-(0[1-9]|1[0-2])$")
THREAT = "threat_detected"
HEALTH_CLASSES = ("protected", "at_risk", "unprotected", "offline", "unknown")
NOT_PROTECTED = ("at_risk", "unprotected", "offline")


def month(period: str, now: datetime) -> tuple[datetime, datetime]:
    """[start, end) of the period in UTC. ValueError for a malformed period or one not yet begun."""
    if not PERIOD.match(period):
        raise ValueError("must look like YYYY-MM")
    year, number = int(period[:4]), int(period[5:])
    start = datetime(year, number, 1, tzinfo=UTC)
    if start > now:  # before computing the end: December 9999 has none
        raise ValueError("is in the future")
    end = datetime(year + 1, 1, 1, tzinfo=UTC) if number == 12 else datetime(year, number + 1, 1, tzinfo=UTC)
    return start, end


# -- rows in ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DayCounts:
    """One RMM client's endpoints per health class on one day (`YYYY-MM-DD`)."""

    day: str
    protected: int = 0
    at_risk: int = 0
    unprotected: int = 0
    offline: int = 0
    unknown: int = 0


@dataclass(frozen=True)
class ProblemRow:
    kind: str
    source: str
    """`console` for a security console's problem (its threats included), else how the RMM's was
    found (`alert`, `status`, `poll`)."""
    hostname: str | None
    opened_at: datetime
    cleared_at: datetime | None
    message: str = ""


@dataclass(frozen=True)
class DeviceRow:
    hostname: str
    health: str
    first_seen_at: datetime
    retired_at: datetime | None = None
    console: str | None = None
    """The console covering the device's client (None: no console covers it)."""
    with_agent: bool = False
    """A console agent matches the device."""


# -- figures out -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class TrendDay:
    day: str
    protected: int
    known: int
    """Endpoints with a known status (the base of the share)."""

    @property
    def share(self) -> float:
        return round(self.protected / self.known, 4) if self.known else 0.0


@dataclass(frozen=True)
class Trend:
    days: list[TrendDay]

    @property
    def first(self) -> float | None:
        return self.days[0].share if self.days else None

    @property
    def last(self) -> float | None:
        return self.days[-1].share if self.days else None

    @property
    def lowest(self) -> float | None:
        return min(d.share for d in self.days) if self.days else None

    @property
    def highest(self) -> float | None:
        return max(d.share for d in self.days) if self.days else None

    @property
    def average(self) -> float | None:
        return round(sum(d.share for d in self.days) / len(self.days), 4) if self.days else None


@dataclass(frozen=True)
class KindCount:
    kind: str
    opened: int
    resolved: int


@dataclass(frozen=True)
class Problems:
    by_kind: list[KindCount]
    open_at_end: int

    @property
    def opened(self) -> int:
        return sum(k.opened for k in self.by_kind)

    @property
    def resolved(self) -> int:
        return sum(k.resolved for k in self.by_kind)


@dataclass(frozen=True)
class Threat:
    hostname: str | None
    source: str
    """`console` or `rmm`."""
    opened_at: datetime
    cleared_at: datetime | None
    message: str


@dataclass(frozen=True)
class Threats:
    items: list[Threat]
    resolved: int

    @property
    def opened(self) -> int:
        return len(self.items)

    @property
    def from_console(self) -> int:
        return sum(1 for t in self.items if t.source == "console")

    @property
    def from_rmm(self) -> int:
        return self.opened - self.from_console


@dataclass(frozen=True)
class Coverage:
    """Devices of clients a security console covers, and whether an agent of it matches them."""

    consoles: list[str]
    devices: int
    with_agent: int
    without_agent_hosts: list[str]

    @property
    def without_agent(self) -> int:
        return self.devices - self.with_agent


@dataclass(frozen=True)
class Devices:
    by_health: dict[str, int]
    not_protected_hosts: list[str]
    unknown_hosts: list[str]
    coverage: Coverage | None
    """None: no console covers any of the client's devices."""

    @property
    def total(self) -> int:
        return sum(self.by_health.values())

    @property
    def protected(self) -> int:
        return self.by_health["protected"]

    @property
    def not_protected(self) -> int:
        return sum(self.by_health[h] for h in NOT_PROTECTED)

    @property
    def unknown(self) -> int:
        return self.by_health["unknown"]


@dataclass(frozen=True)
class ClientReport:
    period: str
    company_id: str
    company_name: str | None
    trend: Trend
    problems: Problems
    threats: Threats
    devices: Devices
    generated_at: datetime
    sources: list[str] = field(default_factory=list)
    """The RMM clients and console customers mapped to the company, by name."""

    @property
    def client(self) -> str:
        return self.company_name or self.company_id

    @property
    def title(self) -> str:
        return f"Security report {self.period} — {self.client}"


# -- computing -------------------------------------------------------------------------------------


def trend(rows: Iterable[DayCounts], start: datetime, end: datetime) -> Trend:
    """Per day of the month, the client's counts summed over its RMM clients."""
    first, last = start.date().isoformat(), end.date().isoformat()
    protected: Counter[str] = Counter()
    known: Counter[str] = Counter()
    for row in rows:
        if first <= row.day < last:
            protected[row.day] += row.protected
            known[row.day] += row.protected + row.at_risk + row.unprotected + row.offline
    return Trend([TrendDay(day, protected[day], known[day]) for day in sorted(known) if known[day]])


def _within(at: datetime | None, start: datetime, end: datetime) -> bool:
    return at is not None and start <= at < end


def problems(rows: Sequence[ProblemRow], start: datetime, end: datetime) -> Problems:
    opened = Counter(r.kind for r in rows if _within(r.opened_at, start, end))
    resolved = Counter(r.kind for r in rows if _within(r.cleared_at, start, end))
    still_open = sum(1 for r in rows if r.opened_at < end and (r.cleared_at is None or r.cleared_at >= end))
    kinds = sorted(set(opened) | set(resolved), key=lambda k: (-opened[k], -resolved[k], k))
    return Problems([KindCount(k, opened[k], resolved[k]) for k in kinds], still_open)


def threats(rows: Sequence[ProblemRow], start: datetime, end: datetime) -> Threats:
    mine = [r for r in rows if r.kind == THREAT]
    items = [
        Threat(
            r.hostname, "console" if r.source == "console" else "rmm", r.opened_at, r.cleared_at, r.message
        )
        for r in sorted(mine, key=lambda r: (r.opened_at, r.hostname or ""))
        if _within(r.opened_at, start, end)
    ]
    return Threats(items, sum(1 for r in mine if _within(r.cleared_at, start, end)))


def devices(rows: Iterable[DeviceRow], end: datetime) -> Devices:
    """The devices that existed at `end`: first seen before it and not retired by then."""
    present = sorted(
        (r for r in rows if r.first_seen_at < end and (r.retired_at is None or r.retired_at >= end)),
        key=lambda r: (r.hostname.casefold(), r.hostname),
    )
    by_health = dict.fromkeys(HEALTH_CLASSES, 0)
    for row in present:
        by_health[row.health if row.health in by_health else "unknown"] += 1
    covered = [r for r in present if r.console is not None]
    coverage = None
    if covered:
        coverage = Coverage(
            consoles=sorted({r.console for r in covered if r.console is not None}),
            devices=len(covered),
            with_agent=sum(1 for r in covered if r.with_agent),
            without_agent_hosts=[r.hostname for r in covered if not r.with_agent],
        )
    return Devices(
        by_health,
        not_protected_hosts=[r.hostname for r in present if r.health in NOT_PROTECTED],
        unknown_hosts=[r.hostname for r in present if r.health not in (*NOT_PROTECTED, "protected")],
        coverage=coverage,
    )


def build(
    *,
    period: str,
    company_id: str,
    company_name: str | None,
    days: Iterable[DayCounts],
    problem_rows: Sequence[ProblemRow],
    device_rows: Iterable[DeviceRow],
    now: datetime,
    sources: Sequence[str] = (),
) -> ClientReport:
    """ValueError (about the period) for a malformed period or one not yet begun."""
    start, end = month(period, now)
    return ClientReport(
        period=period,
        company_id=company_id,
        company_name=company_name,
        trend=trend(days, start, end),
        problems=problems(problem_rows, start, end),
        threats=threats(problem_rows, start, end),
        devices=devices(device_rows, min(end, now)),
        generated_at=now,
        sources=sorted(sources, key=str.casefold),
    )
