"""The Autotask fake itself: zone, auth, query operators, paging, error bodies, thresholds, seeding."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from adapters.autotask.fake import AutotaskFake, DemoSeed

ZONE = "https://webservices14.autotask.net/ATServicesRest/V1.0"
NOW = datetime(2025, 3, 14, 9, 0, tzinfo=UTC)


@pytest.fixture
def fake() -> AutotaskFake:
    return AutotaskFake(now=lambda: NOW)


@pytest.fixture
def seed(fake: AutotaskFake) -> DemoSeed:
    return fake.seed_demo(companies=4, configuration_items_per_company=2)


@pytest.fixture
async def http(fake: AutotaskFake, seed: DemoSeed) -> AsyncIterator[httpx.AsyncClient]:
    headers = {"ApiIntegrationCode": fake.integration_code, "UserName": fake.username, "Secret": fake.secret}
    async with httpx.AsyncClient(transport=fake.transport(), base_url=ZONE, headers=headers) as client:
        yield client


async def query(http: httpx.AsyncClient, entity: str, *filters: dict[str, Any], **extra: Any) -> list[Any]:
    response = await http.post(f"/{entity}/query", json={"filter": list(filters), **extra})
    assert response.status_code == 200, response.text
    items: list[Any] = response.json()["items"]
    return items


def test_seed_is_deterministic() -> None:
    first = AutotaskFake(now=lambda: NOW).seed_demo(companies=3, configuration_items_per_company=1)
    second = AutotaskFake(now=lambda: NOW).seed_demo(companies=3, configuration_items_per_company=1)
    assert first == second
    assert first.company_ids == [174, 175, 176]
    assert first.complete_status_id == 5 and first.queue_ids["Monitoring Alert"] == 29683481


async def test_zone_information(fake: AutotaskFake) -> None:
    async with httpx.AsyncClient(transport=fake.transport()) as client:
        url = "https://webservices.autotask.net/atservicesrest/v1.0/zoneInformation"
        ok = await client.get(url, params={"user": fake.username})
        assert ok.json()["url"] == "https://webservices14.autotask.net/ATServicesRest/"
        unknown = await client.get(url, params={"user": "who@x.example"})
        assert unknown.status_code == 500
        assert unknown.json() == {"errors": ["Zone information could not be determined"]}
    assert fake.request_count == 0  # zone calls are not counted


async def test_auth_headers_are_required(fake: AutotaskFake, seed: DemoSeed) -> None:
    async with httpx.AsyncClient(transport=fake.transport(), base_url=ZONE) as client:
        assert (await client.get("/ThresholdInformation")).status_code == 401
        wrong_code = await client.get(
            "/ThresholdInformation",
            headers={"ApiIntegrationCode": "nope", "UserName": fake.username, "Secret": fake.secret},
        )
        assert wrong_code.status_code == 500 and "ApiIntegrationCode" in wrong_code.json()["errors"][0]


async def test_filter_operators(http: httpx.AsyncClient, seed: DemoSeed) -> None:
    ids = seed.company_ids

    async def company_ids(*filters: dict[str, Any]) -> list[int]:
        return [c["id"] for c in await query(http, "Companies", *filters)]

    assert await company_ids({"op": "eq", "field": "companyname", "value": "customer 002"}) == [ids[1]]
    assert await company_ids({"op": "noteq", "field": "id", "value": ids[0]}) == ids[1:]
    assert await company_ids({"op": "gt", "field": "id", "value": ids[2]}) == [ids[3]]
    assert await company_ids({"op": "gte", "field": "id", "value": str(ids[2])}) == ids[2:]
    assert await company_ids({"op": "lt", "field": "id", "value": ids[1]}) == [ids[0]]
    assert await company_ids({"op": "lte", "field": "id", "value": ids[1]}) == ids[:2]
    assert await company_ids({"op": "beginsWith", "field": "companyNumber", "value": "c000"}) == ids
    assert await company_ids({"op": "endsWith", "field": "companyName", "value": "004"}) == [ids[3]]
    assert await company_ids({"op": "contains", "field": "companyName", "value": "mer 00"}) == ids
    assert await company_ids({"op": "in", "field": "id", "value": [ids[0], ids[3]]}) == [ids[0], ids[3]]
    assert await company_ids({"op": "notIn", "field": "id", "value": [ids[0], ids[3]]}) == ids[1:3]
    either = {
        "op": "or",
        "items": [
            {"op": "eq", "field": "id", "value": ids[0]},
            {
                "op": "and",
                "items": [
                    {"op": "gt", "field": "id", "value": ids[1]},
                    {"op": "lt", "field": "id", "value": ids[3]},
                ],
            },
        ],
    }
    assert await company_ids(either) == [ids[0], ids[2]]


async def test_udf_filter_and_include_fields(
    http: httpx.AsyncClient, fake: AutotaskFake, seed: DemoSeed
) -> None:
    item_id = seed.configuration_item_ids[seed.company_ids[0]][0]
    fake.data["ConfigurationItems"][item_id]["userDefinedFields"][0]["value"] = "Protected"
    items = await query(
        http,
        "ConfigurationItems",
        {"op": "eq", "field": "Antivirus Status", "value": "protected", "udf": True},
        includeFields=["id", "referenceTitle"],
    )
    assert items == [{"id": item_id, "referenceTitle": "C001-WS01"}]


async def test_query_errors_use_the_error_body(http: httpx.AsyncClient) -> None:
    cases = [
        ({"filter": [{"op": "eq", "field": "nope", "value": 1}]}, "Unable to find nope"),
        ({"filter": []}, "at least one filter"),
        ({"filter": [{"op": "ne", "field": "id", "value": 1}]}, "operator 'ne'"),
        ({"filter": [{"op": "gte", "field": "id", "value": 0}], "maxRecords": 501}, "MaxRecords"),
    ]
    for body, text in cases:
        response = await http.post("/Companies/query", json=body)
        assert response.status_code == 500
        assert text in response.json()["errors"][0]


async def test_paging_needs_post_and_the_same_body(fake: AutotaskFake, http: httpx.AsyncClient) -> None:
    fake.seed_demo(companies=600)
    body = {"filter": [{"op": "gte", "field": "id", "value": 0}], "maxRecords": 500}
    first = (await http.post("/Companies/query", json=body)).json()
    assert first["pageDetails"]["count"] == 500
    next_url = first["pageDetails"]["nextPageUrl"]
    assert next_url.startswith(f"{ZONE}/Companies/query/next?paging=")
    assert (await http.get(next_url)).status_code == 405
    changed = await http.post(next_url, json={**body, "maxRecords": 10})
    assert changed.status_code == 500
    second = (await http.post(next_url, json=body)).json()
    assert second["pageDetails"]["count"] == 104 and second["pageDetails"]["nextPageUrl"] is None
    assert {c["id"] for c in first["items"]}.isdisjoint(c["id"] for c in second["items"])


async def test_writes_reject_unknown_and_missing_fields(http: httpx.AsyncClient, seed: DemoSeed) -> None:
    base = {"companyID": seed.company_ids[0], "title": "t", "status": 1, "priority": 2, "queueID": 29683481}
    created = await http.post("/Tickets", json=base)
    assert created.status_code == 200 and isinstance(created.json()["itemId"], int)
    unknown = await http.post("/Tickets", json={**base, "summary": "x"})
    assert unknown.status_code == 500 and "summary" in unknown.json()["errors"][0]
    missing = await http.post("/Tickets", json={k: v for k, v in base.items() if k != "priority"})
    assert missing.json() == {"errors": ["Missing Required Field: priority."]}
    bad_pick = await http.post("/Tickets", json={**base, "status": 99})
    assert bad_pick.json() == {"errors": ["Value does not reference an existing entity for status . "]}
    no_company = await http.post("/Tickets", json={**base, "companyID": 1})
    assert "companyID" in no_company.json()["errors"][0]
    patch = await http.patch("/Tickets", json={"status": 5})
    assert patch.status_code == 500
    item = await http.get(f"/Tickets/{created.json()['itemId']}")
    assert item.json()["item"]["ticketNumber"] == "T20250314.7000"


async def test_adjustments_are_deltas_and_not_queryable(
    http: httpx.AsyncClient, fake: AutotaskFake, seed: DemoSeed
) -> None:
    cid = seed.company_ids[0]
    service_line = seed.contract_service_ids[cid]
    body = {
        "contractID": seed.contract_ids[cid],
        "serviceID": seed.service_ids["EDR"],
        "effectiveDate": "2025-03-14T00:00:00",
        "unitChange": 2,
    }
    assert (await http.post("/ContractServiceAdjustments", json=body)).status_code == 200
    assert (await http.post("/ContractServiceAdjustments", json=body)).status_code == 200
    assert fake.current_units(service_line) == seed.seats + 4  # each POST adds again: a delta
    too_many = await http.post("/ContractServiceAdjustments", json={**body, "unitChange": -100})
    assert too_many.status_code == 500
    assert (await http.post("/ContractServiceAdjustments/query", json={"filter": []})).status_code in (
        404,
        405,
    )
    via_parent = await http.post(
        f"/Contracts/{seed.contract_ids[cid]}/ServiceAdjustments", json={**body, "unitChange": -1}
    )
    assert via_parent.status_code == 200 and fake.current_units(service_line) == seed.seats + 3


async def test_threshold_counts_requests_and_rate_limits(http: httpx.AsyncClient, fake: AutotaskFake) -> None:
    info = (await http.get("/ThresholdInformation")).json()
    assert info == {
        "externalRequestThreshold": 10000,
        "requestThresholdTimeframe": 60,
        "currentTimeframeRequestCount": 1,
    }
    fake.other_usage = 9_999
    over = await http.get("/ThresholdInformation")
    assert over.status_code == 429 and over.json()["errors"]


async def test_fault_switches(http: httpx.AsyncClient, fake: AutotaskFake) -> None:
    fake.rate_limit(retry_after=3, path="/ThresholdInformation")
    limited = await http.get("/ThresholdInformation")
    assert limited.status_code == 429 and limited.headers["Retry-After"] == "3"
    fake.fail_next(status=500)
    assert (await http.get("/ThresholdInformation")).status_code == 500
    fake.timeout_next(method="GET")
    with pytest.raises(httpx.ReadTimeout):
        await http.get("/ThresholdInformation")
    assert (await http.get("/ThresholdInformation")).status_code == 200
