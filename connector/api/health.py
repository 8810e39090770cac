"""Liveness, readiness and Prometheus metrics."""

from __future__ import annotations

import asyncio
from typing import Any, Literal

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from connector.api.deps import ServicesDep
from connector.infra import db

router = APIRouter(tags=["operations"])


class ReadyOut(BaseModel):
    status: Literal["ready", "unavailable"]
    schema_: list[str] | None = Field(
        default=None, alias="schema", description="the database's migration revisions"
    )
    expected: list[str] | None = Field(default=None, description="the revisions this version needs (503)")
    database: str | None = Field(default=None, description="why the database did not answer (503)")


READY_RESPONSES: dict[int | str, dict[str, Any]] = {
    503: {"model": ReadyOut, "description": "the database is unreachable or its schema is not at head"}
}
METRICS_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "Prometheus text exposition format",
        "content": {"text/plain": {"schema": {"type": "string"}}},
    }
}


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz", response_model=ReadyOut, responses=READY_RESPONSES)
async def readyz(services: ServicesDep) -> JSONResponse:
    """Ready when the database answers with its schema at the migrations' head (reading the schema
    revision is the probe). It gets one statement timeout, so a stalled database reads as not ready
    within seconds."""
    try:
        async with asyncio.timeout(services.settings.db_command_timeout_seconds):
            current = await db.current_revisions(services.engine)
    except Exception as exc:
        return JSONResponse({"status": "unavailable", "database": type(exc).__name__}, status_code=503)
    heads = db.head_revisions()
    if current != heads:
        return JSONResponse(
            {"status": "unavailable", "schema": sorted(current), "expected": sorted(heads)}, status_code=503
        )
    return JSONResponse({"status": "ready", "schema": sorted(current)})


@router.get("/metrics", response_class=Response, responses=METRICS_RESPONSES)
async def metrics(services: ServicesDep) -> Response:
    await services.refresh_gauges()
    return Response(services.metrics.render(), media_type="text/plain; version=0.0.4; charset=utf-8")
