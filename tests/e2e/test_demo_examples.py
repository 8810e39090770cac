"""`connector demo` seeds a maintenance window and an alert storm, so the pages that show them have
something to show: the storm is one client ticket in the PSA for its endpoints, not one each."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import httpx
from sqlalchemy import func, select

from connector import demo, runtime
from connector.infra.context import Services
from connector.models import MaintenanceWindow, Problem, Storm
from tests.support.vendors import VendorRouter, route_demo


async def test_demo_seeds_a_maintenance_window_and_a_storm_with_one_ticket(
    client: httpx.AsyncClient,
    services: Services,
    vendors: VendorRouter,
    make_key: Callable[..., Awaitable[dict[str, str]]],
) -> None:
    headers = await make_key("admin")
    router = demo.Router()
    route_demo(vendors, router, services.registry.all())
    world = await demo.seed(client, headers, router, services.registry, per_client=8)
    await runtime.worker(services, concurrency=4).run_until_idle()

    examples = await demo.seed_examples(client, headers, world)
    await runtime.worker(services, concurrency=4).run_until_idle()

    assert examples.window_client and examples.storm_client
    async with services.sessions() as session:
        [window] = (await session.scalars(select(MaintenanceWindow))).all()
        assert window.name == "Patch night (demo)"
        [storm] = (await session.scalars(select(Storm))).all()
        members = await session.scalar(
            select(func.count()).select_from(Problem).where(Problem.storm_id == storm.id)
        )
    assert members is not None and members >= demo.STORM_ENDPOINTS
    storm_tickets = [
        ticket
        for psa in world.psas
        for company, name in psa.companies.items()
        if name == examples.storm_client
        for ticket in psa.tickets(company)
        if f"{members} endpoints" in ticket.summary
    ]
    assert len(storm_tickets) == 1, [
        t.summary for psa in world.psas for c in psa.companies for t in psa.tickets(c)
    ]

    text = demo.summary(
        world, demo.DemoBilling(period="2026-12"), examples, host="127.0.0.1", port=8000, key="k"
    )
    assert f"Alert storm: {examples.storm_client}" in text
    assert f"Maintenance window: {examples.window_client}" in text
