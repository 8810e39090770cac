"""Nothing is lost by a configuration change: deleting what others depend on answers 409 naming
the dependents; a forced delete hands open tickets over (a note in the PSA, the link kept) and says
so; a disabled connection refuses webhooks (recorded) and is not synced; every change is audited
with its secrets redacted."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from connector.infra import db
from connector.infra.context import Services
from connector.models import BillingLineState, Connection, Problem, TicketLink
from connector.statuses import ProblemStatus
from connector.sync.scheduler import schedule_due_syncs
from tests.api.world import canonical_alert
from tests.e2e.stack import Stack, build_stack
from tests.support.vendors import VendorRouter

HANDOVER = "no longer managed by connector"


@pytest.fixture
async def stack(
    client: httpx.AsyncClient,
    services: Services,
    vendors: VendorRouter,
    make_key: Callable[..., Awaitable[dict[str, str]]],
) -> Stack:
    built = await build_stack(
        client, services, vendors, await make_key("engineer"), map_clients=("c-1", "c-2")
    )
    for n, (client_id, endpoint) in enumerate([("c-1", "ep-1"), ("c-1", "ep-2"), ("c-2", "ep-3")]):
        alert = canonical_alert(f"evt-{n}", client_id=client_id, endpoint_id=endpoint)
        assert (await built.post_alert(alert)).status_code == 202
    await built.work()
    assert len(built.tickets()) == 3
    return built


async def open_problems_without_a_link(services: Services) -> int:
    async with services.sessions() as session:
        linked = select(TicketLink.problem_id)
        query = select(func.count()).where(Problem.state == ProblemStatus.OPEN, Problem.id.not_in(linked))
        return int(await session.scalar(query) or 0)


async def audit(stack: Stack, **params: str) -> list[dict[str, Any]]:
    response = await stack.client.get(
        "/api/v1/audit", params={"limit": "1000", **params}, headers=stack.headers
    )
    assert response.status_code == 200, response.text
    events: list[dict[str, Any]] = response.json()["events"]
    return events


def handover_notes(stack: Stack) -> list[str]:
    return [
        n["text"] for t in stack.tickets() for n in stack.manage.notes_for(t["id"]) if HANDOVER in n["text"]
    ]


async def test_deleting_a_psa_connection_with_dependents_is_409_listing_them(stack: Stack) -> None:
    response = await stack.client.delete(f"/api/v1/connections/{stack.psa['id']}", headers=stack.headers)

    assert response.status_code == 409, response.text
    body = response.json()
    assert body["error"] == "conflict" and "force=true" in body["message"]
    listed = {(d["kind"], d["id"]) for d in body["dependents"]}
    assert {("client_mapping", m["id"]) for m in stack.mappings.values()} <= listed
    assert ("ticket_rule", stack.rule["id"]) in listed
    problems = await stack.problems(state="open")
    assert {("open_ticket", p["id"]) for p in problems} <= listed
    assert body["counts"] == {"client_mapping": 2, "ticket_rule": 1, "open_ticket": 3}
    # Nothing was removed or written.
    assert (
        await stack.client.get(f"/api/v1/connections/{stack.psa['id']}", headers=stack.headers)
    ).status_code == 200
    assert len(await stack.problems(state="open")) == 3
    assert handover_notes(stack) == []
    assert await audit(stack, kind="connection.deleted") == []


async def test_a_forced_psa_delete_hands_every_open_ticket_over_and_says_so(stack: Stack) -> None:
    tickets = {str(t["id"]) for t in stack.tickets()}

    response = await stack.client.delete(
        f"/api/v1/connections/{stack.psa['id']}", params={"force": "true"}, headers=stack.headers
    )

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["deleted"] == {"kind": "connection", "id": stack.psa["id"], "label": ""}
    assert {t["ticket_id"] for t in body["tickets"]} == tickets
    assert {(t["action"], t["noted"]) for t in body["tickets"]} == {("handed_over", True)}
    assert {d["kind"] for d in body["removed"]} == {"client_mapping", "ticket_rule"}
    # Each PSA ticket has the note, and stays open for a technician.
    assert len(handover_notes(stack)) == 3
    assert all(t["status"]["id"] != stack.seed.closed_status_id for t in stack.tickets())
    # No open problem lost its ticket link: each shows its ticket, handed over.
    assert await open_problems_without_a_link(stack.services) == 0
    problems = await stack.problems(state="open")
    assert len(problems) == 3
    assert {(p["ticket_id"], p["ticket_state"]) for p in problems} == {(t, "handed_over") for t in tickets}
    # Audited: the deletion (credentials redacted) and each hand-over.
    [deleted] = await audit(stack, kind="connection.deleted")
    assert deleted["api_key_id"] and deleted["before"]["name"] == "Manage"
    assert set(deleted["before"]["credentials"].values()) <= {"[redacted]", None, ""}
    handed = await audit(stack, kind="ticket.handed_over")
    assert {e["target_id"] for e in handed} == tickets and {e["after"]["noted"] for e in handed} == {True}

    # The problems clearing later writes nothing more to the old tickets.
    calls = stack.manage.call_count()
    for n, (client_id, endpoint) in enumerate([("c-1", "ep-1"), ("c-1", "ep-2"), ("c-2", "ep-3")]):
        alert = canonical_alert(
            f"clear-{n}",
            client_id=client_id,
            endpoint_id=endpoint,
            state="cleared",
            occurred_at="2026-11-20T11:00:00Z",
        )
        assert (await stack.post_alert(alert)).status_code == 202
    await stack.work()
    assert stack.manage.call_count() == calls
    assert await stack.problems(state="open") == []


async def test_a_forced_rmm_delete_notes_its_problems_tickets_before_they_go(stack: Stack) -> None:
    plain = await stack.client.delete(f"/api/v1/connections/{stack.rmm['id']}", headers=stack.headers)
    assert plain.status_code == 409
    assert plain.json()["counts"] == {"client_mapping": 2, "open_ticket": 3}

    forced = await stack.client.delete(
        f"/api/v1/connections/{stack.rmm['id']}", params={"force": "true"}, headers=stack.headers
    )

    assert forced.status_code == 200, forced.text
    assert len(forced.json()["tickets"]) == 3 and len(handover_notes(stack)) == 3
    assert await stack.problems() == []  # the RMM's problems went with it: none left open
    assert await open_problems_without_a_link(stack.services) == 0
    assert (
        await stack.client.get(f"/api/v1/connections/{stack.psa['id']}", headers=stack.headers)
    ).status_code == 200


async def test_mapping_and_rule_deletes_name_their_open_tickets_and_forced_ones_keep_managing_them(
    stack: Stack,
) -> None:
    mapping = stack.mappings["c-1"]
    refused = await stack.client.delete(f"/api/v1/client-mappings/{mapping['id']}", headers=stack.headers)
    assert refused.status_code == 409
    assert refused.json()["counts"] == {"open_ticket": 2}
    rule = await stack.client.delete(f"/api/v1/ticket-rules/{stack.rule['id']}", headers=stack.headers)
    assert rule.status_code == 409 and rule.json()["counts"] == {"open_ticket": 3}

    forced = await stack.client.delete(
        f"/api/v1/client-mappings/{mapping['id']}", params={"force": "true"}, headers=stack.headers
    )
    assert forced.status_code == 200
    assert [t["action"] for t in forced.json()["tickets"]] == ["kept", "kept"]
    assert await open_problems_without_a_link(stack.services) == 0
    # Still managed: the problem clearing closes its ticket.
    clear = canonical_alert(
        "clear-1", endpoint_id="ep-1", state="cleared", occurred_at="2026-11-20T11:00:00Z"
    )
    assert (await stack.post_alert(clear)).status_code == 202
    await stack.work()
    closed = [t for t in stack.tickets() if t["status"]["id"] == stack.seed.closed_status_id]
    assert len(closed) == 1
    [entry] = await audit(stack, kind="client_mapping.deleted")
    assert entry["before"]["rmm_client_id"] == "c-1" and "(forced)" in entry["summary"]


async def test_a_billing_rule_with_lines_in_the_psa_is_409_naming_them(stack: Stack) -> None:
    created = await stack.client.post(
        "/api/v1/billing-rules",
        json={
            "psa_connection_id": stack.psa["id"],
            "product": "acme edr",
            "agreement_type": "Managed Services",
            "psa_product_id": "EDR-SEAT",
            "unit_price": "4.50",
        },
        headers=stack.headers,
    )
    rule = created.json()
    async with db.transaction(stack.services.sessions) as session:
        connection = await session.get(Connection, stack.psa["id"])
        assert connection is not None
        state = BillingLineState(
            tenant_id=connection.tenant_id,
            rule_id=rule["id"],
            company_id="250",
            line_id="77",
            period="2026-10",
            quantity=12,
            unit_price=4.5,
            unit_cost=2,
        )
        session.add(state)
    refused = await stack.client.delete(f"/api/v1/billing-rules/{rule['id']}", headers=stack.headers)
    assert refused.status_code == 409
    assert [(d["kind"], d["id"]) for d in refused.json()["dependents"]] == [("billing_line", state.id)]
    assert (
        await stack.client.delete(
            f"/api/v1/billing-rules/{rule['id']}", params={"force": "true"}, headers=stack.headers
        )
    ).status_code == 200
    gone = await stack.client.get(f"/api/v1/billing-rules/{rule['id']}", headers=stack.headers)
    assert gone.status_code == 404


async def test_a_rule_without_dependents_is_deleted_with_204(stack: Stack) -> None:
    created = await stack.client.post(
        "/api/v1/ticket-rules",
        json={"psa_connection_id": stack.psa["id"], "problem": "scan_overdue", "board_id": "1"},
        headers=stack.headers,
    )
    response = await stack.client.delete(
        f"/api/v1/ticket-rules/{created.json()['id']}", headers=stack.headers
    )
    assert response.status_code == 204


async def test_a_disabled_connection_refuses_webhooks_recorded_and_is_not_synced(stack: Stack) -> None:
    patched = await stack.client.patch(
        f"/api/v1/connections/{stack.rmm['id']}", json={"enabled": False}, headers=stack.headers
    )
    assert patched.status_code == 200 and patched.json()["enabled"] is False

    refused = await stack.post_alert(canonical_alert("evt-while-disabled", endpoint_id="ep-9"))
    assert refused.status_code == 403
    assert refused.json()["error"] == "connection_disabled"
    rejected = await stack.client.get(
        "/api/v1/deliveries", params={"status": "rejected"}, headers=stack.headers
    )
    [delivery] = rejected.json()
    assert delivery["rejection"].startswith("403 ") and "disabled" in delivery["rejection"]
    bad_signature = await stack.post_alert(canonical_alert("evt-x"), params={"token": "wrong"})
    assert bad_signature.status_code == 401  # the signature is still checked first
    await stack.work()
    assert len(await stack.problems()) == 3  # nothing processed from it

    one = await stack.client.post(
        "/api/v1/sync-runs", json={"connection_id": stack.rmm["id"]}, headers=stack.headers
    )
    assert one.status_code == 422 and "disabled" in one.text
    every = await stack.client.post("/api/v1/sync-runs", json={}, headers=stack.headers)
    assert every.status_code == 202 and every.json() == []
    assert await schedule_due_syncs(stack.services) == 0
    # Nothing was deleted: mappings, rules, problems and tickets are all there.
    for mapping in stack.mappings.values():
        got = await stack.client.get(f"/api/v1/client-mappings/{mapping['id']}", headers=stack.headers)
        assert got.status_code == 200
    assert len(await stack.problems(state="open")) == 3

    enabled = await stack.client.patch(
        f"/api/v1/connections/{stack.rmm['id']}", json={"enabled": True}, headers=stack.headers
    )
    assert enabled.status_code == 200
    assert (await stack.post_alert(canonical_alert("evt-after", endpoint_id="ep-9"))).status_code == 202
    [disabled, reenabled] = list(reversed(await audit(stack, kind="connection.updated")))
    assert disabled["summary"].endswith("disabled") and disabled["after"] == {"enabled": False}
    assert reenabled["before"] == {"enabled": False} and reenabled["after"] == {"enabled": True}


async def test_a_run_queued_before_the_connection_was_disabled_reads_nothing(stack: Stack) -> None:
    queued = await stack.client.post(
        "/api/v1/sync-runs", json={"connection_id": stack.rmm["id"]}, headers=stack.headers
    )
    [run] = queued.json()
    await stack.client.patch(
        f"/api/v1/connections/{stack.rmm['id']}", json={"enabled": False}, headers=stack.headers
    )
    await stack.work()
    finished = (await stack.client.get(f"/api/v1/sync-runs/{run['id']}", headers=stack.headers)).json()
    assert finished["status"] == "interrupted" and finished["pages"] == 0
    assert "disabled" in finished["errors"][0]["message"]


async def test_a_config_change_is_audited_with_who_what_and_secrets_redacted(stack: Stack) -> None:
    new_secret = "a-brand-new-rmm-secret-9f8e7d"
    response = await stack.client.patch(
        f"/api/v1/connections/{stack.rmm['id']}",
        json={"name": "RMM (EU)", "credentials": {"api_secret": new_secret}},
        headers=stack.headers,
    )
    assert response.status_code == 200
    rotated = await stack.client.post(
        f"/api/v1/connections/{stack.rmm['id']}/webhook-secret", headers=stack.headers
    )
    webhook_secret = rotated.json()["webhook_secret"]
    rule = await stack.client.patch(
        f"/api/v1/ticket-rules/{stack.rule['id']}", json={"note_interval_minutes": 15}, headers=stack.headers
    )
    assert rule.status_code == 200

    everything = await stack.client.get("/api/v1/audit", params={"category": "config"}, headers=stack.headers)
    text = everything.text
    for secret in (new_secret, "rmm-secret", webhook_secret, stack.rmm["webhook_secret"]):
        assert secret not in text
    [changed] = await audit(stack, kind="connection.updated")
    me = await stack.client.get("/api/v1/api-keys", headers=stack.headers)
    assert me.status_code == 403  # an engineer key: its id is on the entry all the same
    assert changed["actor"] == "api_key" and len(changed["api_key_id"]) == 32
    assert changed["connection_id"] == stack.rmm["id"]
    assert changed["before"]["name"] == "RMM" and changed["after"]["name"] == "RMM (EU)"
    assert changed["before"]["credentials"]["api_secret"] == "[redacted]"
    assert changed["after"]["credentials"]["api_secret"] == "[redacted]"
    assert changed["after"]["credentials"]["username"] == "[redacted]"
    assert await audit(stack, kind="connection.webhook_secret_rotated") != []
    [rule_changed] = await audit(stack, kind="ticket_rule.updated")
    assert rule_changed["before"] == {"note_interval_minutes": 60} and rule_changed["after"] == {
        "note_interval_minutes": 15
    }
    created = await audit(stack, kind="connection.created")
    assert {e["after"]["name"] for e in created} == {"RMM", "Manage"}
    # The audit is for viewers too, and filters refuse a kind that does not exist.
    bad = await stack.client.get("/api/v1/audit", params={"kind": "tickets"}, headers=stack.headers)
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "kind"
    naive = await stack.client.get(
        "/api/v1/audit", params={"since": "2026-01-01T00:00:00"}, headers=stack.headers
    )
    assert naive.status_code == 422 and naive.json()["errors"][0]["field"] == "since"


async def test_api_key_changes_are_audited_without_the_key(
    client: httpx.AsyncClient, make_key: Callable[..., Awaitable[dict[str, str]]]
) -> None:
    admin = await make_key("admin")
    created = await client.post("/api/v1/api-keys", json={"name": "ops", "role": "viewer"}, headers=admin)
    key = created.json()
    assert (await client.delete(f"/api/v1/api-keys/{key['id']}", headers=admin)).status_code == 204
    events = (await client.get("/api/v1/audit", params={"kind": "api_key"}, headers=admin)).json()["events"]
    assert key["key"] not in str(events)
    revoked, made = events[0], events[1]
    assert made["kind"] == "api_key.created" and made["target_id"] == key["id"]
    assert made["after"] == {"name": "ops", "role": "viewer", "prefix": key["prefix"]}
    assert revoked["kind"] == "api_key.revoked" and revoked["after"] == {"revoked": True}


async def test_nothing_is_written_to_a_disabled_psa_and_the_work_resumes_once_enabled(stack: Stack) -> None:
    psa = f"/api/v1/connections/{stack.psa['id']}"
    assert (await stack.client.patch(psa, json={"enabled": False}, headers=stack.headers)).status_code == 200
    calls = stack.manage.call_count()
    clear = canonical_alert(
        "clear-1", endpoint_id="ep-1", state="cleared", occurred_at="2026-11-20T11:00:00Z"
    )
    assert (await stack.post_alert(clear)).status_code == 202
    await stack.work()
    assert stack.manage.call_count() == calls  # the ticket is not closed behind the engineer's back
    assert [t for t in stack.tickets() if t["status"]["id"] == stack.seed.closed_status_id] == []

    assert (await stack.client.patch(psa, json={"enabled": True}, headers=stack.headers)).status_code == 200
    await stack.pass_time(600)
    await stack.work()
    closed = [t for t in stack.tickets() if t["status"]["id"] == stack.seed.closed_status_id]
    assert len(closed) == 1
    assert len(await audit(stack, kind="ticket.closed")) == 1


async def test_thresholds_and_a_closed_billing_period_are_audited(stack: Stack) -> None:
    limits = {"definitions_max_age_days": 5, "scan_max_age_days": 14, "offline_after_days": 7}
    assert (
        await stack.client.put("/api/v1/settings/thresholds", json=limits, headers=stack.headers)
    ).status_code == 200
    limits["definitions_max_age_days"] = 2
    assert (
        await stack.client.put("/api/v1/settings/thresholds", json=limits, headers=stack.headers)
    ).status_code == 200
    assert (
        await stack.client.put("/api/v1/settings/thresholds", json=limits, headers=stack.headers)
    ).status_code == 200
    latest, first = await audit(stack, kind="thresholds")  # the unchanged third PUT is no entry
    assert latest["before"] == {"definitions_max_age_days": 5} and latest["after"] == {
        "definitions_max_age_days": 2
    }
    assert first["after"]["definitions_max_age_days"] == 5
    closed = await stack.client.post("/api/v1/billing/periods/2026-10/close", headers=stack.headers)
    assert closed.status_code == 200
    [entry] = await audit(stack, kind="billing_period.closed")
    assert entry["target_id"] == "2026-10" and entry["api_key_id"]


async def test_a_forced_delete_of_a_disabled_psa_writes_no_note_and_says_so(stack: Stack) -> None:
    psa = f"/api/v1/connections/{stack.psa['id']}"
    assert (await stack.client.patch(psa, json={"enabled": False}, headers=stack.headers)).status_code == 200
    calls = stack.manage.call_count()
    forced = await stack.client.delete(psa, params={"force": "true"}, headers=stack.headers)
    assert forced.status_code == 200
    tickets = forced.json()["tickets"]
    assert len(tickets) == 3 and {(t["noted"], t["error"]) for t in tickets} == {
        (False, "the PSA connection is disabled: no note written")
    }
    assert stack.manage.call_count() == calls
    assert await open_problems_without_a_link(stack.services) == 0
    assert {p["ticket_state"] for p in await stack.problems(state="open")} == {"handed_over"}
