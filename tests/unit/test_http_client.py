"""The retry policy of the shared vendor HTTP client, pinned on the wire with respx.

Waiting is recorded, never done: every client gets a sleep that only notes how long it was asked
to wait, so Retry-After handling and backoff bounds are asserted exactly and the tests run instantly.
"""

from __future__ import annotations

import asyncio
import email.utils
import logging
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import respx

from adapters.errors import (
    AdapterError,
    CredentialsError,
    NotFoundError,
    RateLimitedError,
    TransientVendorError,
    VendorRequestError,
)
from adapters.http import RetryPolicy, VendorHttpClient, parse_retry_after

BASE = "https://vendor.example.test/api"


class RecordingSleep:
    """Stands in for asyncio.sleep: remembers each requested wait and returns at once."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


class AuthHook:
    """An `auth_headers` callback that hands out a new token whenever a refresh is forced."""

    def __init__(self) -> None:
        self.calls: list[bool] = []
        self.generation = 0

    async def __call__(self, force: bool) -> Mapping[str, str]:
        self.calls.append(force)
        if force:
            self.generation += 1
        return {"Authorization": f"Bearer token-{self.generation}"}


@pytest.fixture
def sleep() -> RecordingSleep:
    return RecordingSleep()


@pytest.fixture
def vendor() -> Any:
    with respx.mock(base_url=BASE, assert_all_called=False) as router:
        yield router


def client(sleep: RecordingSleep, **kwargs: Any) -> VendorHttpClient:
    return VendorHttpClient(BASE, sleep=sleep, **kwargs)


def http_date(when: datetime) -> str:
    return email.utils.format_datetime(when, usegmt=True)


# --- Retry-After -------------------------------------------------------------------------------


async def test_429_with_retry_after_seconds_waits_at_least_that_long(
    vendor: Any, sleep: RecordingSleep
) -> None:
    route = vendor.get("/devices").mock(
        side_effect=[httpx.Response(429, headers={"Retry-After": "7"}), httpx.Response(200, json=[1])]
    )
    http = client(sleep)
    response = await http.request("GET", "/devices")
    assert response.json() == [1]
    assert route.call_count == 2
    # backoff for the first attempt is at most 0.5 s, so the vendor's 7 s wins outright
    assert sleep.waits == [7.0]


async def test_429_with_retry_after_http_date_waits_until_then(vendor: Any, sleep: RecordingSleep) -> None:
    when = datetime.now(UTC) + timedelta(seconds=45)
    vendor.get("/devices").mock(
        side_effect=[httpx.Response(429, headers={"Retry-After": http_date(when)}), httpx.Response(200)]
    )
    await client(sleep).request("GET", "/devices")
    assert len(sleep.waits) == 1
    # the header has whole seconds, so up to one second is lost to truncation
    assert 43.0 <= sleep.waits[0] <= 45.0


@pytest.mark.parametrize("form", ["seconds", "http-date"])
async def test_retry_after_is_capped(vendor: Any, sleep: RecordingSleep, form: str) -> None:
    far = "86400" if form == "seconds" else http_date(datetime.now(UTC) + timedelta(days=1))
    vendor.get("/devices").mock(
        side_effect=[httpx.Response(429, headers={"Retry-After": far}), httpx.Response(200)]
    )
    await client(sleep, retry=RetryPolicy(retry_after_max=10.0)).request("GET", "/devices")
    assert sleep.waits == [10.0]


async def test_429_without_retry_after_falls_back_to_jittered_backoff(
    vendor: Any, sleep: RecordingSleep
) -> None:
    vendor.get("/devices").mock(side_effect=[httpx.Response(429), httpx.Response(429), httpx.Response(200)])
    await client(sleep).request("GET", "/devices")
    assert len(sleep.waits) == 2
    assert 0.0 <= sleep.waits[0] <= 0.5
    assert 0.0 <= sleep.waits[1] <= 1.0


async def test_429_until_attempts_run_out_raises_rate_limited(vendor: Any, sleep: RecordingSleep) -> None:
    route = vendor.get("/devices").mock(return_value=httpx.Response(429, headers={"Retry-After": "3"}))
    with pytest.raises(RateLimitedError) as caught:
        await client(sleep, retry=RetryPolicy(attempts=3)).request("GET", "/devices")
    assert caught.value.retry_after == 3.0
    assert caught.value.retryable
    assert route.call_count == 3
    assert sleep.waits == [3.0, 3.0]


def test_parse_retry_after_forms() -> None:
    now = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)
    assert parse_retry_after("120") == 120.0
    assert parse_retry_after(" 1.5 ") == 1.5
    assert parse_retry_after("-4") == 0.0
    assert parse_retry_after("Sun, 01 Mar 2026 12:00:30 GMT", now=now) == 30.0
    assert parse_retry_after("Sun, 01 Mar 2026 11:00:00 GMT", now=now) == 0.0
    assert parse_retry_after("soon") is None
    assert parse_retry_after("") is None
    assert parse_retry_after(None) is None


# --- transient failures -----------------------------------------------------------------------


async def test_5xx_and_timeouts_are_retried_with_bounded_backoff(vendor: Any, sleep: RecordingSleep) -> None:
    route = vendor.get("/devices").mock(
        side_effect=[
            httpx.Response(503),
            httpx.ReadTimeout("read timed out"),
            httpx.ConnectTimeout("connect timed out"),
            httpx.Response(502),
            httpx.Response(200, json={"ok": True}),
        ]
    )
    policy = RetryPolicy(attempts=5, backoff_base=0.5, backoff_max=2.0)
    response = await client(sleep, retry=policy).request("GET", "/devices")
    assert response.json() == {"ok": True}
    assert route.call_count == 5
    assert len(sleep.waits) == 4
    for attempt, waited in enumerate(sleep.waits, start=1):
        assert 0.0 <= waited <= min(policy.backoff_max, policy.backoff_base * 2 ** (attempt - 1))


async def test_5xx_until_attempts_run_out_raises_transient(vendor: Any, sleep: RecordingSleep) -> None:
    route = vendor.get("/devices").mock(return_value=httpx.Response(503, json={"message": "maintenance"}))
    with pytest.raises(TransientVendorError) as caught:
        await client(sleep, retry=RetryPolicy(attempts=3)).request("GET", "/devices")
    assert caught.value.status == 503
    assert caught.value.message == "maintenance"
    assert route.call_count == 3
    assert len(sleep.waits) == 2


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (400, VendorRequestError),
        (404, NotFoundError),
        (409, VendorRequestError),
        (422, VendorRequestError),
        (403, CredentialsError),
    ],
)
async def test_client_errors_are_not_retried_and_name_the_field(
    vendor: Any, sleep: RecordingSleep, status: int, error: type[AdapterError]
) -> None:
    route = vendor.post("/tickets").mock(
        return_value=httpx.Response(status, json={"message": "is required", "field": "summary"})
    )
    with pytest.raises(error) as caught:
        await client(sleep).request("POST", "/tickets", json={}, idempotent=True)
    assert type(caught.value) is error
    assert caught.value.status == status
    assert caught.value.field == "summary"
    assert str(caught.value) == "summary: is required"
    assert not caught.value.retryable
    assert route.call_count == 1
    assert sleep.waits == []


async def test_error_logs_never_carry_the_query_string(
    vendor: Any, sleep: RecordingSleep, caplog: pytest.LogCaptureFixture
) -> None:
    vendor.get("/devices").mock(return_value=httpx.Response(400, text="bad request"))
    with caplog.at_level(logging.WARNING, logger="adapters.http"), pytest.raises(VendorRequestError):
        await client(sleep).request("GET", "/devices", params={"apikey": "s3cret-key"})
    assert "/api/devices" in caplog.text
    assert "s3cret-key" not in caplog.text


# --- 401 re-authentication --------------------------------------------------------------------


def accept_only(token: str) -> Any:
    def respond(request: httpx.Request) -> httpx.Response:
        if request.headers.get("Authorization") == f"Bearer {token}":
            return httpx.Response(200, json={"token": token})
        return httpx.Response(401, json={"message": "token expired"})

    return respond


async def test_401_forces_one_reauthentication_then_succeeds(vendor: Any, sleep: RecordingSleep) -> None:
    route = vendor.get("/devices").mock(side_effect=accept_only("token-1"))
    auth = AuthHook()
    response = await client(sleep, auth_headers=auth).request("GET", "/devices")
    assert response.json() == {"token": "token-1"}
    assert auth.calls == [False, True]
    assert [call.request.headers["Authorization"] for call in route.calls] == [
        "Bearer token-0",
        "Bearer token-1",
    ]
    assert sleep.waits == []


async def test_401_after_reauthentication_is_a_credentials_error(vendor: Any, sleep: RecordingSleep) -> None:
    route = vendor.get("/devices").mock(return_value=httpx.Response(401, json={"message": "bad secret"}))
    auth = AuthHook()
    with pytest.raises(CredentialsError) as caught:
        await client(sleep, auth_headers=auth).request("GET", "/devices")
    assert caught.value.status == 401
    assert auth.calls == [False, True]
    assert route.call_count == 2
    assert sleep.waits == []


async def test_401_without_a_token_hook_fails_at_once(vendor: Any, sleep: RecordingSleep) -> None:
    route = vendor.get("/devices").mock(return_value=httpx.Response(401))
    with pytest.raises(CredentialsError):
        await client(sleep, headers={"Authorization": "Basic eDp5"}).request("GET", "/devices")
    assert route.call_count == 1


async def test_unauthenticated_requests_skip_the_token_hook(vendor: Any, sleep: RecordingSleep) -> None:
    route = vendor.post("/token").mock(return_value=httpx.Response(200, json={"access_token": "t"}))
    auth = AuthHook()
    await client(sleep, auth_headers=auth).request("POST", "/token", authenticated=False)
    assert auth.calls == []
    assert "Authorization" not in route.calls.last.request.headers


# --- non-idempotent requests ------------------------------------------------------------------


@pytest.mark.parametrize(
    "failure",
    [httpx.Response(503), httpx.Response(500), httpx.ReadTimeout("read timed out")],
    ids=["503", "500", "read-timeout"],
)
async def test_create_is_not_resent_after_a_failure_the_vendor_may_have_applied(
    vendor: Any, sleep: RecordingSleep, failure: httpx.Response | Exception
) -> None:
    route = vendor.post("/tickets").mock(side_effect=[failure, httpx.Response(201)])
    with pytest.raises(TransientVendorError) as caught:
        await client(sleep).request("POST", "/tickets", json={"summary": "x"})
    assert caught.value.maybe_applied is True
    assert route.call_count == 1
    assert sleep.waits == []


@pytest.mark.parametrize(
    "failure",
    [
        httpx.Response(429, headers={"Retry-After": "2"}),
        httpx.ConnectError("connection refused"),
        httpx.ConnectTimeout("connect timed out"),
    ],
    ids=["429", "connect-error", "connect-timeout"],
)
async def test_create_is_resent_when_the_vendor_certainly_did_not_act(
    vendor: Any, sleep: RecordingSleep, failure: httpx.Response | Exception
) -> None:
    route = vendor.post("/tickets").mock(side_effect=[failure, httpx.Response(201, json={"id": 9})])
    response = await client(sleep).request("POST", "/tickets", json={"summary": "x"})
    assert response.status_code == 201
    assert route.call_count == 2
    assert len(sleep.waits) == 1


async def test_connect_failure_is_reported_as_not_applied(vendor: Any, sleep: RecordingSleep) -> None:
    vendor.post("/tickets").mock(side_effect=httpx.ConnectError("connection refused"))
    with pytest.raises(TransientVendorError) as caught:
        await client(sleep, retry=RetryPolicy(attempts=2)).request("POST", "/tickets", json={})
    assert caught.value.maybe_applied is False


async def test_post_marked_idempotent_is_retried(vendor: Any, sleep: RecordingSleep) -> None:
    route = vendor.post("/search").mock(side_effect=[httpx.Response(503), httpx.Response(200)])
    await client(sleep).request("POST", "/search", json={"q": 1}, idempotent=True)
    assert route.call_count == 2


async def test_get_marked_not_idempotent_is_not_retried(vendor: Any, sleep: RecordingSleep) -> None:
    route = vendor.get("/run").mock(side_effect=[httpx.Response(503), httpx.Response(200)])
    with pytest.raises(TransientVendorError):
        await client(sleep).request("GET", "/run", idempotent=False)
    assert route.call_count == 1


@pytest.mark.parametrize("method", ["PUT", "DELETE"])
async def test_put_and_delete_are_idempotent_by_default(
    vendor: Any, sleep: RecordingSleep, method: str
) -> None:
    route = vendor.route(method=method, path="/tickets/1").mock(
        side_effect=[httpx.ReadTimeout("read timed out"), httpx.Response(204)]
    )
    await client(sleep).request(method, "/tickets/1")
    assert route.call_count == 2


# --- per-connection concurrency ---------------------------------------------------------------


class InFlight:
    """An async vendor that counts how many requests it is serving at once."""

    def __init__(self) -> None:
        self.now = 0
        self.peak = 0
        self.served = 0

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        self.now += 1
        self.peak = max(self.peak, self.now)
        try:
            await asyncio.sleep(0.01)
        finally:
            self.now -= 1
        self.served += 1
        return httpx.Response(200, json={"path": request.url.path})


async def test_concurrency_is_limited_per_connection(sleep: RecordingSleep) -> None:
    vendor = InFlight()
    http = client(sleep, max_concurrency=3, transport=httpx.MockTransport(vendor))
    responses = await asyncio.gather(*(http.request("GET", f"/devices/{i}") for i in range(12)))
    await http.aclose()
    assert [r.json()["path"] for r in responses] == [f"/api/devices/{i}" for i in range(12)]
    assert vendor.served == 12
    assert vendor.peak == 3


async def test_connections_do_not_share_a_limit(sleep: RecordingSleep) -> None:
    vendor = InFlight()
    first = client(sleep, max_concurrency=2, transport=httpx.MockTransport(vendor))
    second = client(sleep, max_concurrency=2, transport=httpx.MockTransport(vendor))
    await asyncio.gather(*(http.request("GET", "/devices") for http in (first, second) for _ in range(6)))
    await first.aclose()
    await second.aclose()
    assert vendor.peak == 4


@respx.mock
async def test_rate_limited_wait_applies_when_429_names_no_retry_after() -> None:
    route = respx.get("https://vendor.example/x").mock(
        side_effect=[httpx.Response(429), httpx.Response(200, json={"ok": True})]
    )
    waits: list[float] = []

    async def record(seconds: float) -> None:
        waits.append(seconds)

    client = VendorHttpClient(
        "https://vendor.example", sleep=record, retry=RetryPolicy(rate_limited_wait=60.0)
    )
    try:
        response = await client.request("GET", "/x")
    finally:
        await client.aclose()
    assert response.json() == {"ok": True}
    assert route.call_count == 2
    assert waits == [60.0]
