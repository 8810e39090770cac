"""Security consoles end to end, for every installed console kind through its real adapter against
its stateful fake: a client with 60 RMM endpoints and 57 console agents, 2 of them unknown to the
RMM. The 5 endpoints without an agent are `not_protected` (found by the console), the 2 agents
without an endpoint are `unmanaged_agent`: 7 coverage problems, 7 tickets, closed when the agents
and endpoints appear. The console's seat count reaches the licence table and billing, and an
endpoint's status shows the console as its source."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from adapters.base import EndpointStatus
from adapters.registry import discover
from adapters.testing.harness import (
    CLIENT_NAMES,
    SecurityHarness,
    device_mac,
    device_name,
    device_serial,
    installed_security_harnesses,
)
from connector.infra.context import Services
from connector.models import LicenceDaily
from tests.browser.test_dashboard_http import plaintext, sign_in
from tests.e2e.test_vendor_matrix import (
    CONFIGURATION_FIELDS,
    PSAS,
    _connect,
    _connect_psa,
    _map_by_suggestion,
    _post,
    _sync,
    _work,
    company_of,
    route,
)
from tests.support.fleet_rmm import FLEETS, FleetFake
from tests.support.vendors import VendorRouter

Headers = dict[str, str]
CONSOLES = installed_security_harnesses(discover().all())
CLIENT = CLIENT_NAMES[0]
ENDPOINTS, KNOWN_AGENTS = 60, 55
ROGUES = ("ROGUE-LAPTOP-1", "ROGUE-LAPTOP-2")


def kind_of(harness: SecurityHarness) -> str:
    return harness.spec.kind


def rmm_status(hostname: str, n: int) -> EndpointStatus:
    now = datetime.now(UTC)
    return EndpointStatus(
        endpoint_id=f"ep-{n}",
        client_id="c-1",
        client_name=CLIENT,
        hostname=hostname,
        serial_number=device_serial(hostname),
        mac_addresses=[device_mac(hostname)],
        product="RMM Antivirus",
        protection_enabled=True,
        definitions_date=now - timedelta(hours=6),
        last_scan_at=now - timedelta(days=1),
        active_threats=0,
        online=True,
        last_seen_at=now - timedelta(minutes=5),
    )


@pytest.fixture
def fleet() -> Iterator[tuple[str, FleetFake]]:
    fake = FleetFake(page_size=50)
    host = f"fleet-{uuid.uuid4().hex[:8]}.example.com"
    FLEETS[host] = fake
    yield host, fake
    FLEETS.pop(host, None)


async def open_problems(client: httpx.AsyncClient, headers: Headers) -> list[dict[str, Any]]:
    response = await client.get("/api/v1/problems", params={"state": "open", "limit": "500"}, headers=headers)
    assert response.status_code == 200, response.text
    result: list[dict[str, Any]] = response.json()
    return result


@pytest.mark.parametrize("harness", CONSOLES, ids=kind_of)
async def test_coverage_gaps_become_tickets_and_close_when_the_devices_appear(
    harness: SecurityHarness,
    client: httpx.AsyncClient,
    services: Services,
    vendors: VendorRouter,
    make_key: Callable[..., Awaitable[Headers]],
    fleet: tuple[str, FleetFake],
) -> None:
    if not PSAS:
        pytest.skip("no PSA kind with a harness is installed to take the tickets")
    headers = await make_key("engineer")
    host, rmm = fleet
    for n in range(ENDPOINTS):
        rmm.put(rmm_status(device_name(CLIENT, n), n), modified_at=datetime.now(UTC) - timedelta(days=1))
    console = harness.start(customers=[CLIENT], agents_per_customer=KNOWN_AGENTS)
    [customer] = console.customers
    rogue_agents = [console.add_agent(customer, name) for name in ROGUES]
    console.set_licences(customer, KNOWN_AGENTS + len(ROGUES), 60)
    psa = PSAS[0].start(
        companies=[CLIENT], devices_per_company=ENDPOINTS, configuration_fields=CONFIGURATION_FIELDS
    )
    route(vendors, psa)
    route(vendors, console)
    company = company_of(psa, CLIENT)

    psa_row = await _connect_psa(client, headers, psa)
    rmm_row = await _post(
        client,
        headers,
        "/api/v1/connections",
        {"name": "Fleet", "kind": "fleet_rmm", "base_url": f"https://{host}", "credentials": {"token": "t"}},
    )
    console_row = await _connect(client, headers, console)
    await _map_by_suggestion(client, headers, rmm_row["id"], psa_row["id"], expected=1)
    await _map_by_suggestion(client, headers, console_row["id"], psa_row["id"], expected=1)

    first = await _sync(client, headers, services, rmm_row["id"])
    assert first["status"] == "succeeded", first
    read = await _sync(client, headers, services, console_row["id"])
    assert read["status"] == "succeeded" and not read["errors"], read
    assert read["endpoints_seen"] == KNOWN_AGENTS + len(ROGUES)

    # Exactly the coverage gaps: 5 endpoints no agent matches, 2 agents no endpoint matches.
    problems = await open_problems(client, headers)
    gaps = sorted((p["kind"], p["hostname"].casefold()) for p in problems)
    unprotected = [device_name(CLIENT, n).casefold() for n in range(KNOWN_AGENTS, ENDPOINTS)]
    assert gaps == sorted(
        [("not_protected", name) for name in unprotected]
        + [("unmanaged_agent", r.casefold()) for r in ROGUES]
    ), problems
    assert all(p["routing"] == "ticketed" for p in problems), problems
    not_protected = [p for p in problems if p["kind"] == "not_protected"]
    assert all(console_row["name"] in p["message"] and p["source"] == "console" for p in not_protected)
    tickets = psa.tickets(company)
    assert len(tickets) == 7 and not any(t.closed for t in tickets)

    # An endpoint's status takes the console's values, and says so.
    endpoints = (await client.get("/api/v1/endpoints", params={"limit": "500"}, headers=headers)).json()
    first_device = next(e for e in endpoints if e["hostname"] == device_name(CLIENT, 0))
    detail = (await client.get(f"/api/v1/endpoints/{first_device['id']}", headers=headers)).json()
    assert detail["sources"]["product"] == f"console:{console_row['name']}"
    assert detail["sources"]["protection_enabled"] in (f"console:{console_row['name']}", "rmm")
    assert detail["product"] != "RMM Antivirus"
    agent = detail["console_agent"]
    expected_rule = "serial" if console.reports_serials else "mac" if console.reports_macs else "hostname"
    assert agent is not None and agent["match_rule"] == expected_rule, agent
    # ... and so does the device's configuration record in the PSA.
    [record] = psa.configurations(company, device_name(CLIENT, 0))
    assert detail["product"] in record and "RMM Antivirus" not in record, record
    unmatched = (
        await client.get("/api/v1/console-agents", params={"matched": "false"}, headers=headers)
    ).json()
    assert sorted(a["agent_id"] for a in unmatched) == sorted(rogue_agents)

    # Coverage per company, over the API and on the dashboard.
    [covered] = (await client.get("/api/v1/fleet/coverage", headers=headers)).json()
    assert (
        covered["endpoints"],
        covered["with_agent"],
        covered["without_agent"],
        covered["unmanaged_agents"],
        covered["seats"],
    ) == (ENDPOINTS, KNOWN_AGENTS, ENDPOINTS - KNOWN_AGENTS, len(ROGUES), KNOWN_AGENTS + len(ROGUES))
    assert covered["consoles"] == [console_row["name"]]
    await sign_in(client, plaintext(headers))
    page = (await client.get("/")).text
    assert 'id="coverage-table"' in page and console_row["name"] in page
    row = page.split(f'data-company-id="{covered["company_id"]}"', 1)[1].split("</tr>", 1)[0]
    assert f'data-gap="without_agent">{ENDPOINTS - KNOWN_AGENTS}<' in row
    assert f'data-gap="unmanaged_agents">{len(ROGUES)}<' in row
    # A problem's page shows each status field with its source: the console found this one.
    problem_page = (await client.get(f"/problems/{not_protected[0]['id']}")).text
    assert f'data-source="product">from {console_row["name"]}<' in problem_page, problem_page
    assert 'data-source="online">from the RMM<' in problem_page

    # The console's seat count reaches the licence table and the billing reconciliation.
    async with services.sessions() as session:
        seats = list(
            await session.scalars(select(LicenceDaily).where(LicenceDaily.connection_id == console_row["id"]))
        )
    assert [(row.customer_id, row.product, row.last_used) for row in seats] == [
        (customer, console.licence_product, KNOWN_AGENTS + len(ROGUES))
    ]
    await _post(
        client,
        headers,
        "/api/v1/billing-rules",
        {
            "psa_connection_id": psa_row["id"],
            "product": console.licence_product,
            "count_scope": "console_seats",
            "unit_price": "4.00",
            **psa.billing_ids.rule_fields(),
        },
    )
    period = datetime.now(UTC).strftime("%Y-%m")
    preview = (await client.get("/api/v1/billing/preview", params={"period": period}, headers=headers)).json()
    [line] = preview["lines"]
    assert (line["quantity"], line["console_seats"]) == (KNOWN_AGENTS + len(ROGUES),) * 2

    # The devices appear: agents on the 5 endpoints, endpoints for the 2 agents. Every gap closes.
    for n in range(KNOWN_AGENTS, ENDPOINTS):
        name = device_name(CLIENT, n)
        console.add_agent(customer, name, serial_number=device_serial(name), mac_addresses=[device_mac(name)])
    for n, name in enumerate(ROGUES, start=ENDPOINTS):
        rmm.put(rmm_status(name, n).model_copy(update={"serial_number": None, "mac_addresses": None}))
    assert (await _sync(client, headers, services, rmm_row["id"]))["status"] == "succeeded"
    again = await _sync(client, headers, services, console_row["id"])
    assert again["status"] == "succeeded" and not again["errors"], again
    assert await open_problems(client, headers) == []
    tickets = psa.tickets(company)
    assert len(tickets) == 7 and all(t.closed for t in tickets)


PUSHING = [h for h in CONSOLES if h.start(customers=[CLIENT], agents_per_customer=1).webhook_secret]


@pytest.mark.parametrize("harness", PUSHING, ids=kind_of)
async def test_vendor_threat_webhooks_open_and_close_a_ticket(
    harness: SecurityHarness,
    client: httpx.AsyncClient,
    services: Services,
    vendors: VendorRouter,
    make_key: Callable[..., Awaitable[Headers]],
) -> None:
    """The vendor's own push, signed with the secret it issued (given to the connection, never
    shown again), is verified and ingested like an RMM alert: a threat ticket on the agent's company."""
    if not PSAS:
        pytest.skip("no PSA kind with a harness is installed to take the tickets")
    headers = await make_key("engineer")
    console = harness.start(customers=[CLIENT], agents_per_customer=3)
    psa = PSAS[0].start(companies=[CLIENT], devices_per_company=0, configuration_fields=CONFIGURATION_FIELDS)
    route(vendors, psa)
    route(vendors, console)
    assert console.webhook_secret is not None
    psa_row = await _connect_psa(client, headers, psa)
    created = await client.post(
        "/api/v1/connections",
        json={**console.connection.as_json(), "webhook_secret": console.webhook_secret},
        headers=headers,
    )
    assert created.status_code == 201, created.text
    console_row = created.json()
    assert console_row["webhook_secret"] is None and console_row["webhook_secret_set"] is True
    assert console.webhook_secret not in created.text
    await _map_by_suggestion(client, headers, console_row["id"], psa_row["id"], expected=1)
    agent_id = list(console.agents)[1]
    threat = console.raise_threat(agent_id, "Ransom.Conformance")
    delivery = console.native_threat_webhook(threat)
    assert delivery is not None
    url = f"/webhooks/{console_row['id']}"
    forged = await client.post(
        url, content=delivery.body, headers={**delivery.headers, "svix-signature": "v1,AAAA"}
    )
    assert forged.status_code == 401, forged.text
    accepted = await client.post(url, content=delivery.body, headers=dict(delivery.headers))
    assert accepted.status_code == 202, accepted.text
    await _work(services)
    [problem] = await open_problems(client, headers)
    assert (problem["kind"], problem["endpoint_id"], problem["routing"]) == (
        "threat_detected",
        agent_id,
        "ticketed",
    )
    [ticket] = psa.tickets(company_of(psa, CLIENT))
    assert not ticket.closed

    console.resolve_threat(threat)
    resolved = console.native_threat_webhook(threat)
    assert resolved is not None
    assert (await client.post(url, content=resolved.body, headers=dict(resolved.headers))).status_code == 202
    await _work(services)
    assert await open_problems(client, headers) == []
    [ticket] = psa.tickets(company_of(psa, CLIENT))
    assert ticket.closed


async def test_an_engineer_matches_an_agent_by_hand_and_the_gaps_follow(
    client: httpx.AsyncClient,
    services: Services,
    vendors: VendorRouter,
    make_key: Callable[..., Awaitable[Headers]],
    fleet: tuple[str, FleetFake],
) -> None:
    """A device renamed in the console and without serial or MAC there: no rule can match it, so
    it shows as one unmanaged agent plus one unprotected endpoint until an engineer says which
    endpoint it is; then both gaps close at the next sync, and dropping the override reopens them."""
    if not PSAS or not CONSOLES:
        pytest.skip("needs a PSA and a console kind with a harness")
    headers = await make_key("engineer")
    host, rmm = fleet
    for n in range(3):
        rmm.put(rmm_status(device_name(CLIENT, n), n))
    console = CONSOLES[0].start(customers=[CLIENT], agents_per_customer=2)
    [customer] = console.customers
    renamed = console.add_agent(customer, "FRONT-DESK-PC")
    psa = PSAS[0].start(companies=[CLIENT], devices_per_company=0, configuration_fields=CONFIGURATION_FIELDS)
    route(vendors, psa)
    route(vendors, console)
    psa_row = await _connect_psa(client, headers, psa)
    rmm_row = await _post(
        client,
        headers,
        "/api/v1/connections",
        {"name": "Fleet", "kind": "fleet_rmm", "base_url": f"https://{host}", "credentials": {"token": "t"}},
    )
    console_row = await _connect(client, headers, console)
    await _map_by_suggestion(client, headers, rmm_row["id"], psa_row["id"], expected=1)
    await _map_by_suggestion(client, headers, console_row["id"], psa_row["id"], expected=1)
    await _sync(client, headers, services, rmm_row["id"])
    await _sync(client, headers, services, console_row["id"])
    third = device_name(CLIENT, 2)
    assert sorted((p["kind"], p["hostname"]) for p in await open_problems(client, headers)) == [
        ("not_protected", third),
        ("unmanaged_agent", "FRONT-DESK-PC"),
    ]

    [agent] = (
        await client.get("/api/v1/console-agents", params={"matched": "false"}, headers=headers)
    ).json()
    assert agent["agent_id"] == renamed and agent["match_rule"] is None
    endpoints = (await client.get("/api/v1/endpoints", headers=headers)).json()
    target = next(e for e in endpoints if e["hostname"] == third)
    refused = await client.put(
        f"/api/v1/console-agents/{agent['id']}/match",
        json={"endpoint_id": "no-such-endpoint"},
        headers=headers,
    )
    assert refused.status_code == 422 and refused.json()["errors"][0]["field"] == "endpoint_id", refused.text
    matched = await client.put(
        f"/api/v1/console-agents/{agent['id']}/match", json={"endpoint_id": target["id"]}, headers=headers
    )
    assert matched.status_code == 200, matched.text
    assert (matched.json()["endpoint_id"], matched.json()["match_rule"]) == (target["id"], "manual")
    await _sync(client, headers, services, console_row["id"])
    assert await open_problems(client, headers) == []
    detail = (await client.get(f"/api/v1/endpoints/{target['id']}", headers=headers)).json()
    assert (
        detail["console_agent"]["agent_id"] == renamed and detail["console_agent"]["match_rule"] == "manual"
    )
    audit = (await client.get("/api/v1/audit", params={"kind": "agent_match"}, headers=headers)).json()
    assert [entry["kind"] for entry in audit["events"]] == ["agent_match.set"], audit

    dropped = await client.delete(f"/api/v1/console-agents/{agent['id']}/match", headers=headers)
    assert dropped.status_code == 200 and dropped.json()["endpoint_id"] is None, dropped.text
    await _sync(client, headers, services, console_row["id"])
    assert sorted(p["kind"] for p in await open_problems(client, headers)) == [
        "not_protected",
        "unmanaged_agent",
    ]
