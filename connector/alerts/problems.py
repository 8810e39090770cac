"""Observed problems: alert events, polled alerts and status findings open, continue and clear
problem episodes. Each alert event is applied at most once per connection, so retried or replayed
deliveries change nothing but still lead to a reconciliation.

Events are judged by their own times, not by the order workers apply them in: the newest event per
RMM connection × endpoint × problem kind is recorded (`ProblemState`) and every event goes through the
pure rule of `domain.event_order` against it, under a lock on that row, so concurrent events for one
problem apply one at a time on both backends."""

from __future__ import annotations

import functools
from collections.abc import Iterable
from datetime import datetime
from typing import Any, cast

from sqlalchemy import String, Table, bindparam, insert, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from adapters.base import AlertEvent, PolledAlerts, ProblemKind
from connector.alerts import event_order
from connector.alerts.canonical import fitted_key
from connector.alerts.jobs import RECONCILE, ReconcileJob
from connector.infra import db
from connector.infra.jobs.kinds import enqueue
from connector.infra.jobs.queue import BULK, URGENT
from connector.models import AppliedEvent, Base, Connection, Problem, ProblemState, new_id, utcnow
from connector.statuses import EventState, ProblemSource, ProblemStatus, Routing

OCCURRENCE_SOURCES = frozenset({ProblemSource.ALERT})
"""Sources whose events are occurrences (each counts); status findings and polled alerts are
observations of the current state (see `domain.event_order`)."""


# Longer vendor event ids are hashed to fit `applied_events.event_id`, never cut into a collision.
APPLIED_EVENT_ID_LENGTH = cast(String, cast(Table, AppliedEvent.__table__).c.event_id.type).length or 200


@functools.cache
def _insert_if_missing(backend: str, table: str) -> Any:
    """`INSERT … ON CONFLICT DO NOTHING` into a table, built once per backend (every alert runs it)."""
    insert = postgresql.insert if backend == "postgresql" else sqlite.insert
    return insert(Base.metadata.tables[table]).on_conflict_do_nothing()


# Built once, bound per call (every alert runs them).
_NEWEST = (
    select(ProblemState)
    .where(
        ProblemState.rmm_connection_id == bindparam("b_connection"),
        ProblemState.endpoint_id == bindparam("b_endpoint"),
        ProblemState.kind == bindparam("b_kind"),
    )
    .with_for_update()
    .execution_options(populate_existing=True)
)
_OPEN_PROBLEM = (
    select(Problem)
    .where(
        Problem.rmm_connection_id == bindparam("b_connection"),
        Problem.endpoint_id == bindparam("b_endpoint"),
        Problem.kind == bindparam("b_kind"),
        Problem.state == ProblemStatus.OPEN,
    )
    .with_for_update()
    .execution_options(populate_existing=True)
)


async def _first_application(session: AsyncSession, connection_id: str, event_id: str) -> bool:
    result = await session.execute(
        _insert_if_missing(db.backend(session), "applied_events"),
        {"connection_id": connection_id, "event_id": fitted_key(event_id, APPLIED_EVENT_ID_LENGTH)},
    )
    return bool(result.rowcount == 1)  # type: ignore[attr-defined]


async def _lock_newest(
    session: AsyncSession,
    connection: Connection,
    endpoint_id: str,
    kind: ProblemKind,
    first: event_order.Newest,
) -> ProblemState | None:
    """The recorded newest event of one problem, locked until the transaction ends; when none is
    recorded yet, `first` is recorded and None returned. Insert-if-missing comes first: on SQLite
    that write takes the database's write lock before anything is read, on PostgreSQL it waits for
    a concurrent inserter to commit, and the row lock then orders everyone else."""
    inserted = await session.execute(
        _insert_if_missing(db.backend(session), "problem_states"),
        {
            "rmm_connection_id": connection.id,
            "endpoint_id": endpoint_id,
            "kind": kind.value,
            "tenant_id": connection.tenant_id,
            "state": first.state,
            "event_at": first.at,
            "updated_at": utcnow(),
        },
    )
    if inserted.rowcount == 1:  # type: ignore[attr-defined]
        return None
    row = await session.scalar(
        _NEWEST, {"b_connection": connection.id, "b_endpoint": endpoint_id, "b_kind": kind.value}
    )
    assert row is not None, "the insert conflicted with this row"
    return row


async def open_problem(
    session: AsyncSession, connection_id: str, endpoint_id: str, kind: ProblemKind
) -> Problem | None:
    return await session.scalar(
        _OPEN_PROBLEM, {"b_connection": connection_id, "b_endpoint": endpoint_id, "b_kind": kind.value}
    )


async def latest_problem(
    session: AsyncSession, connection_id: str, endpoint_id: str, kind: ProblemKind
) -> Problem | None:
    return await session.scalar(
        select(Problem)
        .where(
            Problem.rmm_connection_id == connection_id,
            Problem.endpoint_id == endpoint_id,
            Problem.kind == kind.value,
        )
        .order_by(Problem.first_seen_at.desc())
        .limit(1)
    )


async def observe_active(
    session: AsyncSession,
    connection: Connection,
    *,
    endpoint_id: str,
    client_id: str,
    hostname: str | None,
    kind: ProblemKind,
    message: str,
    at: datetime,
    source: str,
    vendor_alert_id: str | None = None,
) -> Problem | None:
    """Open a problem or continue the open one (an alert counts a repeat). Returns the problem when
    it was opened or counted, None when nothing needs a reconciliation (an observation of a problem
    already open, a stale observation, or an alert older than the newest clear, kept as history).
    `vendor_alert_id` (the RMM's id of the alert) is kept on a problem opened or counted."""
    incoming = event_order.Incoming(EventState.ACTIVE, at, occurrence=source in OCCURRENCE_SOURCES)
    row = await _lock_newest(
        session, connection, endpoint_id, kind, event_order.Newest(EventState.ACTIVE, at)
    )
    decision = _decide_and_record(row, incoming)
    match decision.effect:
        case event_order.Open() | event_order.Continue():
            current = await open_problem(session, connection.id, endpoint_id, kind)
            if current is None:
                return await _open(
                    session,
                    connection,
                    endpoint_id,
                    client_id,
                    hostname,
                    kind,
                    message,
                    at,
                    source,
                    vendor_alert_id,
                )
            if isinstance(decision.effect, event_order.Continue) and decision.effect.count:
                repeated = _repeat(current, hostname=hostname, message=message, at=at)
                if vendor_alert_id:
                    repeated.vendor_alert_id = vendor_alert_id
                return repeated
            return None
        case event_order.History(cleared_at=cleared_at):
            await _record_history(
                session, connection, endpoint_id, client_id, hostname, kind, message, at, source, cleared_at
            )
    return None


async def observe_cleared(
    session: AsyncSession,
    connection: Connection,
    *,
    endpoint_id: str,
    kind: ProblemKind,
    message: str,
    at: datetime,
) -> Problem | None:
    """Clear the open problem if this clear is the newest event; a clear that finds no open problem
    is still recorded, so an older active applied after it does not open one. Returns the cleared
    problem, or None."""
    row = await _lock_newest(
        session, connection, endpoint_id, kind, event_order.Newest(EventState.CLEARED, at)
    )
    decision = _decide_and_record(row, event_order.Incoming(EventState.CLEARED, at, occurrence=False))
    if not isinstance(decision.effect, event_order.Clear):
        return None
    return await _close(session, connection, endpoint_id, kind, message, at)


async def clear_retired(
    session: AsyncSession, connection: Connection, endpoint_id: str, *, message: str, at: datetime
) -> list[Problem]:
    """The endpoint is gone from the RMM: every open problem of it clears, recorded as the newest
    event even when an event's clock ran ahead of `at` (a retirement is final)."""
    kinds = sorted(
        await session.scalars(
            select(Problem.kind).where(
                Problem.rmm_connection_id == connection.id,
                Problem.endpoint_id == endpoint_id,
                Problem.state == ProblemStatus.OPEN,
            )
        )
    )
    cleared = []
    for kind in map(ProblemKind, kinds):
        row = await _lock_newest(
            session, connection, endpoint_id, kind, event_order.Newest(EventState.CLEARED, at)
        )
        when = at if row is None else max(at, row.event_at)
        decision = _decide_and_record(row, event_order.Incoming(EventState.CLEARED, when, occurrence=False))
        if isinstance(decision.effect, event_order.Clear):
            problem = await _close(session, connection, endpoint_id, kind, message, when)
            if problem is not None:
                cleared.append(problem)
    return cleared


def _decide_and_record(row: ProblemState | None, incoming: event_order.Incoming) -> event_order.Decision:
    """The pure rule against the locked row (None: `incoming` was just recorded as the first), and
    the row updated with what it says is the newest event now."""
    if row is None:
        return event_order.decide(None, incoming)
    decision = event_order.decide(event_order.Newest(row.state, row.event_at), incoming)
    if decision.newest is not None:
        row.state, row.event_at = decision.newest.state, decision.newest.at
    return decision


async def _open(
    session: AsyncSession,
    connection: Connection,
    endpoint_id: str,
    client_id: str,
    hostname: str | None,
    kind: ProblemKind,
    message: str,
    at: datetime,
    source: str,
    vendor_alert_id: str | None,
) -> Problem:
    """Insert the new episode with one statement (every first alert of a problem runs it; an object
    for the unit of work cost a flush) and return it as an unattached object: callers read it,
    they do not change it."""
    values = {
        "id": new_id(),
        "tenant_id": connection.tenant_id,
        "rmm_connection_id": connection.id,
        "endpoint_id": endpoint_id,
        "client_id": client_id,
        "hostname": hostname,
        "kind": kind.value,
        "source": source,
        "state": ProblemStatus.OPEN,
        "routing": Routing.PENDING,
        "message": message,
        "occurrences": 1,
        "noted_occurrences": 1,
        "first_seen_at": at,
        "last_seen_at": at,
        "vendor_alert_id": vendor_alert_id or None,
    }
    await session.execute(_INSERT_PROBLEM, values)
    return Problem(**values)


_INSERT_PROBLEM = insert(cast(Table, Problem.__table__))


def _repeat(current: Problem, *, hostname: str | None, message: str, at: datetime) -> Problem:
    current.occurrences += 1
    if at >= current.last_seen_at:  # an earlier report arriving late does not replace the latest text
        current.last_seen_at = at
        current.message = message or current.message
        current.hostname = hostname or current.hostname
    return current


async def _close(
    session: AsyncSession,
    connection: Connection,
    endpoint_id: str,
    kind: ProblemKind,
    message: str,
    at: datetime,
) -> Problem | None:
    current = await open_problem(session, connection.id, endpoint_id, kind)
    if current is None:
        return None
    current.state = ProblemStatus.CLEARED
    current.cleared_at = at
    current.clear_message = message or None
    await session.flush()
    return current


async def _record_history(
    session: AsyncSession,
    connection: Connection,
    endpoint_id: str,
    client_id: str,
    hostname: str | None,
    kind: ProblemKind,
    message: str,
    at: datetime,
    source: str,
    cleared_at: datetime,
) -> None:
    """An alert older than the newest clear: one more occurrence of the episode that clear (or the
    first one after the alert) ended, or, when no episode ended after it (the clear was applied
    first), an episode of its own that is already cleared. Never a ticket: it is over."""
    episode = await session.scalar(
        select(Problem)
        .where(
            Problem.rmm_connection_id == connection.id,
            Problem.endpoint_id == endpoint_id,
            Problem.kind == kind.value,
            Problem.state == ProblemStatus.CLEARED,
            Problem.cleared_at >= at,
        )
        .order_by(Problem.cleared_at)
        .limit(1)
    )
    if episode is not None:
        episode.occurrences += 1
        episode.first_seen_at = min(episode.first_seen_at, at)
        episode.last_seen_at = max(episode.last_seen_at, at)
        return
    session.add(
        Problem(
            tenant_id=connection.tenant_id,
            rmm_connection_id=connection.id,
            endpoint_id=endpoint_id,
            client_id=client_id,
            hostname=hostname,
            kind=kind.value,
            source=source,
            state=ProblemStatus.CLEARED,
            routing=Routing.PENDING,
            message=message,
            occurrences=1,
            noted_occurrences=1,
            first_seen_at=at,
            last_seen_at=at,
            cleared_at=cleared_at,
        )
    )
    await session.flush()


def _in_lock_order(events: Iterable[AlertEvent]) -> list[AlertEvent]:
    """One problem's events oldest first; problems always in the same order, so two transactions
    that lock several problems take the locks in the same order and never deadlock."""
    return sorted(events, key=lambda e: (e.endpoint_id, e.problem.value, e.occurred_at, e.event_id))


async def apply_events(
    session: AsyncSession, connection: Connection, events: Iterable[AlertEvent]
) -> list[str]:
    """Apply alert events; returns the ids of the problems that need a reconciliation."""
    touched: dict[str, None] = {}
    for event in _in_lock_order(events):
        first_time = await _first_application(session, connection.id, event.event_id)
        problem: Problem | None
        if not first_time:
            problem = await latest_problem(session, connection.id, event.endpoint_id, event.problem)
        elif event.state == "active":
            problem = await observe_active(
                session,
                connection,
                endpoint_id=event.endpoint_id,
                client_id=event.client_id,
                hostname=event.hostname,
                kind=event.problem,
                message=event.message,
                at=event.occurred_at,
                source=ProblemSource.ALERT,
                vendor_alert_id=event.vendor_alert_id,
            )
        else:
            problem = await observe_cleared(
                session,
                connection,
                endpoint_id=event.endpoint_id,
                kind=event.problem,
                message=event.message,
                at=event.occurred_at,
            )
        if problem is not None:
            touched[problem.id] = None
    return list(touched)


async def apply_polled(
    session: AsyncSession, connection: Connection, polled: PolledAlerts, *, at: datetime
) -> tuple[list[str], int, int]:
    """Alerts read by polling (RMMs without webhooks) report *current* state on every poll, so they
    are observations, not occurrences: an active one opens a problem only when none is open, and a
    repeat of an open one counts nothing (no note storm). A poll complete for some clients also
    says what is no longer there: their open polled problems it does not list clear at `at`, the
    poll's time, through the same newest-event rule. Returns (touched problem ids, opened, closed)."""
    touched: dict[str, None] = {}
    opened = closed = 0
    absent = await _absent_from_poll(session, connection, polled, at)
    for event in _in_lock_order([*polled.events, *absent]):
        if event.state == "active":
            problem = await observe_active(
                session,
                connection,
                endpoint_id=event.endpoint_id,
                client_id=event.client_id,
                hostname=event.hostname,
                kind=event.problem,
                message=event.message,
                at=event.occurred_at,
                source=ProblemSource.POLL,
                vendor_alert_id=event.vendor_alert_id,
            )
            opened += problem is not None
        else:
            problem = await observe_cleared(
                session,
                connection,
                endpoint_id=event.endpoint_id,
                kind=event.problem,
                message=event.message,
                at=event.occurred_at,
            )
            closed += problem is not None
        if problem is not None:
            touched[problem.id] = None
    return list(touched), opened, closed


async def _absent_from_poll(
    session: AsyncSession, connection: Connection, polled: PolledAlerts, at: datetime
) -> list[AlertEvent]:
    """A clear at `at` for every open problem a poll opened on a client the poll was complete for
    and that it no longer mentions. Only polled problems: a status finding or a webhook
    alert is not the poll's to end. Read without locks; each clear is decided under its lock."""
    if not polled.complete_for:
        return []
    reported = {(e.endpoint_id, e.problem.value) for e in polled.events}
    rows = await session.execute(
        select(Problem.endpoint_id, Problem.kind, Problem.client_id, Problem.hostname).where(
            Problem.rmm_connection_id == connection.id,
            Problem.state == ProblemStatus.OPEN,
            Problem.source == ProblemSource.POLL,
        )
    )
    return [
        AlertEvent(
            event_id=f"poll-absent:{endpoint_id}:{kind}",
            client_id=client_id,
            endpoint_id=endpoint_id,
            hostname=hostname,
            problem=ProblemKind(kind),
            state="cleared",
            message="no longer reported by the RMM",
            occurred_at=at,
        )
        for endpoint_id, kind, client_id, hostname in rows
        if client_id in polled.complete_for and (endpoint_id, kind) not in reported
    ]


async def enqueue_reconciles(
    session: AsyncSession,
    tenant_id: str,
    problem_ids: Iterable[str],
    *,
    delivery_id: str | None = None,
    run_after: datetime | None = None,
    priority: int = URGENT,
) -> None:
    """`priority=BULK` for a sweep's reconciliations (a sync's, a new mapping's): a live alert's
    go first."""
    for problem_id in problem_ids:
        await enqueue(
            session,
            RECONCILE,
            ReconcileJob(problem_id=problem_id),
            tenant_id=tenant_id,
            delivery_id=delivery_id,
            run_after=run_after,
            priority=priority,
        )


async def reroute_unmapped(
    session: AsyncSession, tenant_id: str, rmm_connection_id: str, client_id: str
) -> int:
    """A new mapping: reconcile the client's open problems that were waiting for one."""
    ids = list(
        await session.scalars(
            db.scoped(select(Problem.id), Problem, tenant_id).where(
                Problem.rmm_connection_id == rmm_connection_id,
                Problem.client_id == client_id,
                Problem.state == ProblemStatus.OPEN,
                Problem.routing.in_((Routing.UNMAPPED, Routing.NO_RULE, Routing.PENDING)),
            )
        )
    )
    await enqueue_reconciles(session, tenant_id, ids, priority=BULK)
    return len(ids)


async def reroute_waiting(session: AsyncSession, tenant_id: str) -> int:
    """A new ticket rule: reconcile open problems that had no rule."""
    ids = list(
        await session.scalars(
            db.scoped(select(Problem.id), Problem, tenant_id).where(
                Problem.state == ProblemStatus.OPEN, Problem.routing == Routing.NO_RULE
            )
        )
    )
    await enqueue_reconciles(session, tenant_id, ids, priority=BULK)
    return len(ids)
