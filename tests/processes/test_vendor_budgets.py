"""A connection's `max_concurrency` holds across processes: two `connector worker` processes (eight
job runs each) open tickets for 24 problems in the ConnectWise Manage fake on a real port, set to 4
concurrent calls; the fake, which counts the requests it is answering, never sees more than 4 at
once — and sees more than 1, so the calls really overlapped. A worker SIGKILLed while holding every
slot leaks none of them: once their lease runs out another worker takes them and does the work
(the killed worker's own jobs wait for their job lease, which is the queue's business). With the slots
in the database (SQLite, PostgreSQL) and, for the limit, in Redis."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from adapters.connectwise_manage.fake import DemoSeed, ManageFake
from connector.infra.budgets import sidecar_url
from tests.api.world import canonical_alert
from tests.conftest import _RAN, _postgres_reachable
from tests.support.processes import PG_URL, Deployment, Proc, ServedApp, query, wait_until

pytestmark = pytest.mark.processes

REDIS_URL = os.environ.get("CONNECTOR_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
LIMIT = 4
PROBLEMS = 24
CLIENT = "c-1"
LEASE_SECONDS = 4.0
"""The slots' lease: short, so a killed worker's slots come back within the test."""


@pytest.fixture(params=["sqlite", "postgresql", "redis"])
def deployment(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Deployment]:
    """The budgets in the database (SQLite's side file, PostgreSQL), or in Redis over SQLite."""
    backend = str(request.param)
    if backend == "postgresql" and (reason := _postgres_reachable()) is not None:
        pytest.skip(f"PostgreSQL unreachable at {PG_URL}: {reason}")
    if backend == "redis":
        if request.node.get_closest_marker("database_budgets"):
            pytest.skip("a test of the database store")
        if (reason := _redis_reachable()) is not None:
            pytest.skip(f"Redis unreachable at {REDIS_URL}: {reason}")
        backend = "sqlite"
    _RAN[backend] += 1
    deployed = Deployment.create(backend, tmp_path / "deployment")
    deployed.extra_env["CONNECTOR_VENDOR_SLOT_LEASE_SECONDS"] = str(LEASE_SECONDS)
    if request.param == "redis":
        deployed.extra_env["CONNECTOR_REDIS_URL"] = REDIS_URL
    deployed.migrate()
    try:
        yield deployed
    finally:
        deployed.close()


def _redis_reachable() -> str | None:
    try:
        with redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2) as client:
            client.ping()
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"
    return None


@dataclass
class World:
    deployment: Deployment
    manage: ManageFake
    seed: DemoSeed
    serve: Proc
    rmm: dict[str, Any]
    psa: dict[str, Any]
    http: httpx.Client

    @property
    def in_redis(self) -> bool:
        return "CONNECTOR_REDIS_URL" in self.deployment.extra_env

    def live_in_redis(self) -> int:
        """Slots held now in Redis (members whose lease, by the server's clock, has not run out)."""
        with redis.Redis.from_url(REDIS_URL) as client:
            seconds, micros = client.time()
            key = f"connector:budget:{self.psa['id']}:slots"
            return int(client.zcount(key, seconds * 1000 + micros // 1000, "+inf"))

    @property
    def company(self) -> int:
        return self.seed.company_ids[0]

    def alert(self, n: int) -> None:
        body = canonical_alert(
            f"evt-{n}",
            endpoint_id=f"ep-{n}",
            client_id=CLIENT,
            occurred_at=(datetime.now(UTC) - timedelta(minutes=1)).isoformat(),
        )
        response = self.http.post(
            f"{self.serve.url}/webhooks/{self.rmm['id']}",
            json=body,
            params={"token": self.rmm["webhook_secret"]},
        )
        assert response.status_code == 202, response.text

    def worker(self, concurrency: int = 8) -> Proc:
        return self.deployment.start("worker", "--concurrency", str(concurrency), "--poll-interval", "0.2")

    def state(self) -> str:
        jobs = query(self.deployment, "SELECT kind, status, count(*) FROM jobs GROUP BY kind, status")
        slots = self.slots("SELECT slot_no, holder, owner, expires_at FROM vendor_slots")
        return f"jobs {jobs}; slots {slots}; tickets {len(self.manage.tickets_for(self.company))}"

    def jobs(self, status: str, kind: str | None = None) -> int:
        sql = "SELECT count(*) FROM jobs WHERE status = :s" + (" AND kind = :k" if kind else "")
        [(count,)] = query(self.deployment, sql, s=status, k=kind)
        return int(count)

    def held(self) -> list[tuple[Any, ...]]:
        """(owner, slots) of the slots held now, by any process (Redis keeps no owner)."""
        if self.in_redis:
            live = self.live_in_redis()
            return [("redis", live)] if live else []
        return self.slots("SELECT owner, count(*) FROM vendor_slots WHERE holder IS NOT NULL GROUP BY owner")

    def slots(self, sql: str, **params: Any) -> list[tuple[Any, ...]]:
        """A query on the slots table: on SQLite it lives in the file beside the database."""
        url = sidecar_url(self.deployment.database_url) if self.deployment.backend == "sqlite" else ""
        return query(self.deployment, sql, url=url, **params)


@pytest.fixture
def world(deployment: Deployment) -> Iterator[World]:
    manage = ManageFake()
    seed = manage.seed_demo(companies=1)
    with ServedApp(manage.app) as served, httpx.Client(timeout=30) as http:
        serve = deployment.start("serve", "--no-worker")
        headers = deployment.api_key("engineer")

        def post(path: str, body: dict[str, Any]) -> dict[str, Any]:
            response = http.post(f"{serve.url}{path}", json=body, headers=headers)
            assert response.status_code == 201, response.text
            created: dict[str, Any] = response.json()
            return created

        rmm = post(
            "/api/v1/connections",
            {
                "name": "Automate",
                "kind": "connectwise_automate",
                "base_url": "https://automate.example.com",  # never called: alerts arrive as webhooks
                "credentials": {"username": "svc", "password": "pw", "client_id": "cid"},
            },
        )
        psa = post(
            "/api/v1/connections",
            {
                "name": "Manage",
                "kind": "connectwise_manage",
                "base_url": served.url,
                "credentials": manage.credentials(),
                "options": {"max_concurrency": LIMIT},
            },
        )
        post(
            "/api/v1/client-mappings",
            {
                "rmm_connection_id": rmm["id"],
                "rmm_client_id": CLIENT,
                "psa_connection_id": psa["id"],
                "psa_company_id": str(seed.company_ids[0]),
            },
        )
        post(
            "/api/v1/ticket-rules",
            {
                "psa_connection_id": psa["id"],
                "board_id": str(seed.board_id),
                "status_new_id": str(seed.new_status_id),
                "status_closed_id": str(seed.closed_status_id),
                "note_interval_minutes": 0,
            },
        )
        yield World(deployment, manage, seed, serve, rmm, psa, http)


def _drained(world: World, timeout: float = 180) -> None:
    def idle() -> bool:
        return world.jobs("queued") == 0 and world.jobs("running") == 0

    try:
        wait_until(idle, timeout=timeout, interval=0.3, what="the workers to drain every job")
    except AssertionError as exc:
        raise AssertionError(f"{exc}: {world.state()}") from None
    assert world.jobs("dead") == 0


def test_two_workers_together_stay_within_the_connections_limit(world: World) -> None:
    world.manage.latency = 0.25
    world.manage.reset_calls()
    workers = [world.worker(), world.worker()]
    for n in range(PROBLEMS):
        world.alert(n)
    _drained(world)
    outputs = "\n---\n".join(w.output() for w in workers)
    assert len(world.manage.tickets_for(world.company)) == PROBLEMS, outputs
    assert world.manage.max_in_flight <= LIMIT, f"{world.manage.max_in_flight} calls at once\n{outputs}"
    assert world.manage.max_in_flight > 1, "the calls never overlapped: the test shows nothing"
    assert all(w.alive() for w in workers), outputs
    assert world.held() == []  # every slot was given back
    if not world.in_redis:
        assert world.slots("SELECT count(*) FROM vendor_slots") == [(LIMIT,)], (
            "the shared slots were never used"
        )
    assert "vendor budget unavailable" not in outputs, "a call went ahead under its process's own limit"


@pytest.mark.database_budgets  # Redis expires a dead holder's slots by its own clock (unit-tested)
def test_a_killed_worker_leaks_no_slot(world: World) -> None:
    world.manage.latency = 1.5  # each call holds its slot long enough to kill the worker mid-call
    doomed = world.worker(concurrency=LIMIT)  # each of its job runs holds a slot when it dies
    for n in range(PROBLEMS):
        world.alert(n)
    [(dead_owner, slots)] = wait_until(
        lambda: [row for row in world.held() if row[1] == LIMIT],
        timeout=60,
        interval=0.05,
        what="the first worker to hold every slot",
    )
    doomed.kill()
    assert slots == LIMIT
    done_before = world.jobs("done", "reconcile")
    assert done_before < PROBLEMS - LIMIT, "the first worker finished too much before the kill"

    world.manage.latency = 0.1
    survivor = world.worker()
    # The survivor can call the PSA only once the dead worker's slots have expired: it finishes
    # every job but the dead worker's own (those wait for their job lease) with those slots.
    try:
        wait_until(
            lambda: world.jobs("done", "reconcile") >= PROBLEMS - LIMIT,
            timeout=50,  # less than the dead worker's job lease (60 s): this is the survivor's work
            interval=0.3,
            what="the surviving worker to do the work",
        )
    except AssertionError as exc:
        raise AssertionError(f"{exc}: {world.state()}\n{survivor.output()}") from None
    assert survivor.alive(), survivor.output()
    [(live,)] = world.slots(
        "SELECT count(*) FROM vendor_slots WHERE owner = :o AND holder IS NOT NULL AND expires_at > :now",
        o=dead_owner,
        now=datetime.now(UTC) if world.deployment.backend == "postgresql" else _sqlite_now(),
    )
    assert live == 0, "the killed worker still holds a live slot"
    tickets = len(world.manage.tickets_for(world.company))
    assert PROBLEMS - LIMIT <= tickets <= PROBLEMS, world.state()


def _sqlite_now() -> str:
    """Now as SQLite stores `UTCDateTime` values (naive UTC text), for comparing in SQL."""
    return datetime.now(UTC).replace(tzinfo=None).isoformat(sep=" ")
