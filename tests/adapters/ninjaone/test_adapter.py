"""NinjaOne specifics against the stateful fake: token reuse and renewal, the billed product among
several, definitions and threats, serials, the webhook header and `seriesUid`, the webhook
registration, script actions and what the fake refuses."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from adapters.base import ActionKind, EndpointStatus, ProblemKind, WebhookRequest, normal_macs
from adapters.errors import CredentialsError, UnsupportedActionError, WebhookParseError
from adapters.ninjaone.adapter import NinjaOneAdapter
from adapters.ninjaone.fake.harness import PRODUCT, WEBHOOK_SECRET, NinjaOneHarness, NinjaOneWorld
from connector.fleet.domain import Thresholds, findings
from tests.support.contracts import no_sleep

pytestmark = pytest.mark.asyncio


def world(**kwargs: Any) -> NinjaOneWorld:
    return NinjaOneHarness().start(
        clients=("Acme Dental", "Blue Harbor Logistics"), endpoints_per_client=3, **kwargs
    )


def adapter_of(rmm: NinjaOneWorld, **options: Any) -> NinjaOneAdapter:
    built = rmm.adapter(sleep=no_sleep, options=options)
    assert isinstance(built, NinjaOneAdapter)
    return built


async def statuses(adapter: NinjaOneAdapter, since: datetime | None = None) -> dict[str, EndpointStatus]:
    return {s.endpoint_id: s async for page in adapter.iter_endpoint_pages(since) for s in page.statuses}


def problems(status: EndpointStatus) -> set[ProblemKind]:
    return {f.kind for f in findings(status, Thresholds(), datetime.now(UTC)) if f.present}


def delivery(body: dict[str, Any], headers: dict[str, str] | None = None) -> WebhookRequest:
    return WebhookRequest(
        body=json.dumps(body).encode(), headers=headers or {}, received_at=datetime.now(UTC)
    )


async def test_one_token_serves_every_call_and_a_401_renews_it() -> None:
    rmm = world(page_size=2)
    adapter = adapter_of(rmm)
    assert len([c async for c in adapter.list_clients()]) == 2
    assert len(await statuses(adapter)) == 6
    assert adapter.token_requests == 1
    rmm.fake.expire_tokens()
    assert len(await statuses(adapter)) == 6
    assert adapter.token_requests == 2
    await adapter.aclose()


async def test_refused_client_secret_is_a_credentials_error_without_the_secret() -> None:
    rmm = world()
    adapter = rmm.adapter(sleep=no_sleep, credentials={"client_secret": "wrong-secret-value"})
    with pytest.raises(CredentialsError) as caught:
        await adapter.test_connection()
    assert "wrong-secret-value" not in str(caught.value)
    assert caught.value.field == "credentials"
    await adapter.aclose()


async def test_a_scope_the_client_was_not_granted_is_refused() -> None:
    rmm = world()
    rmm.fake.granted_scopes = frozenset({"monitoring"})
    adapter = adapter_of(rmm)
    with pytest.raises(CredentialsError, match="scope"):
        await adapter.test_connection()
    await adapter.aclose()
    reader = adapter_of(rmm, scope="monitoring")
    assert len(await statuses(reader)) == 6
    first = next(iter(rmm.endpoints))
    with pytest.raises(CredentialsError, match="control"):
        await reader.run_action(first, ActionKind.SCAN)
    assert rmm.fake.script_runs == []
    await reader.aclose()


async def test_status_serial_and_presence_are_read() -> None:
    rmm = world()
    adapter = adapter_of(rmm)
    first = next(iter(rmm.endpoints))
    rmm.fake.devices[int(first)].offline = True
    status = (await statuses(adapter))[first]
    device = rmm.fake.devices[int(first)]
    assert status.product == PRODUCT and status.protection_enabled is True
    assert status.serial_number == device.serial
    assert device.macs and status.mac_addresses == normal_macs(device.macs)
    assert status.hostname == device.name and status.client_id == str(device.organization_id)
    assert status.online is False
    assert status.last_seen_at == device.last_contact
    assert status.active_threats == 0
    assert status.definitions_date is not None and problems(status) == set()
    await adapter.aclose()


async def test_the_billed_product_is_the_row_used_among_several() -> None:
    rmm = world()
    first, second, third = list(rmm.endpoints)[:3]
    rmm.fake.set_product(int(first), "SentinelOne", state="OFF")
    rmm.fake.remove_products(int(second))
    rmm.fake.set_product(int(second), "Malwarebytes")
    rmm.fake.remove_products(int(third))
    adapter = adapter_of(rmm, billed_product="sentinelone")
    read = await statuses(adapter)
    assert read[first].product == "SentinelOne" and read[first].protection_enabled is False
    assert problems(read[first]) == {ProblemKind.PROTECTION_DISABLED}
    # Another product reported but not the billed one: unprotected by what the MSP bills.
    assert read[second].product is None and read[second].protection_enabled is False
    assert problems(read[second]) == {ProblemKind.NOT_PROTECTED}
    # No antivirus data at all: unknown, not unprotected.
    assert read[third].product is None and read[third].protection_enabled is None
    await adapter.aclose()
    unbilled = adapter_of(rmm, billed_product=None)
    assert (await statuses(unbilled))[first].product == PRODUCT  # the one that is on
    await unbilled.aclose()


async def test_outdated_definitions_and_active_threats() -> None:
    rmm = world()
    first, second = list(rmm.endpoints)[:2]
    rmm.put_in_trouble(first, ProblemKind.DEFINITIONS_OUTDATED)
    rmm.put_in_trouble(second, ProblemKind.THREAT_DETECTED)
    rmm.fake.add_threat(int(second))
    adapter = adapter_of(rmm)
    read = await statuses(adapter)
    assert problems(read[first]) == {ProblemKind.DEFINITIONS_OUTDATED}
    assert read[second].active_threats == 2
    rmm.fake.resolve_threats(int(second))
    assert (await statuses(adapter))[second].active_threats == 0
    await adapter.aclose()


async def test_incremental_reads_see_report_changes_and_check_ins_only() -> None:
    rmm = world()
    first, second, third = list(rmm.endpoints)[:3]
    cursor = rmm.cursor()
    rmm.touch([first])
    rmm.put_in_trouble(second)
    rmm.fake.add_threat(int(third), at=rmm.changed_at)
    adapter = adapter_of(rmm)
    assert set(await statuses(adapter, cursor)) == {first, second, third}
    await adapter.aclose()


async def test_the_webhook_header_authenticates_deliveries() -> None:
    rmm = world()
    adapter = adapter_of(rmm)
    alert = rmm.native_alert(next(iter(rmm.endpoints)), active=True)
    assert alert is not None
    assert adapter.verify_webhook(alert.request, WEBHOOK_SECRET) is True
    assert adapter.verify_webhook(alert.request, "another-secret") is False
    forged = alert.request.model_copy(update={"headers": {"X-Connector-Token": ""}})
    assert adapter.verify_webhook(forged, WEBHOOK_SECRET) is False
    # Without the header (a canonical alert posted with ?token=), the core checks.
    assert adapter.verify_webhook(alert.request.model_copy(update={"headers": {}}), WEBHOOK_SECRET) is None
    custom = adapter_of(rmm, webhook_header="X-Ninja-Key")
    assert custom.verify_webhook(alert.request, WEBHOOK_SECRET) is None
    await adapter.aclose()
    await custom.aclose()


async def test_series_uid_ties_trigger_and_reset_and_deduplicates_redeliveries() -> None:
    rmm = world()
    adapter = adapter_of(rmm)
    endpoint = next(iter(rmm.endpoints))
    trigger = rmm.native_alert(endpoint, active=True)
    again = rmm.native_alert(endpoint, active=True)
    reset = rmm.native_alert(endpoint, active=False)
    assert trigger and again and reset
    [first] = adapter.parse_webhook(trigger.request)
    [repeat] = adapter.parse_webhook(again.request)
    [cleared] = adapter.parse_webhook(reset.request)
    assert first.event_id == repeat.event_id != cleared.event_id
    assert cleared.state == "cleared" and first.state == "active"
    assert first.problem is cleared.problem is ProblemKind.THREAT_DETECTED
    assert first.client_id == rmm.endpoints[endpoint].client_id
    await adapter.aclose()


@pytest.mark.parametrize(
    ("kind", "code", "name", "expected"),
    [
        ("ANTIVIRUS", "SENTINEL_ONE_THREAT_DETECTED", "", (ProblemKind.THREAT_DETECTED, "active")),
        ("SECURITY", "GRAVITYZONE_THREAT_QUARANTINED", "", (ProblemKind.THREAT_DETECTED, "cleared")),
        ("ANTIVIRUS", "BITDEFENDER_DISABLED", "", (ProblemKind.PROTECTION_DISABLED, "active")),
        ("ANTIVIRUS", "VIPREAV_UNINSTALLED", "", (ProblemKind.NOT_PROTECTED, "active")),
        (
            "CONDITION",
            "TRIGGERED",
            "Antivirus definitions out of date",
            (ProblemKind.DEFINITIONS_OUTDATED, "active"),
        ),
        ("CONDITION", "RESET", "Device offline", (ProblemKind.AGENT_OFFLINE, "cleared")),
        ("CONDITION", "TRIGGERED", "Disk space low", None),
        ("ANTIVIRUS", "BITDEFENDER_SCAN_STARTED", "", None),
        ("PATCH_MANAGEMENT", "PATCH_MANAGEMENT_SCAN_COMPLETED", "", None),
    ],
)
async def test_activity_mapping(
    kind: str, code: str, name: str, expected: tuple[ProblemKind, str] | None
) -> None:
    rmm = world()
    adapter = adapter_of(rmm)
    body = rmm.fake.activity(
        int(next(iter(rmm.endpoints))), activity_type=kind, status_code=code, source_name=name
    )
    events = adapter.parse_webhook(delivery(body))
    assert [(e.problem, e.state) for e in events] == ([expected] if expected else [])
    await adapter.aclose()


async def test_a_delivery_without_the_device_organization_names_the_field() -> None:
    rmm = world()
    adapter = adapter_of(rmm)
    body = rmm.fake.activity(
        int(next(iter(rmm.endpoints))), activity_type="ANTIVIRUS", status_code="WEBROOT_THREAT_DETECTED"
    )
    del body["device"]
    with pytest.raises(WebhookParseError) as caught:
        adapter.parse_webhook(delivery(body))
    assert caught.value.field == "device.organizationId"
    with pytest.raises(WebhookParseError) as caught:
        adapter.parse_webhook(delivery({"id": 1}))
    assert caught.value.field == "activityType"
    await adapter.aclose()


async def test_webhook_registration_carries_the_secret_header_and_expands_the_device() -> None:
    rmm = world()
    adapter = adapter_of(rmm)
    await adapter.register_webhook("https://connector.example.com/webhooks/abc", "the-secret")
    config = rmm.fake.webhook
    assert config is not None
    assert config["url"] == "https://connector.example.com/webhooks/abc"
    assert config["headers"] == [{"name": "X-Connector-Token", "value": "the-secret"}]
    assert config["expand"] == ["device"]
    assert set(config["activities"]) == {"ANTIVIRUS", "SECURITY", "CONDITION"}
    rmm.fake.system_administrator = False
    with pytest.raises(CredentialsError, match="system administrators"):
        await adapter.register_webhook("https://connector.example.com/webhooks/abc", "the-secret")
    await adapter.aclose()


async def test_actions_run_the_configured_scripts_and_refuse_unset_ones() -> None:
    rmm = world()
    endpoint = next(iter(rmm.endpoints))
    adapter = adapter_of(rmm, deploy_script_id=None, scan_script_parameters="-Full")
    result = await adapter.run_action(endpoint, ActionKind.SCAN)
    assert result.accepted and result.vendor_reference == f"script:71:device:{endpoint}"
    assert rmm.fake.script_runs[0].parameters == "-Full" and rmm.fake.script_runs[0].run_as == "system"
    with pytest.raises(UnsupportedActionError) as caught:
        await adapter.run_action(endpoint, ActionKind.DEPLOY_AGENT)
    assert caught.value.field == "deploy_script_id"
    gone = await adapter.run_action("999999", ActionKind.SCAN)
    assert gone.accepted is False and "not found" in gone.message
    assert len(rmm.fake.script_runs) == 1
    await adapter.aclose()


async def test_the_fake_refuses_what_ninjaone_refuses() -> None:
    rmm = world()
    async with httpx.AsyncClient(transport=rmm.transport(), base_url="https://app.ninjarmm.com") as client:
        assert (await client.get("/v2/devices-detailed")).status_code == 401
        json_token = await client.post("/ws/oauth/token", json={"grant_type": "client_credentials"})
        assert json_token.status_code == 400 and json_token.json()["error"] == "invalid_request"
        form = {**rmm.fake.credentials(), "grant_type": "password", "scope": "monitoring"}
        assert (await client.post("/ws/oauth/token", data=form)).json()["error"] == "unsupported_grant_type"
        form["grant_type"] = "client_credentials"
        token = (await client.post("/ws/oauth/token", data=form)).json()
        assert token["expires_in"] == 3600
        auth = {"Authorization": f"Bearer {token['access_token']}"}
        assert (
            await client.get("/v2/queries/antivirus-status?cursor=made-up", headers=auth)
        ).status_code == 400
        assert (await client.get("/v2/devices-detailed?df=org%3D1", headers=auth)).status_code == 400
        webhook = await client.put("/v2/webhook", json={"url": "https://x.example.com"}, headers=auth)
        assert webhook.status_code == 403  # the token has monitoring scope only
        rmm.fake.advance_clock(timedelta(hours=2).total_seconds())
        assert (await client.get("/v2/organizations", headers=auth)).status_code == 401
