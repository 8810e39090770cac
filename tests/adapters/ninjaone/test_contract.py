"""Every request the NinjaOne adapter sends validates against NinjaOne's own "Public API 2.0"
OpenAPI document (2.0.9-draft), the fake's answers against its response schemas, and the schema
examples the document carries parse through the read models (`tests/support/contracts.py` says
what is checked).

Deliberate departures from the raw document:
- The OAuth2 token route (`POST /ws/oauth/token`) is not in the document (it describes only
  `/v2/…`); it is checked here as the RFC 6749 §4.4 client-credentials form, with exactly the
  four fields the public clients send.
- The document names no `servers`; paths are taken under the instance root.
- The specs folder carries no captured NinjaOne answers (only the description): the payloads
  checked are the fake's answers (against the response schemas) and the activity the document
  describes, built from its own enums.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import pytest
import yaml  # type: ignore[import-untyped]

from adapters.ninjaone import SPEC
from adapters.ninjaone.fake.harness import NinjaOneHarness, NinjaOneWorld
from adapters.ninjaone.models import (
    ActivityRead,
    AntivirusStatusRead,
    AntivirusThreatRead,
    ComputerSystemRead,
    DeviceRead,
    OrganizationRead,
)
from adapters.testing.harness import load_harness
from tests.support.contracts import ContractError, Description, Exchange, drive_rmm, openapi3
from tests.support.specs import spec_path

API = "https://app.ninjarmm.com"
DOCUMENT = "ninjaone/ninjaone-public-api-2.0.9-draft.yaml"
TOKEN_FIELDS = {"grant_type", "client_id", "client_secret", "scope"}


@cache
def document() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(Path(spec_path(DOCUMENT)).read_text())
    return loaded


@pytest.fixture(scope="module")
def description() -> Description:
    return openapi3(document(), base_paths=[""])


def world() -> NinjaOneWorld:
    harness = load_harness(SPEC)
    assert isinstance(harness, NinjaOneHarness)
    return harness.start(
        clients=("Acme Dental", "Blue Harbor Logistics"), endpoints_per_client=3, page_size=2
    )


def is_token_request(exchange: Exchange) -> bool:
    return exchange.path == "/ws/oauth/token"


def check_token_request(exchange: Exchange) -> None:
    assert exchange.method == "POST"
    assert exchange.headers.get("content-type", "").startswith("application/x-www-form-urlencoded")
    form = parse_qs(exchange.raw_body.decode())
    assert set(form) == TOKEN_FIELDS, sorted(form)
    assert form["grant_type"] == ["client_credentials"]
    assert set(form["scope"][0].split()) <= {"monitoring", "management", "control"}
    assert "authorization" not in exchange.headers


async def test_every_request_the_adapter_sends_is_in_the_description(description: Description) -> None:
    log: list[Exchange] = []
    rmm = world()
    adapter: Any = await drive_rmm(rmm, log)
    await adapter.register_webhook("https://connector.example.com/webhooks/c-1", "s3cret")
    await adapter.aclose()

    tokens = [e for e in log if is_token_request(e)]
    assert tokens
    for exchange in tokens:
        check_token_request(exchange)
    for exchange in log:
        if not is_token_request(exchange):
            assert exchange.headers.get("authorization", "").startswith("Bearer ")
            if exchange.body is not None:
                assert exchange.headers.get("content-type", "").startswith("application/json")
    operations = description.check_all(log, skip=is_token_request)
    assert operations >= {
        "GET /v2/organizations",
        "GET /v2/devices-detailed",
        "GET /v2/queries/antivirus-status",
        "GET /v2/queries/antivirus-threats",
        "GET /v2/queries/computer-systems",
        "PUT /v2/webhook",
        "POST /v2/device/{id}/script/run",
    }
    # The reports were followed by their cursor and the lists by `after` (page size 2).
    assert any("cursor" in dict(e.query) for e in log if e.path.startswith("/v2/queries/"))
    assert any("after" in dict(e.query) for e in log if e.path == "/v2/devices-detailed")


def test_the_validator_refuses_planted_bad_requests(description: Description) -> None:
    def sent(method: str, path: str, body: Any = None) -> Exchange:
        return Exchange.of(method, f"{API}{path}", body, headers={"authorization": "Bearer t"})

    good = {
        "url": "https://x.example.com/h",
        "expand": ["device"],
        "headers": [{"name": "X-A", "value": "b"}],
    }
    assert description.check(sent("PUT", "/v2/webhook", good)) == "PUT /v2/webhook"
    with pytest.raises(ContractError, match="secret"):
        description.check(sent("PUT", "/v2/webhook", {**good, "secret": "planted"}))
    with pytest.raises(ContractError, match="hmac"):
        description.check(
            sent("PUT", "/v2/webhook", {**good, "headers": [{"name": "a", "value": "b", "hmac": 1}]})
        )
    with pytest.raises(ContractError, match="organizationIds"):
        description.check(sent("PUT", "/v2/webhook", {**good, "organizationIds": ["one"]}))
    run = {"type": "SCRIPT", "id": 7, "runAs": "system"}
    assert (
        description.check(sent("POST", "/v2/device/5/script/run", run)) == "POST /v2/device/{id}/script/run"
    )
    with pytest.raises(ContractError, match="scriptId"):
        description.check(sent("POST", "/v2/device/5/script/run", {**run, "scriptId": 7}))
    with pytest.raises(ContractError, match="type"):
        description.check(sent("POST", "/v2/device/5/script/run", {**run, "type": "POWERSHELL"}))
    with pytest.raises(ContractError, match="not a path"):
        description.check(sent("GET", "/v2/antivirus"))
    with pytest.raises(ContractError, match="not an operation"):
        description.check(sent("POST", "/v2/devices-detailed"))
    with pytest.raises(ContractError, match="query parameter 'since'"):
        description.check(sent("GET", "/v2/devices-detailed?since=1"))
    with pytest.raises(ContractError, match="query parameter 'after'"):
        description.check(sent("GET", "/v2/queries/antivirus-status?after=3"))


async def test_the_fake_answers_validate_and_parse_through_the_read_models(description: Description) -> None:
    log: list[Exchange] = []
    adapter = await drive_rmm(world(), log)
    await adapter.aclose()
    readers: dict[str, tuple[type[Any], str | None]] = {
        "/v2/organizations": (OrganizationRead, None),
        "/v2/devices-detailed": (DeviceRead, None),
        "/v2/queries/antivirus-status": (AntivirusStatusRead, "results"),
        "/v2/queries/antivirus-threats": (AntivirusThreatRead, "results"),
        "/v2/queries/computer-systems": (ComputerSystemRead, "results"),
    }
    parsed = set()
    for exchange in log:
        if exchange.path not in readers or exchange.status != 200:
            continue
        assert description.check_response(exchange), exchange.url
        reader, key = readers[exchange.path]
        rows = exchange.response[key] if key else exchange.response
        for row in rows:
            reader.model_validate(row)
            parsed.add(exchange.path)
    assert parsed >= {"/v2/organizations", "/v2/devices-detailed", "/v2/queries/antivirus-status"}


def test_an_activity_as_the_document_describes_it_parses() -> None:
    """Every property of the document's `Activity`, valued from its own enums, reads."""
    schema = document()["components"]["schemas"]["Activity"]["properties"]
    activity: dict[str, Any] = {}
    for name, prop in schema.items():
        if "enum" in prop:
            activity[name] = prop["enum"][0]
        elif prop.get("type") == "integer":
            activity[name] = 1
        elif prop.get("type") == "number":
            activity[name] = 1764000000.5
        elif prop.get("type") == "object":
            activity[name] = {}
        else:
            activity[name] = "x"
    activity.update(activityType="ANTIVIRUS", statusCode="SENTINEL_ONE_THREAT_DETECTED")
    read = ActivityRead.model_validate(activity)
    assert read.deviceId == "1" and read.seriesUid == "x"
    assert "SENTINEL_ONE_THREAT_DETECTED" in schema["statusCode"]["enum"]
    assert {"TRIGGERED", "RESET"} <= set(schema["statusCode"]["enum"])
    assert {"ANTIVIRUS", "SECURITY", "CONDITION"} <= set(schema["activityType"]["enum"])
