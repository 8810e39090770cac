"""Tickets a technician worked on, on every installed PSA kind through its real adapter and fake:
a cleared problem closes an untouched ticket, but one with a person's note (or time, status
change, reassignment) gets the resolution note and stays open; a ticket a technician closed while
the problem lasts stays closed — no new ticket until the problem clears and comes back."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from adapters.base import EndpointStatus, ProblemKind
from adapters.testing.harness import CLIENT_NAMES, PsaHarness, PsaWorld, TicketSeen, device_name
from connector.infra.context import Services
from tests.api.world import canonical_alert
from tests.e2e.stack import Stack, build_stack
from tests.e2e.test_vendor_matrix import (
    CONFIGURATION_FIELDS,
    PSAS,
    _map_by_suggestion,
    _post,
    _work,
    company_of,
    fleet,
    kind_of,
    route,
)
from tests.support.fleet_rmm import FleetFake
from tests.support.vendors import VendorRouter

__all__ = ["fleet"]
Headers = dict[str, str]


class Flow:
    def __init__(
        self, client: httpx.AsyncClient, services: Services, psa: PsaWorld, rmm: dict[str, Any], company: str
    ) -> None:
        self.client, self.services, self.psa, self.rmm, self.company = client, services, psa, rmm, company
        self.events = 0

    async def alert(self, endpoint: str, state: str = "active") -> None:
        self.events += 1
        body = canonical_alert(
            f"evt-{self.events}",
            client_id="c-acme",
            endpoint_id=endpoint,
            state=state,
            occurred_at=f"2026-11-20T10:{self.events:02d}:00Z",
        )
        response = await self.client.post(
            f"/webhooks/{self.rmm['id']}", json=body, params={"token": self.rmm["webhook_secret"]}
        )
        assert response.status_code == 202, response.text
        await _work(self.services)

    def tickets(self, endpoint: str) -> list[TicketSeen]:
        host = f"{endpoint.upper()}-PC"
        return [t for t in self.psa.tickets(self.company) if host in t.summary]


async def _flow(
    harness: PsaHarness,
    client: httpx.AsyncClient,
    services: Services,
    vendors: VendorRouter,
    headers: Headers,
    fleet: tuple[str, FleetFake],
    **rule: Any,
) -> Flow:
    psa = harness.start(configuration_fields=CONFIGURATION_FIELDS)
    route(vendors, psa)
    host, fake = fleet
    client_name = CLIENT_NAMES[0]
    fake.put(
        EndpointStatus(
            endpoint_id="ep-0",
            client_id="c-acme",
            client_name=client_name,
            hostname=device_name(client_name, 0),
            last_seen_at=datetime.now(UTC),
        )
    )
    psa_row = await _post(client, headers, "/api/v1/connections", psa.connection.as_json())
    await _post(
        client,
        headers,
        "/api/v1/ticket-rules",
        {
            "psa_connection_id": psa_row["id"],
            "summary_template": "{problem_title} on {hostname}",
            "note_interval_minutes": 0,
            **psa.ticket_ids.rule_fields(),
            **rule,
        },
    )
    rmm = await _post(
        client,
        headers,
        "/api/v1/connections",
        {"name": "Fleet", "kind": "fleet_rmm", "base_url": f"https://{host}", "credentials": {"token": "t"}},
    )
    await _map_by_suggestion(client, headers, rmm["id"], psa_row["id"], expected=1)
    return Flow(client, services, psa, rmm, company_of(psa, client_name))


@pytest.mark.parametrize("harness", PSAS, ids=kind_of)
async def test_a_worked_ticket_is_left_open_and_an_untouched_one_closed(
    harness: PsaHarness,
    client: httpx.AsyncClient,
    services: Services,
    vendors: VendorRouter,
    make_key: Callable[..., Awaitable[Headers]],
    fleet: tuple[str, FleetFake],
) -> None:
    flow = await _flow(harness, client, services, vendors, await make_key("engineer"), fleet)
    await flow.alert("ep-1")
    await flow.alert("ep-2")
    [worked] = flow.tickets("ep-1")
    flow.psa.human_note(worked.id, "Spoke to the user, running a full scan by hand.")

    await flow.alert("ep-1", "cleared")
    await flow.alert("ep-2", "cleared")

    [worked] = flow.tickets("ep-1")
    assert not worked.closed, worked
    assert any("Resolved" in n and "Left open" in n for n in worked.notes), worked.notes
    [untouched] = flow.tickets("ep-2")
    assert untouched.closed, untouched
    assert not any("Left open" in n for n in untouched.notes)

    problems = (await client.get("/api/v1/problems", headers=await make_key("engineer"))).json()
    states = {p["endpoint_id"]: p["ticket_state"] for p in problems}
    assert states == {"ep-1": "left_open", "ep-2": "closed"}, problems


@pytest.mark.parametrize("harness", PSAS, ids=kind_of)
async def test_close_policy_close_closes_a_worked_ticket(
    harness: PsaHarness,
    client: httpx.AsyncClient,
    services: Services,
    vendors: VendorRouter,
    make_key: Callable[..., Awaitable[Headers]],
    fleet: tuple[str, FleetFake],
) -> None:
    flow = await _flow(
        harness, client, services, vendors, await make_key("engineer"), fleet, close_policy="close"
    )
    await flow.alert("ep-1")
    [ticket] = flow.tickets("ep-1")
    flow.psa.human_time_entry(ticket.id)
    await flow.alert("ep-1", "cleared")
    [ticket] = flow.tickets("ep-1")
    assert ticket.closed


@pytest.mark.parametrize("harness", PSAS, ids=kind_of)
async def test_a_ticket_closed_by_a_technician_stays_closed_until_the_problem_returns(
    harness: PsaHarness,
    client: httpx.AsyncClient,
    services: Services,
    vendors: VendorRouter,
    make_key: Callable[..., Awaitable[Headers]],
    fleet: tuple[str, FleetFake],
) -> None:
    flow = await _flow(harness, client, services, vendors, await make_key("engineer"), fleet)
    await flow.alert("ep-1")
    [ticket] = flow.tickets("ep-1")
    flow.psa.human_close(ticket.id)
    notes = flow.tickets("ep-1")[0].notes

    for _ in range(3):  # still active, reported again and again
        await flow.alert("ep-1")
    [ticket] = flow.tickets("ep-1")
    assert ticket.closed and ticket.notes == notes, ticket
    problems = (await client.get("/api/v1/problems", headers=await make_key("engineer"))).json()
    assert [p["ticket_state"] for p in problems] == ["acknowledged"], problems

    await flow.alert("ep-1", "cleared")
    assert len(flow.tickets("ep-1")) == 1
    await flow.alert("ep-1")  # it comes back: a new ticket
    tickets = flow.tickets("ep-1")
    assert len(tickets) == 2 and sum(not t.closed for t in tickets) == 1, tickets


@pytest.mark.parametrize("harness", PSAS, ids=kind_of)
async def test_a_ticket_deleted_in_the_psa_is_opened_again_once(
    harness: PsaHarness,
    client: httpx.AsyncClient,
    services: Services,
    vendors: VendorRouter,
    make_key: Callable[..., Awaitable[Headers]],
    fleet: tuple[str, FleetFake],
) -> None:
    flow = await _flow(harness, client, services, vendors, await make_key("engineer"), fleet)
    await flow.alert("ep-1")
    [first] = flow.tickets("ep-1")
    flow.psa.delete_ticket(first.id)
    await flow.alert("ep-1")
    [second] = flow.tickets("ep-1")
    assert second.id != first.id and not second.closed
    flow.psa.delete_ticket(second.id)
    await flow.alert("ep-1")
    assert flow.tickets("ep-1") == []  # deleted twice: not forced on them a third time


async def _stack(
    client: httpx.AsyncClient, services: Services, vendors: VendorRouter, headers: Headers, **rule: Any
) -> Stack:
    stack = await build_stack(client, services, vendors, headers, note_interval_minutes=0)
    if rule:
        response = await client.patch(f"/api/v1/ticket-rules/{stack.rule['id']}", json=rule, headers=headers)
        assert response.status_code == 200, response.text
    return stack


async def test_a_technicians_close_is_reraised_after_the_rules_interval(
    client: httpx.AsyncClient,
    services: Services,
    vendors: VendorRouter,
    make_key: Callable[..., Awaitable[Headers]],
) -> None:
    stack = await _stack(client, services, vendors, await make_key("engineer"), reraise_minutes=120)
    await stack.post_alert(canonical_alert("evt-1"))
    await stack.work()
    [first] = stack.tickets()
    stack.manage.member_update(first["id"], close=True)
    await stack.post_alert(canonical_alert("evt-2", occurred_at="2026-11-20T10:05:00Z"))
    await stack.work()
    assert len(stack.tickets()) == 1
    [problem] = await stack.problems()
    assert problem["ticket_state"] == "acknowledged"

    await stack.pass_time(3600)  # inside the interval
    await stack.work()
    assert len(stack.tickets()) == 1
    await stack.pass_time(7200)  # the reconcile the interval scheduled comes due
    await stack.work()
    tickets = stack.tickets()
    assert len(tickets) == 2 and [t["closedFlag"] for t in tickets] == [True, False], tickets
    [problem] = await stack.problems()
    assert problem["ticket_state"] == "open" and problem["ticket_id"] == str(tickets[1]["id"])


async def test_a_ticket_merged_in_the_psa_is_followed_into_the_ticket_it_went_into(
    client: httpx.AsyncClient,
    services: Services,
    vendors: VendorRouter,
    make_key: Callable[..., Awaitable[Headers]],
) -> None:
    stack = await _stack(client, services, vendors, await make_key("engineer"))
    await stack.post_alert(canonical_alert("evt-1"))
    await stack.work()
    [ours] = stack.tickets()
    parent = stack.manage.add_ticket(stack.company_id, stack.seed.board_id, "Several alerts on EP-1")
    stack.manage.merge_ticket(ours["id"], into=parent["id"], member="APIMember")
    await stack.post_alert(canonical_alert("evt-2", state="cleared"))
    await stack.work()
    parent = next(t for t in stack.tickets() if t["id"] == parent["id"])
    assert parent["closedFlag"] is True
    assert any("Resolved" in n["text"] for n in stack.manage.notes_for(parent["id"]))
    [problem] = await stack.problems()
    assert problem["ticket_id"] == str(parent["id"]) and problem["ticket_state"] == "closed"


@pytest.mark.parametrize("clear", [True, False], ids=["clear_rmm_alert", "leave_rmm_alert"])
async def test_a_technicians_close_resolves_the_rmm_alert_when_the_rule_says_so(
    client: httpx.AsyncClient,
    services: Services,
    vendors: VendorRouter,
    make_key: Callable[..., Awaitable[Headers]],
    fleet: tuple[str, FleetFake],
    clear: bool,
) -> None:
    harness = next(h for h in PSAS if h.spec.kind == "connectwise_manage")
    flow = await _flow(
        harness, client, services, vendors, await make_key("engineer"), fleet, clear_rmm_alert=clear
    )
    await flow.alert("ep-1")
    [ticket] = flow.tickets("ep-1")
    flow.psa.human_close(ticket.id)
    await flow.alert("ep-1")
    await flow.alert("ep-1")
    assert fleet[1].cleared_alerts == ([("ep-1", ProblemKind.THREAT_DETECTED)] if clear else [])
