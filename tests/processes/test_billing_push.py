"""Billing pushes as real `connector` processes against a ConnectWise Manage fake on a real port: two
pushes started together (CLI next to CLI, API callers on one or two `serve` replicas) write every
agreement addition once, and a push SIGKILLed mid-way neither blocks the next push for longer than
its lease nor leaves a second line behind. On SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from adapters.connectwise_manage.fake import DemoSeed, ManageFake
from connector.infra import db
from connector.models import utcnow
from tests.conftest import PG_URL, _postgres_reachable
from tests.support.processes import Deployment, Proc, ServedApp, query, wait_until

pytestmark = pytest.mark.processes

PERIOD = "2026-10"
COMPANIES = 12
LATENCY = 0.3
"""Seconds per Manage call: a push of 12 new lines (3 calls each, 4 at a time) takes about 3 s."""
LEASE_SECONDS = 2
"""Shorter than a push, so the lease has to be renewed while the push runs."""
EXIT_PUSH_RUNNING = 3


class SlowCreateAnswers:
    """ASGI wrapper around the fake: an addition create takes effect at once, but its answer is held
    for `delay` seconds, so a kill in that window lands between the PSA write and the push's record."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.delay = 0.0
        self.methods = {"POST"}
        """Which writes to additions are held (`PATCH` too: an update's answer)."""

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        creates = (
            scope["type"] == "http" and scope["method"] in self.methods and "/additions" in scope["path"]
        )
        if not creates or not self.delay:
            await self.app(scope, receive, send)
            return
        held: list[dict[str, Any]] = []

        async def hold(message: dict[str, Any]) -> None:
            held.append(message)

        await self.app(scope, receive, hold)
        await asyncio.sleep(self.delay)
        for message in held:
            await send(message)


@dataclass
class World:
    """One tenant: every Manage company mapped to an RMM client with usage, one billing rule."""

    deployment: Deployment
    manage: ManageFake
    seed: DemoSeed
    headers: dict[str, str]
    serve: Proc
    answers: SlowCreateAnswers

    def lines(self) -> dict[int, int]:
        """company id → connector-made additions on its agreement."""
        return {c: len(self.manage.additions_for(self.seed.agreement_ids[c])) for c in self.seed.company_ids}

    def duplicates(self) -> int:
        return sum(count - 1 for count in self.lines().values() if count > 1)

    def push_cli(self) -> Proc:
        return self.deployment.start("sync", "--billing", "--period", PERIOD)

    def push_api(self, target: Proc | None = None) -> httpx.Response:
        return httpx.post(
            f"{(target or self.serve).url}/api/v1/billing/push",
            json={"period": PERIOD},
            headers=self.headers,
            timeout=120,
        )


def execute(deployment: Deployment, sql: str, rows: list[dict[str, Any]]) -> None:
    """Run one statement for each row and commit (the harness's `query` only reads)."""

    async def run() -> None:
        engine = db.create_engine(deployment.database_url, schema=deployment.schema)
        try:
            async with engine.begin() as conn:
                await conn.execute(text(sql), rows)
        finally:
            await engine.dispose()

    asyncio.run(run())


@pytest.fixture
def world(backend: str, tmp_path: Path) -> Iterator[World]:
    if backend == "postgresql" and (reason := _postgres_reachable()) is not None:
        pytest.skip(f"PostgreSQL unreachable at {PG_URL}: {reason}")
    manage = ManageFake()
    seed = manage.seed_demo(companies=COMPANIES)
    answers = SlowCreateAnswers(manage.app)
    deployment = Deployment.create(backend, tmp_path / "deployment")
    deployment.extra_env["CONNECTOR_BILLING_PUSH_LEASE_SECONDS"] = str(LEASE_SECONDS)
    try:
        with ServedApp(answers) as served:
            deployment.migrate()
            headers = deployment.api_key("engineer")
            serve = deployment.start("serve", "--no-worker")

            def post(path: str, body: dict[str, Any]) -> dict[str, Any]:
                response = httpx.post(f"{serve.url}{path}", json=body, headers=headers, timeout=30)
                assert response.status_code == 201, response.text
                created: dict[str, Any] = response.json()
                return created

            rmm = post(
                "/api/v1/connections",
                {
                    "name": "Automate",
                    "kind": "connectwise_automate",
                    "base_url": "http://127.0.0.1:9",  # never called: billing reads stored usage
                    "credentials": {"username": "svc", "password": "pw", "client_id": "automate-client"},
                },
            )
            psa = post(
                "/api/v1/connections",
                {
                    "name": "Manage",
                    "kind": "connectwise_manage",
                    "base_url": served.url,
                    "credentials": manage.credentials(),
                },
            )
            for n, company_id in enumerate(seed.company_ids):
                post(
                    "/api/v1/client-mappings",
                    {
                        "rmm_connection_id": rmm["id"],
                        "rmm_client_id": f"c-{n}",
                        "psa_connection_id": psa["id"],
                        "psa_company_id": str(company_id),
                    },
                )
            post(
                "/api/v1/billing-rules",
                {
                    "psa_connection_id": psa["id"],
                    "product": "acme edr",
                    "count_scope": "installed",
                    "count_method": "peak",
                    "agreement_type": "Managed Services",
                    "psa_product_id": "EDR-SEAT",
                    "unit_price": "4.50",
                    "cost_tiers": [{"min_seats": 1, "unit_cost": "2.10"}],
                },
            )
            [(tenant_id,)] = query(
                deployment, "SELECT tenant_id FROM connections WHERE id = :id", id=rmm["id"]
            )
            execute(
                deployment,
                "INSERT INTO usage_daily (tenant_id, rmm_connection_id, client_id, product, day,"
                " peak_installed, last_installed, peak_protected, last_protected)"
                " VALUES (:tenant, :rmm, :client, 'Acme EDR 12', :day, :seats, :seats, :seats, :seats)",
                [
                    {
                        "tenant": tenant_id,
                        "rmm": rmm["id"],
                        "client": f"c-{n}",
                        "day": f"{PERIOD}-01",
                        "seats": 10 + n,
                    }
                    for n in range(COMPANIES)
                ],
            )
            manage.latency = LATENCY
            yield World(deployment, manage, seed, headers, serve, answers)
    finally:
        deployment.close()


def test_two_cli_pushes_started_together_write_each_line_once(world: World) -> None:
    first, second = world.push_cli(), world.push_cli()
    codes = [first.wait(), second.wait()]
    outputs = "\n---\n".join(p.output() for p in (first, second))
    assert world.duplicates() == 0, f"{world.duplicates()} duplicate lines: {world.lines()}\n{outputs}"
    assert set(world.lines().values()) == {1}, world.lines()
    if sorted(codes) == [0, EXIT_PUSH_RUNNING]:
        refused = (first, second)[codes.index(EXIT_PUSH_RUNNING)]
        assert f"a billing push of period {PERIOD} is already running" in refused.output(), outputs
    else:  # the second started only after the first had finished: nothing left to do
        assert codes == [0, 0], outputs
        assert any(f"{{'unchanged': {COMPANIES}}}" in p.output() for p in (first, second)), outputs


@pytest.mark.parametrize("replicas", [1, 2], ids=["one-serve", "two-serves"])
def test_concurrent_api_pushes_write_each_line_once(world: World, replicas: int) -> None:
    serves = [world.serve] + [world.deployment.start("serve", "--no-worker") for _ in range(replicas - 1)]
    targets = [serves[n % len(serves)] for n in range(2)]
    answers: list[httpx.Response] = []
    start = threading.Barrier(len(targets))

    def call(target: Proc) -> None:
        start.wait()
        answers.append(world.push_api(target))

    threads = [threading.Thread(target=call, args=(t,)) for t in targets]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(180)
    bodies = [(a.status_code, a.json()) for a in answers]
    assert world.duplicates() == 0, f"{world.duplicates()} duplicate lines: {world.lines()}\n{bodies}"
    assert set(world.lines().values()) == {1}, world.lines()
    statuses = sorted(status for status, _ in bodies)
    if statuses == [200, 409]:
        [refusal] = [body for status, body in bodies if status == 409]
        assert refusal["error"] == "conflict", refusal
        assert refusal["running"]["period"] == PERIOD and refusal["running"]["trigger"] == "api", refusal
        [done] = [body for status, body in bodies if status == 200]
        assert done["summary"] == {"created": COMPANIES}, done
    else:
        assert statuses == [200, 200], bodies
        assert sorted(str(body["summary"]) for _, body in bodies) == sorted(
            [str({"created": COMPANIES}), str({"unchanged": COMPANIES})]
        ), bodies


def test_a_push_killed_mid_way_blocks_the_next_one_only_for_its_lease(world: World) -> None:
    world.answers.delay = 1.5  # creates land in the PSA well before the push hears of them
    doomed = world.push_cli()
    wait_until(lambda: sum(world.lines().values()) >= 1, timeout=60, interval=0.02, what="a first line")
    doomed.kill()
    killed_at = utcnow()
    written = sum(world.lines().values())
    [(recorded,)] = query(world.deployment, "SELECT count(*) FROM billing_line_states")
    assert written < COMPANIES, "the push finished before the kill; slow the fake down"
    assert recorded < written, "the kill did not land between a PSA write and its record"

    # The dead push's lease runs out on its own: at most one lease after it was last renewed.
    [(expires_at,)] = query(world.deployment, "SELECT expires_at FROM billing_push_leases")
    if isinstance(expires_at, str):  # SQLite hands back text
        expires_at = datetime.fromisoformat(expires_at)
    expires_at = expires_at.replace(tzinfo=UTC) if expires_at.tzinfo is None else expires_at
    assert expires_at <= killed_at + timedelta(seconds=LEASE_SECONDS), (expires_at, killed_at)

    world.answers.delay = 0
    answers: list[httpx.Response] = []

    def next_push_done() -> bool:
        answers.append(world.push_api())
        assert answers[-1].status_code in (200, 409), answers[-1].text
        return answers[-1].status_code == 200

    wait_until(next_push_done, timeout=60, interval=0.2, what="a push after the killed one's lease")
    for refused in answers[:-1]:  # refused only while the dead push's lease was live
        assert refused.json()["running"]["trigger"] == "cli", refused.text
    assert set(world.lines().values()) == {1}, world.lines()
    # The lines the dead push wrote but never recorded were found by their marker, not created again.
    summary = answers[-1].json()["summary"]
    assert summary.get("created", 0) <= COMPANIES - written < COMPANIES - recorded, summary
    assert summary.get("created", 0) + summary.get("unchanged", 0) + summary.get("updated", 0) == COMPANIES
    [(states,)] = query(world.deployment, "SELECT count(*) FROM billing_line_states")
    assert states == COMPANIES
