"""Agent deployment on ConnectWise Automate: the connection's `deploy_script_id` runs through
`POST /Batch/ScriptExecute`, and that request is what Automate's own OpenAPI (specs/rmm/automate/
Batch.json, `ScheduleScriptBatchRequest`, every object closed to unknown properties) describes; the
fake's answer validates against `ScheduleScriptBatchResponse`."""

from __future__ import annotations

import copy
from typing import Any

import httpx
import jsonschema  # type: ignore[import-untyped]
import pytest

from adapters.base import ActionKind
from adapters.connectwise_automate import SPEC, ConnectWiseAutomateAdapter
from adapters.connectwise_automate.fake import AutomateFake
from adapters.connectwise_automate.models import AutomateCredentials, AutomateOptions
from adapters.errors import UnsupportedActionError
from tests.support.adapter_helpers import build_adapter
from tests.support.recording import RecordingTransport
from tests.support.specs import load_json

BATCH = "rmm/automate/Batch.json"
PATH = "/api/v1/Batch/ScriptExecute"
REQUEST = "Automate.Api.Domain.Contracts.BatchScripts.ScheduleScriptBatchRequest"
RESPONSE = "Automate.Api.Domain.Contracts.BatchScripts.ScheduleScriptBatchResponse"


def closed(document: dict[str, Any]) -> dict[str, Any]:
    """The document with every object schema refusing unknown properties."""
    document = copy.deepcopy(document)
    for schema in document["components"]["schemas"].values():
        if schema.get("type") == "object" or "properties" in schema:
            schema.setdefault("additionalProperties", False)
    return document


def validator(name: str) -> jsonschema.Draft7Validator:
    document = closed(load_json(BATCH))
    schema = {"$ref": f"#/components/schemas/{name}", "components": document["components"]}
    return jsonschema.Draft7Validator(schema)


def make_adapter(fake: AutomateFake, tap: RecordingTransport, **options: Any) -> ConnectWiseAutomateAdapter:
    return build_adapter(
        SPEC,
        ConnectWiseAutomateAdapter,
        connection_id="cwa-deploy",
        base_url="https://cwa.example.com",
        credentials=AutomateCredentials(**fake.credentials()),
        options=AutomateOptions(**options),
        transport_factory=tap.factory,
    )


def test_the_validator_refuses_what_automate_does_not_describe() -> None:
    check = validator(REQUEST)
    good = {"EntityType": "Computer", "EntityIds": [5], "ScriptId": 6003}
    check.validate(good)
    for bad in (
        {**good, "ScriptID": 6003},  # unknown property
        {**good, "EntityType": "Machine"},  # not in the enum
        {**good, "EntityIds": ["5"]},  # ids are integers
        {**good, "Parameters": [{"Key": "a", "Value": "b", "Type": "x"}]},
    ):
        with pytest.raises(jsonschema.ValidationError):
            check.validate(bad)


async def test_deploy_request_is_the_described_script_execute() -> None:
    fake = AutomateFake()
    client = fake.add_client("Acme")
    location = fake.add_location(client.id)
    computer = fake.add_computer(location.id, "ACME-WS01", product=None)
    tap = RecordingTransport(httpx.ASGITransport(app=fake.app))
    adapter = make_adapter(
        fake,
        tap,
        deploy_script_id=6003,
        deploy_script_parameters={"InstallerUrl": "https://msp.example/av.msi"},
    )
    result = await adapter.run_action(str(computer.id), ActionKind.DEPLOY_AGENT)
    await adapter.aclose()
    assert result.accepted and result.vendor_reference == f"script:6003:computer:{computer.id}"
    (sent,) = [s for s in tap.sent if s.method == "POST" and s.path.lower() == "/cwa" + PATH.lower()]
    assert sent.path == "/cwa" + PATH and "post" in load_json(BATCH)["paths"][PATH]
    validator(REQUEST).validate(sent.body)
    assert sent.body["ScriptId"] == 6003 and sent.body["EntityIds"] == [computer.id]
    assert sent.body["Parameters"] == [{"Key": "InstallerUrl", "Value": "https://msp.example/av.msi"}]
    assert [(r.script_id, r.computer_id) for r in fake.script_runs] == [(6003, computer.id)]
    assert fake.scripts[6003]  # the script the fake runs is one it has


async def test_fake_script_execute_answer_is_the_described_response() -> None:
    fake = AutomateFake()
    location = fake.add_location(fake.add_client("Acme").id)
    computer = fake.add_computer(location.id, "ACME-WS01", product=None)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=fake.app), base_url="https://cwa"
    ) as client:
        token = (
            await client.post(
                "/cwa/api/v1/apitoken",
                json={"UserName": fake.credentials()["username"], "Password": fake.credentials()["password"]},
                headers={"ClientId": fake.credentials()["client_id"]},
            )
        ).json()["AccessToken"]
        answer = await client.post(
            "/cwa" + PATH,
            json={"EntityType": "Computer", "EntityIds": [computer.id, 999999], "ScriptId": 6003},
            headers={"Authorization": f"Bearer {token}", "ClientId": fake.credentials()["client_id"]},
        )
    assert answer.status_code == 200, answer.text
    validator(RESPONSE).validate(answer.json())


async def test_deploy_without_a_configured_script_names_the_option() -> None:
    fake = AutomateFake()
    tap = RecordingTransport(httpx.ASGITransport(app=fake.app))
    adapter = make_adapter(fake, tap)
    with pytest.raises(UnsupportedActionError) as caught:
        await adapter.run_action("5", ActionKind.DEPLOY_AGENT)
    assert caught.value.field == "deploy_script_id"
    assert tap.sent == []
    await adapter.aclose()
