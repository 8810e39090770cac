"""The composition root: builds the services with their feature objects, assembles the job
worker's table from every feature's handlers, and starts the background components of `connector
serve` and `connector worker` (the worker, the sync scheduler, the queue gauges)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

from sqlalchemy import func, select

from adapters.base import TransportFactory
from adapters.registry import AdapterRegistry
from connector.actions import handlers as action_handlers
from connector.actions.jobs import ACTION
from connector.alerts import handlers as alert_handlers
from connector.alerts.jobs import RECONCILE
from connector.connections.adapters import AdapterCache
from connector.infra.budgets import budget_store
from connector.infra.context import Purpose, Services, base_services
from connector.infra.jobs import queue
from connector.infra.jobs.kinds import HandlerTable
from connector.infra.jobs.worker import Worker
from connector.infra.metrics import Metrics
from connector.models import Delivery
from connector.notifications import handlers as notification_handlers
from connector.settings import Settings
from connector.statuses import JobStatus
from connector.sync import handlers as sync_handlers
from connector.sync import service as sync_service
from connector.sync.jobs import CONFIGURATIONS
from connector.sync.scheduler import start_scheduler

BackgroundStarter = Callable[[Services], Awaitable[Callable[[], Awaitable[None]]]]
"""Starts a background component (worker, scheduler) and returns its stop function."""

JOB_HANDLERS = HandlerTable.of(
    [
        *alert_handlers.HANDLERS,
        *sync_handlers.HANDLERS,
        *action_handlers.HANDLERS,
        *notification_handlers.HANDLERS,
    ]
)
"""Every job kind of every feature, with its handler."""

AFTER_SYNC_WORK = JOB_HANDLERS.only(RECONCILE, ACTION, CONFIGURATIONS)
"""What `connector sync` runs in the foreground after its runs: tickets, actions, configurations."""


def build_services(
    settings: Settings,
    *,
    registry: AdapterRegistry | None = None,
    transport_factory: TransportFactory | None = None,
    metrics: Metrics | None = None,
    purpose: Purpose = "requests",
) -> Services:
    """The services with their feature objects wired in (today: the live adapter per connection)."""
    services = base_services(
        settings, registry=registry, transport_factory=transport_factory, metrics=metrics, purpose=purpose
    )
    services.adapters = AdapterCache(services)
    services.budgets = budget_store(settings, settings.resolved_database_url(), settings.database_schema)
    return services


def worker(services: Services, *, concurrency: int = 4, poll_interval: float = 1.0) -> Worker:
    """A worker over every job kind."""
    return Worker(services, handlers=JOB_HANDLERS, concurrency=concurrency, poll_interval=poll_interval)


async def refresh_queue_gauges(services: Services) -> None:
    now = datetime.now(UTC)
    async with services.sessions() as session:
        job_counts = await queue.counts(session)
        backlogs = await queue.backlogs(session, now)
        delivery_counts = (
            await session.execute(select(Delivery.status, func.count()).group_by(Delivery.status))
        ).all()
        syncs = await sync_service.last_successes(session)
    metrics = services.metrics
    for gauge in (metrics.jobs, metrics.dead_jobs, metrics.queue_depth, metrics.queue_oldest_age):
        gauge.clear()
    for kind, status, count in job_counts:
        metrics.jobs.labels(kind, status).set(count)
        if status == JobStatus.DEAD:
            metrics.dead_jobs.labels(kind).set(count)
    for kind in JOB_HANDLERS.names():  # every kind has a series, 0 when nothing waits
        metrics.queue_depth.labels(kind).set(0)
        metrics.queue_oldest_age.labels(kind).set(0)
        metrics.dead_jobs.labels(kind)
    for backlog in backlogs:
        metrics.queue_depth.labels(backlog.kind).set(backlog.depth)
        metrics.queue_oldest_age.labels(backlog.kind).set(
            max(0.0, (now - backlog.oldest_since).total_seconds())
        )
    metrics.deliveries.clear()
    for status, count in delivery_counts:
        metrics.deliveries.labels(status).set(count)
    metrics.sync_last_success.clear()
    metrics.sync_last_duration.clear()
    for run in syncs:
        metrics.sync_last_success.labels(run.connection_id, run.kind).set(run.finished_at.timestamp())
        duration = (run.finished_at - run.started_at).total_seconds()
        metrics.sync_last_duration.labels(run.connection_id, run.kind).set(duration)


async def start_gauges(services: Services) -> Callable[[], Awaitable[None]]:
    services.gauge_refreshers.append(refresh_queue_gauges)

    async def stop() -> None:
        services.gauge_refreshers.remove(refresh_queue_gauges)

    return stop


async def start_worker(services: Services) -> Callable[[], Awaitable[None]]:
    running = worker(services)
    services.wake_listeners.append(running.wake)
    task = asyncio.create_task(running.run(), name="job-worker")

    async def stop() -> None:
        services.wake_listeners.remove(running.wake)
        await running.stop()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    return stop


def background_components(settings: Settings, *, worker: bool, scheduler: bool) -> list[BackgroundStarter]:
    starters: list[BackgroundStarter] = [start_gauges]
    if worker and settings.run_worker:
        starters.append(start_worker)
    if scheduler and settings.run_scheduler:
        starters.append(start_scheduler)
    return starters
