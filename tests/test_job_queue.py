"""The job queue's invariants on both backends: one queued job per unique key, also when a running
job goes back to the queue while a twin was queued meanwhile."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from connector.alerts.jobs import RECONCILE, ReconcileJob
from connector.infra import db
from connector.infra.context import Services
from connector.infra.jobs import queue
from connector.infra.jobs.kinds import enqueue
from connector.models import Job
from connector.tenants.service import get_or_create_tenant


async def _tenant(services: Services) -> str:
    async with db.transaction(services.sessions) as session:
        return (await get_or_create_tenant(session, "queue-test")).id


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
