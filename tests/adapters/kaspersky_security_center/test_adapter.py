"""KSC behaviour against the stateful fake: the declaration and harness, sessions per virtual server,
chunk paging and accessor release, full listings whatever the cursor, retries, 429 `Retry-After`,
refused sign-ins, every `AgentStatus` field, derived threats, licence use and the absent push."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import SecretStr, ValidationError

from adapters.base import AgentStatus, Role, SecurityAdapter, WebhookRequest
from adapters.errors import CredentialsError, RateLimitedError, TransientVendorError, WebhookParseError
from adapters.kaspersky_security_center import SPEC
from adapters.kaspersky_security_center.adapter import KscAdapter, api_base, kscbasic
from adapters.kaspersky_security_center.fake.harness import KscHarness, KscWorld
from adapters.kaspersky_security_center.fake.store import PRODUCT, STATUS_RTP
from adapters.kaspersky_security_center.models import KscCredentials, KscOptions
from adapters.registry import discover
from adapters.testing.harness import (
    RecordingSleep,
    SecurityHarness,
    SecurityOperation,
    SecurityWorld,
    device_name,
    load_harness,
)
from tests.support.contracts import no_sleep

CUSTOMERS = ("Acme Dental", "Blue Harbor Logistics")


def world(**kwargs: Any) -> KscWorld:
    return KscHarness().start(customers=CUSTOMERS, agents_per_customer=kwargs.pop("agents", 3), **kwargs)


def adapter_of(ksc: KscWorld, sleep: Any = no_sleep, **options: Any) -> KscAdapter:
    built = ksc.adapter(sleep=sleep, options=options)
    assert isinstance(built, KscAdapter)
    return built


async def agents(adapter: KscAdapter, since: datetime | None = None) -> dict[str, AgentStatus]:
    return {a.agent_id: a async for page in adapter.iter_agent_pages(since) for a in page.agents}


def vserver_of(headers: dict[str, str]) -> str | None:
    sent = headers.get("x-ksc-vserver")
    return None if sent is None else base64.b64decode(sent).decode()


async def test_the_spec_is_installed_and_the_harness_and_adapter_satisfy_their_protocols() -> None:
    assert discover().get(SPEC.kind) is SPEC
    assert SPEC.role is Role.SECURITY and SPEC.default_base_url is None
    harness = load_harness(SPEC)
    assert isinstance(harness, SecurityHarness) and harness.in_demo
    ksc = harness.start(customers=CUSTOMERS, agents_per_customer=2)
    assert isinstance(ksc, SecurityWorld)
    adapter = ksc.adapter()
    assert isinstance(adapter, SecurityAdapter)
    await adapter.aclose()
    assert not ksc.reports_serials and not ksc.reports_macs
    assert [a.hostname for a in ksc.agents.values()] == [
        device_name(c, n) for c in CUSTOMERS for n in range(2)
    ]


def test_the_base_url_is_the_administration_server() -> None:
    assert api_base("ksc.msp.example:13299") == "https://ksc.msp.example:13299"
    assert api_base("https://ksc.msp.example:13299/api/v1.0/") == "https://ksc.msp.example:13299"
    with pytest.raises(ValidationError):
        KscOptions(page_size=1001)


def test_the_sign_in_header_is_kscbasic_with_base64_values() -> None:
    internal = KscCredentials(username="api", password=SecretStr("pw"))
    assert kscbasic(internal) == 'KSCBasic user="YXBp", pass="cHc=", internal="1"'
    domain = KscCredentials(username="api", password=SecretStr("pw"), domain="CORP")
    assert kscbasic(domain) == 'KSCBasic user="YXBp", pass="cHc=", domain="Q09SUA==", internal="0"'


async def test_customers_are_the_virtual_servers() -> None:
    ksc = world()
    adapter = adapter_of(ksc)
    customers = [c async for c in adapter.list_customers()]
    assert {c.id: c.name for c in customers} == dict(ksc.customers)
    assert [c.name for c in customers] == list(CUSTOMERS)
    await adapter.aclose()


async def test_each_customer_is_read_in_its_own_virtual_server_session() -> None:
    ksc = world()
    adapter = adapter_of(ksc)
    listed = await agents(adapter)
    assert {a.customer_id for a in listed.values()} == set(ksc.customers)
    assert all(a.customer_id == ksc.agents[a.agent_id].customer_id for a in listed.values())
    starts = [r for r in ksc.fake.requests if r["method"] == "Session.StartSession"]
    assert [vserver_of(r["headers"]) for r in starts] == [None, *ksc.customers]
    for request in ksc.fake.requests:
        if request["method"] in ("HostGroup.FindHosts", "ChunkAccessor.GetItemsChunk"):
            assert vserver_of(request["headers"]) in ksc.customers
    # One session per scope, reused by a second listing.
    await agents(adapter)
    assert adapter.session_starts == 3
    await adapter.aclose()


async def test_an_ended_session_is_started_again_once() -> None:
    ksc = world()
    adapter = adapter_of(ksc)
    assert len(await agents(adapter)) == 6
    ksc.fake.expire_sessions()
    assert len(await agents(adapter)) == 6
    assert adapter.session_starts == 6
    await adapter.aclose()


async def test_hosts_come_a_chunk_per_page_and_every_accessor_is_released() -> None:
    ksc = world(agents=5, page_size=2)
    adapter = adapter_of(ksc)
    pages = [page async for page in adapter.iter_agent_pages(None)]
    assert [len(p.agents) for p in pages] == ksc.agent_page_sizes() == [2, 2, 1, 2, 2, 1]
    chunks = [r["body"] for r in ksc.fake.requests if r["method"] == "ChunkAccessor.GetItemsChunk"]
    assert [(c["nStart"], c["nCount"]) for c in chunks] == [(0, 2), (2, 2), (4, 2)] * 2
    assert not ksc.fake.accessors and len(ksc.fake.released) == 2
    await adapter.aclose()


async def test_the_largest_page_the_adapter_asks_for_is_1000_hosts() -> None:
    ksc = KscHarness().start(customers=("Acme Dental",), agents_per_customer=1001, page_size=1000)
    adapter = adapter_of(ksc)
    pages = [len(page.agents) async for page in adapter.iter_agent_pages(None)]
    assert pages == ksc.agent_page_sizes() == [1000, 1]
    await adapter.aclose()


async def test_an_abandoned_or_failed_listing_still_releases_its_accessor() -> None:
    ksc = world(page_size=2)
    adapter = adapter_of(ksc)
    listing = adapter.iter_agent_pages(None)
    await anext(listing)
    await listing.aclose()
    assert not ksc.fake.accessors
    ksc.fail_next(SecurityOperation.LIST_AGENTS, 500, times=None)
    with pytest.raises(TransientVendorError):
        await agents(adapter)
    assert not ksc.fake.accessors
    await adapter.aclose()


async def test_every_listing_is_complete_whatever_the_cursor() -> None:
    """KSC cannot filter hosts by change time: a cursor after every change still lists them all."""
    ksc = world()
    adapter = adapter_of(ksc)
    cursor = ksc.cursor()
    first = next(iter(ksc.agents))
    ksc.touch([first])
    listed = await agents(adapter, cursor)
    assert set(listed) == set(ksc.agents)
    seen = listed[first].last_seen_at
    assert seen is not None and seen >= cursor
    await adapter.aclose()


async def test_5xx_answers_are_retried() -> None:
    ksc = world(page_size=2)
    adapter = adapter_of(ksc)
    ksc.fail_next(SecurityOperation.LIST_AGENTS, 503, times=2)
    ksc.fail_next(SecurityOperation.LIST_CUSTOMERS, 500)
    assert len(await agents(adapter)) == 6
    assert ksc.calls(SecurityOperation.LIST_AGENTS) == 4 + 2
    assert ksc.calls(SecurityOperation.LIST_CUSTOMERS) == 2
    await adapter.aclose()


async def test_a_429_waits_what_retry_after_asks_and_a_lasting_one_is_rate_limited() -> None:
    ksc = world()
    sleep = RecordingSleep()
    adapter = adapter_of(ksc, sleep=sleep)
    ksc.rate_limit(SecurityOperation.LICENCE_USE, retry_after=7)
    assert len(await adapter.licence_use()) == 2
    assert sleep.calls and sleep.calls[0] >= 7
    ksc.rate_limit(SecurityOperation.LIST_CUSTOMERS, times=None, retry_after=3)
    with pytest.raises(RateLimitedError) as caught:
        await adapter.test_connection()
    assert caught.value.retry_after == 3
    await adapter.aclose()


async def test_a_refused_sign_in_is_a_credentials_error_without_the_password() -> None:
    ksc = world()
    adapter = ksc.adapter(sleep=no_sleep, credentials=ksc.wrong_credentials())
    with pytest.raises(CredentialsError) as caught:
        await adapter.test_connection()
    assert caught.value.field == "credentials" and caught.value.status == 401
    assert "not-the-right-one" not in str(caught.value)
    await adapter.aclose()
    # The fake signs in internal users only: a domain account is refused the same way.
    domain = ksc.adapter(sleep=no_sleep, credentials={"domain": "CORP"})
    with pytest.raises(CredentialsError, match="internal"):
        await domain.test_connection()
    await domain.aclose()


async def test_every_status_field_ksc_reports_is_normalized() -> None:
    ksc = world()
    adapter = adapter_of(ksc)
    ids = list(ksc.agents)
    healthy = (await agents(adapter))[ids[0]]
    host = ksc.fake.host(ids[0])
    assert healthy.hostname == device_name(CUSTOMERS[0], 0)
    assert healthy.customer_name == CUSTOMERS[0]
    assert healthy.protection_enabled is True and healthy.online is True
    assert healthy.product == PRODUCT == ksc.licence_product
    assert healthy.agent_version == host.nag_version and healthy.os_name == host.os_name
    assert healthy.definitions_up_to_date is True
    assert healthy.definitions_date == host.bases_time.replace(microsecond=0)  # type: ignore[union-attr]
    assert healthy.last_scan_at == host.last_full_scan.replace(microsecond=0)  # type: ignore[union-attr]
    assert healthy.last_seen_at == host.last_visible.replace(microsecond=0)  # type: ignore[union-attr]
    assert healthy.active_threats == 0
    assert (healthy.serial_number, healthy.mac_addresses, healthy.isolated, healthy.device_type) == (
        None,
        None,
        None,
        None,
    )

    ksc.set_protection(ids[1], False)
    silent = datetime.now(UTC) - timedelta(days=9)
    ksc.set_last_seen(ids[2], silent)
    old = ksc.fake.host(ids[3])
    old.bases_time = datetime.now(UTC) - timedelta(days=30)
    unknown = ksc.fake.host(ids[4])
    unknown.rtp_state = 0
    unknown.status &= ~STATUS_RTP
    unknown.win_name, unknown.display_name = unknown.display_name, ""
    listed = await agents(adapter)
    assert listed[ids[1]].protection_enabled is False
    assert listed[ids[2]].online is False
    assert listed[ids[2]].last_seen_at == silent.replace(microsecond=0)
    assert listed[ids[3]].definitions_up_to_date is False
    assert listed[ids[4]].protection_enabled is None and listed[ids[4]].product is None
    assert listed[ids[4]].hostname == device_name(CUSTOMERS[1], 1)  # the Windows host name
    lenient = adapter_of(ksc, outdated_definitions_days=60, product="KES 12")
    assert (await agents(lenient))[ids[3]].definitions_up_to_date is True
    assert (await agents(lenient))[ids[0]].product == "KES 12"
    await lenient.aclose()
    await adapter.aclose()


async def test_a_host_without_its_id_is_skipped_on_its_page() -> None:
    ksc = world()
    adapter = adapter_of(ksc)
    broken = next(iter(ksc.agents))
    ksc.fake.host(broken).broken = True
    pages = [page async for page in adapter.iter_agent_pages(None)]
    skipped = [s for p in pages for s in p.skipped]
    assert [(s.endpoint_id, s.field) for s in skipped] == [("?", "KLHST_WKS_HOSTNAME")]
    assert broken not in {a.agent_id for p in pages for a in p.agents}
    await adapter.aclose()


async def test_added_and_removed_agents() -> None:
    ksc = world()
    adapter = adapter_of(ksc)
    customer = next(iter(ksc.customers))
    added = ksc.add_agent(customer, "ACME-99")
    gone = next(iter(ksc.agents))
    ksc.remove_agent(gone)
    listed = await agents(adapter)
    assert listed[added].hostname == "ACME-99" and gone not in listed
    assert set(listed) == set(ksc.agents)
    await adapter.aclose()


async def test_threats_are_hosts_with_uncured_objects_and_close_when_cured() -> None:
    ksc = world()
    adapter = adapter_of(ksc)
    empty = await adapter.list_threats(None)
    assert empty.threats == [] and empty.complete_for == frozenset(ksc.customers)
    agent = list(ksc.agents)[4]
    threat_id = ksc.raise_threat(agent)
    snapshot = await adapter.list_threats(ksc.cursor())
    [threat] = snapshot.threats
    assert threat.threat_id == threat_id
    assert (threat.agent_id, threat.customer_id) == (agent, ksc.agents[agent].customer_id)
    assert threat.hostname == ksc.agents[agent].hostname
    assert threat.name == "1 uncured object (1 detected)"
    assert (threat.classification, threat.mitigation_state, threat.severity) == (
        "uncured objects",
        "not_cured",
        "critical",
    )
    assert threat.resolved is False
    assert (await agents(adapter))[agent].active_threats == 1
    filters = [r["body"]["wstrFilter"] for r in ksc.fake.requests if r["method"] == "HostGroup.FindHosts"]
    assert "(KLHST_WKS_UNCURED_COUNT > 0)" in filters
    ksc.resolve_threat(threat_id)
    cured = await adapter.list_threats(None)
    assert cured.threats == [] and cured.complete_for == frozenset(ksc.customers)
    assert ksc.calls(SecurityOperation.LIST_THREATS) == 3 * len(ksc.customers)
    await adapter.aclose()


async def test_licence_use_per_customer_and_product() -> None:
    ksc = world()
    adapter = adapter_of(ksc)
    uses = await adapter.licence_use()
    assert {(u.customer_id, u.product, u.seats_used, u.seats_purchased) for u in uses} == {
        (customer, PRODUCT, 3, 3) for customer in ksc.customers
    }
    assert ksc.licence_product == PRODUCT and all(u.sku for u in uses)
    first, second = list(ksc.customers)
    ksc.set_licences(first, used=5, purchased=None)
    ksc.set_licences(second, used=2, purchased=10)
    by_customer = {u.customer_id: u for u in await adapter.licence_use()}
    assert (by_customer[first].seats_used, by_customer[first].seats_purchased) == (5, None)
    assert (by_customer[second].seats_used, by_customer[second].seats_purchased) == (2, 10)
    assert not ksc.fake.iterators and ksc.calls(SecurityOperation.LICENCE_USE) == 4
    await adapter.aclose()


async def test_ksc_has_no_push() -> None:
    ksc = world()
    adapter = adapter_of(ksc)
    delivery = WebhookRequest(body=b"{}", headers={}, received_at=datetime.now(UTC))
    assert adapter.verify_webhook(delivery, "secret") is None
    with pytest.raises(WebhookParseError):
        adapter.parse_webhook(delivery)
    threat = ksc.raise_threat(next(iter(ksc.agents)))
    assert ksc.native_threat_webhook(threat) is None and ksc.webhook_secret is None
    await adapter.aclose()
