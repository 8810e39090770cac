"""Sync runs as the API and dashboard ask for them: start runs of the tenant's RMM connections,
list and read their run records."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import and_, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from connector.connections.service import get_connection
from connector.infra.db import tenant_rows
from connector.infra.errors import FieldError, NotFound
from connector.models import Connection, SyncRun
from connector.statuses import SyncStatus, SyncTrigger
from connector.sync.run import SyncConflict, enqueue_run, start_run, sync_sources


async def start_syncs(
    session: AsyncSession,
    tenant_id: str,
    connection_id: str | None,
    trigger: SyncTrigger = SyncTrigger.API,
) -> list[SyncRun]:
    """Start and queue a run of one RMM or security connection (`SyncConflict` if one is running) or of every
    enabled one (those already running are skipped), in the caller's transaction. `trigger` says
    who asked: the API or the dashboard (the same request either way)."""
    if connection_id is not None:
        connection = await get_connection(session, tenant_id, connection_id)
        if connection.role == "psa":
            raise FieldError("connection_id", "is a PSA connection; syncs read RMM and security connections")
        if not connection.enabled:
            raise FieldError("connection_id", "the connection is disabled")
        connections = [connection]
    else:
        connections = await sync_sources(session, tenant_id)
    runs = []
    for connection in connections:
        try:
            run = await start_run(session, connection, trigger)
        except SyncConflict:
            if connection_id is not None:
                raise
            continue
        await enqueue_run(session, run)
        runs.append(run)
    await session.flush()
    session.info["wake_workers"] = True
    return runs


async def list_runs(
    session: AsyncSession,
    tenant_id: str,
    *,
    connection_id: str | None = None,
    status: str | None = None,
    limit: int = 50,
    offset: int = 0,
) -> list[SyncRun]:
    """Newest first."""
    query = tenant_rows(SyncRun, tenant_id)
    if connection_id:
        query = query.where(SyncRun.connection_id == connection_id)
    if status:
        query = query.where(SyncRun.status == status)
    rows = await session.scalars(query.order_by(SyncRun.started_at.desc()).limit(limit).offset(offset))
    return list(rows)


async def get_run(session: AsyncSession, tenant_id: str, run_id: str) -> SyncRun:
    row = await session.scalar(tenant_rows(SyncRun, tenant_id).where(SyncRun.id == run_id))
    if row is None:
        raise NotFound("sync run")
    return row


@dataclass(frozen=True)
class LastSuccess:
    connection_id: str
    kind: str
    started_at: datetime
    finished_at: datetime


async def last_successes(session: AsyncSession) -> list[LastSuccess]:
    """Each RMM connection's latest successful run, across tenants (for the metrics)."""
    latest = (
        select(SyncRun.connection_id, func.max(SyncRun.finished_at).label("finished_at"))
        .where(SyncRun.status == SyncStatus.SUCCEEDED)
        .group_by(SyncRun.connection_id)
        .subquery()
    )
    rows = await session.execute(
        select(SyncRun.connection_id, Connection.kind, SyncRun.started_at, SyncRun.finished_at)
        .join(
            latest,
            and_(
                SyncRun.connection_id == latest.c.connection_id, SyncRun.finished_at == latest.c.finished_at
            ),
        )
        .join(Connection, Connection.id == SyncRun.connection_id)
        .where(SyncRun.status == SyncStatus.SUCCEEDED)
    )
    return [
        LastSuccess(connection_id, kind, started, finished)
        for connection_id, kind, started, finished in rows.all()
        if finished is not None
    ]
