"""The driver-level delivery stores write what the SQLAlchemy path writes: the same stored values
(dates, statuses, bytes read back by the ORM and compared as the database holds them), one job per
tenant whose delivery ids keep the order received, and the ids of earlier rows for redeliveries."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select, text

from adapters.base import WebhookRequest
from connector.alerts.delivery_store import (
    CoreDeliveryStore,
    DeliveryStore,
    PostgresDeliveryStore,
    SqliteDeliveryStore,
    store_for,
)
from connector.alerts.ingest import delivery_values
from connector.alerts.jobs import DELIVERIES
from connector.infra import db
from connector.infra.context import Services
from connector.models import Delivery, Job, new_id
from connector.statuses import DeliveryStatus, JobStatus
from tests.support.deliveries import delivery_owner


def _row(owner: tuple[str, str], event_id: str, *, status: str = DeliveryStatus.QUEUED) -> dict[str, Any]:
    request = WebhookRequest(
        body=f'{{"event_id": "{event_id}"}}'.encode(),
        headers={"content-type": "application/json", "user-agent": "rmm/1.0"},
        received_at=datetime(2026, 12, 4, 9, 30, 15, 123456, tzinfo=UTC) + timedelta(seconds=len(event_id)),
    )
    values = delivery_values(owner, request, status=status, source_ip="10.0.0.7", rejection=None)
    values["dedupe_key"] = f"e:{event_id}" if status == DeliveryStatus.QUEUED else None
    values["event_count"] = 1
    return values


def _driver_store(services: Services) -> DeliveryStore:
    store = store_for(services.engine, sqlite_busy_seconds=5)
    expected = PostgresDeliveryStore if services.engine.dialect.name == "postgresql" else SqliteDeliveryStore
    assert isinstance(store, expected)
    return store


async def _stored(services: Services, ids: list[str]) -> dict[str, dict[str, Any]]:
    """The rows as the database holds them (no ORM conversion), by id."""
    async with services.engine.connect() as conn:
        result = await conn.execute(text("SELECT * FROM deliveries"))
        rows = [dict(row._mapping) for row in result]
    return {row["id"]: row for row in rows if row["id"] in ids}


async def test_the_driver_store_stores_what_the_core_store_stores(services: Services) -> None:
    owner = await delivery_owner(services)
    driver, core = _driver_store(services), CoreDeliveryStore(services.engine)
    by_driver = [_row(owner, "d-1"), _row(owner, "d-2", status=DeliveryStatus.REJECTED)]
    by_core = [_row(owner, "c-1"), _row(owner, "c-2", status=DeliveryStatus.REJECTED)]
    try:
        await driver.write(by_driver)
        await core.write(by_core)
    finally:
        await driver.close()
    stored = await _stored(services, [r["id"] for r in by_driver + by_core])
    for mine, theirs in zip(by_driver, by_core, strict=True):
        a, b = stored[mine["id"]], stored[theirs["id"]]
        differing = {"id", "dedupe_key", "body", "body_sha256", "received_at"}
        assert {k: v for k, v in a.items() if k not in differing} == {
            k: v for k, v in b.items() if k not in differing
        }
        # The same representation of a date (SQLite keeps text), shifted by the rows' own offset.
        assert type(a["received_at"]) is type(b["received_at"])
        assert len(str(a["received_at"])) == len(str(b["received_at"]))
    async with services.sessions() as session:
        read = {d.id: d for d in (await session.scalars(select(Delivery))).all()}
    for values in by_driver:
        delivery = read[values["id"]]
        assert delivery.received_at == values["received_at"]
        assert delivery.status == values["status"] and delivery.body == values["body"]
        assert (delivery.content_type, delivery.source_ip, delivery.size) == (
            "application/json",
            "10.0.0.7",
            len(values["body"] or b"") if values["status"] == DeliveryStatus.QUEUED else values["size"],
        )


async def test_one_job_per_tenant_keeps_the_order_received_and_redeliveries_find_their_row(
    services: Services,
) -> None:
    first, second = await delivery_owner(services), await delivery_owner(services)
    store = _driver_store(services)
    try:
        earlier = _row(first, "seen-before")
        await store.write([earlier])
        rows = [_row(first if n % 3 else second, f"e-{n:03d}") for n in range(60)]
        again = {**_row(first, "seen-before"), "id": new_id()}
        refused = _row(first, "refused", status=DeliveryStatus.REJECTED)
        written = await store.write([*rows[:30], again, refused, *rows[30:]])
    finally:
        await store.close()
    assert written.inserted == {r["id"] for r in rows} | {refused["id"]}
    assert written.known == {(first[0], "e:seen-before"): earlier["id"]}
    async with services.sessions() as session:
        jobs = list((await session.scalars(select(Job).order_by(Job.id))).all())
    assert [job.kind for job in jobs] == [DELIVERIES.name] * 3  # the earlier write's, then one per tenant
    by_tenant = {job.tenant_id: job for job in jobs[1:]}
    for owner in (first, second):
        job = by_tenant[owner[1]]
        assert job.payload == {"delivery_ids": [r["id"] for r in rows if r["tenant_id"] == owner[1]]}
        assert job.status == JobStatus.QUEUED and job.priority == DELIVERIES.priority
        assert job.max_attempts == DELIVERIES.max_attempts and job.attempts == 0
        assert job.run_after is not None and job.run_after.tzinfo is not None


async def test_the_postgresql_store_replaces_its_held_connection_after_the_server_dropped_it(
    services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    if services.engine.dialect.name != "postgresql":
        pytest.skip("the held connection is PostgreSQL's")
    monkeypatch.setattr(db, "PING_AFTER_IDLE_SECONDS", 0.3)
    owner = await delivery_owner(services)
    store = _driver_store(services)
    try:
        await store.write([_row(owner, "before")])
        assert isinstance(store, PostgresDeliveryStore)
        held = await (await store._connection()).fetchval("SELECT pg_backend_pid()")
        async with services.engine.connect() as conn:  # the server ends the store's session
            await conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": held})
        await asyncio.sleep(0.5)
        after = _row(owner, "after")
        written = await store.write([after])  # pinged, found dead, replaced: no error
    finally:
        await store.close()
    assert written.inserted == {after["id"]}
