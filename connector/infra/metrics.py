"""Prometheus metrics, one registry per app instance (so tests and replicas never collide).

Counters (`*_total`) count what this process did: vendor HTTP requests (counted in the transport
every adapter's client goes through, so every attempt, retry and token refresh is seen), tickets
opened and closed, billing lines written, jobs dead-lettered. Gauges derived from the database
(jobs, queue age, deliveries, last successful sync per connection) are recomputed at scrape time,
so they hold for every worker process, wherever the work ran. Process metrics (CPU, memory, open
files) come from prometheus_client's collectors.

The adapter contract method a vendor request serves (`create_ticket`, `iter_endpoint_pages`, …) is
its `operation` label, set by `instrument_adapter` around each call.
"""

from __future__ import annotations

import functools
import inspect
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

import httpx
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
)

from adapters.base import TransportFactory

VENDOR_OPERATIONS = (
    "test_connection",
    "list_clients",
    "iter_endpoint_pages",
    "poll_alerts",
    "run_action",
    "list_companies",
    "list_agreements",
    "list_ticket_options",
    "find_ticket",
    "create_ticket",
    "add_note",
    "close_ticket",
    "read_ticket",
    "clear_alert",
    "upsert_configuration",
    "upsert_billing_line",
    "list_catalog",
    "required_ticket_fields",
    "register_webhook",
    "list_customers",
    "iter_agent_pages",
    "list_threats",
    "licence_use",
)
"""The adapter contract's calls that reach the vendor (the `operation` label; others: `other`)."""

_operation: ContextVar[str] = ContextVar("vendor_operation", default="other")


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        ProcessCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)
        self.requests = Counter(
            "connector_http_requests_total",
            "HTTP requests",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "connector_http_request_seconds",
            "HTTP request latency",
            ["method", "route"],
            registry=self.registry,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
        )
        self.jobs = Gauge(
            "connector_jobs", "Jobs by kind and state", ["kind", "state"], registry=self.registry
        )
        self.queue_depth = Gauge(
            "connector_queue_depth",
            "Jobs a worker could claim now (queued and due, or with an expired lease), by kind",
            ["kind"],
            registry=self.registry,
        )
        self.queue_oldest_age = Gauge(
            "connector_queue_oldest_claimable_age_seconds",
            "How long the oldest claimable job of the kind has been waiting (0 when none)",
            ["kind"],
            registry=self.registry,
        )
        self.dead_jobs = Gauge(
            "connector_dead_letters",
            "Jobs that used every attempt (dead letters), by kind",
            ["kind"],
            registry=self.registry,
        )
        self.dead_lettered = Counter(
            "connector_dead_lettered_total",
            "Jobs this process moved to the dead letters, by kind",
            ["kind"],
            registry=self.registry,
        )
        self.deliveries = Gauge(
            "connector_deliveries", "Webhook deliveries by status", ["status"], registry=self.registry
        )
        self.sync_last_success = Gauge(
            "connector_sync_last_success_timestamp_seconds",
            "When the connection's last successful sync finished (Unix time)",
            ["connection_id", "kind"],
            registry=self.registry,
        )
        self.sync_last_duration = Gauge(
            "connector_sync_last_success_duration_seconds",
            "How long the connection's last successful sync took",
            ["connection_id", "kind"],
            registry=self.registry,
        )
        self.vendor_requests = Counter(
            "connector_vendor_requests_total",
            "Outbound vendor HTTP requests (every attempt) by adapter kind, operation and outcome",
            ["kind", "operation", "outcome"],
            registry=self.registry,
        )
        self.vendor_latency = Histogram(
            "connector_vendor_request_seconds",
            "Outbound vendor HTTP request latency",
            ["kind", "operation"],
            registry=self.registry,
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
        )
        self.tickets = Counter(
            "connector_tickets_total",
            "PSA tickets this process opened, noted or closed, by PSA kind",
            ["kind", "action"],
            registry=self.registry,
        )
        self.billing_lines = Counter(
            "connector_billing_lines_written_total",
            "Billing lines written to the PSA (created or updated), by PSA kind",
            ["kind", "action"],
            registry=self.registry,
        )

    def render(self) -> bytes:
        return generate_latest(self.registry)


def outcome_of(status: int) -> str:
    if status < 300:
        return "ok"
    if status < 400:
        return "redirect"
    if status in (401, 403):
        return "auth_error"
    if status == 429:
        return "rate_limited"
    if status < 500:
        return "client_error"
    return "server_error"


class MeteredTransport(httpx.AsyncBaseTransport):
    """Counts every request an adapter's client sends, with the operation being served."""

    def __init__(self, inner: httpx.AsyncBaseTransport, metrics: Metrics, kind: str) -> None:
        self._inner = inner
        self._metrics = metrics
        self._kind = kind

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        operation = _operation.get()
        started = time.perf_counter()
        try:
            response = await self._inner.handle_async_request(request)
        except httpx.TimeoutException:
            outcome = "timeout"
            raise
        except Exception:
            outcome = "unreachable"
            raise
        else:
            outcome = outcome_of(response.status_code)
            return response
        finally:
            self._metrics.vendor_requests.labels(self._kind, operation, outcome).inc()
            self._metrics.vendor_latency.labels(self._kind, operation).observe(time.perf_counter() - started)

    async def aclose(self) -> None:
        await self._inner.aclose()


def metered(factory: TransportFactory, metrics: Metrics, kind: str) -> TransportFactory:
    """The transport factory for one adapter kind, counting into `metrics`."""

    def build(url: str) -> httpx.AsyncBaseTransport:
        return MeteredTransport(factory(url) or httpx.AsyncHTTPTransport(), metrics, kind)

    return build


@contextmanager
def vendor_operation(name: str) -> Iterator[None]:
    token = _operation.set(name)
    try:
        yield
    finally:
        _operation.reset(token)


def _coroutine(name: str, method: Callable[..., Any], current: Callable[[], Any]) -> Callable[..., Any]:
    @functools.wraps(method)
    async def call(*args: Any, **kwargs: Any) -> Any:
        with vendor_operation(name):
            return await current()(*args, **kwargs)

    return call


def _iterator(name: str, method: Callable[..., Any], current: Callable[[], Any]) -> Callable[..., Any]:
    @functools.wraps(method)
    async def iterate(*args: Any, **kwargs: Any) -> AsyncIterator[Any]:
        inner = current()(*args, **kwargs)
        try:
            while True:
                with vendor_operation(name):
                    try:
                        item = await inner.__anext__()
                    except StopAsyncIteration:
                        return
                yield item
        finally:
            close = getattr(inner, "aclose", None)
            if close is not None:
                await close()

    return iterate


def instrument_adapter(adapter: Any) -> None:
    """Labels the vendor requests each contract call makes with its name (wraps the bound methods
    on the instance; the adapter's type and behaviour are unchanged). Each call looks the method up
    on the type again, so the instance keeps following its class, as an unwrapped one would."""
    for name in VENDOR_OPERATIONS:
        method = getattr(adapter, name, None)

        def current(name: str = name, method: Any = method) -> Any:
            on_type = getattr(type(adapter), name, None)
            return on_type.__get__(adapter) if on_type is not None else method

        if inspect.iscoroutinefunction(method):
            setattr(adapter, name, _coroutine(name, method, current))
        elif inspect.isasyncgenfunction(method):
            setattr(adapter, name, _iterator(name, method, current))
