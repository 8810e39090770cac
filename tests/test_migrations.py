"""Migrations go up to head, all the way down to base and up again on SQLite and PostgreSQL, and the
schema they build is the one the models describe.

Each run gets its own database: a fresh SQLite file, or a fresh PostgreSQL schema (dropped afterwards)
in the `test` database, skipped cleanly when PostgreSQL is unreachable.
"""

from __future__ import annotations

import itertools
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect, text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from connector.infra import db
from connector.models import Base
from tests.conftest import _RAN, PG_URL, _postgres_reachable

MODEL_TABLES = frozenset(Base.metadata.tables)


@dataclass
class Target:
    url: str
    schema: str
    engine: AsyncEngine

    async def migrate(self, revision: str = "head") -> None:
        await db.migrate(self.url, revision, schema=self.schema)

    async def downgrade(self, revision: str = "base") -> None:
        await db.downgrade(self.url, revision, schema=self.schema)

    async def tables(self) -> set[str]:
        def names(conn: Connection) -> set[str]:
            return set(inspect(conn).get_table_names(schema=self.schema or None))

        async with self.engine.connect() as conn:
            return await conn.run_sync(names)

    async def snapshot(self) -> dict[str, tuple[list[str], list[str]]]:
        """table → (column names, index names): enough to see a downgrade leave something behind."""

        def describe(conn: Connection) -> dict[str, tuple[list[str], list[str]]]:
            inspector = inspect(conn)
            schema = self.schema or None
            return {
                table: (
                    sorted(c["name"] for c in inspector.get_columns(table, schema=schema)),
                    sorted(str(i["name"]) for i in inspector.get_indexes(table, schema=schema)),
                )
                for table in inspector.get_table_names(schema=schema)
                if table != "alembic_version"
            }

        async with self.engine.connect() as conn:
            return await conn.run_sync(describe)

    async def revisions(self) -> frozenset[str]:
        return await db.current_revisions(self.engine)


@pytest.fixture
def reachable_backend(backend: str) -> str:
    """`backend` (the conftest parameter), skipped when it is PostgreSQL and that is unreachable.
    Synchronous because the reachability probe runs its own event loop."""
    if backend == "postgresql":
        reason = _postgres_reachable()
        if reason is not None:
            pytest.skip(f"PostgreSQL unreachable at {PG_URL}: {reason}")
    _RAN[backend] += 1
    return backend


@pytest.fixture
async def target(reachable_backend: str, tmp_path: Path) -> AsyncIterator[Target]:
    """An empty database on the backend."""
    if reachable_backend == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path / 'migrations.db'}"
        engine = db.create_engine(url)
        yield Target(url, "", engine)
        await engine.dispose()
        return
    schema = f"connector_migrations_{uuid.uuid4().hex[:10]}"
    engine = db.create_engine(PG_URL, schema=schema)
    try:
        yield Target(PG_URL, schema, engine)
    finally:
        async with engine.begin() as conn:
            await conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        await engine.dispose()


def _revision_chain() -> list[str]:
    """Revisions from base to head (the history is linear)."""
    script = ScriptDirectory.from_config(db.alembic_config("sqlite://"))
    return [rev.revision for rev in reversed(list(script.walk_revisions()))]


async def test_upgrade_downgrade_upgrade(target: Target) -> None:
    await target.migrate()
    assert await target.revisions() == db.head_revisions()
    created = await target.tables()
    assert created >= MODEL_TABLES, f"tables missing after upgrade: {sorted(MODEL_TABLES - created)}"
    assert created - MODEL_TABLES == {"alembic_version"}

    await target.downgrade()
    assert await target.revisions() == frozenset()
    assert await target.tables() <= {"alembic_version"}

    await target.migrate()
    assert await target.revisions() == db.head_revisions()
    assert await target.tables() >= MODEL_TABLES


async def test_every_revision_downgrades_and_upgrades_one_step(target: Target) -> None:
    chain = _revision_chain()
    assert len(db.head_revisions()) == 1, "the migration history has branched"
    assert chain[-1] in db.head_revisions()

    await target.migrate()
    schema_at: dict[str, dict[str, tuple[list[str], list[str]]]] = {chain[-1]: await target.snapshot()}
    for below in reversed(chain[:-1]):
        await target.downgrade("-1")
        assert await target.revisions() == {below}
        schema_at[below] = await target.snapshot()
    await target.downgrade("-1")
    assert await target.revisions() == frozenset()
    assert await target.snapshot() == {}
    # going up again one step at a time rebuilds exactly what each downgrade left
    for revision in chain:
        await target.migrate("+1")
        assert await target.revisions() == {revision}
        assert await target.snapshot() == schema_at[revision]
    for lower, upper in itertools.pairwise(chain):
        assert schema_at[lower] != schema_at[upper], f"{upper} changes nothing over {lower}"


async def test_migrated_schema_matches_the_models(target: Target) -> None:
    """What `alembic revision --autogenerate` would emit now: nothing, or a migration is missing."""
    await target.migrate()

    def differences(conn: Connection) -> list[Any]:
        context = MigrationContext.configure(connection=conn, opts={"compare_type": True})
        return list(compare_metadata(context, Base.metadata))

    async with target.engine.connect() as conn:
        diff = await conn.run_sync(differences)
    assert diff == []
