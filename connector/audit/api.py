"""`GET /api/v1/audit`: configuration changes and writes to PSAs and RMMs, newest first."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, Query

from connector.api.deps import Session, Viewer
from connector.audit import service
from connector.audit.domain import KINDS, Category
from connector.audit.schemas import AuditEventOut, AuditPage
from connector.infra.errors import FieldError

router = APIRouter(prefix="/api/v1", tags=["audit"])

ENTITIES = frozenset(kind.split(".")[0] for kind in KINDS)


def check_kind(kind: str | None) -> None:
    if kind is not None and kind not in KINDS and kind not in ENTITIES:
        known = ", ".join(sorted(ENTITIES | set(KINDS)))
        raise FieldError("kind", f"unknown kind; one of: {known}")


@router.get("/audit", response_model=AuditPage)
async def list_audit(
    session: Session,
    who: Viewer,
    kind: str | None = Query(
        None, max_length=64, description="a kind (`ticket.closed`) or entity (`ticket`)"
    ),
    category: Category | None = Query(None, description="config, psa or rmm"),
    connection_id: str | None = Query(None, max_length=32),
    client_id: str | None = Query(None, max_length=100, description="the RMM client id"),
    since: datetime | None = Query(None, description="at or after this time (ISO 8601 with offset)"),
    until: datetime | None = Query(None, description="before this time"),
    limit: int = Query(100, ge=1, le=1000),
    before: int | None = Query(None, ge=1, le=2**62, description="`next_before` of the previous page"),
) -> AuditPage:
    check_kind(kind)
    for name, value in (("since", since), ("until", until)):
        if value is not None and value.tzinfo is None:
            raise FieldError(name, "needs a UTC offset (e.g. 2026-01-31T00:00:00Z)")
    filters = service.AuditFilter(kind, category, connection_id, client_id, since, until)
    rows, next_before = await service.list_events(session, who.tenant_id, filters, limit=limit, before=before)
    return AuditPage(events=[AuditEventOut.model_validate(row) for row in rows], next_before=next_before)
