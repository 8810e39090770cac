"""A durable job queue in the database, the same code on SQLite and PostgreSQL.

Claiming: candidates are read (on PostgreSQL with `FOR UPDATE SKIP LOCKED`, so concurrent workers
pass over each other's rows) and each is taken with a conditional UPDATE that only succeeds while the
job is still claimable — on SQLite, where row locks do not exist, that condition alone makes claims
exclusive. Candidates are chosen per tenant (`fairness.shares` decides how many slots each tenant
with runnable jobs gets; each tenant's oldest jobs are read through `ix_jobs_tenant_claim`), so a
tenant's long backlog holds another tenant's job back only until the next slot frees, never for
the length of the backlog. Within a tenant, due `URGENT` jobs (a live alert's, a person's) are taken
before any `BULK` one (a sweep's), so a tenant's alert does not wait behind its own backfill either.
A claim is a lease: a worker that dies stops renewing it and the job is claimed again once it
expires. Completion and failure check the lease *and* the attempt they hold, so a worker presumed
dead that finishes late cannot overwrite its successor's outcome.
"""

from __future__ import annotations

import functools
import random
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from sqlalchemy import Table, and_, bindparam, case, func, literal, or_, select, text, type_coerce, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession, async_sessionmaker

from connector.infra import db
from connector.infra.jobs.fairness import NEVER_SERVED, DueTenant, shares
from connector.models import Job, Tenant, UTCDateTime
from connector.statuses import JobStatus

UNIQUE_WHERE = text("status = 'queued' AND unique_key IS NOT NULL")

URGENT = 0
"""A job someone is waiting for: a live alert's delivery and reconciliations, a person's action."""
BULK = 1
"""A job of a sweep (a status sync's reconciliations, configuration pushes): it yields to urgent ones."""
PRIORITIES = (URGENT, BULK)


@dataclass(frozen=True)
class ClaimedJob:
    id: int
    tenant_id: str
    kind: str
    payload: dict[str, Any]
    attempt: int
    max_attempts: int
    delivery_id: str | None
    owner: str


class LeaseLost(Exception):
    """The job's lease was taken over by another worker; this worker's outcome is discarded."""


def backoff_delay(attempt: int, *, base: float = 2.0, cap: float = 600.0) -> float:
    """Exponential backoff with jitter for the next try after `attempt` failed tries."""
    ceiling = min(cap, base * 2.0 ** (attempt - 1))
    return ceiling / 2 + random.uniform(0, ceiling / 2)  # noqa: S311 - jitter


async def insert(session: AsyncSession, values: dict[str, Any]) -> None:
    """Add a job row in the caller's transaction (`kinds.enqueue` builds it from a typed kind). With
    a unique key, a job already queued under the same key absorbs this one (it keeps the earlier of
    the two run times and the more urgent priority)."""
    unique_key = values.get("unique_key")
    if unique_key is None:
        session.add(Job(**values))
        return
    await session.execute(_coalescing_insert(db.backend(session), tuple(sorted(values))), values)


JOB_TABLE = cast(Table, Job.__table__)


@functools.cache
def _coalescing_insert(backend: str, columns: tuple[str, ...]) -> Any:
    """`insert`'s statement for a backend and a set of columns, built once (a worker enqueues a
    reconciliation for every problem an alert touches)."""
    upsert = (postgresql.insert if backend == "postgresql" else sqlite.insert)(JOB_TABLE)
    earlier = func.least if backend == "postgresql" else func.min
    return upsert.values({name: bindparam(name) for name in columns}).on_conflict_do_update(
        index_elements=["unique_key"],
        index_where=UNIQUE_WHERE,
        set_={
            "run_after": earlier(JOB_TABLE.c.run_after, upsert.excluded.run_after),
            "priority": earlier(JOB_TABLE.c.priority, upsert.excluded.priority),
            "delivery_id": func.coalesce(upsert.excluded.delivery_id, JOB_TABLE.c.delivery_id),
        },
    )


def _claimable(now: Any, jobs: Any = Job) -> Any:
    """Queued and due by `now`, or running with a lease expired by `now` (a value or a bind), of
    the mapped class or (`JOB_TABLE.c`) of the table."""
    return or_(
        and_(jobs.status == JobStatus.QUEUED, jobs.run_after <= now),
        and_(jobs.status == JobStatus.RUNNING, jobs.lease_expires_at < now),
    )


async def claim(
    sessions: async_sessionmaker[AsyncSession],
    owner: str,
    *,
    limit: int,
    lease: timedelta,
    kinds: list[str] | None = None,
    fair: bool = True,
    served: Mapping[str, int] | None = None,
) -> list[ClaimedJob]:
    """Claim up to `limit` runnable jobs. Fair (the default): the slots are shared out between the
    tenants with runnable jobs (`fairness.shares`; `served` is this worker's claim number per tenant
    it last served) and each tenant's oldest jobs are taken, so one tenant's backlog cannot hold
    another's job back. `fair=False`: the oldest runnable jobs whoever they belong to.

    On PostgreSQL each range of a tenant's jobs is claimed by one `UPDATE … WHERE id IN (SELECT …
    FOR UPDATE SKIP LOCKED)` in autocommit: a claim is a read and a write, with no transaction
    around them (the read only says which tenants to look at). Elsewhere the claimable jobs are
    read, then taken one by one, in one transaction."""
    now = datetime.now(UTC)
    if kinds is not None and not kinds:
        return []
    engine = sessions.kw["bind"]
    if fair and engine.dialect.name == "postgresql":
        async with db.autocommit_connection(engine) as conn:
            rows = await _fair_candidates(conn, now, limit, kinds, served or {}, _Take(owner, now + lease))
        return [_claimed(row, owner) for row in rows]
    claimed: list[ClaimedJob] = []
    async with engine.begin() as conn:
        if fair:
            candidates = await _fair_candidates(conn, now, limit, kinds, served or {}, None)
        else:
            candidates = await _oldest_candidates(conn, now, limit, kinds)
        for job_id, attempts in candidates:
            result = await conn.execute(
                _TAKE,
                {
                    "job_id": job_id,
                    "seen_attempts": attempts,
                    "now": now,
                    "next_attempt": attempts + 1,
                    "owner": owner,
                    "expires": now + lease,
                },
            )
            if (row := result.first()) is not None:
                claimed.append(_claimed(row, owner))
    return claimed


def _claimed(row: Any, owner: str) -> ClaimedJob:
    """A job as a claim's UPDATE returned it (`_leasing`: the attempt already counted)."""
    return ClaimedJob(
        row.id,
        row.tenant_id,
        row.kind,
        dict(row.payload),
        row.attempts,
        row.max_attempts,
        row.delivery_id,
        owner,
    )


@dataclass(frozen=True)
class _Take:
    """Who takes the jobs a PostgreSQL claim reads, and until when."""

    owner: str
    expires: datetime


# The claim's statements are built once and bound per call: building and keying a statement costs
# more CPU than running it, and a worker claims for every job it runs. The updates are of the table,
# not the mapped class: an ORM update run in a session first evaluates its WHERE against every
# object the session holds (`synchronize_session`), which cost more than the statement itself.
def _leasing(statement: Any, attempts: Any, owner: str, expires: str) -> Any:
    """A claim's UPDATE: running, `attempts` counted, leased to the bind `owner` until the bind
    `expires`; returning what a `ClaimedJob` needs."""
    return statement.values(
        status=JobStatus.RUNNING,
        attempts=attempts,
        lease_owner=bindparam(owner),
        lease_expires_at=bindparam(expires, type_=UTCDateTime()),
    ).returning(
        JOB_TABLE.c.id,
        JOB_TABLE.c.attempts,
        JOB_TABLE.c.tenant_id,
        JOB_TABLE.c.kind,
        JOB_TABLE.c.payload,
        JOB_TABLE.c.max_attempts,
        JOB_TABLE.c.delivery_id,
    )


_TAKE = _leasing(
    update(JOB_TABLE).where(
        JOB_TABLE.c.id == bindparam("job_id"),
        JOB_TABLE.c.attempts == bindparam("seen_attempts"),
        _claimable(bindparam("now", type_=UTCDateTime()), JOB_TABLE.c),
    ),
    bindparam("next_attempt"),
    "owner",
    "expires",
)
_RUNNING_LEASES = select(Job.tenant_id, Job.kind, Job.lease_expires_at).where(Job.status == JobStatus.RUNNING)


@functools.cache
def _oldest_queued_per_tenant(kinds: tuple[str, ...] | None) -> Any:
    """Each tenant's oldest queued job per priority (one index probe each)."""

    def oldest_queued(priority: int) -> Any:
        return type_coerce(
            db.scoped(select(Job.run_after), Job, Tenant.id.expression)
            .where(Job.status == JobStatus.QUEUED, Job.priority == priority, *_of_kinds(kinds))
            .order_by(Job.run_after)
            .limit(1)
            .scalar_subquery(),
            UTCDateTime(),
        )

    return select(Tenant.id, *(oldest_queued(p) for p in PRIORITIES))


@functools.cache
def _tenant_range(kinds: tuple[str, ...] | None, priority: int | None, excluding: bool) -> Any:
    """A tenant's first claimable jobs of one range: expired leases (`priority` None) or queued
    jobs of one priority, due by `b_now`; `excluding` leaves out the ids in `b_taken`. (The binds
    are not named after columns: `_tenant_take` uses this in an UPDATE.)"""
    now = bindparam("b_now", type_=UTCDateTime())
    conditions: tuple[Any, ...] = (
        (Job.status == JobStatus.RUNNING, Job.lease_expires_at < now)
        if priority is None
        else (Job.status == JobStatus.QUEUED, Job.priority == priority, Job.run_after <= now)
    )
    statement = (
        db.scoped(select(Job.id, Job.attempts), Job, bindparam("b_tenant"))
        .where(*conditions, *_of_kinds(kinds))
        .order_by(Job.run_after, Job.id)
        .limit(bindparam("b_quota"))
        .with_for_update(skip_locked=True)
    )
    if excluding:
        statement = statement.where(Job.id.not_in(bindparam("b_taken", expanding=True)))
    return statement


@functools.cache
def _tenant_take(kinds: tuple[str, ...] | None, priority: int | None, excluding: bool) -> Any:
    """`_tenant_range`'s jobs, taken in the same statement: the rows its subquery locks (skipping
    those another claim holds) are leased to `b_owner` and returned, attempt counted."""
    chosen = _tenant_range(kinds, priority, excluding).with_only_columns(Job.id)
    taking = update(JOB_TABLE).where(JOB_TABLE.c.id.in_(chosen))
    return _leasing(taking, JOB_TABLE.c.attempts + 1, "b_owner", "b_expires").returning(JOB_TABLE.c.run_after)


def _kinds_key(kinds: list[str] | None) -> tuple[str, ...] | None:
    return tuple(sorted(kinds)) if kinds else None


Candidate = tuple[int, int]
"""(job id, attempts) of a job read as claimable, locked on PostgreSQL until the claim commits."""


def _of_kinds(kinds: Sequence[str] | None) -> list[Any]:
    """One bound value per kind, not an expanding IN: an expanding parameter is rewritten into the
    SQL on every execution, and the claim's statements are built once per set of kinds."""
    return [or_(*(Job.kind == literal(kind) for kind in kinds))] if kinds else []


async def _oldest_candidates(
    conn: AsyncConnection, now: datetime, limit: int, kinds: list[str] | None
) -> list[Candidate]:
    rows = await conn.execute(
        select(Job.id, Job.attempts)
        .where(_claimable(now), *_of_kinds(kinds))
        .order_by(Job.run_after, Job.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    return [(job_id, attempts) for job_id, attempts in rows.all()]


async def _due_tenants(
    conn: AsyncConnection, now: datetime, kinds: list[str] | None, served: Mapping[str, int]
) -> tuple[list[DueTenant], set[str]]:
    """The tenants with claimable jobs, and those among them with a job whose lease expired. One
    index probe per tenant and priority (`ix_jobs_tenant_claim`: its oldest queued job) and one read
    of the running jobs, so the cost does not grow with the length of anyone's backlog."""

    queued: dict[str, datetime] = {}
    for tenant_id, *oldest in (await conn.execute(_oldest_queued_per_tenant(_kinds_key(kinds)))).all():
        due_since = [since for since in oldest if since is not None and since <= now]
        if due_since:
            queued[tenant_id] = min(due_since)
    running: dict[str, int] = {}
    expired: dict[str, datetime] = {}
    wanted = set(kinds) if kinds else None
    leases = await conn.execute(_RUNNING_LEASES)
    for tenant_id, kind, expires in leases.all():
        if expires is not None and expires < now:
            if wanted is None or kind in wanted:
                expired[tenant_id] = min(expires, expired.get(tenant_id, expires))
        else:
            running[tenant_id] = running.get(tenant_id, 0) + 1
    due = [
        DueTenant(
            tenant_id,
            running.get(tenant_id, 0),
            min(since for since in (queued.get(tenant_id), expired.get(tenant_id)) if since is not None),
            served.get(tenant_id, NEVER_SERVED),
        )
        for tenant_id in queued.keys() | expired.keys()
    ]
    return due, set(expired)


async def _tenant_candidates(
    conn: AsyncConnection,
    tenant_id: str,
    quota: int,
    now: datetime,
    kinds: list[str] | None,
    take: _Take | None,
    *,
    expired: bool,
    exclude: list[int],
) -> list[Any]:
    """A tenant's `quota` first claimable jobs not locked by another worker: jobs whose lease
    expired first (their worker died; they were due before anything queued), then queued urgent
    jobs, then queued bulk ones, each in the order they fell due. Each is an index range scan on
    `ix_jobs_tenant_claim`. Rows of (id, attempts, …): with `take`, the jobs already taken."""
    found: list[Any] = []
    ranges: list[int | None] = [None] if expired else []
    ranges += PRIORITIES
    key = _kinds_key(kinds)
    for priority in ranges:
        if len(found) >= quota:
            break
        taken = exclude + [row.id for row in found]
        params: dict[str, Any] = {"b_now": now, "b_tenant": tenant_id, "b_quota": quota - len(found)}
        if taken:
            params["b_taken"] = taken
        if take is None:
            found += (await conn.execute(_tenant_range(key, priority, bool(taken)), params)).all()
        else:
            params |= {"b_owner": take.owner, "b_expires": take.expires}
            rows = (await conn.execute(_tenant_take(key, priority, bool(taken)), params)).all()
            found += sorted(rows, key=lambda row: (row.run_after, row.id))  # RETURNING has no order
    return found


async def _fair_candidates(
    conn: AsyncConnection,
    now: datetime,
    limit: int,
    kinds: list[str] | None,
    served: Mapping[str, int],
    take: _Take | None,
) -> list[Any]:
    """Shares out `limit` slots between the tenants with claimable jobs, and takes each tenant's
    share of its oldest jobs. A tenant with fewer jobs than its share (or whose jobs other workers
    hold) leaves its slots to the others in the next round, so no slot stays empty while any tenant
    has work."""
    due, with_expired = await _due_tenants(conn, now, kinds, served)
    picked: dict[str, list[Any]] = {}
    exhausted: set[str] = set()
    while (free := limit - sum(map(len, picked.values()))) > 0:
        open_tenants = [t for t in due if t.tenant not in exhausted]
        if not open_tenants:
            break
        taken = {tenant_id: len(rows) for tenant_id, rows in picked.items()}
        for tenant_id, quota in shares(open_tenants, free, taken).items():
            already = picked.setdefault(tenant_id, [])
            rows = await _tenant_candidates(
                conn,
                tenant_id,
                quota,
                now,
                kinds,
                take,
                expired=tenant_id in with_expired,
                exclude=[row.id for row in already],
            )
            if len(rows) < quota:
                exhausted.add(tenant_id)
            already += rows
    return [candidate for rows in picked.values() for candidate in rows]


def _held(job: ClaimedJob) -> Any:
    return and_(
        Job.id == job.id,
        Job.status == JobStatus.RUNNING,
        Job.lease_owner == job.owner,
        Job.attempts == job.attempt,
    )


_COMPLETE = (
    update(JOB_TABLE)
    .where(
        JOB_TABLE.c.id == bindparam("job_id"),
        JOB_TABLE.c.status == JobStatus.RUNNING,
        JOB_TABLE.c.lease_owner == bindparam("owner"),
        JOB_TABLE.c.attempts == bindparam("attempt"),
    )
    .values(status=JobStatus.DONE, finished_at=bindparam("finished", type_=UTCDateTime()), lease_owner=None)
)
"""`complete` with `_held`'s conditions, built once."""


async def complete(session: AsyncSession, job: ClaimedJob) -> None:
    """Mark done inside the caller's transaction; raises LeaseLost (roll back!) if no longer held."""
    result = await session.execute(
        _COMPLETE,
        {"job_id": job.id, "owner": job.owner, "attempt": job.attempt, "finished": datetime.now(UTC)},
    )
    if db.affected(result) != 1:
        raise LeaseLost(f"job {job.id} attempt {job.attempt}")


async def renew(sessions: async_sessionmaker[AsyncSession], job: ClaimedJob, lease: timedelta) -> bool:
    async with sessions() as session, session.begin():
        result = await session.execute(
            update(Job).where(_held(job)).values(lease_expires_at=datetime.now(UTC) + lease)
        )
        return db.affected(result) == 1


async def _merge_into_queued_twin(session: AsyncSession, job: ClaimedJob, when: datetime, note: str) -> bool:
    """A job going back to the queue while another job with its unique key was queued meanwhile
    (e.g. a reconcile failing while a new alert queued one): the queued twin does the same work, so
    this one ends and the twin runs no later than this one would have. Keeps the queue's invariant
    of one queued job per key."""
    unique_key = await session.scalar(select(Job.unique_key).where(Job.id == job.id))
    if unique_key is None:
        return False
    twin = await session.scalar(
        select(Job)
        .where(Job.unique_key == unique_key, Job.status == JobStatus.QUEUED, Job.id != job.id)
        .with_for_update()
    )
    if twin is None:
        return False
    result = await session.execute(
        update(Job)
        .where(_held(job))
        .values(
            status=JobStatus.DONE,
            finished_at=datetime.now(UTC),
            last_error=f"merged into queued job {twin.id}: {note}"[:4000],
            lease_owner=None,
            lease_expires_at=None,
        )
    )
    if db.affected(result) == 1:
        twin.run_after = min(twin.run_after, when)
    return True


async def postpone(sessions: async_sessionmaker[AsyncSession], job: ClaimedJob, until: datetime) -> bool:
    """Put the job back without counting the attempt (it could not start, e.g. its problem is busy)."""
    async with sessions() as session, session.begin():
        if await _merge_into_queued_twin(session, job, until, "postponed"):
            return True
        try:
            async with session.begin_nested():
                result = await session.execute(
                    update(Job)
                    .where(_held(job))
                    .values(
                        status=JobStatus.QUEUED,
                        run_after=until,
                        attempts=job.attempt - 1,
                        lease_owner=None,
                        lease_expires_at=None,
                    )
                )
        except IntegrityError:  # a twin was queued between the check and the update
            return await _merge_into_queued_twin(session, job, until, "postponed")
        return db.affected(result) == 1


async def fail(
    sessions: async_sessionmaker[AsyncSession],
    job: ClaimedJob,
    error: str,
    *,
    retry_at: datetime | None = None,
    on_failure: Callable[[AsyncSession, ClaimedJob, str, bool], Awaitable[None]] | None = None,
) -> str:
    """Record a failed attempt: requeue with backoff, or dead-letter after the last attempt; the
    kind's `on_failure` records what the failure means for its own rows in the same transaction.
    Returns the new status ('queued', 'dead', or 'lost' when the lease was no longer held)."""
    now = datetime.now(UTC)
    dead = job.attempt >= job.max_attempts
    when = retry_at or now + timedelta(seconds=backoff_delay(job.attempt))
    async with sessions() as session, session.begin():
        if not dead and await _merge_into_queued_twin(session, job, when, error):
            return "queued"
        values = {
            "status": JobStatus.DEAD if dead else JobStatus.QUEUED,
            "run_after": when,
            "last_error": error[:4000],
            "lease_owner": None,
            "lease_expires_at": None,
            "finished_at": now if dead else None,
        }
        try:
            async with session.begin_nested():
                result = await session.execute(update(Job).where(_held(job)).values(**values))
        except IntegrityError:  # a twin was queued between the check and the update
            return "queued" if await _merge_into_queued_twin(session, job, when, error) else "lost"
        if db.affected(result) != 1:
            return "lost"
        if on_failure is not None:
            await on_failure(session, job, error, dead)
    return "dead" if dead else "queued"


async def counts(session: AsyncSession) -> list[tuple[str, str, int]]:
    rows = await session.execute(select(Job.kind, Job.status, func.count()).group_by(Job.kind, Job.status))
    return [(kind, status, int(n)) for kind, status, n in rows.all()]


@dataclass(frozen=True)
class Backlog:
    """The jobs of one kind a worker could claim now, and since when the oldest has waited."""

    kind: str
    depth: int
    oldest_since: datetime


async def backlogs(session: AsyncSession, now: datetime) -> list[Backlog]:
    # Waiting since it fell due (queued) or since its lease expired (a worker died holding it).
    since = case((Job.status == JobStatus.QUEUED, Job.run_after), else_=Job.lease_expires_at)
    rows = await session.execute(
        select(Job.kind, func.count(), type_coerce(func.min(since), UTCDateTime()))
        .where(_claimable(now))
        .group_by(Job.kind)
    )
    return [Backlog(kind, int(depth), oldest or now) for kind, depth, oldest in rows.all()]
