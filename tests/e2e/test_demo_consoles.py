"""`connector demo`'s security consoles: seeded by the demo's own code through the HTTP API and
synced after the RMMs, each covers a client with a gap of every kind — endpoints without an agent,
an agent the RMM does not know, a silent agent, an open threat — and the coverage shows per client."""

from __future__ import annotations

from collections import Counter
from collections.abc import Awaitable, Callable

import httpx
import pytest

from adapters.testing.harness import device_name
from connector import demo, runtime
from connector.infra.context import Services
from tests.support.vendors import VendorRouter, route_demo


async def test_demo_consoles_cover_clients_with_a_gap_of_each_kind(
    client: httpx.AsyncClient,
    services: Services,
    vendors: VendorRouter,
    make_key: Callable[..., Awaitable[dict[str, str]]],
) -> None:
    headers = await make_key("admin")
    router = demo.Router()
    route_demo(vendors, router, services.registry.all())
    world = await demo.seed(client, headers, router, services.registry, per_client=12)
    if not world.consoles:
        pytest.skip("no security console kind with a harness is installed")
    await runtime.worker(services, concurrency=4).run_until_idle()
    await demo.sync_consoles(client, headers, world)
    await runtime.worker(services, concurrency=4).run_until_idle()

    runs = (await client.get("/api/v1/sync-runs", params={"limit": "500"}, headers=headers)).json()
    assert {r["status"] for r in runs} == {"succeeded"}, runs
    coverage = (await client.get("/api/v1/fleet/coverage", headers=headers)).json()
    assert len(coverage) == len(world.consoles)
    for company in coverage:
        assert (company["without_agent"], company["unmanaged_agents"]) == (demo.CONSOLE_GAPS, 1), company
        assert company["endpoints"] == 12 and company["seats"] == 12 - demo.CONSOLE_GAPS + 1, company
    console_ids = {c.connection_id for c in world.consoles}
    problems = (
        await client.get("/api/v1/problems", params={"state": "open", "limit": "1000"}, headers=headers)
    ).json()
    on_consoles = Counter(p["kind"] for p in problems if p["rmm_connection_id"] in console_ids)
    assert on_consoles["unmanaged_agent"] == len(world.consoles)
    assert on_consoles["agent_offline"] == len(world.consoles)
    assert on_consoles["threat_detected"] >= 1  # consoles that list threats (all of them here)
    # Every endpoint a console has no agent on is not protected (found by the console, or already
    # by its RMM: one problem either way).
    not_protected = {p["hostname"].casefold() for p in problems if p["kind"] == "not_protected"}
    for console in world.consoles:
        [customer] = console.world.customers.values()
        for n in range(12 - demo.CONSOLE_GAPS, 12):
            assert device_name(customer, n).casefold() in not_protected, (customer, n)
    sources = Counter(p["source"] for p in problems if p["kind"] == "not_protected")
    assert sources["console"] >= 1, sources
    closed = (
        await client.get("/api/v1/problems", params={"state": "cleared", "limit": "1000"}, headers=headers)
    ).json()
    flapped = [p for p in closed if p["kind"] in ("not_protected", "unmanaged_agent")]
    assert flapped == [], [(p["kind"], p["hostname"], p.get("message")) for p in flapped]  # no flapping
