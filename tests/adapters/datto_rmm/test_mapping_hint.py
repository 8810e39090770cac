"""A Datto site linked to an Autotask company is proposed as that company's mapping through the
API, ahead of name matches and whatever the names say, with real adapters against both fakes."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import httpx

from adapters.autotask.fake.harness import AutotaskHarness
from adapters.datto_rmm.fake.harness import DattoHarness
from adapters.testing.harness import VendorWorld
from tests.support.vendors import VendorRouter

Headers = dict[str, str]


def route(vendors: VendorRouter, world: VendorWorld) -> None:
    for host in world.hosts:
        vendors.add(host, world.transport())


async def connect(client: httpx.AsyncClient, headers: Headers, world: VendorWorld) -> dict[str, Any]:
    response = await client.post("/api/v1/connections", json=world.connection.as_json(), headers=headers)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


async def test_a_linked_site_is_suggested_for_its_autotask_company(
    client: httpx.AsyncClient, vendors: VendorRouter, make_key: Callable[..., Awaitable[Headers]]
) -> None:
    headers = await make_key("engineer")
    psa = AutotaskHarness().start(companies=("Northwind Traders", "Cedar Law Group"), devices_per_company=0)
    rmm = DattoHarness().start(clients=("Cedar Law Group",), endpoints_per_client=1)
    northwind = next(company for company, name in psa.companies.items() if name == "Northwind Traders")
    linked = rmm.fake.add_site("NWT - head office", autotask_company_id=northwind)  # no name match
    route(vendors, psa)
    route(vendors, rmm)
    psa_row = await connect(client, headers, psa)
    rmm_row = await connect(client, headers, rmm)
    response = await client.get(
        "/api/v1/client-mappings/suggestions",
        params={"rmm_connection_id": rmm_row["id"], "psa_connection_id": psa_row["id"]},
        headers=headers,
    )
    assert response.status_code == 200, response.text
    found = {(s["rmm_client_name"], s["psa_company_name"], s["linked"]) for s in response.json()}
    assert found == {
        ("NWT - head office", "Northwind Traders", True),
        ("Cedar Law Group", "Cedar Law Group", False),
    }
    assert linked.uid in {s["rmm_client_id"] for s in response.json()}
