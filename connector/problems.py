"""Observed problems: alert events (and, later, status observations) open, repeat and clear
problem episodes. Each event is applied at most once per connection, so retried or replayed
deliveries change nothing but still lead to a reconciliation."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import cast

from sqlalchemy import String, Table, and_, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from adapters.base import AlertEvent, ProblemKind
from connector.domain.canonical import fitted_key
from connector.jobs import queue
from connector.models import AppliedEvent, Connection, Problem

# Longer vendor event ids are hashed to fit `applied_events.event_id`, never cut into a collision.
APPLIED_EVENT_ID_LENGTH = cast(String, cast(Table, AppliedEvent.__table__).c.event_id.type).length or 200


async def _first_application(session: AsyncSession, connection_id: str, event_id: str) -> bool:
    dialect = session.bind.dialect.name if session.bind is not None else "sqlite"
    insert = postgresql.insert(AppliedEvent) if dialect == "postgresql" else sqlite.insert(AppliedEvent)
    key = fitted_key(event_id, APPLIED_EVENT_ID_LENGTH)
    result = await session.execute(
        insert.values(connection_id=connection_id, event_id=key).on_conflict_do_nothing()
    )
    return bool(result.rowcount == 1)  # type: ignore[attr-defined]


async def open_problem(
    session: AsyncSession, connection_id: str, endpoint_id: str, kind: ProblemKind
) -> Problem | None:
    return await session.scalar(
        select(Problem)
        .where(
            Problem.rmm_connection_id == connection_id,
            Problem.endpoint_id == endpoint_id,
            Problem.kind == kind.value,
            Problem.state == "open",
        )
        # Row-locked (PostgreSQL) and re-read, so concurrent deliveries never lose a repeat count.
        .with_for_update()
        .execution_options(populate_existing=True)
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
) -> Problem | None:
    """Open a problem or count a repeat. Returns None for an alert older than the last clear."""
    current = await open_problem(session, connection.id, endpoint_id, kind)
    if current is not None:
        return _repeat(current, hostname=hostname, message=message, at=at)
    previous = await latest_problem(session, connection.id, endpoint_id, kind)
    if previous is not None and previous.cleared_at is not None and at <= previous.cleared_at:
        return None  # arrived out of order: the problem already cleared after this alert
    problem = Problem(
        tenant_id=connection.tenant_id,
        rmm_connection_id=connection.id,
        endpoint_id=endpoint_id,
        client_id=client_id,
        hostname=hostname,
        kind=kind.value,
        source=source,
        state="open",
        routing="pending",
        message=message,
        occurrences=1,
        noted_occurrences=1,
        first_seen_at=at,
        last_seen_at=at,
    )
    try:
        async with session.begin_nested():
            session.add(problem)
    except IntegrityError:
        # Another worker opened the same problem concurrently (unique open problem per endpoint and
        # kind); its row is committed and visible now, so this alert is a repeat of it.
        current = await open_problem(session, connection.id, endpoint_id, kind)
        if current is None:
            raise
        return _repeat(current, hostname=hostname, message=message, at=at)
    return problem


def _repeat(current: Problem, *, hostname: str | None, message: str, at: datetime) -> Problem:
    current.occurrences += 1
    current.last_seen_at = max(current.last_seen_at, at)
    current.message = message or current.message
    current.hostname = hostname or current.hostname
    return current


async def observe_cleared(
    session: AsyncSession,
    connection: Connection,
    *,
    endpoint_id: str,
    kind: ProblemKind,
    message: str,
    at: datetime,
) -> Problem | None:
    current = await open_problem(session, connection.id, endpoint_id, kind)
    if current is None or at < current.first_seen_at:
        return None
    current.state = "cleared"
    current.cleared_at = at
    current.clear_message = message or None
    await session.flush()
    return current


async def apply_events(
    session: AsyncSession, connection: Connection, events: Iterable[AlertEvent]
) -> list[str]:
    """Apply alert events; returns the ids of the problems that need a reconciliation."""
    touched: dict[str, None] = {}
    for event in sorted(events, key=lambda e: e.occurred_at):
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
                source="alert",
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
    session: AsyncSession, connection: Connection, events: Iterable[AlertEvent]
) -> tuple[list[str], int, int]:
    """Alerts read by polling (RMMs without webhooks) report *current* state on every poll, so they
    are observations, not occurrences: an active one opens a problem only when none is open, and a
    repeat of an open one counts nothing (no note storm). Returns (touched problem ids, opened, closed)."""
    touched: dict[str, None] = {}
    opened = closed = 0
    for event in sorted(events, key=lambda e: e.occurred_at):
        if event.state == "active":
            if await open_problem(session, connection.id, event.endpoint_id, event.problem) is not None:
                continue
            problem = await observe_active(
                session,
                connection,
                endpoint_id=event.endpoint_id,
                client_id=event.client_id,
                hostname=event.hostname,
                kind=event.problem,
                message=event.message,
                at=event.occurred_at,
                source="poll",
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


async def enqueue_reconciles(
    session: AsyncSession,
    tenant_id: str,
    problem_ids: Iterable[str],
    *,
    delivery_id: str | None = None,
    run_after: datetime | None = None,
) -> None:
    for problem_id in problem_ids:
        await queue.enqueue(
            session,
            tenant_id=tenant_id,
            kind="reconcile",
            payload={"problem_id": problem_id},
            unique_key=f"reconcile:{problem_id}",
            delivery_id=delivery_id,
            run_after=run_after,
        )


async def reroute_unmapped(
    session: AsyncSession, tenant_id: str, rmm_connection_id: str, client_id: str
) -> int:
    """A new mapping: reconcile the client's open problems that were waiting for one."""
    ids = list(
        await session.scalars(
            select(Problem.id).where(
                and_(
                    Problem.tenant_id == tenant_id,
                    Problem.rmm_connection_id == rmm_connection_id,
                    Problem.client_id == client_id,
                    Problem.state == "open",
                    Problem.routing.in_(("unmapped", "no_rule", "pending")),
                )
            )
        )
    )
    await enqueue_reconciles(session, tenant_id, ids)
    return len(ids)


async def reroute_waiting(session: AsyncSession, tenant_id: str) -> int:
    """A new ticket rule: reconcile open problems that had no rule."""
    ids = list(
        await session.scalars(
            select(Problem.id).where(
                Problem.tenant_id == tenant_id, Problem.state == "open", Problem.routing == "no_rule"
            )
        )
    )
    await enqueue_reconciles(session, tenant_id, ids)
    return len(ids)
