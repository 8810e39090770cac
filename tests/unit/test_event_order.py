"""The pure newest-event rule: recorded newest event × incoming event → what happens. No I/O."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

import pytest

from connector.alerts.event_order import (
    Clear,
    Continue,
    Decision,
    History,
    Ignore,
    Incoming,
    Newest,
    Open,
    State,
    decide,
)

T0 = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)


def at(minutes: int) -> datetime:
    return T0 + timedelta(minutes=minutes)


def alert(state: State, minutes: int) -> Incoming:
    return Incoming(state, at(minutes), occurrence=True)


def observation(state: State, minutes: int) -> Incoming:
    return Incoming(state, at(minutes), occurrence=False)


def test_the_first_event_of_a_problem_is_recorded_whatever_it_is() -> None:
    assert decide(None, alert("active", 0)) == Decision(Open(), Newest("active", at(0)))
    # A clear that finds nothing open is recorded too: an older active applied later must not open.
    assert decide(None, alert("cleared", 5)) == Decision(Clear(), Newest("cleared", at(5)))


def test_a_newer_clear_clears_and_an_older_one_changes_nothing() -> None:
    active = Newest("active", at(10))
    assert decide(active, alert("cleared", 15)) == Decision(Clear(), Newest("cleared", at(15)))
    assert decide(active, alert("cleared", 5)) == Decision(Ignore(), None)
    assert decide(active, observation("cleared", 5)) == Decision(Ignore(), None)


def test_an_active_after_a_newer_clear_is_history_never_an_open_problem() -> None:
    cleared = Newest("cleared", at(5))
    assert decide(cleared, alert("active", 0)) == Decision(History(cleared_at=at(5)), None)
    # Observations report current state again and again: a stale one is dropped, not kept.
    assert decide(cleared, observation("active", 0)) == Decision(Ignore(), None)


def test_a_problem_that_returns_after_its_clear_is_a_new_episode() -> None:
    cleared = Newest("cleared", at(5))
    assert decide(cleared, alert("active", 60)) == Decision(Open(), Newest("active", at(60)))
    assert decide(cleared, observation("active", 60)) == Decision(Open(), Newest("active", at(60)))


def test_repeats_count_in_any_order_and_observations_never_count() -> None:
    active = Newest("active", at(10))
    assert decide(active, alert("active", 20)) == Decision(Continue(count=True), Newest("active", at(20)))
    # An earlier report of the same open episode, applied late: counted, the newest stays.
    assert decide(active, alert("active", 5)) == Decision(Continue(count=True), None)
    assert decide(active, alert("active", 10)) == Decision(Continue(count=True), None)
    assert decide(active, observation("active", 20)) == Decision(
        Continue(count=False), Newest("active", at(20))
    )
    assert decide(active, observation("active", 5)) == Decision(Ignore(), None)


def test_on_equal_times_the_clear_wins_in_either_order() -> None:
    assert decide(Newest("active", at(0)), alert("cleared", 0)).effect == Clear()
    assert decide(Newest("cleared", at(0)), alert("active", 0)).effect == History(cleared_at=at(0))
    assert decide(Newest("cleared", at(0)), alert("cleared", 0)) == Decision(Ignore(), None)


def _end_state(events: list[Incoming]) -> tuple[State | None, bool]:
    """Apply events in the given order the way the I/O layer does: (recorded state, episode open)."""
    newest: Newest | None = None
    is_open = False
    for event in events:
        decision = decide(newest, event)
        match decision.effect:
            case Open() | Continue():
                is_open = True
            case Clear():
                is_open = False
            case History() | Ignore():
                pass
        newest = decision.newest or newest
    return (newest.state if newest else None), is_open


SCENARIOS = {
    "active then newer clear": [alert("active", 0), alert("cleared", 5)],
    "newer active, older clear": [alert("active", 0), alert("active", 10), alert("cleared", 5)],
    "clear, then return": [alert("active", 0), alert("cleared", 5), alert("active", 10)],
    "same time": [alert("active", 0), alert("cleared", 0)],
    "repeats and a clear": [alert("active", m) for m in range(4)] + [alert("cleared", 30)],
    "mixed observers": [observation("active", 0), alert("active", 3), observation("cleared", 7)],
}


@pytest.mark.parametrize("events", SCENARIOS.values(), ids=SCENARIOS.keys())
def test_the_end_state_is_the_newest_events_in_every_application_order(events: list[Incoming]) -> None:
    newest = max(events, key=lambda e: (e.at, e.state == "cleared"))
    outcomes = {_end_state(list(order)) for order in itertools.permutations(events)}
    assert outcomes == {(newest.state, newest.state == "active")}
