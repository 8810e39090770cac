"""Request and response pieces every feature's API shares: the strict request-body base and the
listing offset. Each feature's own bodies live in its `schemas.py`."""

from __future__ import annotations

from typing import Annotated

from fastapi import Query
from pydantic import BaseModel, ConfigDict

MAX_OFFSET = 1_000_000_000
"""Far past any real listing, and far below the 64-bit integers SQLite and PostgreSQL bind (an
offset of 2**63 would fail in the driver instead of being refused)."""

Offset = Annotated[int, Query(ge=0, le=MAX_OFFSET, description="rows to skip")]


class RequestBody(BaseModel):
    """Request bodies. Flags are strict (`1` or `"false"` is refused, not read as a boolean)."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)
