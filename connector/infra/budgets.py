"""Vendor request budgets shared by every process of a deployment (`adapters.budgets` defines the
interface `VendorHttpClient` uses).

A connection's `max_concurrency` is the vendor's limit for the integration, not for one process: two
`connector worker` processes with a semaphore each would put twice as many calls in flight. Here the
slots live in the deployment's shared store:

- `DatabaseBudgets` (the default): the `vendor_slots` table holds rows `0 … limit-1` per connection;
  a call claims a free row with one conditional `UPDATE` (on PostgreSQL the row is chosen with
  `FOR UPDATE SKIP LOCKED`, so concurrent claimers take different rows), each in its own short
  transaction on an engine of its own — never inside the caller's transaction or pool. A claim is a
  lease: the holding process renews its leases every third of `vendor_slot_lease_seconds`, so the
  slots of a process that was killed come back once their lease runs out. When all slots are busy
  the caller polls again with a small jittered backoff.
  On SQLite the slots live in a file of their own beside the database (`<database>-budgets`,
  created on first use), so a claim never waits on the database's single write lock.
- `RedisBudgets` (when `redis_url` is set): a sorted set per connection (member = the call, score =
  its lease expiry by the Redis server's clock) managed by Lua scripts, and a sorted set of the last
  minute's call starts.

Both count the calls started on a connection that sets `max_requests_per_minute` over a sliding
minute: a call starts only when fewer than the limit started in the 60 s before it (the database
keeps one row per call the limit allows, each taken once per minute). Each process first passes its
own semaphore of the same size, so it never has more calls waiting on the store than the limit. A
busy store (a lock wait, a pool timeout) is asked again: only a store that has not answered for
`vendor_budget_outage_seconds` lets a call go ahead under that process-local limit alone (logged),
so a vendor call is never stopped for good because the budget could not be read, and contention
never lets calls past the shared limit.
"""

from __future__ import annotations

import asyncio
import random
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

import redis.asyncio as redis
from sqlalchemy import ColumnElement, Select, and_, bindparam, or_, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from adapters.budgets import Limits, LocalBudget, RequestBudget
from connector.infra import db
from connector.infra.logs import get_logger
from connector.models import Base, UTCDateTime, VendorRateSlot, VendorSlot, new_id
from connector.settings import Settings

log = get_logger("connector.budgets")

POLL_MIN = 0.01
POLL_MAX = 0.25
"""Seconds between claims while every slot is busy: doubling from POLL_MIN, jittered, capped."""
RATE_MARGIN = 0.25
"""Seconds added to the rate window: a call goes out moments after its start is counted, and those
moments differ between calls, so each row waits a little longer than the window before its reuse."""
RESTAMP_AFTER = 0.2
"""A rate claim that took longer than this (seconds) stamps its row again when it is through."""


class BudgetStore(Protocol):
    """Where a deployment's connection budgets live."""

    def for_connection(self, connection_id: str) -> RequestBudget: ...

    async def aclose(self) -> None: ...


class LocalBudgets:
    """Budgets of this process alone (services built without a shared store)."""

    def __init__(self) -> None:
        self._budgets: dict[str, LocalBudget] = {}

    def for_connection(self, connection_id: str) -> RequestBudget:
        return self._budgets.setdefault(connection_id, LocalBudget())

    async def aclose(self) -> None:
        self._budgets.clear()


@dataclass
class _Token:
    local: object
    connection_id: str
    holder: str | None
    """None: no shared slot was taken (the store was unreachable)."""
    slot_no: int = -1


class _SharedBudget:
    """One connection's budget over a shared store: the process's own gate, then the store's slot."""

    def __init__(self, store: _Shared, connection_id: str) -> None:
        self._store = store
        self._connection_id = connection_id
        self._local = LocalBudget()

    async def acquire(self, limits: Limits) -> object:
        local = await self._local.acquire(Limits(limits.concurrency))
        try:
            token = await self._store.claim(self._connection_id, limits)
        except BaseException:
            await self._local.release(local)
            raise
        token.local = local
        return token

    async def release(self, token: object) -> None:
        assert isinstance(token, _Token)
        try:
            if token.holder is not None:
                await self._store.give_back(token)
        finally:
            await self._local.release(token.local)


class _Failing:
    """How long a store has been failing one caller in a row, and whether to stop asking it."""

    def __init__(self, store: _Shared) -> None:
        self._store = store
        self._since: float | None = None

    def answered(self) -> None:
        self._since = None
        self._store._down_until = 0.0

    def give_up(self, exc: BaseException) -> bool:
        now = time.monotonic()
        if self._since is None:
            self._since = now
        if not self._store._store_down() and now - self._since < self._store.outage_seconds:
            return False
        self._store._down_until = now + self._store.outage_seconds
        self._store._warn("vendor budget unavailable; limiting this process alone", exc)
        return True


class _Shared:
    """What the database and Redis stores share: the budgets per connection, the set of held
    tokens, the renewal task and the claim loop with its backoff."""

    def __init__(
        self, lease_seconds: float, outage_seconds: float = 30.0, rate_window_seconds: float = 60.0
    ) -> None:
        self.lease_seconds = lease_seconds
        self.outage_seconds = outage_seconds
        self.rate_window_seconds = rate_window_seconds
        """The window `max_requests_per_minute` counts over (a minute; shorter in tests)."""
        self.rate_margin_seconds = RATE_MARGIN
        self._down_until = 0.0
        self.owner = new_id()
        self._budgets: dict[str, _SharedBudget] = {}
        self._held: dict[str, _Token] = {}
        self._renewer: asyncio.Task[None] | None = None
        self._warned = 0.0

    def for_connection(self, connection_id: str) -> RequestBudget:
        budget = self._budgets.get(connection_id)
        if budget is None:
            budget = self._budgets[connection_id] = _SharedBudget(self, connection_id)
        return budget

    async def claim(self, connection_id: str, limits: Limits) -> _Token:
        """A slot of the shared store, then (with `per_minute`) a start counted in its sliding
        minute: counted last, so the count is taken moments before the call goes out. A store that
        is busy or briefly unreachable (a lock wait, a pool timeout, a dropped connection) is asked
        again until it has failed for `outage_seconds` in a row: only then does the call go ahead
        under this process's own limit, and for the next `outage_seconds` further calls go ahead
        after a single failed try."""
        failing = _Failing(self)
        wait = POLL_MIN
        while True:
            try:
                token = await self._try_claim(connection_id, limits.concurrency)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if failing.give_up(exc):
                    token = _Token(None, connection_id, None)
                    break
            else:
                failing.answered()
                if token is not None:
                    self._held[token.holder or ""] = token
                    self._ensure_renewer()
                    break
            await asyncio.sleep(random.uniform(wait / 2, wait))  # noqa: S311 - jitter
            wait = min(POLL_MAX, wait * 2)
        if limits.per_minute is not None:
            try:
                await self._count_start(connection_id, limits.per_minute, failing)
            except BaseException:
                if token.holder is not None:
                    await self.give_back(token)
                raise
        return token

    async def _count_start(self, connection_id: str, per_minute: int, failing: _Failing) -> None:
        while True:
            try:
                await self._wait_rate(connection_id, per_minute)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if failing.give_up(exc):
                    return
                await asyncio.sleep(random.uniform(POLL_MAX / 2, POLL_MAX))  # noqa: S311 - jitter
            else:
                failing.answered()
                return

    def _store_down(self) -> bool:
        return time.monotonic() < self._down_until

    async def give_back(self, token: _Token) -> None:
        self._held.pop(token.holder or "", None)
        try:
            await self._release(token)
        except Exception as exc:  # its lease runs out on its own
            self._warn("vendor budget slot not released; it frees when its lease ends", exc)

    def _warn(self, message: str, exc: BaseException) -> None:
        now = time.monotonic()
        if now - self._warned > 60:
            self._warned = now
            log.warning(message, error=f"{type(exc).__name__}: {exc}"[:300])

    def _ensure_renewer(self) -> None:
        if self._renewer is None or self._renewer.done():
            self._renewer = asyncio.create_task(self._keep_renewed(), name="vendor-budget-renewer")

    async def _keep_renewed(self) -> None:
        while self._held:
            await asyncio.sleep(self.lease_seconds / 3)
            held = list(self._held.values())
            if not held:
                break
            try:
                await self._renew(held)
            except Exception as exc:
                self._warn("vendor budget leases not renewed", exc)

    async def aclose(self) -> None:
        if self._renewer is not None:
            self._renewer.cancel()
            await asyncio.gather(self._renewer, return_exceptions=True)
        self._renewer = None

    # -- per store ----------------------------------------------------------------------------

    async def _try_claim(self, connection_id: str, limit: int) -> _Token | None:
        raise NotImplementedError

    async def _release(self, token: _Token) -> None:
        raise NotImplementedError

    async def _renew(self, held: list[_Token]) -> None:
        raise NotImplementedError

    async def _wait_rate(self, connection_id: str, per_minute: int) -> None:
        raise NotImplementedError


def _free_slot_pick() -> tuple[ColumnElement[bool], Select[int]]:
    now = bindparam("b_now", type_=UTCDateTime())
    free = or_(VendorSlot.holder.is_(None), VendorSlot.expires_at < now)
    mine = and_(
        VendorSlot.connection_id == bindparam("b_connection_id"), VendorSlot.slot_no < bindparam("b_limit")
    )
    return free, select(VendorSlot.slot_no).where(mine, free).order_by(VendorSlot.slot_no).limit(1)


def _claim_slot(*, locking: bool) -> Any:
    free, pick = _free_slot_pick()
    if locking:
        pick = pick.with_for_update(skip_locked=True)
    return (
        update(VendorSlot)
        .where(
            VendorSlot.connection_id == bindparam("b_connection_id"),
            VendorSlot.slot_no == pick.scalar_subquery(),
            free,
        )
        .values(
            holder=bindparam("b_holder"),
            owner=bindparam("b_owner"),
            expires_at=bindparam("b_expires", type_=UTCDateTime()),
        )
        .returning(VendorSlot.slot_no)
    )


# Built once, bound per call: every call to a budgeted vendor claims and releases a slot. (A bind
# is not named after a column: SQLAlchemy reserves those names in UPDATE statements.)
_FREE_SLOT = _free_slot_pick()[1]
_CLAIM_SLOT = _claim_slot(locking=False)
_CLAIM_SLOT_LOCKING = _claim_slot(locking=True)
"""PostgreSQL: the free slot is picked `FOR UPDATE SKIP LOCKED`, so concurrent claims take different rows."""
_RELEASE_SLOT = (
    update(VendorSlot)
    .where(
        VendorSlot.connection_id == bindparam("b_connection_id"),
        VendorSlot.slot_no == bindparam("b_slot_no"),
        VendorSlot.holder == bindparam("b_holder"),
    )
    .values(holder=None, owner=None, expires_at=None)
)


class DatabaseBudgets(_Shared):
    """Slots as leased rows of `vendor_slots`, calls per minute as the rows of `vendor_rate_slots`."""

    def __init__(
        self,
        engine: AsyncEngine,
        *,
        lease_seconds: float,
        outage_seconds: float = 30.0,
        rate_window_seconds: float = 60.0,
    ) -> None:
        super().__init__(lease_seconds, outage_seconds, rate_window_seconds)
        self.engine = engine
        self._rows: dict[str, int] = {}
        """connection → how many slot rows are known to exist."""
        self._rate_rows: dict[str, int] = {}
        """connection → how many rate rows are known to exist."""

    def _now(self) -> datetime:
        return datetime.now(UTC)

    async def _ensure_rows(
        self, connection_id: str, limit: int, model: type[VendorSlot | VendorRateSlot] = VendorSlot
    ) -> None:
        """Rows `0 … limit-1` of the connection in `model`'s table (inserted once per process)."""
        known = self._rows if model is VendorSlot else self._rate_rows
        if known.get(connection_id, 0) >= limit:
            return
        async with self.engine.begin() as conn:
            insert = db.dialect_insert(conn, model)
            await conn.execute(
                insert.values(
                    [{"connection_id": connection_id, "slot_no": n} for n in range(limit)]
                ).on_conflict_do_nothing()
            )
        known[connection_id] = limit

    async def _try_claim(self, connection_id: str, limit: int) -> _Token | None:
        await self._ensure_rows(connection_id, limit)
        postgresql = self.engine.dialect.name == "postgresql"
        which = {"b_connection_id": connection_id, "b_limit": limit}
        if not postgresql:
            # A read first: while every slot is busy, polling takes no write lock (SQLite has one
            # for the whole database; PostgreSQL's claim skips the rows other claims lock).
            async with self.engine.connect() as conn:
                if (await conn.execute(_FREE_SLOT, {**which, "b_now": self._now()})).first() is None:
                    return None
        holder = new_id()
        started = time.monotonic()
        # One statement, around every vendor call: on PostgreSQL without BEGIN and COMMIT.
        async with db.autocommit_connection(self.engine) as conn:
            now = self._now()  # once a connection is had: the lease starts no earlier than the claim
            lease = {
                "b_holder": holder,
                "b_owner": self.owner,
                "b_expires": now + timedelta(seconds=self.lease_seconds),
            }
            statement = _CLAIM_SLOT_LOCKING if postgresql else _CLAIM_SLOT
            claimed = (await conn.execute(statement, {**which, "b_now": now, **lease})).scalar_one_or_none()
        if claimed is None:
            return None
        token = _Token(None, connection_id, holder, claimed)
        if time.monotonic() - started > self.lease_seconds / 3 and not await self._still_held(token):
            return None  # the claim waited so long (a lock) that its lease ran out and another took it
        return token

    async def _still_held(self, token: _Token) -> bool:
        """Renew one slot if it is still this call's: after this, nobody else can take it before
        the lease that starts now runs out."""
        async with self.engine.begin() as conn:
            renewed = await conn.execute(
                update(VendorSlot)
                .where(
                    VendorSlot.connection_id == token.connection_id,
                    VendorSlot.slot_no == token.slot_no,
                    VendorSlot.holder == token.holder,
                )
                .values(expires_at=self._now() + timedelta(seconds=self.lease_seconds))
            )
        return db.affected(renewed) == 1

    async def _release(self, token: _Token) -> None:
        async with db.autocommit_connection(self.engine) as conn:
            await conn.execute(
                _RELEASE_SLOT,
                {
                    "b_connection_id": token.connection_id,
                    "b_slot_no": token.slot_no,
                    "b_holder": token.holder,
                },
            )

    async def _renew(self, held: list[_Token]) -> None:
        async with self.engine.begin() as conn:
            await conn.execute(
                update(VendorSlot)
                .where(VendorSlot.owner == self.owner, VendorSlot.holder.is_not(None))
                .values(expires_at=self._now() + timedelta(seconds=self.lease_seconds))
            )

    async def _wait_rate(self, connection_id: str, per_minute: int) -> None:
        """Start a call by taking one of the connection's `per_minute` rate rows that was last used
        a whole window ago; while none is, wait until the oldest will be."""
        await self._ensure_rows(connection_id, per_minute, VendorRateSlot)
        window = timedelta(seconds=self.rate_window_seconds + self.rate_margin_seconds)
        mine = and_(VendorRateSlot.connection_id == connection_id, VendorRateSlot.slot_no < per_minute)
        oldest_first = (VendorRateSlot.used_at.asc().nulls_first(), VendorRateSlot.slot_no)
        while True:
            async with self.engine.connect() as conn:  # a read first: no write lock while waiting
                [oldest] = (
                    await conn.execute(
                        select(VendorRateSlot.used_at).where(mine).order_by(*oldest_first).limit(1)
                    )
                ).one()
            now = self._now()
            if oldest is not None and oldest > now - window:
                await asyncio.sleep((oldest + window - now).total_seconds() + random.uniform(0, 0.05))  # noqa: S311
                continue
            started = time.monotonic()
            async with self.engine.begin() as conn:
                now = self._now()
                free = or_(VendorRateSlot.used_at.is_(None), VendorRateSlot.used_at <= now - window)
                pick = select(VendorRateSlot.slot_no).where(mine, free).order_by(*oldest_first).limit(1)
                if db.backend(conn) == "postgresql":
                    pick = pick.with_for_update(skip_locked=True)
                taken = (
                    await conn.execute(
                        update(VendorRateSlot)
                        .where(mine, VendorRateSlot.slot_no == pick.scalar_subquery(), free)
                        .values(used_at=now)
                        .returning(VendorRateSlot.slot_no)
                    )
                ).scalar_one_or_none()
            if taken is None:
                continue  # another process took the last free row first
            if time.monotonic() - started > RESTAMP_AFTER:
                # The claim waited (a lock): the call starts now, so its window does too.
                async with self.engine.begin() as conn:
                    await conn.execute(
                        update(VendorRateSlot)
                        .where(
                            VendorRateSlot.connection_id == connection_id,
                            VendorRateSlot.slot_no == taken,
                            VendorRateSlot.used_at == now,
                        )
                        .values(used_at=self._now())
                    )
            return


_ACQUIRE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZCARD', KEYS[1]) < tonumber(ARGV[1]) then
  redis.call('ZADD', KEYS[1], now + tonumber(ARGV[3]), ARGV[2])
  redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[3]) * 2)
  return 1
end
return 0
"""
_RENEW = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
for i = 2, #ARGV do
  redis.call('ZADD', KEYS[1], 'XX', now + tonumber(ARGV[1]), ARGV[i])
end
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[1]) * 2)
return 1
"""
_RATE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local window = tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
if redis.call('ZCARD', KEYS[1]) < tonumber(ARGV[1]) then
  redis.call('ZADD', KEYS[1], now, ARGV[3])
  redis.call('PEXPIRE', KEYS[1], window * 2)
  return 0
end
local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
return math.max(1, tonumber(oldest[2]) + window - now)
"""


class RedisBudgets(_Shared):
    """Slots as members of a sorted set per connection scored by lease expiry (the Redis server's
    clock, so the processes' clocks need not agree), claimed and renewed by Lua scripts."""

    def __init__(
        self,
        url: str,
        *,
        lease_seconds: float,
        outage_seconds: float = 30.0,
        rate_window_seconds: float = 60.0,
        prefix: str = "connector:budget:",
    ) -> None:
        super().__init__(lease_seconds, outage_seconds, rate_window_seconds)
        self.prefix = prefix
        self._client: Any = redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5)
        self._scripts: dict[str, Any] = {
            name: self._client.register_script(body)
            for name, body in (("acquire", _ACQUIRE), ("renew", _RENEW), ("rate", _RATE))
        }

    def _key(self, connection_id: str) -> str:
        return f"{self.prefix}{connection_id}:slots"

    async def _try_claim(self, connection_id: str, limit: int) -> _Token | None:
        holder = new_id()
        lease_ms = int(self.lease_seconds * 1000)
        got = await self._scripts["acquire"](keys=[self._key(connection_id)], args=[limit, holder, lease_ms])
        return _Token(None, connection_id, holder) if int(got) == 1 else None

    async def _release(self, token: _Token) -> None:
        await self._client.zrem(self._key(token.connection_id), token.holder)

    async def _renew(self, held: list[_Token]) -> None:
        by_connection: dict[str, list[str]] = {}
        for token in held:
            by_connection.setdefault(token.connection_id, []).append(token.holder or "")
        lease_ms = int(self.lease_seconds * 1000)
        for connection_id, holders in by_connection.items():
            await self._scripts["renew"](keys=[self._key(connection_id)], args=[lease_ms, *holders])

    async def _wait_rate(self, connection_id: str, per_minute: int) -> None:
        while True:
            wait_ms = int(
                await self._scripts["rate"](
                    keys=[f"{self.prefix}{connection_id}:starts"],
                    args=[
                        per_minute,
                        int((self.rate_window_seconds + self.rate_margin_seconds) * 1000),
                        new_id(),
                    ],
                )
            )
            if wait_ms <= 0:
                return
            await asyncio.sleep(wait_ms / 1000 + random.uniform(0, 0.05))  # noqa: S311

    async def aclose(self) -> None:
        await super().aclose()
        await self._client.aclose()


def budget_store(settings: Settings, url: str, schema: str) -> BudgetStore:
    """The deployment's store: Redis when `redis_url` is set, else the database (an engine of its
    own with short statement limits, so a claim never waits on the caller's pool or transaction for
    longer than a few seconds)."""
    lease = float(settings.vendor_slot_lease_seconds)
    outage = float(settings.vendor_budget_outage_seconds)
    if settings.redis_url:
        return RedisBudgets(settings.redis_url, lease_seconds=lease, outage_seconds=outage)
    sidecar = db.is_sqlite(url) and not url.endswith(":memory:")
    if sidecar:
        url = sidecar_url(url)
    engine = db.create_engine(
        url,
        pool_size=4,
        schema=schema,
        timeouts=db.Timeouts(
            connect=settings.db_connect_timeout_seconds,
            statement=settings.vendor_budget_wait_seconds,
            pool=settings.vendor_budget_wait_seconds,
        ),
    )
    return _OwningDatabaseBudgets(engine, lease_seconds=lease, outage_seconds=outage, create_tables=sidecar)


def sidecar_url(url: str) -> str:
    """The file beside an SQLite database that holds its budgets: SQLite has one writer per file,
    and a caller that calls a vendor inside its own write transaction holds that file's lock, so
    slots kept in the same file could not be claimed until the caller's own timeout."""
    return f"{url}-budgets"


class _OwningDatabaseBudgets(DatabaseBudgets):
    def __init__(
        self, engine: AsyncEngine, *, lease_seconds: float, outage_seconds: float, create_tables: bool
    ) -> None:
        super().__init__(engine, lease_seconds=lease_seconds, outage_seconds=outage_seconds)
        self._create_tables = create_tables
        self._tables_ready = asyncio.Lock()

    async def _ensure_rows(
        self, connection_id: str, limit: int, model: type[VendorSlot | VendorRateSlot] = VendorSlot
    ) -> None:
        if self._create_tables:
            async with self._tables_ready:
                if self._create_tables:
                    tables = [Base.metadata.tables[m.__tablename__] for m in (VendorSlot, VendorRateSlot)]
                    async with self.engine.begin() as conn:
                        await conn.run_sync(lambda sync: Base.metadata.create_all(sync, tables=tables))
                    self._create_tables = False
        await super()._ensure_rows(connection_id, limit, model)

    async def aclose(self) -> None:
        await super().aclose()
        await self.engine.dispose()


__all__ = ["BudgetStore", "DatabaseBudgets", "LocalBudgets", "RedisBudgets", "budget_store"]
