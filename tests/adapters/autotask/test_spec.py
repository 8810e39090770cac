"""Every request the Autotask adapter sends validates against Autotask's own Swagger document.

The scenario drives every adapter operation against the fake, which records each request as sent
on the wire. Each one must name a path and method of `swagger.json` (after its `basePath`), carry the
operation's required headers and query parameters, and have a JSON body that validates against the
operation's body schema, with `$ref`s resolved against the document's definitions.

Two deliberate departures from the raw document, both stricter or documented:
- Object schemas are validated with `additionalProperties: false`, so a misspelt field fails here
  instead of being silently ignored by Autotask's model binder.
- `Filter.value` is declared `type: object` but described as "an Integer, String, Boolean, an Array
  of Integers, or an Array of Strings"; it is validated as the description says.
- `…/{Entity}/query/next?paging=…` (the `nextPageUrl` Autotask returns) is not in the document; it
  is checked as a POST whose body validates against the `/{Entity}/query` POST body schema.
"""

from __future__ import annotations

import copy
import re
from datetime import UTC, datetime
from decimal import Decimal
from functools import cache
from typing import Any

import httpx
import jsonschema  # type: ignore[import-untyped]
import pytest

from adapters.autotask import SPEC, AutotaskAdapter
from adapters.autotask.fake import AutotaskFake, RecordedRequest
from adapters.autotask.models import AutotaskCredentials, AutotaskOptions
from adapters.base import BillingLine, ConfigurationUpdate, ConnectionContext, TicketSpec
from tests.support.specs import load_json

NOW = datetime(2025, 6, 2, 8, 0, tzinfo=UTC)


def swagger() -> dict[str, Any]:
    document: dict[str, Any] = load_json("autotask/swagger.json")
    return document


@cache
def strict_definitions() -> dict[str, Any]:
    definitions: dict[str, Any] = copy.deepcopy(swagger()["definitions"])
    definitions["Filter"]["properties"]["value"] = {
        "type": ["integer", "string", "boolean", "array", "null"],
        "items": {"type": ["integer", "string"]},
    }
    for schema in definitions.values():
        if isinstance(schema, dict) and schema.get("type") == "object" and "properties" in schema:
            schema["additionalProperties"] = False
            for prop in schema["properties"].values():
                prop.pop("readOnly", None)
    return definitions


@cache
def path_patterns() -> list[tuple[re.Pattern[str], str]]:
    patterns = []
    for template in swagger()["paths"]:
        regex = "^" + re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(template)) + "$"
        patterns.append((re.compile(regex), template))
    return patterns


def operation_for(path: str, method: str) -> tuple[str, dict[str, Any]]:
    matches = [template for pattern, template in path_patterns() if pattern.match(path)]
    assert matches, f"{path} is not a path in swagger.json"
    # Prefer literal segments over parameters (`/Tickets/entityInformation` over `/Tickets/{id}`).
    template = min(matches, key=lambda t: t.count("{"))
    item = swagger()["paths"][template]
    assert method.lower() in item, f"{method} {template} is not an operation in swagger.json"
    return template, item[method.lower()]


def validate(recorded: RecordedRequest) -> str:
    base = swagger()["basePath"]
    url = httpx.URL(recorded.url)
    assert url.scheme == "https"
    assert url.path.startswith(base + "/"), f"{url.path} is not under {base}"
    path = url.path[len(base) :]
    body_operation_path = path
    if path.endswith("/query/next"):
        assert recorded.method == "POST", "nextPageUrl must be followed with POST"
        assert url.params.get("paging")
        body_operation_path = path.removesuffix("/next")
    template, operation = operation_for(body_operation_path, recorded.method)
    parameters = operation.get("parameters", [])
    for parameter in parameters:
        if not parameter.get("required"):
            continue
        if parameter["in"] == "header":
            assert recorded.headers.get(parameter["name"].lower()), f"{template}: header {parameter['name']}"
        elif parameter["in"] == "query" and body_operation_path == path:
            assert url.params.get(parameter["name"]), f"{template}: query parameter {parameter['name']}"
    body_parameters = [p for p in parameters if p["in"] == "body"]
    if not body_parameters:
        assert recorded.body is None, f"{recorded.method} {template} takes no body"
        return f"{recorded.method} {template}"
    assert recorded.body is not None, f"{recorded.method} {template} needs a body"
    assert recorded.headers.get("content-type", "").startswith("application/json")
    schema = {**body_parameters[0]["schema"], "definitions": strict_definitions()}
    jsonschema.Draft4Validator(schema).validate(recorded.body)
    return f"{recorded.method} {template}"


def test_the_validator_catches_wrong_requests() -> None:
    def recorded(method: str, path: str, body: Any) -> RecordedRequest:
        headers = {
            "apiintegrationcode": "x",
            "username": "u",
            "secret": "s",
            "content-type": "application/json",
        }
        url = f"https://webservices14.autotask.net/ATServicesRest{path}"
        return RecordedRequest(method, url, path, path, {}, headers, body)

    assert validate(recorded("POST", "/V1.0/Tickets", {"title": "t", "companyID": 1})) == "POST /V1.0/Tickets"
    with pytest.raises(jsonschema.ValidationError):
        validate(recorded("POST", "/V1.0/Tickets", {"titel": "typo"}))
    with pytest.raises(jsonschema.ValidationError):
        validate(recorded("POST", "/V1.0/Tickets", {"companyID": "one"}))
    with pytest.raises(AssertionError):
        validate(recorded("DELETE", "/V1.0/Tickets/5", None))
    with pytest.raises(AssertionError):
        validate(recorded("POST", "/V1.0/Widgets/query", {"filter": []}))
    with pytest.raises(jsonschema.ValidationError):
        validate(
            recorded("POST", "/V1.0/Companies/query", {"filter": [{"op": "eq", "field": "x", "value": {}}]})
        )


async def test_every_request_the_adapter_sends_is_in_the_swagger() -> None:
    fake = AutotaskFake(now=lambda: NOW)
    seed = fake.seed_demo(companies=501, configuration_items_per_company=1, seats=5)
    ctx = ConnectionContext(
        connection_id="at-spec",
        base_url="https://webservices.autotask.net/ATServicesRest",
        credentials=AutotaskCredentials(**fake.credentials(), impersonation_resource_id=29682885),
        options=AutotaskOptions(configuration_product_id=seed.product_id, default_configuration_type_id=1),
        transport_factory=fake.transport_factory,
        sleep=_no_sleep,
        extra={"now": lambda: NOW},
    )
    adapter = SPEC.factory(ctx)
    assert isinstance(adapter, AutotaskAdapter)
    cid = seed.company_ids[0]

    await adapter.test_connection()
    assert len([c async for c in adapter.list_companies()]) == 501
    await adapter.list_agreements(str(cid))
    await adapter.list_ticket_options()
    spec = TicketSpec(
        marker="cn:ep-1:threat_detected",
        company_id=str(cid),
        board_id=str(seed.queue_ids["Monitoring Alert"]),
        summary="PC-1: threat detected",
        description="Trojan quarantined.",
        priority_id=str(seed.priority_ids["Critical"]),
        type_id=str(seed.issue_type_ids["Security"]),
    )
    ref = await adapter.create_ticket(spec)
    await adapter.add_note(ref.id, "Full scan started.")
    await adapter.close_ticket(ref.id, None, "Threat removed.")
    fake.timeout_next(method="POST", path="/Tickets")
    await adapter.create_ticket(spec.model_copy(update={"marker": "cn:ep-2:threat_detected"}))
    await adapter.upsert_configuration(
        ConfigurationUpdate(company_id=str(cid), device_name="C001-WS01", fields={"Threats": "1"})
    )
    await adapter.upsert_configuration(
        ConfigurationUpdate(
            company_id=str(cid),
            device_name="NEW-PC",
            serial_number="SN-NEW",
            create_if_missing=True,
            fields={"Antivirus Status": "Protected"},
        )
    )
    line = BillingLine(
        marker="bill:EDR",
        company_id=str(cid),
        agreement_id=str(seed.contract_ids[cid]),
        product_id=str(seed.service_ids["EDR"]),
        description="EDR",
        quantity=Decimal(9),
        unit_price=Decimal("6.25"),
        unit_cost=Decimal("2.50"),
    )
    await adapter.upsert_billing_line(line)
    await adapter.upsert_billing_line(line.model_copy(update={"product_id": str(seed.service_ids["AV"])}))
    await adapter.aclose()

    operations = {validate(recorded) for recorded in fake.requests}
    assert all(r.headers.get("impersonationresourceid") == "29682885" for r in fake.requests)
    assert operations >= {
        "GET /V1.0/ZoneInformation",
        "GET /V1.0/ThresholdInformation",
        "POST /V1.0/Companies/query",
        "POST /V1.0/Contracts/query",
        "GET /V1.0/Contracts/entityInformation/fields",
        "GET /V1.0/Tickets/entityInformation/fields",
        "POST /V1.0/Tickets",
        "GET /V1.0/Tickets/{id}",
        "POST /V1.0/Tickets/query",
        "POST /V1.0/Tickets/{parentId}/Notes",
        "POST /V1.0/TicketNotes/query",
        "PATCH /V1.0/Tickets",
        "POST /V1.0/ConfigurationItems/query",
        "POST /V1.0/ConfigurationItems",
        "PATCH /V1.0/ConfigurationItems",
        "POST /V1.0/ContractServices/query",
        "POST /V1.0/ContractServiceUnits/query",
        "PATCH /V1.0/Contracts/{parentId}/Services",
        "POST /V1.0/ContractServiceAdjustments",
    }
    assert any(r.template == "/Companies/query/next" for r in fake.requests)


async def _no_sleep(_seconds: float) -> None:
    return None
