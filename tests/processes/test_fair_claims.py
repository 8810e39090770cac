"""Fairness across real processes: tenant A has a backfill of 2,000 queued bulk jobs (due an hour
ago) and two `connector worker` processes are busy with it; tenant B's RMM — or A's own — then sends
an alert to a `connector serve --no-worker`. The alert's delivery is processed while most of A's
backlog is still queued — in the oldest-first order it would have waited for every one of A's jobs —
and no job is ever claimed twice by the two workers."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy import insert

from connector.infra import db
from connector.infra.jobs.queue import BULK
from connector.maintenance.jobs import WINDOW_CHANGED, WindowChangedJob
from connector.models import Job
from tests.api.world import canonical_alert
from tests.conftest import _RAN, _postgres_reachable
from tests.support.processes import PG_URL, Deployment, query, wait_until

pytestmark = pytest.mark.processes

BACKLOG = 2_000


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


def _queue_backlog(deployment: Deployment, tenant_id: str) -> None:
    """A's backfill: maintenance-window jobs (each reads the tenant's held problems: it has none),
    queued as a sweep's (bulk)."""
    since = datetime.now(UTC) - timedelta(hours=1)
    rows = [
        WINDOW_CHANGED.row(
            WindowChangedJob(client_id=f"c-{n}"),
            tenant_id=tenant_id,
            run_after=since + timedelta(milliseconds=n),
            priority=BULK,
        )
        for n in range(BACKLOG)
    ]

    async def run() -> None:
        engine = db.create_engine(deployment.database_url, schema=deployment.schema)
        try:
            async with engine.begin() as conn:
                await conn.execute(insert(Job), rows)
        finally:
            await engine.dispose()

    asyncio.run(run())


def _backfill(deployment: Deployment, tenant_id: str, status: str) -> int:
    [(count,)] = query(
        deployment,
        "SELECT count(*) FROM jobs WHERE tenant_id = :tenant AND kind = :kind AND status = :status",
        tenant=tenant_id,
        kind=WINDOW_CHANGED.name,
        status=status,
    )
    return int(count)


@pytest.mark.parametrize("alerting", ["another tenant", "the same tenant"])
def test_a_backlog_does_not_hold_back_an_alert(deployment: Deployment, alerting: str) -> None:
    """The alert comes from another tenant (fair shares between tenants), or from the tenant with
    the backlog itself (its urgent jobs go before its bulk ones)."""
    deployment.api_key("engineer", tenant="backfill")
    headers = deployment.api_key(
        "engineer", tenant="backfill" if alerting == "the same tenant" else "alerting"
    )
    [(backfill_tenant,)] = query(deployment, "SELECT id FROM tenants WHERE name = 'backfill'")
    _queue_backlog(deployment, backfill_tenant)
    serve = deployment.start("serve", "--no-worker")
    with httpx.Client(base_url=serve.url, timeout=30) as http:
        created = http.post(
            "/api/v1/connections",
            json={
                "name": "Automate",
                "kind": "connectwise_automate",
                "base_url": "https://automate.example.com",
                "credentials": {"username": "svc", "password": "pw", "client_id": "cid"},
            },
            headers=headers,
        )
        assert created.status_code == 201, created.text
        rmm = created.json()

        for _ in range(2):
            deployment.start("worker", "--concurrency", "2", "--poll-interval", "0.2")
        wait_until(
            lambda: _backfill(deployment, backfill_tenant, "done") >= 20,
            timeout=60,
            what="the workers to be busy with the backfill",
        )

        accepted = http.post(
            f"/webhooks/{rmm['id']}",
            json=canonical_alert("evt-alerting-1", client_id="c-1"),
            params={"token": rmm["webhook_secret"]},
        )
        assert accepted.status_code == 202, accepted.text
        delivery = accepted.json()["delivery_id"]

        def processed() -> bool:
            rows = query(deployment, "SELECT status FROM deliveries WHERE id = :id", id=delivery)
            return rows == [("processed",)]

        wait_until(processed, timeout=120, interval=0.05, what="tenant B's delivery to be processed")
        still_queued = _backfill(deployment, backfill_tenant, "queued")
    # Not a timing: in the oldest-first order B's jobs (due now) came after all of A's (due an
    # hour ago), so none of A's would have been left.
    assert still_queued > BACKLOG // 2, still_queued
    assert query(deployment, "SELECT count(*) FROM jobs WHERE attempts > 1 OR status = 'dead'") == [(0,)]
    [(problems,)] = query(deployment, "SELECT count(*) FROM problems WHERE endpoint_id = 'ep-1'")
    assert problems == 1
