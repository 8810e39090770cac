"""Problems × ticket links → the next ticket action. Pure: no I/O, no clock of its own.

One decision per call; the caller applies it, records the result, and asks again until the answer
is `Nothing` or `NoteLater`. That keeps every step individually recordable, so a crash between two
steps resumes at the right one.
"""

from __future__ import annotations

import string
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from adapters.base import ProblemKind
from connector.statuses import ProblemStatus, TicketState
from connector.statuses import Routing as RoutingState
from mappings.rules import PROBLEM_TITLES, ClosePolicy


@dataclass(frozen=True)
class ProblemView:
    kind: ProblemKind
    state: ProblemStatus
    hostname: str
    endpoint_id: str
    client: str
    message: str
    occurrences: int
    noted_occurrences: int
    first_seen_at: datetime
    last_seen_at: datetime
    clear_message: str | None = None
    rmm_url: str | None = None
    """The endpoint's page in the RMM's console, where the RMM's adapter can say it."""


@dataclass(frozen=True)
class LinkView:
    state: TicketState
    last_note_at: datetime | None
    closed_at: datetime | None = None


@dataclass(frozen=True)
class RuleView:
    note_interval: timedelta
    summary_template: str
    close_policy: ClosePolicy = ClosePolicy.CLOSE_IF_UNTOUCHED
    reraise_after: timedelta | None = None


@dataclass(frozen=True)
class Routing:
    """Where the problem's ticket goes; None fields say why it cannot go anywhere."""

    company_id: str | None
    rule: RuleView | None


@dataclass(frozen=True)
class Nothing:
    pass


@dataclass(frozen=True)
class Unroutable:
    reason: Literal[RoutingState.UNMAPPED, RoutingState.NO_RULE]


@dataclass(frozen=True)
class OpenTicket:
    summary: str
    description: str


@dataclass(frozen=True)
class ResumeCreate:
    """A create was started but not recorded: look the marker up; create only if absent and the
    problem is still open."""

    summary: str
    description: str
    create_if_missing: bool


@dataclass(frozen=True)
class AddNote:
    text: str
    covers_occurrences: int


@dataclass(frozen=True)
class NoteLater:
    at: datetime


@dataclass(frozen=True)
class CloseTicket:
    resolution: str
    policy: ClosePolicy = ClosePolicy.CLOSE_IF_UNTOUCHED


@dataclass(frozen=True)
class Reraise:
    """A technician closed the ticket while the problem lasted, and the rule's re-raise interval
    has passed with the problem still open: open a new ticket on the same link."""


Action = Nothing | Unroutable | OpenTicket | ResumeCreate | AddNote | NoteLater | CloseTicket | Reraise


FINISHED = (TicketState.CLOSED, TicketState.HANDED_OVER, TicketState.LEFT_OPEN, TicketState.ACKNOWLEDGED)
"""Link states the connector never writes to the ticket again."""


def decide(problem: ProblemView, link: LinkView | None, routing: Routing, now: datetime) -> Action:
    if problem.state == ProblemStatus.OPEN:
        return _while_open(problem, link, routing, now)
    if link is None or link.state in FINISHED:
        return Nothing()
    if link.state == TicketState.PENDING:
        rule = routing.rule or RuleView(timedelta(0), "{problem_title} on {hostname}")
        return ResumeCreate(render_summary(rule.summary_template, problem), describe(problem), False)
    policy = routing.rule.close_policy if routing.rule else ClosePolicy.CLOSE_IF_UNTOUCHED
    return CloseTicket(resolution_note(problem), policy)


def _while_open(problem: ProblemView, link: LinkView | None, routing: Routing, now: datetime) -> Action:
    if link is not None and link.state == TicketState.ACKNOWLEDGED:
        reraise = routing.rule.reraise_after if routing.rule else None
        if reraise is None or link.closed_at is None:
            return Nothing()  # acknowledged: a new ticket once the problem clears and comes back
        if now - link.closed_at < reraise:
            return NoteLater(link.closed_at + reraise)
        return Reraise()
    if link is None or link.state in FINISHED:
        if link is not None:
            return Nothing()  # closed (or handed over) while the problem lasts: never reopen behind them
        if routing.company_id is None:
            return Unroutable(RoutingState.UNMAPPED)
        if routing.rule is None:
            return Unroutable(RoutingState.NO_RULE)
        return OpenTicket(render_summary(routing.rule.summary_template, problem), describe(problem))
    if link.state == TicketState.PENDING:
        template = routing.rule.summary_template if routing.rule else "{problem_title} on {hostname}"
        return ResumeCreate(render_summary(template, problem), describe(problem), True)
    unreported = problem.occurrences - problem.noted_occurrences
    if unreported <= 0:
        return Nothing()
    interval = routing.rule.note_interval if routing.rule else timedelta(0)
    if link.last_note_at is not None and now - link.last_note_at < interval:
        return NoteLater(link.last_note_at + interval)
    return AddNote(repeat_note(problem, unreported), unreported)


def render_summary(template: str, problem: ProblemView) -> str:
    fields = {
        "problem": problem.kind.value,
        "problem_title": PROBLEM_TITLES[problem.kind],
        "hostname": problem.hostname,
        "client": problem.client,
        "message": problem.message,
        "endpoint_id": problem.endpoint_id,
    }
    return " ".join(string.Formatter().vformat(template, (), fields).split())


def describe(problem: ProblemView) -> str:
    lines = [
        f"{PROBLEM_TITLES[problem.kind]} on {problem.hostname} ({problem.client}).",
        "",
        f"Endpoint: {problem.hostname} (RMM id {problem.endpoint_id})",
    ]
    if problem.rmm_url:
        lines.append(f"In the RMM: {problem.rmm_url}")
    lines += [
        f"Problem: {problem.kind.value}",
        f"First seen: {problem.first_seen_at.isoformat(timespec='seconds')}",
    ]
    if problem.message:
        lines += ["", problem.message]
    lines += ["", "This ticket is managed by connector and closes itself when the problem clears."]
    return "\n".join(lines)


def repeat_note(problem: ProblemView, unreported: int) -> str:
    times = "once more" if unreported == 1 else f"{unreported} more times"
    text = f"Still active: reported {times}, last at {problem.last_seen_at.isoformat(timespec='seconds')}."
    return f"{text}\n{problem.message}" if problem.message else text


def resolution_note(problem: ProblemView) -> str:
    cleared = problem.clear_message or "the condition is no longer reported"
    return f"Resolved: {PROBLEM_TITLES[problem.kind].lower()} on {problem.hostname} cleared ({cleared})."


def left_open_note(resolution: str, policy: ClosePolicy, work: str) -> str:
    """The resolution note on a ticket the connector leaves open for a technician."""
    if policy == ClosePolicy.NOTE_ONLY:
        why = "this ticket rule leaves closing to a technician"
    else:
        why = f"a technician has worked on this ticket ({work})"
    return f"{resolution}\nLeft open because {why}: close it once you are done."


def handover_note(reason: str, when: datetime) -> str:
    """The note left on an open ticket the connector stops managing (its connection was removed)."""
    return (
        f"This ticket is no longer managed by connector: {reason} at "
        f"{when.isoformat(timespec='minutes')}. The problem was still open then; connector will not add "
        "notes to it or close it. Check the endpoint and close this ticket by hand once it is resolved."
    )
