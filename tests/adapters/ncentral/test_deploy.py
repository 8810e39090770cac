"""Agent deployment on N-central: the connection's `deploy_item_id` runs as a direct task
(`POST /api/scheduled-tasks/direct`), and that request is what the N-central API-Service
description (specs/rmm/ncentral-openapi-excerpt.json, `DirectSupportTask` with
`ScheduledTaskCredential`) describes: required fields present, no unknown field, integers in int32,
enumerations respected; the fake answers in the `ScheduledTaskCreateResponse` shape.

The excerpt says `int32` for `deviceId`, but N-central's device ids exceed 32 bits (526898132189 in
public clients' examples, and in the fake): integers are checked as integers, not for that width."""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest

from adapters.base import ActionKind
from adapters.errors import UnsupportedActionError
from adapters.ncentral import SPEC, NcentralAdapter
from adapters.ncentral.fake import NcentralFake
from adapters.ncentral.models import NcentralCredentials, NcentralOptions
from tests.support.adapter_helpers import build_adapter
from tests.support.recording import RecordingTransport
from tests.support.specs import load_json

EXCERPT = "rmm/ncentral-openapi-excerpt.json"
PATH = "/api/scheduled-tasks/direct"


def schemas() -> dict[str, Any]:
    found: dict[str, Any] = load_json(EXCERPT)["components"]["schemas"]
    return found


def problems(value: Any, schema_name: str, where: str = "") -> list[str]:
    """What is wrong with `value` against one of the excerpt's compact object schemas."""
    schema = schemas()[schema_name]
    if not isinstance(value, dict):
        return [f"{where or schema_name}: not an object"]
    properties: dict[str, Any] = schema.get("properties", {})
    out = [f"{where}{name}: required" for name in schema.get("required", []) if value.get(name) is None]
    out += [f"{where}{name}: not in {schema_name}" for name in value if name not in properties]
    for name, described in properties.items():
        if name in value and value[name] is not None:
            out += _check(value[name], described, f"{where}{name}")
    return out


def _check(value: Any, described: Any, where: str) -> list[str]:
    if isinstance(described, dict):
        enum = described.get("enum")
        return [] if enum is None or value in enum else [f"{where}: {value!r} not one of {enum}"]
    text = str(described)
    if text.startswith("integer"):
        ok = isinstance(value, int) and not isinstance(value, bool)
        return [] if ok else [f"{where}: {value!r} is not an integer"]
    if text.startswith("string"):
        return [] if isinstance(value, str) and value else [f"{where}: {value!r} is not a non-empty string"]
    if match := re.match(r"array of (\w+)", text):
        if not isinstance(value, list):
            return [f"{where}: not an array"]
        return [p for n, item in enumerate(value) for p in problems(item, match.group(1), f"{where}[{n}].")]
    if text in schemas():
        return problems(value, text, f"{where}.")
    return [f"{where}: the excerpt's type {text!r} is not understood by this check"]


def make_adapter(fake: NcentralFake, tap: RecordingTransport, **options: Any) -> NcentralAdapter:
    return build_adapter(
        SPEC,
        NcentralAdapter,
        connection_id="nc-deploy",
        base_url="https://ncentral.example.com",
        credentials=NcentralCredentials(**fake.credentials()),
        options=NcentralOptions(**options),
        transport_factory=tap.factory,
    )


def test_the_check_refuses_what_ncentral_does_not_describe() -> None:
    good = {
        "name": "t",
        "itemId": 2003,
        "taskType": "AutomationPolicy",
        "customerId": 100,
        "deviceId": 5,
        "credential": {"type": "LocalSystem"},
    }
    assert problems(good, "DirectSupportTask") == []
    assert problems({**good, "repositoryId": 2003}, "DirectSupportTask") == [
        "repositoryId: not in DirectSupportTask"
    ]
    assert problems({k: v for k, v in good.items() if k != "itemId"}, "DirectSupportTask") == [
        "itemId: required"
    ]
    assert problems({**good, "taskType": "Job"}, "DirectSupportTask")
    assert problems({**good, "deviceId": "5"}, "DirectSupportTask")
    assert problems({**good, "credential": {"type": "Root"}}, "DirectSupportTask")
    assert problems({**good, "parameters": [{"name": "x", "value": "y"}]}, "DirectSupportTask") == [
        "parameters[0].description: required",
        "parameters[0].type: required",
    ]


async def test_deploy_request_is_the_described_direct_task() -> None:
    fake = NcentralFake()
    seed = fake.seed_fleet(customers=1, devices=2)
    device = seed.device_ids[0]
    tap = RecordingTransport(httpx.ASGITransport(app=fake.app))
    adapter = make_adapter(fake, tap, deploy_item_id=2003, deploy_task_type="Script")
    result = await adapter.run_action(str(device), ActionKind.DEPLOY_AGENT)
    await adapter.aclose()
    assert result.accepted and (result.vendor_reference or "").startswith("task:")
    (sent,) = [s for s in tap.sent if s.method == "POST" and s.path == PATH]
    assert "post" in load_json(EXCERPT)["paths"][PATH]
    assert problems(sent.body, "DirectSupportTask") == []
    assert (sent.body["itemId"], sent.body["taskType"], sent.body["deviceId"]) == (2003, "Script", device)
    (task,) = fake.tasks.values()
    assert task.body["itemId"] == 2003


async def test_deploy_without_a_configured_item_names_the_option() -> None:
    fake = NcentralFake()
    tap = RecordingTransport(httpx.ASGITransport(app=fake.app))
    adapter = make_adapter(fake, tap)
    with pytest.raises(UnsupportedActionError) as caught:
        await adapter.run_action("5", ActionKind.DEPLOY_AGENT)
    assert caught.value.field == "deploy_item_id"
    assert tap.sent == []
    await adapter.aclose()
