"""ConnectWise Automate specifics against the stateful fake: the token flow, `condition` and its
cursor in the server's zone, the antivirus mapping, polled alerts and alert-template bodies,
scripts as actions. What every RMM must do is `test_conformance.py`'s."""

from __future__ import annotations

import math
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from adapters.base import (
    ActionKind,
    EndpointStatus,
    ProblemKind,
    WebhookRequest,
)
from adapters.connectwise_automate import SPEC, ConnectWiseAutomateAdapter
from adapters.connectwise_automate.fake import AutomateFake, FakeUser, FleetSeed
from adapters.connectwise_automate.models import AutomateCredentials, AutomateOptions
from adapters.errors import (
    CredentialsError,
    TransientVendorError,
    UnsupportedActionError,
    VendorRequestError,
    WebhookParseError,
)
from tests.support.adapter_helpers import Sleeps, asgi_transports, build_adapter, webhook_request

BASE = "https://cwa.example.com"


def make_adapter(
    fake: AutomateFake,
    *,
    credentials: dict[str, Any] | None = None,
    options: dict[str, Any] | None = None,
    sleep: Sleeps | None = None,
    clock: Any = None,
) -> ConnectWiseAutomateAdapter:
    return build_adapter(
        SPEC,
        ConnectWiseAutomateAdapter,
        connection_id="cwa-1",
        base_url=BASE,
        credentials=AutomateCredentials(**{**fake.credentials(), **(credentials or {})}),
        options=AutomateOptions(**(options or {})),
        transport_factory=asgi_transports(fake.app),
        sleep=sleep,
        extra={"clock": clock} if clock else {},
    )


async def collect(
    adapter: ConnectWiseAutomateAdapter, since: datetime | None = None
) -> list[list[EndpointStatus]]:
    return [page.statuses async for page in adapter.iter_endpoint_pages(since)]


def request(body: Any) -> WebhookRequest:
    return webhook_request(body, datetime(2026, 11, 20, 12, 30, tzinfo=UTC))


@pytest.fixture
def fake() -> AutomateFake:
    return AutomateFake()


@pytest.fixture
def small(fake: AutomateFake) -> FleetSeed:
    return fake.seed_fleet(clients=3, computers=30)


@pytest.fixture
async def adapter(fake: AutomateFake) -> AsyncIterator[ConnectWiseAutomateAdapter]:
    instance = make_adapter(fake)
    yield instance
    await instance.aclose()


# ---------------------------------------------------------------------------------------------
# Declaration
# ---------------------------------------------------------------------------------------------


def test_spec_declares_automates_fields() -> None:
    properties = SPEC.credentials_schema()["properties"]
    assert set(properties) == {"username", "password", "client_id", "two_factor_passcode"}
    assert properties["client_id"]["format"] == "password"


def test_page_size_is_capped_at_automates_limit() -> None:
    with pytest.raises(ValueError, match="1000"):
        AutomateOptions(page_size=5000)


# ---------------------------------------------------------------------------------------------
# Listing
# ---------------------------------------------------------------------------------------------


async def test_list_clients_and_locations_page_through(fake: AutomateFake) -> None:
    fake.seed_fleet(clients=40, computers=40, locations_per_client=2)
    adapter = make_adapter(fake, options={"page_size": 15})
    clients = [c async for c in adapter.list_clients()]
    locations = [x async for x in adapter.list_locations()]
    assert [c.id for c in clients] == [str(i) for i in sorted(fake.clients)]
    assert clients[0].name == "Client 001 Ltd"
    assert len(locations) == 80
    assert {x.Client.Id for x in locations if x.Client} == {c.id for c in clients}
    assert fake.call_count("GET /clients") == math.ceil(40 / 15)
    assert fake.call_count("GET /locations") == math.ceil(80 / 15)


async def test_lists_2500_computers_over_40_clients_in_pages(fake: AutomateFake) -> None:
    seed = fake.seed_fleet(clients=40, computers=2500)
    adapter = make_adapter(fake)
    pages = await collect(adapter)
    statuses = [s for page in pages for s in page]
    assert len(statuses) == 2500
    assert {s.endpoint_id for s in statuses} == {str(i) for i in seed.computer_ids}
    assert {s.client_id for s in statuses} == {str(i) for i in seed.client_ids}
    assert [len(p) for p in pages] == [1000, 1000, 500]
    # One request per vendor page (+ the token), never one per computer.
    assert fake.call_count("GET /computers") == 3
    assert fake.call_count("POST /apitoken") == 1
    assert adapter.request_count == 4
    await adapter.aclose()


async def test_small_pages_cost_one_request_each_and_keep_their_parameters(fake: AutomateFake) -> None:
    fake.seed_fleet(clients=40, computers=2500)
    adapter = make_adapter(fake, options={"page_size": 100, "computer_condition": "Client.Id <= 40"})
    statuses = [s for page in await collect(adapter) for s in page]
    assert len(statuses) == 2500
    # 25 full pages and the empty page that proves the end.
    assert fake.call_count("GET /computers") == 26
    listed = [r["params"] for r in fake.requests if r["path"] == "/Computers"]
    assert [int(p["page"]) for p in listed] == list(range(1, 27))
    assert {p["condition"] for p in listed} == {"Client.Id <= 40"}
    assert {p["orderBy"] for p in listed} == {"Id asc"}
    assert {p["pageSize"] for p in listed} == {"100"}


async def test_maps_antivirus_and_status_fields(
    fake: AutomateFake, adapter: ConnectWiseAutomateAdapter
) -> None:
    client = fake.add_client("Acme Dental")
    site = fake.add_location(client.id, "Surgery")
    protected = fake.add_computer(
        site.id,
        "ACME-WS01",
        product="Kaspersky Endpoint Security for Windows",
        definitions_age=timedelta(days=4),
    )
    bare = fake.add_computer(site.id, "ACME-WS02", product=None)
    gone = fake.add_computer(
        site.id, "ACME-SRV01", online=False, last_contact=fake.now - timedelta(days=9), type_="Server"
    )
    by_id = {s.endpoint_id: s for page in await collect(adapter) for s in page}

    first = by_id[str(protected.id)]
    assert first.client_id == str(client.id)
    assert first.client_name == "Acme Dental"
    assert first.site_id == str(site.id)
    assert first.hostname == "ACME-WS01"
    assert first.product == "Kaspersky Endpoint Security for Windows"
    assert first.protection_enabled is None  # Automate does not report real-time protection
    assert first.definitions_date == fake.now - timedelta(days=4)
    assert first.last_scan_at is None and first.active_threats is None
    assert first.online is True
    assert first.last_seen_at == fake.now - timedelta(minutes=2)
    assert first.device_type == "workstation"
    assert first.serial_number == f"SN{protected.id:08d}"

    no_av = by_id[str(bare.id)]
    assert no_av.product is None and no_av.protection_enabled is None and no_av.definitions_date is None

    offline = by_id[str(gone.id)]
    assert offline.online is False
    assert offline.last_seen_at == fake.now - timedelta(days=9)
    assert offline.device_type == "server"


async def test_missing_scanner_can_be_reported_as_not_protected(fake: AutomateFake) -> None:
    client = fake.add_client("Acme")
    site = fake.add_location(client.id)
    fake.add_computer(site.id, "NO-AV", product=None)
    adapter = make_adapter(fake, options={"missing_scanner_means_unprotected": True})
    [[status]] = await collect(adapter)
    assert status.product is None and status.protection_enabled is False


async def test_incremental_read_returns_only_computers_changed_since_the_cursor(fake: AutomateFake) -> None:
    seed = fake.seed_fleet(clients=40, computers=2500)
    cursor = fake.now + timedelta(minutes=1)
    changed = seed.computer_ids[::500]  # 5 computers across the fleet
    for computer_id in changed:
        fake.touch(computer_id, at=fake.now + timedelta(minutes=3))
    fake.set_av(changed[0], definitions_date=fake.now + timedelta(minutes=3))
    adapter = make_adapter(fake, options={"page_size": 2})
    fake.reset_calls()
    statuses = [s for page in await collect(adapter, cursor) for s in page]
    assert sorted(s.endpoint_id for s in statuses) == sorted(str(i) for i in changed)
    assert next(
        s for s in statuses if s.endpoint_id == str(changed[0])
    ).definitions_date == fake.now + timedelta(minutes=3)
    listed = [r["params"] for r in fake.requests if r["path"] == "/Computers"]
    assert len(listed) == 3  # pages of 2, 2 and 1
    assert {p["condition"] for p in listed} == {"RemoteAgentLastContact >= 2026-11-20T12:01:00"}


async def test_incremental_condition_is_combined_with_the_engineers_condition(fake: AutomateFake) -> None:
    seed = fake.seed_fleet(clients=4, computers=40)
    for computer_id in seed.computer_ids[:8]:
        fake.touch(computer_id, at=fake.now + timedelta(minutes=5))
    first_client = str(seed.client_ids[0])
    adapter = make_adapter(fake, options={"computer_condition": f"Client.Id = {first_client}"})
    statuses = [s for page in await collect(adapter, fake.now + timedelta(minutes=1)) for s in page]
    assert {s.client_id for s in statuses} == {first_client}
    assert len(statuses) == 2  # computers 1 and 5 of the first eight belong to the first client
    assert fake.requests[-1]["params"]["condition"] == (
        f"(Client.Id = {first_client}) and (RemoteAgentLastContact >= 2026-11-20T12:01:00)"
    )


async def test_cursor_is_written_in_the_servers_time_zone(fake: AutomateFake) -> None:
    fake.seed_fleet(clients=1, computers=3)
    adapter = make_adapter(fake, options={"server_timezone": "America/New_York"})
    await collect(adapter, datetime(2026, 11, 20, 17, 0, tzinfo=UTC))
    assert fake.requests[-1]["params"]["condition"] == "RemoteAgentLastContact >= 2026-11-20T12:00:00"


async def test_a_condition_automate_refuses_names_the_condition(fake: AutomateFake, small: FleetSeed) -> None:
    adapter = make_adapter(fake, options={"computer_condition": "Bogus = 1"})
    with pytest.raises(VendorRequestError) as caught:
        await collect(adapter)
    assert caught.value.field == "condition"
    assert "Unknown field 'Bogus'" in caught.value.message
    assert fake.call_count("GET /computers") == 1  # a 400 is never retried


# ---------------------------------------------------------------------------------------------
# Authentication
# ---------------------------------------------------------------------------------------------


async def test_token_is_renewed_before_it_expires(fake: AutomateFake, small: FleetSeed) -> None:
    adapter = make_adapter(fake, clock=fake.clock, options={"token_refresh_margin_seconds": 120})
    await collect(adapter)
    fake.advance_clock(3600 - 60)  # one minute of validity left: inside the margin
    await collect(adapter)
    assert adapter.token_requests == 2
    assert fake.statuses[401] == 0
    fake.advance_clock(30)
    await collect(adapter)
    assert adapter.token_requests == 2  # the new token is good for an hour


async def test_token_is_renewed_once_after_a_401(fake: AutomateFake, small: FleetSeed) -> None:
    adapter = make_adapter(fake)
    await collect(adapter)
    fake.expire_tokens()
    statuses = [s for page in await collect(adapter) for s in page]
    assert len(statuses) == 30
    assert fake.statuses[401] == 1
    assert adapter.token_requests == 2
    authorizations = [r["authorization"] for r in fake.requests if r["path"] == "/Computers"]
    assert authorizations[-2] != authorizations[-1]


async def test_a_401_that_survives_renewal_is_a_credentials_error(
    fake: AutomateFake, small: FleetSeed
) -> None:
    adapter = make_adapter(fake)
    await collect(adapter)
    fake.expire_tokens()
    fake.users[fake.username.lower()] = FakeUser("rotated-password")
    with pytest.raises(CredentialsError) as caught:
        await collect(adapter)
    assert caught.value.field == "credentials"


async def test_test_connection_authenticates_and_reads_one_page(fake: AutomateFake, small: FleetSeed) -> None:
    adapter = make_adapter(fake)
    await adapter.test_connection()
    assert fake.call_count("POST /apitoken") == 1
    assert fake.requests[-1]["params"] == {"page": "1", "pageSize": "1", "includeFields": "Id"}


@pytest.mark.parametrize(
    ("credentials", "field"),
    [
        ({"username": "nobody"}, "credentials"),
        ({"client_id": "00000000-0000-0000-0000-000000000000"}, "credentials"),
    ],
)
async def test_test_connection_reports_bad_credentials(
    fake: AutomateFake, credentials: dict[str, str], field: str
) -> None:
    adapter = make_adapter(fake, credentials=credentials)
    with pytest.raises(CredentialsError) as caught:
        await adapter.test_connection()
    assert caught.value.field == field
    assert fake.call_count("POST /apitoken") == 1  # refused credentials are not retried


async def test_test_connection_reports_a_403_on_the_read(fake: AutomateFake, small: FleetSeed) -> None:
    fake.fail_next(403, path="/Computers")
    with pytest.raises(CredentialsError):
        await make_adapter(fake).test_connection()


async def test_two_factor_user(fake: AutomateFake, small: FleetSeed) -> None:
    fake.users[fake.username.lower()] = FakeUser(fake.password, two_factor="123456")
    with pytest.raises(CredentialsError) as caught:
        await make_adapter(fake).test_connection()
    assert caught.value.field == "two_factor_passcode"
    await make_adapter(fake, credentials={"two_factor_passcode": "123 456"}).test_connection()


# ---------------------------------------------------------------------------------------------
# Failures and retries
# ---------------------------------------------------------------------------------------------


async def test_slow_responses_still_complete(fake: AutomateFake, small: FleetSeed) -> None:
    fake.latency = 0.01
    statuses = [s for page in await collect(make_adapter(fake)) for s in page]
    assert len(statuses) == 30


async def test_token_request_recovers_from_500(fake: AutomateFake, small: FleetSeed) -> None:
    fake.fail_next(500, path="/apitoken")
    await make_adapter(fake).test_connection()
    assert fake.call_count("POST /apitoken") == 2


# ---------------------------------------------------------------------------------------------
# Alerts
# ---------------------------------------------------------------------------------------------


async def test_poll_alerts_maps_security_alerts_since_the_cursor(
    fake: AutomateFake, small: FleetSeed, adapter: ConnectWiseAutomateAdapter
) -> None:
    first, second, third = small.computer_ids[:3]
    old = fake.add_alert(first, "AV - Definitions", "Definitions 9 days old", at=fake.now - timedelta(days=2))
    defs = fake.add_alert(first, "AV - Definitions", "Antivirus definitions are 9 days old")
    threat = fake.add_alert(second, "Kaspersky - Threats", "2 threats detected, 1 not cleaned")
    fake.add_alert(second, "Disk Space - C:", "Free space 3%")
    offline = fake.add_alert(
        third, "Agent Offline", "Agent has not checked in for 2 days", field_name="Status"
    )
    not_installed = fake.add_alert(third, "Antivirus Missing", "No antivirus is installed")

    polled = await adapter.poll_alerts(fake.now - timedelta(hours=1))
    assert polled.complete_for == frozenset()  # alerts since a time: absence says nothing
    by_id = {e.event_id: e for e in polled.events}
    assert set(by_id) == {f"cwa:alert:{a.id}" for a in (defs, threat, offline, not_installed)}
    assert by_id[f"cwa:alert:{defs.id}"].problem is ProblemKind.DEFINITIONS_OUTDATED
    assert by_id[f"cwa:alert:{threat.id}"].problem is ProblemKind.THREAT_DETECTED
    assert by_id[f"cwa:alert:{offline.id}"].problem is ProblemKind.AGENT_OFFLINE
    assert by_id[f"cwa:alert:{not_installed.id}"].problem is ProblemKind.NOT_PROTECTED
    event = by_id[f"cwa:alert:{threat.id}"]
    computer = fake.computers[second]
    assert event.endpoint_id == str(second)
    assert event.client_id == str(computer.client_id)
    assert event.hostname == computer.name
    assert event.state == "active"
    assert event.occurred_at == fake.now
    assert "2 threats detected" in event.message
    assert fake.requests[-1]["params"]["condition"] == "AlertDate >= 2026-11-20T11:00:00"

    everything = await adapter.poll_alerts(None)
    assert f"cwa:alert:{old.id}" in {e.event_id for e in everything.events}


async def test_poll_alerts_pages_and_applies_the_alert_condition(
    fake: AutomateFake, small: FleetSeed
) -> None:
    for n, computer_id in enumerate(small.computer_ids):
        fake.add_alert(computer_id, "AV - Protection", f"Real-time protection disabled ({n})")
        fake.add_alert(computer_id, "Disk Space - C:", "Free space 3%")
    adapter = make_adapter(fake, options={"page_size": 7, "alert_condition": "Monitor.Name like 'AV%'"})
    events = (await adapter.poll_alerts(None)).events
    assert len(events) == 30
    assert {e.problem for e in events} == {ProblemKind.PROTECTION_DISABLED}
    assert fake.call_count("GET /alerts") == math.ceil(30 / 7)
    assert {r["params"]["condition"] for r in fake.requests if r["path"] == "/Alerts"} == {
        "Monitor.Name like 'AV%'"
    }


def test_parse_webhook_leaves_the_canonical_alert_to_the_core(adapter: ConnectWiseAutomateAdapter) -> None:
    """The core parses canonical bodies before the adapter sees one; what reaches the adapter in the
    canonical shape is refused as not an Automate alert, naming the item."""
    body = {
        "event_id": "evt-1",
        "client_id": 7,
        "endpoint_id": "1001",
        "problem": "threat_detected",
        "state": "active",
        "occurred_at": "2026-11-20T12:00:00",
    }
    with pytest.raises(WebhookParseError) as caught:
        adapter.parse_webhook(request(body))
    assert caught.value.field == "body"
    with pytest.raises(WebhookParseError) as caught:
        adapter.parse_webhook(
            request([{"ComputerId": 1, "ClientId": 7, "Status": "Failed", "Problem": "scan_overdue"}, body])
        )
    assert caught.value.field == "[1]"


async def test_parse_webhook_alert_template_shares_the_polled_event_id(
    fake: AutomateFake, small: FleetSeed, adapter: ConnectWiseAutomateAdapter
) -> None:
    computer = fake.computers[small.computer_ids[0]]
    alert = fake.add_alert(computer.id, "AV - Definitions", "Definitions are 9 days old")
    [polled] = (await adapter.poll_alerts(None)).events
    posted = {
        "AlertId": alert.id,
        "ComputerId": str(computer.id),
        "ClientId": computer.client_id,
        "ComputerName": computer.name,
        "MonitorName": "AV - Definitions",
        "Message": "Definitions are 9 days old",
        "Status": "Failed",
        "AlertDate": "2026-11-20T12:00:00",
    }
    [event] = adapter.parse_webhook(request(posted))
    assert event.event_id == polled.event_id
    assert (event.endpoint_id, event.client_id, event.problem) == (
        polled.endpoint_id,
        polled.client_id,
        ProblemKind.DEFINITIONS_OUTDATED,
    )
    [cleared] = adapter.parse_webhook(request({**posted, "Status": "Success"}))
    assert cleared.state == "cleared"
    assert cleared.event_id != event.event_id


def test_parse_webhook_nested_template_and_explicit_problem(adapter: ConnectWiseAutomateAdapter) -> None:
    body = {
        "Computer": {"Id": 42, "Name": "ACME-WS42"},
        "Client": {"Id": 7},
        "Monitor": {"Name": "Custom security check"},
        "State": "active",
        "Problem": "scan_overdue",
    }
    [event] = adapter.parse_webhook(request(body))
    assert (event.endpoint_id, event.client_id, event.hostname) == ("42", "7", "ACME-WS42")
    assert event.problem is ProblemKind.SCAN_OVERDUE
    assert event.occurred_at == datetime(2026, 11, 20, 12, 30, tzinfo=UTC)  # received_at


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (b"not json", "body"),
        ({"hello": "world"}, "body"),
        (
            {"ComputerId": "%computerid%", "ClientId": 7, "Status": "Failed", "MonitorName": "AV"},
            "ComputerId",
        ),
        ({"ComputerId": 1, "Status": "Failed", "MonitorName": "AV - Definitions"}, "ClientId"),
        ({"ComputerId": 1, "ClientId": 7, "MonitorName": "AV - Definitions"}, "Status"),
        ({"ComputerId": 1, "ClientId": 7, "Status": "Weird", "MonitorName": "AV - Definitions"}, "Status"),
        ({"ComputerId": 1, "ClientId": 7, "Status": "Failed", "MonitorName": "Disk Space"}, "Problem"),
        ({"ComputerId": 1, "ClientId": 7, "Status": "Failed", "Problem": "sad"}, "Problem"),
        (
            {"ComputerId": 1, "ClientId": 7, "Status": "Failed", "MonitorName": "AV", "AlertDate": "soon"},
            "AlertDate",
        ),
        ([{"ComputerId": 1, "ClientId": 7, "Status": "Failed"}], "[0].Problem"),
    ],
)
def test_parse_webhook_refuses_what_it_cannot_read(
    adapter: ConnectWiseAutomateAdapter, body: Any, field: str
) -> None:
    with pytest.raises(WebhookParseError) as caught:
        adapter.parse_webhook(request(body))
    assert caught.value.field == field


# ---------------------------------------------------------------------------------------------
# Actions
# ---------------------------------------------------------------------------------------------


async def test_run_action_schedules_the_configured_script(fake: AutomateFake, small: FleetSeed) -> None:
    adapter = make_adapter(
        fake,
        options={
            "scan_script_id": 6001,
            "scan_script_parameters": {"ScanType": "Full"},
            "definitions_script_id": 6002,
        },
    )
    computer = small.computer_ids[3]
    result = await adapter.run_action(str(computer), ActionKind.SCAN)
    assert result.accepted
    assert result.vendor_reference == f"script:6001:computer:{computer}"
    [run] = fake.script_runs
    assert (run.script_id, run.computer_id, run.parameters) == (
        6001,
        computer,
        [{"Key": "ScanType", "Value": "Full"}],
    )
    assert run.status == "Running"

    result = await adapter.run_action(str(computer), ActionKind.UPDATE_DEFINITIONS)
    assert result.accepted
    assert [r.script_id for r in fake.script_runs] == [6001, 6002]
    assert fake.call_count("POST /batch/scriptexecute") == 2


async def test_run_action_refusals(fake: AutomateFake, small: FleetSeed) -> None:
    adapter = make_adapter(fake, options={"scan_script_id": 6001, "skip_offline_agents": True})
    result = await adapter.run_action("999999", ActionKind.SCAN)
    assert not result.accepted and "999999 does not exist" in result.message

    offline = small.computer_ids[0]
    fake.set_online(offline, False)
    result = await adapter.run_action(str(offline), ActionKind.SCAN)
    assert not result.accepted and "offline" in result.message
    assert fake.script_runs == []

    with pytest.raises(UnsupportedActionError) as caught:
        await adapter.run_action(str(offline), ActionKind.UPDATE_DEFINITIONS)
    assert caught.value.field == "definitions_script_id"
    with pytest.raises(UnsupportedActionError) as caught:
        await adapter.run_action(str(offline), ActionKind.DEPLOY_AGENT)
    assert caught.value.field == "action"
    with pytest.raises(VendorRequestError) as refused:
        await adapter.run_action("ACME-WS01", ActionKind.SCAN)
    assert refused.value.field == "endpoint_id"
    assert fake.call_count("POST /batch/scriptexecute") == 2


async def test_run_action_is_not_resent_after_a_500(fake: AutomateFake, small: FleetSeed) -> None:
    adapter = make_adapter(fake, options={"scan_script_id": 6001})
    fake.fail_next(500, path="/Batch")
    with pytest.raises(TransientVendorError) as caught:
        await adapter.run_action(str(small.computer_ids[0]), ActionKind.SCAN)
    assert caught.value.maybe_applied
    assert fake.call_count("POST /batch/scriptexecute") == 1
