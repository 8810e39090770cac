"""Storm tickets across real processes: a `connector serve --no-worker`, four `connector worker`
processes (two job runs each) and the ConnectWise Manage fake on a real port. Twenty problems of
one client wait for a ticket rule; the rule's save queues all twenty reconciliations at once and the
workers race on them: one storm ticket is opened, never two, and it closes when they clear."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from adapters.connectwise_manage.fake import DemoSeed, ManageFake
from tests.api.world import canonical_alert
from tests.conftest import _RAN, _postgres_reachable
from tests.support.processes import PG_URL, Deployment, ServedApp, query, wait_until

pytestmark = pytest.mark.processes

ENDPOINTS = 20
CLIENT = "c-1"


@pytest.fixture(params=["sqlite", "postgresql"])
def deployment(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Deployment]:
    backend = str(request.param)
    if backend == "postgresql" and (reason := _postgres_reachable()) is not None:
        pytest.skip(f"PostgreSQL unreachable at {PG_URL}: {reason}")
    _RAN[backend] += 1
    deployed = Deployment.create(backend, tmp_path / "deployment")
    deployed.migrate()
    try:
        yield deployed
    finally:
        deployed.close()


def _drained(deployment: Deployment) -> None:
    def idle() -> bool:
        pending = query(deployment, "SELECT count(*) FROM deliveries WHERE status != 'processed'")
        jobs = query(deployment, "SELECT count(*) FROM jobs WHERE status IN ('queued', 'running')")
        return pending[0][0] == 0 and jobs[0][0] == 0

    wait_until(idle, timeout=180, interval=0.3, what="the workers to drain every job")
    assert query(deployment, "SELECT count(*) FROM jobs WHERE status = 'dead'") == [(0,)]


def test_workers_racing_on_one_clients_problems_open_one_storm_ticket(deployment: Deployment) -> None:
    # The alerts' time is taken when the test runs, not when the module was imported: a long suite
    # would otherwise post them outside the storm window and test nothing about storms.
    started = datetime.now(UTC)
    manage = ManageFake()
    seed: DemoSeed = manage.seed_demo(companies=1)
    company = seed.company_ids[0]
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
                "base_url": "https://automate.example.com",
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
            },
        )
        post(
            "/api/v1/client-mappings",
            {
                "rmm_connection_id": rmm["id"],
                "rmm_client_id": CLIENT,
                "rmm_client_name": "Contoso",
                "psa_connection_id": psa["id"],
                "psa_company_id": str(company),
                "psa_company_name": "Contoso Ltd",
            },
        )

        def alert(n: int, state: str, at: str) -> None:
            body = canonical_alert(
                f"evt-{n}-{state}", endpoint_id=f"ep-{n}", client_id=CLIENT, state=state, occurred_at=at
            )
            response = http.post(
                f"{serve.url}/webhooks/{rmm['id']}", json=body, params={"token": rmm["webhook_secret"]}
            )
            assert response.status_code == 202, response.text

        for _ in range(4):
            deployment.start("worker", "--concurrency", "2", "--poll-interval", "0.2")
        for n in range(ENDPOINTS):
            alert(n, "active", (started - timedelta(minutes=5)).isoformat())
        _drained(deployment)
        assert manage.tickets_for(company) == []  # no rule yet: every problem waits

        post(
            "/api/v1/ticket-rules",
            {
                "psa_connection_id": psa["id"],
                "board_id": str(seed.board_id),
                "status_new_id": str(seed.new_status_id),
                "status_closed_id": str(seed.closed_status_id),
                "note_interval_minutes": 0,
                "storm_min_endpoints": 5,
            },
        )
        _drained(deployment)
        tickets = manage.tickets_for(company)
        assert len(tickets) == 1, [t["summary"] for t in tickets]
        [ticket] = tickets
        text = "\n".join(n["text"] for n in manage.notes_for(ticket["id"]))
        assert all(f"EP-{n}-PC" in text for n in range(ENDPOINTS)), text
        assert query(deployment, "SELECT count(*) FROM storms") == [(1,)]

        for n in range(ENDPOINTS):
            alert(n, "cleared", datetime.now(UTC).isoformat())
        _drained(deployment)
        [ticket] = manage.tickets_for(company)
        assert ticket["status"]["id"] == seed.closed_status_id
