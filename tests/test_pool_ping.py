"""PostgreSQL connections are pinged before use only when they sat idle: a connection returned a
moment ago is handed out as it is (no three-round-trip ping per short transaction), and one that
sat idle and died meanwhile (the server restarted, a proxy dropped it) is replaced without the
caller seeing an error."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from connector.infra import db
from tests.conftest import PG_URL, _postgres_reachable


@pytest.fixture
def postgres() -> str:
    if (reason := _postgres_reachable()) is not None:
        pytest.skip(f"PostgreSQL unreachable at {PG_URL}: {reason}")
    return PG_URL


@pytest.fixture
async def engine(postgres: str, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[AsyncEngine]:
    monkeypatch.setattr(db, "PING_AFTER_IDLE_SECONDS", 0.3)
    engine = db.create_engine(PG_URL, pool_size=1)
    try:
        yield engine
    finally:
        await engine.dispose()


def _count_pings(engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    pings: list[int] = []
    dialect = engine.sync_engine.dialect
    real = dialect.do_ping

    def counted(dbapi_connection: Any) -> bool:
        pings.append(1)
        return bool(real(dbapi_connection))

    monkeypatch.setattr(dialect, "do_ping", counted)
    return pings


async def _backend_pid(engine: AsyncEngine) -> int:
    async with engine.connect() as conn:
        return int((await conn.execute(text("SELECT pg_backend_pid()"))).scalar_one())


async def test_a_connection_back_a_moment_ago_is_not_pinged(
    engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    pings = _count_pings(engine, monkeypatch)
    first = await _backend_pid(engine)  # a new connection: not pinged either
    again = [await _backend_pid(engine) for _ in range(5)]
    assert again == [first] * 5 and pings == []
    await asyncio.sleep(0.5)
    assert await _backend_pid(engine) == first
    assert len(pings) == 1  # idle past the threshold: pinged once, and it answered


async def test_an_idle_connection_that_died_is_replaced_unseen(engine: AsyncEngine) -> None:
    before = await _backend_pid(engine)
    other = db.create_engine(PG_URL, pool_size=1)
    try:
        async with other.connect() as conn:
            await conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": before})
    finally:
        await other.dispose()
    await asyncio.sleep(0.5)
    after = await _backend_pid(engine)  # no error: the ping failed and the pool connected afresh
    assert after != before
