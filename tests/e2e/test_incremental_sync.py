"""A status sync evaluates only the endpoints that can have changed, and ends where a full evaluation
would: time-based problems open exactly when their check falls due, a threshold change re-evaluates
the fleet, alerts that disagree with the status are answered as before, and a random sequence of
changes, check-ins, alerts, threshold changes and time passing never leaves anything a full
evaluation at the same moment would change. Syncs run with the evaluation's clock set by the test,
on SQLite and PostgreSQL."""

from __future__ import annotations

import random
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from sqlalchemy import select

from connector.infra import db
from connector.infra.context import Services
from connector.models import Connection, Endpoint, Problem, SyncRun
from connector.statuses import ProblemStatus
from connector.sync.run import Evaluating, execute_run, start_run
from tests.api.world import canonical_alert
from tests.e2e.stack import Stack, build_stack
from tests.support.fleet_rmm import FLEETS, FleetFake
from tests.support.vendors import VendorRouter

CLIENTS = 2
PER_CLIENT = 30
FLEET = CLIENTS * PER_CLIENT


@pytest.fixture
async def fleet() -> AsyncIterator[FleetFake]:
    fake = FleetFake(page_size=25)
    fake.seed(CLIENTS, PER_CLIENT)
    # every endpoint fresh as of now (the fake's seed dates are from when it was imported)
    now = datetime.now(UTC)
    for endpoint_id in list(fake.endpoints):
        fake.change(
            endpoint_id,
            definitions_date=now - timedelta(hours=12),
            last_scan_at=now - timedelta(days=1),
            last_seen_at=now - timedelta(minutes=5),
        )
    host = f"fleet-{uuid.uuid4().hex[:8]}.example.com"
    FLEETS[host] = fake
    fake.host = host  # type: ignore[attr-defined]
    yield fake
    FLEETS.pop(host, None)


@pytest.fixture
async def stack(
    client: httpx.AsyncClient,
    services: Services,
    vendors: VendorRouter,
    make_key: Callable[..., Awaitable[dict[str, str]]],
    fleet: FleetFake,
) -> Stack:
    return await build_stack(
        client,
        services,
        vendors,
        await make_key("engineer"),
        rmm_kind="fleet_rmm",
        rmm_credentials={"token": "t"},
        rmm_base_url=f"https://{fleet.host}",  # type: ignore[attr-defined]
        map_clients=(),
    )


async def sync_at(stack: Stack, at: datetime, *, everything: bool = False) -> SyncRun:
    async with db.transaction(stack.services.sessions) as session:
        connection = await session.get(Connection, stack.rmm["id"])
        assert connection is not None
        run = await start_run(session, connection, "cli")
    done = await execute_run(stack.services, run.id, how=Evaluating(everything=everything, clock=lambda: at))
    assert done.status == "succeeded", done.errors
    await stack.work()
    return done


async def open_problems(stack: Stack) -> set[tuple[str, str]]:
    async with stack.services.sessions() as session:
        rows = await session.execute(
            select(Problem.endpoint_id, Problem.kind).where(
                Problem.rmm_connection_id == stack.rmm["id"], Problem.state == ProblemStatus.OPEN
            )
        )
        return {(endpoint_id, kind) for endpoint_id, kind in rows}


async def health(stack: Stack) -> dict[str, str]:
    async with stack.services.sessions() as session:
        rows = await session.execute(
            select(Endpoint.endpoint_id, Endpoint.health).where(Endpoint.rmm_connection_id == stack.rmm["id"])
        )
        return {endpoint_id: str(value) for endpoint_id, value in rows}


async def set_thresholds(stack: Stack, definitions: int, scan: int, offline: int) -> None:
    put = await stack.client.put(
        "/api/v1/settings/thresholds",
        json={
            "definitions_max_age_days": definitions,
            "scan_max_age_days": scan,
            "offline_after_days": offline,
        },
        headers=stack.headers,
    )
    assert put.status_code == 200, put.text


async def test_an_unchanged_resync_evaluates_nothing_and_a_check_opens_exactly_when_due(
    stack: Stack, fleet: FleetFake
) -> None:
    now = datetime.now(UTC)
    dated = now - timedelta(days=3) + timedelta(hours=1)  # definitions limit 3 days: due in an hour
    fleet.change("ep-0-1", definitions_date=dated)
    first = await sync_at(stack, now)
    assert first.endpoints_evaluated == FLEET and await open_problems(stack) == set()

    quiet = await sync_at(stack, now + timedelta(minutes=30))
    assert quiet.endpoints_evaluated == 0

    due = dated + timedelta(days=3)
    at_due = await sync_at(stack, due)  # present only once the age is *more* than the limit
    assert at_due.endpoints_evaluated == 1 and await open_problems(stack) == set()

    after = await sync_at(stack, due + timedelta(seconds=1))
    assert after.endpoints_evaluated == 1 and after.problems_opened == 1
    assert await open_problems(stack) == {("ep-0-1", "definitions_outdated")}
    assert (await health(stack))["ep-0-1"] == "at_risk"

    settled = await sync_at(stack, due + timedelta(seconds=2))
    assert settled.endpoints_evaluated == 0
    assert await open_problems(stack) == {("ep-0-1", "definitions_outdated")}


async def test_changed_data_and_threshold_changes_are_evaluated_again(stack: Stack, fleet: FleetFake) -> None:
    now = datetime.now(UTC)
    await sync_at(stack, now)
    fleet.change("ep-1-3", protection_enabled=False)
    changed = await sync_at(stack, now + timedelta(minutes=1))
    assert changed.endpoints_evaluated == 1
    assert await open_problems(stack) == {("ep-1-3", "protection_disabled")}

    await set_thresholds(stack, 3, 14, 7)  # the same values: the same key, nothing to do
    same = await sync_at(stack, now + timedelta(minutes=2))
    assert same.endpoints_evaluated == 0

    for e in range(3):
        fleet.change(f"ep-0-{e}", definitions_date=now - timedelta(days=2))
    await sync_at(stack, now + timedelta(minutes=3))
    await set_thresholds(stack, 1, 14, 7)
    tighter = await sync_at(stack, now + timedelta(minutes=4))
    assert tighter.endpoints_evaluated == FLEET and tighter.problems_opened == 3
    assert {(e, k) for e, k in await open_problems(stack) if k == "definitions_outdated"} == {
        (f"ep-0-{e}", "definitions_outdated") for e in range(3)
    }
    again = await sync_at(stack, now + timedelta(minutes=5))
    assert again.endpoints_evaluated == 0


async def test_alerts_that_disagree_with_the_status_are_answered_like_a_full_evaluation(
    stack: Stack, fleet: FleetFake
) -> None:
    now = datetime.now(UTC)
    fleet.change("ep-0-4", protection_enabled=False)
    await sync_at(stack, now)
    assert await open_problems(stack) == {("ep-0-4", "protection_disabled")}
    at = (now + timedelta(minutes=1)).isoformat().replace("+00:00", "Z")
    # an alert opens a kind the status says is fine, another clears one the status still reports
    for alert in (
        canonical_alert("a-1", endpoint_id="ep-0-2", client_id="c-0", problem="scan_overdue", occurred_at=at),
        canonical_alert(
            "a-2",
            endpoint_id="ep-0-4",
            client_id="c-0",
            problem="protection_disabled",
            state="cleared",
            occurred_at=at,
        ),
        # a kind the status does not decide for this endpoint stays the alert's
        canonical_alert(
            "a-3", endpoint_id="ep-0-5", client_id="c-0", problem="unmanaged_agent", occurred_at=at
        ),
    ):
        assert (await stack.post_alert(alert)).status_code == 202
    await stack.work()
    assert await open_problems(stack) == {("ep-0-2", "scan_overdue"), ("ep-0-5", "unmanaged_agent")}

    run = await sync_at(stack, now + timedelta(minutes=2))
    assert run.endpoints_evaluated == 2
    assert await open_problems(stack) == {("ep-0-4", "protection_disabled"), ("ep-0-5", "unmanaged_agent")}


@pytest.mark.parametrize("seed", [1, 2])
async def test_incremental_syncs_leave_nothing_a_full_evaluation_would_change(
    stack: Stack, fleet: FleetFake, seed: int
) -> None:
    rng = random.Random(seed)
    ids = sorted(fleet.endpoints)
    now = datetime.now(UTC)
    # dates spread around the limits, so time passing flips checks
    for endpoint_id in ids:
        fleet.change(
            endpoint_id,
            definitions_date=now - timedelta(hours=rng.uniform(0, 24 * 5)),
            last_scan_at=now - timedelta(hours=rng.uniform(0, 24 * 16)),
            last_seen_at=now - timedelta(hours=rng.uniform(0, 24 * 8)),
            online=rng.random() < 0.9,
        )
    await sync_at(stack, now)
    evaluated = 0
    for step in range(10):
        action = rng.random()
        if action < 0.4:
            now += timedelta(hours=rng.choice([1, 6, 20, 48]))
        elif action < 0.6:
            for endpoint_id in rng.sample(ids, 3):
                fleet.change(
                    endpoint_id,
                    protection_enabled=rng.choice([True, False]),
                    active_threats=rng.choice([0, 0, 2]),
                    last_scan_at=now - timedelta(hours=rng.uniform(0, 24 * 16)),
                )
        elif action < 0.75:
            for endpoint_id in rng.sample(ids, 4):
                seen = fleet.endpoints[endpoint_id].last_seen_at or now
                fleet.change(endpoint_id, last_seen_at=max(seen, now - timedelta(minutes=rng.randint(0, 90))))
        elif action < 0.85:
            await set_thresholds(stack, rng.randint(1, 4), rng.randint(7, 15), rng.randint(2, 8))
        else:
            for n in range(2):
                endpoint_id = rng.choice(ids)
                alert = canonical_alert(
                    f"r-{seed}-{step}-{n}",
                    endpoint_id=endpoint_id,
                    client_id=fleet.endpoints[endpoint_id].client_id,
                    problem=rng.choice(["scan_overdue", "threat_detected", "agent_offline"]),
                    state=rng.choice(["active", "cleared"]),
                    occurred_at=(now - timedelta(seconds=30)).isoformat().replace("+00:00", "Z"),
                )
                assert (await stack.post_alert(alert)).status_code == 202
            await stack.work()
        now += timedelta(seconds=10)
        incremental = await sync_at(stack, now)
        evaluated += incremental.endpoints_evaluated
        problems, classes = await open_problems(stack), await health(stack)
        full = await sync_at(stack, now, everything=True)
        assert full.endpoints_evaluated == FLEET
        assert (full.problems_opened, full.problems_closed) == (0, 0), f"step {step}"
        assert await open_problems(stack) == problems, f"step {step}"
        assert await health(stack) == classes, f"step {step}"
    assert evaluated < 10 * FLEET
