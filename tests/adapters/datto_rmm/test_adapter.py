"""Datto RMM specifics against the stateful fake: the token's lifetime and renewal, the request
budget shared by every call of a connection, paging at 250, sites' Autotask links as mapping
hints, antivirus states, polled alert contexts, the webhook template and quick jobs."""

from __future__ import annotations

import asyncio
import json
import math
from datetime import UTC, datetime
from typing import Any

import pytest

from adapters.base import ActionKind, ProblemKind, WebhookRequest
from adapters.datto_rmm import SPEC
from adapters.datto_rmm.adapter import DattoRmmAdapter
from adapters.datto_rmm.fake.harness import DattoHarness, DattoWorld
from adapters.errors import CredentialsError, UnsupportedActionError, WebhookParseError
from mappings.matching import suggest

pytestmark = pytest.mark.asyncio


def world(**kwargs: Any) -> DattoWorld:
    return DattoHarness().start(**kwargs)


def datto(w: DattoWorld, **kwargs: Any) -> DattoRmmAdapter:
    adapter = w.adapter(**kwargs)
    assert isinstance(adapter, DattoRmmAdapter)
    return adapter


class FakeTime:
    """A sleep that moves the fake's clock, so the budget's waits pass without waiting."""

    def __init__(self, w: DattoWorld) -> None:
        self.world = w
        self.calls: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)
        self.world.fake.advance_clock(seconds)


async def test_the_token_is_reused_and_renewed_once_on_401() -> None:
    w = world(endpoints_per_client=2)
    adapter = datto(w, sleep=FakeTime(w))
    [c async for c in adapter.list_clients()]
    [p async for p in adapter.iter_endpoint_pages(None)]
    assert w.fake.token_requests == 1
    w.fake.expire_tokens()  # the vendor forgets the token (revoked, or its 100 hours are up)
    assert len([c async for c in adapter.list_clients()]) == 3
    assert w.fake.token_requests == 2
    await adapter.aclose()


async def test_the_token_is_renewed_before_its_lifetime_ends() -> None:
    w = world(endpoints_per_client=1)
    now = [datetime(2026, 1, 1, tzinfo=UTC)]
    adapter = w.build(
        sleep=None, credentials=None, options=None, extra={"clock": lambda: now[0], "monotonic": w.fake.clock}
    )
    assert isinstance(adapter, DattoRmmAdapter)
    await adapter.test_connection()
    [c async for c in adapter.list_clients()]
    assert w.fake.token_requests == 1
    now[0] = now[0].replace(day=5)  # 96 hours later: 4 hours of the token's 100 left
    [c async for c in adapter.list_clients()]
    assert w.fake.token_requests == 1
    now[0] = datetime(2026, 1, 5, 3, 55, tzinfo=UTC)  # 99 h 55 min: inside the renewal margin
    [c async for c in adapter.list_clients()]
    assert w.fake.token_requests == 2
    await adapter.aclose()


async def test_a_refused_secret_is_a_credentials_error_without_the_secret() -> None:
    w = world(endpoints_per_client=1)
    adapter = datto(w, credentials={"api_secret": "wrong-secret-value"})
    with pytest.raises(CredentialsError) as caught:
        await adapter.test_connection()
    assert "Bad credentials" in caught.value.message and "wrong-secret-value" not in str(caught.value)
    await adapter.aclose()


async def test_the_budget_waits_before_the_vendor_would_refuse() -> None:
    w = world(endpoints_per_client=10)
    w.fake.reads_per_minute = 5  # the vendor's window, scaled down
    sleep = FakeTime(w)
    adapter = datto(w, sleep=sleep, options={"reads_per_minute": 5, "page_size": 3})
    statuses = [s async for page in adapter.iter_endpoint_pages(None) for s in page.statuses]
    assert len(statuses) == 30
    assert w.fake.statuses[429] == 0  # never refused
    assert sum(sleep.calls) >= 60  # 11 requests (the token and 10 pages) span more than one window
    await adapter.aclose()


async def test_concurrent_calls_of_one_connection_share_the_budget() -> None:
    w = world(endpoints_per_client=10)
    w.fake.reads_per_minute = 4
    adapter = datto(w, sleep=FakeTime(w), options={"reads_per_minute": 4, "page_size": 5})

    async def listing() -> int:
        return len([s async for page in adapter.iter_endpoint_pages(None) for s in page.statuses])

    counts = await asyncio.gather(listing(), listing(), listing())
    assert counts == [30, 30, 30]
    assert w.fake.statuses[429] == 0
    await adapter.aclose()


async def test_without_the_budget_the_vendor_answers_429() -> None:
    w = world(endpoints_per_client=10)
    w.fake.reads_per_minute = 4
    adapter = datto(w, options={"reads_per_minute": 600, "page_size": 5})  # budget set above the vendor's
    adapter._client.retry = type(adapter._client.retry)(attempts=1)
    with pytest.raises(Exception, match="rate limit"):
        [p async for p in adapter.iter_endpoint_pages(None)]
    assert w.fake.statuses[429] == 1
    await adapter.aclose()


async def test_devices_are_read_in_pages_of_250_following_next_page_url() -> None:
    w = world(clients=("Acme Dental", "Blue Harbor Logistics"), endpoints_per_client=300)
    adapter = datto(w)
    pages = [p async for p in adapter.iter_endpoint_pages(None)]
    assert [len(p.statuses) for p in pages] == [250, 250, 100]
    assert w.fake.call_count("GET /v2/account/devices") == math.ceil(600 / 250)
    assert [r["query"]["page"] for r in w.fake.requests if r["path"] == "/api/v2/account/devices"] == [
        "0",
        "1",
        "2",
    ]
    await adapter.aclose()


async def test_deleted_devices_are_not_endpoints() -> None:
    w = world(endpoints_per_client=2)
    first = next(iter(w.endpoints))
    w.fake.corrupt_device(first, deleted=True)
    adapter = datto(w)
    ids = [s.endpoint_id async for page in adapter.iter_endpoint_pages(None) for s in page.statuses]
    assert first not in ids and len(ids) == 5
    await adapter.aclose()


@pytest.mark.parametrize(
    ("status", "product", "expected"),
    [
        ("RunningAndUpToDate", "Datto AV", ("Datto AV", True)),
        ("RunningAndNotUpToDate", "Datto AV", ("Datto AV", True)),
        ("NotRunning", "Datto AV", ("Datto AV", False)),
        ("NotDetected", None, (None, False)),
        ("SomethingNew", "Datto AV", ("Datto AV", None)),
    ],
)
async def test_antivirus_states(status: str, product: str | None, expected: tuple[Any, Any]) -> None:
    w = world(clients=("Acme Dental",), endpoints_per_client=1)
    device = next(iter(w.endpoints))
    w.fake.set_av(device, product=product, status=status)
    adapter = datto(w)
    [read] = [s async for page in adapter.iter_endpoint_pages(None) for s in page.statuses]
    assert (read.product, read.protection_enabled) == expected
    assert read.online is True and read.last_seen_at is not None
    await adapter.aclose()


async def test_a_site_linked_to_an_autotask_company_is_proposed_first() -> None:
    w = world(clients=(), endpoints_per_client=0)
    linked = w.fake.add_site("ACME (main office)", autotask_company_id="29684")
    w.fake.add_site("Cedar Law Group")
    adapter = datto(w)
    clients = [c async for c in adapter.list_clients()]
    await adapter.aclose()
    assert [c.psa_company_ids for c in clients] == [{"autotask": "29684"}, {}]
    hints = {c.id: c.psa_company_ids["autotask"] for c in clients if "autotask" in c.psa_company_ids}
    found = suggest(
        [(c.id, c.name) for c in clients],
        [("29684", "Acme Dental Practice"), ("7", "Cedar Law Group")],
        linked=hints,
    )
    assert [(s.client_id, s.company_id, s.linked) for s in found] == [
        (linked.uid, "29684", True),
        (clients[1].id, "7", False),
    ]


async def test_polled_contexts_map_to_problems_and_other_alerts_are_skipped() -> None:
    w = world(clients=("Acme Dental",), endpoints_per_client=6)
    devices = list(w.endpoints)
    contexts = [
        ({"@class": "antivirus_ctx", "status": "NOTDETECTED"}, ProblemKind.NOT_PROTECTED),
        ({"@class": "antivirus_ctx", "status": "RUNNINGNOTUPTODATE"}, ProblemKind.DEFINITIONS_OUTDATED),
        ({"@class": "online_offline_status_ctx", "status": "OFFLINE"}, ProblemKind.AGENT_OFFLINE),
        ({"@class": "perf_disk_usage_ctx", "diskName": "C:"}, None),
    ]
    for device, (context, _problem) in zip(devices, contexts, strict=False):
        w.fake.add_alert(device, context, "diagnostics")
    w.fake.add_alert(devices[4], {"@class": "antivirus_ctx", "status": "NOTRUNNING"}, "muted", muted=True)
    adapter = datto(w)
    polled = await adapter.poll_alerts(None)
    got = {(e.endpoint_id, e.problem) for e in polled.events}
    assert got == {(d, p) for d, (_c, p) in zip(devices, contexts, strict=False) if p} | {
        (devices[4], ProblemKind.PROTECTION_DISABLED)
    }
    assert polled.complete_for == frozenset(w.clients)
    unmuted = await datto(w, options={"include_muted_alerts": False}).poll_alerts(None)
    assert (devices[4], ProblemKind.PROTECTION_DISABLED) not in {
        (e.endpoint_id, e.problem) for e in unmuted.events
    }
    await adapter.aclose()


def delivery(**fields: Any) -> WebhookRequest:
    body = {
        "state": "active",
        "alertUid": "a-1",
        "deviceUid": "d-1",
        "siteUid": "s-1",
        "alertType": "Antivirus",
        "message": "Antivirus definitions are not up to date",
        **fields,
    }
    return WebhookRequest(body=json.dumps(body).encode(), headers={}, received_at=datetime.now(UTC))


async def test_the_webhook_template_parses_and_unsubstituted_variables_are_refused() -> None:
    w = world(endpoints_per_client=1)
    adapter = datto(w)
    [event] = adapter.parse_webhook(delivery(timestamp="1662554037000"))
    assert (event.problem, event.state, event.client_id, event.event_id) == (
        ProblemKind.DEFINITIONS_OUTDATED,
        "active",
        "s-1",
        "datto:a-1:active",
    )
    assert event.occurred_at == datetime(2022, 9, 7, 12, 33, 57, tzinfo=UTC)
    [cleared] = adapter.parse_webhook(delivery(state="resolved"))
    assert cleared.state == "cleared"
    assert adapter.parse_webhook(delivery(alertType="Disk", message="Disk C: is 95% full")) == []
    with pytest.raises(WebhookParseError) as caught:
        adapter.parse_webhook(delivery(deviceUid="[device_uid]"))
    assert caught.value.field == "deviceUid"
    with pytest.raises(WebhookParseError) as missing:
        adapter.parse_webhook(delivery(siteUid=None))
    assert missing.value.field == "siteUid"
    await adapter.aclose()


async def test_a_quick_job_runs_the_configured_component_with_its_variables() -> None:
    w = world(endpoints_per_client=1)
    device = next(iter(w.endpoints))
    adapter = datto(w, options={"component_variables": {"ScanType": "Full"}})
    result = await adapter.run_action(device, ActionKind.SCAN)
    [job] = w.fake.quick_jobs
    assert result.accepted and result.vendor_reference == f"job:{job.uid}"
    assert (job.device_uid, w.components[job.component_uid], job.variables) == (
        device,
        ActionKind.SCAN,
        (("ScanType", "Full"),),
    )
    await adapter.aclose()


async def test_an_unconfigured_component_is_refused_naming_the_option() -> None:
    w = world(endpoints_per_client=1)
    adapter = datto(w, options={"deploy_component_uid": None})
    with pytest.raises(UnsupportedActionError) as caught:
        await adapter.run_action(next(iter(w.endpoints)), ActionKind.DEPLOY_AGENT)
    assert caught.value.field == "deploy_component_uid"
    assert w.fake.quick_jobs == [] and w.fake.call_count("PUT /v2/device/{deviceUid}/quickjob") == 0
    assert SPEC.actions == {ActionKind.SCAN, ActionKind.UPDATE_DEFINITIONS, ActionKind.DEPLOY_AGENT}
    await adapter.aclose()


async def test_the_fake_refuses_an_unknown_component_and_device() -> None:
    w = world(endpoints_per_client=1)
    adapter = datto(w, options={"scan_component_uid": "no-such-component"})
    with pytest.raises(Exception, match="Component was not found"):
        await adapter.run_action(next(iter(w.endpoints)), ActionKind.SCAN)
    with pytest.raises(Exception, match="Device was not found"):
        await datto(w).run_action("no-such-device", ActionKind.SCAN)
    await adapter.aclose()


async def test_a_polled_alert_carries_its_uid_and_clear_alert_resolves_it_once() -> None:
    w = world()
    device = next(iter(w.fake.devices))
    raised = w.fake.add_alert(device, {"@class": "antivirus_ctx", "status": "NOTRUNNING"}, "not running")
    adapter = datto(w)
    [event] = (await adapter.poll_alerts(None)).events
    assert event.vendor_alert_id == raised.uid

    assert await adapter.clear_alert(device, event.problem, event.vendor_alert_id) is True
    assert w.fake.alerts[raised.uid].resolved is True
    assert (await adapter.poll_alerts(None)).events == []
    assert await adapter.clear_alert(device, event.problem, event.vendor_alert_id) is True  # a retry: no-op
    assert w.fake.calls["POST /v2/alert/{alertUid}/resolve"] == 2
    assert await adapter.clear_alert(device, event.problem, None) is False  # nothing to resolve by
    await adapter.aclose()
