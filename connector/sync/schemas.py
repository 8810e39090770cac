"""Request and response bodies of `/api/v1/sync-runs`."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class SyncRunOut(BaseModel):
    id: str
    connection_id: str
    trigger: str
    status: str
    full: bool
    changed_since: datetime | None
    started_at: datetime
    finished_at: datetime | None
    pages: int
    endpoints_seen: int
    endpoints_changed: int
    endpoints_retired: int
    endpoints_evaluated: int
    problems_opened: int
    problems_closed: int
    psa_calls: int
    errors: list[dict[str, Any]]


class SyncRequest(BaseModel):
    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{}, {"connection_id": "c_0123abcd"}]}
    )
    connection_id: str | None = Field(default=None, description="one RMM connection; default: all")
