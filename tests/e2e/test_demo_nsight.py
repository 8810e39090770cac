"""`connector demo`'s N-sight clients: seeded by the demo's own code through the HTTP API, synced by
the worker, they show real protected / at-risk / unprotected counts (from each device's Managed
Antivirus answers and failing checks) and are billed (the billing preview has N-sight lines)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

import httpx

from connector import demo, runtime
from connector.infra.context import Services
from tests.support.vendors import VendorRouter, route_demo


async def test_demo_nsight_clients_have_health_classes_and_are_billed(
    client: httpx.AsyncClient,
    services: Services,
    vendors: VendorRouter,
    make_key: Callable[..., Awaitable[dict[str, str]]],
) -> None:
    headers = await make_key("admin")
    router = demo.Router()
    route_demo(vendors, router, services.registry.all())
    world = await demo.seed(client, headers, router, services.registry, per_client=30)
    await runtime.worker(services, concurrency=4).run_until_idle()
    await demo.add_billing_rules(client, headers, world)

    nsight = next(r for r in world.rmms if r.world.spec.kind == "nsight")
    connections = (await client.get("/api/v1/connections", headers=headers)).json()
    connection_id = next(c["id"] for c in connections if c["kind"] == "nsight")
    runs = (await client.get("/api/v1/sync-runs", headers=headers)).json()
    assert {r["status"] for r in runs if r["connection_id"] == connection_id} == {"succeeded"}, runs

    summary = (await client.get("/api/v1/fleet/summary", headers=headers)).json()
    mine = [c for c in summary["clients"] if c["rmm_connection_id"] == connection_id]
    assert {c["client_name"] for c in mine} == set(nsight.world.clients.values())
    totals = Counter[str]()
    for row in mine:
        for health in ("protected", "at_risk", "unprotected", "offline", "unknown"):
            totals[health] += row[health]
    assert sum(totals.values()) == nsight.endpoints
    assert totals["unknown"] == 0, totals
    assert totals["protected"] > 0 and totals["at_risk"] > 0 and totals["unprotected"] > 0, totals

    endpoints = (await client.get("/api/v1/endpoints", params={"limit": "5000"}, headers=headers)).json()
    products = {e["product"] for e in endpoints if e["rmm_connection_id"] == connection_id}
    assert "Managed Antivirus (Bitdefender)" in products

    period = datetime.now(UTC).strftime("%Y-%m")
    preview = (await client.get("/api/v1/billing/preview", params={"period": period}, headers=headers)).json()
    billed = [line for line in preview["lines"] if line["product"] == "Managed Antivirus (Bitdefender)"]
    installed = nsight.endpoints - totals["unprotected"]
    assert billed and sum(int(float(line["quantity"])) for line in billed) == installed, preview
