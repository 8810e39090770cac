"""The job queue's invariants on both backends: one queued job per unique key, also when a running
job goes back to the queue while a twin was queued meanwhile; claims shared fairly between tenants
(a tenant's backlog does not hold another tenant's job back) and never claiming a job twice, also
under concurrent claimers."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from sqlalchemy import insert, select

from connector.alerts.jobs import RECONCILE, ReconcileJob
from connector.infra import db
from connector.infra.context import Services
from connector.infra.jobs import queue
from connector.infra.jobs.kinds import enqueue
from connector.maintenance.jobs import WINDOW_CHANGED, WindowChangedJob
from connector.models import Job
from connector.tenants.service import get_or_create_tenant

LEASE = timedelta(minutes=1)


async def _tenant(services: Services, name: str = "queue-test") -> str:
    async with db.transaction(services.sessions) as session:
        return (await get_or_create_tenant(session, name)).id


async def _backlog(
    services: Services,
    tenant: str,
    n: int,
    *,
    since: datetime,
    kind_of: int = 0,
    priority: int | None = None,
) -> None:
    """`n` due jobs of `tenant`, the first due at `since` and each a millisecond after the other."""
    rows = [
        WINDOW_CHANGED.row(
            WindowChangedJob(client_id=f"c-{kind_of}-{i}"),
            tenant_id=tenant,
            run_after=since + timedelta(milliseconds=i),
            priority=priority,
        )
        for i in range(n)
    ]
    async with db.transaction(services.sessions) as session:
        await session.execute(insert(Job), rows)


async def _jobs(services: Services) -> list[Job]:
    async with services.sessions() as session:
        return list(await session.scalars(select(Job).order_by(Job.id)))


async def test_queued_duplicates_coalesce(services: Services) -> None:
    tenant = await _tenant(services)
    async with db.transaction(services.sessions) as session:
        for _ in range(3):
            await enqueue(session, RECONCILE, ReconcileJob(problem_id="p1"), tenant_id=tenant)
    assert len(await _jobs(services)) == 1


async def test_failing_job_merges_into_a_twin_queued_while_it_ran(services: Services) -> None:
    tenant = await _tenant(services)
    async with db.transaction(services.sessions) as session:
        await enqueue(session, RECONCILE, ReconcileJob(problem_id="p1"), tenant_id=tenant)
    [running] = await queue.claim(services.sessions, "w1", limit=1, lease=timedelta(minutes=1))
    later = datetime.now(UTC) + timedelta(hours=1)
    async with db.transaction(services.sessions) as session:
        await enqueue(
            session,
            RECONCILE,
            ReconcileJob(problem_id="p1"),
            tenant_id=tenant,
            run_after=later,
        )

    assert await queue.fail(services.sessions, running, "PSA answered 500") == "queued"

    first, twin = await _jobs(services)
    assert first.status == "done" and "merged into queued job" in (first.last_error or "")
    assert twin.status == "queued"
    assert twin.run_after < later  # runs no later than the failed job's retry would have


async def test_postponed_job_merges_too(services: Services) -> None:
    tenant = await _tenant(services)
    async with db.transaction(services.sessions) as session:
        await enqueue(session, RECONCILE, ReconcileJob(problem_id="p2"), tenant_id=tenant)
    [running] = await queue.claim(services.sessions, "w1", limit=1, lease=timedelta(minutes=1))
    async with db.transaction(services.sessions) as session:
        await enqueue(session, RECONCILE, ReconcileJob(problem_id="p2"), tenant_id=tenant)
    assert await queue.postpone(services.sessions, running, datetime.now(UTC) + timedelta(seconds=2))
    statuses = [j.status for j in await _jobs(services)]
    assert statuses == ["done", "queued"]


def test_failed_claims_back_off_to_a_cap_and_reset() -> None:
    from connector.infra.jobs.worker import CLAIM_RETRY_CAP_SECONDS, claim_retry_delay

    delays = [claim_retry_delay(failures, 1.0) for failures in range(8)]
    assert delays[:5] == [1.0, 2.0, 4.0, 8.0, 16.0]
    assert delays[-1] == CLAIM_RETRY_CAP_SECONDS
    assert claim_retry_delay(3, 60.0) == 60.0  # never shorter than the poll interval


async def test_a_backlog_does_not_hold_back_another_tenants_job(services: Services) -> None:
    backfill, alerting = await _tenant(services, "backfill"), await _tenant(services, "alerting")
    await _backlog(services, backfill, 500, since=datetime.now(UTC) - timedelta(hours=1))
    await _backlog(services, alerting, 1, since=datetime.now(UTC) - timedelta(seconds=1))

    oldest_first = await queue.claim(services.sessions, "w0", limit=4, lease=LEASE, fair=False)
    assert {job.tenant_id for job in oldest_first} == {backfill}  # the order fair claims replace

    batch = await queue.claim(services.sessions, "w1", limit=4, lease=LEASE)
    assert alerting in {job.tenant_id for job in batch}
    assert len(batch) == 4  # the other slots still go to the backlog, oldest first
    backfill_ids = sorted(job.id for job in batch if job.tenant_id == backfill)
    after = max(job.id for job in oldest_first)  # ids follow the due order in this backlog
    assert backfill_ids == [after + 1, after + 2, after + 3]


async def test_a_tenants_urgent_job_goes_before_its_own_older_bulk_backlog(services: Services) -> None:
    tenant = await _tenant(services)
    await _backlog(services, tenant, 300, since=datetime.now(UTC) - timedelta(hours=1), priority=queue.BULK)
    await _backlog(services, tenant, 1, since=datetime.now(UTC) - timedelta(seconds=1), kind_of=1)
    await _backlog(services, tenant, 1, since=datetime.now(UTC) + timedelta(hours=1), kind_of=2)

    [first] = await queue.claim(services.sessions, "w1", limit=1, lease=LEASE)
    assert first.payload["client_id"] == "c-1-0"  # due a second ago, urgent: before the hour-old bulk
    batch = await queue.claim(services.sessions, "w2", limit=3, lease=LEASE)
    # The urgent job due in an hour is not due: the bulk backlog gets every slot, oldest first.
    assert [job.payload["client_id"] for job in batch] == ["c-0-0", "c-0-1", "c-0-2"]


async def test_an_urgent_twin_makes_a_queued_bulk_job_urgent(services: Services) -> None:
    tenant = await _tenant(services)
    async with db.transaction(services.sessions) as session:
        await enqueue(
            session, RECONCILE, ReconcileJob(problem_id="p1"), tenant_id=tenant, priority=queue.BULK
        )
        await enqueue(
            session, RECONCILE, ReconcileJob(problem_id="p2"), tenant_id=tenant, priority=queue.BULK
        )
    async with db.transaction(services.sessions) as session:
        await enqueue(session, RECONCILE, ReconcileJob(problem_id="p2"), tenant_id=tenant)
        await enqueue(
            session, RECONCILE, ReconcileJob(problem_id="p1"), tenant_id=tenant, priority=queue.BULK
        )
    jobs = {job.payload["problem_id"]: job.priority for job in await _jobs(services)}
    assert jobs == {"p1": queue.BULK, "p2": queue.URGENT}


async def test_a_single_free_slot_goes_to_the_tenant_with_nothing_running(services: Services) -> None:
    backfill, alerting = await _tenant(services, "backfill"), await _tenant(services, "alerting")
    await _backlog(services, backfill, 50, since=datetime.now(UTC) - timedelta(hours=1))
    busy = await queue.claim(services.sessions, "w1", limit=3, lease=LEASE)
    assert {job.tenant_id for job in busy} == {backfill}
    await _backlog(services, alerting, 1, since=datetime.now(UTC))

    [next_job] = await queue.claim(services.sessions, "w2", limit=1, lease=LEASE)
    assert next_job.tenant_id == alerting


async def test_a_one_slot_worker_alternates_between_tenants(services: Services) -> None:
    a, b = await _tenant(services, "a"), await _tenant(services, "b")
    await _backlog(services, a, 10, since=datetime.now(UTC) - timedelta(hours=1))
    await _backlog(services, b, 10, since=datetime.now(UTC) - timedelta(minutes=1), kind_of=1)
    served: dict[str, int] = {}
    order = []
    for n in range(6):
        [job] = await queue.claim(services.sessions, "w", limit=1, lease=LEASE, served=served)
        async with db.transaction(services.sessions) as session:
            await queue.complete(session, job)
        served[job.tenant_id] = n
        order.append(job.tenant_id)
    assert order == [a, b, a, b, a, b]


async def test_fair_claims_keep_leases_due_times_and_kinds(services: Services) -> None:
    a, b = await _tenant(services, "a"), await _tenant(services, "b")
    await _backlog(services, a, 1, since=datetime.now(UTC) - timedelta(minutes=1))
    await _backlog(services, b, 1, since=datetime.now(UTC) + timedelta(hours=1))  # not due yet
    async with db.transaction(services.sessions) as session:
        await enqueue(session, RECONCILE, ReconcileJob(problem_id="p1"), tenant_id=b)

    [dead_worker] = await queue.claim(services.sessions, "dead", limit=1, lease=timedelta(seconds=-1))
    assert dead_worker.tenant_id == a
    claimed = await queue.claim(services.sessions, "w", limit=5, lease=LEASE, kinds=[WINDOW_CHANGED.name])
    # The job whose lease expired is taken over (second attempt); b's window job is not due and
    # its reconcile is of a kind this claimer does not run.
    assert [(job.id, job.attempt, job.owner) for job in claimed] == [(dead_worker.id, 2, "w")]
    async with db.transaction(services.sessions) as session:
        try:
            await queue.complete(session, dead_worker)
            raise AssertionError("the dead worker's late completion must be refused")
        except queue.LeaseLost:
            pass
    [reconcile] = await queue.claim(services.sessions, "w", limit=5, lease=LEASE)
    assert reconcile.kind == RECONCILE.name


async def test_concurrent_claimers_never_claim_a_job_twice(services: Services) -> None:
    tenants = [await _tenant(services, f"t{n}") for n in range(3)]
    for n, tenant in enumerate(tenants):
        await _backlog(services, tenant, 100, since=datetime.now(UTC) - timedelta(minutes=n), kind_of=n)
    claims: list[tuple[str, int]] = []

    async def claimer(name: str) -> None:
        for _ in range(1000):
            if len(claims) >= 300:
                return
            jobs = await queue.claim(services.sessions, name, limit=3, lease=LEASE)
            claims.extend((name, job.id) for job in jobs)
            # Let the others in between claims; a claim that lost every race comes back empty.
            await asyncio.sleep(0 if jobs else 0.01)

    # Each claimer holds its own connection: on PostgreSQL the claims really run at once and pass
    # over each other's locked rows; on SQLite they take turns on the write lock.
    await asyncio.gather(*(claimer(f"w{n}") for n in range(8)))
    ids = [job_id for _, job_id in claims]
    assert len(ids) == 300 and len(set(ids)) == 300
    assert len({name for name, _ in claims}) > 1
    async with services.sessions() as session:
        rows = (await session.execute(select(Job.id, Job.lease_owner, Job.attempts))).all()
    assert all(attempts == 1 for _, _, attempts in rows)
    assert {job_id: owner for job_id, owner, _ in rows} == {job_id: name for name, job_id in claims}
