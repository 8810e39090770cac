"""`/api/v1/sync-runs`: start status syncs and read their runs."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse

from connector.api.deps import Engineer, Session, Viewer
from connector.api.schemas import Offset
from connector.sync import service
from connector.sync.run import SyncConflict
from connector.sync.schemas import SyncRequest, SyncRunOut

router = APIRouter(prefix="/api/v1", tags=["sync"])


@router.post("/sync-runs", status_code=202, response_model=list[SyncRunOut])
async def trigger_sync(body: SyncRequest, session: Session, who: Engineer) -> Any:
    """Start a sync of one RMM connection (409 if one is running) or of all (running ones skipped)."""
    try:
        runs = await service.start_syncs(session, who.tenant_id, body.connection_id)
    except SyncConflict as conflict:
        return JSONResponse(
            {
                "error": "conflict",
                "message": "a sync of this connection is already running",
                "run_id": conflict.run_id,
            },
            status_code=409,
        )
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
    rows = await service.list_runs(
        session, who.tenant_id, connection_id=connection_id, status=status, limit=limit, offset=offset
    )
    return [SyncRunOut.model_validate(r, from_attributes=True) for r in rows]


@router.get("/sync-runs/{run_id}", response_model=SyncRunOut)
async def get_sync_run(run_id: str, session: Session, who: Viewer) -> SyncRunOut:
    return SyncRunOut.model_validate(
        await service.get_run(session, who.tenant_id, run_id), from_attributes=True
    )
