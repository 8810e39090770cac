"""PSA look-ups over the API, and the PSA ids of rules and mappings checked against them: the Manage
fake serves its boards, statuses, agreement types, catalog and companies in Manage's own shapes."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from adapters.connectwise_manage.fake import DemoSeed, ManageFake
from tests.conftest import KeyMaker
from tests.support.vendors import VendorRouter

MANAGE_HOSTS = ("na.myconnectwise.net", "api-na.myconnectwise.net")


@pytest.fixture
def manage(vendors: VendorRouter) -> ManageFake:
    fake = ManageFake(is_cloud=True)
    for host in MANAGE_HOSTS:
        vendors.add(host, fake.transport())
    return fake


@pytest.fixture
def seed(manage: ManageFake) -> DemoSeed:
    return manage.seed_demo(companies=3)


async def _setup(
    client: httpx.AsyncClient, make_key: KeyMaker, manage: ManageFake
) -> tuple[dict[str, str], str]:
    headers = await make_key("engineer")
    created = await client.post(
        "/api/v1/connections",
        json={
            "name": "Manage",
            "kind": "connectwise_manage",
            "base_url": "https://na.myconnectwise.net",
            "credentials": manage.credentials(),
        },
        headers=headers,
    )
    assert created.status_code == 201, created.text
    return headers, str(created.json()["id"])


def _rule(psa_id: str, seed: DemoSeed, **changes: Any) -> dict[str, Any]:
    return {
        "psa_connection_id": psa_id,
        "board_id": str(seed.board_id),
        "status_new_id": str(seed.new_status_id),
        "status_closed_id": str(seed.closed_status_id),
        "priority_id": str(seed.priority_ids["Priority 2 - High"]),
        "type_id": str(seed.type_ids["Security Alert"]),
        **changes,
    }


def _billing_rule(psa_id: str, **changes: Any) -> dict[str, Any]:
    return {
        "psa_connection_id": psa_id,
        "product": "acme edr",
        "agreement_type": "Managed Services",
        "psa_product_id": "EDR-SEAT",
        "unit_price": "5.00",
        **changes,
    }


async def test_catalog_lists_each_look_up_and_keeps_it_briefly(
    client: httpx.AsyncClient, make_key: KeyMaker, manage: ManageFake, seed: DemoSeed
) -> None:
    headers, psa = await _setup(client, make_key, manage)
    first = await client.get(f"/api/v1/connections/{psa}/catalog/boards", headers=headers)
    assert first.status_code == 200, first.text
    body = first.json()
    assert (body["kind"], body["cached"]) == ("boards", False)
    assert body["items"] == [
        {"id": str(seed.board_id), "name": "Security Alerts", "parent_id": None, "closed": False}
    ]
    calls = manage.call_count("GET", "/service/boards")

    again = await client.get(f"/api/v1/connections/{psa}/catalog/boards", headers=headers)
    assert again.json()["cached"] is True and again.json()["items"] == body["items"]
    assert manage.call_count("GET", "/service/boards") == calls  # served from the copy

    manage.add_board("Projects")
    fresh = await client.get(f"/api/v1/connections/{psa}/catalog/boards?refresh=true", headers=headers)
    assert fresh.json()["cached"] is False
    assert [b["name"] for b in fresh.json()["items"]] == ["Security Alerts", "Projects"]

    expected = {
        "statuses": {str(seed.new_status_id), str(seed.closed_status_id)},
        "priorities": {str(i) for i in seed.priority_ids.values()},
        "ticket-types": {str(i) for i in seed.type_ids.values()},
        "agreement-types": {"Managed Services"},
        "products": set(seed.product_identifiers),
        "companies": {str(i) for i in seed.company_ids},
    }
    for kind, wanted in expected.items():
        listed = await client.get(f"/api/v1/connections/{psa}/catalog/{kind}", headers=headers)
        assert listed.status_code == 200, listed.text
        items = listed.json()["items"]
        keys = {i["name"] if kind == "agreement-types" else i["id"] for i in items}
        assert wanted <= keys, kind
    statuses = (await client.get(f"/api/v1/connections/{psa}/catalog/statuses", headers=headers)).json()
    assert {s["id"]: s["closed"] for s in statuses["items"]}[str(seed.closed_status_id)] is True

    unknown = await client.get(f"/api/v1/connections/{psa}/catalog/widgets", headers=headers)
    assert unknown.status_code == 422


async def test_rules_and_mappings_naming_ids_the_psa_lacks_are_refused_naming_the_field(
    client: httpx.AsyncClient, make_key: KeyMaker, manage: ManageFake, seed: DemoSeed
) -> None:
    headers, psa = await _setup(client, make_key, manage)

    async def refused(path: str, body: dict[str, Any]) -> list[str]:
        response = await client.post(path, json=body, headers=headers)
        assert response.status_code == 422, response.text
        return [e["field"] for e in response.json()["errors"]]

    assert await refused("/api/v1/ticket-rules", _rule(psa, seed, board_id="999")) == ["board_id"]
    other = manage.add_board("Projects", statuses=(("Open", False),))
    other_status = next(iter(manage.statuses.by_parent[other["id"]]))
    # a status of another board is not a status of this board
    assert await refused("/api/v1/ticket-rules", _rule(psa, seed, status_new_id=str(other_status))) == [
        "status_new_id"
    ]
    assert await refused("/api/v1/ticket-rules", _rule(psa, seed, priority_id="777", type_id="778")) == [
        "type_id",
        "priority_id",
    ]
    assert await refused("/api/v1/billing-rules", _billing_rule(psa, psa_product_id="NOPE")) == [
        "psa_product_id"
    ]
    assert await refused("/api/v1/billing-rules", _billing_rule(psa, agreement_type="Gold Plan")) == [
        "agreement_type"
    ]
    rmm = await client.post(
        "/api/v1/connections",
        json={
            "name": "RMM",
            "kind": "dummy_rmm",
            "base_url": "https://rmm.example.com",
            "credentials": {"username": "u", "api_secret": "s"},
        },
        headers=headers,
    )
    assert rmm.status_code == 201, rmm.text
    mapping = {
        "rmm_connection_id": rmm.json()["id"],
        "rmm_client_id": "c-1",
        "psa_connection_id": psa,
        "psa_company_id": "424242",
    }
    assert await refused("/api/v1/client-mappings", mapping) == ["psa_company_id"]
    listed = await client.get("/api/v1/ticket-rules", headers=headers)
    assert listed.json() == []  # nothing was stored

    rule = await client.post("/api/v1/ticket-rules", json=_rule(psa, seed), headers=headers)
    assert rule.status_code == 201, rule.text
    assert rule.json()["psa_check"] == "checked"
    billing = await client.post(
        "/api/v1/billing-rules", json=_billing_rule(psa, agreement_type="managed services"), headers=headers
    )
    assert billing.status_code == 201, billing.text
    mapping["psa_company_id"] = str(seed.company_ids[0])
    mapped = await client.post("/api/v1/client-mappings", json=mapping, headers=headers)
    assert mapped.status_code == 201, mapped.text
    assert mapped.json()["psa_check"] == "checked"

    # a change is checked too
    patched = await client.patch(
        f"/api/v1/ticket-rules/{rule.json()['id']}", json={"board_id": "31337"}, headers=headers
    )
    assert patched.status_code == 422 and patched.json()["errors"][0]["field"] == "board_id"

    # an id added in the PSA just now is found although the look-up was cached
    added = manage.add_board("Added just now", statuses=(("New", False),))
    again = await client.patch(
        f"/api/v1/ticket-rules/{rule.json()['id']}",
        json={"board_id": str(added["id"]), "status_new_id": None, "status_closed_id": None, "type_id": None},
        headers=headers,
    )
    assert again.status_code == 200, again.text


async def test_an_unreachable_psa_refuses_the_save_unless_unchecked_is_allowed_and_says_so(
    client: httpx.AsyncClient, make_key: KeyMaker, manage: ManageFake, seed: DemoSeed
) -> None:
    headers, psa = await _setup(client, make_key, manage)
    manage.fail_path("/service/boards", 503)
    refused = await client.post("/api/v1/ticket-rules", json=_rule(psa, seed), headers=headers)
    assert refused.status_code == 502, refused.text
    assert refused.json()["error"] == "psa_unavailable"
    assert refused.json()["field"] == "psa_connection_id"
    assert "allow_unchecked=true" in refused.json()["message"]
    assert (await client.get("/api/v1/ticket-rules", headers=headers)).json() == []

    saved = await client.post(
        "/api/v1/ticket-rules?allow_unchecked=true", json=_rule(psa, seed), headers=headers
    )
    assert saved.status_code == 201, saved.text
    assert saved.json()["psa_check"] == "unchecked"
    listed = (await client.get("/api/v1/ticket-rules", headers=headers)).json()
    assert [r["psa_check"] for r in listed] == ["unchecked"]  # visible on the rule

    # with the PSA back, the next change checks the ids again and says so
    manage.clear_faults()
    checked = await client.patch(
        f"/api/v1/ticket-rules/{saved.json()['id']}", json={"note_interval_minutes": 30}, headers=headers
    )
    assert checked.status_code == 200, checked.text
    assert checked.json()["psa_check"] == "checked"
