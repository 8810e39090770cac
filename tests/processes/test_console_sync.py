"""Console syncs as real `connector` processes against a SentinelOne fake, a ConnectWise Automate
fake and the ConnectWise Manage fake on real ports: a console sync SIGKILLed while it pages through
agents leaves no coverage problem from its partial read and no advanced cursor; the next run (once
the dead run's heartbeat is stale) takes over and opens each gap once, with one ticket each; later
runs and RMM and console syncs started together open nothing twice and fail nothing. On SQLite
and PostgreSQL."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from adapters.connectwise_automate.fake import AutomateFake
from adapters.connectwise_manage.fake import DemoSeed, ManageFake
from adapters.sentinelone.fake.harness import SentinelOneHarness, SentinelOneWorld
from adapters.testing.harness import device_mac, device_serial
from connector.cli import Exit
from connector.infra import db
from tests.conftest import _RAN, _postgres_reachable
from tests.support.processes import PG_URL, Deployment, Proc, ServedApp, query, wait_until

pytestmark = pytest.mark.processes

CLIENT = "Acme Dental"
COMPUTERS = [f"ACME-WS{n:02d}" for n in range(6)]
PROTECTED = COMPUTERS[:4]
ROGUE = "ROGUE-LAPTOP"


class HeldAgentPages:
    """ASGI wrapper around the console fake: counts agent listings, and holds the answer of every
    one after the first `serve_first` for `delay` seconds (the window a kill lands in)."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.delay = 0.0
        self.serve_first = 0
        self.listings = 0

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["path"].endswith("/agents"):
            self.listings += 1
            if self.delay and self.listings > self.serve_first:
                await asyncio.sleep(self.delay)
        await self.app(scope, receive, send)


@dataclass
class World:
    deployment: Deployment
    console: SentinelOneWorld
    pages: HeldAgentPages
    manage: ManageFake
    company: int
    rmm_id: str
    console_id: str
    headers: dict[str, str]

    def sync(self, connection_id: str) -> Proc:
        return self.deployment.start("sync", "--connection", connection_id)

    def sql(self, statement: str, **params: Any) -> None:
        async def run() -> None:
            engine = db.create_engine(self.deployment.database_url, schema=self.deployment.schema)
            try:
                async with engine.begin() as conn:
                    await conn.execute(text(statement), params)
            finally:
                await engine.dispose()

        asyncio.run(run())

    def gaps(self) -> list[tuple[str, str]]:
        rows = query(
            self.deployment,
            "SELECT kind, hostname FROM problems WHERE state = 'open' ORDER BY kind, hostname",
        )
        return [(str(kind), str(host).upper()) for kind, host in rows]

    def tickets(self) -> list[dict[str, Any]]:
        return list(self.manage.tickets_for(self.company))


EXPECTED = [("not_protected", name) for name in COMPUTERS[len(PROTECTED) :]] + [("unmanaged_agent", ROGUE)]


@pytest.fixture(params=["sqlite", "postgresql"])
def world(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[World]:
    backend = str(request.param)
    if backend == "postgresql" and (reason := _postgres_reachable()) is not None:
        pytest.skip(f"PostgreSQL unreachable at {PG_URL}: {reason}")
    _RAN[backend] += 1
    automate = AutomateFake(now=datetime.now(UTC))
    location = automate.add_location(automate.add_client(CLIENT).id)
    for name in COMPUTERS:
        automate.add_computer(location.id, name)
    console = SentinelOneHarness().start(customers=[CLIENT], agents_per_customer=0, page_size=1)
    [site] = console.customers
    for name in PROTECTED:
        console.add_agent(site, name, serial_number=device_serial(name), mac_addresses=[device_mac(name)])
    console.add_agent(site, ROGUE)
    pages = HeldAgentPages(console.fake.app)
    manage = ManageFake()
    seed: DemoSeed = manage.seed_demo(companies=1)
    deployment = Deployment.create(backend, tmp_path / "deployment")
    try:
        with (
            ServedApp(automate.app) as rmm_url,
            ServedApp(pages) as console_url,
            ServedApp(manage.app) as psa_url,
        ):
            deployment.migrate()
            headers = deployment.api_key("engineer")
            serve = deployment.start("serve", "--no-worker")

            def call(method: str, path: str, **kwargs: Any) -> Any:
                response = httpx.request(method, f"{serve.url}{path}", headers=headers, timeout=30, **kwargs)
                assert response.status_code in (200, 201), response.text
                return response.json()

            rmm = call(
                "POST",
                "/api/v1/connections",
                json={
                    "name": "Automate",
                    "kind": "connectwise_automate",
                    "base_url": rmm_url.url,
                    "credentials": automate.credentials(),
                },
            )
            psa = call(
                "POST",
                "/api/v1/connections",
                json={
                    "name": "Manage",
                    "kind": "connectwise_manage",
                    "base_url": psa_url.url,
                    "credentials": manage.credentials(),
                },
            )
            s1 = call(
                "POST",
                "/api/v1/connections",
                json={**console.connection.as_json(), "base_url": console_url.url},
            )
            company = seed.company_ids[0]
            for source in (rmm, s1):
                suggestions = call(
                    "GET",
                    "/api/v1/client-mappings/suggestions",
                    params={
                        "rmm_connection_id": source["id"],
                        "psa_connection_id": psa["id"],
                        "threshold": 0,
                    },
                )
                client_id = next(c["rmm_client_id"] for c in suggestions if c["rmm_client_name"] == CLIENT)
                call(
                    "POST",
                    "/api/v1/client-mappings",
                    json={
                        "rmm_connection_id": source["id"],
                        "rmm_client_id": client_id,
                        "rmm_client_name": CLIENT,
                        "psa_connection_id": psa["id"],
                        "psa_company_id": str(company),
                        "psa_company_name": CLIENT,
                    },
                )
            call(
                "POST",
                "/api/v1/ticket-rules",
                json={
                    "psa_connection_id": psa["id"],
                    "board_id": str(seed.board_id),
                    "status_new_id": str(seed.new_status_id),
                    "status_closed_id": str(seed.closed_status_id),
                },
            )
            yield World(deployment, console, pages, manage, company, rmm["id"], s1["id"], headers)
    finally:
        deployment.close()


def test_a_killed_console_sync_is_taken_over_and_opens_each_gap_once(world: World) -> None:
    rmm = world.sync(world.rmm_id)
    assert rmm.wait() == Exit.OK, rmm.output()

    world.pages.serve_first, world.pages.delay = 2, 120.0
    doomed = world.sync(world.console_id)
    wait_until(lambda: world.pages.listings >= 3, timeout=90, what="the console sync to ask for a third page")
    doomed.kill()
    assert world.gaps() == [], "a partial read of the console opened coverage problems"
    assert query(
        world.deployment, "SELECT status FROM sync_runs WHERE connection_id = :c", c=world.console_id
    ) == [("running",)]
    assert query(
        world.deployment, "SELECT count(*) FROM sync_cursors WHERE connection_id = :c", c=world.console_id
    ) == [(0,)]
    world.pages.delay = 0.0

    # While the dead run's heartbeat is fresh, a new run is refused; once stale, it is taken over.
    refused = world.sync(world.console_id)
    assert refused.wait() == Exit.SYNC_RUNNING, refused.output()
    world.sql(
        "UPDATE sync_runs SET heartbeat_at = :past WHERE status = 'running'",
        past=datetime.now(UTC) - timedelta(minutes=30),
    )
    taken = world.sync(world.console_id)
    assert taken.wait() == Exit.OK, taken.output()
    assert sorted(world.gaps()) == sorted(EXPECTED)
    runs = query(
        world.deployment,
        "SELECT status FROM sync_runs WHERE connection_id = :c ORDER BY started_at",
        c=world.console_id,
    )
    assert runs == [("interrupted",), ("succeeded",)], runs
    assert len(world.tickets()) == len(EXPECTED), [t["summary"] for t in world.tickets()]

    # Again, and RMM and console syncs together: nothing opens twice, nothing fails.
    for _round in range(3):
        together = [world.sync(world.rmm_id), world.sync(world.console_id)]
        for proc in together:
            assert proc.wait() == Exit.OK, proc.output()
    assert sorted(world.gaps()) == sorted(EXPECTED)
    assert len(world.tickets()) == len(EXPECTED)
    assert query(world.deployment, "SELECT count(*) FROM sync_runs WHERE status = 'failed'") == [(0,)]
    assert query(world.deployment, "SELECT count(*) FROM problems") == [(len(EXPECTED),)]
