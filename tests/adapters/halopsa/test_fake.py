"""The HaloPSA fake itself: auth, paging envelopes, array writes, error shapes, seeding."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from adapters.halopsa.fake import HaloFake

BASE = "https://demo.halopsa.com"


@pytest.fixture
def fake() -> HaloFake:
    instance = HaloFake(token_lifetime=100)
    instance.seed_demo(clients=5, devices_per_client=1)
    return instance


@pytest.fixture
async def http(fake: HaloFake) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=fake.transport(), base_url=BASE) as client:
        yield client


async def token(http: httpx.AsyncClient, **form: str) -> dict[str, str]:
    data = {
        "grant_type": "client_credentials",
        "client_id": "connector-app",
        "client_secret": "halo-secret-1",
        "scope": "all",
        **form,
    }
    response = await http.post("/auth/token", data=data)
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


async def test_token_endpoint_validates_the_grant(http: httpx.AsyncClient) -> None:
    bad = await http.post(
        "/auth/token",
        data={
            "grant_type": "client_credentials",
            "client_id": "connector-app",
            "client_secret": "wrong",
            "scope": "all",
        },
    )
    assert bad.status_code == 400 and bad.json()["error"] == "invalid_client"
    grant = await http.post("/auth/token", data={"grant_type": "password"})
    assert grant.json() == {"error": "unsupported_grant_type"}
    assert (await http.post("/auth/token", json={"grant_type": "client_credentials"})).status_code == 400


async def test_tenant_is_required_when_configured() -> None:
    fake = HaloFake(tenant="acme")
    async with httpx.AsyncClient(transport=fake.transport(), base_url=BASE) as http:
        form = {
            "grant_type": "client_credentials",
            "client_id": "connector-app",
            "client_secret": "halo-secret-1",
        }
        assert (await http.post("/auth/token", data=form)).status_code == 400
        assert (await http.post("/auth/token?tenant=acme", data=form)).status_code == 200


async def test_api_requires_a_live_token(fake: HaloFake, http: httpx.AsyncClient) -> None:
    assert (await http.get("/api/Client")).status_code == 401
    headers = await token(http)
    assert (await http.get("/api/client", headers=headers)).status_code == 200  # case-insensitive
    fake.advance(101)
    expired = await http.get("/api/Client", headers=headers)
    assert expired.status_code == 401 and "invalid_token" in expired.headers["www-authenticate"]


async def test_paging_envelope_and_filters(http: httpx.AsyncClient, fake: HaloFake) -> None:
    headers = await token(http)
    page = (await http.get("/api/Client?pageinate=true&page_size=2&page_no=3", headers=headers)).json()
    assert page["record_count"] == 5 and page["page_no"] == 3 and len(page["clients"]) == 1
    everything = (await http.get("/api/Client", headers=headers)).json()
    assert len(everything["clients"]) == 5
    client = everything["clients"][0]["id"]
    assets = (await http.get(f"/api/Asset?client_id={client}", headers=headers)).json()["assets"]
    assert len(assets) == 1 and "notes" not in assets[0]
    statuses = (await http.get("/api/Status?type=ticket", headers=headers)).json()
    assert isinstance(statuses, list) and statuses[-1]["name"] == "Closed"


async def test_writes_are_arrays_and_validated(http: httpx.AsyncClient, fake: HaloFake) -> None:
    headers = await token(http)
    client = min(fake.clients)
    not_array = await http.post("/api/Tickets", json={"summary": "x", "client_id": client}, headers=headers)
    assert not_array.status_code == 400
    missing = await http.post("/api/Tickets", json=[{"client_id": client}], headers=headers)
    assert missing.status_code == 400 and missing.json() == "Please enter a Summary"
    created = await http.post(
        "/api/Tickets", json=[{"summary": "Hello", "client_id": client}], headers=headers
    )
    ticket = created.json()
    assert created.status_code == 200 and ticket["status_id"] == 1
    no_outcome = await http.post(
        "/api/Actions", json=[{"ticket_id": ticket["id"], "note": "n"}], headers=headers
    )
    assert no_outcome.json() == "An Outcome must be entered for this Action"
    closing = [{"ticket_id": ticket["id"], "outcome": "close", "note": "done", "new_status": 9}]
    assert (await http.post("/api/Actions", json=closing, headers=headers)).status_code == 200
    assert fake.tickets[ticket["id"]]["hasbeenclosed"] is True


async def test_recurring_invoice_post_replaces_the_lines(http: httpx.AsyncClient, fake: HaloFake) -> None:
    headers = await token(http)
    invoice_id = next(iter(fake.recurring_invoices))
    assert invoice_id < 0
    invoice = (await http.get(f"/api/RecurringInvoice/{invoice_id}", headers=headers)).json()
    body = [{"id": invoice_id, "lines": [{"_itemid": min(fake.items), "qty_order": 3, "unit_price": 2}]}]
    after = (await http.post("/api/RecurringInvoice", json=body, headers=headers)).json()
    assert [line["qty_order"] for line in after["lines"]] == [3.0]
    assert after["lines"][0]["id"] != invoice["lines"][0]["id"]  # the omitted line is gone
    bad = [{"id": invoice_id, "lines": [after["lines"][0], {"_itemid": 99999}]}]
    refused = await http.post("/api/RecurringInvoice", json=bad, headers=headers)
    assert refused.status_code == 400
    assert len(fake.recurring_invoices[invoice_id]["lines"]) == 1


async def test_faults(http: httpx.AsyncClient, fake: HaloFake) -> None:
    headers = await token(http)
    fake.rate_limit(1, retry_after=4, path="/Client")
    limited = await http.get("/api/Client", headers=headers)
    assert limited.status_code == 429 and limited.headers["retry-after"] == "4"
    fake.fail_next(1, 500, method="POST", path="/Tickets", after_apply=True)
    failed = await http.post(
        "/api/Tickets", json=[{"summary": "x", "client_id": min(fake.clients)}], headers=headers
    )
    assert failed.status_code == 500 and len(fake.tickets) == 1
    fake.timeout_next(method="GET", path="/Tickets", after_apply=False)
    with pytest.raises(httpx.ReadTimeout):
        await http.get("/api/Tickets", headers=headers)


def test_seed_is_deterministic() -> None:
    first, second = HaloFake(), HaloFake()
    assert first.seed_demo(clients=4, devices_per_client=2) == second.seed_demo(
        clients=4, devices_per_client=2
    )
    assert [a["inventory_number"] for a in first.assets.values()] == [
        a["inventory_number"] for a in second.assets.values()
    ]
