"""Status sync end to end: RMM pages → endpoints → problems → tickets and configurations in the
ConnectWise Manage fake, through the HTTP API and the job worker, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import update
from standardwebhooks.webhooks import Webhook
from starlette.applications import Starlette
from starlette.routing import Route

from adapters.base import AlertEvent, ProblemKind, RmmAdapter, SkippedEndpoint
from adapters.errors import CredentialsError, TransientVendorError
from connector.infra import db
from connector.infra.context import Services
from connector.models import Connection, EndpointAction, SyncCursor, SyncRun
from connector.sync.scheduler import schedule_due_syncs
from tests.api.world import canonical_alert
from tests.e2e.stack import Stack, build_stack
from tests.support.fleet_rmm import FLEETS, FleetFake
from tests.support.processes import ServedApp
from tests.support.receivers import Receiver
from tests.support.vendors import VendorRouter

CLIENTS = 3
PER_CLIENT = 50


@pytest.fixture
async def fleet() -> AsyncIterator[FleetFake]:
    fake = FleetFake(page_size=40)
    fake.seed(CLIENTS, PER_CLIENT)
    host = f"fleet-{uuid.uuid4().hex[:8]}.example.com"
    FLEETS[host] = fake
    fake.host = host  # type: ignore[attr-defined]
    yield fake
    FLEETS.pop(host, None)


@pytest.fixture
async def stack(
    client: httpx.AsyncClient,
    services: Services,
    vendors: VendorRouter,
    make_key: Callable[..., Awaitable[dict[str, str]]],
    fleet: FleetFake,
) -> Stack:
    built = await build_stack(
        client,
        services,
        vendors,
        await make_key("engineer"),
        rmm_kind="fleet_rmm",
        rmm_credentials={"token": "t"},
        rmm_base_url=f"https://{fleet.host}",  # type: ignore[attr-defined]
        map_clients=(),
    )
    await built.map_client("c-0", built.seed.company_ids[0])
    await built.map_client("c-1", built.seed.company_ids[1])
    for c in range(2):
        for e in range(PER_CLIENT):
            built.manage.add_configuration(
                built.seed.company_ids[c], f"WS-{c:02d}-{e:03d}", serial_number=f"SN{c:02d}{e:04d}"
            )
    return built


async def sync(stack: Stack, expect: int = 202) -> dict[str, Any]:
    response = await stack.client.post(
        "/api/v1/sync-runs", json={"connection_id": stack.rmm["id"]}, headers=stack.headers
    )
    assert response.status_code == expect, response.text
    if expect != 202:
        body: dict[str, Any] = response.json()
        return body
    [run] = response.json()
    await stack.work()
    finished = await stack.client.get(f"/api/v1/sync-runs/{run['id']}", headers=stack.headers)
    result: dict[str, Any] = finished.json()
    return result


def config_writes(stack: Stack) -> int:
    return stack.manage.call_count("PATCH") + stack.manage.call_count("POST", "/company/configurations")


async def endpoints(stack: Stack, **params: str) -> list[dict[str, Any]]:
    response = await stack.client.get(
        "/api/v1/endpoints", params={"limit": "5000", **params}, headers=stack.headers
    )
    assert response.status_code == 200, response.text
    result: list[dict[str, Any]] = response.json()
    return result


async def test_first_sync_reads_pages_stores_fleet_and_pushes_configurations(
    stack: Stack, fleet: FleetFake
) -> None:
    run = await sync(stack)
    assert run["status"] == "succeeded", run
    assert run["full"] is True
    assert run["endpoints_seen"] == CLIENTS * PER_CLIENT
    assert run["pages"] == fleet.page_requests == -(-CLIENTS * PER_CLIENT // fleet.page_size)
    stored = await endpoints(stack)
    assert len(stored) == CLIENTS * PER_CLIENT
    assert {e["health"] for e in stored} == {"protected"}
    # Mapped clients' configurations get the status; the unmapped client's endpoints do not.
    assert run["psa_calls"] == 2 * PER_CLIENT
    config = stack.manage.configurations.all()[0]
    assert "Acme EDR" in (config.get("notes") or "")
    assert run["problems_opened"] == 0
    assert stack.tickets() == []


async def test_unchanged_resync_makes_no_psa_writes_and_reads_incrementally(
    stack: Stack, fleet: FleetFake
) -> None:
    await sync(stack)
    writes = config_writes(stack)
    fleet.page_requests = 0
    again = await sync(stack)
    assert again["full"] is False
    assert again["endpoints_changed"] == 0
    assert again["psa_calls"] == 0
    assert config_writes(stack) == writes
    assert fleet.page_requests == 1  # one (empty) page: nothing changed since the cursor


async def test_one_percent_changed_writes_only_those(stack: Stack, fleet: FleetFake) -> None:
    await sync(stack)
    writes = config_writes(stack)
    fleet.change("ep-0-1", protection_enabled=False)
    fleet.change("ep-1-2", active_threats=2)
    run = await sync(stack)
    assert run["endpoints_seen"] == 2 and run["endpoints_changed"] == 2
    assert run["psa_calls"] == 2
    assert config_writes(stack) - writes == 2
    assert run["problems_opened"] == 2


async def test_problem_opens_a_ticket_and_its_clearing_closes_it(stack: Stack, fleet: FleetFake) -> None:
    await sync(stack)
    fleet.change("ep-0-3", protection_enabled=False)
    await sync(stack)
    [ticket] = stack.tickets(stack.seed.company_ids[0])
    assert "Protection disabled" in ticket["summary"] or "protection" in ticket["summary"].lower()
    [problem] = await stack.problems(state="open")
    assert problem["source"] == "status"

    await sync(stack)  # still off: no second ticket, no note storm
    assert len(stack.tickets(stack.seed.company_ids[0])) == 1

    fleet.change("ep-0-3", protection_enabled=True)
    run = await sync(stack)
    assert run["problems_closed"] == 1
    [ticket] = stack.tickets(stack.seed.company_ids[0])
    assert ticket["status"]["id"] == stack.seed.closed_status_id


async def test_unmapped_clients_problems_are_kept_visible(stack: Stack, fleet: FleetFake) -> None:
    await sync(stack)
    fleet.change("ep-2-0", active_threats=1)
    await sync(stack)
    [problem] = await stack.problems(state="open")
    assert problem["routing"] == "unmapped"
    assert problem["client_id"] == "c-2"


async def test_threshold_change_applies_at_the_next_sync(stack: Stack, fleet: FleetFake) -> None:
    for e in range(3):
        fleet.change(f"ep-0-{e}", definitions_date=datetime.now(UTC) - timedelta(days=2))
    await sync(stack)
    assert await stack.problems(state="open") == []

    put = await stack.client.put(
        "/api/v1/settings/thresholds",
        json={"definitions_max_age_days": 1, "scan_max_age_days": 14, "offline_after_days": 7},
        headers=stack.headers,
    )
    assert put.status_code == 200, put.text
    run = await sync(stack)
    assert run["problems_opened"] == 3
    outdated = await endpoints(stack, problem="definitions_outdated")
    assert {e["endpoint_id"] for e in outdated} == {"ep-0-0", "ep-0-1", "ep-0-2"}
    assert {e["health"] for e in outdated} == {"at_risk"}

    bad = await stack.client.put(
        "/api/v1/settings/thresholds", json={"definitions_max_age_days": 0}, headers=stack.headers
    )
    assert bad.status_code == 422
    assert "definitions_max_age_days" in bad.text


async def _force_full_pass(stack: Stack) -> None:
    async with db.transaction(stack.services.sessions) as session:
        await session.execute(update(SyncCursor).values(last_full_at=datetime.now(UTC) - timedelta(days=2)))


async def test_endpoints_gone_from_the_rmm_are_retired_on_a_full_pass(stack: Stack, fleet: FleetFake) -> None:
    await sync(stack)
    fleet.change("ep-0-5", protection_enabled=False)
    await sync(stack)
    for e in range(5, 10):
        fleet.remove(f"ep-0-{e}")
    incremental = await sync(stack)
    assert incremental["endpoints_retired"] == 0  # deletions are only seen on full passes

    await _force_full_pass(stack)
    full = await sync(stack)
    assert full["full"] is True
    assert full["endpoints_retired"] == 5
    retired = await endpoints(stack, status="retired")
    assert len(retired) == 5
    assert len(await endpoints(stack, client_id="c-0", status="protected")) == PER_CLIENT - 5
    # The retired endpoint's open problem cleared and its ticket closed.
    [ticket] = stack.tickets(stack.seed.company_ids[0])
    assert ticket["status"]["id"] == stack.seed.closed_status_id


async def test_full_pass_refuses_to_retire_most_of_a_fleet(stack: Stack, fleet: FleetFake) -> None:
    await sync(stack)
    for endpoint_id in [i for i in fleet.endpoints if not i.startswith("ep-0-")]:
        fleet.remove(endpoint_id)
    await _force_full_pass(stack)
    run = await sync(stack)
    assert run["endpoints_retired"] == 0
    assert any(e.get("type") == "RetireGuard" for e in run["errors"])
    assert await endpoints(stack, status="retired") == []


async def test_failed_run_keeps_the_cursor_and_the_next_run_resumes(stack: Stack, fleet: FleetFake) -> None:
    await sync(stack)
    writes = config_writes(stack)
    for e in range(PER_CLIENT):
        fleet.change(f"ep-0-{e}", last_scan_at=datetime.now(UTC))
    fleet.page_size = 20
    fleet.fail_on_page, fleet.failure = 2, TransientVendorError("RMM timed out", status=504)
    failed = await sync(stack)
    assert failed["status"] == "failed"
    assert failed["errors"][0]["message"] == "RMM timed out"
    assert failed["pages"] == 1

    fleet.fail_on_page = None
    resumed = await sync(stack)
    assert resumed["status"] == "succeeded"
    assert resumed["changed_since"] == failed["changed_since"]  # the cursor did not move
    assert resumed["endpoints_seen"] == PER_CLIENT
    assert resumed["endpoints_changed"] == PER_CLIENT - 20  # the first page was already stored
    assert config_writes(stack) - writes == PER_CLIENT  # each changed endpoint written once

    again = await sync(stack)
    assert again["psa_calls"] == 0


async def test_concurrent_trigger_is_refused_with_409(stack: Stack) -> None:
    first = await stack.client.post(
        "/api/v1/sync-runs", json={"connection_id": stack.rmm["id"]}, headers=stack.headers
    )
    assert first.status_code == 202
    conflict = await sync(stack, expect=409)
    assert conflict["run_id"] == first.json()[0]["id"]
    await stack.work()
    runs = (await stack.client.get("/api/v1/sync-runs", headers=stack.headers)).json()
    assert [r["status"] for r in runs] == ["succeeded"]


async def test_a_run_whose_process_died_is_replaced(stack: Stack) -> None:
    first = await stack.client.post(
        "/api/v1/sync-runs", json={"connection_id": stack.rmm["id"]}, headers=stack.headers
    )
    async with db.transaction(stack.services.sessions) as session:
        await session.execute(update(SyncRun).values(heartbeat_at=datetime.now(UTC) - timedelta(hours=1)))
    run = await sync(stack)
    assert run["status"] == "succeeded"
    old = (await stack.client.get(f"/api/v1/sync-runs/{first.json()[0]['id']}", headers=stack.headers)).json()
    assert old["status"] == "interrupted"


async def test_sync_of_a_psa_connection_is_a_422_naming_the_field(stack: Stack) -> None:
    response = await stack.client.post(
        "/api/v1/sync-runs", json={"connection_id": stack.psa["id"]}, headers=stack.headers
    )
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "connection_id"


async def test_credentials_failure_is_reported_with_the_vendor_message(
    stack: Stack, fleet: FleetFake
) -> None:
    fleet.fail_on_page, fleet.failure = 1, CredentialsError("API key revoked", status=401)
    run = await sync(stack)
    assert run["status"] == "failed"
    assert run["errors"] == [{"stage": "rmm", "type": "CredentialsError", "message": "API key revoked"}]


async def test_scheduler_starts_each_connection_once_per_interval(stack: Stack) -> None:
    assert await schedule_due_syncs(stack.services) == 1
    assert await schedule_due_syncs(stack.services) == 0  # running
    await stack.work()
    assert await schedule_due_syncs(stack.services) == 0  # ran within the interval


async def test_endpoint_detail_and_actions(stack: Stack, fleet: FleetFake) -> None:
    await sync(stack)
    fleet.change("ep-0-7", active_threats=3)
    await sync(stack)
    [endpoint] = await endpoints(stack, problem="threat_detected")
    detail = (await stack.client.get(f"/api/v1/endpoints/{endpoint['id']}", headers=stack.headers)).json()
    assert detail["problems"][0]["kind"] == "threat_detected"
    assert detail["problems"][0]["ticket_id"] is not None

    kinds = (await stack.client.get("/api/v1/adapters", headers=stack.headers)).json()
    assert next(k for k in kinds if k["kind"] == "fleet_rmm")["actions"] == ["scan", "update_definitions"]
    await _rename(stack, "RMM (renamed)")  # the next use of an adapter would build a new one
    built = fleet.adapters_built
    unsupported = await stack.client.post(
        f"/api/v1/endpoints/{endpoint['id']}/actions", json={"action": "deploy_agent"}, headers=stack.headers
    )
    assert unsupported.status_code == 422
    assert "deploy_agent" in unsupported.text and "it supports: scan, update_definitions" in unsupported.text
    assert fleet.adapters_built == built  # refused from the kind's declaration alone

    accepted = await stack.client.post(
        f"/api/v1/endpoints/{endpoint['id']}/actions", json={"action": "scan"}, headers=stack.headers
    )
    assert accepted.status_code == 202, accepted.text
    assert accepted.json()["problem_id"] == detail["problems"][0]["id"]
    await stack.work()
    assert fleet.actions == [("ep-0-7", "scan")]
    detail = (await stack.client.get(f"/api/v1/endpoints/{endpoint['id']}", headers=stack.headers)).json()
    assert detail["actions"][0]["status"] == "accepted"

    # The scan cleared the threat: the ticket closes with a note naming the action.
    fleet.change("ep-0-7", active_threats=0)
    await sync(stack)
    [ticket] = stack.tickets(stack.seed.company_ids[0])
    assert ticket["status"]["id"] == stack.seed.closed_status_id
    notes = [n["text"] for n in stack.manage.notes_for(ticket["id"])]
    assert any("'scan' action" in text for text in notes)


async def test_rule_runs_its_automatic_action_once_per_problem(stack: Stack, fleet: FleetFake) -> None:
    rule = await stack.client.post(
        "/api/v1/ticket-rules",
        json={
            "psa_connection_id": stack.psa["id"],
            "problem": "definitions_outdated",
            "board_id": str(stack.seed.board_id),
            "auto_action": "update_definitions",
        },
        headers=stack.headers,
    )
    assert rule.status_code == 201, rule.text
    await sync(stack)
    fleet.change("ep-1-4", definitions_date=datetime.now(UTC) - timedelta(days=10))
    await sync(stack)
    await sync(stack)
    assert fleet.actions == [("ep-1-4", "update_definitions")]


async def test_fleet_summary_counts_and_trend(stack: Stack, fleet: FleetFake) -> None:
    fleet.change("ep-0-1", protection_enabled=False)
    fleet.change("ep-1-1", last_seen_at=datetime.now(UTC) - timedelta(days=30))
    await sync(stack)
    body = (await stack.client.get("/api/v1/fleet/summary", headers=stack.headers)).json()
    assert body["overall"] == {
        "protected": CLIENTS * PER_CLIENT - 2,
        "at_risk": 1,
        "unprotected": 0,
        "offline": 1,
        "unknown": 0,
        "total": CLIENTS * PER_CLIENT,
    }
    first = next(c for c in body["clients"] if c["client_id"] == "c-0")
    assert first["at_risk"] == 1 and first["psa_company"] == "Company 1"
    [today] = body["trend"]
    assert today == {"day": datetime.now(UTC).date().isoformat(), "protected": 148, "total": 150}


async def test_polled_alerts_open_once_and_close_like_webhook_alerts(stack: Stack, fleet: FleetFake) -> None:
    def alert(state: str, minutes: int) -> AlertEvent:
        return AlertEvent(
            event_id="chk-1",
            client_id="c-0",
            endpoint_id="ep-0-9",
            hostname="WS-00-009",
            problem=ProblemKind.THREAT_DETECTED,
            state=state,  # type: ignore[arg-type]
            message="Managed AV: 1 threat found",
            occurred_at=datetime.now(UTC) + timedelta(minutes=minutes),
        )

    fleet.change("ep-0-9", active_threats=None)  # like N-sight: threats come only as failing checks
    fleet.alerts = [alert("active", 0)]
    await sync(stack)
    [ticket] = stack.tickets(stack.seed.company_ids[0])
    fleet.alerts = [alert("active", 1)]  # still failing on the next poll: an observation, not a repeat
    await sync(stack)
    [problem] = await stack.problems(state="open")
    assert problem["source"] == "poll" and problem["occurrences"] == 1
    assert len(stack.tickets(stack.seed.company_ids[0])) == 1
    fleet.alerts = [alert("cleared", 2)]
    await sync(stack)
    [ticket] = stack.tickets(stack.seed.company_ids[0])
    assert ticket["status"]["id"] == stack.seed.closed_status_id


async def test_unreadable_endpoints_are_reported_and_not_retired(stack: Stack, fleet: FleetFake) -> None:
    await sync(stack)
    fleet.skipped = [
        SkippedEndpoint(endpoint_id="ep-1-7", field="deviceId", message="missing in the listing")
    ]
    await _force_full_pass(stack)
    run = await sync(stack)
    assert run["status"] == "succeeded"
    assert run["endpoints_retired"] == 0
    assert {
        "stage": "endpoint",
        "endpoint": "ep-1-7",
        "field": "deviceId",
        "message": "missing in the listing",
    } in run["errors"]
    assert await endpoints(stack, status="retired") == []


async def test_an_action_the_rmm_may_have_received_is_never_sent_twice(
    stack: Stack, fleet: FleetFake
) -> None:
    await sync(stack)
    [endpoint] = await endpoints(stack, client_id="c-0", limit="1")
    fleet.action_failure = TransientVendorError("RMM answered 504", status=504)  # maybe applied
    response = await stack.client.post(
        f"/api/v1/endpoints/{endpoint['id']}/actions", json={"action": "scan"}, headers=stack.headers
    )
    assert response.status_code == 202
    await stack.work()
    await stack.pass_time(3600)
    await stack.work()
    assert fleet.actions == [(endpoint["endpoint_id"], "scan")]
    detail = (await stack.client.get(f"/api/v1/endpoints/{endpoint['id']}", headers=stack.headers)).json()
    assert detail["actions"][0]["status"] == "failed"
    assert "not sent again" in detail["actions"][0]["message"]


async def test_an_action_interrupted_mid_call_is_reported_not_resent(stack: Stack, fleet: FleetFake) -> None:
    await sync(stack)
    [endpoint] = await endpoints(stack, client_id="c-0", limit="1")
    created = await stack.client.post(
        f"/api/v1/endpoints/{endpoint['id']}/actions", json={"action": "scan"}, headers=stack.headers
    )
    async with db.transaction(stack.services.sessions) as session:  # a worker died while asking the RMM
        await session.execute(
            update(EndpointAction).where(EndpointAction.id == created.json()["id"]).values(status="sending")
        )
    await stack.work()
    assert fleet.actions == []
    detail = (await stack.client.get(f"/api/v1/endpoints/{endpoint['id']}", headers=stack.headers)).json()
    assert detail["actions"][0]["status"] == "failed"
    assert "interrupted" in detail["actions"][0]["message"]
    audit = await stack.client.get("/api/v1/audit", params={"kind": "action.sent"}, headers=stack.headers)
    [entry] = audit.json()["events"]  # it may have reached the RMM: the trail says so
    assert entry["after"]["status"] == "failed" and "interrupted" in entry["summary"]


# -- every observer is judged by its events' own times ----------------------------------------------


def _polled(state: str, occurred_at: datetime, endpoint_id: str = "ep-0-9") -> AlertEvent:
    return AlertEvent(
        event_id=f"chk-{state}",
        client_id="c-0",
        endpoint_id=endpoint_id,
        hostname="WS-00-009",
        problem=ProblemKind.THREAT_DETECTED,
        state=state,  # type: ignore[arg-type]
        message="Managed AV: 1 threat found",
        occurred_at=occurred_at,
    )


def _alert(event_id: str, state: str, occurred_at: datetime, endpoint_id: str) -> dict[str, Any]:
    return canonical_alert(
        event_id,
        endpoint_id=endpoint_id,
        client_id="c-0",
        state=state,
        occurred_at=occurred_at.isoformat().replace("+00:00", "Z"),
    )


async def test_a_polled_clear_read_before_its_older_active_keeps_the_problem_cleared(
    stack: Stack, fleet: FleetFake
) -> None:
    now = datetime.now(UTC)
    fleet.change("ep-0-9", active_threats=None)  # threats only as alerts, like N-sight's checks
    fleet.alerts = [_polled("cleared", now - timedelta(minutes=5))]
    await sync(stack)
    fleet.alerts = [_polled("active", now - timedelta(minutes=10))]  # an older alert, read later
    run = await sync(stack)
    assert run["problems_opened"] == 0
    assert await stack.problems(state="open") == []
    assert stack.tickets(stack.seed.company_ids[0]) == []


async def test_a_status_finding_older_than_a_recorded_clear_opens_nothing(
    stack: Stack, fleet: FleetFake
) -> None:
    """The clear found no open problem and is recorded anyway; the sync's finding, judged by the
    sync's own time, is older than it."""
    await sync(stack)
    later = datetime.now(UTC) + timedelta(minutes=2)
    assert (await stack.post_alert(_alert("clr-1", "cleared", later, "ep-0-4"))).status_code == 202
    await stack.work()
    fleet.change("ep-0-4", active_threats=1)  # the RMM's status still shows what the clear resolved
    run = await sync(stack)
    assert run["problems_opened"] == 0
    assert await stack.problems(state="open") == []
    assert stack.tickets(stack.seed.company_ids[0]) == []


async def test_an_alert_older_than_the_syncs_clear_is_kept_as_history_not_reopened(
    stack: Stack, fleet: FleetFake
) -> None:
    await sync(stack)
    now = datetime.now(UTC)
    await stack.post_alert(_alert("act-1", "active", now - timedelta(minutes=10), "ep-0-6"))
    await stack.work()
    [ticket] = stack.tickets(stack.seed.company_ids[0])
    fleet.change("ep-0-6", last_seen_at=now)  # changed, still no threats: the sync clears the problem
    run = await sync(stack)
    assert run["problems_closed"] == 1
    await stack.post_alert(_alert("act-2", "active", now - timedelta(minutes=5), "ep-0-6"))  # late
    await stack.work()
    assert await stack.problems(state="open") == []
    [problem] = await stack.problems()
    assert problem["occurrences"] == 2  # the late alert counted on the episode it belongs to
    [ticket] = stack.tickets(stack.seed.company_ids[0])
    assert ticket["status"]["id"] == stack.seed.closed_status_id


async def test_retiring_an_endpoint_clears_its_problem_even_past_an_alerts_clock(
    stack: Stack, fleet: FleetFake
) -> None:
    await sync(stack)
    ahead = datetime.now(UTC) + timedelta(hours=1)  # a sender whose clock runs ahead
    await stack.post_alert(_alert("act-1", "active", ahead, "ep-0-7"))
    await stack.work()
    fleet.remove("ep-0-7")
    await _force_full_pass(stack)
    run = await sync(stack)
    assert run["endpoints_retired"] == 1 and run["problems_closed"] == 1
    await stack.post_alert(_alert("act-2", "active", ahead - timedelta(minutes=1), "ep-0-7"))  # late
    await stack.work()
    assert await stack.problems(state="open") == []
    [ticket] = stack.tickets(stack.seed.company_ids[0])
    assert ticket["status"]["id"] == stack.seed.closed_status_id


# -- a complete poll's silence is a clear ------------------------------------------------------------

ALL_CLIENTS = frozenset(f"c-{c}" for c in range(CLIENTS))


async def _adapter_in_use(stack: Stack) -> RmmAdapter:
    async with stack.services.sessions() as session:
        row = await session.get(Connection, stack.rmm["id"])
    assert row is not None
    return await stack.services.adapters.rmm(row)


async def _rename(stack: Stack, name: str) -> None:
    """Any change to the connection: the worker's adapter object is rebuilt on its next use."""
    response = await stack.client.patch(
        f"/api/v1/connections/{stack.rmm['id']}", json={"name": name}, headers=stack.headers
    )
    assert response.status_code == 200, response.text


@pytest.mark.parametrize("rebuilt", [False, True], ids=["same-adapter", "adapter-rebuilt"])
async def test_a_complete_poll_that_no_longer_lists_a_polled_problem_clears_it(
    stack: Stack, fleet: FleetFake, rebuilt: bool
) -> None:
    """An RMM whose poll is a snapshot (N-sight's failing checks) reports a check that passes again
    by leaving it out; the core closes what the snapshot lacks, whatever adapter object read it."""
    fleet.change("ep-0-9", active_threats=None)  # threats only as polled alerts
    fleet.complete_for = ALL_CLIENTS
    fleet.alerts = [_polled("active", datetime.now(UTC) - timedelta(minutes=5))]
    await sync(stack)
    [problem] = await stack.problems(state="open")
    assert problem["source"] == "poll"
    [ticket] = stack.tickets(stack.seed.company_ids[0])
    first_adapter = await _adapter_in_use(stack)
    if rebuilt:
        await _rename(stack, "RMM (renamed)")

    fleet.alerts = []  # the check passes: the next, complete poll is empty
    run = await sync(stack)
    assert run["status"] == "succeeded", run
    assert (await _adapter_in_use(stack) is not first_adapter) == rebuilt
    assert run["problems_closed"] == 1
    assert await stack.problems(state="open") == []
    [ticket] = stack.tickets(stack.seed.company_ids[0])
    assert ticket["status"]["id"] == stack.seed.closed_status_id


async def test_a_complete_poll_clears_only_its_own_clients_polled_problems(
    stack: Stack, fleet: FleetFake
) -> None:
    """Absence clears a polled problem only on a client the poll was complete for, and never one
    another observer opened; a rebuilt adapter between the polls changes none of it."""
    earlier = datetime.now(UTC) - timedelta(minutes=5)

    def polled(endpoint_id: str, client_id: str) -> AlertEvent:
        return AlertEvent(
            event_id=f"chk-{endpoint_id}",
            client_id=client_id,
            endpoint_id=endpoint_id,
            problem=ProblemKind.THREAT_DETECTED,
            state="active",
            message="Managed AV: 1 threat found",
            occurred_at=earlier,
        )

    for endpoint_id in ("ep-0-1", "ep-0-2", "ep-0-3", "ep-1-1"):
        fleet.change(endpoint_id, active_threats=None)
    gone, still_failing, other_client = (
        polled("ep-0-1", "c-0"),
        polled("ep-0-2", "c-0"),
        polled("ep-1-1", "c-1"),
    )
    fleet.complete_for = ALL_CLIENTS
    fleet.alerts = [gone, still_failing, other_client]
    await sync(stack)
    assert (await stack.post_alert(_alert("evt-hook", "active", earlier, "ep-0-3"))).status_code == 202
    await stack.work()
    assert len(await stack.problems(state="open")) == 4

    await _rename(stack, "RMM (renamed)")
    fleet.complete_for = frozenset({"c-0"})  # c-1's checks could not be read this time
    fleet.alerts = [still_failing]
    run = await sync(stack)
    assert run["problems_closed"] == 1
    open_now = {(p["endpoint_id"], p["source"]) for p in await stack.problems(state="open")}
    assert open_now == {("ep-0-2", "poll"), ("ep-1-1", "poll"), ("ep-0-3", "alert")}

    run = await sync(stack)  # the same poll again: nothing more to clear
    assert run["problems_closed"] == 0 and run["problems_opened"] == 0


async def test_failed_credentials_and_a_stale_sync_notify_the_tenant(stack: Stack, fleet: FleetFake) -> None:
    secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    state = Receiver()
    app = Starlette(routes=[Route("/hook", state.hook, methods=["POST"])])
    with ServedApp(app) as served:
        created = await stack.client.post(
            "/api/v1/notification-channels",
            json={"name": "ops", "kind": "webhook", "url": served.url + "/hook", "secret": secret},
            headers=stack.headers,
        )
        assert created.status_code == 201, created.text
        fleet.fail_on_page, fleet.failure = 1, CredentialsError("API key revoked", status=401)
        run = await sync(stack)
        assert run["status"] == "failed"
        await stack.work()
        [(headers, body)] = state.received
        payload = Webhook(secret).verify(body, headers)
        assert payload["type"] == "connection.credentials_failed"
        assert payload["data"]["connection_id"] == stack.rmm["id"]
        assert payload["data"]["error"] == "API key revoked"

        # a second failure within the hour is not sent again
        run = await sync(stack)
        await stack.work()
        assert len(state.received) == 1

        # the last success long ago: the scheduler reports the connection stale
        fleet.fail_on_page = None
        assert (await sync(stack))["status"] == "succeeded"
        async with db.transaction(stack.services.sessions) as session:
            await session.execute(
                update(SyncRun).values(
                    started_at=datetime.now(UTC) - timedelta(days=1),
                    finished_at=datetime.now(UTC) - timedelta(days=1),
                )
            )
        await schedule_due_syncs(stack.services)
        await stack.work()
        types = [json.loads(b)["type"] for _h, b in state.received]
        assert types == ["connection.credentials_failed", "sync.stale"]
