"""The ConnectWise Manage fake itself: conditions grammar, paging, validation, hooks."""

from __future__ import annotations

import base64

import httpx
import pytest

from adapters.connectwise_manage.fake import (
    COMPANY_FIELDS,
    TICKET_FIELDS,
    ConditionError,
    ManageFake,
    compile_conditions,
    parse_conditions,
)


def matches(conditions: str, row: dict[str, object], fields: frozenset[str] = TICKET_FIELDS) -> bool:
    return compile_conditions(parse_conditions(conditions, fields))(row)


TICKET = {
    "id": 7,
    "summary": 'Disk "C:" full [cn:1]',
    "company": {"id": 3, "identifier": "ACME"},
    "closedFlag": False,
    "budgetHours": 1.5,
    "_info": {"lastUpdated": "2025-03-01T10:00:00Z"},
    "requiredDate": "2025-03-01T10:00:00Z",
}


@pytest.mark.parametrize(
    ("conditions", "expected"),
    [
        ("company/id = 3", True),
        ("company/id != 3", False),
        ('Company/Identifier = "acme"', True),
        ('summary contains "[[]cn:1]"', True),
        ('summary contains "[[]cn:2]"', False),
        ('summary contains "\\"C:\\""', True),
        ('summary like "Disk*full*"', True),
        ('summary like "Disk%"', True),
        ('summary not like "Disk%"', False),
        ("closedFlag = False and company/id = 3", True),
        ("closedFlag = True or company/id = 3", True),
        ("closedFlag = True or (company/id = 3 and id > 10)", False),
        ("not (company/id = 4)", True),
        ("id in (1, 7, 9)", True),
        ("id not in (1, 9)", True),
        ("budgetHours >= 1.5 and budgetHours < 2", True),
        ("requiredDate > [2025-02-01T00:00:00Z]", True),
        ("requiredDate < [2025-02-01T00:00:00Z]", False),
        ("agreement = null", True),
        ("company/id = 3 AND closedFlag = false", True),
    ],
)
def test_conditions_grammar(conditions: str, expected: bool) -> None:
    assert matches(conditions, TICKET) is expected


@pytest.mark.parametrize(
    "conditions",
    [
        "",
        "company/id =",
        "nosuchfield = 1",
        "summary contains 3",
        "(id = 1",
        "id = 1 and",
        'summary = "open',
        "id ~ 1",
    ],
)
def test_bad_conditions_are_refused(conditions: str) -> None:
    with pytest.raises(ConditionError):
        parse_conditions(conditions, TICKET_FIELDS)


def client_for(fake: ManageFake, **headers: str) -> httpx.AsyncClient:
    token = base64.b64encode(f"{fake.company_id}+{fake.public_key}:{fake.private_key}".encode()).decode()
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=fake.app),
        base_url=f"http://cw.local{fake.api_prefix}",
        headers={"Authorization": f"Basic {token}", "clientId": fake.client_id, **headers},
    )


async def test_navigable_paging_links_and_cap() -> None:
    fake = ManageFake()
    fake.add_companies(2100)
    async with client_for(fake) as client:
        default = await client.get("/company/companies")
        assert len(default.json()) == 25
        capped = await client.get("/company/companies", params={"pageSize": 5000, "conditions": "id > 5"})
        assert len(capped.json()) == 1000
        links = capped.links
        assert set(links) == {"next", "last"}
        next_url = httpx.URL(links["next"]["url"])
        assert next_url.params["page"] == "2" and next_url.params["conditions"] == "id > 5"
        assert httpx.URL(links["last"]["url"]).params["page"] == "3"
        last = await client.get(links["last"]["url"])
        assert [c["id"] for c in last.json()][-1] == 2100
        assert set(last.links) == {"first", "prev"}
        bad = await client.get("/company/companies", params={"conditions": "nosuch = 1"})
        assert bad.status_code == 400
        assert bad.json()["errors"][0]["field"] == "conditions"
        count = await client.get("/company/companies/count", params={"conditions": "id <= 10"})
        assert count.json() == {"count": 10}


async def test_forward_only_paging() -> None:
    fake = ManageFake()
    fake.add_companies(30)
    async with client_for(fake, **{"pagination-type": "forward-only"}) as client:
        page = await client.get("/company/companies", params={"pageSize": 10, "pageId": 12, "page": 9})
        assert [c["id"] for c in page.json()] == list(range(13, 23))
        assert httpx.URL(page.links["next"]["url"]).params["pageId"] == "22"
        refused = await client.get("/company/companies", params={"orderBy": "name desc"})
        assert refused.status_code == 400


async def test_fields_order_and_partial_responses() -> None:
    fake = ManageFake()
    for name in ("b", "a", "c"):
        fake.add_company(name)
    async with client_for(fake) as client:
        response = await client.get(
            "/company/companies", params={"orderBy": "name desc", "fields": "id,name,status/name"}
        )
        assert response.json() == [
            {"id": 3, "name": "c", "status": {"name": "Active"}},
            {"id": 1, "name": "b", "status": {"name": "Active"}},
            {"id": 2, "name": "a", "status": {"name": "Active"}},
        ]


async def test_patch_semantics() -> None:
    fake = ManageFake()
    seed = fake.seed_demo(companies=1)
    ticket = fake.add_ticket(seed.company_ids[0], seed.board_id, "hello")
    async with client_for(fake) as client:
        url = f"/service/tickets/{ticket['id']}"
        nested = await client.patch(url, json=[{"op": "replace", "path": "company/identifier", "value": "X"}])
        assert nested.status_code == 200  # Manage's false 200: nothing changes
        assert fake.tickets.rows[ticket["id"]]["company"]["id"] == seed.company_ids[0]
        assert len(fake.ignored_patch_ops) == 1
        unknown = await client.patch(url, json=[{"op": "replace", "path": "Summary", "value": "x"}])
        assert unknown.status_code == 400  # paths are case-sensitive
        wrong_status = await client.patch(
            url, json=[{"op": "replace", "path": "status", "value": {"id": 999}}]
        )
        assert wrong_status.status_code == 400 and wrong_status.json()["errors"][0]["field"] == "status"
        closed = await client.patch(
            url, json=[{"op": "replace", "path": "status", "value": {"id": seed.closed_status_id}}]
        )
        assert closed.json()["closedFlag"] is True and closed.json()["closedDate"]


async def test_fault_injection_and_counters() -> None:
    fake = ManageFake()
    fake.seed_demo(companies=2)
    async with client_for(fake) as client:
        fake.rate_limit(1, retry_after=4, path="/company/companies")
        limited = await client.get("/company/companies")
        assert limited.status_code == 429 and limited.headers["Retry-After"] == "4"
        assert (await client.get("/company/companies")).status_code == 200
        fake.fail_path("/service/boards/*", 503)
        assert (await client.get("/service/boards/1/statuses")).status_code == 503
        assert (await client.get("/service/boards/1/types")).status_code == 503
        assert (await client.get("/service/boards")).status_code == 200
        fake.clear_faults()
        assert (await client.get("/service/boards/1/types")).status_code == 200
    assert fake.call_count("GET", "/company/companies") == 2
    assert fake.call_count("GET", "/service/boards/{parentId}/types") == 2
    assert fake.call_count(path="/service/boards") == 1
    fake.reset_calls()
    assert fake.call_count() == 0


def test_seed_demo_shape() -> None:
    fake = ManageFake()
    seed = fake.seed_demo(companies=4, devices_per_company=3)
    assert len(seed.company_ids) == 4 and len(fake.configurations) == 12
    assert set(seed.agreement_ids) == set(seed.company_ids)
    assert fake.statuses.rows[seed.closed_status_id]["closedStatus"] is True
    assert "identifier" in COMPANY_FIELDS


async def fake_client(fake: ManageFake, *, auth: bool = True) -> httpx.AsyncClient:
    headers = {"Accept": "application/vnd.connectwise.com+json; version=2025.1"}
    if auth:
        token = base64.b64encode(f"{fake.company_id}+{fake.public_key}:{fake.private_key}".encode()).decode()
        headers |= {"Authorization": f"Basic {token}", "clientId": fake.client_id}
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=fake.app),
        base_url=f"https://api-na.myconnectwise.net{fake.api_prefix}",
        headers=headers,
    )


async def test_fake_rejects_unknown_fields_and_bad_references() -> None:
    fake = ManageFake(is_cloud=True)
    seed = fake.seed_demo(companies=3, devices_per_company=2)
    async with await fake_client(fake) as client:
        base = {"summary": "x", "company": {"id": seed.company_ids[0]}, "board": {"id": seed.board_id}}
        response = await client.post("/service/tickets", json={**base, "summmary": "typo"})
        assert response.status_code == 400
        assert response.json()["errors"][0]["field"] == "summmary"
        response = await client.post("/service/tickets", json={**base, "board": seed.board_id})
        assert response.status_code == 400 and response.json()["errors"][0]["field"] == "board"
        response = await client.post("/service/tickets", json={"company": {"id": seed.company_ids[0]}})
        assert response.json()["errors"][0] == {
            "code": "MissingRequiredField",
            "message": "The summary field is required.",
            "resource": "ticket",
            "field": "summary",
        }
        response = await client.post("/service/tickets", json={**base, "summary": "s" * 101})
        assert response.status_code == 400 and response.json()["errors"][0]["field"] == "summary"
        ticket = (await client.post("/service/tickets", json=base)).json()
        note = await client.post(f"/service/tickets/{ticket['id']}/notes", json={"text": "no flag"})
        assert note.status_code == 400
        patch = await client.patch(f"/service/tickets/{ticket['id']}", json={"op": "replace"})
        assert patch.status_code == 400
        addition = await client.post(
            f"/finance/agreements/{seed.agreement_ids[seed.company_ids[0]]}/additions",
            json={"product": {"identifier": "EDR-SEAT"}, "billCustomer": "Sometimes", "quantity": 1},
        )
        assert addition.status_code == 400 and addition.json()["errors"][0]["field"] == "billCustomer"
    assert len(fake.tickets) == 1


async def test_fake_requires_auth_and_client_id() -> None:
    fake = ManageFake(is_cloud=True)
    fake.seed_demo(companies=3)
    async with await fake_client(fake, auth=False) as client:
        response = await client.get("/system/info")
        assert response.status_code == 401
        assert set(response.json()) == {"code", "message", "errors"}
        info = await client.get(f"https://na.myconnectwise.net/login/companyinfo/{fake.company_id}")
        assert info.status_code == 200 and info.json()["Codebase"] == fake.codebase
