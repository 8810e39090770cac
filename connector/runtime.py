"""Background components of `connector serve` and `connector worker`: the job worker and the
metrics gauges that read queue state."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from sqlalchemy import func, select

import connector.jobs.handlers  # noqa: F401 - registers the alert job handlers
from connector.app import BackgroundStarter
from connector.jobs import queue
from connector.jobs.worker import Worker
from connector.models import Delivery
from connector.services import Services
from connector.settings import Settings


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


def background_components(settings: Settings, *, worker: bool, scheduler: bool) -> list[BackgroundStarter]:
    starters: list[BackgroundStarter] = [start_gauges]
    if worker and settings.run_worker:
        starters.append(worker_starter())
    return starters
