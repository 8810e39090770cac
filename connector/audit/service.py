"""Writing audit entries (in the caller's transaction) and listing them for a tenant."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NotRequired, TypedDict, Unpack, cast

from sqlalchemy import ColumnElement, Table, or_, select
from sqlalchemy import insert as sql_insert
from sqlalchemy.ext.asyncio import AsyncSession

from connector.audit.domain import KINDS, Actor, Category, redact
from connector.infra.db import scoped, tenant_rows
from connector.infra.logs import get_logger
from connector.models import AuditEvent, utcnow

log = get_logger("connector.audit")


class Details(TypedDict):
    """What an entry says about its target, beside tenant, kind and actor."""

    target_type: str
    target_id: str | None
    summary: str
    connection_id: NotRequired[str | None]
    client_id: NotRequired[str | None]
    before: NotRequired[dict[str, Any] | None]
    after: NotRequired[dict[str, Any] | None]


def record(
    session: AsyncSession, tenant_id: str, kind: str, actor: Actor, **details: Unpack[Details]
) -> AuditEvent:
    """Add one entry to the session: it is committed, or rolled back, with the change it records."""
    row = AuditEvent(**_entry(tenant_id, kind, actor, details))
    session.add(row)  # (the API logs each configuration change once its transaction commits)
    return row


async def insert(
    session: AsyncSession, tenant_id: str, kind: str, actor: Actor, **details: Unpack[Details]
) -> None:
    """`record` as one INSERT run now, in the caller's transaction: no ORM object to flush (for the
    paths that write an entry per ticket)."""
    await session.execute(_INSERT, {**_entry(tenant_id, kind, actor, details), "at": utcnow()})


_INSERT = sql_insert(cast(Table, AuditEvent.__table__))


def _entry(tenant_id: str, kind: str, actor: Actor, details: Details) -> dict[str, Any]:
    before, after = details.get("before"), details.get("after")
    return {
        "tenant_id": tenant_id,
        "category": KINDS[kind].value,
        "kind": kind,
        "actor": actor.via,
        "api_key_id": actor.api_key_id,
        "connection_id": details.get("connection_id"),
        "client_id": details.get("client_id"),
        "target_type": details["target_type"],
        "target_id": details["target_id"],
        "summary": details["summary"][:500],
        "before": redact(before) if before is not None else None,
        "after": redact(after) if after is not None else None,
    }


def record_config(
    session: AsyncSession,
    tenant_id: str,
    entity: str,
    verb: str,
    actor: Actor,
    *,
    target_id: str,
    label: str,
    before: dict[str, Any] | None,
    after: dict[str, Any] | None,
    connection_id: str | None = None,
    client_id: str | None = None,
) -> AuditEvent:
    """One configuration change (`{entity}.{verb}`: created, updated or deleted), summarised as
    "`label` updated: the fields" so the trail reads the same for every kind of setting."""
    fields = f": {', '.join(sorted(after))}" if verb == "updated" and after else ""
    return record(
        session,
        tenant_id,
        f"{entity}.{verb}",
        actor,
        target_type=entity,
        target_id=target_id,
        summary=f"{label} {verb}{fields}",
        connection_id=connection_id,
        client_id=client_id,
        before=before,
        after=after,
    )


@dataclass(frozen=True)
class AuditFilter:
    kind: str | None = None
    category: Category | None = None
    connection_id: str | None = None
    client_id: str | None = None
    since: datetime | None = None
    until: datetime | None = None

    def clauses(self) -> Sequence[ColumnElement[bool]]:
        out: list[ColumnElement[bool]] = []
        if self.kind:
            out.append(or_(AuditEvent.kind == self.kind, AuditEvent.kind.startswith(self.kind + ".")))
        if self.category is not None:
            out.append(AuditEvent.category == self.category.value)
        if self.connection_id:
            out.append(AuditEvent.connection_id == self.connection_id)
        if self.client_id:
            out.append(AuditEvent.client_id == self.client_id)
        if self.since is not None:
            out.append(AuditEvent.at >= self.since)
        if self.until is not None:
            out.append(AuditEvent.at < self.until)
        return out


async def list_events(
    session: AsyncSession,
    tenant_id: str,
    filters: AuditFilter,
    *,
    limit: int = 100,
    before: int | None = None,
) -> tuple[list[AuditEvent], int | None]:
    """Newest first, `limit` at a time; returns the page and the cursor of the next (None: last
    page). The cursor is an entry's sequence number, so entries written meanwhile never shift a page."""
    query = tenant_rows(AuditEvent, tenant_id).where(*filters.clauses())
    if before is not None:
        query = query.where(AuditEvent.seq < before)
    rows = list(await session.scalars(query.order_by(AuditEvent.seq.desc()).limit(limit + 1)))
    if len(rows) > limit:
        return rows[:limit], rows[limit - 1].seq
    return rows, None


async def entries_since(
    session: AsyncSession, tenant_id: str, kinds: Sequence[str], since: datetime
) -> list[tuple[datetime, str]]:
    """(when, kind) of every entry of these kinds written since `since`, oldest first."""
    query = (
        scoped(select(AuditEvent.at, AuditEvent.kind), AuditEvent, tenant_id)
        .where(AuditEvent.kind.in_(list(kinds)), AuditEvent.at >= since)
        .order_by(AuditEvent.seq)
    )
    return [(at, str(kind)) for at, kind in (await session.execute(query)).all()]
