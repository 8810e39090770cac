"""Maintenance windows, pure: when a window is open, in the client's own time zone.

A one-off window runs from one local wall-clock time to another; a weekly window starts on the
given weekdays at a local time and lasts a number of minutes of *wall-clock* time, so a window of
22:00–06:00 stays 22:00–06:00 local on the nights the clocks change (it is an hour shorter or longer
in real time). A local start that does not exist (skipped by a spring-forward change) begins at the
offset as the moment before the change (02:30 in a 02:00→03:00 gap begins at 03:30) and keeps its
length; one that exists twice (autumn) begins at its first occurrence.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

ONCE = "once"
WEEKLY = "weekly"
MAX_DURATION = timedelta(days=7)


class WindowError(ValueError):
    """A window that cannot be: `field` names what is wrong."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


@dataclass(frozen=True)
class Window:
    timezone: str
    kind: str
    start_local: datetime | None = None
    """One-off: local wall-clock start (naive)."""
    end_local: datetime | None = None
    """One-off: local wall-clock end (naive)."""
    weekdays: frozenset[int] = frozenset()
    """Weekly: 0 = Monday … 6 = Sunday, the local days it starts on."""
    start_time: time | None = None
    """Weekly: local start time."""
    duration: timedelta = timedelta(0)
    """Weekly: wall-clock length."""


def zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise WindowError(
            "timezone", f"unknown time zone {name!r} (an IANA name such as Europe/Berlin)"
        ) from exc


def validate(window: Window) -> None:
    zone(window.timezone)
    if window.kind == ONCE:
        if window.start_local is None:
            raise WindowError("start_local", "a one-off window needs start_local")
        if window.end_local is None:
            raise WindowError("end_local", "a one-off window needs end_local")
        if window.end_local <= window.start_local:
            raise WindowError("end_local", "end_local must be after start_local")
    elif window.kind == WEEKLY:
        if not window.weekdays or any(d not in range(7) for d in window.weekdays):
            raise WindowError("weekdays", "a weekly window needs weekdays, each 0 (Monday) to 6 (Sunday)")
        if window.start_time is None:
            raise WindowError("start_time", "a weekly window needs start_time")
        if not timedelta(0) < window.duration <= MAX_DURATION:
            raise WindowError("duration_minutes", "duration_minutes must be between 1 and 10080")
    else:
        raise WindowError("kind", "kind is 'once' or 'weekly'")


def _to_utc(local: datetime, tz: ZoneInfo) -> datetime:
    """A local wall-clock time as an instant: fold=0 takes the first of a repeated hour; a time in a
    spring-forward gap takes the pre-change offset, landing after the gap."""
    return local.replace(tzinfo=tz, fold=0).astimezone(UTC)


def occurrences(window: Window, around: datetime) -> list[tuple[datetime, datetime]]:
    """The window's spans (UTC start, UTC end) that could contain `around` (an aware instant)."""
    tz = zone(window.timezone)
    if window.kind == ONCE:
        assert window.start_local is not None and window.end_local is not None
        return [(_to_utc(window.start_local, tz), _to_utc(window.end_local, tz))]
    assert window.start_time is not None
    today: date = around.astimezone(tz).date()
    spans = []
    for back in range(window.duration.days + 1, -1, -1):
        day = today - timedelta(days=back)
        if day.weekday() not in window.weekdays:
            continue
        start = _to_utc(datetime.combine(day, window.start_time), tz)
        wall = start.astimezone(tz).replace(tzinfo=None)  # a start in a gap moves past it
        spans.append((start, _to_utc(wall + window.duration, tz)))
    return spans


def open_until(window: Window, now: datetime) -> datetime | None:
    """The UTC end of the span of `window` that `now` is in, or None when the window is closed.
    Back-to-back or overlapping spans are followed to the last end."""
    until: datetime | None = None
    for start, end in occurrences(window, now):
        if start <= now < end or (until is not None and start <= until < end):
            until = end if until is None else max(until, end)
    return until


def held_until(windows: list[Window], now: datetime) -> datetime | None:
    """When the latest open window of several ends (None: none is open now)."""
    ends = [end for end in (open_until(w, now) for w in windows) if end is not None]
    return max(ends) if ends else None
