"""Sophos Central specifics against the stateful fake: the protocol and spec, token reuse and
renewal, regional hosts, key paging up to the vendor's page size, the `lastSeenAfter` cursor,
retries on 5xx and 429 `Retry-After`, credential failures, the status, threat and licence
mappings, and the absence of webhooks."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from adapters.base import AgentStatus, Role, SecurityAdapter, WebhookRequest
from adapters.errors import (
    ConfigurationError,
    CredentialsError,
    RateLimitedError,
    TransientVendorError,
    WebhookParseError,
)
from adapters.registry import discover
from adapters.sophos_central import SPEC
from adapters.sophos_central.adapter import SophosCentralAdapter
from adapters.sophos_central.fake.harness import SophosCentralHarness, SophosCentralWorld
from adapters.sophos_central.fake.store import ENDPOINT_MAX_PAGE, PRODUCT
from adapters.testing.harness import (
    RecordingSleep,
    SecurityHarness,
    SecurityOperation,
    SecurityWorld,
    device_mac,
    device_serial,
    load_harness,
)
from tests.support.contracts import no_sleep

pytestmark = pytest.mark.asyncio


def world(**kwargs: Any) -> SophosCentralWorld:
    kwargs.setdefault("customers", ("Acme Dental", "Blue Harbor Logistics"))
    kwargs.setdefault("agents_per_customer", 3)
    return SophosCentralHarness().start(**kwargs)


def adapter_of(console: SophosCentralWorld, sleep: Any = no_sleep, **options: Any) -> SophosCentralAdapter:
    built = console.adapter(sleep=sleep, options=options)
    assert isinstance(built, SophosCentralAdapter)
    return built


async def agents(adapter: SecurityAdapter, since: datetime | None = None) -> dict[str, AgentStatus]:
    return {a.agent_id: a async for page in adapter.iter_agent_pages(since) for a in page.agents}


async def test_spec_harness_and_protocol() -> None:
    assert SPEC.role is Role.SECURITY
    assert discover().get("sophos_central") is SPEC
    harness = load_harness(SPEC)
    assert isinstance(harness, SophosCentralHarness) and isinstance(harness, SecurityHarness)
    console = world()
    assert isinstance(console, SecurityWorld)
    adapter = console.adapter(sleep=no_sleep)
    assert isinstance(adapter, SecurityAdapter)
    assert "format" in str(SPEC.credentials_schema()["properties"]["client_secret"])
    assert console.fake.client_secret not in repr(
        SPEC.credentials_model.model_validate(console.connection.credentials)
    )
    assert set(console.hosts) >= {"id.sophos.com", "api.central.sophos.com", "api-eu02.central.sophos.com"}
    await adapter.aclose()


async def test_customers_are_the_partners_tenants_over_pages() -> None:
    names = tuple(f"Customer {n:03d}" for n in range(7))
    console = world(customers=names, agents_per_customer=1)
    adapter = adapter_of(console, tenant_page_size=3)
    customers = [c async for c in adapter.list_customers()]
    assert {c.id: c.name for c in customers} == console.customers
    assert console.calls(SecurityOperation.LIST_CUSTOMERS) == 3  # pages 1, 2, 3 of total 3
    pages = [r["query"] for r in console.fake.requests if r["path"] == "/partner/v1/tenants"]
    assert [p["page"] for p in pages] == ["1", "2", "3"] and all(p["pageTotal"] == "true" for p in pages)
    await adapter.aclose()


async def test_one_token_serves_every_call_and_a_401_renews_it() -> None:
    console = world()
    adapter = adapter_of(console)
    assert len(await agents(adapter)) == 6
    await adapter.list_threats(None)
    await adapter.licence_use()
    assert adapter.token_requests == 1
    console.fake.expire_tokens()
    assert len(await agents(adapter)) == 6
    assert adapter.token_requests == 2
    await adapter.aclose()


async def test_a_token_near_its_expiry_is_fetched_again() -> None:
    console = world()
    now = [datetime.now(UTC)]
    built = console.build(sleep=no_sleep, credentials=None, options=None, extra={"clock": lambda: now[0]})
    assert isinstance(built, SophosCentralAdapter)
    await built.test_connection()
    now[0] += timedelta(minutes=59, seconds=30)  # within the 60 s margin of the 1 h token
    assert len(await agents(built)) == 6
    assert built.token_requests == 2
    await built.aclose()


async def test_wrong_credentials_are_a_credentials_error() -> None:
    console = world()
    adapter = console.adapter(sleep=no_sleep, credentials=console.wrong_credentials())
    with pytest.raises(CredentialsError) as caught:
        await adapter.test_connection()
    assert caught.value.field == "credentials" and caught.value.status == 401
    assert "client authentication failed" in caught.value.message
    await adapter.aclose()


async def test_agents_are_listed_per_tenant_on_its_regional_host_in_key_pages() -> None:
    console = world(page_size=2)
    adapter = adapter_of(console)
    pages = [page async for page in adapter.iter_agent_pages(None)]
    assert [len(p.agents) for p in pages] == console.agent_page_sizes() == [2, 1, 2, 1]
    listed = [a for p in pages for a in p.agents]
    assert sorted(a.agent_id for a in listed) == sorted(console.agents)
    for agent in listed:
        seeded = console.agents[agent.agent_id]
        assert (agent.customer_id, agent.hostname) == (seeded.customer_id, seeded.hostname)
        assert agent.customer_name == console.customers[agent.customer_id]
        assert agent.serial_number == device_serial(agent.hostname)
        assert agent.mac_addresses == (device_mac(agent.hostname),)
    calls = [r for r in console.fake.requests if r["path"] == "/endpoint/v1/endpoints"]
    assert {r["host"] for r in calls} == {"api-eu02.central.sophos.com", "api-us01.central.sophos.com"}
    assert [r["query"].get("pageFromKey") for r in calls] == [None, "2000000000002"] * 2
    assert all(r["query"]["view"] == "full" for r in calls)
    await adapter.aclose()


async def test_the_page_size_is_lowered_to_the_vendors_max_size() -> None:
    console = world(customers=("Acme Dental",), agents_per_customer=ENDPOINT_MAX_PAGE + 120)
    adapter = adapter_of(console, page_size=1000)
    pages = [page async for page in adapter.iter_agent_pages(None)]
    assert [len(p.agents) for p in pages] == [ENDPOINT_MAX_PAGE, 120]
    sizes = [r["query"]["pageSize"] for r in console.fake.requests if r["path"] == "/endpoint/v1/endpoints"]
    assert sizes == ["1000", str(ENDPOINT_MAX_PAGE)]
    await adapter.aclose()


async def test_changed_since_is_last_seen_after_plus_the_offline_agents() -> None:
    console = world(page_size=2)
    adapter = adapter_of(console)
    cursor = console.cursor()
    assert await agents(adapter, cursor) == {}
    ids = list(console.agents)
    console.touch([ids[0], ids[4]])
    protection_off = ids[2]
    console.set_protection(protection_off, False)
    silent = ids[5]
    long_ago = datetime(2026, 1, 5, 8, 30, tzinfo=UTC)
    console.set_last_seen(silent, long_ago)
    changed = await agents(adapter, cursor)
    assert set(changed) == {ids[0], ids[4], protection_off, silent}
    assert changed[protection_off].protection_enabled is False
    assert (changed[silent].online, changed[silent].last_seen_at) == (False, long_ago)
    queries = [r["query"] for r in console.fake.requests if r["path"] == "/endpoint/v1/endpoints"]
    stamp = cursor.strftime("%Y-%m-%dT%H:%M:%S.") + f"{cursor.microsecond // 1000:03d}Z"
    assert {q.get("lastSeenAfter") for q in queries[-4:]} == {stamp, None}
    assert [q.get("online") for q in queries[-4:]] == [None, "false", None, "false"]
    # An agent both seen since the cursor and offline is listed once.
    console.fake.endpoints[ids[0]].online = False
    again = [a.agent_id async for page in adapter.iter_agent_pages(cursor) for a in page.agents]
    assert sorted(again) == sorted(changed)
    assert len(await agents(adapter, None)) == 6
    await adapter.aclose()


async def test_every_reported_status_field_is_normalized() -> None:
    console = world()
    adapter = adapter_of(console)
    first, second, third, *_ = list(console.agents)
    endpoint = console.fake.endpoints[second]
    endpoint.isolation = "isolated"
    endpoint.type = "server"
    endpoint.os_name = "Windows Server 2022 Standard"
    endpoint.threats = "suspicious"
    console.set_protection(third, False)
    long_ago = datetime(2026, 1, 5, 8, 30, tzinfo=UTC)
    console.set_last_seen(first, long_ago)
    listed = await agents(adapter)
    healthy = listed[list(console.agents)[3]]
    assert healthy.protection_enabled is True and healthy.active_threats == 0
    assert (healthy.online, healthy.isolated) == (True, False)
    assert (healthy.product, healthy.agent_version) == ("interceptX", "2024.3.2.5")
    assert (healthy.os_name, healthy.device_type) == ("Windows 11 Pro", "computer")
    assert listed[first].last_seen_at == long_ago and listed[first].online is False
    assert listed[second].isolated is True and listed[second].active_threats == 1
    assert (listed[second].device_type, listed[second].os_name) == ("server", "Windows Server 2022 Standard")
    assert listed[third].protection_enabled is False
    # What the endpoint shape does not carry stays unknown.
    assert {(a.definitions_up_to_date, a.definitions_date, a.last_scan_at) for a in listed.values()} == {
        (None, None, None)
    }
    await adapter.aclose()


async def test_an_unreadable_endpoint_is_skipped_on_its_page() -> None:
    console = world()
    broken = list(console.agents)[1]
    console.fake.endpoints[broken].corrupt = {"hostname": None}
    adapter = adapter_of(console)
    pages = [page async for page in adapter.iter_agent_pages(None)]
    skipped = [s for p in pages for s in p.skipped]
    assert [(s.endpoint_id, s.field) for s in skipped] == [(broken, "hostname")]
    assert broken not in {a.agent_id for p in pages for a in p.agents}
    await adapter.aclose()


async def test_a_tenant_host_outside_sophos_central_is_not_called(monkeypatch: pytest.MonkeyPatch) -> None:
    console = world()
    tenant = next(iter(console.fake.tenants.values()))
    adapter = adapter_of(console)
    original = console.fake.tenant_row

    def row(t: Any, id_type: str) -> dict[str, Any]:
        answer = original(t, id_type)
        if t is tenant:
            answer["apiHost"] = "https://api-eu01.attacker.example"
        return answer

    monkeypatch.setattr(console.fake, "tenant_row", row)
    listed = await agents(adapter)
    assert {a.customer_id for a in listed.values()} == {list(console.customers)[1]}
    assert not any("attacker" in r["host"] for r in console.fake.requests)
    await adapter.aclose()


async def test_5xx_on_a_read_is_retried_and_a_lasting_one_is_transient() -> None:
    console = world()
    adapter = adapter_of(console)
    await agents(adapter)
    clean = console.calls(SecurityOperation.LIST_AGENTS)
    console.reset_calls()
    console.fail_next(SecurityOperation.LIST_AGENTS, 500, times=2)
    assert len(await agents(adapter)) == 6
    assert console.calls(SecurityOperation.LIST_AGENTS) == clean + 2
    console.fail_next(SecurityOperation.LIST_AGENTS, 503, times=None)
    with pytest.raises(TransientVendorError):
        await agents(adapter)
    await adapter.aclose()


async def test_429_waits_what_retry_after_asks_and_a_lasting_one_is_rate_limited() -> None:
    console = world()
    sleeps = RecordingSleep()
    adapter = adapter_of(console, sleep=sleeps)
    console.rate_limit(SecurityOperation.LIST_CUSTOMERS, times=2, retry_after=7)
    assert len([c async for c in adapter.list_customers()]) == 2
    assert [s for s in sleeps.calls if s >= 7] == [7.0, 7.0]
    console.rate_limit(SecurityOperation.LIST_THREATS, times=None, retry_after=3)
    with pytest.raises(RateLimitedError) as caught:
        await adapter.list_threats(None)
    assert caught.value.retry_after == 3.0
    await adapter.aclose()


async def test_threats_are_classified_mitigated_and_closed_by_absence() -> None:
    console = world()
    adapter = adapter_of(console)
    first, second, *_ = list(console.agents)
    threat_id = console.raise_threat(first, "Troj/Agent-BFQH")
    pua = console.fake.raise_alert(
        second,
        type="Event::Endpoint::CorePuaDetection",
        category="pua",
        description="PUA detected: 'PsExec'",
        severity="medium",
        actions=("acknowledge",),
    )
    console.fake.raise_alert(
        second, type="Event::Endpoint::OutOfDate", category="updating", description="out of date", actions=()
    )
    snapshot = await adapter.list_threats(None)
    assert snapshot.complete_for == frozenset(console.customers)
    by_id = {t.threat_id: t for t in snapshot.threats}
    assert set(by_id) == {threat_id, pua.id}  # the out-of-date alert is no threat
    malware = by_id[threat_id]
    assert (malware.classification, malware.mitigation_state, malware.resolved) == (
        "Malware",
        "not_mitigated",
        False,
    )
    assert (malware.agent_id, malware.customer_id) == (first, console.agents[first].customer_id)
    assert "Troj/Agent-BFQH" in malware.name and malware.severity == "high"
    assert (by_id[pua.id].classification, by_id[pua.id].mitigation_state) == ("PUA", "mitigated")
    assert (await agents(adapter))[first].active_threats == 1
    console.resolve_threat(threat_id)
    after = await adapter.list_threats(None)
    assert threat_id not in {t.threat_id for t in after.threats}
    assert after.complete_for == frozenset(console.customers)
    assert (await agents(adapter))[first].active_threats == 0
    await adapter.aclose()


async def test_a_tenant_whose_alerts_cannot_be_read_is_not_complete() -> None:
    console = world()
    adapter = adapter_of(console)
    _first, second_tenant = list(console.customers)
    threat = console.raise_threat(
        next(a for a in console.agents.values() if a.customer_id == second_tenant).id
    )
    attempts = adapter._global.retry.attempts
    console.fail_next(SecurityOperation.LIST_THREATS, 503, times=attempts)  # every try of the first
    snapshot = await adapter.list_threats(None)
    assert snapshot.complete_for == frozenset({second_tenant})
    assert [t.threat_id for t in snapshot.threats] == [threat]
    console.fail_next(SecurityOperation.LIST_THREATS, 503, times=None)
    with pytest.raises(TransientVendorError):
        await adapter.list_threats(None)
    await adapter.aclose()


async def test_licence_use_per_customer_and_product() -> None:
    console = world()
    adapter = adapter_of(console)
    acme, blue = list(console.customers)
    console.set_licences(acme, 42, 50)
    console.fake.set_usage(
        blue,
        2,
        ("CIXAS1CSMM", "CIXAS-MSP", "Central Intercept X Advanced for Server - MSP Monthly", "Server"),
    )
    uses = {(u.customer_id, u.product): u for u in await adapter.licence_use()}
    assert set(uses) == {
        (acme, console.licence_product),
        (blue, console.licence_product),
        (blue, "Central Intercept X Advanced for Server - MSP Monthly"),
    }
    assert uses[(acme, console.licence_product)].seats_used == 42
    assert uses[(acme, console.licence_product)].sku == PRODUCT[0]
    assert uses[(acme, console.licence_product)].seats_purchased is None  # billed by use
    assert uses[(blue, console.licence_product)].seats_used == 3
    now = datetime.now(UTC)
    usage = [r for r in console.fake.requests if r["path"].startswith("/partner/v1/billing/usage/")]
    assert usage[-1]["path"] == f"/partner/v1/billing/usage/{now.year}/{now.month}"
    await adapter.aclose()


async def test_licence_use_falls_back_to_last_month_and_sums_order_lines() -> None:
    console = world()
    now = console.fake.now
    last = (now.year - 1, 12) if now.month == 1 else (now.year, now.month - 1)
    console.fake.usage_months = {last}
    acme = next(iter(console.customers))
    console.fake.tenants[acme].usage.append((*PRODUCT, 5))  # a second order line of the same SKU
    adapter = adapter_of(console)
    uses = {u.customer_id: u for u in await adapter.licence_use()}
    assert uses[acme].seats_used == 3 + 5
    paths = [r["path"] for r in console.fake.requests if r["path"].startswith("/partner/v1/billing/")]
    assert paths == [
        f"/partner/v1/billing/usage/{now.year}/{now.month}",
        f"/partner/v1/billing/usage/{last[0]}/{last[1]}",
    ]
    console.fake.usage_months = set()
    assert await adapter.licence_use() == []
    await adapter.aclose()


async def test_sophos_has_no_webhooks() -> None:
    console = world()
    adapter = adapter_of(console)
    threat = console.raise_threat(next(iter(console.agents)))
    assert console.native_threat_webhook(threat) is None and console.webhook_secret is None
    request = WebhookRequest(body=b"{}", headers={}, received_at=datetime.now(UTC))
    assert adapter.verify_webhook(request, "secret") is None
    with pytest.raises(WebhookParseError) as caught:
        adapter.parse_webhook(request)
    assert caught.value.field == "body"
    await adapter.aclose()


async def test_harness_mutators_show_in_listings() -> None:
    console = world()
    adapter = adapter_of(console)
    acme = next(iter(console.customers))
    cursor = console.cursor()
    new = console.add_agent(acme, "ACME-NEW", serial_number="SN-NEW", mac_addresses=["02:00:00:00:00:01"])
    gone = list(console.agents)[1]
    console.remove_agent(gone)
    changed = await agents(adapter, cursor)
    assert set(changed) == {new}
    assert (changed[new].serial_number, changed[new].mac_addresses) == ("SN-NEW", ("02:00:00:00:00:01",))
    everything = await agents(adapter)
    assert gone not in everything and set(everything) == set(console.agents)
    assert console.calls(SecurityOperation.LIST_AGENTS) == 2 * 2 + 2  # two passes per tenant, then one
    console.reset_calls()
    console.fail_next(SecurityOperation.LICENCE_USE, 500, times=1)
    assert await adapter.licence_use()
    assert console.calls(SecurityOperation.LICENCE_USE) == 2
    await adapter.aclose()


async def test_a_credential_that_is_no_partner_organization_or_tenant_is_a_configuration_error() -> None:
    console = world()
    console.fake.id_type = "user"
    adapter = adapter_of(console)
    with pytest.raises(ConfigurationError, match="'user'"):
        await adapter.test_connection()
    await adapter.aclose()
