"""Seats each security console customer uses, per product and day: the count the vendor invoices
the MSP for, recorded like RMM usage so billing rules can count from it (`scope: console_seats`)
and the reconciliation can put it beside the RMM's count and the PSA's quantity."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from adapters.base import LicenceUse
from connector.models import LicenceDaily


async def record_licence_use(
    session: AsyncSession, *, tenant_id: str, connection_id: str, uses: Sequence[LicenceUse], day: date
) -> int:
    """Today's seats per customer and product (`last_used` overwritten, `peak_used` only grows);
    a product the console stopped reporting today drops to 0 in use. Returns rows written."""
    key_day = day.isoformat()
    existing = {
        (row.customer_id, row.product): row
        for row in await session.scalars(
            select(LicenceDaily).where(
                LicenceDaily.connection_id == connection_id, LicenceDaily.day == key_day
            )
        )
    }
    totals: dict[tuple[str, str], LicenceUse] = {}
    for use in uses:  # one row per customer and product: SKUs of one product add up
        key = (use.customer_id, use.product)
        earlier = totals.get(key)
        if earlier is None:
            totals[key] = use
            continue
        purchased = (
            None
            if earlier.seats_purchased is None or use.seats_purchased is None
            else earlier.seats_purchased + use.seats_purchased
        )
        totals[key] = earlier.model_copy(
            update={"seats_used": earlier.seats_used + use.seats_used, "seats_purchased": purchased}
        )
    for key, use in totals.items():
        row = existing.pop(key, None)
        if row is None:
            session.add(
                LicenceDaily(
                    tenant_id=tenant_id,
                    connection_id=connection_id,
                    customer_id=use.customer_id,
                    product=use.product,
                    sku=use.sku,
                    day=key_day,
                    peak_used=use.seats_used,
                    last_used=use.seats_used,
                    purchased=use.seats_purchased,
                )
            )
        else:
            row.last_used, row.peak_used = use.seats_used, max(row.peak_used, use.seats_used)
            row.purchased, row.sku = use.seats_purchased, use.sku
    for row in existing.values():
        row.last_used = 0
    return len(totals)
