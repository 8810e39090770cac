"""Wire format of the N-central adapter's requests (respx), and its pure helpers."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import httpx
import pytest
import respx

from adapters.base import ActionKind, ConnectionContext
from adapters.errors import CredentialsError, NotFoundError, TransientVendorError, VendorRequestError
from adapters.ncentral.adapter import NcentralAdapter, api_base, embedded_error, parse_ncentral_error
from adapters.ncentral.alerts import parse_local_time, problem_for
from adapters.ncentral.models import NcentralCredentials, NcentralOptions

SERVER = "https://ncentral.example.com"
JWT = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhcGkifQ.c2lnbmF0dXJl"


async def no_sleep(_seconds: float) -> None:
    return None


def make_adapter(**options: object) -> NcentralAdapter:
    ctx = ConnectionContext(
        connection_id="nc-wire",
        base_url=SERVER + "/api/",
        credentials=NcentralCredentials(api_token=f"Bearer {JWT}"),
        options=NcentralOptions.model_validate(options),
        sleep=no_sleep,
    )
    return NcentralAdapter(ctx)


def tokens(access: str = "acc-1", refresh: str = "ref-1", seconds: int = 3600) -> dict[str, object]:
    return {
        "tokens": {
            "access": {"token": access, "type": "Bearer", "expirySeconds": seconds},
            "refresh": {"token": refresh, "type": "Body", "expirySeconds": 90000},
        },
        "refresh": "/api/auth/refresh",
        "validate": "/api/auth/validate",
    }


def page(rows: list[dict[str, object]], number: int, size: int, total: int) -> dict[str, object]:
    pages = (total + size - 1) // size
    return {
        "data": rows,
        "pageNumber": number,
        "pageSize": size,
        "itemCount": len(rows),
        "totalItems": total,
        "totalPages": pages,
        "_links": {},
    }


def device(device_id: int, customer_id: int = 100) -> dict[str, object]:
    return {
        "deviceId": device_id,
        "longName": f"WS-{device_id}",
        "deviceClass": "Workstations - Windows",
        "supportedOs": "Microsoft Windows 11 Pro",
        "customerId": customer_id,
        "customerName": "Acme",
        "siteId": 5000,
        "lastApplianceCheckinTime": "2026-11-20T12:00:00.000+01:00",
    }


@pytest.fixture
def router() -> Iterator[respx.MockRouter]:
    with respx.mock(base_url=SERVER, assert_all_called=True) as mock:
        yield mock


async def test_jwt_exchange_then_paged_listing_with_the_access_token(router: respx.MockRouter) -> None:
    auth = router.post("/api/auth/authenticate").respond(200, json=tokens())
    listing = router.get("/api/devices").mock(
        side_effect=[
            httpx.Response(200, json=page([device(1), device(2)], 1, 2, 3)),
            httpx.Response(200, json=page([device(3)], 2, 2, 3)),
        ]
    )
    adapter = make_adapter(
        page_size=2, read_service_status=False, access_expiry_override="30m", refresh_expiry_override="25h"
    )
    statuses = [s async for p in adapter.iter_endpoint_pages(None) for s in p.statuses]
    assert [s.endpoint_id for s in statuses] == ["1", "2", "3"]
    assert statuses[0].last_seen_at == datetime(2026, 11, 20, 11, 0, tzinfo=UTC)

    request = auth.calls.last.request
    assert request.headers["authorization"] == f"Bearer {JWT}"
    assert request.headers["x-access-expiry-override"] == "30m"
    assert request.headers["x-refresh-expiry-override"] == "25h"
    assert request.content == b""
    assert listing.call_count == 2
    first, second = (c.request for c in listing.calls)
    assert first.headers["authorization"] == "Bearer acc-1"
    assert first.headers["accept"] == "application/json"
    assert dict(first.url.params) == {
        "pageNumber": "1",
        "pageSize": "2",
        "sortBy": "deviceId",
        "sortOrder": "ASC",
    }
    assert dict(second.url.params)["pageNumber"] == "2"
    assert str(first.url).startswith(f"{SERVER}/api/devices?")


async def test_a_bare_list_page_ends_on_a_short_page(router: respx.MockRouter) -> None:
    router.post("/api/auth/authenticate").respond(200, json=tokens())
    listing = router.get("/api/customers").mock(
        side_effect=[
            httpx.Response(200, json={"data": [{"customerId": "100", "customerName": "Acme"}]}),
        ]
    )
    adapter = make_adapter(page_size=5)
    clients = [c async for c in adapter.list_clients()]
    assert [(c.id, c.name) for c in clients] == [("100", "Acme")]
    assert listing.call_count == 1


async def test_refresh_sends_the_refresh_token_as_the_raw_body(router: respx.MockRouter) -> None:
    router.post("/api/auth/authenticate").respond(200, json=tokens(seconds=60))
    refresh = router.post("/api/auth/refresh").respond(200, json=tokens("acc-2", "ref-2"))
    router.get("/api/devices").respond(200, json=page([], 1, 1, 0))
    adapter = make_adapter(token_refresh_margin_seconds=120)  # a 60 s token is always inside the margin
    await adapter.test_connection()
    assert refresh.call_count == 1
    request = refresh.calls.last.request
    assert request.content == b"ref-1"
    assert request.headers["content-type"] == "text/plain"
    assert "authorization" not in request.headers


async def test_service_states_read_from_a_bare_array(router: respx.MockRouter) -> None:
    router.post("/api/auth/authenticate").respond(200, json=tokens())
    router.get("/api/devices").respond(200, json=page([device(7)], 1, 50, 1))
    router.get("/api/devices/7/service-monitor-status").respond(
        200,
        json=[
            {"taskId": 1, "moduleName": "Windows UAC Status", "stateStatus": "Disconnected"},
            {"taskId": 2, "moduleName": "AV Defender Status", "stateStatus": "Warning"},
            {"taskId": 3, "moduleName": "Agent Status", "stateStatus": "Normal"},
        ],
    )
    [[status]] = [p.statuses async for p in make_adapter().iter_endpoint_pages(None)]
    assert (status.product, status.protection_enabled, status.online) == ("AV Defender", False, True)


async def test_a_refused_parameter_is_named_and_not_retried(router: respx.MockRouter) -> None:
    router.post("/api/auth/authenticate").respond(200, json=tokens())
    listing = router.get("/api/devices").respond(
        400,
        json={
            "status": 400,
            "message": "[ID=ab12] BAD REQUEST: BadRequestException: Invalid filterId format.",
        },
    )
    with pytest.raises(VendorRequestError) as caught:
        [p async for p in make_adapter(device_filter_id=3).iter_endpoint_pages(None)]
    assert caught.value.field == "filterId"
    assert caught.value.message.startswith("BAD REQUEST")
    assert listing.call_count == 1


async def test_a_401_after_refresh_and_exchange_is_a_credentials_error(router: respx.MockRouter) -> None:
    auth = router.post("/api/auth/authenticate").mock(
        side_effect=[
            httpx.Response(200, json=tokens()),
            httpx.Response(401, json={"status": 401, "message": "UNAUTHORIZED: token revoked"}),
        ]
    )
    router.post("/api/auth/refresh").respond(401, json={"status": 401, "message": "UNAUTHORIZED"})
    router.get("/api/devices").respond(401, json={"status": 401, "message": "UNAUTHORIZED: expired"})
    with pytest.raises(CredentialsError) as caught:
        await make_adapter().test_connection()
    assert auth.call_count == 2
    assert caught.value.field == "api_token"


async def test_direct_task_wire(router: respx.MockRouter) -> None:
    router.post("/api/auth/authenticate").respond(200, json=tokens())
    router.get("/api/devices/526898132189").respond(
        200, json={"data": device(526898132189, 4242), "_links": {}}
    )
    task = router.post("/api/scheduled-tasks/direct").respond(201, json={"data": {"taskId": 905592865}})
    adapter = make_adapter(scan_item_id=2001, scan_task_type="Script")
    result = await adapter.run_action("526898132189", ActionKind.SCAN)
    assert result.vendor_reference == "task:905592865"
    sent = json.loads(task.calls.last.request.content)
    assert sent == {
        "name": sent["name"],
        "itemId": 2001,
        "taskType": "Script",
        "customerId": 4242,
        "deviceId": 526898132189,
        "credential": {"type": "LocalSystem"},
        "parameters": [],
    }
    assert sent["name"].startswith("connector scan 526898132189 ")
    assert task.call_count == 1


async def test_a_failed_task_post_is_never_resent(router: respx.MockRouter) -> None:
    router.post("/api/auth/authenticate").respond(200, json=tokens())
    router.get("/api/devices/5").respond(200, json={"data": device(5)})
    task = router.post("/api/scheduled-tasks/direct").respond(500, json={"status": 500, "message": "boom"})
    with pytest.raises(TransientVendorError) as caught:
        await make_adapter(scan_item_id=2001).run_action("5", ActionKind.SCAN)
    assert caught.value.maybe_applied
    assert task.call_count == 1


async def test_unknown_device_for_an_action(router: respx.MockRouter) -> None:
    router.post("/api/auth/authenticate").respond(200, json=tokens())
    router.get("/api/devices/5").respond(404, json={"status": 404, "message": "[ID=x]NOT FOUND: nope"})
    with pytest.raises(NotFoundError):
        await make_adapter(scan_item_id=2001).run_action("5", ActionKind.SCAN)


# ---------------------------------------------------------------------------------------------
# Pure helpers
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("ncentral.example.com", "https://ncentral.example.com"),
        ("https://ncentral.example.com/api/", "https://ncentral.example.com"),
        ("https://nc.example.com:8443/api-explorer", "https://nc.example.com:8443"),
    ],
)
def test_api_base(url: str, expected: str) -> None:
    assert api_base(url) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2017-02-16T21:00:00.000+01:00", datetime(2017, 2, 16, 20, 0, tzinfo=UTC)),
        ("2024-02-28 15:25:05.939 -0500", datetime(2024, 2, 28, 20, 25, 5, 939000, tzinfo=UTC)),
        (
            "2024-02-21T06:28:10.624-05:00[America/New_York]",
            datetime(2024, 2, 21, 11, 28, 10, 624000, tzinfo=UTC),
        ),
        ("2025-05-29 22:05:10", datetime(2025, 5, 30, 2, 5, 10, tzinfo=UTC)),
        ("2023-09-27T15:43:16.793Z", datetime(2023, 9, 27, 15, 43, 16, 793000, tzinfo=UTC)),
        ("", None),
        ("soon", None),
    ],
)
def test_parse_local_time(text: str, expected: datetime | None) -> None:
    assert parse_local_time(text, ZoneInfo("America/New_York")) == expected


def test_error_bodies_and_errors_inside_a_200() -> None:
    response = httpx.Response(
        404, json={"status": 404, "message": "[ID=abcd]NOT FOUND: ResourceNotFoundException: Customer 5"}
    )
    assert parse_ncentral_error(response) == ("NOT FOUND: ResourceNotFoundException: Customer 5", None)
    assert parse_ncentral_error(httpx.Response(502, text="Bad gateway")) == ("Bad gateway", None)
    problem = embedded_error({"status": 500, "message": "[ID=1] INTERNAL SERVER ERROR: DMS"})
    assert isinstance(problem, TransientVendorError) and problem.retryable
    assert embedded_error({"data": [], "status": 500}) is None
    assert embedded_error({"status": 200, "message": "ok"}) is None


def test_problem_kinds_for_service_names() -> None:
    assert problem_for("CPU") is None
    assert problem_for("Windows UAC Status") is None
    assert problem_for("AV Defender Status") is not None
