"""Automatic agent deployment through the HTTP API against the ConnectWise Automate fake: a deploy
rule on the connection runs its `deploy_agent` script on every computer Automate reports without a
protection product, once per endpoint per interval, recorded and shown on the endpoint; a kind whose
API cannot deploy (N-sight) is refused with a 4xx naming why; concurrent claims deploy once."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select, update

from adapters.base import ActionKind
from adapters.connectwise_automate.fake.harness import SCRIPTS, AutomateHarness, AutomateWorld
from adapters.nsight import SPEC as NSIGHT
from connector import runtime
from connector.actions.service import check_supported
from connector.infra import db
from connector.infra.context import Services
from connector.infra.errors import FieldError
from connector.models import AgentDeployGuard, AgentDeployment, DeployRule, Endpoint, EndpointAction
from connector.rules.deploy import claim
from tests.e2e.stack import build_stack
from tests.support.vendors import VendorRouter

Headers = dict[str, str]
DEPLOY_SCRIPT = SCRIPTS[ActionKind.DEPLOY_AGENT]


async def _post(client: httpx.AsyncClient, headers: Headers, path: str, body: dict[str, Any]) -> Any:
    response = await client.post(path, json=body, headers=headers)
    assert response.status_code in (200, 201, 202), response.text
    return response.json()


async def _sync(
    client: httpx.AsyncClient, headers: Headers, services: Services, rmm_id: str
) -> dict[str, Any]:
    run = (await _post(client, headers, "/api/v1/sync-runs", {"connection_id": rmm_id}))[0]
    await runtime.worker(services, concurrency=4).run_until_idle()
    result: dict[str, Any] = (await client.get(f"/api/v1/sync-runs/{run['id']}", headers=headers)).json()
    assert result["status"] == "succeeded", result
    return result


async def shift_back(services: Services, endpoint_rows: list[str], by: timedelta) -> None:
    """As if `by` had passed since the endpoints' last deployments (guard and action times)."""
    async with db.transaction(services.sessions) as session:
        guards = await session.scalars(
            select(AgentDeployGuard).where(AgentDeployGuard.endpoint_row_id.in_(endpoint_rows))
        )
        for guard in guards:
            guard.last_requested_at -= by
        actions = await session.scalars(
            select(EndpointAction).where(EndpointAction.endpoint_row_id.in_(endpoint_rows))
        )
        for action in actions:
            action.requested_at -= by


def deploys(world: AutomateWorld) -> Counter[int]:
    return Counter(run.computer_id for run in world.fake.script_runs if run.script_id == DEPLOY_SCRIPT)


async def _automate(
    client: httpx.AsyncClient, headers: Headers, vendors: VendorRouter
) -> tuple[AutomateWorld, dict[str, Any]]:
    world = AutomateHarness().start(clients=["Acme Dental", "Blue Harbor"], endpoints_per_client=5)
    for host in world.hosts:
        vendors.add(host, world.transport())
    body = world.connection.as_json()
    body["options"] = {**body.get("options", {}), "missing_scanner_means_unprotected": True}
    return world, await _post(client, headers, "/api/v1/connections", body)


async def test_rule_deploys_once_per_interval_and_shows_it_on_the_endpoint(
    client: httpx.AsyncClient,
    services: Services,
    vendors: VendorRouter,
    make_key: Callable[..., Awaitable[Headers]],
) -> None:
    headers = await make_key("engineer")
    world, rmm = await _automate(client, headers, vendors)
    rule = await _post(
        client, headers, "/api/v1/deploy-rules", {"rmm_connection_id": rmm["id"], "interval_minutes": 60}
    )
    assert (rule["interval_minutes"], rule["enabled"]) == (60, True)
    bare = [int(e) for e in list(world.endpoints)[:3]]
    for computer in bare:
        world.fake.set_av(computer, product=None)

    await _sync(client, headers, services, rmm["id"])
    assert deploys(world) == Counter({c: 1 for c in bare})
    runs = [r for r in world.fake.script_runs if r.script_id == DEPLOY_SCRIPT]
    assert all(not r.skips_offline for r in runs)

    # Within the interval: still unprotected, synced again, not deployed again.
    await _sync(client, headers, services, rmm["id"])
    assert deploys(world) == Counter({c: 1 for c in bare})

    listed = (await client.get("/api/v1/endpoints", params={"status": "unprotected"}, headers=headers)).json()
    target = next(e for e in listed if e["endpoint_id"] == str(bare[0]))
    detail = (await client.get(f"/api/v1/endpoints/{target['id']}", headers=headers)).json()
    (deployment,) = detail["deployments"]
    assert deployment["rule_id"] == rule["id"] and deployment["status"] == "accepted"
    assert datetime.fromisoformat(deployment["next_allowed_at"]) == datetime.fromisoformat(
        deployment["requested_at"]
    ) + timedelta(minutes=60)
    action = next(a for a in detail["actions"] if a["id"] == deployment["action_id"])
    assert (action["action"], action["requested_by"]) == ("deploy_agent", "rule")
    assert action["vendor_reference"] == f"script:{DEPLOY_SCRIPT}:computer:{bare[0]}"

    # The interval has passed for two endpoints (their guards are older); one of them is protected
    # again by then: only the one still without a product is deployed to again.
    world.fake.set_av(bare[1], product="Windows Defender")
    world.touch([str(bare[1])])
    rows = {e["endpoint_id"]: e["id"] for e in listed}
    await shift_back(services, [rows[str(bare[0])], rows[str(bare[1])]], timedelta(minutes=61))
    await _sync(client, headers, services, rmm["id"])
    assert deploys(world) == Counter({bare[0]: 2, bare[1]: 1, bare[2]: 1})

    patched = await client.patch(
        f"/api/v1/deploy-rules/{rule['id']}", json={"enabled": False}, headers=headers
    )
    assert patched.status_code == 200, patched.text
    await shift_back(services, list(rows.values()), timedelta(days=1))
    await _sync(client, headers, services, rmm["id"])
    assert deploys(world) == Counter({bare[0]: 2, bare[1]: 1, bare[2]: 1})


async def test_rule_requests_are_validated_and_a_kind_that_cannot_deploy_is_refused(
    client: httpx.AsyncClient,
    services: Services,
    vendors: VendorRouter,
    make_key: Callable[..., Awaitable[Headers]],
) -> None:
    headers = await make_key("engineer")
    _world, rmm = await _automate(client, headers, vendors)
    nsight = await _post(
        client,
        headers,
        "/api/v1/connections",
        {
            "name": "N-sight",
            "kind": "nsight",
            "base_url": "https://www.am.remote.management",
            "credentials": {"api_key": "nsight-key-0123456789"},
        },
    )
    refused = await client.post(
        "/api/v1/deploy-rules", json={"rmm_connection_id": nsight["id"]}, headers=headers
    )
    assert 400 <= refused.status_code < 500, refused.text
    assert "deploy_agent" in refused.text and "no call that installs an agent" in refused.text
    listed = (await client.get("/api/v1/deploy-rules", headers=headers)).json()
    assert listed == []  # the refusal rolled the row back

    for body, field in (
        ({"rmm_connection_id": rmm["id"], "interval_minutes": "60"}, "interval_minutes"),
        ({"rmm_connection_id": rmm["id"], "interval_minutes": 0}, "interval_minutes"),
        ({"rmm_connection_id": rmm["id"], "enabled": 1}, "enabled"),
        ({"rmm_connection_id": rmm["id"], "script": 5}, "script"),
        ({"rmm_connection_id": "nope"}, "rmm_connection_id"),
    ):
        response = await client.post("/api/v1/deploy-rules", json=body, headers=headers)
        assert 400 <= response.status_code < 500 and field in response.text, (body, response.text)
    await _post(client, headers, "/api/v1/deploy-rules", {"rmm_connection_id": rmm["id"]})
    again = await client.post("/api/v1/deploy-rules", json={"rmm_connection_id": rmm["id"]}, headers=headers)
    assert again.status_code == 409 or 400 <= again.status_code < 500, again.text
    assert "rmm_connection_id" in again.text

    # The manual action is refused the same way on N-sight, before anything is queued.
    async with services.sessions() as session:
        assert await session.scalar(select(func.count()).select_from(EndpointAction)) == 0


@pytest.mark.parametrize("racers", [6])
async def test_concurrent_claims_deploy_once(
    client: httpx.AsyncClient,
    services: Services,
    vendors: VendorRouter,
    make_key: Callable[..., Awaitable[Headers]],
    racers: int,
) -> None:
    headers = await make_key("engineer")
    world, rmm = await _automate(client, headers, vendors)
    computer = int(next(iter(world.endpoints)))
    world.fake.set_av(computer, product=None)
    await _post(
        client, headers, "/api/v1/deploy-rules", {"rmm_connection_id": rmm["id"], "interval_minutes": 30}
    )
    async with db.transaction(services.sessions) as session:
        await session.execute(update(DeployRule).values(enabled=False))  # the sync must not claim first
    await _sync(client, headers, services, rmm["id"])
    async with services.sessions() as session:
        rule = await session.scalar(select(DeployRule))
        endpoint = await session.scalar(select(Endpoint).where(Endpoint.endpoint_id == str(computer)))
    assert rule is not None and endpoint is not None

    start = asyncio.Event()

    async def race() -> bool:
        await start.wait()
        async with db.transaction(services.sessions) as session:
            return await claim(session, rule, endpoint, datetime.now(UTC)) is not None

    tasks = [asyncio.create_task(race()) for _ in range(racers)]
    await asyncio.sleep(0)
    start.set()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    assert [r for r in results if isinstance(r, BaseException)] == []
    assert results.count(True) == 1
    async with services.sessions() as session:
        assert await session.scalar(select(func.count()).select_from(AgentDeployment)) == 1
        assert (
            await session.scalar(
                select(func.count())
                .select_from(EndpointAction)
                .where(EndpointAction.action == "deploy_agent")
            )
            == 1
        )


def test_the_action_refusal_names_why_the_rmm_cannot() -> None:
    with pytest.raises(FieldError) as refused:
        check_supported(NSIGHT, ActionKind.DEPLOY_AGENT)
    assert refused.value.errors[0]["field"] == "action"
    text = refused.value.errors[0]["message"]
    assert "nsight cannot run 'deploy_agent'" in text and "no call that installs an agent" in text
    assert "supports: scan, update_definitions" in text


async def test_a_ticket_rule_deploying_too_does_not_deploy_twice(
    client: httpx.AsyncClient,
    services: Services,
    vendors: VendorRouter,
    make_key: Callable[..., Awaitable[Headers]],
) -> None:
    """A ticket rule whose automatic action is `deploy_agent` leaves the deployment to the deploy
    rule: one unprotected endpoint, one ticket, one deployment."""
    headers = await make_key("engineer")
    world = AutomateHarness().start(clients=["Acme Dental"], endpoints_per_client=3)
    for host in world.hosts:
        vendors.add(host, world.transport())
    stack = await build_stack(
        client,
        services,
        vendors,
        headers,
        rmm_kind="connectwise_automate",
        rmm_credentials=dict(world.connection.credentials),
        rmm_base_url=world.connection.base_url,
        map_clients=(),
    )
    options = {**world.connection.options, "missing_scanner_means_unprotected": True}
    patched = await client.patch(
        f"/api/v1/connections/{stack.rmm['id']}", json={"options": options}, headers=headers
    )
    assert patched.status_code == 200, patched.text
    (client_id,) = world.clients
    await stack.map_client(client_id, stack.seed.company_ids[0])
    await _post(
        client,
        headers,
        "/api/v1/ticket-rules",
        {
            "psa_connection_id": stack.psa["id"],
            "problem": "not_protected",
            "board_id": str(stack.seed.board_id),
            "auto_action": "deploy_agent",
        },
    )
    first, second = (int(e) for e in list(world.endpoints)[:2])
    # Before any deploy rule, the ticket rule deploys (once per problem).
    world.fake.set_av(first, product=None)
    await _sync(client, headers, services, stack.rmm["id"])
    await stack.work()
    assert deploys(world) == Counter({first: 1})
    # A deploy rule created now counts that deployment; with the rule in place, the ticket rule
    # leaves deployments to it.
    await _post(client, headers, "/api/v1/deploy-rules", {"rmm_connection_id": stack.rmm["id"]})
    world.fake.set_av(second, product=None)
    world.touch([str(second)])
    for _ in range(2):
        await _sync(client, headers, services, stack.rmm["id"])
        await stack.work()
    assert deploys(world) == Counter({first: 1, second: 1})
    problems = await stack.problems(state="open")
    assert sorted(p["endpoint_id"] for p in problems if p["kind"] == "not_protected") == sorted(
        [str(first), str(second)]
    )
    assert len(stack.tickets(stack.seed.company_ids[0])) == 2
