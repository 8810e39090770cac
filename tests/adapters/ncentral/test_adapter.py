"""N-central specifics against the stateful fake: the JWT exchange and refresh, service states as
security status, device filters, malformed devices skipped and named, HTTP-XML notifications,
repository items as actions. What every RMM must do is `test_conformance.py`'s."""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import pytest

from adapters.base import (
    ActionKind,
    EndpointStatus,
    ProblemKind,
    WebhookRequest,
)
from adapters.errors import (
    ConfigurationError,
    CredentialsError,
    NotFoundError,
    UnsupportedActionError,
    WebhookParseError,
)
from adapters.ncentral import SPEC, NcentralAdapter
from adapters.ncentral.fake import AGENT_SERVICE, THREAT_SERVICE, FleetSeed, NcentralFake
from adapters.ncentral.models import NcentralCredentials, NcentralOptions
from tests.support.adapter_helpers import Sleeps, asgi_transports, build_adapter, webhook_request

BASE = "https://ncentral.example.com"
RECEIVED = datetime(2026, 11, 20, 12, 30, tzinfo=UTC)


def make_adapter(
    fake: NcentralFake,
    *,
    credentials: dict[str, Any] | None = None,
    options: dict[str, Any] | None = None,
    sleep: Sleeps | None = None,
    clock: Any = None,
) -> NcentralAdapter:
    return build_adapter(
        SPEC,
        NcentralAdapter,
        connection_id="nc-1",
        base_url=BASE,
        credentials=NcentralCredentials(**{**fake.credentials(), **(credentials or {})}),
        options=NcentralOptions(**(options or {})),
        transport_factory=asgi_transports(fake.app),
        sleep=sleep,
        extra={"clock": clock} if clock else {},
    )


async def collect(adapter: NcentralAdapter, since: datetime | None = None) -> list[list[EndpointStatus]]:
    return [page.statuses async for page in adapter.iter_endpoint_pages(since)]


def flat(pages: list[list[EndpointStatus]]) -> dict[str, EndpointStatus]:
    return {s.endpoint_id: s for page in pages for s in page}


def webhook(body: bytes | dict[str, Any], **query: str) -> WebhookRequest:
    return webhook_request(body, RECEIVED, **query)


@pytest.fixture
def fake() -> NcentralFake:
    return NcentralFake()


@pytest.fixture
def small(fake: NcentralFake) -> FleetSeed:
    return fake.seed_fleet(customers=3, devices=30)


@pytest.fixture
async def adapter(fake: NcentralFake) -> AsyncIterator[NcentralAdapter]:
    instance = make_adapter(fake)
    yield instance
    await instance.aclose()


# ---------------------------------------------------------------------------------------------
# Declaration
# ---------------------------------------------------------------------------------------------


def test_spec_declares_ncentrals_fields() -> None:
    assert set(SPEC.credentials_schema()["properties"]) == {"api_token"}


def test_page_size_is_capped_at_the_documented_limit() -> None:
    with pytest.raises(ValueError, match="1000"):
        NcentralOptions(page_size=1001)
    with pytest.raises(ValueError, match="regular expression"):
        NcentralOptions(protection_services=["(unclosed"])


# ---------------------------------------------------------------------------------------------
# Listing
# ---------------------------------------------------------------------------------------------


async def test_customers_and_sites_page_through(fake: NcentralFake) -> None:
    fake.seed_fleet(customers=40, devices=40, sites_per_customer=2)
    adapter = make_adapter(fake, options={"page_size": 15})
    clients = [c async for c in adapter.list_clients()]
    sites = [s async for s in adapter.list_sites()]
    assert [c.id for c in clients] == [str(i) for i in sorted(fake.customers)]
    assert clients[0].name == "Customer 001 Ltd"
    assert len(sites) == 80
    assert {s.parentId for s in sites} == {c.id for c in clients}
    assert fake.call_count("GET /api/customers") == math.ceil(40 / 15)
    assert fake.call_count("GET /api/sites") == math.ceil(80 / 15)


async def test_lists_2500_devices_over_40_customers_in_pages(fake: NcentralFake) -> None:
    seed = fake.seed_fleet(customers=40, devices=2500)
    adapter = make_adapter(fake, options={"page_size": 1000})
    pages = await collect(adapter)
    statuses = [s for page in pages for s in page]
    assert len(statuses) == 2500
    assert {s.endpoint_id for s in statuses} == {str(i) for i in seed.device_ids}
    assert {s.client_id for s in statuses} == {str(i) for i in seed.customer_ids}
    assert [len(p) for p in pages] == [1000, 1000, 500]
    # One listing request per vendor page (the envelope's totalPages ends it), one service-state
    # read per device (N-central has no bulk view of them), one token exchange.
    assert fake.call_count("GET /api/devices") == 3
    assert fake.call_count("GET /api/devices/{id}/service-monitor-status") == 2500
    assert fake.call_count("POST /api/auth/authenticate") == 1
    assert adapter.request_count == 3 + 2500 + 1
    listed = [r["params"] for r in fake.requests if r["path"] == "/api/devices"]
    assert [p["pageNumber"] for p in listed] == ["1", "2", "3"]
    assert {(p["pageSize"], p["sortBy"], p["sortOrder"]) for p in listed} == {("1000", "deviceId", "ASC")}
    await adapter.aclose()


async def test_listing_without_service_states_costs_only_the_pages(fake: NcentralFake) -> None:
    fake.seed_fleet(customers=40, devices=2500)
    adapter = make_adapter(fake, options={"page_size": 100, "read_service_status": False})
    statuses = [s for page in await collect(adapter) for s in page]
    assert len(statuses) == 2500
    assert fake.call_count("GET /api/devices") == 25
    assert adapter.request_count == 26
    assert all(s.product is None and s.protection_enabled is None for s in statuses)
    assert all(s.last_seen_at is not None for s in statuses)


async def test_maps_service_states_and_device_fields(fake: NcentralFake, adapter: NcentralAdapter) -> None:
    customer = fake.add_customer("Acme Dental")
    site = fake.add_site(customer.id, "Surgery")
    healthy = fake.add_device(customer.id, "ACME-WS01", site_id=site.id, threats="Normal")
    disabled = fake.add_device(customer.id, "ACME-WS02", site_id=site.id, protection="Failed")
    infected = fake.add_device(customer.id, "ACME-WS03", site_id=site.id, threats="Failed")
    bare = fake.add_device(customer.id, "ACME-WS04", product=None)
    gone = fake.add_device(
        customer.id,
        "ACME-SRV01",
        online=False,
        last_checkin=fake.now - timedelta(days=9),
        device_class="Servers - Windows",
        os="Microsoft Windows Server 2022 Standard",
        product="AV Status",
    )
    by_id = flat(await collect(adapter))

    first = by_id[str(healthy.id)]
    assert first.client_id == str(customer.id)
    assert first.client_name == "Acme Dental"
    assert first.site_id == str(site.id)
    assert first.hostname == "ACME-WS01"
    assert first.product == "AV Defender"
    assert first.protection_enabled is True
    assert first.active_threats == 0
    assert first.online is True
    assert first.last_seen_at == fake.now - timedelta(minutes=2)
    assert first.device_type == "workstation"
    assert first.os_name == "Microsoft Windows 11 Pro"
    # N-central's REST API reports no definitions date, AV scan time or serial on these routes.
    assert first.definitions_date is None and first.last_scan_at is None and first.serial_number is None

    assert by_id[str(disabled.id)].protection_enabled is False
    assert by_id[str(disabled.id)].active_threats is None  # no threat service on that device
    assert by_id[str(infected.id)].active_threats == 1
    no_av = by_id[str(bare.id)]
    assert no_av.product is None and no_av.protection_enabled is None and no_av.site_id is None
    offline = by_id[str(gone.id)]
    assert offline.online is False
    assert offline.product == "AV"
    assert offline.last_seen_at == fake.now - timedelta(days=9)
    assert offline.device_type == "server"


async def test_service_name_patterns_are_configurable(fake: NcentralFake) -> None:
    customer = fake.add_customer("Acme")
    device = fake.add_device(customer.id, "ACME-WS01", product=None)
    fake.set_service(device.id, "SentinelOne Agent Health", "Warning")
    default = flat(await collect(make_adapter(fake)))[str(device.id)]
    assert default.product is None  # not a name the defaults recognise
    tuned = make_adapter(fake, options={"protection_services": ["SentinelOne"]})
    status = flat(await collect(tuned))[str(device.id)]
    assert status.product == "SentinelOne Agent Health"
    assert status.protection_enabled is False


async def test_device_filter_scopes_the_listing(fake: NcentralFake, small: FleetSeed) -> None:
    first = small.customer_ids[0]
    fake.add_filter(75, lambda d: d.customer_id == first)
    adapter = make_adapter(fake, options={"device_filter_id": 75})
    statuses = [s for page in await collect(adapter) for s in page]
    assert {s.client_id for s in statuses} == {str(first)}
    assert len(statuses) == 10
    assert fake.requests[1]["params"]["filterId"] == "75"


# ---------------------------------------------------------------------------------------------
# Incremental reads
# ---------------------------------------------------------------------------------------------


async def test_incremental_read_returns_only_devices_checked_in_since_the_cursor(fake: NcentralFake) -> None:
    seed = fake.seed_fleet(customers=40, devices=2500)
    cursor = fake.now + timedelta(minutes=1)
    changed = seed.device_ids[::500]  # 5 devices across the fleet
    for device_id in changed:
        fake.touch(device_id, at=fake.now + timedelta(minutes=3))
    fake.set_service(changed[0], "AV Defender Status", "Failed")
    adapter = make_adapter(fake, options={"page_size": 1000})
    statuses = [s for page in await collect(adapter, cursor) for s in page]
    assert sorted(s.endpoint_id for s in statuses) == sorted(str(i) for i in changed)
    assert next(s for s in statuses if s.endpoint_id == str(changed[0])).protection_enabled is False
    # No changed-since filter exists: every page is read, but service states only for changed devices.
    assert fake.call_count("GET /api/devices") == 3
    assert fake.call_count("GET /api/devices/{id}/service-monitor-status") == 5


async def test_incremental_read_keeps_devices_without_a_check_in_time(
    fake: NcentralFake, small: FleetSeed
) -> None:
    fake.old_server = True  # lists before 2025.3.1.9 carry no lastApplianceCheckinTime
    adapter = make_adapter(fake)
    statuses = [s for page in await collect(adapter, fake.now + timedelta(days=1)) for s in page]
    assert len(statuses) == 30
    assert all(s.last_seen_at is None for s in statuses)


# ---------------------------------------------------------------------------------------------
# Authentication
# ---------------------------------------------------------------------------------------------


async def test_access_token_is_refreshed_before_it_expires(fake: NcentralFake, small: FleetSeed) -> None:
    adapter = make_adapter(fake, clock=fake.clock, options={"token_refresh_margin_seconds": 120})
    await collect(adapter)
    fake.advance_clock(3600 - 60)  # one minute of validity left: inside the margin
    await collect(adapter)
    assert fake.call_count("POST /api/auth/refresh") == 1
    assert fake.call_count("POST /api/auth/authenticate") == 1
    assert fake.statuses[401] == 0
    refresh = next(r for r in fake.requests if r["path"] == "/api/auth/refresh")
    assert refresh["content_type"] == "text/plain"
    assert refresh["authorization"] is None
    assert refresh["body"] and refresh["body"].decode() not in fake.api_token
    fake.advance_clock(60)
    await collect(adapter)
    assert fake.call_count("POST /api/auth/refresh") == 1  # the refreshed token is good for an hour


async def test_a_401_is_answered_by_one_refresh(fake: NcentralFake, small: FleetSeed) -> None:
    adapter = make_adapter(fake)
    await collect(adapter)
    fake.expire_access_tokens()
    statuses = [s for page in await collect(adapter) for s in page]
    assert len(statuses) == 30
    assert fake.statuses[401] >= 1
    assert fake.call_count("POST /api/auth/refresh") == 1
    assert fake.call_count("POST /api/auth/authenticate") == 1


async def test_requests_refused_together_share_one_refresh(fake: NcentralFake, small: FleetSeed) -> None:
    adapter = make_adapter(fake, options={"max_concurrency": 8})
    await adapter.test_connection()
    fake.expire_access_tokens()
    fake.latency = 0.01  # keep the six reads in flight together
    bodies = await asyncio.gather(*(adapter._get(f"/api/devices/{d}") for d in small.device_ids[:6]))
    assert [b["data"]["deviceId"] for b in bodies] == small.device_ids[:6]
    assert fake.statuses[401] == 6
    assert fake.call_count("POST /api/auth/refresh") == 1


async def test_a_restarted_server_is_answered_by_a_new_jwt_exchange(
    fake: NcentralFake, small: FleetSeed
) -> None:
    adapter = make_adapter(fake)
    await collect(adapter)
    fake.restart()  # forgets access and refresh tokens
    statuses = [s for page in await collect(adapter) for s in page]
    assert len(statuses) == 30
    assert fake.call_count("POST /api/auth/refresh") == 1  # refused (401) ...
    assert fake.call_count("POST /api/auth/authenticate") == 2  # ... so the JWT is exchanged again
    assert adapter.authentications == 2


async def test_a_wrong_user_api_token_is_a_credentials_error(fake: NcentralFake, small: FleetSeed) -> None:
    adapter = make_adapter(fake, credentials={"api_token": "eyJ.not-the-token.x"})
    with pytest.raises(CredentialsError) as caught:
        await adapter.test_connection()
    assert caught.value.field == "api_token"
    assert "User-API token" in caught.value.message
    assert fake.call_count("POST /api/auth/authenticate") == 1  # refused credentials are not retried


async def test_test_connection_exchanges_the_jwt_and_reads_one_device(
    fake: NcentralFake, small: FleetSeed
) -> None:
    adapter = make_adapter(fake)
    await adapter.test_connection()
    assert fake.call_count("POST /api/auth/authenticate") == 1
    assert fake.requests[-1]["params"] == {"pageNumber": "1", "pageSize": "1"}


async def test_expiry_overrides_are_sent_and_honoured(fake: NcentralFake, small: FleetSeed) -> None:
    adapter = make_adapter(
        fake, clock=fake.clock, options={"access_expiry_override": "5m", "token_refresh_margin_seconds": 30}
    )
    await collect(adapter)
    auth = next(r for r in fake.requests if r["path"] == "/api/auth/authenticate")
    assert auth["headers"]["x-access-expiry-override"] == "5m"
    fake.advance_clock(300 - 10)
    await collect(adapter)
    assert fake.call_count("POST /api/auth/refresh") == 1


# ---------------------------------------------------------------------------------------------
# Recovery from vendor failures
# ---------------------------------------------------------------------------------------------


async def test_recovers_from_an_error_inside_a_200(fake: NcentralFake, small: FleetSeed) -> None:
    sleeps = Sleeps()
    adapter = make_adapter(fake, sleep=sleeps)
    fake.embed_error_next(500, times=1, path="/api/devices")
    statuses = [s for page in await collect(adapter) for s in page]
    assert len(statuses) == 30
    assert len(sleeps.calls) == 1


async def test_slow_responses_still_complete(fake: NcentralFake) -> None:
    fake.seed_fleet(customers=2, devices=8)
    fake.latency = 0.01
    adapter = make_adapter(fake, options={"max_concurrency": 8})
    assert len(flat(await collect(adapter))) == 8


# ---------------------------------------------------------------------------------------------
# Malformed vendor data
# ---------------------------------------------------------------------------------------------


async def test_malformed_devices_are_skipped_and_named(
    fake: NcentralFake, small: FleetSeed, caplog: pytest.LogCaptureFixture
) -> None:
    no_customer, no_id, no_name, bad_time = small.device_ids[:4]
    fake.corrupt_device(no_customer, customerId=None)
    fake.corrupt_device(no_id, deviceId=None)
    fake.corrupt_device(no_name, longName=None, discoveredName="")
    fake.corrupt_device(
        bad_time,
        lastApplianceCheckinTime="yesterday-ish",
        lastApplianceCheckinTimeLocal="",
        customerName=None,
    )
    adapter = make_adapter(fake)
    with caplog.at_level(logging.WARNING, logger="adapters.ncentral"):
        pages = [page async for page in adapter.iter_endpoint_pages(None)]
    by_id = flat([page.statuses for page in pages])
    assert len(by_id) == 27
    assert str(bad_time) in by_id and by_id[str(bad_time)].last_seen_at is None
    skipped = {(s.endpoint_id, s.field) for page in pages for s in page.skipped}
    assert skipped == {(str(no_customer), "customerId"), ("?", "deviceId"), (str(no_name), "longName")}
    assert f"N-central device {no_customer} skipped: customerId" in caplog.text


async def test_device_with_unreadable_service_states_keeps_its_identity(
    fake: NcentralFake, small: FleetSeed
) -> None:
    malformed, missing = small.device_ids[:2]
    fake.break_status(malformed, "malformed")
    fake.break_status(missing, "missing")
    adapter = make_adapter(fake)
    pages = [page async for page in adapter.iter_endpoint_pages(None)]
    by_id = flat([page.statuses for page in pages])
    assert len(by_id) == 30
    for device_id in (malformed, missing):
        status = by_id[str(device_id)]
        assert status.product is None and status.protection_enabled is None and status.online is None
        assert status.hostname == fake.devices[device_id].name
    assert {(e.endpoint_id, e.field) for page in pages for e in page.skipped} == {
        (str(malformed), "data"),
        (str(missing), "service-monitor-status"),
    }


# ---------------------------------------------------------------------------------------------
# Notifications (HTTP-XML)
# ---------------------------------------------------------------------------------------------


async def test_parses_active_and_cleared_notifications(fake: NcentralFake, small: FleetSeed) -> None:
    adapter = make_adapter(fake)
    await collect(adapter)  # learns which customer each device belongs to
    device = fake.devices[small.device_ids[3]]
    failed_at = fake.now
    active_body = fake.notification_xml(device.id, "AV Defender Status", "Failed", at=failed_at)
    cleared_body = fake.notification_xml(
        device.id, "AV Defender Status", "Normal", at=failed_at + timedelta(minutes=20)
    )
    [active] = adapter.parse_webhook(webhook(active_body))
    [cleared] = adapter.parse_webhook(webhook(cleared_body))
    assert active.state == "active" and cleared.state == "cleared"
    assert active.problem == cleared.problem == ProblemKind.PROTECTION_DISABLED
    assert active.endpoint_id == cleared.endpoint_id == str(device.id)
    assert active.client_id == str(device.customer_id)
    assert active.hostname == device.name
    assert active.occurred_at == failed_at
    assert cleared.occurred_at == failed_at + timedelta(minutes=20)
    trigger = active.event_id.split(":")[1]
    assert cleared.event_id.split(":")[1] == trigger  # one N-central trigger ...
    assert active.event_id != cleared.event_id  # ... two events, so the clear is not a duplicate
    assert "Normal -> Failed" in active.message


@pytest.mark.parametrize(
    ("service", "detail", "problem"),
    [
        (THREAT_SERVICE, "", ProblemKind.THREAT_DETECTED),
        ("AV Status", "Threat found: EICAR-Test-File", ProblemKind.THREAT_DETECTED),
        ("AV Defender Definitions", "", ProblemKind.DEFINITIONS_OUTDATED),
        ("AV Defender Scan Status", "", ProblemKind.SCAN_OVERDUE),
        (AGENT_SERVICE, "", ProblemKind.AGENT_OFFLINE),
    ],
)
async def test_problem_kind_follows_the_affected_service(
    fake: NcentralFake, small: FleetSeed, service: str, detail: str, problem: ProblemKind
) -> None:
    adapter = make_adapter(fake)
    await collect(adapter)
    body = fake.notification_xml(small.device_ids[0], service, "Failed", quantitative=detail)
    [event] = adapter.parse_webhook(webhook(body))
    assert event.problem == problem


async def test_notification_time_is_read_in_the_servers_zone(fake: NcentralFake, small: FleetSeed) -> None:
    adapter = make_adapter(fake, options={"server_timezone": "America/New_York"})
    await collect(adapter)
    body = fake.notification_xml(small.device_ids[0], "AV Status", "Warning", at=datetime(2026, 11, 20, 7, 0))
    [event] = adapter.parse_webhook(webhook(body))
    assert event.occurred_at == datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


async def test_customer_is_resolved_by_name_before_any_device_listing(
    fake: NcentralFake, small: FleetSeed
) -> None:
    adapter = make_adapter(fake)
    body = fake.notification_xml(small.device_ids[0], "AV Status", "Failed")
    with pytest.raises(WebhookParseError) as caught:
        adapter.parse_webhook(webhook(body))
    assert caught.value.field == "CustomerName"
    [_ async for _ in adapter.list_clients()]
    [event] = adapter.parse_webhook(webhook(body))
    assert event.client_id == str(fake.devices[small.device_ids[0]].customer_id)


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (
            {"keywords": ("ActiveNotificationTriggerID", "AffectedService", "QualitativeNewState")},
            "DeviceID",
        ),
        ({"keywords": ("DeviceID", "AffectedService", "QualitativeNewState")}, "ActiveNotificationTriggerID"),
        ({"service": "CPU"}, "AffectedService"),
        ({"state": "Misconfigured"}, "QualitativeNewState"),
    ],
)
async def test_unusable_notifications_name_the_keyword(
    fake: NcentralFake, small: FleetSeed, change: dict[str, Any], field: str
) -> None:
    adapter = make_adapter(fake)
    await collect(adapter)
    body = fake.notification_xml(
        small.device_ids[0],
        change.get("service", "AV Status"),
        change.get("state", "Failed"),
        keywords=change.get("keywords"),
    )
    with pytest.raises(WebhookParseError) as caught:
        adapter.parse_webhook(webhook(body))
    assert caught.value.field == field


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (b"<notification><DeviceID>1</DeviceID>", "body"),
        (b"<?xml version='1.0'?><result><item/></result>", "notification"),
        (
            b'<?xml version="1.0"?><!DOCTYPE n [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;">]>'
            b"<notification><DeviceID>&b;</DeviceID></notification>",
            "body",
        ),
        (b"", "body"),
        (b"not xml and not json", "body"),
    ],
)
def test_malformed_bodies_are_refused(adapter: NcentralAdapter, body: bytes, field: str) -> None:
    with pytest.raises(WebhookParseError) as caught:
        adapter.parse_webhook(webhook(body))
    assert caught.value.field == field


def test_leaves_the_canonical_alert_to_the_core(adapter: NcentralAdapter) -> None:
    """The core parses canonical bodies before the adapter sees one; JSON reaching the adapter is
    not an N-central notification."""
    body = {"event_id": "script-42", "endpoint_id": "526898132189", "state": "active"}
    with pytest.raises(WebhookParseError) as caught:
        adapter.parse_webhook(webhook(body))
    assert caught.value.field == "body"


async def test_deliveries_are_verified_by_the_generic_token_scheme(
    fake: NcentralFake, small: FleetSeed
) -> None:
    from connector.alerts.ingest import verify

    adapter = make_adapter(fake)
    target = SimpleNamespace(adapter=adapter, secret="s3cret-webhook-token")
    body = fake.notification_xml(small.device_ids[0], "AV Status", "Failed")
    assert verify(target, webhook(body, token="s3cret-webhook-token")) == (True, "")  # type: ignore[arg-type]
    ok, reason = verify(target, webhook(body, token="wrong"))  # type: ignore[arg-type]
    assert not ok and reason == "bad token"
    ok, reason = verify(target, webhook(body))  # type: ignore[arg-type]
    assert not ok and "missing" in reason


# ---------------------------------------------------------------------------------------------
# Actions
# ---------------------------------------------------------------------------------------------


async def test_scan_runs_the_configured_repository_item(fake: NcentralFake, small: FleetSeed) -> None:
    adapter = make_adapter(
        fake, options={"scan_item_id": 2001, "scan_parameters": {"Mode": "quick"}}, clock=fake.clock
    )
    device = fake.devices[small.device_ids[5]]
    result = await adapter.run_action(str(device.id), ActionKind.SCAN)
    [task] = fake.tasks.values()
    assert result.accepted and result.vendor_reference == f"task:{task.id}"
    assert task.body["itemId"] == 2001
    assert task.body["taskType"] == "AutomationPolicy"
    assert task.body["deviceId"] == device.id and task.body["customerId"] == device.customer_id
    assert task.body["credential"] == {"type": "LocalSystem"}
    assert task.body["parameters"] == [
        {"name": "Mode", "value": "quick", "type": "string", "description": "Mode"}
    ]


async def test_actions_the_api_cannot_run_are_unsupported(fake: NcentralFake, small: FleetSeed) -> None:
    adapter = make_adapter(fake)
    assert SPEC.actions == frozenset({ActionKind.SCAN, ActionKind.UPDATE_DEFINITIONS})
    with pytest.raises(UnsupportedActionError) as caught:
        await adapter.run_action(str(small.device_ids[0]), ActionKind.DEPLOY_AGENT)
    assert caught.value.field == "action"
    with pytest.raises(UnsupportedActionError) as caught:
        await adapter.run_action(str(small.device_ids[0]), ActionKind.UPDATE_DEFINITIONS)
    assert caught.value.field == "definitions_item_id"
    assert fake.tasks == {}


async def test_an_item_without_api_access_is_a_configuration_error(
    fake: NcentralFake, small: FleetSeed
) -> None:
    adapter = make_adapter(fake, options={"definitions_item_id": 105})
    with pytest.raises(ConfigurationError) as caught:
        await adapter.run_action(str(small.device_ids[0]), ActionKind.UPDATE_DEFINITIONS)
    assert caught.value.field == "definitions_item_id"
    assert "Enable API" in caught.value.message
    assert fake.call_count("POST /api/scheduled-tasks/direct") == 1  # never resent


async def test_an_unknown_device_is_not_found(fake: NcentralFake, small: FleetSeed) -> None:
    adapter = make_adapter(fake, options={"scan_item_id": 2001})
    with pytest.raises(NotFoundError) as caught:
        await adapter.run_action("999", ActionKind.SCAN)
    assert caught.value.field == "endpoint_id"
    assert fake.tasks == {}
