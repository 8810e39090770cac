"""A maintenance window across a restart, with real processes: `connector serve --no-worker` takes
the alert, a `connector worker` holds the problem for the window (no ticket) and is killed; once the
window has ended, a new worker opens the ticket from the queued hold — nothing was kept in memory."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import text

from connector.infra import db
from tests.processes.test_alert_order import CLIENT, World, deployment, world
from tests.support.processes import Deployment, query, wait_until

__all__ = ["deployment", "world"]  # the fixtures, shared with the alert-order tests


def execute(deployment: Deployment, sql: str, **params: Any) -> None:
    async def run() -> None:
        engine = db.create_engine(deployment.database_url, schema=deployment.schema)
        try:
            async with engine.begin() as conn:
                await conn.execute(text(sql), params)
        finally:
            await engine.dispose()

    asyncio.run(run())


def local(moment: datetime) -> str:
    return moment.replace(tzinfo=None, second=0, microsecond=0).isoformat()


def test_a_problem_held_by_a_window_is_ticketed_after_it_ends_across_a_worker_restart(world: World) -> None:
    now = datetime.now(UTC)
    window = world.http.post(
        "/api/v1/maintenance-windows",
        json={
            "name": "patch night",
            "rmm_connection_id": world.rmm["id"],
            "client_id": CLIENT,
            "timezone": "UTC",
            "kind": "once",
            "start_local": local(now - timedelta(hours=1)),
            "end_local": local(now + timedelta(hours=2)),
        },
        headers=world.headers,
    )
    assert window.status_code == 201, window.text
    worker = world.deployment.start("worker", "--poll-interval", "0.2")
    world.alert(1, "active", "2026-11-20T10:00:00Z")

    def held() -> bool:
        return query(world.deployment, "SELECT routing FROM problems") == [("maintenance",)]

    wait_until(held, timeout=60, interval=0.3, what="the problem to be held by the window")
    assert world.manage.tickets_for(world.company_id) == []
    worker.kill()
    held_jobs = query(
        world.deployment, "SELECT count(*) FROM jobs WHERE kind = 'reconcile' AND status = 'queued'"
    )
    assert held_jobs == [(1,)]

    # the window ends (shortened to the past) and its end is reached (the held job falls due)
    ended = world.http.patch(
        f"/api/v1/maintenance-windows/{window.json()['id']}",
        json={"end_local": local(now - timedelta(minutes=1))},
        headers=world.headers,
    )
    assert ended.status_code == 200, ended.text
    execute(
        world.deployment,
        "UPDATE jobs SET run_after = :now WHERE kind = 'reconcile' AND status = 'queued'",
        now=datetime.now(UTC),
    )

    world.deployment.start("worker", "--poll-interval", "0.2")
    wait_until(
        lambda: len(world.manage.tickets_for(world.company_id)) == 1,
        timeout=60,
        interval=0.3,
        what="the ticket after the window",
    )
    assert query(world.deployment, "SELECT routing FROM problems") == [("ticketed",)]
