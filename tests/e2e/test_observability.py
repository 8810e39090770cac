"""Metrics and log events follow the real work: syncs through the vendor fakes (each RMM and PSA
reached through its real adapter), tickets opened and closed, billing lines written, jobs queued and
dead-lettered — read back from `/metrics` (Prometheus text, parsed) and from the JSON log lines."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import select

from adapters.base import EndpointStatus
from adapters.testing.harness import CLIENT_NAMES, device_name
from connector import runtime
from connector.infra import db
from connector.infra.context import Services
from connector.infra.logs import configure_logging
from connector.models import Job, SyncRun
from connector.statuses import JobStatus
from connector.tenants.service import get_or_create_tenant
from tests.e2e.test_vendor_matrix import (
    CONFIGURATION_FIELDS,
    PSAS,
    RMMS,
    _connect,
    _connect_psa,
    _map_by_suggestion,
    _post,
    _sync,
    _work,
    company_of,
    fleet,
    route,
)
from tests.support.fleet_rmm import FleetFake
from tests.support.vendors import VendorRouter

Headers = dict[str, str]
_ = fleet  # the fixture


@pytest.fixture
def json_logs() -> Iterator[Callable[[], list[dict[str, Any]]]]:
    """JSON log mode, as `connector serve` runs it, written to a buffer; returns its lines so far."""
    configure_logging("INFO", "json")
    buffer = io.StringIO()
    [handler] = logging.getLogger().handlers
    assert isinstance(handler, logging.StreamHandler)
    handler.setStream(buffer)

    def read() -> list[dict[str, Any]]:
        return [json.loads(line) for line in buffer.getvalue().splitlines()]

    try:
        yield read
    finally:
        logging.getLogger().handlers[:] = []


async def _metrics(client: httpx.AsyncClient, services: Services) -> dict[tuple[str, frozenset[Any]], float]:
    await runtime.refresh_queue_gauges(services)
    text = (await client.get("/metrics")).text
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def _value(samples: dict[tuple[str, frozenset[Any]], float], name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def _total(samples: dict[tuple[str, frozenset[Any]], float], name: str, **labels: str) -> float:
    wanted = set(labels.items())
    return sum(v for (n, sample_labels), v in samples.items() if n == name and wanted <= sample_labels)


async def test_vendor_requests_tickets_and_last_sync_follow_the_work(
    client: httpx.AsyncClient,
    services: Services,
    vendors: VendorRouter,
    make_key: Callable[..., Awaitable[Headers]],
    json_logs: Callable[[], list[dict[str, Any]]],
) -> None:
    if not RMMS or not PSAS:
        pytest.skip("an RMM and a PSA kind with a harness are needed")
    rmm_harness, psa_harness = RMMS[0], PSAS[0]
    rmm_kind, psa_kind = rmm_harness.spec.kind, psa_harness.spec.kind
    headers = await make_key("engineer")
    rmm = rmm_harness.start(base_url=f"https://{rmm_kind.replace('_', '-')}.example.com")
    psa = psa_harness.start(devices_per_company=0, configuration_fields=CONFIGURATION_FIELDS)
    route(vendors, rmm)
    route(vendors, psa)
    psa_row = await _connect_psa(client, headers, psa)
    rmm_row = await _connect(client, headers, rmm)
    await _map_by_suggestion(client, headers, rmm_row["id"], psa_row["id"], expected=len(CLIENT_NAMES))
    before = await _metrics(client, services)
    assert _total(before, "connector_vendor_requests_total", kind=rmm_kind, operation="test_connection") > 0

    first = await _sync(client, headers, services, rmm_row["id"])
    assert first["status"] == "succeeded", first
    endpoint_id = list(rmm.endpoints)[3]
    company = company_of(psa, rmm.clients[rmm.endpoints[endpoint_id].client_id])
    rmm.put_in_trouble(endpoint_id)
    await _sync(client, headers, services, rmm_row["id"])
    [ticket] = psa.tickets(company)
    rmm.clear_trouble(endpoint_id)
    last = await _sync(client, headers, services, rmm_row["id"])
    assert last["problems_closed"] >= 1, last
    [ticket] = psa.tickets(company)
    assert ticket.closed

    samples = await _metrics(client, services)
    reads = _value(
        samples,
        "connector_vendor_requests_total",
        kind=rmm_kind,
        operation="iter_endpoint_pages",
        outcome="ok",
    )
    assert reads >= 3, samples  # at least a page per sync, counted where the request is sent
    assert _total(samples, "connector_vendor_requests_total", kind=psa_kind, operation="create_ticket") >= 1
    assert _total(samples, "connector_vendor_requests_total", kind=psa_kind, operation="close_ticket") >= 1
    assert _total(samples, "connector_vendor_requests_total", operation="other") == 0
    assert _value(samples, "connector_tickets_total", kind=psa_kind, action="created") == 1
    assert _value(samples, "connector_tickets_total", kind=psa_kind, action="closed") == 1
    assert _total(samples, "connector_vendor_request_seconds_count", kind=rmm_kind) >= reads

    async with services.sessions() as session:
        run = await session.get(SyncRun, last["id"])
    assert run is not None and run.finished_at is not None
    labels = {"connection_id": rmm_row["id"], "kind": rmm_kind}
    finished = _value(samples, "connector_sync_last_success_timestamp_seconds", **labels)
    assert finished == pytest.approx(run.finished_at.timestamp())
    duration = _value(samples, "connector_sync_last_success_duration_seconds", **labels)
    assert duration == pytest.approx((run.finished_at - run.started_at).total_seconds())
    assert ("process_cpu_seconds_total", frozenset()) in samples
    assert ("process_resident_memory_bytes", frozenset()) in samples

    events = json_logs()
    started = [e for e in events if e["event"] == "sync started" and e["connection_id"] == rmm_row["id"]]
    ended = [e for e in events if e["event"] == "sync finished" and e["connection_id"] == rmm_row["id"]]
    assert len(started) == len(ended) == 3
    assert all(e["level"] == "info" and e["kind"] == rmm_kind for e in started)
    final = next(e for e in ended if e["run_id"] == last["id"])
    assert final["status"] == "succeeded" and final["level"] == "info"
    assert (
        final["endpoints_seen"] == last["endpoints_seen"]
        and final["problems_closed"] == last["problems_closed"]
    )
    actions = [e for e in events if e["logger"] == "connector.alerts.tickets"]
    assert [e["action"] for e in actions] == ["created", "closed"], actions
    assert actions[0]["ticket_id"] == actions[1]["ticket_id"] is not None
    assert all(e["psa_connection_id"] == psa_row["id"] and e["level"] == "info" for e in actions)
    changes = [e for e in events if e["event"] == "configuration changed"]
    assert {(e["entity"], e["operation"]) for e in changes} >= {
        ("connection", "create"),
        ("client mapping", "create"),
        ("ticket rule", "create"),
    }, changes


async def test_billing_lines_are_counted_and_logged(
    client: httpx.AsyncClient,
    services: Services,
    vendors: VendorRouter,
    make_key: Callable[..., Awaitable[Headers]],
    fleet: tuple[str, FleetFake],
    json_logs: Callable[[], list[dict[str, Any]]],
) -> None:
    if not PSAS:
        pytest.skip("a PSA kind with a harness is needed")
    harness = PSAS[0]
    headers = await make_key("engineer")
    psa = harness.start(configuration_fields=CONFIGURATION_FIELDS)
    route(vendors, psa)
    host, fake = fleet
    for n in range(3):
        fake.put(
            EndpointStatus(
                endpoint_id=f"ep-{n}",
                client_id="c-acme",
                client_name=CLIENT_NAMES[0],
                hostname=device_name(CLIENT_NAMES[0], n),
                product="Acme EDR",
                protection_enabled=True,
                definitions_date=datetime.now(UTC),
                last_scan_at=datetime.now(UTC),
                active_threats=0,
                online=True,
                last_seen_at=datetime.now(UTC),
            )
        )
    psa_row = await _connect_psa(client, headers, psa)
    rmm_row = await _post(
        client,
        headers,
        "/api/v1/connections",
        {"name": "Fleet", "kind": "fleet_rmm", "base_url": f"https://{host}", "credentials": {"token": "t"}},
    )
    await _map_by_suggestion(client, headers, rmm_row["id"], psa_row["id"], expected=1)
    await _sync(client, headers, services, rmm_row["id"])
    rule = await _post(
        client,
        headers,
        "/api/v1/billing-rules",
        {
            "psa_connection_id": psa_row["id"],
            "product": "acme edr",
            "count_scope": "installed",
            "count_method": "end_of_period",
            "unit_price": "6.00",
            **psa.billing_ids.rule_fields(),
        },
    )
    period = datetime.now(UTC).strftime("%Y-%m")
    first = await _post(client, headers, "/api/v1/billing/push", {"period": period})
    [(action, _)] = first["summary"].items()
    await _post(client, headers, "/api/v1/billing/push", {"period": period})  # unchanged: no write

    samples = await _metrics(client, services)
    kind = harness.spec.kind
    assert _value(samples, "connector_billing_lines_written_total", kind=kind, action=action) == 1
    assert _total(samples, "connector_billing_lines_written_total") == 1
    assert _total(samples, "connector_vendor_requests_total", kind=kind, operation="upsert_billing_line") >= 1
    lines = [e for e in json_logs() if e["logger"] == "connector.billing.service"]
    assert [e["action"] for e in lines] == [action, "unchanged"], lines
    assert lines[0]["quantity"] == 3 and lines[0]["rule_id"] == rule["id"] and lines[0]["period"] == period
    assert lines[0]["level"] == "info" and lines[0]["psa_kind"] == kind


async def test_queue_depth_age_and_dead_letters(
    client: httpx.AsyncClient, services: Services, json_logs: Callable[[], list[dict[str, Any]]]
) -> None:
    samples = await _metrics(client, services)
    for kind in runtime.JOB_HANDLERS.names():  # every kind has its series, empty queue = 0
        assert ("connector_queue_depth", frozenset({("kind", kind)})) in samples
        assert _value(samples, "connector_queue_oldest_claimable_age_seconds", kind=kind) == 0
    async with db.transaction(services.sessions) as session:
        tenant = await get_or_create_tenant(session)
        now = datetime.now(UTC)
        due = {"tenant_id": tenant.id, "kind": "sync", "max_attempts": 1}
        session.add_all(
            [  # two due sync jobs whose payload names no run (so they fail), one not due yet
                Job(**due, payload={"unreadable": 1}, run_after=now - timedelta(hours=2)),
                Job(**due, payload={"unreadable": 2}, run_after=now - timedelta(minutes=5)),
                Job(
                    tenant_id=tenant.id,
                    kind="sync",
                    payload={"run_id": "x"},
                    run_after=now + timedelta(hours=1),
                ),
            ]
        )
    samples = await _metrics(client, services)
    assert _value(samples, "connector_queue_depth", kind="sync") == 2
    assert _value(samples, "connector_queue_oldest_claimable_age_seconds", kind="sync") >= 2 * 3600
    assert _value(samples, "connector_jobs", kind="sync", state="queued") == 3
    assert _value(samples, "connector_dead_letters", kind="sync") == 0

    await _work(services)
    samples = await _metrics(client, services)
    assert _value(samples, "connector_queue_depth", kind="sync") == 0
    assert _value(samples, "connector_queue_oldest_claimable_age_seconds", kind="sync") == 0
    assert _value(samples, "connector_dead_letters", kind="sync") == 2
    assert _value(samples, "connector_dead_lettered_total", kind="sync") == 2
    async with services.sessions() as session:
        dead_ids = sorted(await session.scalars(select(Job.id).where(Job.status == JobStatus.DEAD)))
    events = [e for e in json_logs() if e["event"] == "job dead-lettered"]
    assert sorted(e["job"] for e in events) == dead_ids
    assert all(e["level"] == "info" and e["kind"] == "sync" and e["attempts"] == 1 for e in events)
