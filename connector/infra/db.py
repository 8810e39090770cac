"""Engine, sessions and migrations for SQLite (embedded default) and PostgreSQL.

SQLite runs in WAL mode with `synchronous=FULL`: "202 means stored" must survive a power loss, and
WAL with NORMAL can drop the last commits. Foreign keys are enforced on both backends.

Every wait on the database is bounded (`Timeouts`): a database that refuses connections or accepts
them and never answers must turn into a quick "unavailable" (`is_unavailable`), not a request that
hangs for a minute while others queue behind it.
"""

from __future__ import annotations

import asyncio
import functools
import socket
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar, cast

from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from asyncpg.exceptions import ConnectionDoesNotExistError  # type: ignore[import-untyped]
from filelock import FileLock
from filelock import Timeout as FileLockTimeout
from sqlalchemy import ColumnElement, CursorResult, Delete, Result, Select, Table, Update, event, select, text
from sqlalchemy import exc as sa_exc
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

import migrations
from connector.infra.logs import get_logger
from connector.models import Base

log = get_logger("connector.db")

MIGRATIONS_DIR = Path(migrations.__file__).parent


def is_sqlite(url: str) -> bool:
    return url.startswith("sqlite")


@dataclass(frozen=True)
class Timeouts:
    """How long one use of the database may wait, in seconds (None: the driver's default, i.e.
    no limit on statements). `statement` is enforced by the client (asyncpg's `command_timeout`),
    so it also ends a statement sent to a server that stalled; on SQLite it bounds the wait for
    the write lock (`busy_timeout`)."""

    connect: float | None = None
    statement: float | None = None
    pool: float | None = None


SQLITE_DEFAULT_BUSY_SECONDS = 10.0


def apply_sqlite_pragmas(dbapi_connection: Any, busy_seconds: float) -> None:
    """The pragmas every connection to the SQLite file runs with (the engine's, and the webhook
    writer's own connection)."""
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute(f"PRAGMA busy_timeout={int(busy_seconds * 1000)}")
    cursor.close()


def _sqlite_pragmas(busy_seconds: float) -> Any:
    def apply(dbapi_connection: Any, _record: Any) -> None:
        apply_sqlite_pragmas(dbapi_connection, busy_seconds)

    return apply


def create_engine(
    url: str, *, pool_size: int = 10, schema: str = "", timeouts: Timeouts = Timeouts()
) -> AsyncEngine:
    pool: dict[str, Any] = {} if timeouts.pool is None else {"pool_timeout": timeouts.pool}
    if is_sqlite(url):
        path = url.split(":///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        busy = timeouts.statement if timeouts.statement is not None else SQLITE_DEFAULT_BUSY_SECONDS
        engine = create_async_engine(url, connect_args={"timeout": busy}, **pool)
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas(busy))
        return engine
    connect_args: dict[str, Any] = {}
    if schema:
        connect_args["server_settings"] = {"search_path": schema}
    if timeouts.connect is not None:
        connect_args["timeout"] = timeouts.connect
    if timeouts.statement is not None:
        connect_args["command_timeout"] = timeouts.statement
    engine = create_async_engine(
        url, pool_size=pool_size, max_overflow=pool_size, connect_args=connect_args, **pool
    )
    _ping_when_idle(engine)
    return engine


PING_AFTER_IDLE_SECONDS = 1.0
"""A pooled PostgreSQL connection unused this long is pinged before it is handed out."""


def _ping_when_idle(engine: AsyncEngine) -> None:
    """SQLAlchemy's `pool_pre_ping`, for connections that were idle: its ping is three round trips
    (a transaction, `;`, a rollback) on every checkout, which for a worker that checks out a
    connection for each of its short transactions was about a tenth of its CPU. A connection
    returned less than `PING_AFTER_IDLE_SECONDS` ago was working then; should the server have gone
    since, its first statement fails as unavailable (503, or the job's retry) and SQLAlchemy
    invalidates the pool. A failed ping makes the pool connect afresh (`DisconnectionError`)."""
    sync_engine = engine.sync_engine

    def fresh(_dbapi_connection: Any, record: Any) -> None:
        record.info["idle_since"] = time.monotonic()

    def checked_out(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        idle_since = record.info.get("idle_since")
        if idle_since is not None and time.monotonic() - idle_since < PING_AFTER_IDLE_SECONDS:
            return
        try:
            sync_engine.dialect.do_ping(dbapi_connection)
        except Exception as exc:
            raise sa_exc.DisconnectionError(f"pooled connection failed its ping: {exc}") from exc

    event.listen(sync_engine, "connect", fresh)
    event.listen(sync_engine, "checkin", fresh)
    event.listen(sync_engine, "checkout", checked_out)


class DatabaseUnavailable(Exception):
    """The database did not answer in time or could not be reached: answer 503, retry later."""


# PostgreSQL error classes that mean "not now" rather than "this statement is wrong": connection
# exceptions (08), insufficient resources (53: too many connections, disk full), operator
# intervention (57: shutting down, cannot connect now, statement cancelled by a timeout).
_UNAVAILABLE_SQLSTATE_CLASSES = ("08", "53", "57")
# SQLite result codes (primary, the low byte): BUSY, LOCKED, IOERR, CANTOPEN.
_UNAVAILABLE_SQLITE_CODES = frozenset({5, 6, 10, 14})


def is_unavailable(exc: BaseException) -> bool:
    """Whether an error means the database was unreachable, refused, busy or too slow (a 503 that
    a retry may cure) rather than a fault of the statement (a 500). Follows the chain of causes,
    since drivers and SQLAlchemy wrap the socket or timeout error that actually happened."""
    seen: set[int] = set()
    pending: list[BaseException | None] = [exc]
    while pending:
        error = pending.pop()
        if error is None or id(error) in seen:
            continue
        seen.add(id(error))
        if isinstance(error, DatabaseUnavailable | TimeoutError | ConnectionError | sa_exc.TimeoutError):
            return True  # (pool) timeouts, refused or reset sockets
        if type(error) is OSError or isinstance(error, socket.gaierror):
            return True  # a failed connect (asyncpg raises a bare OSError for all addresses tried)
        if isinstance(error, sa_exc.DBAPIError) and error.connection_invalidated:
            return True
        sqlstate = getattr(error, "sqlstate", None)
        if isinstance(sqlstate, str) and sqlstate.startswith(_UNAVAILABLE_SQLSTATE_CLASSES):
            return True
        sqlite_code = getattr(error, "sqlite_errorcode", None)
        if isinstance(sqlite_code, int) and sqlite_code & 0xFF in _UNAVAILABLE_SQLITE_CODES:
            return True
        if isinstance(error, ConnectionDoesNotExistError):  # asyncpg: the socket went away mid-use
            return True
        pending += [error.__cause__, getattr(error, "orig", None)]
    return False


def session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)


@asynccontextmanager
async def transaction(sessions: async_sessionmaker[AsyncSession]) -> AsyncIterator[AsyncSession]:
    async with sessions() as session, session.begin():
        yield session


@asynccontextmanager
async def autocommit(sessions: async_sessionmaker[AsyncSession]) -> AsyncIterator[AsyncSession]:
    """A session whose every statement commits on its own, for work that needs no atomicity
    beyond one statement's: on PostgreSQL no BEGIN and COMMIT round trips; on SQLite (whose
    driver begins before every write anyway) `transaction`."""
    engine = sessions.kw["bind"]
    if engine.dialect.name != "postgresql":
        async with transaction(sessions) as session:
            yield session
        return
    async with autocommit_connection(engine) as conn, sessions(bind=conn) as session:
        yield session


@asynccontextmanager
async def autocommit_connection(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    """`autocommit` for Core statements: a connection in autocommit on PostgreSQL, elsewhere one
    transaction committed at the end."""
    if engine.dialect.name != "postgresql":
        async with engine.begin() as conn:
            yield conn
        return
    async with engine.connect() as conn:
        await conn.execution_options(isolation_level="AUTOCOMMIT")
        yield conn


def alembic_config(url: str, schema: str = "") -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    config.set_main_option("connector.schema", schema)
    return config


MIGRATION_LOCK_WAIT_NOTICE_SECONDS = 1.0


def _lock_file(url: str) -> Path | None:
    """The file next to a SQLite database that its migrating processes lock (None: in memory)."""
    path = url.split(":///", 1)[-1]
    if not path or path == ":memory:" or "mode=memory" in path:
        return None
    return Path(path.split("?", 1)[0] + ".migrate.lock")


@asynccontextmanager
async def migration_lock(url: str, *, schema: str = "") -> AsyncIterator[None]:
    """Held while migrating (and creating the first admin key): one process at a time per database
    (per schema on PostgreSQL); the others wait for it, then find the work done.

    PostgreSQL: a session-level advisory lock on a connection of its own, keyed by the schema, so
    the lock goes with the connection if the process dies. SQLite: an exclusive lock on a file
    next to the database (`<file>.migrate.lock`), released by the kernel if the process dies."""
    if is_sqlite(url):
        lock_path = _lock_file(url)
        if lock_path is None:
            yield
            return
        lock_path.parent.mkdir(parents=True, exist_ok=True)
        lock = FileLock(lock_path, mode=0o600)
        try:
            await asyncio.to_thread(lock.acquire, timeout=MIGRATION_LOCK_WAIT_NOTICE_SECONDS)
        except FileLockTimeout:
            log.info("waiting for another process to finish migrating", lock=str(lock_path))
            await asyncio.to_thread(lock.acquire)
        try:
            yield
        finally:
            lock.release()
        return
    engine = create_engine(url)
    key = f"connector.migrate:{schema}"
    try:
        async with engine.connect() as conn:
            if not await conn.scalar(text("SELECT pg_try_advisory_lock(hashtext(:key))"), {"key": key}):
                log.info("waiting for another process to finish migrating", schema=schema or "public")
                await conn.execute(text("SELECT pg_advisory_lock(hashtext(:key))"), {"key": key})
            await conn.commit()
            try:
                yield
            finally:
                await conn.execute(text("SELECT pg_advisory_unlock(hashtext(:key))"), {"key": key})
                await conn.commit()
    finally:
        await engine.dispose()


async def migrate(url: str, revision: str = "head", *, schema: str = "", locked: bool = False) -> None:
    """Apply migrations under the migration lock (`locked=True`: the caller holds it already).
    Alembic's env runs its own event loop, so it runs in a worker thread."""
    if not locked:
        async with migration_lock(url, schema=schema):
            await migrate(url, revision, schema=schema, locked=True)
        return
    await asyncio.to_thread(command.upgrade, alembic_config(url, schema), revision)


async def downgrade(url: str, revision: str = "base", *, schema: str = "") -> None:
    async with migration_lock(url, schema=schema):
        await asyncio.to_thread(command.downgrade, alembic_config(url, schema), revision)


@functools.cache
def head_revisions() -> frozenset[str]:
    return frozenset(ScriptDirectory.from_config(alembic_config("sqlite://")).get_heads())


async def current_revisions(engine: AsyncEngine) -> frozenset[str]:
    async with engine.connect() as conn:
        rows = await conn.execute(text("SELECT version_num FROM alembic_version"))
        return frozenset(str(row[0]) for row in rows)


# -- data access shared by every feature --------------------------------------------------------

Statement = TypeVar("Statement", bound=Select[*tuple[Any, ...]] | Update | Delete)
Row = TypeVar("Row", bound=Base)


def scoped(statement: Statement, model: type[Base], tenant_id: str | ColumnElement[str]) -> Statement:
    """The one place a tenant filter is written. Every read of a tenant-owned table goes through
    it, so no query can forget whose rows it returns (tests/architecture fails on a tenant filter
    written by hand anywhere else). `tenant_id` may be a column: a subquery correlated with an
    outer query's tenant (one tenant's rows per row of `tenants`)."""
    column = cast(Table, model.__table__).c.tenant_id
    return cast(Statement, statement.where(column == tenant_id))


def same_tenant(model: Any, owner: Any) -> ColumnElement[bool]:
    """The tenant condition of a join: `model`'s rows of the tenant that owns the row of `owner`
    (an ON clause, so one statement can read a tenant's rows beside the row that names the tenant)."""
    return cast(ColumnElement[bool], model.tenant_id == owner.tenant_id)


def tenant_rows(model: type[Row], tenant_id: str) -> Select[Row]:
    """`SELECT model WHERE tenant_id = …`: the start of most tenant-scoped reads."""
    return scoped(select(model), model, tenant_id)


def backend(session: AsyncSession | AsyncConnection | AsyncEngine) -> str:
    """`postgresql` or `sqlite`: the dialect the session, connection or engine speaks."""
    bind = session.bind if isinstance(session, AsyncSession) else session
    return bind.dialect.name if bind is not None else "sqlite"


def dialect_insert(session: AsyncSession | AsyncConnection | AsyncEngine, model: type[Base] | Table) -> Any:
    """INSERT with `ON CONFLICT` support for the backend the session is bound to."""
    return postgresql.insert(model) if backend(session) == "postgresql" else sqlite.insert(model)


def affected(result: Result[Any]) -> int:
    """Rows an UPDATE / DELETE / INSERT … ON CONFLICT changed (typed, unlike `result.rowcount`)."""
    return int(cast(CursorResult[Any], result).rowcount)
