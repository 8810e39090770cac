"""`/api/v1/sync-runs`: start status syncs and read their runs."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse
from sqlalchemy import select

from connector.api.deps import Engineer, Session, Viewer
from connector.api.schemas import Offset
from connector.infra.errors import FieldError, NotFound
from connector.models import Connection, SyncRun
from connector.sync.run import SyncConflict, enqueue_run, rmm_connections, start_run
from connector.sync.schemas import SyncRequest, SyncRunOut

router = APIRouter(prefix="/api/v1", tags=["sync"])


@router.post("/sync-runs", status_code=202, response_model=list[SyncRunOut])
async def trigger_sync(body: SyncRequest, session: Session, who: Engineer) -> Any:
    """Start a sync of one RMM connection (409 if one is running) or of all (running ones skipped)."""
    if body.connection_id is not None:
        connection = await session.scalar(
            select(Connection).where(
                Connection.id == body.connection_id, Connection.tenant_id == who.tenant_id
            )
        )
        if connection is None:
            raise NotFound("connection")
        if connection.role != "rmm":
            raise FieldError("connection_id", "is a PSA connection; syncs read RMM connections")
        if not connection.enabled:
            raise FieldError("connection_id", "the connection is disabled")
        connections = [connection]
    else:
        connections = await rmm_connections(session, who.tenant_id)
    runs = []
    for connection in connections:
        try:
            run = await start_run(session, connection, "api")
        except SyncConflict as conflict:
            if body.connection_id is not None:
                return JSONResponse(
                    {
                        "error": "conflict",
                        "message": "a sync of this connection is already running",
                        "run_id": conflict.run_id,
                    },
                    status_code=409,
                )
            continue
        await enqueue_run(session, run)
        runs.append(run)
    await session.flush()
    session.info["wake_workers"] = True
    return [SyncRunOut.model_validate(run, from_attributes=True) for run in runs]


@router.get("/sync-runs", response_model=list[SyncRunOut])
async def list_sync_runs(
    session: Session,
    who: Viewer,
    connection_id: str | None = None,
    status: str | None = Query(None, pattern="^(running|succeeded|failed|interrupted)$"),
    limit: int = Query(50, ge=1, le=500),
    offset: Offset = 0,
) -> list[SyncRunOut]:
    query = select(SyncRun).where(SyncRun.tenant_id == who.tenant_id)
    if connection_id:
        query = query.where(SyncRun.connection_id == connection_id)
    if status:
        query = query.where(SyncRun.status == status)
    rows = await session.scalars(query.order_by(SyncRun.started_at.desc()).limit(limit).offset(offset))
    return [SyncRunOut.model_validate(r, from_attributes=True) for r in rows]


@router.get("/sync-runs/{run_id}", response_model=SyncRunOut)
async def get_sync_run(run_id: str, session: Session, who: Viewer) -> SyncRunOut:
    row = await session.scalar(
        select(SyncRun).where(SyncRun.id == run_id, SyncRun.tenant_id == who.tenant_id)
    )
    if row is None:
        raise NotFound("sync run")
    return SyncRunOut.model_validate(row, from_attributes=True)
