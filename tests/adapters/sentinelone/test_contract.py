"""Every request the SentinelOne adapter sends, checked against the Management API 2.1 as the vendor
material describes it, and the real payloads under ../shared/specs/sentinelone/samples read
through the adapter's models and normalizer.

No machine-readable description of the 2.1 API exists in the specs folder (NOTES.md, first
section: the swagger is served only inside each console). The notes are the contract: `NOTES_TABLE`
below encodes the paths, methods and query fields NOTES.md documents, section by section, and
`ADDITIONS` the few query fields the adapter sends that NOTES.md names only by family ("updatedAt__gte…")
or not at all, each verified in the generated 2.1 client NOTES.md cites as its field source
(Dirt-Diver/s1-api `api/src/api/{Agents,Sites}Api.js`: `updatedAt__gt`, `isDecommissioned`,
`siteIds` on /sites). A test proves every table entry outside `ADDITIONS` is written in NOTES.md.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from pydantic import ValidationError

from adapters.base import SecurityAdapter, WebhookRequest
from adapters.errors import WebhookParseError
from adapters.sentinelone import SPEC
from adapters.sentinelone.adapter import SentinelOneAdapter
from adapters.sentinelone.fake.harness import SentinelOneHarness, SentinelOneWorld
from adapters.sentinelone.models import AgentRead, AgentsQuery, ThreatRead, ThreatsQuery
from adapters.testing.harness import ConnectionBody, build_adapter, load_harness
from tests.support.contracts import ContractError, Description, Exchange, Operation, no_sleep, record_world
from tests.support.specs import load_json, spec_path

BASE = "/web/api/v2.1"
CONSOLE = "https://connector-msp.sentinelone.net"
AGENTS_SAMPLE = "sentinelone/samples/agents-v2.1-data-array.json"
THREATS_SAMPLE = "sentinelone/samples/threats-v2.1-first-item.json"

PAGING = frozenset({"limit", "skip", "cursor", "countOnly", "skipCount", "sortBy", "sortOrder"})
"""NOTES.md "Paging (all list endpoints)"."""
NOTES_TABLE: dict[tuple[str, str], frozenset[str]] = {
    # NOTES.md "Sites = customers, licence usage per site": GET /web/api/v2.1/sites (paging only).
    ("GET", "/sites"): PAGING,
    # NOTES.md "Agents (devices)": GET /web/api/v2.1/agents, its filters.
    ("GET", "/agents"): PAGING
    | {
        "siteIds",
        "accountIds",
        "groupIds",
        "isActive",
        "infected",
        "isUpToDate",
        "networkStatuses",
        "osTypes",
        "computerName__contains",
        "uuid__contains",
        "serialNumber__contains",
        "networkInterfacePhysical__contains",
        "externalId__contains",
        "lastActiveDate__between",
        "updatedAt__gte",
    },
    # NOTES.md "Threats": GET /web/api/v2.1/threats, its filters.
    ("GET", "/threats"): PAGING
    | {
        "siteIds",
        "accountIds",
        "agentIds",
        "resolved",
        "incidentStatuses",
        "mitigationStatuses",
        "classifications",
        "confidenceLevels",
        "createdAt__gte",
        "createdAt__lte",
        "updatedAt__gte",
        "updatedAt__lte",
    },
}
ADDITIONS: dict[tuple[str, str], frozenset[str]] = {
    ("GET", "/sites"): frozenset({"siteIds"}),
    ("GET", "/agents"): frozenset({"updatedAt__gt", "isDecommissioned"}),
}
"""Fields outside NOTES.md's lists, from the generated 2.1 client (module docstring)."""


def description() -> Description:
    operations = [
        Operation(
            method=method,
            template=path,
            query=fields | ADDITIONS.get((method, path), frozenset()),
            required_headers=frozenset({"authorization"}),
        )
        for (method, path), fields in NOTES_TABLE.items()
    ]
    return Description(
        "SentinelOne Management API 2.1 (NOTES.md)",
        operations,
        base_paths=[BASE],
        ref_root="#/components/schemas",
        schemas={},
    )


def check_request(desc: Description, exchange: Exchange) -> str:
    """The table's check plus what NOTES.md says of every call: the `ApiToken` scheme, a `limit`
    of 1–1000, no body (every call is a GET), comma-separated lists of numeric ids."""
    operation = desc.check(exchange)
    if not exchange.headers.get("authorization", "").startswith("ApiToken "):
        raise ContractError(f"{operation}: the Authorization header is not `ApiToken <token>`")
    query = dict(exchange.query)
    if "limit" in query and not 1 <= int(query["limit"]) <= 1000:
        raise ContractError(f"{operation}: limit {query['limit']} is outside 1–1000")
    if exchange.raw_body:
        raise ContractError(f"{operation} takes no body")
    for name in ("siteIds", "accountIds", "agentIds"):
        if name in query and not all(part.isdigit() for part in query[name].split(",")):
            raise ContractError(f"{operation}: {name} is not a comma-separated id list")
    for name in ("updatedAt__gt", "updatedAt__gte"):
        if name in query:
            datetime.strptime(query[name], "%Y-%m-%dT%H:%M:%S.%fZ")
    return operation


def world(**kwargs: Any) -> SentinelOneWorld:
    harness = load_harness(SPEC)
    assert isinstance(harness, SentinelOneHarness)
    return harness.start(customers=("Acme Dental", "Blue Harbor Logistics"), agents_per_customer=3, **kwargs)


async def drive_security(console: SentinelOneWorld, log: list[Exchange]) -> SecurityAdapter:
    """Every public operation of the adapter against the fake, paging included; still open."""
    record_world(console, log)
    adapter = console.adapter(sleep=no_sleep, options={"site_ids": list(console.customers)})
    await adapter.test_connection()
    assert [c async for c in adapter.list_customers()]
    assert [a async for page in adapter.iter_agent_pages(None) for a in page.agents]
    cursor = console.cursor()
    first = next(iter(console.agents))
    console.touch([first])
    threat = console.raise_threat(first)
    assert [a async for page in adapter.iter_agent_pages(cursor) for a in page.agents]
    assert (await adapter.list_threats(None)).threats
    console.resolve_threat(threat)
    assert (await adapter.list_threats(cursor)).threats
    assert await adapter.licence_use()
    return adapter


def written(notes: str, name: str) -> bool:
    """Whether NOTES.md names the field, also in its `createdAt__gte/lte` shorthand."""
    if any(form in notes for form in (f"`{name}`", f"{name},", f" {name}", f"{name}\u2026")):
        return True
    prefix, _, op = name.rpartition("__")
    return op == "lte" and f"{prefix}__gte/lte" in notes


def test_every_table_field_outside_the_additions_is_written_in_the_notes() -> None:
    notes = spec_path("sentinelone/NOTES.md").read_text()
    for (method, path), fields in NOTES_TABLE.items():
        assert f"{method} {BASE}{path}" in notes, path
        for name in sorted(fields):
            assert written(notes, name), name
    for key, extra in ADDITIONS.items():
        assert not extra & NOTES_TABLE[key], "an addition that NOTES.md lists is not an addition"
    assert "Authorization: ApiToken <token>" in notes
    assert "`limit` (1–1000" in notes and "nextCursor" in notes


async def test_every_request_the_adapter_sends_is_in_the_notes() -> None:
    desc = description()
    log: list[Exchange] = []
    console = world(page_size=2)
    adapter = await drive_security(console, log)
    await adapter.aclose()
    assert log and all(e.status == 200 for e in log)
    operations = {check_request(desc, e) for e in log}
    assert operations == {"GET /sites", "GET /agents", "GET /threats"}
    assert all(httpx.URL(e.url).host == "connector-msp.sentinelone.net" for e in log)
    # Cursor paging was followed (page size 2), the filters sent again with the cursor.
    agent_pages = [dict(e.query) for e in log if e.path == f"{BASE}/agents"]
    assert any("cursor" in q for q in agent_pages)
    assert all(q["limit"] == "2" and q["isDecommissioned"] == "false" for q in agent_pages)
    assert any("updatedAt__gt" in q for q in agent_pages)
    threat_queries = [dict(e.query) for e in log if e.path == f"{BASE}/threats"]
    assert {q["resolved"] for q in threat_queries} == {"true", "false"}
    assert all("updatedAt__gte" in q for q in threat_queries if q["resolved"] == "true")


def test_the_check_refuses_planted_bad_requests() -> None:
    desc = description()
    headers = {"authorization": "ApiToken t0k"}

    def sent(method: str, path_and_query: str, **kw: Any) -> Exchange:
        return Exchange.of(method, f"{CONSOLE}{BASE}{path_and_query}", headers=kw.get("headers", headers))

    good = "/agents?limit=1000&siteIds=1,2&updatedAt__gt=2026-11-20T12:00:00.000000Z"
    assert check_request(desc, sent("GET", good)) == "GET /agents"
    # One unknown query field planted in an otherwise good request.
    with pytest.raises(ContractError, match="query parameter 'updatedSince'"):
        check_request(desc, sent("GET", good + "&updatedSince=2026-11-20"))
    with pytest.raises(ContractError, match="query parameter 'isDecommissioned'"):
        check_request(desc, sent("GET", "/threats?limit=10&isDecommissioned=false"))
    with pytest.raises(ContractError, match="limit 1001"):
        check_request(desc, sent("GET", "/agents?limit=1001"))
    with pytest.raises(ContractError, match="ApiToken"):
        check_request(desc, sent("GET", "/sites?limit=1", headers={"authorization": "Bearer t0k"}))
    with pytest.raises(ContractError, match="authorization"):
        check_request(desc, sent("GET", "/sites?limit=1", headers={}))
    with pytest.raises(ContractError, match="not a path"):
        check_request(desc, sent("GET", "/webhooks"))
    with pytest.raises(ContractError, match="not an operation"):
        check_request(desc, sent("POST", "/agents"))
    with pytest.raises(ContractError, match="not under"):
        check_request(desc, Exchange.of("GET", f"{CONSOLE}/web/api/v2.0/agents", headers=headers))


def test_the_query_models_refuse_an_unknown_field() -> None:
    assert AgentsQuery(limit=5, isDecommissioned=False).params() == {
        "limit": "5",
        "isDecommissioned": "false",
    }
    with pytest.raises(ValidationError, match="updatedSince"):
        AgentsQuery.model_validate({"limit": 5, "updatedSince": "2026-01-01"})
    with pytest.raises(ValidationError, match="limit"):
        ThreatsQuery(limit=1001)
    when = datetime(2026, 11, 20, 12, 0, 1, 5, tzinfo=UTC)
    assert ThreatsQuery(limit=1, updatedAt__gte=when, siteIds=["1", "2"]).params() == {
        "limit": "1",
        "siteIds": "1,2",
        "updatedAt__gte": "2026-11-20T12:00:01.000005Z",
    }


def sample_adapter(**options: Any) -> SentinelOneAdapter:
    connection = ConnectionBody("sentinelone", "S1", CONSOLE, {"api_token": "t"}, options)
    built = build_adapter(SPEC, connection, lambda: httpx.AsyncHTTPTransport())
    assert isinstance(built, SentinelOneAdapter)
    return built


def test_the_real_agent_sample_parses_and_normalizes() -> None:
    rows = load_json(AGENTS_SAMPLE)
    assert isinstance(rows, list) and len(rows) == 1
    agent = AgentRead.model_validate(rows[0])
    assert agent.isUpToDate is True  # the console wrote the string "True"
    assert agent.isDecommissioned is True and agent.isActive is False
    status = sample_adapter().agent_status(agent)
    assert status.agent_id == "657613730168123595"
    assert status.customer_id == "475482421366727779" and status.customer_name == "demisto"
    assert status.hostname == "EC2AMAZ-AJ0KANC"
    assert status.serial_number is None  # this record carries no serialNumber
    assert status.mac_addresses == ("06:35:E6:62:53:2E",)
    assert status.os_name == "Windows Server 2016" and status.device_type == "server"
    assert status.product == "SentinelOne" and status.agent_version == "3.1.3.38"
    assert status.protection_enabled is False  # decommissioned: protects nothing
    assert status.definitions_up_to_date is True and status.definitions_date is None
    assert status.last_scan_at == datetime(2019, 6, 30, 15, 34, 52, 505374, tzinfo=UTC)
    assert status.active_threats == 0
    assert status.online is False
    assert status.last_seen_at == datetime(2020, 2, 20, 0, 26, 33, 955830, tzinfo=UTC)
    assert status.isolated is False  # "connecting": network quarantine being lifted


async def test_the_real_agent_sample_is_listed_only_when_decommissioned_agents_are_asked_for() -> None:
    rows = load_json(AGENTS_SAMPLE)

    def answer(request: httpx.Request) -> httpx.Response:
        assert request.headers["authorization"] == "ApiToken t"
        return httpx.Response(200, json={"data": rows, "pagination": {"totalItems": 1, "nextCursor": None}})

    for include, expected in ((False, []), (True, ["657613730168123595"])):
        connection = ConnectionBody(
            "sentinelone", "S1", CONSOLE, {"api_token": "t"}, {"include_decommissioned": include}
        )
        adapter = build_adapter(SPEC, connection, lambda: httpx.MockTransport(answer))
        assert isinstance(adapter, SentinelOneAdapter)
        pages = [p async for p in adapter.iter_agent_pages(None)]
        assert [a.agent_id for p in pages for a in p.agents] == expected
        assert all(not p.skipped for p in pages)
        await adapter.aclose()


def test_the_real_threat_sample_parses_and_normalizes() -> None:
    body = load_json(THREATS_SAMPLE)
    read = ThreatRead.model_validate(body["data"][0])
    assert read.agentRealtimeInfo is not None and read.threatInfo is not None
    threat = SentinelOneAdapter.console_threat(read)
    assert threat is not None
    assert threat.threat_id == "715718962991148224"
    assert threat.customer_id == "475482421366727779"
    assert threat.agent_id == "657613730168123595" and threat.hostname == "EC2AMAZ-AJ0KANC"
    assert threat.name == "Unconfirmed 123490.crdownload"
    assert threat.classification == "Malware" and threat.severity == "malicious"
    assert threat.mitigation_state == "mitigated" and threat.resolved is True
    assert threat.detected_at == datetime(2019, 9, 15, 12, 5, 49, 9000, tzinfo=UTC)
    assert threat.updated_at == datetime(2020, 4, 2, 14, 52, 28, 528753, tzinfo=UTC)


async def test_the_fake_answers_in_the_samples_shape() -> None:
    """The fake's agent and threat rows use the real records' field names (plus the documented
    `serialNumber` and `lastSuccessfulScanDate` the agent sample happens not to carry)."""
    agent_sample = load_json(AGENTS_SAMPLE)[0]
    threat_sample = load_json(THREATS_SAMPLE)["data"][0]
    console = world()
    first = next(iter(console.agents))
    console.raise_threat(first)
    agent_row = console.fake.agent_row(console.fake.agents[first])
    assert set(agent_row) - set(agent_sample) == {"serialNumber", "lastSuccessfulScanDate"}
    assert set(agent_row["networkInterfaces"][0]) <= set(agent_sample["networkInterfaces"][0]) | {
        "gatewayIp",
        "gatewayMacAddress",
    }
    threat_row = console.fake.threat_row(next(iter(console.fake.threats.values())))
    assert set(threat_row) <= set(threat_sample)
    for part in ("threatInfo", "agentRealtimeInfo", "agentDetectionInfo"):
        assert set(threat_row[part]) <= set(threat_sample[part]), part
    for agent in (agent_row,):
        assert AgentRead.model_validate(agent).id == first
    assert ThreatRead.model_validate(threat_row).threatInfo is not None


def test_no_push_format_is_documented() -> None:
    notes = spec_path("sentinelone/NOTES.md").read_text()
    assert 'grep "webhook": 0 operations' in notes
    console = world()
    adapter = console.adapter()
    delivery = WebhookRequest(body=b"{}", headers={}, received_at=datetime.now(UTC))
    assert adapter.verify_webhook(delivery, "secret") is None
    assert console.native_threat_webhook("1") is None and console.webhook_secret is None
    with pytest.raises(WebhookParseError, match="no webhook push"):
        adapter.parse_webhook(delivery)
