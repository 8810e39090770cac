"""Security status sync of one RMM connection: page through endpoints changed since the cursor (a
full pass when there is none, or when the last full pass is older than a day), store what changed,
derive problems (the second observer next to alerts, feeding the same reconciliation), retire
endpoints gone from the RMM on full passes, record daily usage, push changed status onto the
PSA's configuration records, and request the agent deployments the connection's deploy rule asks
for (`connector.rules.deploy`).

A run is resumable: the cursor only advances when a run succeeds, every step compares fingerprints
before writing, so re-running an interrupted or finished run repeats reads but no PSA writes.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from sqlalchemy import (
    ColumnElement,
    and_,
    case,
    exists,
    func,
    literal,
    literal_column,
    or_,
    select,
    true,
    update,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from adapters.base import EndpointStatus, ProblemKind, RmmAdapter, Role, SkippedEndpoint
from adapters.errors import AdapterError, CredentialsError
from connector.alerts.problems import (
    apply_polled,
    clear_retired,
    enqueue_reconciles,
    observe_active,
    observe_cleared,
)
from connector.billing.domain import device_category
from connector.fleet import consoles, coverage, domain
from connector.fleet.endpoints import STATUS_FIELDS, thresholds_of, to_status
from connector.infra import db
from connector.infra.context import Services
from connector.infra.jobs.kinds import enqueue
from connector.infra.jobs.queue import BULK
from connector.infra.logs import get_logger
from connector.models import (
    Connection,
    ConsoleAgent,
    Endpoint,
    HealthDaily,
    Problem,
    SyncCursor,
    SyncRun,
    Tenant,
    UsageDaily,
)
from connector.notifications.domain import Event, EventKind
from connector.notifications.service import notify
from connector.rules.deploy import deploy_unprotected
from connector.statuses import ProblemSource, ProblemStatus, SyncStatus
from connector.sync import console
from connector.sync.configurations import enqueue_configuration_pushes
from connector.sync.counters import Counters as _Counters
from connector.sync.jobs import SYNC, SyncJob

log = get_logger("connector.sync.run")

LOOKBACK = timedelta(minutes=10)
"""Incremental reads start this much before the last successful run started (clock skew, late
writes on the vendor side)."""
FULL_PASS_EVERY = timedelta(hours=24)
HEARTBEAT_STALE = timedelta(minutes=10)
RETIRE_GUARD_SHARE = 0.5
"""A full pass that would retire more than this share of a fleet (of more than 20) retires nothing
and reports an error instead: an RMM answering with a partial list must not wipe billing."""
EVALUATE_CHUNK = 1000
SKIPPED_REPORTED = 50
"""Unreadable endpoints named in a run's errors; beyond that they are still kept from retirement."""
PSA_CONCURRENCY = 8

Progress = Callable[[SyncRun], None]


@dataclass(frozen=True)
class Evaluating:
    """How a run evaluates: `everything` evaluates every active endpoint (as before evaluations were
    stored; the benchmark's baseline and the tests' reference), `clock` is the evaluation's time."""

    everything: bool = False
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))


class SyncConflict(Exception):
    """A run of this connection is already going."""

    def __init__(self, run_id: str) -> None:
        super().__init__(run_id)
        self.run_id = run_id


# ---------------------------------------------------------------------------------------------
# Starting runs
# ---------------------------------------------------------------------------------------------


async def start_run(session: AsyncSession, connection: Connection, trigger: str) -> SyncRun:
    """Create the connection's running run in the caller's transaction (so the run and the job that
    executes it commit together), or raise SyncConflict naming the run already going. A run whose
    heartbeat stopped (its process died) is marked interrupted and replaced."""
    now = datetime.now(UTC)
    current = await session.scalar(
        select(SyncRun).where(SyncRun.connection_id == connection.id, SyncRun.status == SyncStatus.RUNNING)
    )
    if current is not None:
        if now - current.heartbeat_at < HEARTBEAT_STALE:
            raise SyncConflict(current.id)
        current.status = SyncStatus.INTERRUPTED
        current.finished_at = now
        await session.flush()
    cursor = await session.get(SyncCursor, connection.id)
    full = (
        cursor is None
        or cursor.changed_since is None
        or cursor.last_full_at is None
        or now - cursor.last_full_at >= FULL_PASS_EVERY
    )
    run = SyncRun(
        tenant_id=connection.tenant_id,
        connection_id=connection.id,
        trigger=trigger,
        status=SyncStatus.RUNNING,
        full=full,
        changed_since=None
        if full or cursor is None or cursor.changed_since is None
        else cursor.changed_since - LOOKBACK,
        started_at=now,
        heartbeat_at=now,
        errors=[],
    )
    try:
        async with session.begin_nested():
            session.add(run)
    except IntegrityError:  # another trigger won the race for this connection
        other = await session.scalar(
            select(SyncRun.id).where(
                SyncRun.connection_id == connection.id, SyncRun.status == SyncStatus.RUNNING
            )
        )
        raise SyncConflict(other or "unknown") from None
    return run


async def enqueue_run(session: AsyncSession, run: SyncRun) -> None:
    await enqueue(session, SYNC, SyncJob(run_id=run.id), tenant_id=run.tenant_id)


# ---------------------------------------------------------------------------------------------
# Executing a run
# ---------------------------------------------------------------------------------------------


async def execute_run(
    services: Services, run_id: str, *, progress: Progress | None = None, how: Evaluating | None = None
) -> SyncRun:
    how = how or Evaluating()
    async with services.sessions() as session:
        run = await session.get(SyncRun, run_id)
        assert run is not None, run_id
        connection = await session.get(Connection, run.connection_id)
        tenant = await session.get(Tenant, run.tenant_id)
    assert connection is not None and tenant is not None
    limits = thresholds_of(tenant)
    counters = _Counters()
    failed = False
    log.info(
        "sync started",
        tenant_id=run.tenant_id,
        connection_id=connection.id,
        kind=connection.kind,
        run_id=run.id,
        trigger=run.trigger,
        full=run.full,
        changed_since=run.changed_since.isoformat() if run.changed_since else None,
    )
    try:
        if connection.role == Role.SECURITY.value:
            await _console_run(services, run, connection, limits, counters, how)
            return await _finish(services, run, counters, failed)
        adapter = await services.adapters.rmm(connection)
        async for page in adapter.iter_endpoint_pages(run.changed_since):
            await _store_page(services, run, connection, page.statuses, counters)
            await _note_skipped(services, run, connection, page.skipped, counters)
            await _heartbeat(services, run, counters)
            if progress is not None:
                progress(_snapshot(run, counters))
        await _poll_alerts(services, run, connection, adapter, counters)
        if run.full:
            await _retire_missing(services, run, connection, counters)
        await console.rematch(services, connection.tenant_id)
        await console.evaluate_agents(services, connection.tenant_id, limits, counters)
        await _evaluate(services, run, connection, limits, counters, how)
        await _record_usage(services, connection)
        await _record_health(services, connection)
        await deploy_unprotected(services, connection)
    except AdapterError as exc:
        failed = True
        stage = "console" if connection.role == Role.SECURITY.value else "rmm"
        counters.errors.append({"stage": stage, "type": type(exc).__name__, "message": str(exc)})
        log.warning("sync failed", connection_id=connection.id, run_id=run.id, error=str(exc))
    except Exception as exc:
        failed = True
        counters.errors.append({"stage": "internal", "type": type(exc).__name__, "message": str(exc)})
        log.exception("sync failed", connection_id=connection.id, run_id=run.id)
    return await _finish(services, run, counters, failed)


async def _console_run(
    services: Services,
    run: SyncRun,
    connection: Connection,
    limits: domain.Thresholds,
    c: _Counters,
    how: Evaluating,
) -> None:
    """Read the console, match its agents, and re-evaluate the tenant's RMM endpoints, whose
    protection the console's agents (or their absence) now speak for."""
    adapter = await services.adapters.security(connection)

    async def beat() -> None:
        await _heartbeat(services, run, c)

    await console.read_console(services, run, connection, adapter, c, beat)
    if run.full:
        await _mark_read_completely(services, run)
    await console.rematch(services, connection.tenant_id)
    await console.evaluate_agents(services, connection.tenant_id, limits, c, syncing=connection.id)
    async with services.sessions() as session:
        rmms = await rmm_connections(session, connection.tenant_id)
        scopes = await consoles.company_scopes(session, connection.tenant_id)
    if run.full or c.changed:
        # The records of every client this console covers may show new effective values; the
        # pushes compare fingerprints, so an unchanged record costs a read, not a PSA write.
        covered = {scope for (source, _), scope in scopes.items() if source == connection.id}
        for (source, client_id), scope in scopes.items():
            if scope in covered and any(r.id == source for r in rmms):
                c.dirty(source, client_id)
    for rmm in rmms:
        await _evaluate(services, run, rmm, limits, c, how)
        await _record_health(services, rmm)


async def _mark_read_completely(services: Services, run: SyncRun) -> None:
    """The console has been read completely once: from now on every evaluation (this run's and
    any other sync's going on at the same time) counts its missing agents as coverage gaps. Set
    before this run evaluates, so two syncs never disagree about whether it covers a client; the
    incremental cursor itself still moves only when the run succeeds."""
    async with db.transaction(services.sessions) as session:
        cursor = await session.get(SyncCursor, run.connection_id, with_for_update=True)
        if cursor is None:
            session.add(SyncCursor(connection_id=run.connection_id, last_full_at=run.started_at))
        elif cursor.last_full_at is None or cursor.last_full_at < run.started_at:
            cursor.last_full_at = run.started_at


async def skip_if_disabled(services: Services, run_id: str) -> bool:
    """A run queued before its connection was disabled does not read the RMM: it ends `interrupted`
    saying why (True), and leaves the cursor where it was."""
    async with db.transaction(services.sessions) as session:
        run = await session.get(SyncRun, run_id, with_for_update=True)
        connection = await session.get(Connection, run.connection_id) if run is not None else None
        if run is None or connection is None or connection.enabled:
            return False
        now = datetime.now(UTC)
        run.status, run.finished_at, run.heartbeat_at = SyncStatus.INTERRUPTED, now, now
        run.errors = [{"stage": "rmm", "message": "the connection was disabled before the run started"}]
        log.info("sync skipped: connection disabled", connection=connection.id, run=run.id)
        return True


def _snapshot(run: SyncRun, counters: _Counters) -> SyncRun:
    run.pages, run.endpoints_seen, run.endpoints_changed = counters.pages, counters.seen, counters.changed
    return run


async def _heartbeat(services: Services, run: SyncRun, counters: _Counters) -> None:
    async with db.transaction(services.sessions) as session:
        await session.execute(
            update(SyncRun)
            .where(SyncRun.id == run.id)
            .values(
                heartbeat_at=datetime.now(UTC),
                pages=counters.pages,
                endpoints_seen=counters.seen,
                endpoints_changed=counters.changed,
            )
        )


async def _store_page(
    services: Services, run: SyncRun, connection: Connection, page: Sequence[EndpointStatus], c: _Counters
) -> None:
    c.pages += 1
    if not page:
        return
    now = datetime.now(UTC)
    async with db.transaction(services.sessions) as session:
        existing = {
            row.endpoint_id: row
            for row in await session.scalars(
                select(Endpoint).where(
                    Endpoint.rmm_connection_id == connection.id,
                    Endpoint.endpoint_id.in_({s.endpoint_id for s in page}),
                )
            )
        }
        for status in page:
            c.seen += 1
            fingerprint = domain.fingerprint(status)
            row = existing.get(status.endpoint_id)
            if row is None:
                row = Endpoint(
                    tenant_id=connection.tenant_id,
                    rmm_connection_id=connection.id,
                    endpoint_id=status.endpoint_id,
                    first_seen_at=now,
                )
                session.add(row)
                existing[status.endpoint_id] = row
            elif row.fingerprint == fingerprint and row.retired_at is None:
                row.seen_in_run_id = run.id
                if row.evaluated_key is not None and not domain.check_in_keeps_evaluation(
                    domain.CheckIn(row.online, row.last_seen_at),
                    domain.CheckIn(status.online, status.last_seen_at),
                    domain.kinds_of(row.absent_kinds),
                ):
                    row.evaluated_key = None
                row.online, row.last_seen_at = status.online, status.last_seen_at
                row.device_type = status.device_type  # rows stored before the type was kept
                continue
            c.changed += 1
            c.dirty(connection.id, status.client_id)
            for name in STATUS_FIELDS:
                setattr(row, name, getattr(status, name))
            row.fingerprint = fingerprint
            row.evaluated_key = None  # evaluated at this run's end
            row.retired_at = None
            row.updated_at = now
            row.seen_in_run_id = run.id


async def _note_skipped(
    services: Services, run: SyncRun, connection: Connection, skipped: Sequence[SkippedEndpoint], c: _Counters
) -> None:
    """Endpoints of a page the adapter could not read: reported by name and field (the first
    `SKIPPED_REPORTED` of a run), and kept from retirement (an unreadable device is not a deleted one)."""
    if not skipped:
        return
    for item in skipped[: max(0, SKIPPED_REPORTED - c.skipped)]:
        c.errors.append(
            {"stage": "endpoint", "endpoint": item.endpoint_id, "field": item.field, "message": item.message}
        )
    c.skipped += len(skipped)
    async with db.transaction(services.sessions) as session:
        await session.execute(
            update(Endpoint)
            .where(
                Endpoint.rmm_connection_id == connection.id,
                Endpoint.endpoint_id.in_([item.endpoint_id for item in skipped]),
            )
            .values(seen_in_run_id=run.id)
        )


async def _poll_alerts(
    services: Services, run: SyncRun, connection: Connection, adapter: RmmAdapter, c: _Counters
) -> None:
    """RMMs without webhooks report alerts by polling; a failed poll is an error of the run, not a
    reason to drop the status it already read. The poll's time (taken before asking, so anything
    the RMM reports after it wins) is when a problem absent from a complete poll cleared."""
    polled_at = datetime.now(UTC)
    try:
        polled = await adapter.poll_alerts(run.changed_since)
    except AdapterError as exc:
        c.errors.append({"stage": "alerts", "type": type(exc).__name__, "message": str(exc)})
        return
    if not polled.events and not polled.complete_for:
        return
    async with db.transaction(services.sessions) as session:
        touched, opened, closed = await apply_polled(session, connection, polled, at=polled_at)
    c.touched.update(dict.fromkeys(touched))
    c.opened, c.closed = c.opened + opened, c.closed + closed


async def _retire_missing(services: Services, run: SyncRun, connection: Connection, c: _Counters) -> None:
    now = datetime.now(UTC)
    async with db.transaction(services.sessions) as session:
        active = Endpoint.rmm_connection_id == connection.id, Endpoint.retired_at.is_(None)
        fleet = int(await session.scalar(select(func.count()).select_from(Endpoint).where(*active)) or 0)
        missing = [
            row
            for row in await session.scalars(
                select(Endpoint).where(
                    *active,
                    (Endpoint.seen_in_run_id != run.id) | Endpoint.seen_in_run_id.is_(None),
                )
            )
        ]
        if not missing:
            return
        if fleet > 20 and len(missing) > fleet * RETIRE_GUARD_SHARE:
            c.errors.append(
                {
                    "stage": "retire",
                    "type": "RetireGuard",
                    "message": f"the RMM listed {fleet - len(missing)} of {fleet} known endpoints; "
                    f"refusing to retire {len(missing)} at once (check the RMM connection's scope)",
                }
            )
            return
        for row in sorted(missing, key=lambda r: r.endpoint_id):  # the problems' lock order
            row.retired_at = now
            c.retired += 1
            for problem in await clear_retired(
                session,
                connection,
                row.endpoint_id,
                message="the endpoint is no longer in the RMM (retired)",
                at=now,
            ):
                c.closed += 1
                c.touched[problem.id] = None


def _listed(kinds: Any) -> ColumnElement[bool]:
    """The open problem's kind is in the endpoint's stored kinds text (`,a,b,`)."""
    return cast(ColumnElement[bool], kinds.like(literal("%,") + Problem.kind + literal(",%")))


def _needs_evaluation(key: str, now: datetime, reach: consoles.ConsoleReach) -> ColumnElement[bool]:
    """`fleet.domain.needs_evaluation` in SQL, so endpoints that need nothing are never loaded."""
    open_problem = (
        Problem.rmm_connection_id == Endpoint.rmm_connection_id,
        Problem.endpoint_id == Endpoint.endpoint_id,
        Problem.state == literal_column("'open'"),  # a literal, so the partial index on open ones serves
    )
    present_open = (
        select(func.count())
        .select_from(Problem)
        .where(*open_problem, _listed(Endpoint.present_kinds))
        .correlate(Endpoint)
        .scalar_subquery()
    )
    conditions: list[ColumnElement[bool]] = [
        Endpoint.evaluated_key.is_(None),
        Endpoint.evaluated_key != key,
        Endpoint.checks_due_at <= now,
        exists().where(*open_problem, _listed(Endpoint.absent_kinds)),
        and_(Endpoint.present_count > 0, present_open < Endpoint.present_count),
    ]
    if reach.clients:
        conditions.append(Endpoint.client_id.in_(reach.clients))
    if reach.consoles:
        conditions.append(
            exists().where(
                ConsoleAgent.endpoint_ref == Endpoint.id,
                ConsoleAgent.retired_at.is_(None),
                ConsoleAgent.connection_id.in_(reach.consoles),
            )
        )
    return or_(*conditions)


async def _evaluate(
    services: Services,
    run: SyncRun,
    connection: Connection,
    limits: domain.Thresholds,
    c: _Counters,
    how: Evaluating,
) -> None:
    """Derive problems for the active endpoints that can have changed since their last evaluation
    (`fleet.domain.needs_evaluation`: new or changed data, other thresholds, time-based checks due,
    open problems that are not what the evaluation left, a console speaking for them), a chunk at a
    time; each evaluated endpoint stores what it settled and when its checks are next due."""
    now = how.clock()
    key = domain.evaluation_key(limits)
    async with services.sessions() as session:
        reach = await consoles.console_reach(session, connection.id, connection.tenant_id)
    wanted = true() if how.everything else _needs_evaluation(key, now, reach)
    last_id = ""
    while True:
        async with db.transaction(services.sessions) as session:
            rows = list(
                await session.scalars(
                    select(Endpoint)
                    .where(
                        Endpoint.rmm_connection_id == connection.id,
                        Endpoint.retired_at.is_(None),
                        Endpoint.id > last_id,
                        wanted,
                    )
                    .order_by(Endpoint.id)
                    .limit(EVALUATE_CHUNK)
                )
            )
            if not rows:
                return
            last_id = rows[-1].id
            c.evaluated += len(rows)
            open_problems: dict[tuple[str, str], Problem] = {
                (p.endpoint_id, p.kind): p
                for p in await session.scalars(
                    select(Problem).where(
                        Problem.rmm_connection_id == connection.id,
                        Problem.endpoint_id.in_([r.endpoint_id for r in rows]),
                        Problem.state == ProblemStatus.OPEN,
                    )
                )
            }
            views = await consoles.console_views(session, connection.id, connection.tenant_id, rows)
            changes: list[tuple[Endpoint, EndpointStatus, domain.Finding]] = []
            for row in rows:
                view = views.get(row.id)
                status, _ = coverage.effective_status(to_status(row), view)
                found = domain.findings(status, limits, now)
                health = domain.health(status, limits, now)
                if health != row.health:
                    row.health = health
                    c.dirty(connection.id, row.client_id)
                settled = domain.evaluation(found, key, domain.checks_due_at(status, limits, now))
                present, absent = domain.kinds_text(settled.present), domain.kinds_text(settled.absent)
                if (row.evaluated_key, row.checks_due_at, row.present_kinds, row.absent_kinds) != (
                    key,
                    settled.due_at,
                    present,
                    absent,
                ):
                    row.evaluated_key, row.checks_due_at = key, settled.due_at
                    row.present_kinds, row.absent_kinds = present, absent
                    row.present_count = len(settled.present)
                for finding in found:
                    if view is not None and view.agent is None and finding.kind is ProblemKind.NOT_PROTECTED:
                        finding = domain.Finding(
                            finding.kind, finding.present, coverage.coverage_message(view)
                        )
                    current = open_problems.get((row.endpoint_id, finding.kind.value))
                    if (finding.present and current is None) or (
                        finding.present is False and current is not None
                    ):
                        changes.append((row, status, finding))
            # Observations at the sync's time, through the same newest-event rule as alerts, in the
            # problems' lock order (the rule re-checks each one under its problem's lock).
            changes.sort(key=lambda change: (change[0].endpoint_id, change[2].kind.value))
            for row, status, finding in changes:
                if finding.present:
                    problem = await observe_active(
                        session,
                        connection,
                        endpoint_id=row.endpoint_id,
                        client_id=row.client_id,
                        hostname=row.hostname,
                        kind=finding.kind,
                        message=finding.message,
                        at=now,
                        source=ProblemSource.CONSOLE
                        if row.id in views and finding.kind is ProblemKind.NOT_PROTECTED
                        else ProblemSource.STATUS,
                    )
                    if problem is not None:
                        c.opened += 1
                        c.touched[problem.id] = None
                else:
                    cleared = await observe_cleared(
                        session,
                        connection,
                        endpoint_id=row.endpoint_id,
                        kind=finding.kind,
                        message=_clear_message(finding.kind, status),
                        at=now,
                    )
                    if cleared is not None:
                        c.closed += 1
                        c.touched[cleared.id] = None


def _clear_message(kind: ProblemKind, status: EndpointStatus) -> str:
    return {
        ProblemKind.NOT_PROTECTED: f"{status.product} is installed",
        ProblemKind.PROTECTION_DISABLED: "real-time protection is on again",
        ProblemKind.DEFINITIONS_OUTDATED: "definitions are current",
        ProblemKind.SCAN_OVERDUE: "a full scan ran",
        ProblemKind.THREAT_DETECTED: "no active threats reported",
        ProblemKind.AGENT_OFFLINE: "the agent checked in",
    }[kind]


async def _record_health(services: Services, connection: Connection) -> None:
    """Today's endpoints per health class and client (overwritten by each sync of the day)."""
    day = datetime.now(UTC).date().isoformat()
    async with db.transaction(services.sessions) as session:
        counts = (
            await session.execute(
                select(Endpoint.client_id, Endpoint.health, func.count())
                .where(Endpoint.rmm_connection_id == connection.id, Endpoint.retired_at.is_(None))
                .group_by(Endpoint.client_id, Endpoint.health)
            )
        ).all()
        per_client: dict[str, dict[str, int]] = defaultdict(dict)
        for client_id, health, count in counts:
            per_client[client_id][health] = count
        existing = {
            h.client_id: h
            for h in await session.scalars(
                select(HealthDaily).where(
                    HealthDaily.rmm_connection_id == connection.id, HealthDaily.day == day
                )
            )
        }
        for client_id in set(per_client) | set(existing):
            row = existing.get(client_id)
            if row is None:
                row = HealthDaily(
                    tenant_id=connection.tenant_id,
                    rmm_connection_id=connection.id,
                    client_id=client_id,
                    day=day,
                )
                session.add(row)
            values = per_client.get(client_id, {})
            row.protected, row.at_risk = values.get("protected", 0), values.get("at_risk", 0)
            row.unprotected, row.offline = values.get("unprotected", 0), values.get("offline", 0)
            row.unknown = values.get("unknown", 0)


async def _record_usage(services: Services, connection: Connection) -> None:
    """Today's billable endpoints per client, product and device category, for both scopes: `last_*`
    is overwritten, `peak_*` only grows."""
    day = datetime.now(UTC).date().isoformat()
    protected = func.sum(case((Endpoint.protection_enabled.is_(True), 1), else_=0))
    async with db.transaction(services.sessions) as session:
        grouped = (
            await session.execute(
                select(
                    Endpoint.client_id,
                    Endpoint.product,
                    Endpoint.device_type,
                    Endpoint.os_name,
                    func.count(),
                    protected,
                )
                .where(
                    Endpoint.rmm_connection_id == connection.id,
                    Endpoint.retired_at.is_(None),
                    Endpoint.product.is_not(None),
                )
                .group_by(Endpoint.client_id, Endpoint.product, Endpoint.device_type, Endpoint.os_name)
            )
        ).all()
        counts: dict[tuple[str, str, str], list[int]] = {}
        for client_id, product, device_type, os_name, installed, on in grouped:
            slot = counts.setdefault((client_id, str(product), device_category(device_type, os_name)), [0, 0])
            slot[0] += int(installed)
            slot[1] += int(on or 0)
        existing = {
            (u.client_id, u.product, u.category): u
            for u in await session.scalars(
                select(UsageDaily).where(UsageDaily.rmm_connection_id == connection.id, UsageDaily.day == day)
            )
        }
        for key, (installed, on) in counts.items():
            row = existing.get(key)
            if row is None:
                session.add(
                    UsageDaily(
                        tenant_id=connection.tenant_id,
                        rmm_connection_id=connection.id,
                        client_id=key[0],
                        product=key[1],
                        category=key[2],
                        day=day,
                        peak_installed=installed,
                        last_installed=installed,
                        peak_protected=on,
                        last_protected=on,
                    )
                )
            else:
                row.last_installed, row.peak_installed = installed, max(row.peak_installed, installed)
                row.last_protected, row.peak_protected = on, max(row.peak_protected, on)
        # Rows no longer counted (and today's row from before categories were counted) keep their peak.
        for key, row in existing.items():
            if key not in counts:
                row.last_installed = row.last_protected = 0


async def _failure_event(session: AsyncSession, run: SyncRun, errors: list[dict[str, Any]]) -> Event:
    """A failed sync, or — when the RMM refused the connection's credentials — that event instead."""
    connection = await session.get(Connection, run.connection_id)
    name = connection.name if connection is not None else run.connection_id
    first = errors[0] if errors else {"type": "", "message": ""}
    data = {
        "connection_id": run.connection_id,
        "run_id": run.id,
        "error": str(first.get("message", ""))[:500],
    }
    if first.get("type") == CredentialsError.__name__:
        return Event(
            EventKind.CREDENTIALS_FAILED, f"Credentials of {name} stopped working", data["error"], data
        )
    return Event(EventKind.SYNC_FAILED, f"Sync of {name} failed", data["error"], data)


async def _finish(services: Services, run: SyncRun, c: _Counters, failed: bool) -> SyncRun:
    now = datetime.now(UTC)
    async with db.transaction(services.sessions) as session:
        if c.touched:
            await enqueue_reconciles(session, run.tenant_id, list(c.touched), priority=BULK)
        if not failed:
            for connection_id in sorted({run.connection_id, *c.dirty_clients} - {""}):
                await enqueue_configuration_pushes(
                    session, run, connection_id, c.dirty_clients.get(connection_id, set())
                )
        row = await session.get(SyncRun, run.id)
        assert row is not None
        if failed:
            await notify(session, run.tenant_id, await _failure_event(session, run, c.errors))
        row.status = SyncStatus.FAILED if failed else SyncStatus.SUCCEEDED
        row.finished_at = now
        row.heartbeat_at = now
        row.pages, row.endpoints_seen, row.endpoints_changed = c.pages, c.seen, c.changed
        row.endpoints_retired, row.problems_opened, row.problems_closed = c.retired, c.opened, c.closed
        row.endpoints_evaluated = c.evaluated
        row.psa_calls, row.errors = c.psa_calls, c.errors
        if not failed:
            cursor = await session.get(SyncCursor, run.connection_id)
            if cursor is None:
                cursor = SyncCursor(connection_id=run.connection_id)
                session.add(cursor)
            cursor.changed_since = run.started_at
            if run.full:
                cursor.last_full_at = run.started_at
    services.wake_workers()
    (log.warning if failed else log.info)(
        "sync finished",
        tenant_id=run.tenant_id,
        connection_id=run.connection_id,
        run_id=run.id,
        status=row.status,
        full=run.full,
        seconds=round((now - run.started_at).total_seconds(), 3),
        pages=c.pages,
        endpoints_seen=c.seen,
        endpoints_skipped=c.skipped,
        endpoints_changed=c.changed,
        endpoints_retired=c.retired,
        endpoints_evaluated=c.evaluated,
        problems_opened=c.opened,
        problems_closed=c.closed,
        psa_calls=c.psa_calls,
        errors=len(c.errors),
    )
    return row


# ---------------------------------------------------------------------------------------------
# Helpers for triggers
# ---------------------------------------------------------------------------------------------


async def rmm_connections(session: AsyncSession, tenant_id: str | None = None) -> list[Connection]:
    query = select(Connection).where(and_(Connection.role == "rmm", Connection.enabled.is_(True)))
    if tenant_id is not None:
        query = db.scoped(query, Connection, tenant_id)
    return list(await session.scalars(query.order_by(Connection.created_at)))


async def sync_sources(session: AsyncSession, tenant_id: str | None = None) -> list[Connection]:
    """The connections a sync reads: RMMs first (so a console's agents meet this sync's endpoints),
    then security consoles."""
    query = select(Connection).where(
        Connection.role.in_([Role.RMM.value, Role.SECURITY.value]), Connection.enabled.is_(True)
    )
    if tenant_id is not None:
        query = db.scoped(query, Connection, tenant_id)
    rows = list(await session.scalars(query.order_by(Connection.created_at)))
    return sorted(rows, key=lambda row: row.role != Role.RMM.value)
