"""SentinelOne specifics against the stateful fake: cursor paging up to the 1,000 maximum, the
changed-since filter, retries on 5xx and 429 with `Retry-After`, a refused token, every
`AgentStatus` field, threat classification / mitigation / resolution with `complete_for`, licence
use per site and product, customers with their externalId, and the console's URL forms."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from pydantic import ValidationError

from adapters.base import AgentStatus, SecurityAdapter
from adapters.errors import CredentialsError, RateLimitedError, TransientVendorError, VendorRequestError
from adapters.sentinelone.adapter import SentinelOneAdapter, api_base, parse_s1_error
from adapters.sentinelone.fake.app import SentinelOneFake
from adapters.sentinelone.fake.harness import LICENCE_PRODUCT, SentinelOneHarness, SentinelOneWorld
from adapters.sentinelone.models import AgentsQuery, SentinelOneOptions
from adapters.testing.harness import (
    RecordingSleep,
    SecurityHarness,
    SecurityOperation,
    SecurityWorld,
    device_mac,
    device_serial,
)
from tests.support.contracts import no_sleep


def world(**kwargs: Any) -> SentinelOneWorld:
    options: dict[str, Any] = {
        "customers": ("Acme Dental", "Blue Harbor Logistics"),
        "agents_per_customer": 3,
    }
    return SentinelOneHarness().start(**{**options, **kwargs})


def adapter_of(console: SentinelOneWorld, sleep: Any = no_sleep, **options: Any) -> SentinelOneAdapter:
    built = console.adapter(sleep=sleep, options=options)
    assert isinstance(built, SentinelOneAdapter)
    return built


async def agents(adapter: SecurityAdapter, since: datetime | None = None) -> dict[str, AgentStatus]:
    return {a.agent_id: a async for page in adapter.iter_agent_pages(since) for a in page.agents}


def agent_queries(console: SentinelOneWorld) -> list[dict[str, str]]:
    return [r["params"] for r in console.fake.requests if r["path"] == "/agents"]


async def test_the_harness_and_adapter_satisfy_the_protocols() -> None:
    harness = SentinelOneHarness()
    assert isinstance(harness, SecurityHarness)
    console = world()
    assert isinstance(console, SecurityWorld)
    adapter = console.adapter()
    assert isinstance(adapter, SecurityAdapter)
    await adapter.test_connection()
    await adapter.aclose()
    assert console.reports_serials and console.reports_macs
    seeded = next(iter(console.agents.values()))
    assert seeded.serial_number == device_serial(seeded.hostname)
    assert seeded.mac_addresses == (device_mac(seeded.hostname),)


async def test_cursor_paging_follows_next_cursor_with_the_filters_again() -> None:
    console = world(page_size=2)
    adapter = adapter_of(console, page_size=2)
    pages = [p async for p in adapter.iter_agent_pages(None)]
    await adapter.aclose()
    assert [len(p.agents) for p in pages] == console.agent_page_sizes() == [2, 2, 2]
    queries = agent_queries(console)
    assert len(queries) == 3 and "cursor" not in queries[0]
    assert all(q["cursor"] for q in queries[1:])
    assert all(q["limit"] == "2" and q["isDecommissioned"] == "false" for q in queries)
    assert len({a.agent_id for p in pages for a in p.agents}) == 6


async def test_the_default_page_is_the_maximum_of_1000() -> None:
    console = world(customers=("Acme Dental",), agents_per_customer=1001)
    adapter = adapter_of(console)
    pages = [p async for p in adapter.iter_agent_pages(None)]
    await adapter.aclose()
    assert [len(p.agents) for p in pages] == console.agent_page_sizes() == [1000, 1]
    assert [q["limit"] for q in agent_queries(console)] == ["1000", "1000"]
    with pytest.raises(ValidationError):
        SentinelOneOptions(page_size=1001)


async def test_changed_since_is_updated_at_gt() -> None:
    console = world()
    adapter = adapter_of(console)
    assert len(await agents(adapter)) == 6
    cursor = console.cursor()
    first, second = list(console.agents)[:2]
    assert await agents(adapter, cursor) == {}
    console.touch([first])
    console.set_protection(second, False)
    changed = await agents(adapter, cursor)
    await adapter.aclose()
    assert set(changed) == {first, second}
    sent = agent_queries(console)[-1]["updatedAt__gt"]
    assert datetime.strptime(sent, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC) == cursor


async def test_a_5xx_is_retried_and_the_listing_completes() -> None:
    console = world(page_size=2)
    console.fail_next(SecurityOperation.LIST_AGENTS, 503)
    adapter = adapter_of(console, page_size=2)
    assert len(await agents(adapter)) == 6
    assert console.calls(SecurityOperation.LIST_AGENTS) == 4
    console.fail_next(SecurityOperation.LIST_THREATS, 500)
    assert (await adapter.list_threats(None)).complete_for == frozenset(console.customers)
    await adapter.aclose()


async def test_a_429_waits_what_retry_after_asks_then_gives_up_carrying_it() -> None:
    console = world()
    sleep = RecordingSleep()
    console.rate_limit(SecurityOperation.LIST_AGENTS, retry_after=7)
    adapter = adapter_of(console, sleep=sleep)
    assert len(await agents(adapter)) == 6
    assert sleep.calls and sleep.calls[0] >= 7
    console.rate_limit(SecurityOperation.LICENCE_USE, times=None, retry_after=3)
    with pytest.raises(RateLimitedError) as caught:
        await adapter.licence_use()
    assert caught.value.retry_after == 3
    console.clear_faults()
    assert len(await adapter.licence_use()) == 2
    await adapter.aclose()


async def test_a_refused_token_is_a_credentials_error_without_the_token() -> None:
    console = world()
    adapter = console.adapter(sleep=no_sleep, credentials=console.wrong_credentials())
    with pytest.raises(CredentialsError) as caught:
        await adapter.test_connection()
    assert caught.value.field == "credentials" and caught.value.status == 401
    assert "Authentication Failed" in str(caught.value) and "4010010" in str(caught.value)
    assert "not-the-console-token" not in str(caught.value)
    with pytest.raises(CredentialsError):
        await agents(adapter)
    await adapter.aclose()
    assert console.calls(SecurityOperation.LIST_AGENTS) == 1  # a static token: no renewal, no retry


async def test_every_agent_status_field_is_normalized() -> None:
    console = world()
    first, off, silent, isolated, stale = list(console.agents)[:5]
    seen = datetime.now(UTC) - timedelta(days=9)
    console.set_protection(off, False)
    console.set_last_seen(silent, seen)
    console.fake.agents[isolated].network_status = "disconnected"
    console.fake.agents[stale].is_up_to_date = False
    console.raise_threat(first, "Ransom.Locky")
    adapter = adapter_of(console)
    read = await agents(adapter)
    await adapter.aclose()
    fake = console.fake.agents[first]
    status = read[first]
    seeded = console.agents[first]
    assert status.customer_id == seeded.customer_id == fake.site_id
    assert status.customer_name == "Acme Dental" and status.hostname == seeded.hostname == "ACME-00"
    assert status.serial_number == device_serial("ACME-00")
    assert status.mac_addresses == (device_mac("ACME-00"),)
    assert status.os_name == "Windows 11 Pro" and status.device_type == "desktop"
    assert status.product == "SentinelOne" and status.agent_version == fake.agent_version
    assert status.protection_enabled is True and status.definitions_up_to_date is True
    assert status.definitions_date is None
    assert status.last_scan_at == fake.last_scan and status.last_seen_at == fake.last_active
    assert status.active_threats == 1 and status.online is True and status.isolated is False
    assert read[off].protection_enabled is False and read[off].active_threats == 0
    assert read[silent].online is False and read[silent].last_seen_at == seen
    assert read[isolated].isolated is True
    assert read[stale].definitions_up_to_date is False


async def test_added_and_removed_agents() -> None:
    console = world()
    customer = next(iter(console.customers))
    cursor = console.cursor()
    added = console.add_agent(customer, "ACME-99", serial_number="SN-X", mac_addresses=["aa-bb-cc-dd-ee-01"])
    removed = next(iter(console.agents))
    console.remove_agent(removed)
    adapter = adapter_of(console)
    changed = await agents(adapter, cursor)
    assert set(changed) == {added}  # decommissioned agents are asked away (isDecommissioned=false)
    assert changed[added].serial_number == "SN-X" and changed[added].mac_addresses == ("AA:BB:CC:DD:EE:01",)
    everything = await agents(adapter)
    assert removed not in everything and added in everything and removed not in console.agents
    with_gone = await agents(adapter_of(console, include_decommissioned=True))
    assert with_gone[removed].protection_enabled is False
    await adapter.aclose()


async def test_an_unreadable_agent_is_skipped_naming_the_field() -> None:
    console = world()
    first, second = list(console.agents)[:2]
    console.fake.corrupt_agent(first, siteId=None)
    console.fake.corrupt_agent(second, activeThreats="many")
    adapter = adapter_of(console)
    pages = [p async for p in adapter.iter_agent_pages(None)]
    await adapter.aclose()
    skipped = {s.endpoint_id: s.field for p in pages for s in p.skipped}
    assert skipped == {first: "siteId", second: "activeThreats"}
    assert len([a for p in pages for a in p.agents]) == 4


async def test_threats_map_classification_mitigation_and_resolution() -> None:
    console = world()
    first, second = list(console.agents)[:2]
    open_one = console.raise_threat(first, "Trojan.Agent")
    cursor = console.cursor()
    gone = console.raise_threat(second, "PUA.Toolbar")
    console.fake.threats[gone].classification = "PUA"
    console.resolve_threat(gone)
    adapter = adapter_of(console)
    snapshot = await adapter.list_threats(None)
    assert [t.threat_id for t in snapshot.threats] == [open_one]
    threat = snapshot.threats[0]
    assert threat.customer_id == console.agents[first].customer_id and threat.agent_id == first
    assert threat.hostname == "ACME-00" and threat.name == "Trojan.Agent"
    assert threat.classification == "Malware" and threat.severity == "malicious"
    assert threat.mitigation_state == "not_mitigated" and threat.resolved is False
    assert snapshot.complete_for == frozenset(console.customers)
    since = await adapter.list_threats(cursor)
    by_id = {t.threat_id: t for t in since.threats}
    assert set(by_id) == {open_one, gone}
    assert by_id[gone].resolved is True and by_id[gone].mitigation_state == "mitigated"
    assert by_id[gone].classification == "PUA"
    await adapter.aclose()


async def test_a_site_filter_limits_threats_agents_and_completeness() -> None:
    console = world()
    acme, blue = list(console.customers)
    blue_agent = next(a for a in console.agents.values() if a.customer_id == blue)
    console.raise_threat(blue_agent.id)
    adapter = adapter_of(console, site_ids=[acme])
    snapshot = await adapter.list_threats(None)
    assert snapshot.threats == [] and snapshot.complete_for == frozenset({acme})
    assert {a.customer_id for a in (await agents(adapter)).values()} == {acme}
    assert [c.id async for c in adapter.list_customers()] == [acme]
    await adapter.aclose()
    assert all(r["params"].get("siteIds") == acme for r in console.fake.requests)


async def test_a_failed_threat_read_is_not_a_snapshot() -> None:
    console = world()
    console.fail_next(SecurityOperation.LIST_THREATS, 500, times=None)
    adapter = adapter_of(console)
    with pytest.raises(TransientVendorError, match="Internal Server Error"):
        await adapter.list_threats(None)
    await adapter.aclose()


async def test_licence_use_per_site_and_product() -> None:
    console = world()
    acme, blue = list(console.customers)
    console.set_licences(acme, 7, 10)
    console.set_licences(blue, 4, None)
    adapter = adapter_of(console)
    uses = {u.customer_id: u for u in await adapter.licence_use()}
    await adapter.aclose()
    assert uses[acme].product == console.licence_product == LICENCE_PRODUCT == "SentinelOne Complete"
    assert uses[acme].sku == "Complete"
    assert (uses[acme].seats_used, uses[acme].seats_purchased) == (7, 10)
    assert (uses[blue].seats_used, uses[blue].seats_purchased) == (4, None)


async def test_customers_carry_the_site_external_id_as_psa_company_id() -> None:
    console = world()
    acme, blue = list(console.customers)
    console.fake.sites[acme].external_id = "29684"
    console.fake.sites[blue].state = "deleted"
    adapter = adapter_of(console)
    customers = [c async for c in adapter.list_customers()]
    assert [(c.id, c.name) for c in customers] == [(acme, "Acme Dental")]
    assert customers[0].psa_company_ids == {
        "autotask": "29684",
        "connectwise_manage": "29684",
        "halopsa": "29684",
    }
    await adapter.aclose()
    only = adapter_of(console, external_id_psa_kinds=[])
    assert [dict(c.psa_company_ids) async for c in only.list_customers()] == [{}]
    await only.aclose()


def test_the_console_url_forms() -> None:
    for typed in (
        "acme.sentinelone.net",
        "https://acme.sentinelone.net/",
        "https://acme.sentinelone.net/web/api/v2.1",
        "https://acme.sentinelone.net/api-doc/",
    ):
        assert api_base(typed) == "https://acme.sentinelone.net/web/api/v2.1", typed


def test_validation_errors_name_the_field() -> None:
    request = httpx.Request("GET", "https://acme.sentinelone.net/web/api/v2.1/agents")
    body = {"errors": [{"code": 4000010, "title": "Validation Error", "detail": {"limit": ["Too big."]}}]}
    message, field = parse_s1_error(httpx.Response(400, json=body, request=request))
    assert field == "limit" and "Validation Error" in message and "4000010" in message
    assert parse_s1_error(httpx.Response(502, text="Bad gateway", request=request)) == ("Bad gateway", None)


async def test_a_refused_query_is_a_request_error() -> None:
    console = world()
    adapter = adapter_of(console)
    console.fake.sites.clear()
    assert await adapter.licence_use() == []
    with pytest.raises(VendorRequestError, match="Validation Error"):
        await adapter._get("/agents", AgentsQuery(limit=1, cursor="not-base64!"))
    await adapter.aclose()


async def test_the_world_counts_calls_by_operation_and_resets() -> None:
    console = world(page_size=2)
    adapter = adapter_of(console, page_size=2)
    [c async for c in adapter.list_customers()]
    await agents(adapter)
    await adapter.list_threats(None)
    assert console.calls(SecurityOperation.LIST_AGENTS) == 3
    assert console.calls(SecurityOperation.LIST_THREATS) == 1
    # Customers and licence use are both GET /sites: the counts are one and the same.
    assert (
        console.calls(SecurityOperation.LIST_CUSTOMERS) == console.calls(SecurityOperation.LICENCE_USE) == 2
    )
    console.reset_calls()
    assert all(console.calls(op) == 0 for op in SecurityOperation)
    console.fail_next(SecurityOperation.LIST_CUSTOMERS, 500, times=None)
    console.clear_faults()
    assert len([c async for c in adapter.list_customers()]) == 2
    await adapter.aclose()
    assert console.hosts == ("connector-msp.sentinelone.net",) and console.page_size == 2


async def test_a_seeded_console_reads_with_its_variety() -> None:
    fake = SentinelOneFake()
    seeded = fake.seed_console(sites=4, agents=400)
    console = SentinelOneHarness().start(customers=(), agents_per_customer=0)
    console.fake = fake
    adapter = adapter_of(console)
    read = await agents(adapter)
    uses = await adapter.licence_use()
    customers = [c async for c in adapter.list_customers()]
    await adapter.aclose()
    assert set(read) == set(seeded.agent_ids) and len(customers) == 4
    assert {c.psa_company_ids["autotask"] for c in customers} == {"1000", "1001", "1002", "1003"}
    assert sum(u.seats_used for u in uses) == 400
    assert any(a.protection_enabled is False for a in read.values())
    assert any(a.online is False for a in read.values())
    assert any(a.isolated for a in read.values())
    assert any(a.definitions_up_to_date is False for a in read.values())
    assert any((a.active_threats or 0) > 0 for a in read.values())
