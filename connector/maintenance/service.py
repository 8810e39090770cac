"""Maintenance windows: stored per tenant or client, and the question the ticket reconciliation asks
before opening a ticket — is this client in maintenance now, and until when?"""

from __future__ import annotations

from datetime import datetime, time, timedelta
from typing import Any

from pydantic import ValidationError
from sqlalchemy import and_, or_
from sqlalchemy.ext.asyncio import AsyncSession

from connector.audit import service as audit
from connector.audit.domain import Actor, changed
from connector.infra import db
from connector.infra.errors import FieldError, NotFound
from connector.infra.jobs.kinds import enqueue
from connector.maintenance import domain
from connector.maintenance.jobs import WINDOW_CHANGED, WindowChangedJob
from connector.maintenance.schemas import WindowIn, WindowOut
from connector.models import Connection, MaintenanceWindow


def to_domain(row: MaintenanceWindow) -> domain.Window:
    return domain.Window(
        timezone=row.timezone,
        kind=row.kind,
        start_local=datetime.fromisoformat(row.start_local) if row.start_local else None,
        end_local=datetime.fromisoformat(row.end_local) if row.end_local else None,
        weekdays=frozenset(int(d) for d in row.weekdays),
        start_time=time.fromisoformat(row.start_time) if row.start_time else None,
        duration=timedelta(minutes=row.duration_minutes),
    )


def out(row: MaintenanceWindow, now: datetime) -> WindowOut:
    answer = WindowOut.model_validate(row, from_attributes=True)
    answer.open_until = domain.open_until(to_domain(row), now) if row.enabled else None
    return answer


async def held_until(
    session: AsyncSession, tenant_id: str, rmm_connection_id: str, client_id: str, now: datetime
) -> datetime | None:
    """When the latest maintenance window open now for this client (or its whole tenant) ends."""
    rows = await session.scalars(
        db.tenant_rows(MaintenanceWindow, tenant_id).where(
            MaintenanceWindow.enabled.is_(True),
            or_(
                MaintenanceWindow.client_id.is_(None),
                and_(
                    MaintenanceWindow.rmm_connection_id == rmm_connection_id,
                    MaintenanceWindow.client_id == client_id,
                ),
            ),
        )
    )
    return domain.held_until([to_domain(row) for row in rows], now)


def _local(value: datetime | None, field: str) -> str | None:
    if value is None:
        return None
    if value.tzinfo is not None:
        raise FieldError(field, "a local time without an offset (the window's timezone applies)")
    return value.replace(second=0, microsecond=0).isoformat(timespec="seconds")


async def _apply(session: AsyncSession, tenant_id: str, row: MaintenanceWindow, body: WindowIn) -> None:
    if (body.rmm_connection_id is None) != (body.client_id is None):
        field = "client_id" if body.client_id is None else "rmm_connection_id"
        raise FieldError(field, "rmm_connection_id and client_id name one client together (or neither)")
    if body.rmm_connection_id is not None:
        connection = await session.scalar(
            db.tenant_rows(Connection, tenant_id).where(Connection.id == body.rmm_connection_id)
        )
        if connection is None or connection.role != "rmm":
            raise FieldError("rmm_connection_id", "no RMM connection with this id")
    start_local, end_local = _local(body.start_local, "start_local"), _local(body.end_local, "end_local")
    window = domain.Window(
        timezone=body.timezone,
        kind=body.kind,
        start_local=datetime.fromisoformat(start_local) if start_local else None,
        end_local=datetime.fromisoformat(end_local) if end_local else None,
        weekdays=frozenset(body.weekdays),
        start_time=time.fromisoformat(body.start_time) if body.start_time else None,
        duration=timedelta(minutes=body.duration_minutes),
    )
    try:
        domain.validate(window)
    except domain.WindowError as exc:
        raise FieldError(exc.field, str(exc)) from exc
    row.name, row.timezone, row.kind, row.enabled = body.name, body.timezone, body.kind, body.enabled
    row.rmm_connection_id, row.client_id = body.rmm_connection_id, body.client_id
    weekly = body.kind == domain.WEEKLY
    row.start_local = None if weekly else start_local
    row.end_local = None if weekly else end_local
    row.weekdays = sorted(set(body.weekdays)) if weekly else []
    row.start_time = body.start_time if weekly else None
    row.duration_minutes = body.duration_minutes if weekly else 0


def _values(row: MaintenanceWindow) -> dict[str, Any]:
    """What an audit entry keeps of a window: its settings, not its timestamps."""
    return WindowOut.model_validate(row, from_attributes=True).model_dump(
        mode="json", include=set(WindowIn.model_fields)
    )


def _audit(
    session: AsyncSession,
    row: MaintenanceWindow,
    verb: str,
    actor: Actor,
    before: dict[str, Any] | None,
    after: dict[str, Any] | None,
) -> None:
    audit.record_config(
        session,
        row.tenant_id,
        "maintenance_window",
        verb,
        actor,
        target_id=row.id,
        label=f"maintenance window {row.name!r}",
        before=before,
        after=after,
        connection_id=row.rmm_connection_id,
        client_id=row.client_id,
    )


async def create(session: AsyncSession, tenant_id: str, body: WindowIn, *, actor: Actor) -> MaintenanceWindow:
    row = MaintenanceWindow(tenant_id=tenant_id)
    await _apply(session, tenant_id, row, body)
    session.add(row)
    await session.flush()
    _audit(session, row, "created", actor, None, _values(row))
    return row


async def get(session: AsyncSession, tenant_id: str, window_id: str) -> MaintenanceWindow:
    row = await session.scalar(
        db.tenant_rows(MaintenanceWindow, tenant_id).where(MaintenanceWindow.id == window_id)
    )
    if row is None:
        raise NotFound("maintenance window")
    return row


async def update(
    session: AsyncSession, tenant_id: str, window_id: str, changes: dict[str, Any], *, actor: Actor
) -> MaintenanceWindow:
    """Merge the given fields into the stored ones, then validate the whole."""
    row = await get(session, tenant_id, window_id)
    before = _values(row)
    held = WindowChangedJob(rmm_connection_id=row.rmm_connection_id, client_id=row.client_id)
    current = WindowOut.model_validate(row, from_attributes=True).model_dump(
        include=set(WindowIn.model_fields)
    )
    try:
        body = WindowIn.model_validate({**current, **changes})
    except ValidationError as exc:
        errors = [
            {"field": ".".join(str(p) for p in e["loc"]) or "body", "message": e["msg"]} for e in exc.errors()
        ]
        raise FieldError.many(errors) from exc
    await _apply(session, tenant_id, row, body)
    await session.flush()
    old, new = changed(before, _values(row))
    if new:
        _audit(session, row, "updated", actor, old, new)
        await enqueue(session, WINDOW_CHANGED, held, tenant_id=tenant_id)
    return row


async def delete(session: AsyncSession, tenant_id: str, window_id: str, *, actor: Actor) -> None:
    row = await get(session, tenant_id, window_id)
    _audit(session, row, "deleted", actor, _values(row), None)
    held = WindowChangedJob(rmm_connection_id=row.rmm_connection_id, client_id=row.client_id)
    await enqueue(session, WINDOW_CHANGED, held, tenant_id=tenant_id)
    await session.delete(row)


async def list_rows(
    session: AsyncSession, tenant_id: str, *, limit: int, offset: int
) -> list[MaintenanceWindow]:
    rows = await session.scalars(
        db.tenant_rows(MaintenanceWindow, tenant_id)
        .order_by(MaintenanceWindow.created_at, MaintenanceWindow.id)
        .limit(limit)
        .offset(offset)
    )
    return list(rows)
