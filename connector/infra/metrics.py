"""Prometheus metrics, one registry per app instance (so tests and replicas never collide)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
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
        self.deliveries = Gauge(
            "connector_deliveries", "Webhook deliveries by status", ["status"], registry=self.registry
        )
        self.vendor_requests = Counter(
            "connector_vendor_requests_total", "Outbound vendor requests", ["kind"], registry=self.registry
        )

    def render(self) -> bytes:
        return generate_latest(self.registry)
