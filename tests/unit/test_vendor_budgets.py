"""Vendor request budgets shared by processes: two stores over one database (or one Redis) stand for
two processes of a deployment. Their callers together never hold more slots than the limit, a holder
that died without releasing gives its slots back when its lease runs out, the per-minute count is
shared, and the HTTP client takes its slots from the budget it is given. On SQLite, PostgreSQL and
Redis (127.0.0.1:6379; skipped only when unreachable)."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import time
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import httpx
import pytest

from adapters.budgets import Limits, LocalBudget, RequestBudget
from adapters.http import VendorHttpClient
from connector.infra import db
from connector.infra.budgets import DatabaseBudgets, RedisBudgets, budget_store, sidecar_url
from connector.infra.context import Services
from connector.settings import Settings

REDIS_URL = os.environ.get("CONNECTOR_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")

Store = DatabaseBudgets | RedisBudgets
StoreMaker = Callable[..., Store]


async def _redis_reachable() -> str | None:
    import redis.asyncio as redis

    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2)
    try:
        await client.ping()
        return None
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"
    finally:
        await client.aclose()


@pytest.fixture(params=["database", "redis"])
async def make_store(request: pytest.FixtureRequest, services: Services) -> AsyncIterator[StoreMaker]:
    """Makes stores ("processes") over the test's database, or over Redis with a key prefix of the
    test's own; the SQL stores run on the test's backend (the `services` fixture's parameter)."""
    stores: list[Store] = []
    prefix = f"connector-test:{uuid.uuid4().hex}:"
    if request.param == "redis" and (reason := await _redis_reachable()) is not None:
        pytest.skip(f"Redis unreachable at {REDIS_URL}: {reason}")

    def make(lease_seconds: float = 30.0, rate_window_seconds: float = 60.0) -> Store:
        store: Store
        if request.param == "redis":
            store = RedisBudgets(
                REDIS_URL, lease_seconds=lease_seconds, rate_window_seconds=rate_window_seconds, prefix=prefix
            )
        else:
            store = DatabaseBudgets(
                services.engine, lease_seconds=lease_seconds, rate_window_seconds=rate_window_seconds
            )
        stores.append(store)
        return store

    yield make
    for store in stores:
        await store.aclose()


CONNECTION = "c0nnect10n0000000000000000000001"


class Gauge:
    def __init__(self) -> None:
        self.now = 0
        self.peak = 0
        self.done = 0

    async def hold(self, budget: RequestBudget, limits: Limits, seconds: float = 0.02) -> None:
        token = await budget.acquire(limits)
        try:
            self.now += 1
            self.peak = max(self.peak, self.now)
            await asyncio.sleep(seconds)
            self.now -= 1
            self.done += 1
        finally:
            await budget.release(token)


async def test_two_processes_together_never_hold_more_than_the_limit(make_store: StoreMaker) -> None:
    first, second = make_store(30.0), make_store(30.0)
    limits = Limits(concurrency=3)
    gauge = Gauge()
    calls = [
        gauge.hold(store.for_connection(CONNECTION), limits) for store in (first, second) for _ in range(12)
    ]
    await asyncio.wait_for(asyncio.gather(*calls), 120)
    assert gauge.done == 24
    assert gauge.peak <= 3, gauge.peak
    assert gauge.peak > 1, "the calls never overlapped: the test shows nothing about the limit"


async def test_each_connection_has_its_own_slots(make_store: StoreMaker) -> None:
    store = make_store(30.0)
    one = await store.for_connection(CONNECTION).acquire(Limits(1))
    other = await asyncio.wait_for(store.for_connection("another-connection").acquire(Limits(1)), 30)
    await store.for_connection("another-connection").release(other)
    await store.for_connection(CONNECTION).release(one)


async def test_a_dead_holders_slots_come_back_when_their_lease_runs_out(make_store: StoreMaker) -> None:
    dead, alive = make_store(0.6), make_store(0.6)
    limits = Limits(concurrency=2)
    for _ in range(2):
        await dead.for_connection(CONNECTION).acquire(limits)  # never released
    await dead.aclose()  # the process is gone: nothing renews its leases any more

    waiting = asyncio.ensure_future(alive.for_connection(CONNECTION).acquire(limits))
    await asyncio.sleep(0.2)
    assert not waiting.done(), "a slot was handed out although both were held"
    token = await asyncio.wait_for(waiting, 30)  # the dead process's lease ran out
    await alive.for_connection(CONNECTION).release(token)


async def test_a_live_holder_keeps_its_slot_past_one_lease(make_store: StoreMaker) -> None:
    holder, other = make_store(0.3), make_store(0.3)
    limits = Limits(concurrency=1)
    token = await holder.for_connection(CONNECTION).acquire(limits)
    waiting = asyncio.ensure_future(other.for_connection(CONNECTION).acquire(limits))
    await asyncio.sleep(1.2)  # four leases: renewed every third of one
    assert not waiting.done(), "the slot was taken from a holder that is still running"
    await holder.for_connection(CONNECTION).release(token)
    await holder.for_connection(CONNECTION).release(await asyncio.wait_for(waiting, 30))


async def test_released_slots_are_reused_at_once(make_store: StoreMaker) -> None:
    store = make_store(30.0)
    budget = store.for_connection(CONNECTION)
    for _ in range(20):  # more than the limit, one after the other: each release frees its slot
        await asyncio.wait_for(budget.release(await budget.acquire(Limits(2))), 30)


async def test_the_calls_per_minute_are_counted_across_processes(make_store: StoreMaker) -> None:
    first, second = make_store(30.0), make_store(30.0)
    limits = Limits(concurrency=10, per_minute=4)
    tokens: list[tuple[RequestBudget, object]] = []
    for store in (first, second, first, second):
        budget = store.for_connection(CONNECTION)
        tokens.append((budget, await asyncio.wait_for(budget.acquire(limits), 30)))
    for budget, token in tokens:
        await budget.release(token)
    fifth = asyncio.ensure_future(first.for_connection(CONNECTION).acquire(limits))
    await asyncio.sleep(0.3)
    assert not fifth.done(), "a fifth call started within the minute"
    fifth.cancel()
    await asyncio.gather(fifth, return_exceptions=True)


async def test_no_window_of_a_minute_holds_more_starts_than_the_limit(make_store: StoreMaker) -> None:
    """A sliding minute (here shortened to 1.5 s): two processes asking at once for 9 calls at 3
    per window start them in three waves a full window apart. Fixed minutes would let a wave
    start just before a boundary and the next just after it: twice the limit within moments."""
    window, per_window = 1.5, 3
    stores = [make_store(30.0, window), make_store(30.0, window)]
    for store in stores:
        store.rate_margin_seconds = 0.5  # a loaded machine's commits vary by more than a vendor's clock
    limits = Limits(concurrency=10, per_minute=per_window)
    starts: list[float] = []

    async def call(store: Store) -> None:
        budget = store.for_connection(CONNECTION)
        token = await budget.acquire(limits)
        starts.append(time.monotonic())
        await budget.release(token)

    await asyncio.wait_for(asyncio.gather(*(call(stores[n % 2]) for n in range(9))), 30)
    starts.sort()
    gaps = [later - earlier for earlier, later in zip(starts, starts[per_window:], strict=False)]
    assert min(gaps) >= window, f"{per_window + 1} starts within {min(gaps):.2f} s"


class InFlight:
    """A vendor behind httpx.MockTransport that records how many requests it serves at once."""

    def __init__(self) -> None:
        self.now = 0
        self.peak = 0
        self.served = 0

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        self.now += 1
        self.peak = max(self.peak, self.now)
        await asyncio.sleep(0.02)
        self.now -= 1
        self.served += 1
        return httpx.Response(200, json={})


async def test_clients_of_two_processes_share_the_connections_limit(make_store: StoreMaker) -> None:
    vendor = InFlight()
    clients = [
        VendorHttpClient(
            "https://psa.example.test",
            max_concurrency=2,
            budget=store.for_connection(CONNECTION),
            transport=httpx.MockTransport(vendor),
        )
        for store in (make_store(30.0), make_store(30.0))
    ]
    try:
        await asyncio.wait_for(
            asyncio.gather(*(c.get_json(f"/items/{n}") for c in clients for n in range(10))), 120
        )
    finally:
        for c in clients:
            await c.aclose()
    assert vendor.served == 20
    assert 1 < vendor.peak <= 2, vendor.peak


async def test_without_a_shared_budget_each_client_limits_itself() -> None:
    vendor = InFlight()
    http = VendorHttpClient(
        "https://psa.example.test", max_concurrency=3, transport=httpx.MockTransport(vendor)
    )
    assert isinstance(http.budget, LocalBudget)
    try:
        await asyncio.gather(*(http.get_json(f"/items/{n}") for n in range(12)))
    finally:
        await http.aclose()
    assert vendor.peak == 3


async def test_an_unreachable_store_limits_the_process_alone(services: Services) -> None:
    engine = db.create_engine(
        "postgresql+asyncpg://nobody@127.0.0.1:9/none", timeouts=db.Timeouts(connect=1, pool=1)
    )
    store = DatabaseBudgets(engine, lease_seconds=30, outage_seconds=1.5)
    gauge = Gauge()
    try:
        budget = store.for_connection(CONNECTION)
        started = time.monotonic()
        await asyncio.wait_for(asyncio.gather(*(gauge.hold(budget, Limits(2), 0.6) for _ in range(6))), 60)
        waited = time.monotonic() - started
    finally:
        await store.aclose()
        await engine.dispose()
    assert gauge.done == 6
    assert gauge.peak == 2
    assert waited >= 1.5, "went ahead before the store had been unreachable for outage_seconds"


async def test_a_busy_store_is_asked_again_never_bypassed(backend: str, settings: Settings) -> None:
    """A store that answers slowly is busy, not gone: while the SQLite side file is write-locked for
    longer than one statement may wait, two processes' calls keep asking, and once it is free they
    still take the one slot in turn (going ahead unshared would have put both in flight)."""
    if backend != "sqlite":
        pytest.skip("the side file is SQLite's")
    settings = settings.model_copy(update={"vendor_budget_wait_seconds": 0.2})
    url = settings.resolved_database_url()
    first = budget_store(settings, url, "")
    second = budget_store(settings, url, "")
    limits = Limits(concurrency=1)
    side_file = sidecar_url(url).split(":///", 1)[1]
    try:
        warm = await first.for_connection(CONNECTION).acquire(limits)  # creates the file and its rows
        await first.for_connection(CONNECTION).release(warm)
        locker = sqlite3.connect(side_file, timeout=5)
        locker.execute("BEGIN IMMEDIATE")
        try:
            calls = [
                asyncio.ensure_future(store.for_connection(CONNECTION).acquire(limits))
                for store in (first, second)
            ]
            await asyncio.sleep(1.0)  # five times what one statement may wait
            assert not any(call.done() for call in calls), "a call went ahead while the store was busy"
        finally:
            locker.rollback()
            locker.close()
        done, pending = await asyncio.wait(calls, timeout=10, return_when=asyncio.FIRST_COMPLETED)
        assert len(done) == 1 and len(pending) == 1, "both calls took the one slot"
        [winner] = done
        token = winner.result()
        assert getattr(token, "holder", None) is not None, "the claim fell back to the process limit"
        owner = first if winner is calls[0] else second
        await asyncio.sleep(0.3)
        assert not pending.pop().done(), "the second call took the slot the first one holds"
        await owner.for_connection(CONNECTION).release(token)
        last = await asyncio.wait_for(calls[1] if winner is calls[0] else calls[0], 10)
        assert getattr(last, "holder", None) is not None
        await (second if owner is first else first).for_connection(CONNECTION).release(last)
    finally:
        await first.aclose()
        await second.aclose()


async def test_sqlite_budgets_are_claimed_while_the_database_is_write_locked(
    backend: str, settings: Settings
) -> None:
    """A caller may call a vendor inside its own write transaction; on SQLite that holds the
    database file's one write lock, so the slots live in a file of their own beside it: two stores
    (two processes) still share them, without waiting for the lock."""
    if backend != "sqlite":
        pytest.skip("the side file is SQLite's")
    url = settings.resolved_database_url()
    database = url.split(":///", 1)[1]
    locker = sqlite3.connect(database, timeout=0.1)
    locker.execute("BEGIN IMMEDIATE")
    first = budget_store(settings, url, "")
    second = budget_store(settings, url, "")
    try:
        assert isinstance(first, DatabaseBudgets)
        limits = Limits(concurrency=1)
        held = await asyncio.wait_for(first.for_connection(CONNECTION).acquire(limits), 10)
        waiting = asyncio.ensure_future(second.for_connection(CONNECTION).acquire(limits))
        await asyncio.sleep(0.5)
        assert not waiting.done(), "the second process took a slot the first one holds"
        await first.for_connection(CONNECTION).release(held)
        token = await asyncio.wait_for(waiting, 10)
        assert getattr(token, "holder", None) is not None, "the claim fell back to the process limit"
        await second.for_connection(CONNECTION).release(token)
    finally:
        locker.rollback()
        locker.close()
        await first.aclose()
        await second.aclose()
    assert Path(sidecar_url(url).split(":///", 1)[1]).exists()
