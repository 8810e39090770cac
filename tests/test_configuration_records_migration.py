"""Migration 0019 clears every endpoint's written-fields fingerprint, so the next sync writes each
configuration once more and keeps the record it wrote for the endpoint's tickets. On SQLite and
PostgreSQL."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import column, insert, select, table, text
from sqlalchemy.ext.asyncio import AsyncEngine

from connector.infra import db
from connector.models import Connection, Endpoint, Tenant
from tests.conftest import _RAN, PG_URL, _postgres_reachable

# The endpoints table as revision 0018 has it: the model's later columns do not exist yet.
ENDPOINTS_AT_0018 = table(
    "endpoints",
    *(
        column(name)
        for name in (
            "id",
            "tenant_id",
            "rmm_connection_id",
            "endpoint_id",
            "client_id",
            "hostname",
            "health",
            "fingerprint",
            "pushed_fields_fingerprint",
            "first_seen_at",
            "updated_at",
        )
    ),
)


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
async def at_0018(reachable_backend: str, tmp_path: Path) -> AsyncIterator[tuple[str, str, AsyncEngine]]:
    url, schema = (
        (f"sqlite+aiosqlite:///{tmp_path / 'm.db'}", "")
        if reachable_backend == "sqlite"
        else (PG_URL, f"connector_m0019_{uuid.uuid4().hex[:10]}")
    )
    await db.migrate(url, "0018", schema=schema)
    engine = db.create_engine(url, schema=schema)
    try:
        yield url, schema, engine
    finally:
        if schema:
            async with engine.begin() as conn:
                await conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        await engine.dispose()


async def test_every_endpoint_is_written_once_more_after_the_upgrade(
    at_0018: tuple[str, str, AsyncEngine],
) -> None:
    url, schema, engine = at_0018
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
        for n, fingerprint in enumerate(["abc", None]):
            await conn.execute(
                insert(ENDPOINTS_AT_0018).values(
                    id=f"e{n}",
                    tenant_id="t",
                    rmm_connection_id="rmm",
                    endpoint_id=f"ep-{n}",
                    client_id="c",
                    hostname=f"PC-{n}",
                    health="unprotected",
                    fingerprint="",
                    pushed_fields_fingerprint=fingerprint,
                    first_seen_at=datetime.now(UTC),
                    updated_at=datetime.now(UTC),
                )
            )
    await db.migrate(url, "head", schema=schema)
    async with engine.connect() as conn:
        left = set(await conn.scalars(select(Endpoint.pushed_fields_fingerprint)))
    assert left == {None}
