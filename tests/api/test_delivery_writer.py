"""The webhook writer commits deliveries in shared batches: a row the database refuses must fail
alone (the rest of its batch still commits), while an unavailable database fails the batch at once
without writing rows apart. Rows are handed to the writer directly, past the parsers' checks, as a
value nobody thought of yet would reach it."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import OperationalError

from adapters.base import WebhookRequest
from connector.alerts.ingest import DeliveryWriter, delivery_values, refused_row
from connector.infra.context import Services
from connector.models import Delivery, Job
from tests.support.deliveries import delivery_owner


def _values(owner: tuple[str, str], event_id: str, **overrides: Any) -> dict[str, Any]:
    request = WebhookRequest(body=b"{}", headers={}, received_at=datetime.now(UTC))
    values = delivery_values(owner, request, status="queued", source_ip="127.0.0.1")
    values["dedupe_key"] = f"e:{event_id}"
    values.update(overrides)
    return values


async def _stored(services: Services) -> int:
    async with services.sessions() as session:
        return int(await session.scalar(select(func.count()).select_from(Delivery)) or 0)


POISON = {
    "a lone surrogate in a key": {"dedupe_key": "e:\ud800"},
    "a size beyond 64 bits": {"size": 2**64},
    "an unknown connection": {"connection_id": "no-such-connection"},
}


@pytest.mark.parametrize("poison", list(POISON))
async def test_a_row_the_database_refuses_fails_alone_and_its_batch_commits(
    services: Services, poison: str
) -> None:
    owner = await delivery_owner(services)
    writer = DeliveryWriter(services)
    try:
        good = [_values(owner, f"good-{n}") for n in range(40)]
        bad = _values(owner, "bad", **POISON[poison])
        rows = [*good[:17], bad, *good[17:]]
        # Submitted together, they are queued before the writer runs: one batch.
        results = await asyncio.gather(*(writer.submit(v) for v in rows), return_exceptions=True)
    finally:
        await writer.stop()
    assert isinstance(results[17], Exception)
    others = results[:17] + results[18:]
    assert [r for r in others if isinstance(r, BaseException)] == []
    assert [r for r in others if not isinstance(r, BaseException)] == [(v["id"], False) for v in good]
    assert await _stored(services) == 40
    async with services.sessions() as session:
        jobs = list((await session.scalars(select(Job))).all())
    assert sorted(i for job in jobs for i in job.payload["delivery_ids"]) == sorted(v["id"] for v in good)


async def test_a_nul_in_a_text_column_fails_alone_on_postgresql(services: Services) -> None:
    owner = await delivery_owner(services)
    writer = DeliveryWriter(services)
    try:
        rows = [_values(owner, "a"), _values(owner, "b", user_agent="x\x00y"), _values(owner, "c")]
        results = await asyncio.gather(*(writer.submit(v) for v in rows), return_exceptions=True)
    finally:
        await writer.stop()
    assert not isinstance(results[0], BaseException) and not isinstance(results[2], BaseException)
    # SQLite stores a NUL; PostgreSQL refuses it, and only that row fails.
    assert isinstance(results[1], Exception) == (services.engine.dialect.name == "postgresql")


async def test_redeliveries_split_from_their_first_delivery_still_answer_its_id(services: Services) -> None:
    owner = await delivery_owner(services)
    writer = DeliveryWriter(services)
    try:
        first = _values(owner, "same")
        again = [_values(owner, "same") for _ in range(5)]
        rows = [first, _values(owner, "x", size=2**64), *again]
        results = await asyncio.gather(*(writer.submit(v) for v in rows), return_exceptions=True)
    finally:
        await writer.stop()
    assert results[0] == (first["id"], False)
    assert results[2:] == [(first["id"], True)] * 5
    assert await _stored(services) == 1


async def test_an_unavailable_database_fails_the_batch_without_writing_rows_apart(
    services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    owner = await delivery_owner(services)
    writer = DeliveryWriter(services)
    calls: list[int] = []

    async def unavailable(batch: list[Any]) -> list[tuple[str, bool]]:
        calls.append(len(batch))
        raise OperationalError("INSERT ...", {}, ConnectionRefusedError("connection refused"))

    monkeypatch.setattr(writer, "_write", unavailable)
    try:
        results = await asyncio.gather(
            *(writer.submit(_values(owner, f"e-{n}")) for n in range(20)), return_exceptions=True
        )
    finally:
        await writer.stop()
    assert all(isinstance(r, OperationalError) for r in results)
    assert calls == [20]


def test_refused_rows_are_told_from_an_unavailable_database() -> None:
    assert refused_row(UnicodeEncodeError("utf-8", "\ud800", 0, 1, "surrogates not allowed"))
    assert refused_row(OverflowError("Python int too large to convert to SQLite INTEGER"))
    assert not refused_row(OperationalError("SELECT 1", {}, Exception("database is locked")))
    assert not refused_row(ConnectionRefusedError("connection refused"))
    assert not refused_row(TimeoutError())
