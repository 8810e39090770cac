"""One group-commit transaction of webhook deliveries, through the database driver itself.

The ingest writer commits every batch of deliveries (and the jobs that process them) in one
transaction. Through SQLAlchemy's Core that transaction cost more CPU than everything else a
delivery needs (compiling, result set-up, the greenlet hop per statement); the work itself is a few
fixed statements. So on the two backends connector runs on, the batch goes to the driver directly:

- PostgreSQL (asyncpg): one statement for the whole batch, its own transaction — the rows as
  arrays through `unnest`, `INSERT ... ON CONFLICT DO NOTHING RETURNING`, and in a CTE one job per
  tenant — on a connection checked out of the engine's pool (its search path and timeouts are the
  engine's), held while batches keep coming and pinged after `db.PING_AFTER_IDLE_SECONDS` idle.
  Any failure but a refused row, and any cancellation, closes the connection.
- SQLite: a connection of its own, on a thread of its own, with the engine's pragmas
  (`db.apply_sqlite_pragmas`); the batch is one function call into that thread (`BEGIN IMMEDIATE`
  ... `COMMIT`) instead of a thread hop per statement, and a batch past its deadline is
  interrupted (`sqlite3.Connection.interrupt`) rather than left running.

Values are converted with the columns' own SQLAlchemy bind processors, so a row written here is
the row the SQLAlchemy path would have written. Any other database (an in-memory SQLite, another
driver) keeps the SQLAlchemy path, `CoreDeliveryStore`.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Protocol, cast

import asyncpg  # type: ignore[import-untyped]
from sqlalchemy import Table, insert, select
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import DataError, DBAPIError, IntegrityError, StatementError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from connector.alerts.jobs import DELIVERIES, DeliveriesJob
from connector.infra import db
from connector.models import Delivery, Job
from connector.statuses import DeliveryStatus

DELIVERY_TABLE = cast(Table, Delivery.__table__)
JOB_TABLE = cast(Table, Job.__table__)
DELIVERY_COLUMNS = tuple(column.name for column in DELIVERY_TABLE.columns)
JOB_COLUMNS = (
    "tenant_id",
    "kind",
    "payload",
    "status",
    "unique_key",
    "delivery_id",
    "attempts",
    "max_attempts",
    "priority",
    "run_after",
    "created_at",
)
"""The columns of `JobKind.row()`; the others take their defaults (the id is generated)."""

JOB_TEMPLATE_COLUMNS = ("kind", "status", "attempts", "max_attempts", "priority", "run_after", "created_at")


def job_template() -> dict[str, Any]:
    """A `deliveries` job row as `JobKind.row()` makes it, less tenant and payload."""
    row = DELIVERIES.row(DeliveriesJob(delivery_ids=[]), tenant_id="")
    # What the statements below rely on: no unique key to coalesce on, a payload of ids only.
    assert row["unique_key"] is None and row["delivery_id"] is None
    assert row["payload"] == {"delivery_ids": []}
    return row


def delivery_jobs(rows: Sequence[dict[str, Any]], inserted: set[str]) -> list[dict[str, Any]]:
    """One `deliveries` job per tenant for the queued deliveries the batch inserted, in order."""
    stored: dict[str, list[str]] = {}
    for row in rows:
        if row["id"] in inserted and row["status"] == DeliveryStatus.QUEUED:
            stored.setdefault(row["tenant_id"], []).append(row["id"])
    return [
        DELIVERIES.row(DeliveriesJob(delivery_ids=ids), tenant_id=tenant_id)
        for tenant_id, ids in stored.items()
    ]


@dataclass(frozen=True)
class Written:
    inserted: set[str]
    """Ids of the rows this transaction inserted."""
    known: dict[tuple[str, str], str]
    """(connection id, dedupe key) → id of the row stored earlier, for the rows not inserted."""


class DeliveryStore(Protocol):
    async def write(self, rows: Sequence[dict[str, Any]]) -> Written:
        """Insert the rows (skipping those whose dedupe key is stored) and their jobs in one
        transaction. Cancelling the call abandons the transaction (the writer does at its deadline)."""
        ...

    async def close(self) -> None: ...


def store_for(engine: AsyncEngine, *, sqlite_busy_seconds: float) -> DeliveryStore:
    """The driver-level store for the engine's database, or the Core one. `sqlite_busy_seconds`
    is the engine's own busy timeout (`Timeouts.statement`)."""
    dialect = engine.dialect
    database = engine.url.database or ""
    if dialect.name == "postgresql" and dialect.driver == "asyncpg":
        return PostgresDeliveryStore(engine)
    if dialect.name == "sqlite" and database not in ("", ":memory:") and "mode=memory" not in database:
        return SqliteDeliveryStore(engine, database, busy_seconds=sqlite_busy_seconds)
    return CoreDeliveryStore(engine)


def _processors(dialect: Dialect, table: Table, columns: Sequence[str]) -> list[Callable[[Any], Any] | None]:
    """What SQLAlchemy applies to each column's value for this dialect (its dialect-level type's)."""
    return [table.c[name].type.dialect_impl(dialect).bind_processor(dialect) for name in columns]


def _converted(
    rows: Sequence[dict[str, Any]], columns: Sequence[str], processors: list[Callable[[Any], Any] | None]
) -> list[tuple[Any, ...]]:
    converted: list[tuple[Any, ...]] = []
    for row in rows:
        converted.append(
            tuple(
                row[name] if process is None or row[name] is None else process(row[name])
                for name, process in zip(columns, processors, strict=True)
            )
        )
    return converted


def refused_row(exc: BaseException) -> bool:
    """Whether a failed write was refused for something in its rows — a value a column cannot
    hold, a constraint — rather than because the database is unavailable (connection lost,
    timeout, locked): only a refused row is worth writing the others apart for."""
    if isinstance(exc, IntegrityError | DataError | sqlite3.IntegrityError | sqlite3.DataError):
        return True
    if isinstance(exc, asyncpg.PostgresError):  # the driver's own error (the driver-level writer)
        return isinstance(exc.sqlstate, str) and exc.sqlstate[:2] in ("22", "23")
    if isinstance(exc, DBAPIError):  # asyncpg's data errors arrive as plain DBAPIError: read the SQLSTATE
        if exc.connection_invalidated:
            return False
        code = getattr(exc.orig, "sqlstate", None) or getattr(exc.orig, "pgcode", None)
        return isinstance(code, str) and code[:2] in ("22", "23")  # data exception, integrity violation
    if isinstance(exc, StatementError):  # a parameter the driver could not convert
        return isinstance(exc.orig, ValueError | TypeError | OverflowError)
    return isinstance(exc, ValueError | TypeError | OverflowError)  # sqlite3 raises these unwrapped


class CoreDeliveryStore:
    """Through SQLAlchemy Core: any database SQLAlchemy speaks."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def write(self, rows: Sequence[dict[str, Any]]) -> Written:
        statement = (
            db.dialect_insert(self._engine, DELIVERY_TABLE)
            .on_conflict_do_nothing(index_elements=["connection_id", "dedupe_key"])
            .returning(DELIVERY_TABLE.c.id)
        )
        async with self._engine.begin() as conn:
            inserted = set((await conn.execute(statement, list(rows))).scalars())
            missing = [row for row in rows if row["id"] not in inserted and row["dedupe_key"]]
            known: dict[tuple[str, str], str] = {}
            if missing:
                found = await conn.execute(
                    select(
                        DELIVERY_TABLE.c.connection_id, DELIVERY_TABLE.c.dedupe_key, DELIVERY_TABLE.c.id
                    ).where(
                        DELIVERY_TABLE.c.connection_id.in_({row["connection_id"] for row in missing}),
                        DELIVERY_TABLE.c.dedupe_key.in_({row["dedupe_key"] for row in missing}),
                    )
                )
                known = {(c, k): i for c, k, i in found.all() if k is not None}
            jobs = delivery_jobs(rows, inserted)
            if jobs:
                await conn.execute(insert(JOB_TABLE), jobs)
        return Written(inserted, known)

    async def close(self) -> None:
        return None


def _pg_type(dialect: Dialect, table: Table, name: str) -> str:
    return str(table.c[name].type.compile(dialect=dialect))


class PostgresDeliveryStore:
    """asyncpg: the batch's values as arrays, deliveries and their jobs in one statement (a single
    statement is its own transaction: one round trip per batch), on a connection held while
    batches keep coming."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._conn: AsyncConnection | None = None
        self._raw: Any = None
        self._last_used = 0.0
        dialect = engine.dialect
        columns = ", ".join(DELIVERY_COLUMNS)
        arrays = ", ".join(
            f"${n}::{_pg_type(dialect, DELIVERY_TABLE, name)}[]" for n, name in enumerate(DELIVERY_COLUMNS, 1)
        )
        first = len(DELIVERY_COLUMNS) + 1
        job_params = ", ".join(
            f"${n}::{_pg_type(dialect, JOB_TABLE, name)}"
            for n, name in enumerate(JOB_TEMPLATE_COLUMNS, first)
        )
        # The input keeps its order (`ord`): a job's delivery ids are applied in the order received.
        self._insert = (
            f"WITH input AS (SELECT * FROM unnest({arrays}) WITH ORDINALITY AS u({columns}, ord)), "
            f"stored AS (INSERT INTO deliveries ({columns}) SELECT {columns} FROM input ORDER BY ord "
            "ON CONFLICT (connection_id, dedupe_key) DO NOTHING RETURNING id, tenant_id, status), "
            f"queued AS (INSERT INTO jobs (tenant_id, payload, {', '.join(JOB_TEMPLATE_COLUMNS)}) "
            "SELECT stored.tenant_id, "
            "json_build_object('delivery_ids', json_agg(stored.id ORDER BY input.ord)), "
            f"{job_params} FROM stored JOIN input ON input.id = stored.id "
            f"WHERE stored.status = '{DeliveryStatus.QUEUED.value}' GROUP BY stored.tenant_id) "
            "SELECT id FROM stored"
        )
        self._known = (
            "SELECT connection_id, dedupe_key, id FROM deliveries "
            "WHERE connection_id = ANY($1::varchar[]) AND dedupe_key = ANY($2::varchar[])"
        )
        self._delivery_processors = _processors(dialect, DELIVERY_TABLE, DELIVERY_COLUMNS)
        [self._job_values] = _converted(
            [job_template()], JOB_TEMPLATE_COLUMNS, _processors(dialect, JOB_TABLE, JOB_TEMPLATE_COLUMNS)
        )

    async def _connection(self) -> Any:
        """The held connection; after `db.PING_AFTER_IDLE_SECONDS` unused it is pinged first, as
        the pool pings its idle ones, and replaced if it fails: a restarted server costs no batch
        its write."""
        now = time.monotonic()
        if self._raw is not None and now - self._last_used > db.PING_AFTER_IDLE_SECONDS:
            try:
                await self._raw.execute(";")
            except Exception:
                await self._release(invalidate=True)
        if self._conn is None:
            conn = await self._engine.connect()
            try:
                self._raw = (await conn.get_raw_connection()).driver_connection
            except BaseException:
                await conn.close()
                raise
            self._conn = conn
        self._last_used = now
        return self._raw

    async def _release(self, *, invalidate: bool = False) -> None:
        conn, self._conn, self._raw = self._conn, None, None
        if conn is not None:
            with contextlib.suppress(Exception):
                if invalidate:
                    await conn.invalidate()
                await conn.close()

    async def write(self, rows: Sequence[dict[str, Any]]) -> Written:
        columns = list(zip(*_converted(rows, DELIVERY_COLUMNS, self._delivery_processors), strict=True))
        try:
            raw = await self._connection()
            inserted = {record[0] for record in await raw.fetch(self._insert, *columns, *self._job_values)}
            missing = [row for row in rows if row["id"] not in inserted and row["dedupe_key"]]
            known: dict[tuple[str, str], str] = {}
            if missing:  # redeliveries: the rows stored earlier, committed
                found = await raw.fetch(
                    self._known,
                    list({row["connection_id"] for row in missing}),
                    list({row["dedupe_key"] for row in missing}),
                )
                known = {(c, k): i for c, k, i in found}
        except BaseException as exc:
            # Cancelled by the deadline or failed: the connection's state is not known, so it is
            # closed rather than used again. A refused row leaves the connection as it was.
            if not refused_row(exc):
                await self._release(invalidate=True)
            raise
        return Written(inserted, known)

    async def close(self) -> None:
        await self._release()


SQLITE_ROWS_PER_INSERT = 999 // len(DELIVERY_COLUMNS)
"""Rows per insert statement: within the 999 parameters the oldest SQLite builds allow."""


class SqliteDeliveryStore:
    """A connection and a thread of its own; the whole batch is one call into that thread."""

    def __init__(self, engine: AsyncEngine, path: str, *, busy_seconds: float) -> None:
        self._path = path
        self._busy_seconds = busy_seconds
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="delivery-store")
        self._connection: sqlite3.Connection | None = None
        self._lock = threading.Lock()
        dialect = engine.dialect
        self._inserts: dict[int, str] = {}
        self._insert_jobs = (
            f"INSERT INTO jobs ({', '.join(JOB_COLUMNS)}) VALUES ({', '.join('?' * len(JOB_COLUMNS))})"
        )
        self._delivery_processors = _processors(dialect, DELIVERY_TABLE, DELIVERY_COLUMNS)
        self._job_processors = _processors(dialect, JOB_TABLE, JOB_COLUMNS)

    async def write(self, rows: Sequence[dict[str, Any]]) -> Written:
        values = _converted(rows, DELIVERY_COLUMNS, self._delivery_processors)
        loop = asyncio.get_running_loop()
        future = loop.run_in_executor(self._thread, self._write, rows, values)
        try:
            return await asyncio.shield(future)
        except asyncio.CancelledError:  # past the writer's deadline: stop the statement running
            self._interrupt()
            future.add_done_callback(_consume)
            raise

    def _insert_rows(self, count: int) -> str:
        """The insert of `count` rows: one statement, one call into SQLite, for a chunk of a batch."""
        statement = self._inserts.get(count)
        if statement is None:
            row = f"({', '.join('?' * len(DELIVERY_COLUMNS))})"
            statement = self._inserts[count] = (
                f"INSERT INTO deliveries ({', '.join(DELIVERY_COLUMNS)}) VALUES {', '.join([row] * count)} "
                "ON CONFLICT (connection_id, dedupe_key) DO NOTHING RETURNING id"
            )
        return statement

    def _interrupt(self) -> None:
        with self._lock:
            if self._connection is not None:
                self._connection.interrupt()

    def _connect(self) -> sqlite3.Connection:
        if self._connection is None:
            connection = sqlite3.connect(
                self._path, timeout=self._busy_seconds, isolation_level=None, check_same_thread=False
            )
            db.apply_sqlite_pragmas(connection, self._busy_seconds)
            with self._lock:
                self._connection = connection
        return self._connection

    def _write(self, rows: Sequence[dict[str, Any]], values: list[tuple[Any, ...]]) -> Written:
        connection = self._connect()
        try:
            connection.execute("BEGIN IMMEDIATE")
            inserted: set[str] = set()
            for start in range(0, len(values), SQLITE_ROWS_PER_INSERT):
                chunk = values[start : start + SQLITE_ROWS_PER_INSERT]
                stored = connection.execute(self._insert_rows(len(chunk)), [v for row in chunk for v in row])
                inserted.update(row[0] for row in stored)
            missing = [row for row in rows if row["id"] not in inserted and row["dedupe_key"]]
            known: dict[tuple[str, str], str] = {}
            if missing:
                connections = sorted({row["connection_id"] for row in missing})
                keys = sorted({row["dedupe_key"] for row in missing})
                found = connection.execute(
                    "SELECT connection_id, dedupe_key, id FROM deliveries "
                    f"WHERE connection_id IN ({', '.join('?' * len(connections))}) "
                    f"AND dedupe_key IN ({', '.join('?' * len(keys))})",
                    [*connections, *keys],
                )
                known = {(c, k): i for c, k, i in found}
            jobs = delivery_jobs(rows, inserted)
            if jobs:
                connection.executemany(self._insert_jobs, _converted(jobs, JOB_COLUMNS, self._job_processors))
            connection.execute("COMMIT")
        except BaseException:
            if connection.in_transaction:
                try:
                    connection.execute("ROLLBACK")
                except sqlite3.Error:
                    self._discard()
            raise
        return Written(inserted, known)

    def _discard(self) -> None:
        with self._lock:
            connection, self._connection = self._connection, None
        if connection is not None:
            connection.close()

    async def close(self) -> None:
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._thread, self._discard)
        self._thread.shutdown(wait=False)


def _consume(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()
