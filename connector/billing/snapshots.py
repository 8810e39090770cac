"""What a closed period billed, frozen at the close: each line with its quantity, the quantity last
pushed, and the devices behind it, so a client can be shown exactly which devices it paid for even
after they changed or retired.

The snapshot is written in the close's own transaction (all of it or none) and only by the first
close; the unique keys refuse a second copy if two closes race.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from connector.audit.domain import Actor
from connector.billing import domain, statement, trace
from connector.billing.service import CONSOLE_SEATS, build_preview, close_period
from connector.infra import db
from connector.models import (
    BillingPeriod,
    BillingSnapshotDevice,
    BillingSnapshotLine,
    ClientMapping,
    ConsoleAgent,
    Endpoint,
    new_id,
)
from connector.tenants.service import get_currency

ENDPOINT, CONSOLE_AGENT = "endpoint", "console_agent"


async def close(session: AsyncSession, tenant_id: str, period: str, *, actor: Actor) -> BillingPeriod:
    """Close the period; the first close also freezes its snapshot, in the same transaction."""
    first_close = not await closed(session, tenant_id, period)
    row = await close_period(session, tenant_id, period, actor=actor)
    if first_close:
        await take(session, tenant_id, period)
    return row


async def take(session: AsyncSession, tenant_id: str, period: str) -> list[BillingSnapshotLine]:
    """Freeze the period's lines and their devices into the session (the caller commits)."""
    first, last = domain.parse_period(period)
    preview = await build_preview(session, tenant_id, period)
    mappings = {
        (m.rmm_connection_id, m.rmm_client_id, m.psa_connection_id): m
        for m in await session.scalars(db.tenant_rows(ClientMapping, tenant_id))
    }
    endpoints = agents = None
    rows: list[BillingSnapshotLine] = []
    behind: list[tuple[str, trace.Counted]] = []
    for item in preview.lines:
        line, rule = item.line, item.rule
        console = rule.count_scope == CONSOLE_SEATS
        if console:
            agents = agents if agents is not None else await _agents(session, tenant_id)
            devices = agents
        else:
            endpoints = endpoints if endpoints is not None else await _endpoints(session, tenant_id)
            devices = endpoints
        clients = trace.owners(rule, line.company_id, mappings)
        start, end = trace.period_bounds(
            *domain.counted_window(domain.model_of(rule).billing_timing, first, last)
        )
        row = BillingSnapshotLine(
            id=new_id(),
            tenant_id=tenant_id,
            period=period,
            rule_id=line.rule_id,
            company_id=line.company_id,
            company_name=line.company_name,
            product=line.product,
            source=CONSOLE_AGENT if console else ENDPOINT,
            quantity=line.quantity,
            billed_quantity=line.prorated,
            pushed_quantity=None if item.pushed is None else item.pushed.quantity,
            unit_price=line.unit_price,
            unit_cost=line.unit_cost,
        )
        session.add(row)
        rows.append(row)
        behind.extend((row.id, device) for device in trace.counted(rule, clients, devices, start, end))
    await session.flush()  # the lines first: no ORM relationship orders the inserts
    session.add_all(
        BillingSnapshotDevice(
            tenant_id=tenant_id,
            line_id=line_id,
            device_id=device.device_id,
            hostname=device.hostname,
            serial_number=device.serial_number,
            first_seen_at=device.first_seen_at,
            last_seen_at=device.last_seen_at,
        )
        for line_id, device in behind
    )
    await session.flush()
    return rows


async def _endpoints(session: AsyncSession, tenant_id: str) -> list[trace.Device]:
    rows = await session.scalars(db.tenant_rows(Endpoint, tenant_id))
    return [
        trace.Device(
            e.id,
            e.rmm_connection_id,
            e.client_id,
            e.hostname,
            e.serial_number,
            e.product,
            e.protection_enabled,
            e.first_seen_at,
            e.last_seen_at,
            e.retired_at,
            domain.device_category(e.device_type, e.os_name),
        )
        for e in rows
    ]


async def _agents(session: AsyncSession, tenant_id: str) -> list[trace.Device]:
    rows = await session.scalars(db.tenant_rows(ConsoleAgent, tenant_id))
    return [
        trace.Device(
            a.id,
            a.connection_id,
            a.customer_id,
            a.hostname,
            a.serial_number,
            a.product,
            a.protection_enabled,
            a.first_seen_at,
            a.last_seen_at,
            a.retired_at,
        )
        for a in rows
    ]


async def closed(session: AsyncSession, tenant_id: str, period: str) -> bool:
    return await session.get(BillingPeriod, (tenant_id, period)) is not None


async def lines(
    session: AsyncSession, tenant_id: str, period: str, company_id: str | None = None
) -> list[BillingSnapshotLine]:
    query = db.tenant_rows(BillingSnapshotLine, tenant_id).where(BillingSnapshotLine.period == period)
    if company_id is not None:
        query = query.where(BillingSnapshotLine.company_id == company_id)
    return list(
        await session.scalars(query.order_by(BillingSnapshotLine.company_id, BillingSnapshotLine.product))
    )


async def line(
    session: AsyncSession, tenant_id: str, period: str, line_id: str
) -> BillingSnapshotLine | None:
    row: BillingSnapshotLine | None = await session.scalar(
        db.tenant_rows(BillingSnapshotLine, tenant_id).where(
            BillingSnapshotLine.period == period, BillingSnapshotLine.id == line_id
        )
    )
    return row


async def devices(
    session: AsyncSession, tenant_id: str, line_ids: list[str]
) -> dict[str, list[trace.Counted]]:
    """Per line id, its devices by hostname."""
    found: dict[str, list[trace.Counted]] = defaultdict(list)
    if not line_ids:
        return found
    rows = await session.scalars(
        db.tenant_rows(BillingSnapshotDevice, tenant_id)
        .where(BillingSnapshotDevice.line_id.in_(line_ids))
        .order_by(BillingSnapshotDevice.hostname, BillingSnapshotDevice.device_id)
    )
    for row in rows:
        found[row.line_id].append(
            trace.Counted(row.device_id, row.hostname, row.serial_number, row.first_seen_at, row.last_seen_at)
        )
    return found


@dataclass
class Changes:
    period: str
    previous_period: str | None
    company_id: str
    products: list[trace.ProductChange]


async def changes(session: AsyncSession, tenant_id: str, period: str, company_id: str) -> Changes:
    """A company's devices added and removed against the closed period before this one (all added
    when there is none)."""
    previous_period = await session.scalar(
        db.scoped(select(BillingPeriod.period), BillingPeriod, tenant_id)
        .where(BillingPeriod.period < period)
        .order_by(BillingPeriod.period.desc())
        .limit(1)
    )
    now = await _by_product(session, tenant_id, period, company_id)
    before = (
        {} if previous_period is None else await _by_product(session, tenant_id, previous_period, company_id)
    )
    return Changes(period, previous_period, company_id, trace.changes(before, now))


async def _by_product(
    session: AsyncSession, tenant_id: str, period: str, company_id: str
) -> dict[str, list[trace.Counted]]:
    rows = await lines(session, tenant_id, period, company_id)
    listed = await devices(session, tenant_id, [row.id for row in rows])
    by_product: dict[str, list[trace.Counted]] = defaultdict(list)
    for row in rows:
        by_product[row.product].extend(listed.get(row.id, []))
    return by_product


async def statement_for(
    session: AsyncSession, tenant_id: str, period: str, company_id: str
) -> statement.Statement | None:
    """The company's statement from the period's snapshot (None: not closed, or nothing billed), in
    the tenant's currency."""
    if not await closed(session, tenant_id, period):
        return None
    rows = await lines(session, tenant_id, period, company_id)
    if not rows:
        return None
    money_in = await get_currency(session, tenant_id)
    return statement.Statement(
        period,
        company_id,
        next((row.company_name for row in rows if row.company_name), None),
        [statement.StatementLine(row.product, billed(row), row.unit_price) for row in rows],
        currency=money_in.currency,
        locale=money_in.locale,
    )


def billed(row: BillingSnapshotLine) -> Decimal:
    """The quantity the line priced: a prorated line's exact one, else its whole seats."""
    return Decimal(row.quantity) if row.billed_quantity is None else Decimal(row.billed_quantity)


async def billed_companies(
    session: AsyncSession, tenant_id: str, period: str
) -> list[tuple[str, str | None]]:
    """(company id, name) of every company the closed period billed, for links to statements."""
    found: dict[str, str | None] = {}
    for row in await lines(session, tenant_id, period):
        found[row.company_id] = found.get(row.company_id) or row.company_name
    return sorted(found.items(), key=lambda item: ((item[1] or item[0]).lower(), item[0]))
