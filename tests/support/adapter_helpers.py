"""Scaffolding the adapter tests share: a recording sleep, a settable clock, and builders for the
adapter, its transports and the normalized records the PSA tests send."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any, TypeVar

import httpx
from pydantic import BaseModel
from starlette.types import ASGIApp

from adapters.base import AdapterSpec, BillingLine, ConnectionContext, TicketSpec, WebhookRequest
from adapters.budgets import Limits, RequestBudget

A = TypeVar("A")


class Sleeps:
    """A `ConnectionContext.sleep` that records the waits instead of waiting."""

    def __init__(self) -> None:
        self.calls: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)


class Clock:
    """A monotonic clock a test moves by setting `now`."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def asgi_transports(app: ASGIApp, urls: list[str] | None = None) -> Callable[[str], httpx.AsyncBaseTransport]:
    """A transport factory routing every base URL to `app`, noting each URL in `urls` if given."""

    def transport(url: str) -> httpx.AsyncBaseTransport:
        if urls is not None:
            urls.append(url)
        return httpx.ASGITransport(app=app)

    return transport


def build_adapter(
    spec: AdapterSpec,
    kind: type[A],
    *,
    connection_id: str,
    base_url: str,
    credentials: BaseModel,
    options: BaseModel,
    transport_factory: Callable[[str], httpx.AsyncBaseTransport],
    sleep: Sleeps | None = None,
    extra: dict[str, Any] | None = None,
    budget: RequestBudget | None = None,
) -> A:
    """`spec.factory` over a context of these parts (a fresh `Sleeps` unless given), checked to be `kind`."""
    ctx = ConnectionContext(
        connection_id=connection_id,
        base_url=base_url,
        credentials=credentials,
        options=options,
        transport_factory=transport_factory,
        sleep=sleep or Sleeps(),
        extra=extra or {},
        budget=budget,
    )
    adapter = spec.factory(ctx)
    assert isinstance(adapter, kind)
    return adapter


class CountingBudget:
    """A connection budget that counts the slots taken (and their limits), to show that every
    request an adapter makes goes through the connection's budget."""

    def __init__(self) -> None:
        self.taken: list[Limits] = []

    async def acquire(self, limits: Limits) -> object:
        self.taken.append(limits)
        return len(self.taken)

    async def release(self, token: object) -> None:
        return None


def ticket_spec(marker: str, ids: Mapping[str, object], extra: Mapping[str, Any]) -> TicketSpec:
    """The antivirus-off ticket the PSA tests open, with the vendor's `ids` (company, board,
    priority, type, status); `extra` overrides any field."""
    values: dict[str, Any] = {
        "marker": marker,
        "summary": "WS-001: antivirus protection is off",
        "description": "Defender reports real-time protection disabled since 09:14.",
        **{name: str(value) for name, value in ids.items()},
    }
    values.update(extra)
    return TicketSpec(**values)


def billing_line(
    marker: str, ids: Mapping[str, object], quantity: str, extra: Mapping[str, Any]
) -> BillingLine:
    """A per-endpoint billing line at 6.00 (cost 2.50) with the vendor's `ids` (company, agreement,
    product, description); `extra` overrides any field."""
    values: dict[str, Any] = {
        "marker": marker,
        **{name: str(value) for name, value in ids.items()},
        "quantity": Decimal(quantity),
        "unit_price": Decimal("6.00"),
        "unit_cost": Decimal("2.50"),
    }
    values.update(extra)
    return BillingLine(**values)


def webhook_request(body: Any, received_at: datetime, **query: str) -> WebhookRequest:
    """A received webhook: bytes as given, anything else as JSON."""
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return WebhookRequest(body=raw, headers={}, query=query, received_at=received_at)
