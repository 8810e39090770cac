"""Alerts to tickets end to end: HTTP webhook in, the job worker, the ConnectWise Manage adapter
against its stateful fake, tickets out — on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from adapters.base import TicketRef, TicketSpec
from adapters.connectwise_manage.adapter import ConnectWiseManageAdapter
from connector.infra.context import Services
from connector.models import Delivery, Job, Problem
from connector.statuses import JobStatus
from tests.api.world import canonical_alert
from tests.e2e.stack import Stack, build_stack
from tests.support.vendors import VendorRouter


@pytest.fixture
async def stack(
    client: httpx.AsyncClient,
    services: Services,
    vendors: VendorRouter,
    make_key: Callable[..., Awaitable[dict[str, str]]],
) -> Stack:
    return await build_stack(client, services, vendors, await make_key("engineer"))


async def _count(services: Services, model: Any, *conditions: Any) -> int:
    async with services.sessions() as session:
        return int(await session.scalar(select(func.count()).select_from(model).where(*conditions)) or 0)


async def _deliveries(stack: Stack, status: str) -> list[dict[str, Any]]:
    response = await stack.client.get("/api/v1/deliveries", params={"status": status}, headers=stack.headers)
    assert response.status_code == 200, response.text
    result: list[dict[str, Any]] = response.json()
    return result


def _repeat_notes(stack: Stack, ticket_id: int) -> list[dict[str, Any]]:
    """Notes other than the initial description Manage stores as the ticket's first note."""
    return [n for n in stack.manage.notes_for(ticket_id) if "managed by connector" not in n["text"]]


async def test_alert_becomes_one_ticket_in_the_mapped_board(stack: Stack) -> None:
    received = await stack.post_alert(canonical_alert("evt-1"))
    assert received.status_code == 202
    assert received.json()["duplicate"] is False

    await stack.work()

    [ticket] = stack.tickets()
    assert ticket["board"]["id"] == stack.seed.board_id
    assert ticket["status"]["id"] == stack.seed.new_status_id
    assert ticket["priority"]["id"] == stack.seed.priority_ids["Priority 2 - High"]
    assert ticket["summary"].startswith("Threat detected on EP-1-PC")
    [problem] = await stack.problems()
    assert problem["routing"] == "ticketed"
    assert problem["ticket_id"] == str(ticket["id"])
    assert problem["ticket_state"] == "open"
    delivery = (
        await stack.client.get(f"/api/v1/deliveries/{received.json()['delivery_id']}", headers=stack.headers)
    ).json()
    assert delivery["status"] == "processed"


async def test_same_alert_five_times_is_one_ticket_with_collapsed_notes(stack: Stack) -> None:
    for n in range(5):
        response = await stack.post_alert(canonical_alert(f"evt-{n}", occurred_at=f"2026-11-20T10:0{n}:00Z"))
        assert response.status_code == 202
    await stack.work()

    [ticket] = stack.tickets()
    notes = _repeat_notes(stack, ticket["id"])
    # One ticket; the repeats inside the note interval wait for one collapsed note, not four.
    assert len(notes) <= 1
    [problem] = await stack.problems()
    assert problem["occurrences"] == 5

    await stack.pass_time(3600)
    await stack.work()
    notes = _repeat_notes(stack, ticket["id"])
    assert len(stack.tickets()) == 1
    assert len(notes) == 1
    assert "more times" in notes[0]["text"] or "once more" in notes[0]["text"]


async def test_clear_closes_the_ticket_with_a_resolution_note(stack: Stack) -> None:
    await stack.post_alert(canonical_alert("evt-1"))
    await stack.work()
    await stack.post_alert(canonical_alert("evt-2", state="cleared", message="threat quarantined"))
    await stack.work()

    [ticket] = stack.tickets()
    assert ticket["status"]["id"] == stack.seed.closed_status_id
    assert any("Resolved" in note["text"] for note in stack.manage.notes_for(ticket["id"]))
    [problem] = await stack.problems()
    assert problem["state"] == "cleared"
    assert problem["ticket_state"] == "closed"


async def test_problem_that_returns_after_clearing_gets_a_new_ticket(stack: Stack) -> None:
    await stack.post_alert(canonical_alert("evt-1"))
    await stack.work()
    await stack.post_alert(canonical_alert("evt-2", state="cleared"))
    await stack.work()
    await stack.post_alert(canonical_alert("evt-3", occurred_at="2026-11-20T11:00:00Z"))
    await stack.work()
    tickets = stack.tickets()
    assert len(tickets) == 2
    assert sum(1 for t in tickets if t["status"]["id"] == stack.seed.closed_status_id) == 1


async def test_duplicate_delivery_is_processed_once(stack: Stack) -> None:
    first = await stack.post_alert(canonical_alert("evt-dup"))
    second = await stack.post_alert(canonical_alert("evt-dup"))
    assert first.status_code == second.status_code == 202
    assert second.json() == {"delivery_id": first.json()["delivery_id"], "duplicate": True}
    await stack.work()

    assert len(stack.tickets()) == 1
    [problem] = await stack.problems()
    assert problem["occurrences"] == 1
    assert await _count(stack.services, Delivery) == 1


async def test_psa_down_then_back_loses_nothing(stack: Stack) -> None:
    stack.manage.fail_path("/service/tickets", 500, method="POST")
    for n in range(3):
        await stack.post_alert(canonical_alert(f"evt-{n}", endpoint_id=f"ep-{n}"))
    await stack.work()
    assert stack.tickets() == []
    assert {p["routing"] for p in await stack.problems()} == {"pending"}

    stack.manage.clear_faults()
    await stack.pass_time(900)
    await stack.work()

    tickets = stack.tickets()
    assert len(tickets) == 3
    assert {p["routing"] for p in await stack.problems()} == {"ticketed"}
    assert await _count(stack.services, Job, Job.status.in_(("queued", "running", "dead"))) == 0


async def test_create_that_timed_out_but_happened_is_found_not_repeated(stack: Stack) -> None:
    """Manage answered 500 after creating the ticket (its internal timeout): the retry looks the
    marker up instead of creating a second ticket."""
    stack.manage.fail_next(1, 500, method="POST", path="/service/tickets", after_apply=True)
    await stack.post_alert(canonical_alert("evt-1"))
    await stack.work()
    await stack.pass_time(900)
    await stack.work()

    [ticket] = stack.tickets()
    [problem] = await stack.problems()
    assert problem["ticket_id"] == str(ticket["id"])


class WorkerKilled(BaseException):
    """Stands for the process dying: nothing after it runs, no handler sees it."""


async def test_worker_killed_between_create_and_record_makes_exactly_one_ticket(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_create = ConnectWiseManageAdapter.create_ticket
    kills = {"left": 1}

    async def create_then_die(self: ConnectWiseManageAdapter, spec: TicketSpec) -> TicketRef:
        ref = await real_create(self, spec)
        if kills["left"]:
            kills["left"] -= 1
            raise WorkerKilled
        return ref

    monkeypatch.setattr(ConnectWiseManageAdapter, "create_ticket", create_then_die)
    await stack.post_alert(canonical_alert("evt-1"))
    with pytest.raises(WorkerKilled):
        await stack.work(concurrency=1)
    assert len(stack.tickets()) == 1
    [problem] = await stack.problems()
    assert problem["ticket_id"] is None  # the link was never recorded

    # Another worker takes over once the dead one's lease and lock expire.
    await stack.pass_time(600)
    await stack.work()

    [ticket] = stack.tickets()
    [problem] = await stack.problems()
    assert problem["ticket_id"] == str(ticket["id"])
    assert problem["routing"] == "ticketed"


async def test_bad_signature_is_401_and_no_job(stack: Stack) -> None:
    body = json.dumps(canonical_alert("evt-1")).encode()
    wrong = hmac.new(b"not-the-secret", body, hashlib.sha256).hexdigest()
    response = await stack.client.post(
        f"/webhooks/{stack.rmm['id']}",
        content=body,
        headers={"content-type": "application/json", "x-connector-signature": f"sha256={wrong}"},
    )
    assert response.status_code == 401
    assert await _count(stack.services, Job) == 0
    refused = (
        await stack.client.get("/api/v1/deliveries", params={"status": "rejected"}, headers=stack.headers)
    ).json()
    assert len(refused) == 1 and refused[0]["rejection"].startswith("401")

    good = hmac.new(stack.rmm["webhook_secret"].encode(), body, hashlib.sha256).hexdigest()
    accepted = await stack.client.post(
        f"/webhooks/{stack.rmm['id']}",
        content=body,
        headers={"content-type": "application/json", "x-connector-signature": f"sha256={good}"},
    )
    assert accepted.status_code == 202


async def test_malformed_json_is_400_naming_the_problem_and_no_job(stack: Stack) -> None:
    response = await stack.client.post(
        f"/webhooks/{stack.rmm['id']}",
        content=b'{"event_id": "x", ',
        headers={"content-type": "application/json"},
        params={"token": stack.rmm["webhook_secret"]},
    )
    assert response.status_code == 400
    assert response.json()["errors"][0]["field"]
    assert await _count(stack.services, Job) == 0
    refused = (
        await stack.client.get("/api/v1/deliveries", params={"status": "rejected"}, headers=stack.headers)
    ).json()
    assert refused[0]["rejection"].startswith("400")


async def test_canonical_alert_missing_a_field_is_400_naming_it(stack: Stack) -> None:
    alert = canonical_alert("evt-1")
    del alert["endpoint_id"]
    response = await stack.post_alert(alert)
    assert response.status_code == 400
    assert "endpoint_id" in response.text


async def test_unmapped_client_is_visible_then_ticketed_once_mapped(stack: Stack) -> None:
    await stack.post_alert(canonical_alert("evt-1", client_id="c-unmapped"))
    await stack.work()
    assert stack.tickets(stack.seed.company_ids[1]) == []
    [problem] = await stack.problems()
    assert problem["routing"] == "unmapped"
    assert (await stack.problems(routing="unmapped"))[0]["client_id"] == "c-unmapped"

    await stack.map_client("c-unmapped", stack.seed.company_ids[1])
    await stack.work()
    assert len(stack.tickets(stack.seed.company_ids[1])) == 1
    [problem] = await stack.problems()
    assert problem["routing"] == "ticketed"
    await stack.work()
    assert len(stack.tickets(stack.seed.company_ids[1])) == 1


async def test_dead_lettered_delivery_is_replayed(stack: Stack) -> None:
    stack.manage.fail_path("/service/tickets", 400, method="POST")
    received = await stack.post_alert(canonical_alert("evt-1"))
    for _ in range(10):
        await stack.work()
        await stack.pass_time(3600)
    assert stack.tickets() == []
    dead = (
        await stack.client.get("/api/v1/deliveries", params={"status": "dead"}, headers=stack.headers)
    ).json()
    assert [d["id"] for d in dead] == [received.json()["delivery_id"]]

    stack.manage.clear_faults()
    replay = await stack.client.post(f"/api/v1/deliveries/{dead[0]['id']}/replay", headers=stack.headers)
    assert replay.status_code == 202
    await stack.work()
    assert len(stack.tickets()) == 1


async def test_concurrent_redeliveries_collapse_onto_one_delivery(stack: Stack) -> None:
    responses = await asyncio.gather(*(stack.post_alert(canonical_alert("evt-same")) for _ in range(6)))
    assert {r.status_code for r in responses} == {202}
    assert len({r.json()["delivery_id"] for r in responses}) == 1
    assert sum(not r.json()["duplicate"] for r in responses) == 1
    await stack.work()
    assert len(stack.tickets()) == 1
    assert await _count(stack.services, Delivery) == 1
    assert await _count(stack.services, Job, Job.kind == "deliveries") == 1


async def test_a_failing_delivery_is_retried_alone_and_the_others_go_through(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    from connector.alerts import handlers

    real_apply = handlers.apply_events
    failures = {"left": 1}

    async def flaky(session: Any, connection: Any, events: Any) -> list[str]:
        if failures["left"] and any(e.endpoint_id == "ep-bad" for e in events):
            failures["left"] -= 1
            raise RuntimeError("database hiccup")
        return await real_apply(session, connection, events)

    monkeypatch.setattr(handlers, "apply_events", flaky)
    responses = await asyncio.gather(
        stack.post_alert(canonical_alert("evt-ok", endpoint_id="ep-ok")),
        stack.post_alert(canonical_alert("evt-bad", endpoint_id="ep-bad")),
    )
    await stack.work()
    assert len(stack.tickets()) == 1
    bad = responses[1].json()["delivery_id"]
    failed = (await stack.client.get(f"/api/v1/deliveries/{bad}", headers=stack.headers)).json()
    assert failed["status"] == "failed" and "database hiccup" in failed["error"]

    await stack.pass_time(600)
    await stack.work()
    assert len(stack.tickets()) == 2
    retried = (await stack.client.get(f"/api/v1/deliveries/{bad}", headers=stack.headers)).json()
    assert retried["status"] == "processed"


async def test_oversized_webhook_bodies_get_413_and_nothing_is_stored(stack: Stack) -> None:
    limit = stack.services.settings.webhook_max_body_bytes
    params = {"token": stack.rmm["webhook_secret"]}
    declared = await stack.client.post(
        f"/webhooks/{stack.rmm['id']}", content=b"x" * (limit + 1), params=params
    )
    assert declared.status_code == 413
    assert declared.json()["error"] == "payload_too_large"

    async def chunks() -> Any:
        for _ in range(limit // 65536 + 2):
            yield b"x" * 65536

    streamed = await stack.client.post(f"/webhooks/{stack.rmm['id']}", content=chunks(), params=params)
    assert streamed.status_code == 413
    assert await _count(stack.services, Job) == 0  # nothing to process
    refused = await _deliveries(stack, "rejected")  # but the refusals are listed, without a body
    assert len(refused) == 2 and all(r["rejection"].startswith("413") for r in refused)
    assert {r["size"] for r in refused} >= {limit + 1}


async def test_two_reconciles_of_one_problem_in_one_worker_exclude_each_other(stack: Stack) -> None:
    from connector.alerts.jobs import DELIVERIES, DELIVERY, RECONCILE
    from connector.infra.jobs.kinds import JobContext, RetryLater
    from connector.infra.jobs.queue import ClaimedJob
    from connector.infra.jobs.worker import Worker
    from connector.runtime import JOB_HANDLERS

    await stack.post_alert(canonical_alert("evt-1"))
    worker = Worker(stack.services, handlers=JOB_HANDLERS.only(DELIVERIES, DELIVERY))
    await worker.run_until_idle()
    [problem] = await stack.problems()
    stack.manage.set_latency(0.2)  # both runs are inside the PSA call at once
    async with stack.services.sessions() as session, session.begin():
        tenant_id = await session.scalar(select(Problem.tenant_id).where(Problem.id == problem["id"]))
        for n in range(2):  # two claimed runs of the job (a run completes its own row)
            session.add(
                Job(
                    id=9000 + n,
                    tenant_id=tenant_id,
                    kind=RECONCILE.name,
                    payload={"problem_id": problem["id"]},
                    status=JobStatus.RUNNING,
                    attempts=1,
                    lease_owner=worker.owner,
                    lease_expires_at=datetime.now(UTC) + timedelta(minutes=5),
                )
            )
    runs = [
        ClaimedJob(9000 + n, tenant_id, "reconcile", {"problem_id": problem["id"]}, 1, 8, None, worker.owner)
        for n in range(2)
    ]
    results = await asyncio.gather(
        *(JOB_HANDLERS.registrations[RECONCILE.name].run(JobContext(stack.services, run)) for run in runs),
        return_exceptions=True,
    )
    assert sum(isinstance(r, RetryLater) for r in results) == 1, results
    assert sum(r is None for r in results) == 1, results
    assert len(stack.tickets()) == 1
    async with stack.services.sessions() as session:
        statuses = sorted((await session.scalars(select(Job.status).where(Job.id >= 9000))).all())
        lock = await session.scalar(select(Problem.lock_owner).where(Problem.id == problem["id"]))
    assert statuses == [JobStatus.DONE, JobStatus.RUNNING]  # done with the lock's release, in one commit
    assert lock is None
