"""A 2xx from the API means the change is committed: real `connector serve` processes, a read at
once after each create, and PostgreSQL cut through a TCP proxy the moment each 201 arrives."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import PG_URL, _postgres_reachable
from tests.processes.helpers import mapping_form, psa_connection, rmm_connection, sign_in
from tests.support.processes import Deployment, TcpProxy, pg_target, query, with_port

pytestmark = pytest.mark.processes

ROUNDS = 20


def _skip_without_postgres(backend: str) -> None:
    if backend == "postgresql" and (reason := _postgres_reachable()) is not None:
        pytest.skip(f"PostgreSQL unreachable at {PG_URL}: {reason}")


@pytest.fixture(params=["sqlite", "postgresql"])
def deployment(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Deployment]:
    _skip_without_postgres(request.param)
    deployment = Deployment.create(request.param, tmp_path)
    deployment.migrate()
    try:
        yield deployment
    finally:
        deployment.close()


def test_a_created_connection_is_readable_at_once(deployment: Deployment) -> None:
    headers = deployment.api_key("engineer")
    serve = deployment.start("serve", "--no-worker")
    missing = []
    with httpx.Client(base_url=serve.url, headers=headers, timeout=30) as client:
        for n in range(ROUNDS):
            created = client.post("/api/v1/connections", json=rmm_connection(f"RMM {n}"))
            assert created.status_code == 201, created.text
            read = client.get(f"/api/v1/connections/{created.json()['id']}")
            if read.status_code != 200:
                missing.append((n, read.status_code))
    assert missing == [], f"{len(missing)} of {ROUNDS} reads right after a 201 failed: {missing}"


def test_a_created_api_key_works_at_once(deployment: Deployment) -> None:
    headers = deployment.api_key("admin")
    serve = deployment.start("serve", "--no-worker")
    refused = []
    with httpx.Client(base_url=serve.url, headers=headers, timeout=30) as client:
        for n in range(ROUNDS):
            created = client.post("/api/v1/api-keys", json={"role": "viewer", "name": f"key {n}"})
            assert created.status_code == 201, created.text
            used = client.get(
                "/api/v1/connections", headers={"Authorization": f"Bearer {created.json()['key']}"}
            )
            if used.status_code != 200:
                refused.append((n, used.status_code))
    assert refused == [], f"{len(refused)} of {ROUNDS} new keys were refused right after their 201"


def test_every_acknowledged_connection_survives_a_cut_database(tmp_path: Path) -> None:
    """The proxy drops the database connections the moment each 201 arrives: had the commit not
    happened before the answer, it dies with the connection and the 201 was a lie."""
    _skip_without_postgres("postgresql")
    deployment = Deployment.create("postgresql", tmp_path)
    try:
        deployment.migrate()
        headers = deployment.api_key("engineer")
        with TcpProxy(pg_target()) as proxy:
            deployment.database_url = with_port(PG_URL, proxy.port)
            serve = deployment.start("serve", "--no-worker")
            acknowledged: list[str] = []
            with httpx.Client(base_url=serve.url, headers=headers, timeout=30) as client:
                for n in range(ROUNDS):
                    try:
                        created = client.post("/api/v1/connections", json=rmm_connection(f"RMM {n}"))
                    except httpx.TransportError:  # a failed request, not an acknowledgement
                        proxy.restore()
                        continue
                    if created.status_code == 201:
                        proxy.cut()
                        acknowledged.append(created.json()["id"])
                    proxy.restore()
            serve.kill()
            deployment.database_url = PG_URL
        assert len(acknowledged) >= ROUNDS // 2, "too few creates succeeded to show anything"
        stored = {row[0] for row in query(deployment, "SELECT id FROM connections")}
        lost = [i for i in acknowledged if i not in stored]
        assert lost == [], f"{len(lost)} of {len(acknowledged)} connections answered 201 are not stored"
    finally:
        deployment.close()


def test_a_mapping_accepted_on_the_dashboard_is_stored_before_the_redirect(deployment: Deployment) -> None:
    headers = deployment.api_key("engineer")
    serve = deployment.start("serve", "--no-worker")
    api = httpx.Client(base_url=serve.url, headers=headers, timeout=30)
    browser = httpx.Client(base_url=serve.url, timeout=30)
    with api, browser:
        rmm = api.post("/api/v1/connections", json=rmm_connection("RMM")).json()["id"]
        psa = api.post("/api/v1/connections", json=psa_connection()).json()["id"]
        csrf = sign_in(browser, headers)
        missing = []
        for n in range(ROUNDS):
            form = mapping_form(csrf, rmm, psa, n)
            accepted = browser.post("/mappings", data=form)
            assert accepted.status_code == 303, accepted.text
            listed = api.get("/api/v1/client-mappings").json()
            if f"client-{n}" not in {m["rmm_client_id"] for m in listed}:
                missing.append(n)
    assert missing == [], f"{len(missing)} of {ROUNDS} accepted mappings were not listed right after"
