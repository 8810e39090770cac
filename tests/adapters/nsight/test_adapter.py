"""N-sight specifics against the stateful fake: per-site listings, ISO-8859-1 XML and what a
broken or hostile answer does, the API key kept out of logs, failing checks as polled alerts, Managed
Antivirus actions. What every RMM must do is `test_conformance.py`'s."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from adapters.base import (
    ActionKind,
    AlertEvent,
    EndpointStatus,
    PolledAlerts,
    ProblemKind,
    WebhookRequest,
)
from adapters.errors import (
    CredentialsError,
    NotFoundError,
    TransientVendorError,
    UnsupportedActionError,
    VendorRequestError,
)
from adapters.nsight import SPEC, NsightAdapter
from adapters.nsight.fake import FleetSeed, NsightFake
from adapters.nsight.models import NsightCredentials, NsightOptions
from adapters.nsight.parsing import NsightIncompleteListingError
from tests.support.adapter_helpers import Sleeps, asgi_transports, build_adapter, webhook_request

BASE = "https://www.am.remote.management"


def make_adapter(
    fake: NsightFake,
    *,
    api_key: str | None = None,
    options: dict[str, Any] | None = None,
    sleep: Sleeps | None = None,
) -> NsightAdapter:
    return build_adapter(
        SPEC,
        NsightAdapter,
        connection_id="ns-1",
        base_url=BASE,
        credentials=NsightCredentials(api_key=api_key or fake.api_key),
        options=NsightOptions(**(options or {})),
        transport_factory=asgi_transports(fake.app),
        sleep=sleep,
    )


async def collect(adapter: NsightAdapter, since: datetime | None = None) -> list[list[EndpointStatus]]:
    return [page.statuses async for page in adapter.iter_endpoint_pages(since)]


@pytest.fixture
def fake() -> NsightFake:
    return NsightFake()


@pytest.fixture
def small(fake: NsightFake) -> FleetSeed:
    return fake.seed_fleet(clients=3, devices=30, sites_per_client=3, server_ratio=0.2)


@pytest.fixture
async def adapter(fake: NsightFake) -> AsyncIterator[NsightAdapter]:
    instance = make_adapter(fake)
    yield instance
    await instance.aclose()


def request(body: Any) -> WebhookRequest:
    return webhook_request(body, datetime.now(UTC))


# ---------------------------------------------------------------------------------------------
# Declaration
# ---------------------------------------------------------------------------------------------


def test_spec_declares_nsights_fields() -> None:
    assert set(SPEC.credentials_schema()["properties"]) == {"api_key"}


# ---------------------------------------------------------------------------------------------
# Listing
# ---------------------------------------------------------------------------------------------


async def test_list_clients_reads_cdata_and_latin1_names(fake: NsightFake, adapter: NsightAdapter) -> None:
    fake.seed_fleet(clients=4, devices=8)
    clients = [c async for c in adapter.list_clients()]
    assert [c.id for c in clients] == [str(cid) for cid in fake.clients]
    assert clients[1].name == "Müller & Söhne GmbH"


async def test_lists_2500_devices_over_40_clients_with_requests_per_site(fake: NsightFake) -> None:
    seed = fake.seed_fleet(clients=40, devices=2500)
    adapter = make_adapter(fake)
    pages = await collect(adapter)
    statuses = [s for page in pages for s in page]
    assert len(statuses) == 2500
    assert {s.endpoint_id for s in statuses} == {str(d) for d in seed.device_ids}
    assert len(pages) == len(seed.site_ids)
    assert all(len({s.site_id for s in page}) == 1 for page in pages)
    # 1 list_clients + 2 per client (sites, failing checks) + at most 2 listings per site + the
    # two Managed Antivirus reads per device.
    assert fake.call_count("list_clients") == 1
    assert fake.call_count("list_sites") == fake.call_count("list_failing_checks") == 40
    assert fake.call_count("list_workstations") == len(seed.site_ids)
    assert fake.call_count("list_mav_scans") == fake.call_count("list_mav_threats") == 2500
    assert fake.call_count() <= 1 + 2 * 40 + 2 * len(seed.site_ids) + 2 * 2500
    assert adapter.request_count == fake.call_count()
    await adapter.aclose()
    fake.reset_calls()
    listing_only = make_adapter(fake, options={"managed_antivirus": False})
    assert sum(len(page) for page in await collect(listing_only)) == 2500
    assert fake.call_count("list_mav_scans") == 0
    assert fake.call_count() <= 1 + 2 * 40 + 2 * len(seed.site_ids) < 2500 / 10
    await listing_only.aclose()


async def test_status_fields_are_mapped(fake: NsightFake, adapter: NsightAdapter) -> None:
    client = fake.add_client("Acme")
    site = fake.add_site(client.id, "HQ")
    seen = fake.now - timedelta(minutes=3)
    server = fake.add_device(site.id, "SRV-01", kind="server", os="Windows Server 2022", last_contact=seen)
    ws = fake.add_device(site.id, "WS-01", online=False, last_contact=seen - timedelta(days=3))
    (page,) = await collect(adapter)
    by_id = {s.endpoint_id: s for s in page}
    srv = by_id[str(server.id)]
    assert (srv.client_id, srv.client_name, srv.site_id) == (str(client.id), "Acme", str(site.id))
    assert (srv.hostname, srv.device_type, srv.os_name, srv.online) == (
        "SRV-01",
        "server",
        "Windows Server 2022",
        True,
    )
    assert srv.last_seen_at == seen.replace(microsecond=0)
    assert by_id[str(ws.id)].online is False and by_id[str(ws.id)].device_type == "workstation"
    # The antivirus state comes from the device's Managed Antivirus answers; N-sight reports no
    # definitions date: "not reported", never "current".
    assert (srv.product, srv.protection_enabled, srv.active_threats) == (
        "Managed Antivirus (Bitdefender)",
        True,
        0,
    )
    assert srv.last_scan_at == (fake.now - timedelta(days=1)).replace(microsecond=0)
    assert srv.definitions_date is None


async def test_kinds_a_client_does_not_have_are_not_requested(
    fake: NsightFake, adapter: NsightAdapter
) -> None:
    client = fake.add_client("Workstations only")
    for n in range(3):
        site = fake.add_site(client.id, f"Site {n}")
        fake.add_device(site.id, f"WS-{n}")
    pages = await collect(adapter)
    assert len(pages) == 3
    assert fake.call_count("list_servers") == 0
    assert fake.call_count("list_workstations") == 3


async def test_incremental_read_keeps_devices_seen_or_booted_since_cursor(
    fake: NsightFake, small: FleetSeed, adapter: NsightAdapter
) -> None:
    since = fake.now - timedelta(hours=1)
    expected = {
        str(d.id)
        for d in fake.devices.values()
        if max(t for t in (d.last_contact, d.last_boot) if t) >= since.replace(microsecond=0)
    }
    assert 0 < len(expected) < len(fake.devices)
    first = {s.endpoint_id for page in await collect(adapter, since) for s in page}
    assert first == expected
    stale = next(d for d in fake.devices.values() if str(d.id) not in expected)
    fake.touch(stale.id)
    second = {s.endpoint_id for page in await collect(adapter, since) for s in page}
    assert second == expected | {str(stale.id)}


# ---------------------------------------------------------------------------------------------
# Malformed responses
# ---------------------------------------------------------------------------------------------


async def test_device_missing_id_or_name_is_skipped_with_warning(
    fake: NsightFake, small: FleetSeed, adapter: NsightAdapter, caplog: pytest.LogCaptureFixture
) -> None:
    no_id, no_name, bad_online = (fake.devices[d] for d in small.device_ids[:3])
    fake.break_device(no_id.id, f"{no_id.kind}id")
    fake.break_device(no_name.id, "name")
    fake.break_device(bad_online.id, "online", "yes")
    with caplog.at_level(logging.WARNING, logger="adapters.nsight"):
        pages = [page async for page in adapter.iter_endpoint_pages(None)]
    statuses = {s.endpoint_id: s for page in pages for s in page.statuses}
    assert {(s.endpoint_id, s.field) for page in pages for s in page.skipped} == {
        ("?", f"{no_id.kind}id"),
        (str(no_name.id), "name"),
    }
    assert len(statuses) == 28
    assert str(no_id.id) not in statuses and str(no_name.id) not in statuses
    # `<online>` unreadable: the client's failing checks (no `<offline>` for it) still say online.
    assert statuses[str(bad_online.id)].online is True
    text = caplog.text
    assert f"{no_id.kind}id missing" in text and no_id.name in text
    assert f"{no_name.kind} {no_name.id}: field name missing" in text
    assert f"{bad_online.id} ({bad_online.name}): field online unreadable" in text
    assert len(adapter.last_report.skipped) == 3


async def test_truncated_site_is_retried_then_reported_while_other_sites_continue(
    fake: NsightFake, small: FleetSeed, caplog: pytest.LogCaptureFixture
) -> None:
    broken_site = fake.sites[small.site_ids[1]]
    fake.truncate("list_workstations", siteid=broken_site.id)
    sleeps = Sleeps()
    adapter = make_adapter(fake, sleep=sleeps)
    pages: list[list[EndpointStatus]] = []
    with pytest.raises(NsightIncompleteListingError) as info:
        async for page in adapter.iter_endpoint_pages(None):
            pages.append(page.statuses)
    assert isinstance(info.value, TransientVendorError)
    assert len(pages) == len(small.site_ids) - 1
    assert str(broken_site.id) not in {p[0].site_id for p in pages}
    assert f"site {broken_site.id} ({broken_site.name})" in str(info.value)
    assert "unreadable XML" in str(info.value)
    assert info.value.failures == adapter.last_failures and len(adapter.last_failures) == 1
    workstation_calls = [r for r in fake.requests if r.get("siteid") == str(broken_site.id)]
    assert [r["service"] for r in workstation_calls].count("list_workstations") == 2  # one re-request
    assert len(sleeps.calls) == 1
    await adapter.aclose()


async def test_truncated_once_is_recovered_transparently(fake: NsightFake, small: FleetSeed) -> None:
    fake.truncate("list_sites", times=1)
    adapter = make_adapter(fake)
    assert sum(len(p) for p in await collect(adapter)) == 30
    assert adapter.last_failures == []
    await adapter.aclose()


async def test_xml_bomb_is_refused_and_names_the_client(fake: NsightFake, small: FleetSeed) -> None:
    victim = fake.clients[small.client_ids[0]]
    fake.serve_bomb("list_sites", clientid=victim.id)
    adapter = make_adapter(fake)
    pages: list[list[EndpointStatus]] = []
    with pytest.raises(NsightIncompleteListingError) as info:
        async for page in adapter.iter_endpoint_pages(None):
            pages.append(page.statuses)
    assert f"client {victim.id} ({victim.name})" in str(info.value)
    assert "DTD/entity" in str(info.value)
    assert pages and all(p[0].client_id != str(victim.id) for p in pages)
    await adapter.aclose()


# ---------------------------------------------------------------------------------------------
# Errors, limits, secrets
# ---------------------------------------------------------------------------------------------


async def test_wrong_key_is_credentials_error_without_leaking_it(fake: NsightFake, small: FleetSeed) -> None:
    wrong = "wrong-key-123456789"
    adapter = make_adapter(fake, api_key=wrong)
    with pytest.raises(CredentialsError) as info:
        await adapter.test_connection()
    assert "login failed" in str(info.value)
    assert wrong not in str(info.value) and wrong not in repr(info.value)
    with pytest.raises(CredentialsError):
        await collect(adapter)
    assert fake.call_count() == 2  # never retried
    await adapter.aclose()


@pytest.mark.parametrize("status", [401, 403])
async def test_wrong_key_as_http_status_is_credentials_error(fake: NsightFake, status: int) -> None:
    fake.auth_failure_status = status
    adapter = make_adapter(fake, api_key="wrong-key-123456789")
    with pytest.raises(CredentialsError):
        await adapter.test_connection()
    assert fake.call_count() == 1
    await adapter.aclose()


async def test_slow_responses_still_complete(fake: NsightFake, small: FleetSeed) -> None:
    fake.latency = 0.005
    adapter = make_adapter(fake)
    assert sum(len(p) for p in await collect(adapter)) == 30
    await adapter.aclose()


async def test_api_key_never_reaches_logs(
    fake: NsightFake, small: FleetSeed, caplog: pytest.LogCaptureFixture
) -> None:
    fake.fail_next(500, times=1)
    fake.truncate("list_workstations", siteid=small.site_ids[0])
    adapter = make_adapter(fake)
    # httpx's own logger too: the service sets it to WARNING, and another test may have configured it
    with caplog.at_level(logging.DEBUG), caplog.at_level(logging.DEBUG, logger="httpx"):
        with pytest.raises(NsightIncompleteListingError):
            await collect(adapter)
        await adapter.poll_alerts(None)
    assert caplog.records, "expected log output to inspect"
    assert any("HTTP Request" in r.getMessage() for r in caplog.records)
    assert fake.api_key not in caplog.text
    assert all(fake.api_key not in r.getMessage() for r in caplog.records)
    await adapter.aclose()


# ---------------------------------------------------------------------------------------------
# Alerts
# ---------------------------------------------------------------------------------------------


def by_state(polled: PolledAlerts, state: str) -> dict[str, AlertEvent]:
    return {e.event_id: e for e in polled.events if e.state == state}


async def test_failing_security_checks_are_a_snapshot_complete_for_every_client(
    fake: NsightFake, small: FleetSeed, adapter: NsightAdapter
) -> None:
    d1, d2, d3 = (fake.devices[d] for d in small.device_ids[:3])
    protection = fake.fail_check(d1.id, "av_protection")
    definitions = fake.fail_check(d2.id, "av_definitions")
    threat = fake.fail_check(d3.id, "threat")
    scan = fake.fail_check(d3.id, "scan")
    fake.fail_check(d1.id, "disk")
    fake.fail_check(d2.id, "service")
    fake.fail_check(d3.id, "task")

    polled = await adapter.poll_alerts(None)
    active = by_state(polled, "active")
    assert set(active) == {
        f"nsight:{d1.id}:{protection}",
        f"nsight:{d2.id}:{definitions}",
        f"nsight:{d3.id}:{threat}",
        f"nsight:{d3.id}:{scan}",
    }
    assert not by_state(polled, "cleared")
    assert polled.complete_for == frozenset(str(c) for c in small.client_ids)
    problem = {e.event_id: e.problem for e in active.values()}
    assert problem[f"nsight:{d1.id}:{protection}"] == ProblemKind.PROTECTION_DISABLED
    assert problem[f"nsight:{d2.id}:{definitions}"] == ProblemKind.DEFINITIONS_OUTDATED
    assert problem[f"nsight:{d3.id}:{threat}"] == ProblemKind.THREAT_DETECTED
    assert problem[f"nsight:{d3.id}:{scan}"] == ProblemKind.SCAN_OVERDUE
    first = active[f"nsight:{d1.id}:{protection}"]
    site = fake.sites[d1.site_id]
    assert (first.client_id, first.endpoint_id, first.hostname) == (str(site.client_id), str(d1.id), d1.name)
    assert "Real-time protection is disabled" in first.message
    assert first.occurred_at == fake.now
    assert fake.call_count("list_failing_checks") == 3  # one per client
    assert all(
        r.get("check_type") == "checks" for r in fake.requests if r["service"] == "list_failing_checks"
    )

    # Same snapshot again: the same ids.
    again = await adapter.poll_alerts(None)
    assert set(by_state(again, "active")) == set(active) and not by_state(again, "cleared")

    # Checks that pass again are simply absent: the core reads their absence as the clear.
    fake.clear_check(protection)
    fake.set_av_state(d3.id, threats=0)
    after = await adapter.poll_alerts(None)
    assert not by_state(after, "cleared")
    assert set(by_state(after, "active")) == {f"nsight:{d2.id}:{definitions}", f"nsight:{d3.id}:{scan}"}
    assert after.complete_for == polled.complete_for


async def test_av_state_mutator_and_account_scope(fake: NsightFake, small: FleetSeed) -> None:
    adapter = make_adapter(fake, options={"failing_checks_scope": "account"})
    device = fake.devices[small.device_ids[5]]
    fake.set_av_state(device.id, protection=False, definitions_current=False, threats=3)
    polled = await adapter.poll_alerts(None)
    assert {e.problem for e in polled.events} == {
        ProblemKind.PROTECTION_DISABLED,
        ProblemKind.DEFINITIONS_OUTDATED,
        ProblemKind.THREAT_DETECTED,
    }
    # One call for the account, one to name the clients it is complete for.
    assert fake.call_count("list_failing_checks") == 1 and fake.call_count("list_clients") == 1
    assert polled.complete_for == frozenset(str(c) for c in small.client_ids)
    assert "clientid" not in fake.requests[-1]
    fake.set_av_state(device.id, protection=True, definitions_current=True, threats=0)
    after = await adapter.poll_alerts(None)
    assert after.events == [] and after.complete_for == polled.complete_for
    await adapter.aclose()


async def test_unreadable_client_is_not_complete(fake: NsightFake, small: FleetSeed) -> None:
    device = fake.devices[small.device_ids[0]]
    client_id = fake.sites[device.site_id].client_id
    fake.fail_check(device.id, "av_protection")
    adapter = make_adapter(fake)
    assert len((await adapter.poll_alerts(None)).events) == 1
    fake.truncate("list_failing_checks", clientid=client_id)
    polled = await adapter.poll_alerts(None)
    assert polled.events == []
    assert str(client_id) not in polled.complete_for  # its open problems stay as they are
    assert polled.complete_for == frozenset(str(c) for c in small.client_ids) - {str(client_id)}
    assert len(adapter.last_failures) == 1 and f"client {client_id}" in adapter.last_failures[0]
    fake.clear_faults()
    assert [e.state for e in (await adapter.poll_alerts(None)).events] == ["active"]
    await adapter.aclose()


async def test_a_rebuilt_adapter_reports_the_same_snapshot(fake: NsightFake, small: FleetSeed) -> None:
    check = fake.fail_check(small.device_ids[0], "av_protection")
    first = make_adapter(fake)
    assert len((await first.poll_alerts(None)).events) == 1
    fake.clear_check(check)
    after_first = await first.poll_alerts(None)
    await first.aclose()
    second = make_adapter(fake)
    after_second = await second.poll_alerts(None)
    await second.aclose()
    assert after_first == after_second and after_second.events == []


# ---------------------------------------------------------------------------------------------
# Webhook
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        {
            "event_id": "ext-1",
            "client_id": "501",
            "endpoint_id": "300001",
            "problem": "threat_detected",
            "state": "active",
            "occurred_at": "2026-11-20T10:00:00Z",
        },
    ],
)
def test_parse_webhook_knows_no_format_of_its_own(adapter: NsightAdapter, body: Any) -> None:
    """N-sight sends no webhooks; the canonical alert a script posts is parsed by the core."""
    assert adapter.parse_webhook(request(body)) == []


# ---------------------------------------------------------------------------------------------
# Actions
# ---------------------------------------------------------------------------------------------


async def test_actions_map_to_managed_antivirus_calls(
    fake: NsightFake, small: FleetSeed, adapter: NsightAdapter
) -> None:
    device = small.device_ids[0]
    scan = await adapter.run_action(str(device), ActionKind.SCAN)
    assert scan.accepted and fake.scans_started == [device]
    update = await adapter.run_action(str(device), ActionKind.UPDATE_DEFINITIONS)
    assert update.accepted and device in fake.pending_definition_updates
    again = await adapter.run_action(str(device), ActionKind.UPDATE_DEFINITIONS)
    assert not again.accepted and again.message == "There is already a MAV definition update pending"


async def test_unsupported_and_invalid_actions(
    fake: NsightFake, small: FleetSeed, adapter: NsightAdapter
) -> None:
    with pytest.raises(UnsupportedActionError) as info:
        await adapter.run_action(str(small.device_ids[0]), ActionKind.DEPLOY_AGENT)
    assert "deploy_agent" in str(info.value)
    with pytest.raises(VendorRequestError) as bad:
        await adapter.run_action("WS-01", ActionKind.SCAN)
    assert bad.value.field == "endpoint_id"
    with pytest.raises(NotFoundError):
        await adapter.run_action("999999999", ActionKind.SCAN)
    assert fake.call_count("mav_scan_start") == 1
