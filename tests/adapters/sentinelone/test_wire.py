"""SentinelOne wire details pinned with respx: the console host and `/web/api/v2.1` prefix, the
`ApiToken` header, the exact query strings of each list, `nextCursor` followed, and a 429's
`Retry-After` waited before the retry."""

from __future__ import annotations

from datetime import UTC, datetime

import httpx
import respx

from adapters.base import ConnectionContext
from adapters.sentinelone.adapter import SentinelOneAdapter
from adapters.sentinelone.models import SentinelOneCredentials, SentinelOneOptions
from adapters.testing.harness import RecordingSleep

API = "https://usea1-partners.sentinelone.net/web/api/v2.1"


def adapter(sleep: RecordingSleep | None = None, **options: object) -> SentinelOneAdapter:
    ctx = ConnectionContext(
        connection_id="c",
        base_url="usea1-partners.sentinelone.net/",
        credentials=SentinelOneCredentials.model_validate({"api_token": " tok-123 "}),
        options=SentinelOneOptions.model_validate(options),
        transport_factory=lambda _url: httpx.AsyncHTTPTransport(),
        sleep=sleep or RecordingSleep(),
    )
    return SentinelOneAdapter(ctx)


def agent(n: int) -> dict[str, object]:
    return {"id": str(n), "siteId": "77", "computerName": f"PC-{n}", "isActive": True}


@respx.mock
async def test_agents_are_read_by_cursor_with_the_api_token() -> None:
    route = respx.get(f"{API}/agents").mock(
        side_effect=[
            httpx.Response(
                200, json={"data": [agent(1), agent(2)], "pagination": {"nextCursor": "YWdlbnRfaWQ6Mg=="}}
            ),
            httpx.Response(
                200, json={"data": [agent(3)], "pagination": {"nextCursor": None, "totalItems": 3}}
            ),
        ]
    )
    s1 = adapter(page_size=2, site_ids=["77"])
    since = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
    names = [a.hostname async for page in s1.iter_agent_pages(since) for a in page.agents]
    await s1.aclose()
    assert names == ["PC-1", "PC-2", "PC-3"]
    assert [dict(c.request.url.params) for c in route.calls] == [
        {
            "limit": "2",
            "siteIds": "77",
            "isDecommissioned": "false",
            "updatedAt__gt": "2026-11-20T12:00:00.000000Z",
        },
        {
            "limit": "2",
            "cursor": "YWdlbnRfaWQ6Mg==",
            "siteIds": "77",
            "isDecommissioned": "false",
            "updatedAt__gt": "2026-11-20T12:00:00.000000Z",
        },
    ]
    assert all(c.request.headers["authorization"] == "ApiToken tok-123" for c in route.calls)
    assert all(c.request.headers["accept"] == "application/json" for c in route.calls)


@respx.mock
async def test_a_429_is_waited_out_as_retry_after_asks() -> None:
    sites = {
        "data": {
            "allSites": {"activeLicenses": 3, "totalLicenses": 5},
            "sites": [
                {
                    "id": "77",
                    "name": "Acme",
                    "externalId": "",
                    "activeLicenses": 3,
                    "totalLicenses": 5,
                    "sku": "Control",
                    "unlimitedLicenses": False,
                    "licenses": {"bundles": [], "modules": [], "settings": []},
                }
            ],
        },
        "pagination": {"nextCursor": None, "totalItems": 1},
    }
    route = respx.get(f"{API}/sites").mock(
        side_effect=[
            httpx.Response(
                429,
                headers={"Retry-After": "12"},
                json={"errors": [{"code": 4290010, "title": "Too Many Requests"}]},
            ),
            httpx.Response(200, json=sites),
            httpx.Response(200, json=sites),
        ]
    )
    sleep = RecordingSleep()
    s1 = adapter(sleep)
    uses = await s1.licence_use()
    customers = [c async for c in s1.list_customers()]
    await s1.aclose()
    assert sleep.calls[0] >= 12
    assert [(u.product, u.sku, u.seats_used, u.seats_purchased) for u in uses] == [
        ("SentinelOne Control", "Control", 3, 5)
    ]
    assert customers[0].psa_company_ids == {}  # an empty externalId proposes nothing
    assert dict(route.calls[0].request.url.params) == {"limit": "1000"}
