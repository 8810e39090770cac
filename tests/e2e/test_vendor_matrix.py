"""The same end-to-end flows for every installed RMM and PSA kind, each through its real adapter
against the stateful fake its harness stands up (`AdapterSpec.harness`): status sync → problems →
tickets → usage (RMMs), and tickets, configuration records and billing lines (PSAs). The kinds
come from the registry, so a new vendor with a harness is in the matrix without an edit here."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from adapters.base import EndpointStatus
from adapters.registry import discover
from adapters.testing.harness import (
    CLIENT_NAMES,
    PsaHarness,
    PsaWorld,
    RmmHarness,
    VendorWorld,
    device_name,
    installed_harnesses,
)
from connector.fleet.domain import configuration_fields
from connector.infra.context import Services
from connector.models import UsageDaily
from tests.api.world import canonical_alert
from tests.support.fleet_rmm import FLEETS, FleetFake
from tests.support.vendors import VendorRouter

Headers = dict[str, str]
RMMS, PSAS = installed_harnesses(discover().all())
CONFIGURATION_FIELDS = tuple(
    configuration_fields(EndpointStatus(endpoint_id="-", client_id="-", hostname="-"), "protected")
)
"""The fields the core writes onto configuration records (vendors that need them declared get them)."""


def kind_of(harness: RmmHarness | PsaHarness) -> str:
    return harness.spec.kind


def route(vendors: VendorRouter, world: VendorWorld) -> None:
    for host in world.hosts:
        vendors.add(host, world.transport())


def company_of(psa: PsaWorld, client_name: str) -> str:
    return next(company for company, name in psa.companies.items() if name == client_name)


async def _post(
    client: httpx.AsyncClient, headers: Headers, path: str, body: dict[str, Any]
) -> dict[str, Any]:
    response = await client.post(path, json=body, headers=headers)
    assert response.status_code in (200, 201, 202), response.text
    result: Any = response.json()
    return result[0] if isinstance(result, list) and result else result


async def _work(services: Services) -> None:
    from connector import runtime

    await runtime.worker(services, concurrency=4).run_until_idle()


async def _sync(
    client: httpx.AsyncClient, headers: Headers, services: Services, rmm_id: str
) -> dict[str, Any]:
    run = await _post(client, headers, "/api/v1/sync-runs", {"connection_id": rmm_id})
    await _work(services)
    result: dict[str, Any] = (await client.get(f"/api/v1/sync-runs/{run['id']}", headers=headers)).json()
    return result


async def _connect(client: httpx.AsyncClient, headers: Headers, world: VendorWorld) -> dict[str, Any]:
    created = await _post(client, headers, "/api/v1/connections", world.connection.as_json())
    test = await client.post(f"/api/v1/connections/{created['id']}/test", headers=headers)
    assert test.json()["ok"] is True, test.text
    return created


async def _connect_psa(client: httpx.AsyncClient, headers: Headers, psa: PsaWorld) -> dict[str, Any]:
    created = await _connect(client, headers, psa)
    await _post(
        client,
        headers,
        "/api/v1/ticket-rules",
        {
            "psa_connection_id": created["id"],
            "summary_template": "{problem_title} on {hostname}",
            **psa.ticket_ids.rule_fields(),
        },
    )
    return created


async def _map_by_suggestion(
    client: httpx.AsyncClient, headers: Headers, rmm_id: str, psa_id: str, expected: int
) -> None:
    suggestions = (
        await client.get(
            "/api/v1/client-mappings/suggestions",
            params={"rmm_connection_id": rmm_id, "psa_connection_id": psa_id},
            headers=headers,
        )
    ).json()
    assert len(suggestions) >= expected, suggestions
    for s in suggestions[:expected]:
        await _post(
            client,
            headers,
            "/api/v1/client-mappings",
            {
                "rmm_connection_id": rmm_id,
                "rmm_client_id": s["rmm_client_id"],
                "rmm_client_name": s["rmm_client_name"],
                "psa_connection_id": psa_id,
                "psa_company_id": s["psa_company_id"],
                "psa_company_name": s["psa_company_name"],
            },
        )


@pytest.mark.parametrize("harness", RMMS, ids=kind_of)
async def test_rmm_sync_problems_tickets_and_usage(
    harness: RmmHarness,
    client: httpx.AsyncClient,
    services: Services,
    vendors: VendorRouter,
    make_key: Callable[..., Awaitable[Headers]],
) -> None:
    if not PSAS:
        pytest.skip("no PSA kind with a harness is installed to take the tickets")
    headers = await make_key("engineer")
    rmm = harness.start(base_url=f"https://{harness.spec.kind.replace('_', '-')}.example.com")
    psa = PSAS[0].start(devices_per_company=0, configuration_fields=CONFIGURATION_FIELDS)
    route(vendors, rmm)
    route(vendors, psa)
    psa_row = await _connect_psa(client, headers, psa)
    rmm_row = await _connect(client, headers, rmm)
    await _map_by_suggestion(client, headers, rmm_row["id"], psa_row["id"], expected=len(CLIENT_NAMES))

    first = await _sync(client, headers, services, rmm_row["id"])
    assert first["status"] == "succeeded", first
    assert first["endpoints_seen"] == len(rmm.endpoints)
    endpoints = (await client.get("/api/v1/endpoints", params={"limit": "500"}, headers=headers)).json()
    assert len(endpoints) == len(rmm.endpoints)

    endpoint_id = list(rmm.endpoints)[3]
    company = company_of(psa, rmm.clients[rmm.endpoints[endpoint_id].client_id])
    problem = rmm.put_in_trouble(endpoint_id)
    second = await _sync(client, headers, services, rmm_row["id"])
    assert second["status"] == "succeeded", second
    problems = (await client.get("/api/v1/problems", params={"state": "open"}, headers=headers)).json()
    mine = [p for p in problems if p["endpoint_id"] == endpoint_id and p["kind"] == problem.value]
    assert mine and mine[0]["routing"] == "ticketed", f"{problems} {second} {endpoints[:1]}"
    [ticket] = psa.tickets(company)
    assert not ticket.closed

    async with services.sessions() as session:
        usage = await session.scalar(
            select(func.sum(UsageDaily.last_installed)).where(UsageDaily.rmm_connection_id == rmm_row["id"])
        )
    if rmm.reports_products:
        assert usage == len(rmm.endpoints)
    else:  # antivirus state arrives only as failing checks: no product, nothing to bill from status
        assert usage is None

    # The endpoint recovers: whichever observer reported it (status or a complete poll) clears it.
    rmm.clear_trouble(endpoint_id)
    third = await _sync(client, headers, services, rmm_row["id"])
    assert third["status"] == "succeeded" and third["problems_closed"] >= 1, third
    problems = (await client.get("/api/v1/problems", params={"state": "open"}, headers=headers)).json()
    assert [p for p in problems if p["endpoint_id"] == endpoint_id] == []
    [ticket] = psa.tickets(company)
    assert ticket.closed


@pytest.fixture
def fleet() -> Iterator[tuple[str, FleetFake]]:
    fake = FleetFake(page_size=50)
    host = f"fleet-{uuid.uuid4().hex[:8]}.example.com"
    FLEETS[host] = fake
    yield host, fake
    FLEETS.pop(host, None)


@pytest.mark.parametrize("harness", PSAS, ids=kind_of)
async def test_psa_tickets_configurations_and_billing(
    harness: PsaHarness,
    client: httpx.AsyncClient,
    services: Services,
    vendors: VendorRouter,
    make_key: Callable[..., Awaitable[Headers]],
    fleet: tuple[str, FleetFake],
) -> None:
    headers = await make_key("engineer")
    psa = harness.start(configuration_fields=CONFIGURATION_FIELDS)
    route(vendors, psa)
    host, fake = fleet
    client_name = CLIENT_NAMES[0]
    for n in range(4):
        fake.put(
            EndpointStatus(
                endpoint_id=f"ep-{n}",
                client_id="c-acme",
                client_name=client_name,
                hostname=device_name(client_name, n),
                product="Acme EDR",
                protection_enabled=True,
                definitions_date=datetime.now(UTC),
                last_scan_at=datetime.now(UTC),
                active_threats=0,
                online=True,
                last_seen_at=datetime.now(UTC),
            )
        )
    psa_row = await _connect_psa(client, headers, psa)
    rmm_row = await _post(
        client,
        headers,
        "/api/v1/connections",
        {"name": "Fleet", "kind": "fleet_rmm", "base_url": f"https://{host}", "credentials": {"token": "t"}},
    )
    await _map_by_suggestion(client, headers, rmm_row["id"], psa_row["id"], expected=1)
    company = company_of(psa, client_name)

    # Tickets: alert → one ticket; repeat → still one; clear → closed with a resolution.
    params = {"token": rmm_row["webhook_secret"]}
    alert = canonical_alert("evt-1", client_id="c-acme", endpoint_id="ep-1")
    assert (await client.post(f"/webhooks/{rmm_row['id']}", json=alert, params=params)).status_code == 202
    await _work(services)
    [ticket] = psa.tickets(company)
    assert not ticket.closed and "Threat detected" in ticket.summary
    cleared = canonical_alert(
        "evt-2", client_id="c-acme", endpoint_id="ep-1", state="cleared", occurred_at="2026-11-20T11:00:00Z"
    )
    assert (await client.post(f"/webhooks/{rmm_row['id']}", json=cleared, params=params)).status_code == 202
    await _work(services)
    [ticket] = psa.tickets(company)
    assert ticket.closed
    assert any("Resolved" in note for note in ticket.notes)

    # Configurations: a sync writes the security status onto the device's record.
    run = await _sync(client, headers, services, rmm_row["id"])
    assert run["status"] == "succeeded" and not run["errors"], run
    [record] = psa.configurations(company, device_name(client_name, 1))
    assert "Acme EDR" in record

    # Billing: push twice → one line with the seat count; more seats → updated in place.
    await _post(
        client,
        headers,
        "/api/v1/billing-rules",
        {
            "psa_connection_id": psa_row["id"],
            "product": "acme edr",
            "count_scope": "installed",
            "count_method": "end_of_period",
            "unit_price": "6.00",
            "cost_tiers": [{"min_seats": 1, "unit_cost": "2.50"}],
            **psa.billing_ids.rule_fields(),
        },
    )
    period = datetime.now(UTC).strftime("%Y-%m")
    first = await _post(client, headers, "/api/v1/billing/push", {"period": period})
    # "updated": a vendor that bills through a line that already exists (a seat count adjusted).
    assert first["summary"] in ({"created": 1}, {"updated": 1}), first
    second = await _post(client, headers, "/api/v1/billing/push", {"period": period})
    assert second["summary"] == {"unchanged": 1}, second
    assert [line.quantity for line in psa.billing_lines(company)] == [4]
    fake.put(
        fake.endpoints["ep-0"].model_copy(
            update={"endpoint_id": "ep-9", "hostname": device_name(client_name, 9)}
        )
    )
    await _sync(client, headers, services, rmm_row["id"])
    third = await _post(client, headers, "/api/v1/billing/push", {"period": period})
    assert third["summary"] == {"updated": 1}, third
    assert [line.quantity for line in psa.billing_lines(company)] == [5]
