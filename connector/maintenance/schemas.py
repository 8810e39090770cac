"""Request and response bodies of `/api/v1/maintenance-windows`."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class WindowIn(BaseModel):
    """A maintenance window. `rmm_connection_id` and `client_id` together name one client; neither
    names the whole tenant. Times are local wall-clock times in `timezone`."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "name": "Patch night",
                    "rmm_connection_id": "4f1c0d9e2b7a4c51a0e3d6f8b9c2a1e7",
                    "client_id": "c-1",
                    "timezone": "Europe/Berlin",
                    "kind": "weekly",
                    "weekdays": [2],
                    "start_time": "22:00",
                    "duration_minutes": 240,
                },
                {
                    "name": "Datacenter move",
                    "timezone": "America/New_York",
                    "kind": "once",
                    "start_local": "2026-12-12T20:00:00",
                    "end_local": "2026-12-13T06:00:00",
                },
            ]
        },
    )

    name: str = Field(min_length=1, max_length=200)
    rmm_connection_id: str | None = Field(None, max_length=32)
    client_id: str | None = Field(None, min_length=1, max_length=100)
    timezone: str = Field(min_length=1, max_length=64, examples=["Europe/Berlin"])
    kind: Literal["once", "weekly"]
    start_local: datetime | None = Field(None, description="one-off: local start, no offset")
    end_local: datetime | None = Field(None, description="one-off: local end, no offset")
    weekdays: list[int] = Field(default_factory=list, description="weekly: 0 = Monday … 6 = Sunday")
    start_time: str | None = Field(None, pattern=r"^([01]\d|2[0-3]):[0-5]\d$", description="weekly: HH:MM")
    duration_minutes: int = Field(0, ge=0, le=10_080, description="weekly: wall-clock length")
    enabled: bool = True


class WindowOut(BaseModel):
    id: str
    name: str
    rmm_connection_id: str | None
    client_id: str | None
    timezone: str
    kind: str
    start_local: str | None
    end_local: str | None
    weekdays: list[int]
    start_time: str | None
    duration_minutes: int
    enabled: bool
    open_until: datetime | None = Field(None, description="when open now: the UTC end of this span")
    created_at: datetime
    updated_at: datetime
