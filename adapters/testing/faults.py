"""The small toolkit the stateful vendor fakes share: scripted faults, routing and request records.

Only the mechanics live here (which request a fault hits, how often, the `Retry-After` header, the
optional timeout); each fake keeps its vendor's own error bodies, status choices and hook
signatures, because those are what its tests pin.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, ClassVar, Generic, Self, TypeVar

import httpx
from starlette.applications import Starlette
from starlette.requests import Request


def retry_after_value(seconds: float) -> str:
    """`Retry-After` as a vendor sends it: whole seconds without a fraction (`2`), else as given."""
    return str(int(seconds)) if float(seconds).is_integer() else str(seconds)


def decode_body(raw: bytes) -> Any:
    """A request body as JSON, None when empty; text that is not JSON stays a `str`, so the fake can
    refuse it in the vendor's own words."""
    if not raw:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        return raw.decode(errors="replace")


def sort_key(value: Any) -> tuple[int, Any]:
    """An ordering key for `orderBy`/`sortBy`: nulls first, numbers (and digit strings) by value,
    other text without regard to case."""
    if value is None:
        return (0, 0)
    if isinstance(value, bool):
        return (1, int(value))
    if isinstance(value, int | float):
        return (1, value)
    text = str(value)
    if text.isdigit():
        return (1, int(text))
    return (2, text.lower())


def lowered_headers(request: Request) -> dict[str, str]:
    return {k.lower(): v for k, v in request.headers.items()}


@dataclass
class ScriptedFault:
    """A scripted failure for the next `times` matching requests (None = until cleared).

    `method` None matches any method. `path` None matches any path; otherwise it matches the
    concrete path or the route template, and a trailing `*` (or a subclass with `prefix_match`)
    matches a prefix of the concrete path. `after_apply` lets the request take effect before the
    fault answers; `timeout` raises `httpx.ReadTimeout` instead of answering, like a connection
    that dropped after the write.
    """

    status: int
    times: int | None = 1
    method: str | None = None
    path: str | None = None
    retry_after: float | None = None
    after_apply: bool = False
    timeout: bool = False
    fired: int = 0

    ignore_case: ClassVar[bool] = True
    """Paths compare without regard to case, as the vendor's routes do."""
    prefix_match: ClassVar[bool] = False
    """`path` always matches as a prefix of the concrete path."""

    @property
    def spent(self) -> bool:
        return self.times is not None and self.fired >= self.times

    def matches(self, method: str | None, path: str, template: str | None = None) -> bool:
        if self.spent:
            return False
        if self.method is not None and method is not None and self.method.upper() != method.upper():
            return False
        if self.path is None:
            return True
        fold = str.lower if self.ignore_case else str
        wanted = fold(self.path)
        if self.prefix_match or wanted.endswith("*"):
            return fold(path).startswith(wanted.removesuffix("*"))
        return wanted == fold(path) or (template is not None and wanted == fold(template))

    def claim(self) -> None:
        """Count this firing; a timeout fault raises here instead of answering."""
        self.fired += 1
        if self.timeout:
            raise httpx.ReadTimeout("injected timeout")

    def retry_headers(self) -> dict[str, str]:
        return {} if self.retry_after is None else {"Retry-After": retry_after_value(self.retry_after)}


F = TypeVar("F", bound=ScriptedFault)


def first_fault(
    faults: Iterable[F],
    method: str | None,
    path: str,
    template: str | None = None,
    *,
    after_apply: bool = False,
) -> F | None:
    """The first fault of the given phase (before or after the request applies) matching a request."""
    for fault in faults:
        if fault.after_apply == after_apply and fault.matches(method, path, template):
            return fault
    return None


class AsgiFake:
    """`transport()` / `transport_factory()` over the fake's ASGI `app`, for `ConnectionContext`."""

    app: Starlette

    def transport(self) -> httpx.ASGITransport:
        return httpx.ASGITransport(app=self.app)

    def transport_factory(self, _base_url: str) -> httpx.AsyncBaseTransport:
        return self.transport()


class FaultHooks(Generic[F]):
    """Fault injection for fakes whose faults match on method and path (the PSA fakes)."""

    fault_type: type[F]
    faults: list[F]
    latency: float

    def _add_fault(self, fault: F) -> F:
        self.faults.append(fault)
        return fault

    def fail_next(
        self,
        times: int | None = 1,
        status: int = 500,
        *,
        method: str | None = None,
        path: str | None = None,
        after_apply: bool = False,
        retry_after: float | None = None,
    ) -> F:
        """The next `times` matching requests fail with `status`. `after_apply=True` performs the
        request first (a create really creates) and then answers with the failure, like a vendor
        timeout that completed server-side."""
        return self._add_fault(
            self.fault_type(
                status, times, method=method, path=path, retry_after=retry_after, after_apply=after_apply
            )
        )

    def rate_limit(
        self,
        times: int = 1,
        retry_after: float | None = 1.0,
        *,
        method: str | None = None,
        path: str | None = None,
    ) -> F:
        """The next `times` matching requests get 429 with `Retry-After: retry_after`."""
        return self.fail_next(times, 429, method=method, path=path, retry_after=retry_after)

    def clear_faults(self) -> None:
        self.faults.clear()

    def set_latency(self, seconds: float) -> None:
        self.latency = max(0.0, seconds)


class TimeoutHooks(FaultHooks[F]):
    """`FaultHooks` plus client-side timeouts."""

    def timeout_next(
        self, times: int = 1, *, method: str | None = None, path: str | None = None, after_apply: bool = True
    ) -> F:
        """The next matching requests time out on the client side; by default after the write."""
        return self._add_fault(
            self.fault_type(0, times, method=method, path=path, after_apply=after_apply, timeout=True)
        )


class PathFaultHooks(Generic[F]):
    """Fault injection for fakes whose faults match on a path prefix alone (the RMM REST fakes)."""

    fault_type: type[F]
    faults: list[F]

    def rate_limit(self, times: int | None = 1, retry_after: float = 2.0, path: str | None = None) -> None:
        self.faults.append(self.fault_type(429, times, path=path, retry_after=retry_after))

    def fail_next(self, status: int = 500, times: int | None = 1, path: str | None = None) -> None:
        self.faults.append(self.fault_type(status, times, path=path))

    def clear_faults(self) -> None:
        self.faults.clear()


class CallLog:
    """Calls counted by the fake's key (see `call_count` of each fake), answers by status, and the
    raw request records."""

    calls: Counter[str]
    statuses: Counter[int]
    requests: list[dict[str, Any]]

    def call_count(self, key: str | None = None) -> int:
        return sum(self.calls.values()) if key is None else self.calls[key]

    def reset_calls(self) -> None:
        self.calls.clear()
        self.statuses.clear()
        self.requests.clear()


def count_calls(calls: Counter[str], method: str | None, path: str | None, *, ignore_case: bool) -> int:
    """Sum of `calls` keyed `"METHOD /template"`, for one method and/or template (None = any)."""
    fold = str.lower if ignore_case else str
    total = 0
    for key, count in calls.items():
        key_method, _, key_path = key.partition(" ")
        if method is not None and key_method != method.upper():
            continue
        if path is not None and fold(key_path) != fold(path):
            continue
        total += count
    return total


H = TypeVar("H")


@dataclass(frozen=True)
class RouteMatch(Generic[H]):
    handler: H | None
    """None when no route takes this method (see `known`)."""
    template: str
    params: dict[str, int]
    known: bool
    """Some route has this path, under another method: a 405 rather than a 404."""


class RouteTable(Generic[H]):
    """Path templates such as `/Tickets/{id}` (integer parameters) mapped to handlers per method."""

    def __init__(self, *, ignore_case: bool = False, signed_ids: bool = False) -> None:
        self._flags = re.I if ignore_case else 0
        self._number = r"-?\\d+" if signed_ids else r"\\d+"
        self._routes: list[tuple[str, re.Pattern[str], str, H]] = []

    def add(self, method: str, template: str, handler: H) -> None:
        pattern = re.sub(r"\{(\w+)\}", rf"(?P<\1>{self._number})", template)
        self._routes.append((method, re.compile(f"^{pattern}$", self._flags), template, handler))

    def match(self, method: str, path: str) -> RouteMatch[H]:
        known = False
        for route_method, pattern, template, handler in self._routes:
            found = pattern.match(path)
            if found is None:
                continue
            known = True
            if route_method == method:
                params = {k: int(v) for k, v in found.groupdict().items()}
                return RouteMatch(handler, template, params, True)
        return RouteMatch(None, path, {}, known)


@dataclass(frozen=True)
class RecordedRequest:
    """One request as a fake saw it (`path` API-relative, `template` its route), and its answer."""

    method: str
    path: str
    template: str
    query: dict[str, str]
    headers: dict[str, str]
    body: Any
    status: int = 0

    @classmethod
    def of(cls, request: Request, method: str, path: str, template: str, body: Any, status: int = 0) -> Self:
        return cls(method, path, template, dict(request.query_params), lowered_headers(request), body, status)
