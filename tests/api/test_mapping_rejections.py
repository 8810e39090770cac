"""Rejected client-mapping suggestions over the API: stored once (also when the same rejection
arrives many times at once), left out of the suggestions, audited, undone, and never in the way of
a mapping made by hand."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from adapters.base import PsaCompany, RmmClient
from tests.api.world import World, build_world, rejection_body
from tests.support.dummy_adapters import DummyPsa, DummyRmm

PATH = "/api/v1/mapping-suggestions/rejections"


@pytest.fixture
async def world(client: Any, make_key: Any, monkeypatch: pytest.MonkeyPatch) -> World:
    monkeypatch.setattr(
        DummyRmm,
        "clients",
        [RmmClient(id="c-2", name="Fabrikam, Inc."), RmmClient(id="c-3", name="Northwind Traders")],
    )
    monkeypatch.setattr(
        DummyPsa,
        "companies",
        [
            PsaCompany(id="251", name="Fabrikam"),
            PsaCompany(id="252", name="Northwind Trader LLC"),
            PsaCompany(id="253", name="Fabrikams"),
        ],
    )
    return await build_world(client, await make_key("engineer"))


async def _suggested(client: Any, world: World) -> set[tuple[str, str]]:
    response = await client.get(
        "/api/v1/client-mappings/suggestions",
        params={"rmm_connection_id": world.rmm["id"], "psa_connection_id": world.psa["id"]},
        headers=world.headers,
    )
    assert response.status_code == 200, response.text
    return {(s["rmm_client_id"], s["psa_company_id"]) for s in response.json()}


async def _audit(client: Any, world: World, kind: str) -> list[dict[str, Any]]:
    response = await client.get("/api/v1/audit", params={"kind": kind}, headers=world.headers)
    assert response.status_code == 200, response.text
    events: list[dict[str, Any]] = response.json()["events"]
    return events


async def test_a_rejected_suggestion_is_not_suggested_again_until_undone(client: Any, world: World) -> None:
    assert await _suggested(client, world) == {("c-2", "251"), ("c-3", "252")}
    body = {"rejections": [rejection_body(world.rmm["id"], world.psa["id"], "c-2", "251")]}
    first = await client.post(PATH, json=body, headers=world.headers)
    assert first.status_code == 200, first.text
    [row] = first.json()
    assert row["created"] is True and row["psa_company_id"] == "251" and row["rejected_by"]
    # the client is offered its next best company instead
    assert await _suggested(client, world) == {("c-2", "253"), ("c-3", "252")}

    again = await client.post(PATH, json=body, headers=world.headers)
    assert again.status_code == 200 and again.json()[0] == {**row, "created": False}
    listed = (await client.get(PATH, headers=world.headers)).json()
    assert [r["id"] for r in listed] == [row["id"]]
    [entry] = await _audit(client, world, "mapping_suggestion.rejected")
    assert entry["target_id"] == row["id"] and entry["after"]["psa_company_id"] == "251"

    # a mapping made by hand to the rejected company is still accepted
    manual = {
        "rmm_connection_id": world.rmm["id"],
        "rmm_client_id": "c-2",
        "psa_connection_id": world.psa["id"],
        "psa_company_id": "251",
    }
    mapped = await client.post("/api/v1/client-mappings", json=manual, headers=world.headers)
    assert mapped.status_code == 201, mapped.text
    deleted = await client.delete(f"/api/v1/client-mappings/{mapped.json()['id']}", headers=world.headers)
    assert deleted.status_code in (200, 204), deleted.text

    undone = await client.delete(f"{PATH}/{row['id']}", headers=world.headers)
    assert undone.status_code == 204
    assert await _suggested(client, world) == {("c-2", "251"), ("c-3", "252")}
    assert (await client.delete(f"{PATH}/{row['id']}", headers=world.headers)).status_code == 404
    [restored] = await _audit(client, world, "mapping_suggestion.restored")
    assert restored["before"]["psa_company_id"] == "251"


async def test_bulk_rejection_and_filters(client: Any, world: World, make_key: Any) -> None:
    rmm, psa = world.rmm["id"], world.psa["id"]
    body = {"rejections": [rejection_body(rmm, psa, "c-2", "251"), rejection_body(rmm, psa, "c-3", "252")]}
    response = await client.post(PATH, json=body, headers=world.headers)
    assert response.status_code == 200, response.text
    assert [r["created"] for r in response.json()] == [True, True]
    assert await _suggested(client, world) == {("c-2", "253")}
    by_psa = await client.get(PATH, params={"psa_connection_id": psa}, headers=world.headers)
    assert len(by_psa.json()) == 2
    other = await client.get(
        PATH, params={"rmm_connection_id": world.ids["spare_rmm_id"]}, headers=world.headers
    )
    assert other.json() == []
    # another tenant sees none of them
    globex = await make_key("admin", tenant="globex")
    assert (await client.get(PATH, headers=globex)).json() == []


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"rmm_client_id": ""}, "rejections.0.rmm_client_id"),
        ({"psa_company_id": "x" * 101}, "rejections.0.psa_company_id"),
        ({"rmm_connection_id": "nope"}, "rmm_connection_id"),
        ({"extra": 1}, "rejections.0.extra"),
    ],
)
async def test_bad_rejections_name_the_field(
    client: Any, world: World, change: dict[str, Any], field: str
) -> None:
    body = {"rejections": [{**rejection_body(world.rmm["id"], world.psa["id"]), **change}]}
    response = await client.post(PATH, json=body, headers=world.headers)
    assert response.status_code == 422, response.text
    assert response.json()["errors"][0]["field"] == field
    assert (await client.get(PATH, headers=world.headers)).json() == []


async def test_a_psa_connection_in_the_rmm_field_is_refused(client: Any, world: World) -> None:
    body = {"rejections": [rejection_body(world.psa["id"], world.psa["id"])]}
    response = await client.post(PATH, json=body, headers=world.headers)
    assert response.status_code == 422
    error = response.json()["errors"][0]
    assert error["field"] == "rmm_connection_id" and "expected" in error["message"]
    empty = await client.post(PATH, json={"rejections": []}, headers=world.headers)
    assert empty.status_code == 422 and empty.json()["errors"][0]["field"] == "rejections"


async def test_concurrent_identical_rejections_store_one_row_and_one_entry(client: Any, world: World) -> None:
    body = {"rejections": [rejection_body(world.rmm["id"], world.psa["id"], "c-2", "251")]}
    answers = await asyncio.gather(*(client.post(PATH, json=body, headers=world.headers) for _ in range(8)))
    assert [a.status_code for a in answers] == [200] * 8, [a.text for a in answers]
    assert len({a.json()[0]["id"] for a in answers}) == 1
    assert sum(a.json()[0]["created"] for a in answers) == 1
    assert len((await client.get(PATH, headers=world.headers)).json()) == 1
    assert len(await _audit(client, world, "mapping_suggestion.rejected")) == 1
