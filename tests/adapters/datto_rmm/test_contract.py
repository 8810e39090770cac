"""Every request the Datto RMM adapter sends validates against Datto's own OpenAPI 3.1 description
of API v2, and every answer the fake gives validates against the description's schemas, closed to
fields the description does not name (`tests/support/contracts.py` says what is checked for
requests).

Two things are not in the description and are checked here instead: the token request
(`POST /auth/oauth/token`, a form with exactly `grant_type=password`, `username`, `password` and the
`public-client:public` Basic header), and the answers' schemas, which the description attaches
only to error statuses. The description types times as `date-time` strings; Datto answers Unix
milliseconds (see `adapter.py`), so answers may carry either. Unset fields are `null`.

The description carries no response examples; its parameter examples (`2022-12-21T10:15:30Z`,
`1662554037000`) are the only real values in it, and they parse as times.
"""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from functools import cache
from typing import Any
from urllib.parse import parse_qs

import jsonschema  # type: ignore[import-untyped]
import pytest

from adapters.datto_rmm import SPEC
from adapters.datto_rmm.adapter import parse_time
from adapters.testing.harness import RmmWorld, load_harness
from tests.support.contracts import (
    ContractError,
    Description,
    Exchange,
    close_objects,
    drive_rmm,
    null_allowed,
    openapi3,
)
from tests.support.specs import load_json

API = "https://concord-api.centrastage.net/api"
PAGES = {
    "/v2/account/sites": "SitesPage",
    "/v2/account/devices": "DevicesPage",
    "/v2/account/alerts/open": "AlertsPage",
}


@cache
def document() -> dict[str, Any]:
    loaded: dict[str, Any] = load_json("datto-rmm/datto-rmm-openapi-2.0.0.json")
    return loaded


@pytest.fixture(scope="module")
def description() -> Description:
    return openapi3(document(), base_paths=["/api"])


def world() -> RmmWorld:
    started = load_harness(SPEC).start(
        clients=("Acme Dental", "Blue Harbor Logistics"), endpoints_per_client=3
    )
    assert isinstance(started, RmmWorld)
    return started


def is_token(exchange: Exchange) -> bool:
    return exchange.path == "/auth/oauth/token"


# -- a small validator for answers (the description has no 2xx schemas) --------------------------


def _times_as_millis(node: Any) -> None:
    if isinstance(node, dict):
        for key, value in list(node.items()):
            if isinstance(value, dict) and value.get("format") == "date-time":
                node[key] = {"anyOf": [value, {"type": "integer"}]}
            else:
                _times_as_millis(value)
    elif isinstance(node, list):
        for item in node:
            _times_as_millis(item)


@cache
def answer_schemas() -> dict[str, Any]:
    schemas = null_allowed(document()["components"]["schemas"])
    _times_as_millis(schemas)
    # `alertContext` is a oneOf over open subtypes (all alike to a validator): checked separately.
    schemas["Alert"]["properties"]["alertContext"] = {"type": "object", "required": ["@class"]}
    for schema in schemas.values():
        for name, prop in schema.get("properties", {}).items():
            if "$ref" in prop:
                schema["properties"][name] = {"anyOf": [prop, {"type": "null"}]}
    return close_objects(schemas)


def validate_answer(model: str, value: Any) -> None:
    root = {"$ref": f"#/components/schemas/{model}", "components": {"schemas": answer_schemas()}}
    errors = sorted(jsonschema.Draft202012Validator(root).iter_errors(value), key=lambda e: list(e.path))
    if errors:
        where = "/".join(str(p) for p in errors[0].absolute_path) or "(body)"
        raise ContractError(f"{model}: {where}: {errors[0].message}")


def validate_context(context: dict[str, Any]) -> None:
    """An alert context against its subtype's own properties (named by `@class`), closed."""
    kinds = {"antivirus_ctx": "AntivirusContext", "online_offline_status_ctx": "OnlineOfflineStatusContext"}
    schema = document()["components"]["schemas"][kinds[context["@class"]]]
    properties = {"@class": {"type": "string"}, **schema["allOf"][1]["properties"]}
    closed = {"type": "object", "properties": properties, "additionalProperties": False}
    jsonschema.validate(context, closed)


def check_token_request(exchange: Exchange) -> None:
    assert exchange.method == "POST"
    expected = "Basic " + base64.b64encode(b"public-client:public").decode()
    assert exchange.headers.get("authorization") == expected
    assert exchange.headers.get("content-type") == "application/x-www-form-urlencoded"
    form = parse_qs(exchange.raw_body.decode())
    assert sorted(form) == ["grant_type", "password", "username"]
    assert form["grant_type"] == ["password"]


# -- tests -----------------------------------------------------------------------------------------


async def test_every_request_the_adapter_sends_is_in_the_description(description: Description) -> None:
    log: list[Exchange] = []
    adapter = await drive_rmm(world(), log)
    await adapter.aclose()
    operations = description.check_all(log, skip=is_token)
    assert operations >= {
        "GET /v2/account",
        "GET /v2/account/sites",
        "GET /v2/account/devices",
        "GET /v2/account/alerts/open",
        "PUT /v2/device/{deviceUid}/quickjob",
        "POST /v2/alert/{alertUid}/resolve",
    }
    tokens = [e for e in log if is_token(e)]
    assert tokens
    for exchange in tokens:
        check_token_request(exchange)


async def test_every_answer_of_the_fake_is_in_the_description() -> None:
    log: list[Exchange] = []
    started = world()
    adapter = await drive_rmm(started, log)
    await adapter.aclose()
    checked: set[str] = set()
    for exchange in log:
        if exchange.status != 200 or is_token(exchange):
            continue
        path = exchange.path.removeprefix("/api")
        if path in PAGES:
            validate_answer(PAGES[path], exchange.response)
            checked.add(PAGES[path])
            for alert in exchange.response.get("alerts", []):
                validate_context(alert["alertContext"])
        elif path.endswith("/quickjob"):
            validate_answer("CreateQuickJobResponse", exchange.response)
            checked.add("CreateQuickJobResponse")
        elif path == "/v2/account":
            validate_answer("Account", exchange.response)
            checked.add("Account")
    assert checked == {*PAGES.values(), "CreateQuickJobResponse", "Account"}


def test_the_answer_check_refuses_a_planted_field() -> None:
    device = {"uid": "d-1", "hostname": "WS-1", "antivirus": {"antivirusProduct": "Datto AV"}}
    page = {"pageDetails": {"count": 1}, "devices": [device]}
    validate_answer("DevicesPage", page)
    with pytest.raises(ContractError, match="antivirusVersion"):
        validate_answer(
            "DevicesPage", {**page, "devices": [{**device, "antivirus": {"antivirusVersion": "1"}}]}
        )
    with pytest.raises(ContractError, match="serialNumber"):
        validate_answer("DevicesPage", {**page, "devices": [{**device, "serialNumber": "X"}]})


def test_the_validator_refuses_planted_bad_requests(description: Description) -> None:
    def sent(method: str, path: str, body: Any = None) -> Exchange:
        return Exchange.of(method, f"{API}{path}", body)

    good = {
        "jobName": "scan",
        "jobComponent": {"componentUid": "c-1", "variables": [{"name": "a", "value": "b"}]},
    }
    quick_job = "/v2/device/d-1/quickjob"
    assert description.check(sent("PUT", quick_job, good)) == "PUT /v2/device/{deviceUid}/quickjob"
    with pytest.raises(ContractError, match="componentId"):
        description.check(sent("PUT", quick_job, {**good, "jobComponent": {"componentId": "c-1"}}))
    with pytest.raises(ContractError, match="jobName"):
        description.check(sent("PUT", quick_job, {"jobComponent": good["jobComponent"]}))
    with pytest.raises(ContractError, match="not an operation"):
        description.check(sent("POST", quick_job, good))
    with pytest.raises(ContractError, match="not a path"):
        description.check(sent("GET", "/v2/account/computers"))
    with pytest.raises(ContractError, match="query parameter 'pageSize'"):
        description.check(sent("GET", "/v2/account/devices?pageSize=250"))


@pytest.mark.parametrize("value", ["2022-12-21T10:15:30Z", "2023-02-25T10:15:30Z", "1662554037000"])
def test_the_descriptions_own_example_times_parse(value: str) -> None:
    assert isinstance(parse_time(value), datetime)


def test_milliseconds_and_iso_times_agree() -> None:
    assert (
        parse_time(1662554037000)
        == parse_time("2022-09-07T12:33:57Z")
        == datetime(2022, 9, 7, 12, 33, 57, tzinfo=UTC)
    )
