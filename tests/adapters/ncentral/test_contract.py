"""Every request the N-central adapter sends validates against N-central's API-Service description,
the fake's answers against its response schemas, and real notification samples parse through the
adapter (`tests/support/contracts.py` says what is checked).

`rmm/ncentral-openapi-excerpt.json` is a transcription of the operations and schemas the adapter
touches, with property types written in short form ("integer int32", "array of Device", a schema
name, "string (must not be empty)"); `shorthand_schema` turns them back into JSON Schema. Where the
transcription elides members ("...": "address/contact strings", `_extra`), the schema stays open.
Every operation sent must also be among the 104 of `rmm/ncentral-path-inventory.json`.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from functools import cache
from typing import Any

import httpx
import pytest

from adapters.base import ActionKind, ProblemKind
from adapters.errors import WebhookParseError
from adapters.ncentral import SPEC
from adapters.ncentral.adapter import NcentralAdapter
from adapters.ncentral.fake import DEFAULT_TEMPLATE, NcentralFake
from adapters.ncentral.models import NcentralCredentials, NcentralOptions
from tests.support.adapter_helpers import build_adapter, webhook_request
from tests.support.contracts import (
    ContractError,
    Description,
    Exchange,
    drive_rmm,
    no_sleep,
    openapi3,
    rmm_world,
)
from tests.support.specs import load_json, spec_path

API = "https://ncentral.example.com/api"
RECEIVED = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
SCALARS = {
    "string": {"type": "string"},
    "boolean": {"type": "boolean"},
    "integer": {"type": "integer"},
    "int32": {"type": "integer", "format": "int32"},
    "int64": {"type": "integer", "format": "int64"},
    "integer int32": {"type": "integer", "format": "int32"},
    "integer int64": {"type": "integer", "format": "int64"},
    "object": {"type": "object"},
    "array": {"type": "array"},
}


def shorthand_schema(value: Any, names: set[str]) -> dict[str, Any]:
    """One transcribed property type as JSON Schema (OpenAPI 3.0 dialect)."""
    if isinstance(value, dict):
        return {k: v for k, v in value.items() if not k.startswith("_")}
    text = str(value).strip()
    must_not_be_empty = "must not be empty" in text
    base = re.sub(r"\s*\(.*\)$", "", text, flags=re.S).strip()
    if base.startswith("array of "):
        return {"type": "array", "items": shorthand_schema(base.removeprefix("array of "), names)}
    if base in SCALARS:
        schema = dict(SCALARS[base])
    elif base in names:
        schema = {"$ref": f"#/components/schemas/{base}"}
    elif re.match(r"^\w+ ?\{", base):  # an inline model, e.g. "DeviceStatus {state: int32, status: int32}"
        schema = {"type": "object"}
    else:
        raise AssertionError(f"unreadable type in the N-central excerpt: {value!r}")
    if must_not_be_empty:
        schema["minLength"] = 1
    return schema


@cache
def document() -> dict[str, Any]:
    excerpt = load_json("rmm/ncentral-openapi-excerpt.json")
    names = set(excerpt["components"]["schemas"])
    schemas: dict[str, Any] = {}
    for name, raw in excerpt["components"]["schemas"].items():
        properties = raw.get("properties", {})
        elided = "..." in properties or "_extra" in properties
        schema: dict[str, Any] = {
            "type": "object",
            "properties": {
                key: {**shorthand_schema(prop, names), "nullable": True}
                if key not in raw.get("required", ())
                else shorthand_schema(prop, names)
                for key, prop in properties.items()
                if key not in ("...", "_extra")
            },
        }
        if raw.get("required"):
            schema["required"] = list(raw["required"])
        if elided:
            schema["additionalProperties"] = True
        schemas[name] = schema
    paths: dict[str, Any] = {}
    for template, item in excerpt["paths"].items():
        paths[template] = {}
        for method, raw in item.items():
            if method.startswith("_"):
                continue
            parameters = [
                p
                if isinstance(p, dict)
                else {"name": p.split(" ")[0], "in": "path" if "(path" in p else "query"}
                for p in raw.get("parameters", [])
            ]
            operation: dict[str, Any] = {"parameters": parameters, "responses": {}}
            body = raw.get("requestBody")
            if body:
                content = {}
                for media, entry in body.get("content", {}).items():
                    schema = entry["schema"]
                    content[media] = {"schema": {"$ref": schema} if isinstance(schema, str) else schema}
                operation["requestBody"] = {"required": bool(body.get("required")), "content": content}
            for status, answer in raw.get("responses", {}).items():
                ref = str(answer.get("schema", "")).split(" ")[0]
                if ref.startswith("#/components/schemas/") and ref.rsplit("/", 1)[-1] in names:
                    operation["responses"][status] = {
                        "content": {"application/json": {"schema": {"$ref": ref}}}
                    }
            paths[template][method] = operation
    return {
        "openapi": "3.0.1",
        "info": {"title": "N-central API-Service"},
        "paths": paths,
        "components": {"schemas": schemas},
    }


@pytest.fixture(scope="module")
def description() -> Description:
    return openapi3(document(), base_paths=[""])


def inventory() -> set[str]:
    return set(load_json("rmm/ncentral-path-inventory.json")["operations"])


async def test_every_request_the_adapter_sends_is_in_the_description(description: Description) -> None:
    log: list[Exchange] = []
    psa = rmm_world(SPEC)
    adapter = await drive_rmm(psa, log)
    await adapter.aclose()
    # With parameters configured for the scripts.
    parametrised = psa.adapter(
        sleep=no_sleep,
        options={"scan_parameters": {"CommandLine": "-full"}, "definitions_parameters": {"Force": "1"}},
    )
    first = next(iter(psa.endpoints))
    for action in sorted(SPEC.actions):
        await parametrised.run_action(first, action)
    sites = [s async for s in parametrised.list_sites()]  # type: ignore[attr-defined]
    assert sites
    await parametrised.aclose()
    # Tokens that expire within the refresh margin are refreshed (`POST /api/auth/refresh`).
    fake: Any = psa.fake  # type: ignore[attr-defined]
    fake.access_lifetime = 60
    refreshing = psa.adapter(sleep=no_sleep, options={"token_refresh_margin_seconds": 120})
    await refreshing.test_connection()
    [c async for c in refreshing.list_clients()]
    await refreshing.aclose()

    operations = description.check_all(log)
    assert any(e.path == "/api/devices" and description.check_response(e) for e in log)
    assert any(e.path.endswith("/service-monitor-status") and description.check_response(e) for e in log)
    assert operations <= inventory(), operations - inventory()
    assert operations >= {
        "POST /api/auth/authenticate",
        "POST /api/auth/refresh",
        "GET /api/devices",
        "GET /api/devices/{deviceId}",
        "GET /api/devices/{deviceId}/service-monitor-status",
        "GET /api/customers",
        "GET /api/sites",
        "POST /api/scheduled-tasks/direct",
    }


def test_the_validator_refuses_planted_bad_requests(description: Description) -> None:
    def sent(method: str, path: str, body: Any = None) -> Exchange:
        return Exchange.of(method, f"{API}{path}", body)

    good = {
        "name": "t",
        "itemId": 1,
        "taskType": "Script",
        "customerId": 100,
        "deviceId": 5,
        "credential": {"type": "LocalSystem"},
        "parameters": [
            {"name": "CommandLine", "value": "x", "type": "string", "description": "Command line"}
        ],
    }
    assert (
        description.check(sent("POST", "/scheduled-tasks/direct", good)) == "POST /api/scheduled-tasks/direct"
    )
    with pytest.raises(ContractError, match="remoteExecutionItemId"):
        description.check(sent("POST", "/scheduled-tasks/direct", {**good, "remoteExecutionItemId": 1}))
    with pytest.raises(ContractError, match="'description' is a required property"):
        description.check(
            sent(
                "POST",
                "/scheduled-tasks/direct",
                {**good, "parameters": [{"name": "A", "value": "x", "type": "string"}]},
            )
        )
    with pytest.raises(ContractError, match="'customerId' is a required property"):
        description.check(
            sent("POST", "/scheduled-tasks/direct", {k: v for k, v in good.items() if k != "customerId"})
        )
    with pytest.raises(ContractError, match="'Script2' is not one of"):
        description.check(sent("POST", "/scheduled-tasks/direct", {**good, "taskType": "Script2"}))
    with pytest.raises(ContractError, match="not a path"):
        description.check(sent("GET", "/device-list"))
    with pytest.raises(ContractError, match="query parameter 'page'"):
        description.check(sent("GET", "/devices?page=1"))
    answer = Exchange.of("GET", f"{API}/devices/5", status=200, response={"data": {"deviceId": "five"}})
    with pytest.raises(ContractError, match="deviceId: 'five' is not of type 'integer'"):
        description.check_response(answer)


# ---------------------------------------------------------------------------------------------
# What the description showed was wrong
# ---------------------------------------------------------------------------------------------


async def test_direct_task_parameters_carry_a_description_and_the_fake_requires_it() -> None:
    rmm = rmm_world(SPEC)
    fake: Any = rmm.fake  # type: ignore[attr-defined]
    adapter = rmm.adapter(sleep=no_sleep, options={"scan_parameters": {"CommandLine": "-full"}})
    await adapter.run_action(next(iter(rmm.endpoints)), ActionKind.SCAN)
    await adapter.aclose()
    (task,) = fake.tasks.values()
    assert task.body["parameters"] == [
        {"name": "CommandLine", "value": "-full", "type": "string", "description": "CommandLine"}
    ]
    # The fake refuses what N-central refuses: a parameter without its description.
    async with httpx.AsyncClient(
        transport=fake.transport(), base_url="https://ncentral.example.com"
    ) as client:
        auth = await client.post(
            "/api/auth/authenticate", headers={"Authorization": f"Bearer {fake.api_token}"}
        )
        headers = {"Authorization": f"Bearer {auth.json()['tokens']['access']['token']}"}
        body = {**task.body, "name": "again"}
        for parameters, status in (
            ([{"name": "CommandLine", "value": "-full", "type": "string"}], 400),
            ([{"name": "CommandLine", "value": "-full", "type": "string", "description": ""}], 400),
            (task.body["parameters"], 201),
        ):
            answer = await client.post(
                "/api/scheduled-tasks/direct", json={**body, "parameters": parameters}, headers=headers
            )
            assert answer.status_code == status, answer.text


def sample(name: str) -> bytes:
    return spec_path(f"rmm/samples/ncentral/{name}").read_bytes()


def adapter_over(fake: NcentralFake, **options: Any) -> NcentralAdapter:
    return build_adapter(
        SPEC,
        NcentralAdapter,
        connection_id="nc-contract",
        base_url="https://ncentral.example.com",
        credentials=NcentralCredentials(**fake.credentials()),
        options=NcentralOptions(**options),
        transport_factory=fake.transport_factory,
    )


async def listed(adapter: NcentralAdapter) -> None:
    assert [s async for page in adapter.iter_endpoint_pages(None) for s in page.statuses]


async def test_the_default_template_without_device_id_is_resolved_from_what_it_carries() -> None:
    """The real default-template notification: no DeviceID; `CustomerName` "Jasons Deli > Morrisville"."""
    fake = NcentralFake()
    deli = fake.add_customer("Jasons Deli")
    morrisville = fake.add_site(deli.id, "Morrisville")
    probe = fake.add_device(deli.id, "SLS-2189 - JD's Probe", site_id=morrisville.id)
    other = fake.add_customer("Other Co")
    fake.add_device(other.id, "SLS-2189 - JD's Probe")  # the same name elsewhere
    adapter = adapter_over(fake)
    real = sample("notification-default-template.xml")
    assert b"<DeviceID>" not in real
    # As delivered it reports CPU, which is not a security service: refused, naming the keyword.
    with pytest.raises(WebhookParseError) as caught:
        adapter.parse_webhook(webhook_request(real, RECEIVED))
    assert caught.value.field == "AffectedService"
    antivirus = real.replace(b"<AffectedService>CPU<", b"<AffectedService>AV Defender Status<")
    with pytest.raises(WebhookParseError) as caught:  # before any listing
        adapter.parse_webhook(webhook_request(antivirus, RECEIVED))
    assert caught.value.field == "DeviceName" and "run a sync" in caught.value.message
    await listed(adapter)
    [event] = adapter.parse_webhook(webhook_request(antivirus, RECEIVED))
    await adapter.aclose()
    assert (event.endpoint_id, event.client_id) == (str(probe.id), str(deli.id))
    assert event.problem is ProblemKind.PROTECTION_DISABLED and event.state == "active"
    assert event.hostname == "SLS-2189 - JD's Probe"


async def test_a_name_shared_within_one_customer_asks_for_device_id() -> None:
    fake = NcentralFake()
    deli = fake.add_customer("Jasons Deli")
    first = fake.add_device(deli.id, "WS-1")
    fake.add_device(deli.id, "WS-1")
    adapter = adapter_over(fake)
    await listed(adapter)
    body = fake.notification_xml(first.id, "AV Defender Status", "Failed", keywords=DEFAULT_TEMPLATE)
    uri = f"10.0.{deli.id % 250}.{first.id % 250}".encode()
    assert uri in body
    # The URI tells the two apart.
    [event] = adapter.parse_webhook(webhook_request(body, RECEIVED))
    assert event.endpoint_id == str(first.id)
    no_uri = body.replace(b"<DeviceURI>" + uri + b"</DeviceURI>", b"<DeviceURI/>")
    with pytest.raises(WebhookParseError) as caught:
        adapter.parse_webhook(webhook_request(no_uri, RECEIVED))
    await adapter.aclose()
    assert caught.value.field == "DeviceName" and "add DeviceID" in caught.value.message


async def test_customer_name_is_an_org_unit_path() -> None:
    fake = NcentralFake()
    deli = fake.add_customer("Jasons Deli")
    site = fake.add_site(deli.id, "Morrisville")
    device = fake.add_device(deli.id, "POS-1", site_id=site.id)
    body = fake.notification_xml(device.id, "AV Defender Status", "Failed")
    assert b"<CustomerName>Jasons Deli &gt; Morrisville</CustomerName>" in body
    adapter = adapter_over(fake)
    [_ async for _ in adapter.list_clients()]  # customers known by name, devices not listed yet
    [event] = adapter.parse_webhook(webhook_request(body, RECEIVED))
    await adapter.aclose()
    assert (event.endpoint_id, event.client_id) == (str(device.id), str(deli.id))


async def test_times_without_offset_follow_the_description_on_a_non_utc_server() -> None:
    """`lastApplianceCheckinTime` is UTC when it has no offset; `lastApplianceCheckinTimeLocal` is
    server-local; notifications' `TimeOfStateChange` is server-local."""
    fake = NcentralFake(server_timezone="America/New_York")
    acme = fake.add_customer("Acme")
    checked_in = datetime(2026, 11, 20, 11, 30, tzinfo=UTC)
    plain = fake.add_device(acme.id, "PLAIN", last_checkin=checked_in)
    local_only = fake.add_device(acme.id, "LOCAL", last_checkin=checked_in)
    fake.corrupt_device(plain.id, lastApplianceCheckinTime="2026-11-20 11:30:00")
    fake.corrupt_device(
        local_only.id, lastApplianceCheckinTime=None, lastApplianceCheckinTimeLocal="2026-11-20 06:30:00"
    )
    adapter = adapter_over(fake, server_timezone="America/New_York")
    statuses = {s.endpoint_id: s async for page in adapter.iter_endpoint_pages(None) for s in page.statuses}
    assert statuses[str(plain.id)].last_seen_at == checked_in
    assert statuses[str(local_only.id)].last_seen_at == checked_in
    # The fake renders the Local field with the server's offset, as the description shows.
    answer = fake._device_row(fake.devices[plain.id])
    assert answer["lastApplianceCheckinTimeLocal"].endswith("-05:00")
    body = fake.notification_xml(plain.id, "AV Defender Status", "Failed", at=checked_in)
    assert b"<TimeOfStateChange>2026-11-20 06:30:00</TimeOfStateChange>" in body
    [event] = adapter.parse_webhook(webhook_request(body, RECEIVED))
    await adapter.aclose()
    assert event.occurred_at == checked_in
