"""Automatic agent deployment as real `connector` processes against a ConnectWise Automate fake on a
real port: two syncs (each running its deployment actions in the foreground) started together
deploy once to each unprotected computer, later syncs within the interval deploy nothing, and a
worker SIGKILLed while the RMM is answering a deployment neither loses the deployments still queued
nor sends the interrupted one again. On SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from adapters.connectwise_automate.fake import AutomateFake
from connector.cli import Exit
from connector.infra import db
from tests.conftest import PG_URL, _postgres_reachable
from tests.support.processes import Deployment, Proc, ServedApp, query, wait_until

pytestmark = pytest.mark.processes

DEPLOY_SCRIPT = 6003
COMPUTERS = 8


class HeldScriptAnswers:
    """ASGI wrapper around the fake: a script execution takes effect at once (the RMM has it), but
    its answer is held for `delay` seconds, so a kill in that window lands mid-deploy."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.delay = 0.0

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        executes = (
            scope["type"] == "http"
            and scope["method"] == "POST"
            and scope["path"].lower().endswith("/batch/scriptexecute")
        )
        if not executes or not self.delay:
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
    deployment: Deployment
    fake: AutomateFake
    answers: HeldScriptAnswers
    headers: dict[str, str]
    serve: Proc
    connection_id: str
    computers: list[int]

    def deploys(self) -> Counter[int]:
        return Counter(r.computer_id for r in self.fake.script_runs if r.script_id == DEPLOY_SCRIPT)

    def strip(self, computers: list[int]) -> None:
        """The computers lose their antivirus (Automate reports no VirusScanner) and check in."""
        for computer in computers:
            self.fake.set_av(computer, product=None)
            self.fake.touch(computer, at=datetime.now(UTC))

    def sync_cli(self) -> Proc:
        return self.deployment.start("sync", "--connection", self.connection_id)

    def sql(self, statement: str, **params: Any) -> None:
        async def run() -> None:
            engine = db.create_engine(self.deployment.database_url, schema=self.deployment.schema)
            try:
                async with engine.begin() as conn:
                    await conn.execute(text(statement), params)
            finally:
                await engine.dispose()

        asyncio.run(run())

    def endpoint(self, computer: int) -> dict[str, Any]:
        listed = httpx.get(
            f"{self.serve.url}/api/v1/endpoints", params={"limit": "500"}, headers=self.headers, timeout=30
        ).json()
        row = next(e for e in listed if e["endpoint_id"] == str(computer))
        detail: dict[str, Any] = httpx.get(
            f"{self.serve.url}/api/v1/endpoints/{row['id']}", headers=self.headers, timeout=30
        ).json()
        return detail


@pytest.fixture
def world(backend: str, tmp_path: Path) -> Iterator[World]:
    if backend == "postgresql" and (reason := _postgres_reachable()) is not None:
        pytest.skip(f"PostgreSQL unreachable at {PG_URL}: {reason}")
    fake = AutomateFake(now=datetime.now(UTC))
    location = fake.add_location(fake.add_client("Acme Dental").id)
    computers = [
        fake.add_computer(location.id, f"ACME-WS{n:02d}", product="Windows Defender").id
        for n in range(COMPUTERS)
    ]
    answers = HeldScriptAnswers(fake.app)
    deployment = Deployment.create(backend, tmp_path / "deployment")
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
                    "base_url": served.url,
                    "credentials": fake.credentials(),
                    "options": {"deploy_script_id": DEPLOY_SCRIPT, "missing_scanner_means_unprotected": True},
                },
            )
            post("/api/v1/deploy-rules", {"rmm_connection_id": rmm["id"], "interval_minutes": 120})
            yield World(deployment, fake, answers, headers, serve, rmm["id"], computers)
    finally:
        deployment.close()


def test_concurrent_syncs_deploy_once_per_endpoint_within_the_interval(world: World) -> None:
    bare = world.computers[:4]
    world.strip(bare)
    for _round in range(2):
        first, second = world.sync_cli(), world.sync_cli()
        codes = sorted([first.wait(), second.wait()])
        outputs = "\n---\n".join(p.output() for p in (first, second))
        assert codes in ([Exit.OK, Exit.OK], [Exit.OK, Exit.SYNC_RUNNING]), outputs
        assert world.deploys() == Counter({c: 1 for c in bare}), outputs
    rows = query(
        world.deployment,
        "SELECT a.status, count(*) FROM agent_deployments d JOIN endpoint_actions a ON a.id = d.action_id"
        " GROUP BY a.status",
    )
    assert rows == [("accepted", 4)], rows
    (deployment,) = world.endpoint(bare[0])["deployments"]
    assert deployment["status"] == "accepted" and deployment["interval_minutes"] == 120


def test_a_worker_killed_mid_deploy_neither_loses_nor_doubles_a_deployment(world: World) -> None:
    bare = world.computers[4:7]
    world.strip(bare)
    world.answers.delay = 60.0
    sync = httpx.post(
        f"{world.serve.url}/api/v1/sync-runs",
        json={"connection_id": world.connection_id},
        headers=world.headers,
        timeout=30,
    )
    assert sync.status_code == 202, sync.text
    worker = world.deployment.start("worker", "--concurrency", "1", "--poll-interval", "0.2")
    # One job at a time: the sync claims all three deployments, then the first deployment's script
    # reaches Automate and its answer is held. That is when the worker dies.
    wait_until(
        lambda: sum(world.deploys().values()) == 1, timeout=90, what="the first deployment to reach the RMM"
    )
    claimed = query(world.deployment, "SELECT count(*) FROM agent_deployments")
    assert claimed == [(3,)], claimed
    worker.kill()
    assert sum(world.deploys().values()) == 1
    world.answers.delay = 0.0

    # Time passes beyond the dead worker's leases (its jobs become claimable again).
    world.sql(
        "UPDATE jobs SET lease_expires_at = :past WHERE status = 'running'",
        past=datetime.now(UTC) - timedelta(minutes=5),
    )
    again = [world.deployment.start("worker", "--once") for _ in range(2)]
    for proc in again:
        assert proc.wait() == 0, proc.output()
    assert world.deploys() == Counter({c: 1 for c in bare}), world.deploys()
    statuses = dict(
        query(
            world.deployment,
            "SELECT e.endpoint_id, a.status FROM agent_deployments d"
            " JOIN endpoint_actions a ON a.id = d.action_id JOIN endpoints e ON e.id = d.endpoint_row_id",
        )
    )
    assert sorted(statuses.values()) == ["accepted", "accepted", "failed"], statuses
    interrupted = next(c for c in bare if statuses[str(c)] == "failed")
    (record,) = world.endpoint(interrupted)["deployments"]
    assert "not sent again" in (record["message"] or "")

    # A sync within the interval deploys nothing more, however the last attempt ended.
    world.strip(bare)
    done = world.sync_cli()
    assert done.wait() == 0, done.output()
    assert world.deploys() == Counter({c: 1 for c in bare}), world.deploys()
