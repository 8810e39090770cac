"""A database that refuses connections, or accepts them and never answers, is answered quickly and
truthfully — 503 JSON with `Retry-After` on webhooks and the API, `/readyz` not ready — and the
same `connector serve` process recovers when the database comes back. PostgreSQL runs behind a
TCP proxy the test cuts or stalls; SQLite is locked by another process."""

from __future__ import annotations

import http.client
import json
import sqlite3
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import PG_URL, _postgres_reachable
from tests.processes.helpers import mapping_form, psa_connection, rmm_connection, sign_in
from tests.support.processes import Deployment, Proc, TcpProxy, pg_target, wait_until, with_port

pytestmark = pytest.mark.processes

# Short limits keep the test quick; the defaults (README) are a few seconds too.
FAST_TIMEOUTS = {
    "CONNECTOR_DB_CONNECT_TIMEOUT_SECONDS": "2",
    "CONNECTOR_DB_COMMAND_TIMEOUT_SECONDS": "2",
    "CONNECTOR_DB_POOL_TIMEOUT_SECONDS": "2",
}
SAFETY_NET = 45.0  # only so a hang fails the test instead of blocking it; never the assertion
CONCURRENT_WEBHOOKS = 6


def alert(n: int = 0) -> dict[str, Any]:
    return {
        "event_id": f"evt-{uuid.uuid4().hex}",
        "client_id": "client-1",
        "endpoint_id": f"ep-{n}",
        "hostname": f"PC-{n}",
        "problem": "threat_detected",
        "state": "active",
        "message": "Trojan found",
        "occurred_at": "2026-01-05T10:00:00Z",
    }


class Service:
    """One `connector serve` process with RMM connections whose webhooks the test posts."""

    def __init__(self, proc: Proc, headers: dict[str, str]) -> None:
        self.proc = proc
        self.headers = headers
        self.secrets: dict[str, str] = {}

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.proc.url, timeout=SAFETY_NET)

    def add_rmm(self, name: str) -> str:
        with self.client() as client:
            created = client.post("/api/v1/connections", json=rmm_connection(name), headers=self.headers)
        assert created.status_code == 201, created.text
        self.secrets[created.json()["id"]] = created.json()["webhook_secret"]
        return str(created.json()["id"])

    def webhook(self, client: httpx.Client, connection_id: str, n: int = 0) -> httpx.Response:
        return client.post(
            f"/webhooks/{connection_id}",
            json=alert(n),
            headers={"X-Connector-Token": self.secrets[connection_id]},
        )


def assert_unavailable(response: httpx.Response) -> None:
    assert response.status_code == 503, response.text
    assert response.headers["content-type"] == "application/json"
    assert response.json()["error"] == "database_unavailable", response.text
    assert int(response.headers["retry-after"]) > 0


def concurrently(calls: list[Callable[[], httpx.Response]]) -> list[httpx.Response]:
    with ThreadPoolExecutor(len(calls)) as pool:
        return [future.result() for future in [pool.submit(call) for call in calls]]


@pytest.fixture
def postgres_behind_proxy(tmp_path: Path) -> Iterator[tuple[Deployment, TcpProxy]]:
    if (reason := _postgres_reachable()) is not None:
        pytest.skip(f"PostgreSQL unreachable at {PG_URL}: {reason}")
    deployment = Deployment.create(
        "postgresql",
        tmp_path,
    )
    deployment.extra_env.update(FAST_TIMEOUTS)
    try:
        deployment.migrate()
        with TcpProxy(pg_target()) as proxy:
            deployment.database_url = with_port(PG_URL, proxy.port)
            try:
                yield deployment, proxy
            finally:
                for proc in deployment.processes:
                    proc.kill()
    finally:
        deployment.database_url = PG_URL
        deployment.close()


def start(deployment: Deployment) -> Service:
    headers = deployment.api_key("engineer")
    return Service(deployment.start("serve"), headers)


def assert_recovered(service: Service, connection_ids: list[str]) -> None:
    """The same process, first try after the database is back: stored, listed, ready, processed."""
    with service.client() as client:
        accepted = [service.webhook(client, connection_id) for connection_id in connection_ids]
        for response in accepted:
            assert response.status_code == 202, response.text
        listed = client.get("/api/v1/connections", headers=service.headers)
        assert listed.status_code == 200, listed.text
        assert client.get("/readyz").status_code == 200

        def processed() -> bool:
            statuses = {
                client.get(f"/api/v1/deliveries/{r.json()['delivery_id']}", headers=service.headers).json()[
                    "status"
                ]
                for r in accepted
            }
            return statuses == {"processed"}

        # The in-process worker backed off while the database was away and picks the jobs up now.
        wait_until(processed, timeout=60, what="the worker to process the deliveries after recovery")
    assert service.proc.alive()


def test_a_stalled_database_answers_503_quickly_and_recovers(
    postgres_behind_proxy: tuple[Deployment, TcpProxy],
) -> None:
    deployment, proxy = postgres_behind_proxy
    service = start(deployment)
    warm, cold = service.add_rmm("Warm RMM"), service.add_rmm("Cold RMM")
    with service.client() as client:
        assert service.webhook(client, warm).status_code == 202  # its target is cached now

    proxy.stall()

    def webhook(connection_id: str, n: int) -> Callable[[], httpx.Response]:
        def call() -> httpx.Response:
            with service.client() as client:
                return service.webhook(client, connection_id, n)

        return call

    def get(path: str, headers: dict[str, str] | None = None) -> Callable[[], httpx.Response]:
        def call() -> httpx.Response:
            with service.client() as client:
                return client.get(path, headers=headers)

        return call

    calls = [webhook(warm if n % 2 else cold, n) for n in range(CONCURRENT_WEBHOOKS)]
    calls += [get("/api/v1/connections", service.headers), get("/readyz")]
    *webhooks, api, ready = concurrently(calls)
    for response in [*webhooks, api]:
        assert_unavailable(response)
    assert ready.status_code == 503, ready.text
    assert ready.json()["status"] == "unavailable"

    proxy.restore()
    assert_recovered(service, [warm, cold])


def test_a_refused_database_answers_503_and_keeps_the_connection_open(
    postgres_behind_proxy: tuple[Deployment, TcpProxy],
) -> None:
    deployment, proxy = postgres_behind_proxy
    service = start(deployment)
    connection_id = service.add_rmm("RMM")

    proxy.cut()

    conn = http.client.HTTPConnection("127.0.0.1", service.proc.port, timeout=SAFETY_NET)
    try:
        sockets = []
        for n in range(3):  # three requests over one keep-alive connection
            conn.request(
                "POST",
                f"/webhooks/{connection_id}",
                body=json.dumps(alert(n)),
                headers={
                    "Content-Type": "application/json",
                    "X-Connector-Token": service.secrets[connection_id],
                },
            )
            answer = conn.getresponse()
            body = json.loads(answer.read())
            assert answer.status == 503, body
            assert body["error"] == "database_unavailable"
            assert int(answer.getheader("retry-after", "0")) > 0
            assert not answer.will_close, "the server closed the keep-alive connection"
            sockets.append(conn.sock)
        assert sockets[0] is not None and all(s is sockets[0] for s in sockets)
    finally:
        conn.close()

    with service.client() as client:
        assert_unavailable(client.get("/api/v1/connections", headers=service.headers))
        assert_unavailable(client.post("/api/v1/connections", json={"name": "x"}, headers=service.headers))
        assert client.get("/readyz").status_code == 503

    proxy.restore()
    assert_recovered(service, [connection_id])


def test_a_locked_sqlite_database_answers_503_instead_of_a_false_201(tmp_path: Path) -> None:
    """Another process holds SQLite's write lock past the wait limit: writes answer 503 (JSON on
    the API and webhooks, a page on the dashboard) instead of a 201 whose commit then fails;
    reads and /readyz still work (WAL), and writes succeed again once the lock is released."""
    deployment = Deployment.create("sqlite", tmp_path)
    deployment.extra_env.update(FAST_TIMEOUTS)
    try:
        deployment.migrate()
        service = start(deployment)
        connection_id = service.add_rmm("RMM")
        with service.client() as client, service.client() as browser:
            psa = client.post("/api/v1/connections", json=psa_connection(), headers=service.headers)
            csrf = sign_in(browser, service.headers)
            locker = sqlite3.connect(tmp_path / "connector.db", isolation_level=None)
            try:
                locker.execute("BEGIN IMMEDIATE")  # holds the write lock, as a long writer would
                assert_unavailable(service.webhook(client, connection_id))
                created = client.post(
                    "/api/v1/connections", json=rmm_connection("Second RMM"), headers=service.headers
                )
                assert_unavailable(created)
                page = browser.post("/mappings", data=mapping_form(csrf, connection_id, psa.json()["id"], 1))
                assert page.status_code == 503, page.text
                assert page.headers["content-type"].startswith("text/html")
                assert int(page.headers["retry-after"]) > 0
                assert client.get("/api/v1/connections", headers=service.headers).status_code == 200
                assert client.get("/readyz").status_code == 200
            finally:
                locker.execute("ROLLBACK")
                locker.close()
            names = [c["name"] for c in client.get("/api/v1/connections", headers=service.headers).json()]
            assert sorted(names) == ["Manage", "RMM"]
            assert client.get("/api/v1/client-mappings", headers=service.headers).json() == []
        assert_recovered(service, [connection_id])
    finally:
        deployment.close()
