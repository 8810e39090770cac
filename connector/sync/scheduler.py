"""Scheduled syncs inside `connector serve`: every enabled RMM connection is synced once per
`SYNC_INTERVAL_SECONDS`."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from connector.infra import db
from connector.infra.context import Services
from connector.infra.logs import get_logger
from connector.models import SyncRun
from connector.notifications.domain import Event, EventKind
from connector.notifications.service import notify
from connector.statuses import SyncStatus, SyncTrigger
from connector.sync.run import SyncConflict, enqueue_run, start_run, sync_sources

log = get_logger("connector.sync.scheduler")


async def schedule_due_syncs(services: Services) -> int:
    """Start a sync of every enabled RMM connection whose last run started at least one interval ago.
    Safe with several schedulers: a running run blocks a second one (unique index), and the
    interval check keeps a scheduler that just missed the race from starting another right after."""
    interval = timedelta(seconds=services.settings.sync_interval_seconds)
    now = datetime.now(UTC)
    started = 0
    async with services.sessions() as session:
        connections = await sync_sources(session)
    for connection in connections:
        async with db.transaction(services.sessions) as session:
            last = await session.scalar(
                select(func.max(SyncRun.started_at)).where(SyncRun.connection_id == connection.id)
            )
            await _notify_if_stale(
                session, connection.tenant_id, connection.id, connection.name, now, interval
            )
            if last is not None and now - last < interval * 0.9:
                continue
            try:
                run = await start_run(session, connection, SyncTrigger.SCHEDULE)
            except SyncConflict:
                continue
            await enqueue_run(session, run)
            started += 1
    if started:
        services.wake_workers()
    return started


STALE_AFTER_INTERVALS = 3
"""A connection whose last successful sync is older than this many sync intervals is stale."""


async def _notify_if_stale(
    session: AsyncSession, tenant_id: str, connection_id: str, name: str, now: datetime, interval: timedelta
) -> None:
    """Notify once the last successful sync is too old (the same subject is sent at most hourly)."""
    last_ok = await session.scalar(
        select(func.max(SyncRun.finished_at)).where(
            SyncRun.connection_id == connection_id, SyncRun.status == SyncStatus.SUCCEEDED
        )
    )
    if last_ok is None or now - last_ok < interval * STALE_AFTER_INTERVALS:
        return
    hours = round((now - last_ok).total_seconds() / 3600, 1)
    data = {"connection_id": connection_id, "last_success_at": last_ok.isoformat()}
    text = f"The last successful sync finished {hours} h ago."
    await notify(session, tenant_id, Event(EventKind.SYNC_STALE, f"Sync of {name} is stale", text, data))


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
