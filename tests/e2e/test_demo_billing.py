"""`connector demo`'s billing month: seeded by the demo's own code through the HTTP API, the current
period's reconciliation shows every kind of cause and its review has a line waiting for a decision
beside one approved on its own."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import httpx

from connector import demo, runtime
from connector.billing.reconciliation import CauseCode
from connector.infra.context import Services
from tests.support.vendors import VendorRouter, route_demo


async def _get(client: httpx.AsyncClient, headers: dict[str, str], path: str, **params: str) -> Any:
    response = await client.get(path, params=params, headers=headers)
    assert response.status_code == 200, response.text
    return response.json()


async def test_demo_reconciliation_has_every_cause_and_its_review_waits(
    client: httpx.AsyncClient,
    services: Services,
    vendors: VendorRouter,
    make_key: Callable[..., Awaitable[dict[str, str]]],
) -> None:
    headers = await make_key("admin")
    router = demo.Router()
    route_demo(vendors, router, services.registry.all())
    world = await demo.seed(client, headers, router, services.registry, per_client=12)
    await runtime.worker(services, concurrency=4).run_until_idle()
    await demo.sync_consoles(client, headers, world)
    await runtime.worker(services, concurrency=4).run_until_idle()
    await demo.add_billing_rules(client, headers, world)
    billing = await demo.seed_billing(client, headers, world)
    await runtime.worker(services, concurrency=4).run_until_idle()

    reconciliation = await _get(client, headers, "/api/v1/billing/reconciliation", period=billing.period)
    missing = {code.value for code in CauseCode} - set(reconciliation["causes"])
    assert not missing, (missing, reconciliation["causes"])
    proposals = (await _get(client, headers, "/api/v1/billing/proposals", period=billing.period))["proposals"]
    statuses = {p["status"] for p in proposals}
    assert {"awaiting_review", "auto_approved"} <= statuses, proposals
    [waiting] = [p for p in proposals if p["status"] == "awaiting_review"]
    assert billing.merged is not None and waiting["company_name"] == billing.merged[1]
    assert waiting["difference"] == 12  # the merged client's endpoints

    # The line was edited by hand in the PSA: the PSA's own quantity is not what connector wrote.
    assert billing.edited is not None
    company, written, edited = billing.edited
    assert company != billing.merged[1] and edited < written
    changed = [p for p in proposals if p["psa_finding"] == "edited_outside"]
    assert len(changed) == 1, [
        (p["company_name"], p["product"], p["psa_quantity"], p["current_quantity"]) for p in changed
    ]
    changed = changed[0]
    assert (changed["company_name"], changed["status"], changed["psa_quantity"]) == (company, "held", edited)
    assert billing.foreign is not None  # a line of the product made by hand, left alone
    [foreign] = [p for p in proposals if p["psa_finding"] == "unlinked"]
    assert (foreign["company_name"], foreign["psa_quantity"]) == (billing.foreign, 3)
    psa = world.psas[0]
    [company_id] = [i for i, name in psa.companies.items() if name == company]
    assert sorted(int(line.quantity) for line in psa.billing_lines(company_id)) == [edited]

    text = demo.summary(world, billing, host="127.0.0.1", port=8000, key="ck_demo")
    assert f"/billing/reconciliation?period={billing.period}" in text
    assert f"/billing/review?period={billing.period}" in text
    # what a newcomer needs to add a connection to a simulated vendor by hand
    systems = demo.demo_systems(world)
    assert {s["base_url"] for s in systems} >= {p.connection.base_url for p in world.psas}
    for system in systems:
        assert f"{system['title']} ({system['kind']}): {system['base_url']}" in text
        assert all(f"{k}={v}" in text for k, v in system["credentials"].items())
