"""Background components of `connector serve` and `connector worker`: the job worker and the
metrics gauges that read queue state."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select

import connector.alerts.handlers  # noqa: F401 - registers the alert job handlers
from connector.app import BackgroundStarter
from connector.infra.context import Services
from connector.infra.jobs import queue
from connector.infra.jobs.worker import Worker
from connector.infra.logs import get_logger
from connector.models import Delivery
from connector.settings import Settings

log = get_logger("connector.runtime")


async def refresh_queue_gauges(services: Services) -> None:
    async with services.sessions() as session:
        job_counts = await queue.counts(session)
        delivery_counts = (
            await session.execute(select(Delivery.status, func.count()).group_by(Delivery.status))
        ).all()
    services.metrics.jobs.clear()
    for kind, status, count in job_counts:
        services.metrics.jobs.labels(kind, status).set(count)
    services.metrics.deliveries.clear()
    for status, count in delivery_counts:
        services.metrics.deliveries.labels(status).set(count)


async def start_gauges(services: Services) -> Callable[[], Awaitable[None]]:
    services.gauge_refreshers.append(refresh_queue_gauges)

    async def stop() -> None:
        services.gauge_refreshers.remove(refresh_queue_gauges)

    return stop


def worker_starter(**options: object) -> BackgroundStarter:
    async def start(services: Services) -> Callable[[], Awaitable[None]]:
        worker = Worker(services, **options)  # type: ignore[arg-type]
        services.wake_listeners.append(worker.wake)
        task = asyncio.create_task(worker.run(), name="job-worker")

        async def stop() -> None:
            services.wake_listeners.remove(worker.wake)
            await worker.stop()
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

        return stop

    return start


async def schedule_due_syncs(services: Services) -> int:
    """Start a sync of every enabled RMM connection whose last run started at least one interval ago.
    Safe with several schedulers: a running run blocks a second one (unique index), and the
    interval check keeps a scheduler that just missed the race from starting another right after."""
    from connector.infra import db
    from connector.models import SyncRun
    from connector.sync.run import SyncConflict, enqueue_run, rmm_connections, start_run

    interval = timedelta(seconds=services.settings.sync_interval_seconds)
    now = datetime.now(UTC)
    started = 0
    async with services.sessions() as session:
        connections = await rmm_connections(session)
    for connection in connections:
        async with db.transaction(services.sessions) as session:
            last = await session.scalar(
                select(func.max(SyncRun.started_at)).where(SyncRun.connection_id == connection.id)
            )
            if last is not None and now - last < interval * 0.9:
                continue
            try:
                run = await start_run(session, connection, "schedule")
            except SyncConflict:
                continue
            await enqueue_run(session, run)
            started += 1
    if started:
        services.wake_workers()
    return started


async def start_scheduler(services: Services) -> Callable[[], Awaitable[None]]:
    async def loop() -> None:
        while True:
            try:
                await schedule_due_syncs(services)
            except Exception as exc:  # the database may be briefly away: try again next tick
                log.warning("scheduling syncs failed", error=str(exc))
            await asyncio.sleep(min(60.0, services.settings.sync_interval_seconds / 4))

    task = asyncio.create_task(loop(), name="sync-scheduler")

    async def stop() -> None:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    return stop


def background_components(settings: Settings, *, worker: bool, scheduler: bool) -> list[BackgroundStarter]:
    starters: list[BackgroundStarter] = [start_gauges]
    if worker and settings.run_worker:
        starters.append(worker_starter())
    if scheduler and settings.run_scheduler:
        starters.append(start_scheduler)
    return starters
