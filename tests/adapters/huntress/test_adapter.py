"""The Huntress adapter against its stateful fake: paging (the vendor's 500 maximum), the
changed-since read, pacing under 60 requests a minute, retries on 5xx and 429 with Retry-After,
auth failures, the normalization of every field Huntress reports, threat and licence mapping, and
Svix webhook verification."""

from __future__ import annotations

import asyncio
import base64
import json
from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError

from adapters.base import AgentStatus, ConnectionContext, ProblemKind, SecurityAdapter, WebhookRequest
from adapters.errors import (
    CredentialsError,
    RateLimitedError,
    TransientVendorError,
    VendorRequestError,
    WebhookParseError,
)
from adapters.huntress import SPEC
from adapters.huntress.adapter import HuntressAdapter, api_base, classification
from adapters.huntress.fake.harness import WEBHOOK_SECRET, HuntressHarness, HuntressWorld
from adapters.huntress.fake.seed import seed_fleet
from adapters.huntress.models import HuntressOptions
from adapters.huntress.pacing import RollingWindow
from adapters.huntress.webhooks import sign
from adapters.testing.harness import RecordingSleep, SecurityOperation, load_harness
from tests.support.contracts import no_sleep

CUSTOMERS = ("Acme Dental", "Blue Harbor Logistics", "Cedar Law Group")


def world(
    agents: int = 5, page_size: int | None = None, customers: tuple[str, ...] = CUSTOMERS
) -> HuntressWorld:
    harness = load_harness(SPEC)
    assert isinstance(harness, HuntressHarness)
    return harness.start(customers=customers, agents_per_customer=agents, page_size=page_size)


def huntress(w: HuntressWorld, **options: object) -> HuntressAdapter:
    built = w.adapter(sleep=no_sleep, options=options)
    assert isinstance(built, HuntressAdapter)
    return built


async def agents_of(adapter: SecurityAdapter, since: datetime | None = None) -> dict[str, AgentStatus]:
    return {a.agent_id: a async for page in adapter.iter_agent_pages(since) for a in page.agents}


def test_the_spec_is_a_security_console_with_its_harness() -> None:
    assert SPEC.kind == "huntress" and SPEC.role.value == "security"
    assert SPEC.default_base_url == "https://api.huntress.io" and SPEC.webhook_scheme == "svix"
    assert isinstance(load_harness(SPEC), HuntressHarness)
    assert api_base("api.huntress.io/v1/") == "https://api.huntress.io"
    assert api_base(None) == "https://api.huntress.io"


async def test_the_adapter_satisfies_the_protocol_and_lists_customers() -> None:
    w = world()
    adapter = huntress(w)
    assert isinstance(adapter, SecurityAdapter)
    customers = [c async for c in adapter.list_customers()]
    assert {c.id: c.name for c in customers} == dict(w.customers)
    await adapter.aclose()


async def test_agents_come_a_vendor_page_at_a_time() -> None:
    w = world(agents=5, page_size=4)
    adapter = huntress(w)
    pages = [page async for page in adapter.iter_agent_pages(None)]
    assert [len(p.agents) for p in pages] == w.agent_page_sizes() == [4, 4, 4, 3]
    assert w.calls(SecurityOperation.LIST_AGENTS) == 4
    assert {a.agent_id for p in pages for a in p.agents} == set(w.agents)
    await adapter.aclose()


async def test_the_default_page_is_the_vendors_maximum_of_500() -> None:
    w = world(agents=200, customers=("Acme Dental", "Blue Harbor Logistics", "Cedar Law Group"))
    adapter = huntress(w)
    pages = [page async for page in adapter.iter_agent_pages(None)]
    assert [len(p.agents) for p in pages] == w.agent_page_sizes() == [500, 100]
    limits = {r["params"].get("limit") for r in w.fake.requests if r["path"] == "/v1/agents"}
    assert limits == {"500"}
    await adapter.aclose()
    with pytest.raises(ValidationError):
        HuntressOptions(page_size=501)
    w.fake.reset_calls()
    too_big = huntress(w)
    too_big._options = HuntressOptions.model_construct(**{**HuntressOptions().model_dump(), "page_size": 501})
    with pytest.raises(VendorRequestError, match="limit"):
        await agents_of(too_big)
    await too_big.aclose()


async def test_changed_since_reads_by_update_time_and_stops_at_the_cursor() -> None:
    w = world(agents=10, page_size=3)
    adapter = huntress(w)
    cursor = w.cursor()
    touched = list(w.agents)[4:6]
    w.touch(touched)
    added = w.add_agent(next(iter(w.customers)), "ACME-99", serial_number="SN-ACME99")
    w.reset_calls()
    changed = await agents_of(adapter, cursor)
    assert set(changed) == {*touched, added}
    # Three changed agents, newest first, pages of three: the second page reaches older agents.
    assert w.calls(SecurityOperation.LIST_AGENTS) == 2
    queries = [r["params"] for r in w.fake.requests if r["path"] == "/v1/agents"]
    assert all(q["sort_field"] == "updated_at" and q["sort_direction"] == "desc" for q in queries)
    assert await agents_of(adapter, w.cursor() + timedelta(days=1)) == {}
    await adapter.aclose()


async def test_a_removed_agent_is_gone_from_listings() -> None:
    w = world(agents=2)
    adapter = huntress(w)
    gone = next(iter(w.agents))
    w.remove_agent(gone)
    assert gone not in await agents_of(adapter) and gone not in w.agents
    await adapter.aclose()


async def test_every_reported_status_field_is_normalized() -> None:
    w = world(agents=4)
    adapter = huntress(w)
    ids = list(w.agents)
    fake = w.fake
    healthy = (await agents_of(adapter))[ids[0]]
    seeded = w.agents[ids[0]]
    assert healthy.hostname == seeded.hostname and healthy.serial_number == seeded.serial_number
    assert healthy.mac_addresses == seeded.mac_addresses
    assert healthy.customer_id == seeded.customer_id and healthy.customer_name == "Acme Dental"
    assert (healthy.protection_enabled, healthy.definitions_up_to_date, healthy.isolated, healthy.online) == (
        True,
        True,
        False,
        True,
    )
    assert healthy.product == "Huntress Managed EDR" and healthy.agent_version == "0.13.78"
    assert healthy.os_name == "Windows 11 Pro" and healthy.device_type == "workstation"

    w.set_protection(ids[0], False)
    fake.set_defender(int(ids[1]), "Unhealthy", "Out of date", at=w.changed_at)
    fake.set_firewall(int(ids[2]), "Isolated", at=w.changed_at)
    silent = datetime(2026, 1, 5, 8, 30, tzinfo=UTC)
    w.set_last_seen(ids[3], silent)
    fake.agents[int(ids[3])].os = "Windows Server 2022 Standard"
    fake.agents[int(ids[3])].firewall_status = "Pending Isolation"
    fake.agents[int(ids[3])].defender_status = "Something New"
    fake.agents[int(ids[3])].defender_substatus = ""
    statuses = await agents_of(adapter, w.cursor())
    assert statuses[ids[0]].protection_enabled is False
    # Unhealthy says Defender is on with an engine off, out of date, or off: protection unknown.
    assert statuses[ids[1]].protection_enabled is None and statuses[ids[1]].definitions_up_to_date is False
    assert statuses[ids[2]].isolated is True
    last = statuses[ids[3]]
    assert last.last_seen_at == silent and last.online is False and last.device_type == "server"
    assert last.isolated is False and last.protection_enabled is None and last.definitions_up_to_date is None
    w.set_protection(ids[0], True)
    assert (await agents_of(adapter, w.cursor()))[ids[0]].protection_enabled is True
    await adapter.aclose()


async def test_an_agent_without_its_organization_is_skipped_by_name() -> None:
    w = world(agents=2)
    adapter = huntress(w)
    broken = next(iter(w.agents))
    original = w.fake.agent_row

    def row(agent):  # type: ignore[no-untyped-def]
        data = original(agent)
        if str(agent.id) == broken:
            data["organization_id"] = None
        return data

    w.fake.agent_row = row  # type: ignore[method-assign]
    pages = [page async for page in adapter.iter_agent_pages(None)]
    skipped = [s for p in pages for s in p.skipped]
    assert [(s.endpoint_id, s.field) for s in skipped] == [(broken, "organization_id")]
    assert broken not in {a.agent_id for p in pages for a in p.agents}
    await adapter.aclose()


async def test_5xx_is_retried_and_429_waits_retry_after() -> None:
    w = world(agents=2)
    sleep = RecordingSleep()
    adapter = w.adapter(sleep=sleep)
    w.fail_next(SecurityOperation.LIST_AGENTS, 503, times=2)
    assert len(await agents_of(adapter)) == len(w.agents)
    assert w.calls(SecurityOperation.LIST_AGENTS) == 3
    w.rate_limit(SecurityOperation.LIST_CUSTOMERS, retry_after=7)
    assert [c async for c in adapter.list_customers()]
    assert any(wait >= 7 for wait in sleep.calls)
    w.rate_limit(SecurityOperation.LIST_THREATS, times=None, retry_after=2)
    with pytest.raises(RateLimitedError) as raised:
        await adapter.list_threats(None)
    assert raised.value.retry_after == 2
    w.clear_faults()
    w.fail_next(SecurityOperation.LICENCE_USE, 500, times=None)
    with pytest.raises(TransientVendorError):
        await adapter.licence_use()
    await adapter.aclose()


async def test_wrong_credentials_are_a_credentials_error_sent_once() -> None:
    w = world(agents=1)
    adapter = w.adapter(sleep=no_sleep, credentials=w.wrong_credentials())
    with pytest.raises(CredentialsError):
        await adapter.test_connection()
    assert w.fake.call_count("GET /v1/account") == 1
    with pytest.raises(CredentialsError):
        [c async for c in adapter.list_customers()]
    await adapter.aclose()
    good = w.adapter(sleep=no_sleep)
    await good.test_connection()
    assert w.fake.requests[-1]["path"] == "/v1/account" and w.fake.statuses[200] == 1
    await good.aclose()


def test_the_rolling_window_follows_the_documents_example() -> None:
    """Request 1 at T0, 2 at T5, 3..60 at T10: 61 waits until T60, 62 until T65."""

    now = [0.0]

    async def sleep(seconds: float) -> None:
        now[0] += seconds

    window = RollingWindow(60, 60.0, clock=lambda: now[0], sleep=sleep)

    async def run() -> list[float]:
        sent: list[float] = []
        for at, count in ((0.0, 1), (5.0, 1), (10.0, 58)):
            now[0] = at
            for _ in range(count):
                await window.acquire()
                sent.append(now[0])
        now[0] = 55.0
        await window.acquire()
        sent.append(now[0])
        await window.acquire()
        sent.append(now[0])
        return sent

    sent = asyncio.run(run())
    assert sent[-2:] == [60.0, 65.0]
    assert window.waits == [5.0, 5.0]
    for i, at in enumerate(sent):
        assert sum(1 for other in sent[: i + 1] if other > at - 60.0) <= 60


class VirtualTime:
    """A monotonic clock that only a sleep moves, shared by the adapter and the fake."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.calls: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.calls.append(seconds)
        self.now += seconds


def paced(w: HuntressWorld, clock: VirtualTime, **options: object) -> HuntressAdapter:
    built = SPEC.factory(
        ConnectionContext(
            connection_id="pacing",
            base_url=w.connection.base_url,
            credentials=SPEC.credentials_model.model_validate(w.connection.credentials),
            options=SPEC.options_model.model_validate(options),
            transport_factory=lambda _url: w.transport(),
            sleep=clock.sleep,
            extra={"monotonic": clock},
        )
    )
    assert isinstance(built, HuntressAdapter)
    return built


async def test_the_adapter_paces_itself_under_60_requests_a_minute() -> None:
    w = world(agents=25, page_size=1)
    clock = VirtualTime()
    w.fake.request_limit, w.fake.monotonic = 60, clock
    adapter = paced(w, clock, page_size=1)
    assert len(await agents_of(adapter)) == 75
    # 3 organization pages and 75 agent pages in no time: the 61st waited a minute, and the fake
    # enforcing the documented sliding window never had to refuse one.
    assert w.fake.call_count() == 78 and w.fake.statuses[429] == 0
    assert adapter.window.waits == [pytest.approx(60.0)] and clock.calls == [pytest.approx(60.0)]
    await adapter.aclose()
    slower = paced(w, clock, requests_per_minute=10)
    for _ in range(12):
        await slower.test_connection()
    assert len(slower.window.waits) == 1 and w.fake.statuses[429] == 0
    await slower.aclose()


async def test_without_pacing_the_fake_refuses_and_retry_after_recovers() -> None:
    """The control: the same burst unpaced meets 429s, each waited out by its Retry-After."""
    w = world(agents=25, page_size=1)
    clock = VirtualTime()
    w.fake.request_limit, w.fake.monotonic = 60, clock
    adapter = paced(w, clock, page_size=1)
    adapter.window.limit = 10_000
    assert len(await agents_of(adapter)) == 75
    assert w.fake.statuses[429] >= 1
    assert any(wait >= 59 for wait in clock.calls)
    await adapter.aclose()


async def test_threats_are_open_incident_reports_with_their_classification() -> None:
    w = world(agents=3)
    adapter = huntress(w)
    ids = list(w.agents)
    first = w.raise_threat(ids[0], "Malicious scheduled task")
    w.fake.reports[int(first)].indicator_types = ["footholds", "ransomware_canaries"]
    w.fake.reports[int(first)].severity = "critical"
    second = w.raise_threat(ids[1])
    w.fake.reports[int(second)].status = "auto_remediating"
    snapshot = await adapter.list_threats(None)
    threats = {t.threat_id: t for t in snapshot.threats}
    assert set(threats) == {first, second}
    assert snapshot.complete_for == frozenset(w.customers)
    one = threats[first]
    assert one.classification == "ransomware_canaries, footholds" and one.severity == "critical"
    assert one.agent_id == ids[0] and one.customer_id == w.agents[ids[0]].customer_id
    assert one.hostname == w.agents[ids[0]].hostname and "Malicious scheduled task" in one.name
    assert one.mitigation_state == "sent" and one.resolved is False
    assert threats[second].mitigation_state == "auto_remediating" and not threats[second].resolved

    cursor = w.cursor()
    w.resolve_threat(first)
    third = w.raise_threat(ids[2])
    w.fake.close_report(int(third), at=w.changed_at, status="dismissed")
    assert {t.threat_id for t in (await adapter.list_threats(None)).threats} == {second}
    since = {t.threat_id: t for t in (await adapter.list_threats(cursor)).threats}
    assert set(since) == {first, second, third}
    assert since[first].resolved and since[first].mitigation_state == "closed"
    assert since[third].resolved and since[third].mitigation_state == "dismissed"
    assert {t.threat_id for t in (await adapter.list_threats(w.changed_at + timedelta(days=1))).threats} == {
        second
    }
    assert classification(["app_control", "footholds", "footholds"]) == "footholds, app_control"
    assert classification([]) is None
    await adapter.aclose()


async def test_licence_use_per_customer_and_product() -> None:
    w = world(agents=4)
    adapter = huntress(w)
    acme, harbor, cedar = list(w.customers)
    w.set_licences(acme, 3, 10)
    uses = {u.customer_id: u for u in await adapter.licence_use()}
    assert set(uses) == {acme, harbor, cedar}
    assert uses[acme].seats_used == 3 and uses[harbor].seats_used == 4
    assert all(
        u.product == w.licence_product and u.sku == "edr" and u.seats_purchased is None for u in uses.values()
    )
    assert w.calls(SecurityOperation.LICENCE_USE) == 3
    await adapter.aclose()
    w.reset_calls()
    counting = huntress(w, licence_counts="agents")
    uses = {u.customer_id: u for u in await counting.licence_use()}
    assert uses[acme].seats_used == 4  # the listing's agents_count, not the billable count
    assert w.calls(SecurityOperation.LICENCE_USE) == 0
    await counting.aclose()


async def test_other_products_appear_when_the_organization_uses_them() -> None:
    w = world(agents=1, customers=("Acme Dental",))
    original = w.fake.organization_detail

    def detail(org):  # type: ignore[no-untyped-def]
        data = original(org)
        data["actual_usages"]["itdr"] = [{"type": "microsoft", "billable_identities_count": 30}]
        data["actual_usages"]["sat"] = {"learners_count": 12}
        data["actual_usages"]["siem"] = {"billable_log_sources_count": 0}
        return data

    w.fake.organization_detail = detail  # type: ignore[method-assign]
    adapter = huntress(w)
    uses = {u.sku: u.seats_used for u in await adapter.licence_use()}
    assert uses == {"edr": 1, "itdr": 30, "sat": 12}
    await adapter.aclose()


def delivery(
    body: bytes, *, secret: str = WEBHOOK_SECRET, sent: datetime | None = None, prefix: str = "svix-"
) -> WebhookRequest:
    at = sent or datetime.now(UTC)
    return WebhookRequest(
        body=body,
        headers={
            f"{prefix}id": "msg_2abc",
            f"{prefix}timestamp": str(int(at.timestamp())),
            f"{prefix}signature": sign(secret, "msg_2abc", at, body),
        },
        received_at=datetime.now(UTC),
    )


async def test_webhooks_are_verified_the_svix_way() -> None:
    w = world(agents=1)
    adapter = huntress(w)
    agent = next(iter(w.agents))
    request = w.native_threat_webhook(w.raise_threat(agent))
    assert request is not None and w.webhook_secret == WEBHOOK_SECRET
    assert adapter.verify_webhook(request, WEBHOOK_SECRET) is True
    tampered = request.model_copy(update={"body": request.body.replace(b"HIGH", b"LOW!")})
    assert adapter.verify_webhook(tampered, WEBHOOK_SECRET) is False
    other = "whsec_" + base64.b64encode(b"another-endpoint-signing-key-000").decode()
    assert adapter.verify_webhook(request, other) is False
    assert adapter.verify_webhook(request, "not base64 at all!") is False
    assert adapter.verify_webhook(request, "") is False
    stale = delivery(request.body, sent=datetime.now(UTC) - timedelta(minutes=6))
    assert adapter.verify_webhook(stale, WEBHOOK_SECRET) is False
    assert adapter.verify_webhook(delivery(request.body), WEBHOOK_SECRET) is True
    assert adapter.verify_webhook(delivery(request.body, prefix="webhook-"), WEBHOOK_SECRET) is True
    rotated = delivery(request.body)
    headers = dict(rotated.headers)
    headers["svix-signature"] = "v1,AAAA " + headers["svix-signature"]
    assert adapter.verify_webhook(rotated.model_copy(update={"headers": headers}), WEBHOOK_SECRET) is True
    headers["svix-signature"] = "v1,AAAA"
    assert adapter.verify_webhook(rotated.model_copy(update={"headers": headers}), WEBHOOK_SECRET) is False
    await adapter.aclose()


async def test_webhook_events_are_parsed_into_alert_events() -> None:
    w = world(agents=1)
    adapter = huntress(w)
    agent = next(iter(w.agents))
    threat = w.raise_threat(agent)
    request = w.native_threat_webhook(threat)
    assert request is not None
    [event] = adapter.parse_webhook(request)
    assert event.problem is ProblemKind.THREAT_DETECTED and event.state == "active"
    assert (event.endpoint_id, event.client_id) == (agent, w.agents[agent].customer_id)
    body = json.loads(request.body)
    comment = {**body, "event_type": "incident_report.comment_added", "comment": "Looking into it"}
    assert adapter.parse_webhook(delivery(json.dumps(comment).encode())) == []
    cloud = {**body, "agent_id": None, "platform": "microsoft_365"}
    assert adapter.parse_webhook(delivery(json.dumps(cloud).encode())) == []
    escalation = {"event_type": "escalation.created", "id": 3}
    assert adapter.parse_webhook(delivery(json.dumps(escalation).encode())) == []
    for bad, field in ((b"not json", "body"), (b"[]", "body"), (b"{}", "event_type")):
        with pytest.raises(WebhookParseError) as raised:
            adapter.parse_webhook(delivery(bad))
        assert raised.value.field == field
    orphan = {**body, "organization": {"id": None, "name": None}, "organization_id": None}
    with pytest.raises(WebhookParseError, match="organization"):
        adapter.parse_webhook(delivery(json.dumps(orphan).encode()))
    nul = {**body, "subject": "bad\u0000subject"}
    with pytest.raises(WebhookParseError, match="NUL"):
        adapter.parse_webhook(delivery(json.dumps(nul).encode()))
    await adapter.aclose()


async def test_a_seeded_fleet_reads_with_its_mix_of_states() -> None:
    w = world(agents=0, customers=())
    seeded = seed_fleet(w.fake, organizations=4, agents=120)
    adapter = huntress(w)
    statuses = await agents_of(adapter)
    assert set(statuses) == {str(i) for i in seeded.agent_ids}
    assert any(s.protection_enabled is False for s in statuses.values())
    assert any(s.definitions_up_to_date is False for s in statuses.values())
    assert any(s.online is False for s in statuses.values())
    assert any(s.device_type == "server" for s in statuses.values())
    threats = await adapter.list_threats(None)
    assert threats.complete_for == frozenset(str(i) for i in seeded.organization_ids)
    assert all(t.agent_id in statuses for t in threats.threats)
    await adapter.aclose()
