"""The newest event decides a problem's state. Pure: no I/O, no clock of its own.

Alert senders do not promise order, and deliveries in different jobs are applied concurrently (after a
crash also in lease-expiry order), so an active can be applied after its clear and an old clear after
a newer active. What decides is the events' own times, never the order they are applied in: the newest
event applied so far is recorded per RMM connection × endpoint × problem kind (`Newest`), and each
incoming event is compared with it. On equal times a clear beats an active, so the same two events end
the same way whichever is applied first.

Two kinds of input meet here. Alert events are *occurrences*: each one counts (repeat notes), and one
that arrives after a newer clear is still kept, as an episode that is already over. Status findings and
polled alerts are *observations* of the current state, reported again on every sync: they open or clear
but never count, and a stale one is dropped.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from connector.statuses import EventState

State = EventState


@dataclass(frozen=True)
class Newest:
    """The newest event applied to one problem (RMM connection × endpoint × problem kind)."""

    state: State
    at: datetime


@dataclass(frozen=True)
class Incoming:
    state: State
    at: datetime
    occurrence: bool
    """An alert event (counts; kept even when late) rather than an observation (status, poll)."""


@dataclass(frozen=True)
class Open:
    """The problem is active again (or for the first time): a new episode."""


@dataclass(frozen=True)
class Continue:
    """The problem is still active: the open episode goes on; `count` adds one occurrence to it."""

    count: bool


@dataclass(frozen=True)
class Clear:
    """The newest event is a clear: the open episode (if any) ends at the event's time."""


@dataclass(frozen=True)
class History:
    """An occurrence older than the newest clear: its episode ended at `cleared_at` already. It is
    kept as a cleared episode (so the problems list shows it) and never gets a ticket."""

    cleared_at: datetime


@dataclass(frozen=True)
class Ignore:
    """Nothing changes: a clear older than the newest event, or a stale observation."""


Effect = Open | Continue | Clear | History | Ignore


@dataclass(frozen=True)
class Decision:
    effect: Effect
    newest: Newest | None
    """What to record as the newest event from now on; None keeps the recorded one."""


def supersedes(event: Incoming, newest: Newest | None) -> bool:
    """Whether `event` is newer than what is recorded (on equal times a clear beats an active)."""
    if newest is None:
        return True
    if event.at != newest.at:
        return event.at > newest.at
    return event.state == EventState.CLEARED and newest.state == EventState.ACTIVE


def decide(newest: Newest | None, event: Incoming) -> Decision:
    """What `event` does, given the newest event recorded for its problem (None: none yet)."""
    if supersedes(event, newest):
        record = Newest(event.state, event.at)
        if event.state == EventState.CLEARED:
            return Decision(Clear(), record)
        if newest is None or newest.state == EventState.CLEARED:
            return Decision(Open(), record)
        return Decision(Continue(count=event.occurrence), record)
    assert newest is not None
    if event.state == EventState.CLEARED or not event.occurrence:
        return Decision(Ignore(), None)
    if newest.state == EventState.ACTIVE:
        return Decision(Continue(count=True), None)  # an earlier report of the episode still open
    return Decision(History(cleared_at=newest.at), None)
