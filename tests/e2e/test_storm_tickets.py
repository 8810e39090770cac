"""Storm tickets, exclusions and the minimum age end to end, on every installed PSA kind through
its real adapter against its stateful fake: a status sync of a fleet RMM finds the problems, the job
worker reconciles them into tickets."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select, update

from adapters.base import EndpointStatus
from adapters.testing.harness import CLIENT_NAMES, PsaHarness, device_name
from connector.infra import db
from connector.infra.context import Services
from connector.models import Job, Problem, Storm
from tests.e2e.test_vendor_matrix import (
    CONFIGURATION_FIELDS,
    PSAS,
    Headers,
    _connect,
    _map_by_suggestion,
    _post,
    _sync,
    _work,
    company_of,
    fleet,
    kind_of,
    route,
)
from tests.support.fleet_rmm import FleetFake
from tests.support.vendors import VendorRouter

__all__ = ["fleet"]


def _status(n: int, *, protected: bool, os_name: str = "Windows 11") -> EndpointStatus:
    now = datetime.now(UTC)
    return EndpointStatus(
        endpoint_id=f"ep-{n}",
        client_id="c-acme",
        client_name=CLIENT_NAMES[0],
        hostname=device_name(CLIENT_NAMES[0], n),
        os_name=os_name,
        product="Acme EDR",
        protection_enabled=protected,
        definitions_date=now,
        last_scan_at=now,
        active_threats=0,
        online=True,
        last_seen_at=now,
    )


async def _settle(services: Services) -> None:
    """Run the worker until nothing is queued before an hour from now: jobs told to retry shortly
    (a storm's lock held by another worker) run again at once, as if their seconds had passed."""
    for _ in range(20):
        await _work(services)
        async with db.transaction(services.sessions) as session:
            soon = datetime.now(UTC) + timedelta(seconds=30)
            moved = await session.execute(
                update(Job)
                .where(Job.status == "queued", Job.run_after <= soon)
                .values(run_after=datetime.now(UTC))
            )
        if moved.rowcount == 0:  # type: ignore[attr-defined]
            return
    raise AssertionError("jobs kept coming back")


async def _setup(
    harness: PsaHarness,
    client: httpx.AsyncClient,
    headers: Headers,
    vendors: VendorRouter,
    fleet: tuple[str, FleetFake],
    statuses: list[EndpointStatus],
    rule: dict[str, Any],
) -> tuple[Any, dict[str, Any], str]:
    psa = harness.start(configuration_fields=CONFIGURATION_FIELDS)
    route(vendors, psa)
    host, fake = fleet
    for status in statuses:
        fake.put(status)
    psa_row = await _connect(client, headers, psa)
    await _post(
        client,
        headers,
        "/api/v1/ticket-rules",
        {
            "psa_connection_id": psa_row["id"],
            "summary_template": "{problem_title} on {hostname}",
            "update_configurations": False,
            **psa.ticket_ids.rule_fields(),
            **rule,
        },
    )
    rmm_row = await _post(
        client,
        headers,
        "/api/v1/connections",
        {"name": "Fleet", "kind": "fleet_rmm", "base_url": f"https://{host}", "credentials": {"token": "t"}},
    )
    await _map_by_suggestion(client, headers, rmm_row["id"], psa_row["id"], expected=1)
    return psa, rmm_row, company_of(psa, CLIENT_NAMES[0])


@pytest.mark.parametrize("harness", PSAS, ids=kind_of)
async def test_a_storm_of_thirty_endpoints_is_one_ticket_that_closes_when_they_recover(
    harness: PsaHarness,
    client: httpx.AsyncClient,
    services: Services,
    vendors: VendorRouter,
    make_key: Callable[..., Awaitable[Headers]],
    fleet: tuple[str, FleetFake],
) -> None:
    headers = await make_key("engineer")
    statuses = [_status(n, protected=n >= 30) for n in range(40)]
    psa, rmm_row, company = await _setup(
        harness, client, headers, vendors, fleet, statuses, {"storm_min_endpoints": 10}
    )
    _, fake = fleet

    run = await _sync(client, headers, services, rmm_row["id"])
    assert run["status"] == "succeeded", run
    await _settle(services)

    [ticket] = psa.tickets(company)
    assert not ticket.closed
    assert "30 endpoints" in ticket.summary
    listed = "\n".join((ticket.description, *ticket.notes))
    assert all(device_name(CLIENT_NAMES[0], n) in listed for n in range(30))
    async with services.sessions() as session:
        in_storm = await session.scalar(
            select(func.count())
            .select_from(Problem)
            .where(Problem.storm_id.is_not(None), Problem.state == "open")
        )
        assert in_storm == 30
        assert await session.scalar(select(func.count()).select_from(Storm)) == 1

    # Five recover: noted on the same ticket, no new one.
    for n in range(5):
        fake.put(_status(n, protected=True))
    await _sync(client, headers, services, rmm_row["id"])
    await _settle(services)
    [ticket] = psa.tickets(company)
    assert not ticket.closed
    assert any("Recovered (5)" in note for note in ticket.notes), ticket.notes

    # All recover: the storm ticket closes, and no endpoint got a ticket of its own.
    for n in range(30):
        fake.put(_status(n, protected=True))
    await _sync(client, headers, services, rmm_row["id"])
    await _settle(services)
    [ticket] = psa.tickets(company)
    assert ticket.closed
    assert any("fell back below the storm threshold" in note for note in ticket.notes)


@pytest.mark.parametrize("harness", PSAS, ids=kind_of)
async def test_exclusions_the_minimum_age_and_the_evidence(
    harness: PsaHarness,
    client: httpx.AsyncClient,
    services: Services,
    vendors: VendorRouter,
    make_key: Callable[..., Awaitable[Headers]],
    fleet: tuple[str, FleetFake],
) -> None:
    headers = await make_key("engineer")
    statuses = [
        _status(0, protected=False),
        _status(1, protected=False, os_name="Windows Server 2022"),
        _status(2, protected=False),
    ]
    excluded_host = device_name(CLIENT_NAMES[0], 2)
    rule = {
        "min_age_minutes": 30,
        "exclusions": [
            {"field": "device_type", "pattern": "*server*"},
            {"field": "endpoint", "pattern": excluded_host.lower()},
        ],
    }
    psa, rmm_row, company = await _setup(harness, client, headers, vendors, fleet, statuses, rule)

    await _sync(client, headers, services, rmm_row["id"])
    await _settle(services)
    assert psa.tickets(company) == []  # the one not excluded is younger than the minimum age
    routings = {
        p["hostname"]: p["routing"] for p in (await client.get("/api/v1/problems", headers=headers)).json()
    }
    assert routings == {
        device_name(CLIENT_NAMES[0], 0): "waiting",
        device_name(CLIENT_NAMES[0], 1): "excluded",
        excluded_host: "excluded",
    }

    # Thirty-one minutes later (the problems' first sighting and the scheduled jobs moved back).
    async with db.transaction(services.sessions) as session:
        for problem in (await session.scalars(select(Problem))).all():
            problem.first_seen_at -= timedelta(minutes=31)
        await session.execute(update(Job).where(Job.status == "queued").values(run_after=datetime.now(UTC)))
    await _settle(services)
    [ticket] = psa.tickets(company)
    assert device_name(CLIENT_NAMES[0], 0) in ticket.summary
    # The body carries the evidence: the reported status fields and the problem's dashboard page.
    body = "\n".join((ticket.description, *ticket.notes))
    assert "Real-time protection: no" in body and "Antivirus product: Acme EDR" in body, body
    [waiting] = [
        p
        for p in (await client.get("/api/v1/problems", headers=headers)).json()
        if p["routing"] != "excluded"
    ]
    assert f"/problems/{waiting['id']}" in body
