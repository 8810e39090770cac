"""Huntress wire details pinned with respx over the real network transport (no transport factory):
the API host, the Basic credentials, `limit` / `page_token` paging, a 429's `Retry-After`, and the
error bodies turned into adapter errors."""

from __future__ import annotations

import base64
from typing import Any

import httpx
import pytest
import respx

from adapters.base import ConnectionContext
from adapters.errors import CredentialsError, NotFoundError, VendorRequestError
from adapters.huntress.adapter import HuntressAdapter
from adapters.huntress.models import HuntressCredentials, HuntressOptions
from adapters.testing.harness import RecordingSleep

API = "https://api.huntress.io"
BASIC = "Basic " + base64.b64encode(b"hk_public:hs_private").decode()


def adapter(sleep: RecordingSleep | None = None, base_url: str = API, **options: Any) -> HuntressAdapter:
    ctx = ConnectionContext(
        connection_id="c",
        base_url=base_url,
        credentials=HuntressCredentials.model_validate({"api_key": "hk_public", "api_secret": "hs_private"}),
        options=HuntressOptions.model_validate(options),
        sleep=sleep or RecordingSleep(),
    )
    return HuntressAdapter(ctx)


def organization(org_id: int) -> dict[str, Any]:
    return {"id": org_id, "name": f"Org {org_id}", "agents_count": 2, "key": f"org{org_id}"}


@respx.mock
async def test_basic_credentials_on_the_api_host_and_page_tokens_followed() -> None:
    first = {
        "organizations": [organization(1), organization(2)],
        "pagination": {
            "next_page_token": "T2",
            "next_page_url": f"{API}/v1/organizations?page_token=T2&limit=2",
        },
    }
    last = {"organizations": [organization(3)], "pagination": {}}
    route = respx.get(f"{API}/v1/organizations").mock(
        side_effect=[httpx.Response(200, json=first), httpx.Response(200, json=last)]
    )
    huntress = adapter(base_url="api.huntress.io/v1/", page_size=2)
    assert [c.id async for c in huntress.list_customers()] == ["1", "2", "3"]
    calls = route.calls
    assert [c.request.headers["authorization"] for c in calls] == [BASIC, BASIC]
    assert dict(calls[0].request.url.params) == {"sort_field": "id", "sort_direction": "asc", "limit": "2"}
    assert dict(calls[1].request.url.params)["page_token"] == "T2"
    await huntress.aclose()


@respx.mock
async def test_a_429_waits_what_retry_after_says() -> None:
    respx.get(f"{API}/v1/account").mock(
        side_effect=[
            httpx.Response(429, headers={"Retry-After": "3"}, json={"error": "Too many requests"}),
            httpx.Response(200, json={"account": {"id": 5, "name": "MSP"}}),
        ]
    )
    sleep = RecordingSleep()
    huntress = adapter(sleep)
    await huntress.test_connection()
    assert sleep.calls and sleep.calls[0] >= 3
    await huntress.aclose()


@respx.mock
@pytest.mark.parametrize(
    ("status", "body", "error", "message"),
    [
        (401, {"error": "Unauthorized"}, CredentialsError, "Unauthorized"),
        (403, {"message": "Forbidden for this key"}, CredentialsError, "Forbidden"),
        (404, {"errors": ["Organization not found"]}, NotFoundError, "not found"),
        (400, {"error": "limit does not have a valid value"}, VendorRequestError, "limit"),
    ],
)
async def test_error_answers_become_adapter_errors_sent_once(
    status: int, body: dict[str, Any], error: type[Exception], message: str
) -> None:
    route = respx.get(f"{API}/v1/account").mock(return_value=httpx.Response(status, json=body))
    huntress = adapter()
    with pytest.raises(error, match=message):
        await huntress.test_connection()
    assert route.call_count == 1
    await huntress.aclose()
