"""Request and response pieces every feature's API shares: the strict request-body base, the
listing offset and the error body every route answers with. Each feature's own bodies live in its
`schemas.py`."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Query
from pydantic import BaseModel, ConfigDict, Field

MAX_OFFSET = 1_000_000_000
"""Far past any real listing, and far below the 64-bit integers SQLite and PostgreSQL bind (an
offset of 2**63 would fail in the driver instead of being refused)."""

Offset = Annotated[int, Query(ge=0, le=MAX_OFFSET, description="rows to skip")]


class RequestBody(BaseModel):
    """Request bodies. Flags are strict (`1` or `"false"` is refused, not read as a boolean)."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class FieldProblemOut(BaseModel):
    field: str = Field(
        description="the offending field: a dotted body path (`credentials.username`, `cost_tiers.0`), "
        "a query or path parameter's name, `body`, or a header name"
    )
    message: str = Field(description="what is wrong with it (never the submitted value)")


class ErrorOut(BaseModel):
    """Every error answer: a machine-readable `error` code and a human `message`; validation errors
    (422) and unparseable webhook bodies (400) list the offending fields in `errors`; a billing push
    refused because another push runs describes that push in `running`."""

    model_config = ConfigDict(
        extra="allow",
        json_schema_extra={
            "examples": [
                {
                    "error": "validation_error",
                    "message": "name: Field required",
                    "errors": [{"field": "name", "message": "Field required"}],
                },
                {"error": "not_found", "message": "connection not found"},
            ]
        },
    )

    error: str = Field(
        description="validation_error, bad_request, unauthorized, forbidden, not_found, conflict, "
        "method_not_allowed, payload_too_large, database_unavailable or internal_error"
    )
    message: str
    errors: list[FieldProblemOut] = Field(default_factory=list, description="the offending fields")
    running: dict[str, Any] | None = Field(default=None, description="the billing push in progress (409)")
