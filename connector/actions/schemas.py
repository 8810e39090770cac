"""Request and response bodies of `/api/v1/endpoints/{id}/actions`."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict

from adapters.base import ActionKind


class ActionOut(BaseModel):
    id: str
    action: str
    problem_id: str | None
    requested_by: str
    status: str
    vendor_reference: str | None
    message: str
    requested_at: datetime
    finished_at: datetime | None


class ActionRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    action: ActionKind
    problem_id: str | None = None
