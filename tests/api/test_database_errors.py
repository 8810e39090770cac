"""Database errors are answered truthfully: a webhook batch past its deadline fails its requests at
once and the writer goes on, and unreachable/slow is told apart from faulty (503 vs 500)."""

from __future__ import annotations

import asyncio
import sqlite3
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import exc as sa_exc
from sqlalchemy import select

from adapters.base import WebhookRequest
from connector.alerts.ingest import DeliveryWriter, delivery_values
from connector.infra.db import DatabaseUnavailable, is_unavailable
from connector.models import Connection, Delivery
from tests.api.world import rmm_body


def _rejected(connection: dict[str, Any], tenant_id: str) -> dict[str, Any]:
    request = WebhookRequest(body=b"{}", headers={}, received_at=datetime.now(UTC))
    return delivery_values(
        (connection["id"], tenant_id), request, status="rejected", source_ip=None, rejection="401 test"
    )


async def test_a_batch_past_its_deadline_fails_at_once_and_the_writer_goes_on(
    client: Any, services: Any, make_key: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    headers = await make_key("engineer")
    connection = (await client.post("/api/v1/connections", json=rmm_body(), headers=headers)).json()
    async with services.sessions() as session:
        tenant_id = await session.scalar(
            select(Connection.tenant_id).where(Connection.id == connection["id"])
        )
    writer = DeliveryWriter(services, deadline=0.2)
    real_write = writer._write
    calls = 0

    async def first_batch_never_answers(batch: list[Any]) -> list[tuple[str, bool]]:
        nonlocal calls
        calls += 1
        if calls == 1:
            await asyncio.Event().wait()  # a database that accepted the statement and went silent
        return await real_write(batch)

    monkeypatch.setattr(writer, "_write", first_batch_never_answers)
    try:
        with pytest.raises(DatabaseUnavailable):
            await asyncio.wait_for(writer.submit(_rejected(connection, tenant_id)), 30)
        delivery_id, duplicate = await asyncio.wait_for(writer.submit(_rejected(connection, tenant_id)), 30)
    finally:
        await writer.stop()
    assert not duplicate
    async with services.sessions() as session:
        stored = await session.scalars(select(Delivery.id).where(Delivery.connection_id == connection["id"]))
        assert list(stored) == [delivery_id]


class _Orig(Exception):
    def __init__(self, sqlstate: str) -> None:
        super().__init__(sqlstate)
        self.sqlstate = sqlstate


def _dbapi(orig: BaseException, *, invalidated: bool = False) -> sa_exc.DBAPIError:
    return sa_exc.OperationalError("SELECT 1", {}, orig, connection_invalidated=invalidated)


def _sqlite(message: str, code: int) -> sqlite3.OperationalError:
    error = sqlite3.OperationalError(message)
    error.sqlite_errorcode = code
    return error


@pytest.mark.parametrize(
    ("error", "unavailable"),
    [
        (TimeoutError(), True),
        (ConnectionRefusedError(111, "refused"), True),
        (OSError("Multiple exceptions: [Errno 111] Connect call failed"), True),
        (sa_exc.TimeoutError("QueuePool limit reached"), True),
        (_dbapi(Exception("connection is closed"), invalidated=True), True),
        (_dbapi(_Orig("57P03")), True),  # cannot connect now (starting up, shutting down)
        (_dbapi(_Orig("53300")), True),  # too many connections
        (_dbapi(_sqlite("database is locked", 5)), True),
        (DatabaseUnavailable("batch too slow"), True),
        (_dbapi(_Orig("23505")), False),  # unique violation: a fault, not an outage
        (_dbapi(_sqlite("no such table: x", 1)), False),
        (FileNotFoundError("template"), False),
        (ValueError("bad"), False),
    ],
)
def test_unavailable_is_told_apart_from_faulty(error: BaseException, unavailable: bool) -> None:
    assert is_unavailable(error) is unavailable


def test_a_wrapped_timeout_is_unavailable() -> None:
    try:
        try:
            raise TimeoutError
        except TimeoutError as inner:
            raise RuntimeError("while committing") from inner
    except RuntimeError as outer:
        assert is_unavailable(outer)
