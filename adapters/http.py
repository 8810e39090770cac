"""The shared outbound HTTP client every adapter uses. One `VendorHttpClient` per connection gives:
explicit timeouts; a per-connection concurrency limit (vendors count parallel requests per
integration) and optional requests-per-minute limit, held in a `RequestBudget` the caller may share
between processes (`adapters.budgets`); retries with exponential backoff and full jitter on
connection errors, timeouts, 5xx and 429 (tenacity), waiting at least what `Retry-After` asks (both
the seconds and the HTTP-date form, capped); a single re-authentication on 401 for token-based auth;
and vendor error bodies turned into `AdapterError`s naming the field.

Creates are not idempotent at any PSA. A non-idempotent request is retried only when the vendor
certainly did not act on it (429, or the connection was never established); after a timeout or 5xx
it raises `TransientVendorError` with `maybe_applied=True` so the caller looks for its marker first.
"""

from __future__ import annotations

import asyncio
import email.utils
import logging
import random
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, stop_after_attempt

from adapters.budgets import Limits, LocalBudget, RequestBudget, slot
from adapters.errors import (
    ConfigurationError,
    CredentialsError,
    RateLimitedError,
    TransientVendorError,
    classify_status,
)

log = logging.getLogger("adapters.http")

IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})

ErrorParser = Callable[[httpx.Response], tuple[str, str | None]]
"""Response → (message, field) from the vendor's error body."""

AuthHeaders = Callable[[bool], Awaitable[Mapping[str, str]]]
"""Returns auth headers; called with True after a 401 to force a fresh token."""


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 5
    backoff_base: float = 0.5
    backoff_max: float = 30.0
    retry_after_max: float = 120.0
    rate_limited_wait: float | None = None
    """Wait after a 429 that names no `Retry-After` (vendors whose limit windows are long, e.g.
    Autotask's hourly threshold); None = the jittered backoff."""

    def backoff(self, attempt: int) -> float:
        """Full-jitter exponential backoff for the given 1-based attempt number."""
        ceiling = min(self.backoff_max, self.backoff_base * (2 ** (attempt - 1)))
        return random.uniform(0, ceiling)  # noqa: S311 - jitter, not cryptography


DEFAULT_TIMEOUT = httpx.Timeout(connect=10.0, read=60.0, write=30.0, pool=60.0)


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds to wait from a `Retry-After` header (delta-seconds or HTTP-date), or None."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


def default_error_parser(response: httpx.Response) -> tuple[str, str | None]:
    try:
        body = response.json()
    except ValueError:
        text = response.text.strip()
        return (text[:300] or response.reason_phrase or f"HTTP {response.status_code}", None)
    if isinstance(body, dict):
        message = body.get("message") or body.get("error_description") or body.get("error")
        return (str(message) if message else str(body)[:300], body.get("field"))
    return (str(body)[:300], None)


def _redirect_target(response: httpx.Response) -> str:
    """Where a redirect points, without query, fragment or credentials (they may hold secrets)."""
    try:
        target = httpx.URL(response.headers.get("location", ""))
        return str(target.copy_with(query=None, fragment=None, username=None, password=None))[:200]
    except httpx.InvalidURL:
        return "an invalid location"


def safe_url(request: httpx.Request) -> str:
    """The request URL without its query string: vendor API keys travel as query parameters."""
    return str(request.url.copy_with(query=None))


class VendorHttpClient:
    """An httpx client bound to one connection's base URL, limits and auth."""

    def __init__(
        self,
        base_url: str,
        *,
        headers: Mapping[str, str] | None = None,
        auth_headers: AuthHeaders | None = None,
        error_parser: ErrorParser = default_error_parser,
        max_concurrency: int = 4,
        max_requests_per_minute: int | None = None,
        budget: RequestBudget | None = None,
        retry: RetryPolicy | None = None,
        timeout: httpx.Timeout = DEFAULT_TIMEOUT,
        transport: httpx.AsyncBaseTransport | None = None,
        sleep: Callable[[float], Awaitable[None]] | None = None,
    ) -> None:
        try:
            self._client = httpx.AsyncClient(
                base_url=base_url, headers=dict(headers or {}), timeout=timeout, transport=transport
            )
        except httpx.InvalidURL as exc:
            raise ConfigurationError("the connection's URL is not valid", field="base_url") from exc
        self._auth_headers = auth_headers
        self._error_parser = error_parser
        self.limits = Limits(max_concurrency, max_requests_per_minute)
        self.budget: RequestBudget = budget if budget is not None else LocalBudget()
        """Where a call's slot comes from: the connection's shared budget, else this client's own."""
        self.retry = retry or RetryPolicy()
        self._sleep = sleep or asyncio.sleep
        self.request_count = 0

    @property
    def base_url(self) -> str:
        return str(self._client.base_url)

    async def aclose(self) -> None:
        await self._client.aclose()

    async def request(
        self,
        method: str,
        url: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        content: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        idempotent: bool | None = None,
        authenticated: bool = True,
    ) -> httpx.Response:
        """Send with retries; return a 2xx response or raise an `AdapterError`. Redirects are not
        followed: a vendor API answering one (typically to a login page) is misconfigured."""
        method = method.upper()
        safe_to_repeat = method in IDEMPOTENT_METHODS if idempotent is None else idempotent

        def should_retry(exc: BaseException) -> bool:
            if isinstance(exc, RateLimitedError):
                return True
            if isinstance(exc, TransientVendorError):
                return safe_to_repeat or not exc.maybe_applied
            return False

        retrying = AsyncRetrying(
            stop=stop_after_attempt(self.retry.attempts),
            retry=retry_if_exception(should_retry),
            wait=self._wait,
            sleep=self._sleep,
            reraise=True,
        )
        async for attempt in retrying:
            with attempt:
                return await self._send_once(
                    method,
                    url,
                    params=params,
                    json=json,
                    content=content,
                    headers=headers,
                    authenticated=authenticated,
                )
        raise AssertionError("unreachable")  # pragma: no cover - tenacity reraises

    def _wait(self, state: RetryCallState) -> float:
        backoff = self.retry.backoff(state.attempt_number)
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, TransientVendorError) and exc.retry_after is not None:
            return max(min(exc.retry_after, self.retry.retry_after_max), backoff)
        if isinstance(exc, RateLimitedError) and self.retry.rate_limited_wait is not None:
            return max(min(self.retry.rate_limited_wait, self.retry.retry_after_max), backoff)
        return backoff

    async def _send_once(
        self,
        method: str,
        url: str,
        *,
        params: Mapping[str, Any] | None,
        json: Any,
        content: bytes | None,
        headers: Mapping[str, str] | None,
        authenticated: bool,
    ) -> httpx.Response:
        merged = dict(headers or {})
        refreshed = False
        while True:
            if authenticated and self._auth_headers is not None:
                merged.update(await self._auth_headers(refreshed))
            async with slot(self.budget, self.limits):
                self.request_count += 1
                try:
                    response = await self._client.request(
                        method, url, params=params, json=json, content=content, headers=merged
                    )
                except httpx.InvalidURL as exc:
                    raise ConfigurationError("not a valid request URL") from exc
                except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
                    raise TransientVendorError(
                        f"cannot connect: {type(exc).__name__}", maybe_applied=False
                    ) from exc
                except httpx.TimeoutException as exc:
                    raise TransientVendorError(f"timed out: {type(exc).__name__}") from exc
                except httpx.TransportError as exc:
                    raise TransientVendorError(f"transport error: {type(exc).__name__}") from exc
            if (
                response.status_code == 401
                and authenticated
                and self._auth_headers is not None
                and not refreshed
            ):
                refreshed = True
                continue
            self._raise_for_status(response)
            return response

    def _raise_for_status(self, response: httpx.Response) -> None:
        if response.is_redirect:
            raise ConfigurationError(
                f"answered HTTP {response.status_code}, a redirect to {_redirect_target(response)}, "
                "instead of the API; "
                "check the connection's URL",
                field="base_url",
                status=response.status_code,
            )
        error_class = classify_status(response.status_code)
        if error_class is None:
            return
        message, field = self._error_parser(response)
        where = f"{response.request.method} {safe_url(response.request)}"
        log.warning("vendor error %s on %s: %s", response.status_code, where, message)
        if error_class is RateLimitedError:
            raise RateLimitedError(
                message, retry_after=parse_retry_after(response.headers.get("retry-after"))
            )
        if error_class is TransientVendorError:
            raise TransientVendorError(
                message,
                field=field,
                status=response.status_code,
                retry_after=parse_retry_after(response.headers.get("retry-after")),
            )
        raise error_class(message, field=field, status=response.status_code)

    async def get_json(self, url: str, *, params: Mapping[str, Any] | None = None) -> Any:
        response = await self.request("GET", url, params=params)
        return response.json() if response.content else None


__all__ = [
    "DEFAULT_TIMEOUT",
    "CredentialsError",
    "RetryPolicy",
    "VendorHttpClient",
    "default_error_parser",
    "parse_retry_after",
    "safe_url",
]
