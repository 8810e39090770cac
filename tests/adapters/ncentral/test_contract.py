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
from functools import cache
from typing import Any

import httpx
import pytest

from adapters.ncentral import SPEC
from adapters.testing.harness import RmmWorld, load_harness
from tests.support.contracts import ContractError, Description, Exchange, drive_rmm, no_sleep, openapi3
from tests.support.specs import load_json

API = "https://ncentral.example.com/api"
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


def world() -> RmmWorld:
    started = load_harness(SPEC).start(
        clients=("Acme Dental", "Blue Harbor Logistics"), endpoints_per_client=3
    )
    assert isinstance(started, RmmWorld)
    return started


async def test_every_request_the_adapter_sends_is_in_the_description(description: Description) -> None:
    log: list[Exchange] = []
    psa = world()
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

    operations = description.check_all(log)
    assert operations <= inventory(), operations - inventory()
    assert operations >= {
        "POST /api/auth/authenticate",
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


# ---------------------------------------------------------------------------------------------
# What the description showed was wrong
# ---------------------------------------------------------------------------------------------


async def test_direct_task_parameters_carry_a_description_and_the_fake_requires_it() -> None:
    rmm = world()
    fake: Any = rmm.fake  # type: ignore[attr-defined]
    adapter = rmm.adapter(sleep=no_sleep, options={"scan_parameters": {"CommandLine": "-full"}})
    await adapter.run_action(next(iter(rmm.endpoints)), sorted(SPEC.actions)[0])
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
