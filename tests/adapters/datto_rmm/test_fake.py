"""The Datto RMM fake refuses what Datto refuses: the token route's OAuth2 answers, expired and
unknown tokens, requests past the rolling budget, unknown paths and methods, unreadable paging."""

from __future__ import annotations

import base64

import httpx
import pytest

from adapters.datto_rmm.fake import DattoFake

pytestmark = pytest.mark.asyncio
BASIC = "Basic " + base64.b64encode(b"public-client:public").decode()
FORM = {"content-type": "application/x-www-form-urlencoded"}


def fake() -> DattoFake:
    made = DattoFake()
    made.add_user("KEY", "SECRET")
    made.seed_fleet(["Acme Dental"], 3)
    return made


def http(f: DattoFake) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=f.transport(), base_url="https://concord-api.centrastage.net")


async def token(
    c: httpx.AsyncClient, body: str = "grant_type=password&username=KEY&password=SECRET"
) -> httpx.Response:
    return await c.post("/auth/oauth/token", content=body, headers={"authorization": BASIC, **FORM})


async def test_the_token_route_answers_as_spring_oauth2_does() -> None:
    async with http(fake()) as c:
        no_client = await c.post("/auth/oauth/token", content="grant_type=password", headers=FORM)
        assert no_client.status_code == 401 and no_client.json()["error"] == "unauthorized"
        wrong = await token(c, "grant_type=password&username=KEY&password=nope")
        assert (wrong.status_code, wrong.json()) == (
            400,
            {"error": "invalid_grant", "error_description": "Bad credentials"},
        )
        grant = await token(c, "grant_type=client_credentials&username=KEY&password=SECRET")
        assert grant.json()["error"] == "unsupported_grant_type"
        good = await token(c)
        assert good.status_code == 200 and good.json()["expires_in"] > 99 * 3600


async def test_tokens_expire_after_100_hours() -> None:
    f = fake()
    async with http(f) as c:
        bearer = {"authorization": f"Bearer {(await token(c)).json()['access_token']}"}
        assert (await c.get("/api/v2/account", headers=bearer)).status_code == 200
        f.advance_clock(100 * 3600)
        expired = await c.get("/api/v2/account", headers=bearer)
        assert expired.status_code == 401 and expired.json()["error"] == "invalid_token"
        assert (await c.get("/api/v2/account")).status_code == 401


async def test_past_the_budget_the_answer_is_429_until_the_window_frees() -> None:
    f = fake()
    f.reads_per_minute = 3
    async with http(f) as c:
        bearer = {"authorization": f"Bearer {(await token(c)).json()['access_token']}"}
        assert [(await c.get("/api/v2/account", headers=bearer)).status_code for _ in range(3)] == [
            200,
            200,
            429,
        ]
        f.advance_clock(61)
        assert (await c.get("/api/v2/account", headers=bearer)).status_code == 200


async def test_unknown_paths_methods_and_paging_are_refused() -> None:
    async with http(fake()) as c:
        bearer = {"authorization": f"Bearer {(await token(c)).json()['access_token']}"}
        assert (await c.get("/api/v2/account/computers", headers=bearer)).status_code == 404
        assert (await c.post("/api/v2/account/devices", headers=bearer)).status_code == 405
        bad = await c.get("/api/v2/account/devices", params={"page": "x"}, headers=bearer)
        assert bad.status_code == 400 and bad.json()["path"] == "/api/v2/account/devices"
        capped = (await c.get("/api/v2/account/devices", params={"max": "1000"}, headers=bearer)).json()
        assert capped["pageDetails"] == {
            "count": 3,
            "totalCount": 3,
            "prevPageUrl": None,
            "nextPageUrl": None,
        }
        first = (await c.get("/api/v2/account/devices", params={"max": "2"}, headers=bearer)).json()
        assert first["pageDetails"]["nextPageUrl"].endswith("/api/v2/account/devices?max=2&page=1")
        job = await c.put("/api/v2/device/nope/quickjob", json={"jobName": "x"}, headers=bearer)
        assert (job.status_code, job.json()["message"]) == (404, "Device was not found.")
