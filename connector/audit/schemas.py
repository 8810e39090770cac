"""Audit trail responses."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict


class AuditEventOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    seq: int
    at: datetime
    category: str
    kind: str
    actor: str
    api_key_id: str | None
    connection_id: str | None
    client_id: str | None
    target_type: str
    target_id: str | None
    summary: str
    before: dict[str, Any] | None
    after: dict[str, Any] | None


class AuditPage(BaseModel):
    events: list[AuditEventOut]
    next_before: int | None
    """Pass as `before` for the next (older) page; null on the last page."""
