"""The audit trail end to end: every write made to the PSA (tickets created, noted and closed,
configurations updated, billing lines written) and to the RMM (actions sent) has exactly one entry,
listed at `GET /api/v1/audit` with its filters and pages, for the caller's tenant only."""

from __future__ import annotations

from typing import Any

from tests.api.world import canonical_alert
from tests.e2e import test_billing as billing
from tests.e2e.stack import Stack
from tests.e2e.test_status_sync import PER_CLIENT, config_writes, endpoints, fleet, stack, sync
from tests.support.fleet_rmm import FleetFake

__all__ = ["fleet", "stack"]  # the status-sync fixtures, used here as they are


async def audit(stack: Stack, **params: str) -> list[dict[str, Any]]:
    """Every entry matching the filters, following the pages."""
    found: list[dict[str, Any]] = []
    cursor: int | None = None
    while True:
        query = {**params, **({"before": str(cursor)} if cursor else {})}
        response = await stack.client.get("/api/v1/audit", params=query, headers=stack.headers)
        assert response.status_code == 200, response.text
        page = response.json()
        found += page["events"]
        cursor = page["next_before"]
        if cursor is None:
            return found


async def test_each_configuration_write_has_one_entry_and_filters_and_pages_find_them(
    stack: Stack, fleet: FleetFake
) -> None:
    run = await sync(stack)
    written = await audit(stack, kind="configuration.updated")
    assert len(written) == run["psa_calls"] == config_writes(stack) == 2 * PER_CLIENT
    assert {e["category"] for e in written} == {"psa"} and {e["actor"] for e in written} == {"worker"}
    assert {e["connection_id"] for e in written} == {stack.psa["id"]}
    assert {e["target_type"] for e in written} == {"configuration"}
    assert all(e["target_id"] and e["after"]["fields"] for e in written)

    # Paged 30 at a time, newest first, no entry twice or missing.
    pages = []
    cursor = None
    while True:
        params = {"kind": "configuration", "limit": "30", **({"before": str(cursor)} if cursor else {})}
        page = (await stack.client.get("/api/v1/audit", params=params, headers=stack.headers)).json()
        pages.append([e["seq"] for e in page["events"]])
        cursor = page["next_before"]
        if cursor is None:
            break
    assert [len(p) for p in pages] == [30, 30, 30, 10]
    seqs = [seq for page in pages for seq in page]
    assert seqs == sorted(seqs, reverse=True) and len(set(seqs)) == 100
    assert {e["seq"] for e in written} == set(seqs)

    assert len(await audit(stack, kind="configuration", client_id="c-0")) == PER_CLIENT
    assert await audit(stack, kind="configuration", connection_id=stack.rmm["id"]) == []
    assert len(await audit(stack, category="psa")) == 2 * PER_CLIENT
    newest = written[0]["at"]
    assert await audit(stack, kind="configuration", since="2999-01-01T00:00:00Z") == []
    assert len(await audit(stack, kind="configuration", until="2999-01-01T00:00:00Z")) == 100
    assert len(await audit(stack, kind="configuration", since=newest)) >= 1

    unchanged = await sync(stack)  # nothing changed: no write, no entry
    assert unchanged["psa_calls"] == 0
    assert len(await audit(stack, kind="configuration.updated")) == 100


async def test_tickets_created_noted_closed_and_an_action_sent_have_one_entry_each(
    stack: Stack, fleet: FleetFake
) -> None:
    await sync(stack)
    fleet.change("ep-0-7", active_threats=3)
    await sync(stack)
    [ticket] = stack.tickets(stack.seed.company_ids[0])
    [created] = await audit(stack, kind="ticket.created")
    assert created["target_id"] == str(ticket["id"]) and created["client_id"] == "c-0"
    assert created["connection_id"] == stack.psa["id"] and created["category"] == "psa"

    # Repeats of a webhook alert for a mapped client: one ticket, one note for the repeats.
    await stack.map_client("c-9", stack.seed.company_ids[1])
    for n in range(3):
        alert = canonical_alert(f"evt-{n}", client_id="c-9", occurred_at=f"2026-11-20T10:0{n}:00Z")
        assert (await stack.post_alert(alert)).status_code == 202
    await stack.work()
    await stack.pass_time(3600)
    await stack.post_alert(canonical_alert("evt-9", client_id="c-9", occurred_at="2026-11-20T10:09:00Z"))
    await stack.work()
    noted = await audit(stack, kind="ticket.noted")
    repeat_notes = [
        n
        for t in stack.tickets(stack.seed.company_ids[1])
        for n in stack.manage.notes_for(t["id"])
        if "Still active" in n["text"]
    ]
    assert len(noted) == len(repeat_notes) >= 1
    assert all(e["after"]["text"].startswith("Still active") for e in noted)

    [endpoint] = await endpoints(stack, problem="threat_detected")
    sent = await stack.client.post(
        f"/api/v1/endpoints/{endpoint['id']}/actions", json={"action": "scan"}, headers=stack.headers
    )
    assert sent.status_code == 202
    await stack.work()
    [action] = await audit(stack, kind="action")
    assert fleet.actions == [("ep-0-7", "scan")]
    assert action["kind"] == "action.sent" and action["category"] == "rmm"
    assert action["connection_id"] == stack.rmm["id"] and action["after"]["status"] == "accepted"

    fleet.change("ep-0-7", active_threats=0)
    await sync(stack)
    [closed] = await audit(stack, kind="ticket.closed")
    assert closed["target_id"] == str(ticket["id"])
    assert "'scan' action" in closed["after"]["text"]
    tickets = [t for company in stack.seed.company_ids[:2] for t in stack.tickets(company)]
    assert len(await audit(stack, kind="ticket.created")) == len(tickets) == 2


async def test_billing_lines_written_have_one_entry_each_and_unchanged_ones_none(
    stack: Stack, fleet: FleetFake
) -> None:
    await stack.map_client("c-1b", stack.seed.company_ids[1])
    rule = await stack.client.post(
        "/api/v1/billing-rules",
        json={
            "psa_connection_id": stack.psa["id"],
            "product": "acme edr",
            "count_scope": "installed",
            "count_method": "peak",
            "agreement_type": "Managed Services",
            "psa_product_id": "EDR-SEAT",
            "unit_price": "4.50",
        },
        headers=stack.headers,
    )
    assert rule.status_code == 201
    await billing.record_usage(stack, "c-0", [10, 12])
    await billing.record_usage(stack, "c-1b", [8])
    status, first = await billing.push(stack)
    assert status == 200 and first["summary"] == {"created": 2}, first
    lines = await audit(stack, kind="billing_line")
    assert len(lines) == 2
    assert {e["after"]["quantity"] for e in lines} == {12, 8}
    assert {e["actor"] for e in lines} == {"api_key"} and all(e["api_key_id"] for e in lines)
    assert {e["target_id"] for e in lines} == {
        str(a["id"]) for i in (0, 1) for a in billing.additions(stack, i)
    }

    status, second = await billing.push(stack)
    assert second["summary"] == {"unchanged": 2}
    assert len(await audit(stack, kind="billing_line")) == 2

    await billing.record_usage(stack, "c-0", [10, 12, 20])
    approval = {
        "rule_id": rule.json()["id"],
        "company_id": str(stack.seed.company_ids[0]),
        "proposed_quantity": 20,
    }
    decided = await stack.client.post(  # 12 → 20 is beyond the default tolerance
        "/api/v1/billing/decisions",
        json={"period": billing.PERIOD, "decisions": [{**approval, "action": "approve"}]},
        headers=stack.headers,
    )
    assert decided.status_code == 200, decided.text
    status, third = await billing.push(stack)
    assert third["summary"] == {"updated": 1, "unchanged": 1}, third
    [updated, *_] = await audit(stack, kind="billing_line")
    assert updated["before"]["quantity"] == 12 and updated["after"]["quantity"] == 20


async def test_the_audit_of_one_tenant_is_not_shown_to_another(
    stack: Stack, fleet: FleetFake, make_key: Any
) -> None:
    await sync(stack)
    other = await make_key("viewer", tenant="globex")
    response = await stack.client.get("/api/v1/audit", headers=other)
    assert response.status_code == 200
    assert [e for e in response.json()["events"] if e["kind"] != "api_key.created"] == []
    filtered = await stack.client.get(
        "/api/v1/audit", params={"connection_id": stack.psa["id"]}, headers=other
    )
    assert filtered.json()["events"] == []
    assert len(await audit(stack, connection_id=stack.psa["id"], kind="configuration")) == 100
