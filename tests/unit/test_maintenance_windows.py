"""Maintenance windows in the client's time zone, across daylight-saving changes."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta

import pytest

from connector.maintenance.domain import ONCE, WEEKLY, Window, WindowError, held_until, open_until, validate


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)


def weekly(tz: str, days: set[int], start: time, minutes: int) -> Window:
    return Window(
        timezone=tz,
        kind=WEEKLY,
        weekdays=frozenset(days),
        start_time=start,
        duration=timedelta(minutes=minutes),
    )


def test_one_off_window_is_open_between_its_local_times_only() -> None:
    window = Window(
        timezone="America/New_York",
        kind=ONCE,
        start_local=datetime(2026, 7, 4, 22, 0),
        end_local=datetime(2026, 7, 5, 2, 0),
    )
    # 22:00 EDT = 02:00 UTC; 02:00 EDT = 06:00 UTC
    assert open_until(window, utc(2026, 7, 5, 1, 59)) is None
    assert open_until(window, utc(2026, 7, 5, 2, 0)) == utc(2026, 7, 5, 6, 0)
    assert open_until(window, utc(2026, 7, 5, 5, 59)) == utc(2026, 7, 5, 6, 0)
    assert open_until(window, utc(2026, 7, 5, 6, 0)) is None


def test_weekly_window_keeps_local_wall_clock_when_the_clocks_go_forward() -> None:
    # Sundays 01:00–05:00 Berlin time. On 2026-03-29 the clocks jump from 02:00 to 03:00:
    # 01:00 CET = 00:00 UTC, 05:00 CEST = 03:00 UTC (three real hours).
    window = weekly("Europe/Berlin", {6}, time(1, 0), 240)
    assert open_until(window, utc(2026, 3, 28, 23, 59)) is None
    assert open_until(window, utc(2026, 3, 29, 0, 0)) == utc(2026, 3, 29, 3, 0)
    assert open_until(window, utc(2026, 3, 29, 3, 0)) is None
    # the Sunday before, in winter time: 00:00–04:00 UTC
    assert open_until(window, utc(2026, 3, 22, 3, 30)) == utc(2026, 3, 22, 4, 0)
    # the Sunday after, in summer time: 23:00 (Saturday) – 03:00 UTC
    assert open_until(window, utc(2026, 4, 4, 23, 0)) == utc(2026, 4, 5, 3, 0)
    assert open_until(window, utc(2026, 4, 4, 22, 59)) is None


def test_weekly_window_across_the_autumn_change_is_an_hour_longer() -> None:
    # Sundays 01:00–05:00 New York time; on 2026-11-01 02:00 EDT becomes 01:00 EST.
    window = weekly("America/New_York", {6}, time(1, 0), 240)
    # 01:00 EDT (first occurrence) = 05:00 UTC; 05:00 EST = 10:00 UTC: five real hours
    assert open_until(window, utc(2026, 11, 1, 4, 59)) is None
    assert open_until(window, utc(2026, 11, 1, 5, 0)) == utc(2026, 11, 1, 10, 0)
    assert open_until(window, utc(2026, 11, 1, 9, 59)) == utc(2026, 11, 1, 10, 0)


def test_a_start_in_the_spring_gap_begins_after_the_gap() -> None:
    # 02:30 does not exist in Berlin on 2026-03-29: the window starts at 03:30 CEST = 01:30 UTC
    window = weekly("Europe/Berlin", {6}, time(2, 30), 60)
    assert open_until(window, utc(2026, 3, 29, 1, 29)) is None
    assert open_until(window, utc(2026, 3, 29, 1, 30)) == utc(2026, 3, 29, 1, 30) + timedelta(minutes=60)


def test_overnight_weekly_window_started_yesterday_is_still_open() -> None:
    window = weekly("Asia/Tokyo", {4}, time(22, 0), 8 * 60)  # Fridays 22:00 – Saturday 06:00 JST
    # Saturday 2026-12-05 03:00 JST = Friday 18:00 UTC
    assert open_until(window, utc(2026, 12, 4, 18, 0)) == utc(2026, 12, 4, 21, 0)
    assert open_until(window, utc(2026, 12, 4, 21, 0)) is None


def test_the_latest_open_window_decides() -> None:
    a = weekly("UTC", {0, 1, 2, 3, 4, 5, 6}, time(10, 0), 60)
    b = Window(
        timezone="UTC", kind=ONCE, start_local=datetime(2026, 6, 1, 9), end_local=datetime(2026, 6, 1, 12)
    )
    assert held_until([a, b], utc(2026, 6, 1, 10, 30)) == utc(2026, 6, 1, 12)
    assert held_until([a], utc(2026, 6, 1, 12)) is None
    assert held_until([], utc(2026, 6, 1, 12)) is None


@pytest.mark.parametrize(
    ("window", "field"),
    [
        (Window(timezone="Mars/Olympus", kind=ONCE), "timezone"),
        (Window(timezone="UTC", kind=ONCE, start_local=datetime(2026, 1, 2)), "end_local"),
        (
            Window(
                timezone="UTC", kind=ONCE, start_local=datetime(2026, 1, 2), end_local=datetime(2026, 1, 1)
            ),
            "end_local",
        ),
        (Window(timezone="UTC", kind=WEEKLY, start_time=time(1), duration=timedelta(hours=1)), "weekdays"),
        (
            Window(
                timezone="UTC",
                kind=WEEKLY,
                weekdays=frozenset({7}),
                start_time=time(1),
                duration=timedelta(hours=1),
            ),
            "weekdays",
        ),
        (
            Window(timezone="UTC", kind=WEEKLY, weekdays=frozenset({1}), duration=timedelta(hours=1)),
            "start_time",
        ),
        (
            Window(timezone="UTC", kind=WEEKLY, weekdays=frozenset({1}), start_time=time(1)),
            "duration_minutes",
        ),
    ],
)
def test_an_impossible_window_names_its_field(window: Window, field: str) -> None:
    with pytest.raises(WindowError) as raised:
        validate(window)
    assert raised.value.field == field
