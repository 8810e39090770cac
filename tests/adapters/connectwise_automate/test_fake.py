"""The Automate fake itself: auth, paging limits, the `condition` grammar and its error bodies."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import httpx
import pytest

from adapters.connectwise_automate.fake import AutomateFake, FakeUser, FleetSeed

BASE = "https://cwa.example.com/cwa/api/v1"


@pytest.fixture
def fake() -> AutomateFake:
    return AutomateFake()


@pytest.fixture
def seed(fake: AutomateFake) -> FleetSeed:
    return fake.seed_fleet(clients=4, computers=40)


@pytest.fixture
async def http(fake: AutomateFake) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=fake.transport(), base_url=BASE) as client:
        yield client


async def login(fake: AutomateFake, http: httpx.AsyncClient) -> dict[str, str]:
    response = await http.post(
        "/apitoken",
        json={"UserName": fake.username, "Password": fake.password},
        headers={"ClientId": fake.client_id},
    )
    assert response.status_code == 200
    return {"Authorization": f"Bearer {response.json()['AccessToken']}", "ClientId": fake.client_id}


async def computers(http: httpx.AsyncClient, headers: dict[str, str], **params: Any) -> httpx.Response:
    return await http.get("/Computers", params=params, headers=headers)


async def test_token_result_shape(fake: AutomateFake, http: httpx.AsyncClient) -> None:
    response = await http.post(
        "/apitoken",
        json={"username": fake.username, "password": fake.password},
        headers={"clientid": fake.client_id},
    )
    body = response.json()
    assert body["AccessToken"] and body["TokenType"] == "Bearer"
    assert body["IsTwoFactorRequired"] is False
    assert set(body) >= {"ExpirationDate", "AbsoluteExpirationDate", "UserId", "InternalUserName"}


async def test_client_id_and_bearer_are_required(
    fake: AutomateFake, seed: FleetSeed, http: httpx.AsyncClient
) -> None:
    headers = await login(fake, http)
    assert (await computers(http, {"Authorization": headers["Authorization"]})).status_code == 403
    response = await computers(http, {"ClientId": fake.client_id})
    assert response.status_code == 401
    assert response.json() == {"Message": "Authorization has been denied for this request."}
    bad = await http.post(
        "/apitoken",
        json={"UserName": fake.username, "Password": "nope"},
        headers={"ClientId": fake.client_id},
    )
    assert bad.status_code == 401 and "Message" in bad.json()
    assert (await computers(http, headers)).status_code == 200


async def test_tokens_expire(fake: AutomateFake, seed: FleetSeed, http: httpx.AsyncClient) -> None:
    fake.token_lifetime = 60
    headers = await login(fake, http)
    fake.advance_clock(59)
    assert (await computers(http, headers)).status_code == 200
    fake.advance_clock(2)
    assert (await computers(http, headers)).status_code == 401
    headers = await login(fake, http)
    fake.expire_tokens()
    assert (await computers(http, headers)).status_code == 401


async def test_two_factor_answer(fake: AutomateFake, http: httpx.AsyncClient) -> None:
    fake.users[fake.username.lower()] = FakeUser(fake.password, two_factor="654321")
    body = {"UserName": fake.username, "Password": fake.password}
    response = await http.post("/apitoken", json=body, headers={"ClientId": fake.client_id})
    assert response.status_code == 200
    assert response.json()["AccessToken"] == "" and response.json()["IsTwoFactorRequired"] is True
    response = await http.post(
        "/apitoken", json={**body, "TwoFactorPasscode": "654321"}, headers={"ClientId": fake.client_id}
    )
    assert response.json()["AccessToken"]


async def test_page_size_is_silently_capped_at_1000(fake: AutomateFake, http: httpx.AsyncClient) -> None:
    fake.seed_fleet(clients=2, computers=1500)
    headers = await login(fake, http)
    first = (await computers(http, headers, page=1, pageSize=5000)).json()
    second = (await computers(http, headers, page=2, pageSize=5000)).json()
    assert (len(first), len(second)) == (1000, 500)
    default = (await computers(http, headers)).json()
    assert len(default) == 50


async def test_routes_are_case_insensitive(
    fake: AutomateFake, seed: FleetSeed, http: httpx.AsyncClient
) -> None:
    headers = await login(fake, http)
    response = await http.get("/computers", params={"pageSize": 1}, headers=headers)
    assert response.status_code == 200 and len(response.json()) == 1
    missing = await http.get("/Nothing", headers=headers)
    assert missing.status_code == 404 and "Message" in missing.json()


@pytest.mark.parametrize(
    ("condition", "expected"),
    [
        ("Client.Id = 1", lambda c: c.client_id == 1),
        ("client.id eq 1 or Client.Id = 2", lambda c: c.client_id in (1, 2)),
        ("Client.Id in (1, 3)", lambda c: c.client_id in (1, 3)),
        ("Client.Id not in (1, 3)", lambda c: c.client_id not in (1, 3)),
        ("Status = 'Offline'", lambda c: not c.online),
        ('status = "online"', lambda c: c.online),
        ("ComputerName like 'C001-%'", lambda c: c.name.startswith("C001-")),
        ("ComputerName not like '%WS%'", lambda c: "WS" not in c.name),
        (
            "VirusScanner.Name contains 'defender'",
            lambda c: bool(c.scanner and "defender" in c.scanner[1].lower()),
        ),
        ("VirusScanner.Id = null", lambda c: c.scanner is None),
        ("Id > 1010 and Id <= 1020", lambda c: 1010 < c.id <= 1020),
        (
            "(Client.Id = 1 or Client.Id = 2) and Status = 'Online'",
            lambda c: c.client_id in (1, 2) and c.online,
        ),
        ("IsMaintenanceModeEnabled = false", lambda c: True),
    ],
)
async def test_condition_grammar(
    fake: AutomateFake, seed: FleetSeed, http: httpx.AsyncClient, condition: str, expected: Any
) -> None:
    headers = await login(fake, http)
    rows = (await computers(http, headers, condition=condition, pageSize=1000)).json()
    assert {int(r["Id"]) for r in rows} == {c.id for c in fake.computers.values() if expected(c)}


async def test_condition_on_dates(fake: AutomateFake, seed: FleetSeed, http: httpx.AsyncClient) -> None:
    cutoff = fake.now - timedelta(hours=1)
    headers = await login(fake, http)
    rows = (
        await computers(
            http, headers, condition="RemoteAgentLastContact >= 2026-11-20T11:00:00", pageSize=1000
        )
    ).json()
    expected = {c.id for c in fake.computers.values() if c.last_contact and c.last_contact >= cutoff}
    assert {int(r["Id"]) for r in rows} == expected
    assert 0 < len(expected) < 40
    quoted = (
        await computers(
            http, headers, condition="AntiVirusDefinitionDate < '2026-11-15T12:00:00'", pageSize=1000
        )
    ).json()
    assert {int(r["Id"]) for r in quoted} == {
        c.id
        for c in fake.computers.values()
        if c.definitions and c.definitions < fake.now - timedelta(days=5)
    }


@pytest.mark.parametrize(
    ("condition", "message"),
    [
        ("Bogus = 1", "Unknown field 'Bogus'"),
        ("Client.Id = ", "Unexpected end of condition"),
        ("Client.Id == 1", "Unexpected '='"),
        ("Status not = 'Online'", "'not' can only be used"),
        ("(Client.Id = 1", "Unexpected end of condition"),
        ("Client.Id = 1 #", "Unexpected character '#'"),
    ],
)
async def test_bad_conditions_are_400_with_a_message(
    fake: AutomateFake, seed: FleetSeed, http: httpx.AsyncClient, condition: str, message: str
) -> None:
    headers = await login(fake, http)
    response = await computers(http, headers, condition=condition)
    assert response.status_code == 400
    assert message in response.json()["Message"]


async def test_order_and_include_fields(fake: AutomateFake, seed: FleetSeed, http: httpx.AsyncClient) -> None:
    headers = await login(fake, http)
    rows = (
        await computers(http, headers, orderBy="Id desc", includeFields="Id,ComputerName", pageSize=3)
    ).json()
    assert [int(r["Id"]) for r in rows] == sorted(fake.computers, reverse=True)[:3]
    assert all(set(r) == {"Id", "ComputerName"} for r in rows)
    assert (await computers(http, headers, orderBy="Nope asc")).status_code == 400


async def test_faults(fake: AutomateFake, seed: FleetSeed, http: httpx.AsyncClient) -> None:
    headers = await login(fake, http)
    fake.rate_limit(times=1, retry_after=3)
    limited = await computers(http, headers)
    assert limited.status_code == 429 and limited.headers["Retry-After"] == "3"
    fake.fail_next(502, times=1, path="/Computers")
    assert (await computers(http, headers)).status_code == 502
    assert (await computers(http, headers)).status_code == 200
    assert fake.statuses[429] == 1 and fake.statuses[502] == 1


async def test_script_execute_and_history(
    fake: AutomateFake, seed: FleetSeed, http: httpx.AsyncClient
) -> None:
    headers = await login(fake, http)
    target = seed.computer_ids[0]
    body = {
        "EntityType": "Computer",
        "EntityIds": [target, 424242],
        "ScriptId": 6001,
        "Parameters": [{"Key": "ScanType", "Value": "Quick"}],
    }
    result = (await http.post("/Batch/ScriptExecute", json=body, headers=headers)).json()
    assert result["ContainsUnsuccessfulResults"] is True
    assert [r["ResultDetails"]["ResultStatus"] for r in result["ScriptResults"]] == [0, 1]
    fake.complete_script_runs()
    history = (await http.get(f"/Computers/{target}/ScriptHistory", headers=headers)).json()
    assert [(h["ScriptId"], h["Status"], h["State"]) for h in history] == [(6001, "Completed", "Success")]
    bad = await http.post(
        "/Batch/ScriptExecute", json={**body, "Parameters": "ScanType=Quick"}, headers=headers
    )
    assert bad.status_code == 400


def test_seed_fleet_is_deterministic() -> None:
    one, two = AutomateFake(), AutomateFake()
    one.seed_fleet(clients=5, computers=200)
    two.seed_fleet(clients=5, computers=200)
    assert [vars(c) for c in one.computers.values()] == [vars(c) for c in two.computers.values()]
    products = {c.scanner[1] if c.scanner else None for c in one.computers.values()}
    assert None in products and len(products) > 3
    assert any(not c.online for c in one.computers.values())
