"""NinjaOne through the service: the connection action registers the webhook (URL and secret
header) with NinjaOne's `PUT /v2/webhook`, and the activities NinjaOne then posts with that header
open one problem per `seriesUid` (a redelivery is the same event) and the RESET clears it; a
delivery with a wrong header value is refused."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

import httpx

from adapters.base import normal_macs
from adapters.ninjaone.fake.harness import NinjaOneHarness
from connector.infra.context import Services
from tests.support.vendors import VendorRouter

Headers = dict[str, str]


async def _work(services: Services) -> None:
    from connector import runtime

    await runtime.worker(services, concurrency=4).run_until_idle()


async def test_registered_webhook_deliveries_open_and_clear_one_problem_per_series(
    client: httpx.AsyncClient,
    services: Services,
    vendors: VendorRouter,
    make_key: Callable[..., Awaitable[Headers]],
) -> None:
    headers = await make_key("engineer")
    rmm = NinjaOneHarness().start(endpoints_per_client=2, base_url="https://ninjaone.example.com")
    for host in rmm.hosts:
        vendors.add(host, rmm.transport())
    created = await client.post("/api/v1/connections", json=rmm.connection.as_json(), headers=headers)
    assert created.status_code == 201, created.text
    row: dict[str, Any] = created.json()
    secret = row["webhook_secret"]

    registered = await client.post(f"/api/v1/connections/{row['id']}/register-webhook", headers=headers)
    assert registered.status_code == 200 and registered.json()["ok"] is True, registered.text
    config = rmm.fake.webhook
    assert config is not None and config["url"] == row["webhook_url"]
    assert config["headers"] == [{"name": "X-Connector-Token", "value": secret}]

    run = await client.post("/api/v1/sync-runs", json={"connection_id": row["id"]}, headers=headers)
    assert run.status_code in (200, 201, 202), run.text
    await _work(services)

    endpoint = next(iter(rmm.endpoints))
    # the sync stored the device's MAC addresses, one spelling, on the endpoint the API shows
    listed = (await client.get("/api/v1/endpoints", params={"limit": 500}, headers=headers)).json()
    mine = next(e for e in listed if e["endpoint_id"] == endpoint)
    device = rmm.fake.devices[int(endpoint)]
    assert device.macs and mine["mac_addresses"] == list(normal_macs(device.macs))

    def deliver(active: bool, value: str = secret) -> Any:
        alert = rmm.native_alert(endpoint, active=active)
        assert alert is not None
        body = json.loads(alert.request.body)
        return client.post(
            f"/webhooks/{row['id']}",
            content=json.dumps(body).encode(),
            headers={"X-Connector-Token": value, "content-type": "application/json"},
        )

    async def open_problems() -> list[dict[str, Any]]:
        listed = await client.get("/api/v1/problems", params={"state": "open"}, headers=headers)
        return [p for p in listed.json() if p["endpoint_id"] == endpoint]

    refused = await deliver(True, value="not-the-secret")
    assert refused.status_code in (401, 403), refused.text
    await _work(services)
    assert await open_problems() == []

    # A second activity of the series (a new activity id, the same seriesUid) is a duplicate.
    seen = []
    for _ in range(2):
        answer = await deliver(True)
        assert answer.status_code == 202, answer.text
        seen.append(answer.json()["duplicate"])
        await _work(services)
    assert seen == [False, True]
    [problem] = await open_problems()
    assert problem["kind"] == "threat_detected"

    assert (await deliver(False)).status_code == 202
    await _work(services)
    assert await open_problems() == []


async def test_a_kind_without_webhook_registration_is_a_422_naming_kind(
    client: httpx.AsyncClient,
    vendors: VendorRouter,
    make_key: Callable[..., Awaitable[Headers]],
) -> None:
    from adapters.connectwise_automate.fake.harness import AutomateHarness

    headers = await make_key("engineer")
    rmm = AutomateHarness().start(endpoints_per_client=1)
    for host in rmm.hosts:
        vendors.add(host, rmm.transport())
    created = (
        await client.post("/api/v1/connections", json=rmm.connection.as_json(), headers=headers)
    ).json()
    answer = await client.post(f"/api/v1/connections/{created['id']}/register-webhook", headers=headers)
    assert answer.status_code == 422, answer.text
    assert "kind" in answer.text
