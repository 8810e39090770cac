"""Migration 0004 records, for problems that exist already, the newest event their episodes show: an
open episode is active since it was last seen, else the latest clear. On SQLite and PostgreSQL."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import insert, select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from connector.infra import db
from connector.models import Connection, Problem, ProblemState, Tenant
from tests.conftest import _RAN, PG_URL, _postgres_reachable


@pytest.fixture
def reachable_backend(backend: str) -> str:
    """Synchronous: the reachability probe runs its own event loop."""
    if backend == "postgresql":
        reason = _postgres_reachable()
        if reason is not None:
            pytest.skip(f"PostgreSQL unreachable at {PG_URL}: {reason}")
    _RAN[backend] += 1
    return backend


@pytest.fixture
async def at_0003(reachable_backend: str, tmp_path: Path) -> AsyncIterator[tuple[str, str, AsyncEngine]]:
    """(url, schema, engine) of a database migrated to 0003."""
    url, schema = (
        (f"sqlite+aiosqlite:///{tmp_path / 'm.db'}", "")
        if reachable_backend == "sqlite"
        else (PG_URL, f"connector_m0004_{uuid.uuid4().hex[:10]}")
    )
    await db.migrate(url, "0003", schema=schema)
    engine = db.create_engine(url, schema=schema)
    try:
        yield url, schema, engine
    finally:
        if schema:
            async with engine.begin() as conn:
                await conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        await engine.dispose()


def _at(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 11, day, hour, minute, tzinfo=UTC)


async def test_existing_problems_get_their_newest_event_recorded(
    at_0003: tuple[str, str, AsyncEngine],
) -> None:
    url, schema, engine = at_0003
    episodes = [
        # ep-1: an episode that cleared, then one still open
        ("ep-1", "cleared", _at(2, 10), _at(2, 11), _at(2, 12)),
        ("ep-1", "open", _at(3, 10), _at(3, 11), None),
        # ep-2: two cleared episodes
        ("ep-2", "cleared", _at(2, 10), _at(2, 10), _at(2, 10, 30)),
        ("ep-2", "cleared", _at(4, 10), _at(4, 10), _at(4, 10, 30)),
    ]
    async with engine.begin() as conn:
        await conn.execute(insert(Tenant).values(id="t", name="t", settings={}))
        await conn.execute(
            insert(Connection).values(
                id="rmm",
                tenant_id="t",
                name="rmm",
                kind="x",
                role="rmm",
                base_url="https://rmm.example.com",
                credentials_encrypted=b"",
                options={},
                enabled=True,
            )
        )
        for n, (endpoint_id, state, first, last, cleared) in enumerate(episodes):
            await conn.execute(
                insert(Problem).values(
                    id=f"p{n}",
                    tenant_id="t",
                    rmm_connection_id="rmm",
                    endpoint_id=endpoint_id,
                    client_id="c",
                    kind="threat_detected",
                    source="alert",
                    state=state,
                    routing="ticketed",
                    message="",
                    occurrences=1,
                    noted_occurrences=1,
                    first_seen_at=first,
                    last_seen_at=last,
                    cleared_at=cleared,
                )
            )

    await db.migrate(url, "0004", schema=schema)

    async with engine.connect() as conn:
        rows = (await conn.execute(select(ProblemState).order_by(ProblemState.endpoint_id))).all()
    assert [(r.endpoint_id, r.kind, r.tenant_id, r.state, r.event_at) for r in rows] == [
        ("ep-1", "threat_detected", "t", "active", _at(3, 11)),
        ("ep-2", "threat_detected", "t", "cleared", _at(4, 10, 30)),
    ]
