"""Every request the Sophos Central adapter sends is a request of Sophos's own Postman collection
("Sophos Central APIs", ../shared/specs/sophos-central/): its method and URL path, on the host the
collection names for it, with only query parameters the request lists, the headers it sets (the
partner/organization/tenant id header) and the collection-level bearer, and, for the token, exactly
the form fields of "Authenticate". The fake's answers use only fields of the collection's example
answers, and every example answer of the requests the adapter makes, and every sample cut from
them, parses through the read models with the values asserted.

The collection is not OpenAPI: it is turned into a `Description` here (one `Operation` per request,
query names from `url.query` including the disabled, optional ones, required headers from the
enabled `header` entries, a closed schema built from the example of a raw JSON body), and the hosts
are checked beside it (`api-{{dataRegion}}` stands for any region).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from functools import cache
from typing import Any
from urllib.parse import parse_qs

import httpx
import pytest
from pydantic import BaseModel

from adapters.base import SecurityAdapter
from adapters.sophos_central import SPEC
from adapters.sophos_central.adapter import (
    SophosCentralAdapter,
    agent_of,
    classify_alert,
    parse_sophos_error,
    threat_of,
)
from adapters.sophos_central.fake.harness import SophosCentralHarness, SophosCentralWorld
from adapters.sophos_central.models import (
    AlertRead,
    EndpointRead,
    KeyPageRead,
    LicencesRead,
    TenantPageRead,
    TenantRead,
    UsageRead,
    WhoAmIRead,
)
from adapters.testing.harness import load_harness
from tests.support.contracts import ContractError, Description, Exchange, Operation, no_sleep, record_world
from tests.support.specs import load_json

DIR = "sophos-central"
COLLECTION = f"{DIR}/Sophos Central APIs.postman_collection.json"
TOKEN = ("POST", "/api/v2/oauth2/token")


def requests_of(items: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for item in items:
        if "item" in item:
            yield from requests_of(item["item"])
        else:
            yield item


def template_of(url: dict[str, Any]) -> str:
    return "/" + "/".join(re.sub(r"^:(\w+)$", r"{\1}", part) for part in url.get("path", []) if part)


def host_pattern(url: dict[str, Any]) -> re.Pattern[str]:
    host = ".".join(url.get("host", []))
    return re.compile("^" + re.escape(host).replace(re.escape("{{dataRegion}}"), "[a-z]{2}[0-9]{2}") + "$")


def schema_of(example: Any) -> dict[str, Any]:
    """A closed JSON schema with the keys and types of an example body."""
    if isinstance(example, dict):
        return {
            "type": "object",
            "properties": {k: schema_of(v) for k, v in example.items()},
            "additionalProperties": False,
        }
    if isinstance(example, list):
        return {"type": "array", "items": schema_of(example[0]) if example else {}}
    return {}


@cache
def collection() -> dict[str, Any]:
    loaded: dict[str, Any] = load_json(COLLECTION)
    return loaded


@cache
def collection_parts() -> tuple[Description, dict[tuple[str, str], list[re.Pattern[str]]], dict[str, Any]]:
    operations: dict[tuple[str, str], Operation] = {}
    hosts: dict[tuple[str, str], list[re.Pattern[str]]] = {}
    requests: dict[str, Any] = {}
    for item in requests_of(collection()["item"]):
        request = item["request"]
        url = request["url"]
        method, template = request["method"], template_of(url)
        body = request.get("body") or {}
        schema = None
        raw = body.get("mode") == "urlencoded"
        if body.get("mode") == "raw" and body.get("raw", "").strip():
            try:
                schema = schema_of(json.loads(body["raw"]))
            except ValueError:
                raw = True
        headers = frozenset(
            h["key"].lower()
            for h in request.get("header", [])
            if not h.get("disabled") and h["key"].startswith("X-")
        )
        hosts.setdefault((method, template), []).append(host_pattern(url))
        if (method, template) in operations:
            continue  # "Refresh token" shares the token URL: "Authenticate" is the contract
        operations[(method, template)] = Operation(
            method=method,
            template=template,
            query=frozenset(q["key"] for q in url.get("query", [])),
            required_headers=headers,
            body=schema,
            body_required=schema is not None or raw,
            raw_body=raw,
        )
        requests[f"{method} {template}"] = item
    description = Description(
        "Sophos Central APIs (Postman)",
        operations.values(),
        base_paths=[""],
        ref_root="#/components/schemas",
        schemas={},
    )
    return description, hosts, requests


@pytest.fixture(scope="module")
def description() -> Description:
    return collection_parts()[0]


def check(description: Description, exchange: Exchange) -> str:
    """The collection's request this exchange is (`ContractError` when it is none)."""
    name = description.check(exchange)
    _, hosts, requests = collection_parts()
    method, template = name.split(" ", 1)
    host = exchange.url.split("/")[2].split(":")[0]
    if not any(p.match(host) for p in hosts[(method, template)]):
        raise ContractError(f"{name} is not served by {host}")
    item = requests[name]
    if (item["request"].get("auth") or {}).get("type") == "noauth":
        assert "authorization" not in exchange.headers
        form = parse_qs(exchange.raw_body.decode(), keep_blank_values=True)
        declared = {f["key"]: f["value"] for f in item["request"]["body"]["urlencoded"]}
        unknown = sorted(set(form) - set(declared))
        if unknown:
            raise ContractError(f"{name}: form field {unknown[0]!r} is not in the request")
        if set(form) != set(declared):
            raise ContractError(f"{name}: form fields {sorted(set(declared) - set(form))} are missing")
        for key, value in declared.items():
            if not value.startswith("{{") and form[key] != [value]:
                raise ContractError(f"{name}: {key} must be {value!r}")
        assert exchange.headers.get("content-type", "").startswith("application/x-www-form-urlencoded")
    else:
        if not exchange.headers.get("authorization", "").startswith("Bearer "):
            raise ContractError(f"{name}: no bearer (the collection's auth)")
    return name


def world(**kwargs: Any) -> SophosCentralWorld:
    harness = load_harness(SPEC)
    assert isinstance(harness, SophosCentralHarness)
    return harness.start(customers=("Acme Dental", "Blue Harbor Logistics"), agents_per_customer=3, **kwargs)


async def drive(console: SophosCentralWorld, log: list[Exchange]) -> SecurityAdapter:
    """Every public operation of the adapter against the fake: customers, a full and a
    changed-since listing, threats and licence use."""
    record_world(console, log)
    adapter = console.adapter(sleep=no_sleep)
    await adapter.test_connection()
    assert [c async for c in adapter.list_customers()]
    assert [a async for page in adapter.iter_agent_pages(None) for a in page.agents]
    cursor = console.cursor()
    first = next(iter(console.agents))
    console.touch([first])
    assert [a async for page in adapter.iter_agent_pages(cursor) for a in page.agents]
    console.raise_threat(first)
    assert (await adapter.list_threats(None)).threats
    assert await adapter.licence_use()
    return adapter


async def test_every_request_the_adapter_sends_is_a_request_of_the_collection(
    description: Description,
) -> None:
    log: list[Exchange] = []
    adapter = await drive(world(page_size=2), log)
    await adapter.aclose()
    seen = {check(description, exchange) for exchange in log}
    assert seen == {
        "POST /api/v2/oauth2/token",
        "GET /whoami/v1",
        "GET /partner/v1/tenants",
        "GET /endpoint/v1/endpoints",
        "GET /common/v1/alerts",
        "GET /partner/v1/billing/usage/{year}/{month}",
    }
    # Key paging was followed (page size 2 of 3 agents), and the cursor became lastSeenAfter.
    endpoint_queries = [dict(e.query) for e in log if e.path == "/endpoint/v1/endpoints"]
    assert any("pageFromKey" in q for q in endpoint_queries)
    assert any(q.get("lastSeenAfter", "").endswith("Z") for q in endpoint_queries)
    # Tenant calls went to each tenant's own regional host, with its X-Tenant-ID.
    regional = {
        (e.url.split("/")[2], e.headers["x-tenant-id"]) for e in log if e.path.startswith("/endpoint/")
    }
    assert len(regional) == 2 and all(host.startswith("api-") for host, _ in regional)
    assert all(e.headers.get("x-partner-id") for e in log if e.path.startswith("/partner/"))


async def test_a_tenant_credential_sends_only_collection_requests(description: Description) -> None:
    console = world()
    console.fake.id_type = "tenant"
    console.fake.partner_id = next(iter(console.customers))
    log: list[Exchange] = []
    record_world(console, log)
    adapter = console.adapter(sleep=no_sleep)
    customers = [c async for c in adapter.list_customers()]
    assert [c.id for c in customers] == [console.fake.partner_id]
    assert len([a async for page in adapter.iter_agent_pages(None) for a in page.agents]) == 3
    await adapter.list_threats(None)
    assert await adapter.licence_use() == []
    await adapter.aclose()
    assert {check(description, e) for e in log} == {
        "POST /api/v2/oauth2/token",
        "GET /whoami/v1",
        "GET /endpoint/v1/endpoints",
        "GET /common/v1/alerts",
    }


async def test_an_organization_credential_sends_only_collection_requests(description: Description) -> None:
    console = world()
    console.fake.id_type = "organization"
    log: list[Exchange] = []
    record_world(console, log)
    adapter = console.adapter(sleep=no_sleep)
    assert {c.id async for c in adapter.list_customers()} == set(console.customers)
    assert len([a async for page in adapter.iter_agent_pages(None) for a in page.agents]) == 6
    assert await adapter.licence_use() == []  # no billing report outside the partner API
    await adapter.aclose()
    assert {check(description, e) for e in log} == {
        "POST /api/v2/oauth2/token",
        "GET /whoami/v1",
        "GET /organization/v1/tenants",
        "GET /endpoint/v1/endpoints",
    }
    assert all(e.headers.get("x-organization-id") for e in log if e.path.startswith("/organization/"))


def test_the_validator_refuses_planted_bad_requests(description: Description) -> None:
    tenant = {"authorization": "Bearer t", "x-tenant-id": "t-1"}
    region = "https://api-eu01.central.sophos.com"
    good = Exchange.of("GET", f"{region}/endpoint/v1/endpoints?pageSize=5&view=full", headers=tenant)
    assert check(description, good) == "GET /endpoint/v1/endpoints"
    with pytest.raises(ContractError, match="query parameter 'changedSince'"):
        check(
            description, Exchange.of("GET", f"{region}/endpoint/v1/endpoints?changedSince=x", headers=tenant)
        )
    with pytest.raises(ContractError, match="x-tenant-id"):
        check(
            description,
            Exchange.of("GET", f"{region}/common/v1/alerts", headers={"authorization": "Bearer t"}),
        )
    with pytest.raises(ContractError, match="not served by"):
        check(
            description,
            Exchange.of("GET", "https://api.central.sophos.com/endpoint/v1/endpoints", headers=tenant),
        )
    with pytest.raises(ContractError, match="takes no body"):
        check(description, Exchange.of("GET", f"{region}/common/v1/alerts", {"planted": 1}, headers=tenant))
    with pytest.raises(ContractError, match="no bearer"):
        check(description, Exchange.of("GET", "https://api.central.sophos.com/whoami/v1"))
    with pytest.raises(ContractError, match="not a path"):
        check(description, Exchange.of("GET", f"{region}/endpoint/v2/endpoints", headers=tenant))
    form = b"grant_type=client_credentials&scope=token&client_id=a&client_secret=b"
    token = Exchange(
        "POST",
        "https://id.sophos.com/api/v2/oauth2/token",
        (),
        {"content-type": "application/x-www-form-urlencoded"},
        None,
        raw_body=form,
    )
    assert check(description, token) == "POST /api/v2/oauth2/token"
    planted = Exchange(token.method, token.url, (), token.headers, None, raw_body=form + b"&audience=x")
    with pytest.raises(ContractError, match="form field 'audience'"):
        check(description, planted)
    wrong_scope = Exchange(
        token.method, token.url, (), token.headers, None, raw_body=form.replace(b"token&", b"all&")
    )
    with pytest.raises(ContractError, match="scope"):
        check(description, wrong_scope)


# ---------------------------------------------------------------------------------------------
# Answers: the fake's, the collection's examples and the samples
# ---------------------------------------------------------------------------------------------


def example(name: str, code: int = 200) -> Any:
    item = collection_parts()[2][name]
    bodies = [json.loads(r["body"]) for r in item["response"] if r["code"] == code and r.get("body")]
    assert bodies, f"{name} has no {code} example"
    return bodies[0]


def keys_within(value: Any, model: Any, where: str) -> None:
    """Every key of `value` is a key of the example `model`, recursively."""
    if isinstance(value, dict) and isinstance(model, dict):
        for key, item in value.items():
            assert key in model, f"{where}.{key} is not in the collection's example"
            keys_within(item, model[key], f"{where}.{key}")
    elif isinstance(value, list) and isinstance(model, list) and model:
        for item in value:
            keys_within(item, model[0], where + "[]")


async def test_the_fake_answers_only_with_fields_of_the_collections_examples() -> None:
    log: list[Exchange] = []
    adapter = await drive(world(page_size=2), log)
    await adapter.aclose()
    endpoint = example("GET /endpoint/v1/endpoints/{endpointId}")
    models: dict[str, Any] = {
        "/whoami/v1": example("GET /whoami/v1"),
        "/partner/v1/tenants": example("GET /partner/v1/tenants"),
        "/endpoint/v1/endpoints": {**example("GET /endpoint/v1/endpoints"), "items": [endpoint]},
        "/common/v1/alerts": example("GET /common/v1/alerts"),
    }
    usage = example("GET /partner/v1/billing/usage/{year}/{month}")
    checked = set()
    for exchange in log:
        if exchange.status != 200 or exchange.path == TOKEN[1]:
            continue
        model = usage if exchange.path.startswith("/partner/v1/billing/") else models[exchange.path]
        keys_within(exchange.response, model, exchange.path)
        checked.add(exchange.path.split("/")[1])
    assert checked == {"whoami", "partner", "endpoint", "common"}


def test_every_example_answer_of_the_requests_used_parses() -> None:
    """The 200 examples of the collection's requests the adapter makes, through the read models."""
    who = WhoAmIRead.model_validate(example("GET /whoami/v1"))
    assert (
        who.idType == "tenant"
        and who.apiHosts
        and who.apiHosts.dataRegion == "http://api-us01.central.sophos.com"
    )
    for name in ("GET /partner/v1/tenants", "GET /organization/v1/tenants"):
        page = TenantPageRead.model_validate(example(name))
        tenant = TenantRead.model_validate(page.items[0])
        assert (tenant.dataRegion, tenant.billingType) == ("eu01", "term")
    endpoints = KeyPageRead.model_validate(example("GET /endpoint/v1/endpoints"))
    assert endpoints.pages and endpoints.pages.nextKey == "string"
    assert EndpointRead.model_validate(endpoints.items[0]).os is not None
    alerts = KeyPageRead.model_validate(example("GET /common/v1/alerts"))
    assert [AlertRead.model_validate(a).type for a in alerts.items][-1] == "Event::Endpoint::PUADetected"
    usage = KeyPageRead.model_validate(example("GET /partner/v1/billing/usage/{year}/{month}"))
    assert UsageRead.model_validate(usage.items[0]).billableQuantity == 20
    error = example("GET /partner/v1/billing/usage/{year}/{month}", 404)
    assert set(error) >= {"error", "message", "correlationId", "requestId"}


def sample(name: str) -> Any:
    return load_json(f"{DIR}/samples/{name}")


def test_sample_whoami() -> None:
    who = WhoAmIRead.model_validate(sample("whoami-v1.json"))
    assert (who.id, who.idType) == ("25bf3721-9425-c449-ba4c-0656670878a0", "tenant")
    assert who.apiHosts is not None and who.apiHosts.global_ == "http://api.central.sophos.com/"


def test_sample_partner_tenants() -> None:
    page = TenantPageRead.model_validate(sample("partner-v1-tenants.json"))
    assert page.pages is not None and (page.pages.current, page.pages.total, page.pages.maxSize) == (
        50,
        50,
        50,
    )
    tenant = TenantRead.model_validate(page.items[0])
    assert tenant.id == "a1b2c3d4-e5f6-4a7b-8c9d-0e1f2a3b4c5d" and tenant.name == "Example Name"
    assert (tenant.dataGeography, tenant.dataRegion, tenant.apiHost) == (
        "US",
        "eu01",
        "https://api.example.com/resource",
    )
    assert tenant.partner is not None and tenant.partner.id == "a1b2c3d4-e5f6-4a7b-8c9d-0e1f2a3b4c5d"


def test_sample_endpoint_list() -> None:
    page = KeyPageRead.model_validate(sample("endpoint-v1-endpoints.json"))
    assert page.pages is not None and (page.pages.fromKey, page.pages.nextKey, page.pages.maxSize) == (
        "string",
        "string",
        50,
    )
    agent = agent_of(EndpointRead.model_validate(page.items[0]), "t-1", "Tenant")
    # The list example is the basic view: identity only, everything else unknown.
    assert (agent.agent_id, agent.customer_id, agent.hostname) == (
        "a1b2c3d4-e5f6-4a7b-8c9d-0e1f2a3b4c5d",
        "t-1",
        "Example Name",
    )
    assert (agent.os_name, agent.device_type) == ("Example Name", "computer")
    assert agent.protection_enabled is None and agent.active_threats is None and agent.isolated is None


def test_sample_endpoint_full_view_maps_every_reported_field() -> None:
    endpoint = EndpointRead.model_validate(sample("endpoint-v1-endpoint-by-id.json"))
    assert endpoint.tamperProtectionEnabled is True and endpoint.lockdown is not None
    agent = agent_of(endpoint, "fallback", None)
    assert agent.customer_id == "a1b2c3d4-e5f6-4a7b-8c9d-0e1f2a3b4c5d"  # the endpoint's own tenant
    assert agent.serial_number == "P28DA81LMD5T"
    assert agent.mac_addresses == ()  # the example's "string" is no MAC address
    assert (agent.product, agent.agent_version) == (None, "1.0.0")  # only coreAgent is assigned
    assert agent.protection_enabled is True and agent.active_threats == 0
    assert agent.online is True and agent.isolated is True
    assert agent.last_seen_at == datetime(2019, 9, 23, 12, 2, 1, 700000, tzinfo=UTC)
    assert (agent.definitions_up_to_date, agent.definitions_date, agent.last_scan_at) == (None, None, None)


def test_sample_alerts_classify_threats() -> None:
    page = KeyPageRead.model_validate(sample("common-v1-alerts.json"))
    assert page.pages is not None and (page.pages.nextKey, page.pages.maxSize) == ("2000818931339", 1000)
    out_of_date, pua = (AlertRead.model_validate(row) for row in page.items)
    assert classify_alert(out_of_date) is None  # "John-PC is out of date." is not a threat
    assert threat_of(out_of_date, "t") is None
    threat = threat_of(pua, "fallback")
    assert threat is not None
    assert threat.threat_id == "f9415c5f-e0e9-41d7-8126-1956223a66f1"
    assert (threat.customer_id, threat.agent_id) == (
        "79067fa3-e4d0-4769-a5f7-8d6550b3b68b",
        "bb90527d-73a8-4e6e-85c6-20c2e0c5bc6f",
    )
    assert (threat.classification, threat.severity) == ("PUA", "medium")
    assert threat.mitigation_state == "not_mitigated"  # cleanPua is offered
    assert threat.resolved is False
    assert threat.name == "Generic reputation PUA detected C:\\Temp\\WinExeSvc.exe"
    assert threat.detected_at == datetime(2021, 2, 12, 15, 4, 53, 780000, tzinfo=UTC)


def test_sample_billing_usage() -> None:
    page = KeyPageRead.model_validate(sample("partner-v1-billing-usage.json"))
    usage = UsageRead.model_validate(page.items[0])
    assert usage.billingEndDate == "2021-04-31"  # not a date: kept as text
    (use,) = SophosCentralAdapter._usage(page.items)
    assert use.customer_id == "718b6047-2fbc-b4f4-1a43-45ee42bf5d3b"
    assert use.sku == "CEAZ1CSMG" and use.seats_used == 20 and use.seats_purchased is None
    assert use.product.startswith("SW/Virtual EnterpriseGuard Plus")


def test_sample_licences() -> None:
    licences = LicencesRead.model_validate(sample("licenses-v1-licenses.json"))
    (licence,) = licences.licenses
    assert licence.product is not None and licence.product.code == "ABC123"
    assert (licence.type, licence.unlimited, licence.perpetual, licence.startDate) == (
        "trial",
        True,
        True,
        "2024-01-15",
    )
    assert licences.tenant is not None and licences.tenant.id == "a1b2c3d4-e5f6-4a7b-8c9d-0e1f2a3b4c5d"


USED: dict[str, type[BaseModel]] = {
    "GET /whoami/v1": WhoAmIRead,
    "GET /partner/v1/tenants": TenantPageRead,
    "GET /organization/v1/tenants": TenantPageRead,
    "GET /endpoint/v1/endpoints": KeyPageRead,
    "GET /common/v1/alerts": KeyPageRead,
    "GET /partner/v1/billing/usage/{year}/{month}": KeyPageRead,
}


def test_every_example_answer_of_the_requests_used_reads_success_or_error() -> None:
    """Each example (success and error) of the requests the adapter makes: 2xx bodies through the
    read models, error bodies through the error parser, which keeps the vendor's message."""
    requests = collection_parts()[2]
    seen = 0
    for name, model in USED.items():
        for response in requests[name]["response"]:
            if not response.get("body"):
                continue
            body = json.loads(response["body"])
            if response["code"] < 300:
                model.model_validate(body)
            else:
                message, _field = parse_sophos_error(httpx.Response(response["code"], json=body))
                assert body["message"] in message and body["correlationId"] in message
            seen += 1
    assert seen >= 10
