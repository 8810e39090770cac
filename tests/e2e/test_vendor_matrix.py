"""The same end-to-end flows for every RMM and every PSA, each through its real adapter against its
stateful fake: status sync → problems → tickets (RMMs), and tickets, configuration records and
billing lines (PSAs)."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from connector.infra.context import Services
from connector.models import UsageDaily
from tests.api.world import canonical_alert
from tests.e2e.vendors import CLIENT_NAMES, PSAS, RMMS, PsaDriver, RmmDriver, manage
from tests.support.fleet_rmm import FLEETS, FleetFake
from tests.support.vendors import VendorRouter

Headers = dict[str, str]


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


async def _connect_psa(client: httpx.AsyncClient, headers: Headers, psa: PsaDriver) -> dict[str, Any]:
    created = await _post(client, headers, "/api/v1/connections", psa.connection)
    test = await client.post(f"/api/v1/connections/{created['id']}/test", headers=headers)
    assert test.json()["ok"] is True, test.text
    await _post(
        client,
        headers,
        "/api/v1/ticket-rules",
        {"psa_connection_id": created["id"], "summary_template": "{problem_title} on {hostname}", **psa.rule},
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


@pytest.mark.parametrize("rmm_kind", sorted(RMMS))
async def test_rmm_sync_problems_tickets_and_usage(
    rmm_kind: str,
    client: httpx.AsyncClient,
    services: Services,
    vendors: VendorRouter,
    make_key: Callable[..., Awaitable[Headers]],
) -> None:
    headers = await make_key("engineer")
    rmm: RmmDriver = RMMS[rmm_kind](vendors)
    psa = manage(vendors)
    psa_row = await _connect_psa(client, headers, psa)
    rmm_row = await _post(client, headers, "/api/v1/connections", rmm.connection)
    assert (await client.post(f"/api/v1/connections/{rmm_row['id']}/test", headers=headers)).json()[
        "ok"
    ] is True
    await _map_by_suggestion(client, headers, rmm_row["id"], psa_row["id"], expected=len(CLIENT_NAMES))

    first = await _sync(client, headers, services, rmm_row["id"])
    assert first["status"] == "succeeded", first
    assert first["endpoints_seen"] == rmm.endpoints
    endpoints = (await client.get("/api/v1/endpoints", params={"limit": "500"}, headers=headers)).json()
    assert len(endpoints) == rmm.endpoints

    endpoint_id, problem = rmm.trouble()
    second = await _sync(client, headers, services, rmm_row["id"])
    assert second["status"] == "succeeded", second
    problems = (await client.get("/api/v1/problems", params={"state": "open"}, headers=headers)).json()
    mine = [p for p in problems if p["endpoint_id"] == endpoint_id and p["kind"] == problem]
    assert mine and mine[0]["routing"] == "ticketed", f"{problems} {second} {endpoints[:1]}"
    [ticket] = psa.tickets(psa.company_ids[0])
    assert not ticket["closed"]

    async with services.sessions() as session:
        usage = await session.scalar(
            select(func.sum(UsageDaily.last_installed)).where(UsageDaily.rmm_connection_id == rmm_row["id"])
        )
    if rmm.reports_products:
        assert usage == rmm.endpoints
    else:  # antivirus state arrives only as failing checks: no product, nothing to bill from status
        assert usage is None


@pytest.fixture
def fleet() -> Any:
    fake = FleetFake(page_size=50)
    fake.seed(1, 0)
    host = f"fleet-{uuid.uuid4().hex[:8]}.example.com"
    FLEETS[host] = fake
    yield host, fake
    FLEETS.pop(host, None)


@pytest.mark.parametrize("psa_kind", sorted(PSAS))
async def test_psa_tickets_configurations_and_billing(
    psa_kind: str,
    client: httpx.AsyncClient,
    services: Services,
    vendors: VendorRouter,
    make_key: Callable[..., Awaitable[Headers]],
    fleet: tuple[str, FleetFake],
) -> None:
    headers = await make_key("engineer")
    psa: PsaDriver = PSAS[psa_kind](vendors)
    host, fake = fleet
    fake.endpoints.clear()
    fake.modified.clear()
    from adapters.base import EndpointStatus

    for n in range(4):
        fake.put(
            EndpointStatus(
                endpoint_id=f"ep-{n}",
                client_id="c-acme",
                client_name=CLIENT_NAMES[0],
                hostname=f"{CLIENT_NAMES[0][:4].upper()}-{n:02d}",
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
    company = psa.company_ids[0]

    # Tickets: alert → one ticket; repeat → still one; clear → closed with a resolution.
    params = {"token": rmm_row["webhook_secret"]}
    alert = canonical_alert("evt-1", client_id="c-acme", endpoint_id="ep-1")
    assert (await client.post(f"/webhooks/{rmm_row['id']}", json=alert, params=params)).status_code == 202
    await _work(services)
    [ticket] = psa.tickets(company)
    assert not ticket["closed"] and "Threat detected" in ticket["summary"]
    cleared = canonical_alert(
        "evt-2", client_id="c-acme", endpoint_id="ep-1", state="cleared", occurred_at="2026-11-20T11:00:00Z"
    )
    assert (await client.post(f"/webhooks/{rmm_row['id']}", json=cleared, params=params)).status_code == 202
    await _work(services)
    [ticket] = psa.tickets(company)
    assert ticket["closed"]
    assert any("Resolved" in note for note in ticket["notes"])

    # Configurations: a sync writes the security status onto the device's record.
    run = await _sync(client, headers, services, rmm_row["id"])
    assert run["status"] == "succeeded" and not run["errors"], run
    assert "Acme EDR" in psa.configuration_text(company, f"{CLIENT_NAMES[0][:4].upper()}-01")

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
            **psa.billing,
        },
    )
    period = datetime.now(UTC).strftime("%Y-%m")
    first = await _post(client, headers, "/api/v1/billing/push", {"period": period})
    # Autotask bills through a contract service that already exists: its seat count is adjusted.
    assert first["summary"] == ({"updated": 1} if psa_kind == "autotask" else {"created": 1}), first
    second = await _post(client, headers, "/api/v1/billing/push", {"period": period})
    assert second["summary"] == {"unchanged": 1}, second
    assert psa.billed_quantity(company) == 4
    assert psa.billing_lines(company) == 1
    fake.put(fake.endpoints["ep-0"].model_copy(update={"endpoint_id": "ep-9", "hostname": "ACME-09"}))
    await _sync(client, headers, services, rmm_row["id"])
    third = await _post(client, headers, "/api/v1/billing/push", {"period": period})
    assert third["summary"] == {"updated": 1}, third
    assert psa.billed_quantity(company) == 5
    assert psa.billing_lines(company) == 1
