"""NinjaOne wire details pinned with respx: the region's host for token and API, the token form,
`after` and `cursor` paging, and a 429's `Retry-After` on a report page."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs

import httpx
import pytest
import respx

from adapters.base import ConnectionContext
from adapters.errors import RateLimitedError
from adapters.ninjaone.adapter import NinjaOneAdapter
from adapters.ninjaone.models import NinjaOneCredentials, NinjaOneOptions
from adapters.testing.harness import RecordingSleep

pytestmark = pytest.mark.asyncio

EU = "https://eu.ninjarmm.com"
TOKEN = {"access_token": "tok-1", "token_type": "bearer", "expires_in": 3600, "scope": "monitoring"}


def adapter(sleep: RecordingSleep | None = None, **options: Any) -> NinjaOneAdapter:
    ctx = ConnectionContext(
        connection_id="c",
        base_url="https://app.ninjarmm.com",
        credentials=NinjaOneCredentials(client_id="cid", client_secret="csecret"),  # type: ignore[arg-type]
        options=NinjaOneOptions.model_validate({"region": "eu", **options}),
        transport_factory=lambda _url: httpx.AsyncHTTPTransport(),
        sleep=sleep or RecordingSleep(),
    )
    return NinjaOneAdapter(ctx)


@respx.mock
async def test_the_region_picks_the_host_and_the_token_is_a_client_credentials_form() -> None:
    token = respx.post(f"{EU}/ws/oauth/token").mock(return_value=httpx.Response(200, json=TOKEN))
    orgs = respx.get(f"{EU}/v2/organizations").mock(
        side_effect=[
            httpx.Response(200, json=[{"id": 1, "name": "Acme"}, {"id": 4, "name": "Blue"}]),
            httpx.Response(200, json=[{"id": 9, "name": "Cedar"}]),
        ]
    )
    ninja = adapter(page_size=2)
    assert [c.name async for c in ninja.list_clients()] == ["Acme", "Blue", "Cedar"]
    await ninja.aclose()
    form = parse_qs(token.calls[0].request.content.decode())
    assert form == {
        "grant_type": ["client_credentials"],
        "client_id": ["cid"],
        "client_secret": ["csecret"],
        "scope": ["monitoring management control"],
    }
    assert [dict(c.request.url.params) for c in orgs.calls] == [
        {"pageSize": "2"},
        {"pageSize": "2", "after": "4"},
    ]
    assert all(c.request.headers["authorization"] == "Bearer tok-1" for c in orgs.calls)


@respx.mock
async def test_reports_follow_the_cursor_and_a_429_waits_what_retry_after_asks() -> None:
    respx.post(f"{EU}/ws/oauth/token").mock(return_value=httpx.Response(200, json=TOKEN))
    cursor = {"name": "c-1", "offset": 0, "count": 1, "expires": 1.0}
    status = respx.get(f"{EU}/v2/queries/antivirus-status").mock(
        side_effect=[
            httpx.Response(
                200, json={"cursor": cursor, "results": [{"deviceId": 1, "productName": "SentinelOne"}]}
            ),
            httpx.Response(429, headers={"Retry-After": "11"}),
            httpx.Response(200, json={"cursor": {**cursor, "name": "c-2"}, "results": []}),
        ]
    )
    respx.get(f"{EU}/v2/queries/antivirus-threats").mock(
        return_value=httpx.Response(200, json={"results": []})
    )
    respx.get(f"{EU}/v2/queries/computer-systems").mock(
        return_value=httpx.Response(200, json={"results": []})
    )
    device = {"id": 1, "organizationId": 3, "systemName": "WS-1", "offline": False}
    respx.get(f"{EU}/v2/devices-detailed").mock(
        side_effect=[httpx.Response(200, json=[device]), httpx.Response(200, json=[])]
    )
    sleep = RecordingSleep()
    ninja = adapter(sleep, page_size=1)
    [page] = [p async for p in ninja.iter_endpoint_pages(None)]
    await ninja.aclose()
    assert page.statuses[0].product == "SentinelOne"
    assert [c.request.url.params.get("cursor") for c in status.calls] == [None, "c-1", "c-1"]
    assert 11 in sleep.calls


@respx.mock
async def test_a_lasting_429_on_the_device_list_is_a_rate_limited_error() -> None:
    respx.post(f"{EU}/ws/oauth/token").mock(return_value=httpx.Response(200, json=TOKEN))
    respx.get(f"{EU}/v2/organizations").mock(return_value=httpx.Response(429, headers={"Retry-After": "5"}))
    ninja = adapter()
    with pytest.raises(RateLimitedError) as caught:
        [c async for c in ninja.list_clients()]
    await ninja.aclose()
    assert caught.value.retry_after == 5
