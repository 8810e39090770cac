"""Sophos Central wire details pinned with respx, answered with the collection's own example
bodies: a tenant credential's flow from `whoami` to its regional host, the token form and its
reuse, key paging, a 429's `Retry-After`, and the vendor's error body in the raised error."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qs

import httpx
import pytest
import respx

from adapters.base import ConnectionContext
from adapters.errors import CredentialsError, TransientVendorError
from adapters.sophos_central.adapter import SophosCentralAdapter
from adapters.sophos_central.models import SophosCredentials, SophosOptions
from adapters.testing.harness import RecordingSleep
from tests.support.specs import load_json

pytestmark = pytest.mark.asyncio

GLOBAL = "https://api.central.sophos.com"
REGION = "https://api-us01.central.sophos.com"
TOKEN_URL = "https://id.sophos.com/api/v2/oauth2/token"
TOKEN = {"access_token": "tok-1", "errorCode": "success", "expires_in": 3600, "token_type": "bearer"}
TENANT = "25bf3721-9425-c449-ba4c-0656670878a0"


def sample(name: str) -> Any:
    return load_json(f"sophos-central/samples/{name}")


def error_example() -> dict[str, Any]:
    """The body of the collection's 500 example of "Query alerts"."""
    for item in _requests(load_json("sophos-central/Sophos Central APIs.postman_collection.json")["item"]):
        if item["name"] == "Query alerts":
            for response in item["response"]:
                if response["code"] == 500:
                    body: dict[str, Any] = json.loads(response["body"])
                    return body
    raise AssertionError("no 500 example")


def _requests(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    for item in items:
        found.extend(_requests(item["item"]) if "item" in item else [item])
    return found


def adapter(sleep: RecordingSleep | None = None, **options: Any) -> SophosCentralAdapter:
    ctx = ConnectionContext(
        connection_id="c",
        base_url=GLOBAL,
        credentials=SophosCredentials.model_validate({"client_id": "cid", "client_secret": "csecret"}),
        options=SophosOptions.model_validate({"tenant_name": "Acme Corp", **options}),
        transport_factory=lambda _url: httpx.AsyncHTTPTransport(),
        sleep=sleep or RecordingSleep(),
    )
    return SophosCentralAdapter(ctx)


@respx.mock
async def test_a_tenant_credential_reads_its_region_with_the_collections_examples() -> None:
    token = respx.post(TOKEN_URL).mock(return_value=httpx.Response(200, json=TOKEN))
    whoami = respx.get(f"{GLOBAL}/whoami/v1").mock(
        return_value=httpx.Response(200, json=sample("whoami-v1.json"))
    )
    page = sample("endpoint-v1-endpoints.json")
    full = {**page, "items": [sample("endpoint-v1-endpoint-by-id.json")]}
    endpoints = respx.get(f"{REGION}/endpoint/v1/endpoints").mock(
        side_effect=[httpx.Response(200, json=full), httpx.Response(200, json={"items": [], "pages": {}})]
    )
    alerts = respx.get(f"{REGION}/common/v1/alerts").mock(
        return_value=httpx.Response(200, json={**sample("common-v1-alerts.json"), "pages": {"maxSize": 1000}})
    )
    sophos = adapter()
    customers = [c async for c in sophos.list_customers()]
    assert [(c.id, c.name) for c in customers] == [(TENANT, "Acme Corp")]
    agents = [a async for p in sophos.iter_agent_pages(None) for a in p.agents]
    assert [(a.hostname, a.serial_number, a.isolated) for a in agents] == [
        ("Example Name", "P28DA81LMD5T", True)
    ]
    snapshot = await sophos.list_threats(None)
    assert [t.classification for t in snapshot.threats] == ["PUA"]
    assert snapshot.complete_for == frozenset({TENANT})
    await sophos.aclose()

    assert token.call_count == 1 and whoami.call_count == 1  # both cached across the calls
    form = parse_qs(token.calls[0].request.content.decode())
    assert form == {
        "grant_type": ["client_credentials"],
        "scope": ["token"],
        "client_id": ["cid"],
        "client_secret": ["csecret"],
    }
    first, second = (call.request for call in endpoints.calls)
    assert first.headers["x-tenant-id"] == TENANT and first.headers["authorization"] == "Bearer tok-1"
    assert "pageFromKey" not in first.url.params and second.url.params["pageFromKey"] == "string"
    # The whoami example's data region is written with http: the call still goes over HTTPS.
    assert first.url.scheme == "https" and alerts.calls[0].request.url.host == "api-us01.central.sophos.com"


@respx.mock
async def test_429_retry_after_then_the_vendors_error_body_is_in_the_error() -> None:
    respx.post(TOKEN_URL).mock(return_value=httpx.Response(200, json=TOKEN))
    respx.get(f"{GLOBAL}/whoami/v1").mock(return_value=httpx.Response(200, json=sample("whoami-v1.json")))
    body = error_example()
    respx.get(f"{REGION}/common/v1/alerts").mock(
        side_effect=[
            httpx.Response(429, json=body, headers={"Retry-After": "4"}),
            *[httpx.Response(500, json=body)] * 5,
        ]
    )
    sleeps = RecordingSleep()
    sophos = adapter(sleeps)
    with pytest.raises(TransientVendorError) as caught:
        await sophos.list_threats(None)
    assert sleeps.calls[0] >= 4
    assert "Internal Server Error." in caught.value.message
    assert body["correlationId"] in caught.value.message
    await sophos.aclose()


@respx.mock
async def test_a_refused_token_is_a_credentials_error() -> None:
    respx.post(TOKEN_URL).mock(
        return_value=httpx.Response(
            400, json={"errorCode": "oauth.invalid_client_secret", "message": "bad secret"}
        )
    )
    sophos = adapter()
    with pytest.raises(CredentialsError) as caught:
        await sophos.test_connection()
    assert "bad secret" in caught.value.message and caught.value.field == "credentials"
    await sophos.aclose()
