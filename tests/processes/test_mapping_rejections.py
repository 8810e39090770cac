"""The same suggestion rejected many times at once, through two real `connector serve` processes
sharing one database: every caller gets its answer, one row is stored, one audit entry written."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from tests.processes.helpers import psa_connection, rmm_connection
from tests.support.processes import Deployment, migrated, query

pytestmark = pytest.mark.processes

CALLERS = 12
ROUNDS = 5


@pytest.fixture(params=["sqlite", "postgresql"])
def deployment(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Deployment]:
    with migrated(request.param, tmp_path) as deployment:
        yield deployment


def test_concurrent_identical_rejections_store_one_row(deployment: Deployment) -> None:
    headers = deployment.api_key("engineer")
    servers = [deployment.start("serve", "--no-worker") for _ in range(2)]
    with httpx.Client(base_url=servers[0].url, headers=headers, timeout=30) as client:
        rmm = client.post("/api/v1/connections", json=rmm_connection("RMM")).json()["id"]
        psa = client.post("/api/v1/connections", json=psa_connection()).json()["id"]
    clients = [httpx.Client(base_url=s.url, headers=headers, timeout=60) for s in servers]
    try:
        for n in range(ROUNDS):
            body = {
                "rejections": [
                    {
                        "rmm_connection_id": rmm,
                        "rmm_client_id": f"client-{n}",
                        "psa_connection_id": psa,
                        "psa_company_id": f"company-{n}",
                    }
                ]
            }
            start = threading.Barrier(CALLERS)

            def reject(
                i: int, body: dict[str, object] = body, start: threading.Barrier = start
            ) -> httpx.Response:
                start.wait()
                return clients[i % len(clients)].post("/api/v1/mapping-suggestions/rejections", json=body)

            with ThreadPoolExecutor(CALLERS) as pool:
                answers = list(pool.map(reject, range(CALLERS)))
            assert [a.status_code for a in answers] == [200] * CALLERS, [a.text for a in answers]
            assert len({a.json()[0]["id"] for a in answers}) == 1, n
            assert sum(a.json()[0]["created"] for a in answers) == 1, n
    finally:
        for c in clients:
            c.close()
    rows = query(
        deployment,
        "SELECT rmm_client_id, count(*) FROM mapping_rejections"
        " GROUP BY rmm_client_id ORDER BY rmm_client_id",
    )
    assert rows == [(f"client-{n}", 1) for n in range(ROUNDS)]
    entries = query(
        deployment, "SELECT count(*) FROM audit_events WHERE kind = 'mapping_suggestion.rejected'"
    )
    assert entries == [(ROUNDS,)]
