"""Every request the Huntress adapter sends validates against Huntress's own Swagger 2.0 "Huntress
API Reference" (`huntress/huntress-rest-api-v1.swagger.json`), the fake's answers against its
response schemas, the fake's webhook deliveries against the "Huntress Webhooks" OpenAPI 3.1
document, and the examples both documents carry parse through the adapter's models and normalizer
(`tests/support/contracts.py` says what `Description.check` covers).

Beyond `Description.check`, each query value is checked against its parameter's declaration
(`type: integer`, `minimum`/`maximum`, `enum`), and every request must carry the document's Basic
credentials (`securityDefinitions.basic_auth`).

Deliberate departures from the raw document (`adjust`):
- `Organization` and `OrganizationWithActualProductUsages` list `required` fields that are not among
  their properties (`microsoft_365_tenant_id`, `microsoft_365_users_count`, `notify_emails`); the
  requirement is dropped, the fake does not invent those fields.
- `actual_usages` is typed `string` while its example (an object by product) is what the API
  serves; it is checked as an object.
- Properties typed `Object` / `String` (not JSON Schema types) are taken as any value / string.
- The specs folder carries no captured Huntress answers: the payloads parsed are the documents' own
  `example` values (every property of a definition) and the fake's answers.
"""

from __future__ import annotations

import base64
import json
from functools import cache
from typing import Any

import jsonschema  # type: ignore[import-untyped]
import pytest

from adapters.base import WebhookRequest
from adapters.huntress import SPEC
from adapters.huntress.adapter import HuntressAdapter
from adapters.huntress.fake.harness import HuntressHarness, HuntressWorld
from adapters.huntress.models import (
    AgentRead,
    IncidentReportEventRead,
    IncidentReportRead,
    OrganizationRead,
    OrganizationUsageRead,
)
from adapters.testing.harness import SecurityOperation, load_harness
from tests.support.contracts import ContractError, Description, Exchange, no_sleep, record_world, swagger2
from tests.support.specs import load_json

API = "https://api.huntress.io"
DOCUMENT = "huntress/huntress-rest-api-v1.swagger.json"
WEBHOOKS = "huntress/huntress-webhooks.openapi.json"


def adjust(definitions: dict[str, Any]) -> None:
    for schema in definitions.values():
        properties = schema.get("properties", {})
        if "required" in schema:
            schema["required"] = [name for name in schema["required"] if name in properties]
            if not schema["required"]:
                del schema["required"]
        for prop in properties.values():
            if prop.get("type") == "Object":
                del prop["type"]
            elif prop.get("type") == "String":
                prop["type"] = "string"
    usages = definitions["OrganizationWithActualProductUsages"]["properties"]["actual_usages"]
    usages["type"] = "object"


@cache
def document() -> dict[str, Any]:
    loaded: dict[str, Any] = load_json(DOCUMENT)
    return loaded


@pytest.fixture(scope="module")
def description() -> Description:
    return swagger2(document(), adjust=adjust)


def world(page_size: int | None = 2) -> HuntressWorld:
    harness = load_harness(SPEC)
    assert isinstance(harness, HuntressHarness)
    return harness.start(
        customers=("Acme Dental", "Blue Harbor Logistics"), agents_per_customer=3, page_size=page_size
    )


def parameters(method: str, template: str) -> dict[str, dict[str, Any]]:
    operation = document()["paths"][template][method.lower()]
    return {p["name"]: p for p in operation.get("parameters", []) if p.get("in") == "query"}


def check_query_values(description: Description, exchange: Exchange) -> None:
    """Each query value fits its parameter's declared type, range and enum."""
    operation = description.operation(exchange.method, exchange.path)
    declared = parameters(operation.method, operation.template)
    for name, value in exchange.query:
        spec = declared[name]
        if spec.get("type") == "integer":
            try:
                number = int(value)
            except ValueError:
                raise ContractError(f"{operation.name}: {name}={value!r} is not an integer") from None
            if "minimum" in spec and number < spec["minimum"]:
                raise ContractError(f"{operation.name}: {name}={number} is below {spec['minimum']}")
            if "maximum" in spec and number > spec["maximum"]:
                raise ContractError(f"{operation.name}: {name}={number} is above {spec['maximum']}")
        if "enum" in spec and value not in spec["enum"]:
            raise ContractError(f"{operation.name}: {name}={value!r} is not one of {spec['enum']}")


def check_auth(world_: HuntressWorld, exchange: Exchange) -> None:
    credentials = world_.connection.credentials
    wanted = base64.b64encode(f"{credentials['api_key']}:{credentials['api_secret']}".encode()).decode()
    assert exchange.headers.get("authorization") == f"Basic {wanted}", exchange.url


async def drive(world_: HuntressWorld, log: list[Exchange]) -> None:
    """Every public operation of the adapter, both listing modes and both licence modes."""
    record_world(world_, log)
    adapter = world_.adapter(sleep=no_sleep)
    await adapter.test_connection()
    assert [c async for c in adapter.list_customers()]
    assert [a async for page in adapter.iter_agent_pages(None) for a in page.agents]
    cursor = world_.cursor()
    first, second = list(world_.agents)[:2]
    world_.touch([first])
    threat = world_.raise_threat(second)
    old = world_.raise_threat(first)
    world_.resolve_threat(old)
    assert [a async for page in adapter.iter_agent_pages(cursor) for a in page.agents]
    assert (await adapter.list_threats(None)).threats
    assert (await adapter.list_threats(cursor)).threats
    assert await adapter.licence_use()
    await adapter.aclose()
    counting = world_.adapter(sleep=no_sleep, options={"licence_counts": "agents"})
    assert await counting.licence_use()
    await counting.aclose()
    assert threat


async def test_every_request_the_adapter_sends_is_in_the_description(description: Description) -> None:
    log: list[Exchange] = []
    huntress = world()
    await drive(huntress, log)
    for exchange in log:
        assert exchange.method == "GET" and exchange.body is None and not exchange.raw_body
        assert exchange.url.startswith(API + "/v1/")
        check_auth(huntress, exchange)
        check_query_values(description, exchange)
    operations = description.check_all(log)
    assert operations == {
        "GET /v1/account",
        "GET /v1/organizations",
        "GET /v1/organizations/{id}",
        "GET /v1/agents",
        "GET /v1/incident_reports",
    }
    # Pages were followed by their token (page size 2), and the changed-since read sorted by time.
    assert any("page_token" in dict(e.query) for e in log if e.path == "/v1/agents")
    assert any(dict(e.query).get("sort_field") == "updated_at" for e in log if e.path == "/v1/agents")
    statuses = {dict(e.query).get("status") for e in log if e.path == "/v1/incident_reports"}
    assert statuses == {"sent", "auto_remediating", "closed", "dismissed", "partner_dismissed"}
    assert all(e.status == 200 for e in log)


def test_the_validator_refuses_planted_bad_requests(description: Description) -> None:
    def sent(method: str, path: str, body: Any = None) -> Exchange:
        return Exchange.of(method, f"{API}{path}", body, headers={"authorization": "Basic eDp5"})

    good = sent("GET", "/v1/agents?limit=500&sort_field=updated_at&sort_direction=desc&page_token=abc")
    assert description.check(good) == "GET /v1/agents"
    check_query_values(description, good)
    # One unknown field in a request fails: a query parameter the operation does not declare …
    with pytest.raises(ContractError, match="query parameter 'updated_since'"):
        description.check(sent("GET", "/v1/agents?limit=10&updated_since=2026-01-01T00:00:00Z"))
    # … and a body field the schema does not have (the adapter writes nothing; PATCH proves the check).
    patch = {"tamper_protection_configured": True}
    assert description.check(sent("PATCH", "/v1/agents/7", patch)) == "PATCH /v1/agents/{id}"
    with pytest.raises(ContractError, match="isolated"):
        description.check(sent("PATCH", "/v1/agents/7", {**patch, "isolated": True}))
    with pytest.raises(ContractError, match="not a path"):
        description.check(sent("GET", "/v1/threats"))
    with pytest.raises(ContractError, match="not an operation"):
        description.check(sent("POST", "/v1/agents"))
    with pytest.raises(ContractError, match="query parameter 'status'"):
        description.check(sent("GET", "/v1/agents?status=online"))
    with pytest.raises(ContractError, match="above 500"):
        check_query_values(description, sent("GET", "/v1/agents?limit=501"))
    with pytest.raises(ContractError, match="not one of"):
        check_query_values(description, sent("GET", "/v1/incident_reports?status=open"))
    with pytest.raises(ContractError, match="not one of"):
        check_query_values(description, sent("GET", "/v1/agents?sort_field=last_callback_at"))


def test_the_document_states_what_the_adapter_relies_on() -> None:
    doc = document()
    assert doc["swagger"] == "2.0" and doc["host"] == "api.huntress.io" and doc["schemes"] == ["https"]
    assert doc["securityDefinitions"]["basic_auth"]["type"] == "basic"
    text = doc["info"]["description"]
    assert "60 requests per minute, on a sliding window" in text
    assert "Authorization: Basic" in text and "page_token" in text and "next_page_token" in text
    limit = parameters("GET", "/v1/agents")["limit"]
    assert (limit["minimum"], limit["maximum"], limit["default"]) == (1, 500, 10)
    assert parameters("GET", "/v1/agents")["sort_field"]["enum"] == ["id", "created_at", "updated_at"]
    statuses = parameters("GET", "/v1/incident_reports")["status"]["enum"]
    assert set(statuses) == {
        "sent",
        "closed",
        "dismissed",
        "auto_remediating",
        "deleting",
        "partner_dismissed",
    }


def example_of(name: str) -> dict[str, Any]:
    """Every property of a definition at its document `example`."""
    properties = document()["definitions"][name]["properties"]
    return {field: prop["example"] for field, prop in properties.items() if "example" in prop}


def adapter() -> HuntressAdapter:
    built = world().adapter(sleep=no_sleep)
    assert isinstance(built, HuntressAdapter)
    return built


async def test_the_documents_examples_parse_through_the_models_and_normalizer() -> None:
    huntress = adapter()
    agent = AgentRead.model_validate(example_of("Agent"))
    status = huntress.agent_status(agent, "Acme Inc.")
    assert (status.agent_id, status.customer_id, status.hostname) == ("1", "7", "laptop01")
    assert status.serial_number == "wtIe1bvDbh"
    assert status.mac_addresses == ("7C:A7:B0:16:2F:78",)
    assert status.os_name == "Windows 8 Pro" and status.device_type == "workstation"
    assert status.agent_version == "0.11.3"
    assert status.protection_enabled is True  # defender_status "Healthy"
    assert status.definitions_up_to_date is True  # defender_substatus "Up to date"
    assert status.isolated is False  # firewall_status "Disabled"
    assert status.last_seen_at is not None and status.last_seen_at.isoformat() == "2022-03-01T20:05:10+00:00"
    assert status.online is False  # last called back in 2022
    assert status.definitions_date is None and status.last_scan_at is None and status.active_threats is None

    org = OrganizationRead.model_validate(example_of("Organization"))
    assert (org.id, org.name, org.key, org.agents_count) == ("1", "Acme Inc.", "test1", 42)
    detail = OrganizationUsageRead.model_validate(example_of("OrganizationWithActualProductUsages"))
    assert detail.actual_usages is not None and detail.actual_usages.edr is not None
    assert detail.actual_usages.edr.billable_agents_count == 42
    assert sum(i.billable_identities_count or 0 for i in detail.actual_usages.itdr or []) == 150
    assert detail.actual_usages.sat is not None and detail.actual_usages.sat.learners_count == 25

    report = IncidentReportRead.model_validate(example_of("IncidentReport"))
    threat = huntress.console_threat(report)
    assert threat is not None
    assert (threat.threat_id, threat.customer_id, threat.agent_id) == ("1", "4", "12")
    assert threat.name == "LOW - Incident on laptop01 (Test)" and threat.hostname == "laptop01"
    assert threat.classification == "footholds" and threat.severity == "low"
    assert threat.mitigation_state == "closed" and threat.resolved is True
    assert threat.detected_at.isoformat() == "2022-03-01T21:00:00+00:00"
    await huntress.aclose()


def webhook_validator(name: str) -> Any:
    doc = load_json(WEBHOOKS)
    schema = {"$ref": f"#/components/schemas/{name}", "components": doc["components"]}
    return jsonschema.Draft202012Validator(schema)


async def test_the_fakes_webhooks_match_the_webhook_document_and_parse() -> None:
    huntress = world()
    built = huntress.adapter(sleep=no_sleep)
    agent = next(iter(huntress.agents))
    threat = huntress.raise_threat(agent, "Malicious scheduled task")
    created = huntress.native_threat_webhook(threat)
    assert created is not None and huntress.webhook_secret is not None
    webhook_validator("IncidentReportCreated").validate(json.loads(created.body))
    assert built.verify_webhook(created, huntress.webhook_secret) is True
    [event] = built.parse_webhook(created)
    assert (event.endpoint_id, event.client_id, event.state) == (
        agent,
        huntress.agents[agent].customer_id,
        "active",
    )
    huntress.resolve_threat(threat)
    closed = huntress.native_threat_webhook(threat)
    assert closed is not None
    webhook_validator("IncidentReportClosed").validate(json.loads(closed.body))
    [event] = built.parse_webhook(closed)
    assert event.state == "cleared" and event.hostname == huntress.agents[agent].hostname
    # Every property the document's IncidentReportPayload requires is in the fake's delivery.
    required = load_json(WEBHOOKS)["components"]["schemas"]["IncidentReportPayload"]["required"]
    assert set(required) <= set(json.loads(closed.body))
    IncidentReportEventRead.model_validate(json.loads(closed.body))
    await built.aclose()


def test_the_webhook_documents_event_types_are_the_ones_parsed() -> None:
    doc = load_json(WEBHOOKS)
    assert {"incident_report.created", "incident_report.closed", "incident_report.comment_added"} <= set(
        doc["webhooks"]
    )
    assert "signature" not in json.dumps(doc).lower()  # the scheme is Svix's (see webhooks.py)


def test_harness_operations_name_the_documented_paths() -> None:
    for path in ("/v1/organizations", "/v1/agents", "/v1/incident_reports", "/v1/organizations/{id}"):
        assert "get" in document()["paths"][path]
    assert {op.value for op in SecurityOperation} == {
        "list_customers",
        "list_agents",
        "list_threats",
        "licence_use",
    }


def test_a_delivery_without_svix_headers_is_left_to_the_core() -> None:
    from datetime import UTC, datetime

    request = WebhookRequest(body=b"{}", headers={}, received_at=datetime.now(UTC))
    built = world().adapter(sleep=no_sleep)
    assert built.verify_webhook(request, "whsec_c2VjcmV0") is None
