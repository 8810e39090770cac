"""The sync page over plain HTTP: the connections a sync reads and the recent runs with their state,
Run sync for engineers only (through the API's service, recorded as started by the dashboard), a
running sync refused with a notice, and the page refreshing itself while a run is going. Also the
other steps a first hour needs from the dashboard: the billing rule form offers the products the
endpoints report, and the client page links its security report."""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from connector.fleet import service as fleet_service
from connector.infra import db
from connector.infra.context import Services
from connector.models import Connection, Endpoint
from connector.tenants.service import get_or_create_tenant
from connector.web.syncs import notice
from tests.browser.test_dashboard_http import csrf_of, plaintext, sign_in
from tests.e2e.stack import Stack, build_stack
from tests.support.fleet_rmm import FLEETS, FleetFake
from tests.support.vendors import VendorRouter

KeyMaker = Callable[..., Awaitable[dict[str, str]]]
PAGE = "/activity/syncs"


@dataclass
class World:
    stack: Stack
    engineer: dict[str, str]


@pytest.fixture
async def world(
    client: httpx.AsyncClient, services: Services, vendors: VendorRouter, make_key: KeyMaker
) -> AsyncIterator[World]:
    fleet = FleetFake(page_size=40)
    fleet.seed(2, 5)
    host = f"fleet-{uuid.uuid4().hex[:8]}.example.com"
    FLEETS[host] = fleet
    engineer = await make_key("engineer")
    stack = await build_stack(
        client,
        services,
        vendors,
        engineer,
        rmm_kind="fleet_rmm",
        rmm_credentials={"token": "t"},
        rmm_base_url=f"https://{host}",
        map_clients=(),
    )
    try:
        yield World(stack, engineer)
    finally:
        FLEETS.pop(host, None)


async def _runs(world: World) -> list[dict[str, Any]]:
    response = await world.stack.client.get("/api/v1/sync-runs", headers=world.engineer)
    assert response.status_code == 200, response.text
    runs: list[dict[str, Any]] = response.json()
    return runs


async def test_run_sync_from_the_page_and_watch_it_finish(world: World, client: httpx.AsyncClient) -> None:
    rmm = world.stack.rmm
    assert (await sign_in(client, plaintext(world.engineer))).status_code == 303
    page = await client.get(PAGE)
    assert page.status_code == 200
    row = re.search(rf'<tr data-connection-id="{rmm["id"]}" data-status="never">.*?</tr>', page.text, re.S)
    assert row is not None, page.text
    assert f'aria-label="Run sync of {rmm["name"]}"' in row.group(0)
    assert 'id="no-runs"' in page.text and 'http-equiv="refresh"' not in page.text
    assert "/activity/syncs" in (await client.get("/activity")).text  # linked from Syncs & deliveries

    token = csrf_of(page.text)
    started = await client.post(PAGE, data={"csrf_token": token, "connection_id": rmm["id"]})
    assert started.status_code == 303
    assert started.headers["location"] == f"{PAGE}?done=started&connection={rmm['id']}"
    [run] = await _runs(world)
    assert run["connection_id"] == rmm["id"] and run["trigger"] == "dashboard" and run["status"] == "running"

    running = await client.get(started.headers["location"])
    assert f"Sync of {rmm['name']} started" in running.text
    assert '<meta http-equiv="refresh" content="5">' in running.text
    assert f'data-run-id="{run["id"]}"' in running.text and 'data-trigger="dashboard"' in running.text

    again = await client.post(PAGE, data={"csrf_token": token, "connection_id": rmm["id"]})
    assert again.headers["location"] == f"{PAGE}?done=running&connection={rmm['id']}"
    assert f"A sync of {rmm['name']} is already running" in (await client.get(again.headers["location"])).text
    assert len(await _runs(world)) == 1

    await world.stack.work()
    done = await client.get(PAGE)
    assert 'http-equiv="refresh"' not in done.text
    finished = re.search(
        rf'<tr data-run-id="{run["id"]}"[^>]*data-status="succeeded"[^>]*>.*?</tr>', done.text, re.S
    )
    assert finished is not None, done.text
    assert '<td class="num" data-label="Seen">10</td>' in finished.group(0)
    [after] = await _runs(world)
    assert after["status"] == "succeeded" and after["endpoints_seen"] == 10


async def test_sync_every_connection_and_bad_requests(world: World, client: httpx.AsyncClient) -> None:
    assert (await sign_in(client, plaintext(world.engineer))).status_code == 303
    token = csrf_of((await client.get(PAGE)).text)
    every = await client.post(PAGE, data={"csrf_token": token})
    assert every.headers["location"] == f"{PAGE}?done=started_all&count=1"
    assert "1 sync(s) started" in (await client.get(every.headers["location"])).text
    none_left = await client.post(PAGE, data={"csrf_token": token})
    assert none_left.headers["location"] == f"{PAGE}?done=started_all&count=0"
    assert "already syncing" in (await client.get(none_left.headers["location"])).text

    psa = await client.post(PAGE, data={"csrf_token": token, "connection_id": world.stack.psa["id"]})
    assert psa.status_code == 422 and "connection_id: is a PSA connection" in psa.text
    unknown = await client.post(PAGE, data={"csrf_token": token, "connection_id": "nope"})
    assert unknown.status_code == 404 and "connection_id" in unknown.text
    forged = await client.post(PAGE, data={"csrf_token": "forged", "connection_id": world.stack.rmm["id"]})
    assert forged.status_code == 403
    assert len(await _runs(world)) == 1


async def test_viewers_see_the_runs_without_a_button(
    world: World, client: httpx.AsyncClient, make_key: KeyMaker
) -> None:
    signed_out = await client.get(PAGE)
    assert signed_out.status_code == 303 and signed_out.headers["location"].startswith("/login")
    viewer = await make_key("viewer")
    assert (await sign_in(client, plaintext(viewer))).status_code == 303
    page = await client.get(PAGE)
    assert page.status_code == 200 and world.stack.rmm["name"] in page.text
    assert "Run sync" not in page.text.replace("start one now with Run sync", "")
    assert '<form method="post" action="/activity/syncs"' not in page.text
    refused = await client.post(
        PAGE, data={"csrf_token": csrf_of(page.text), "connection_id": world.stack.rmm["id"]}
    )
    assert refused.status_code == 403
    assert await _runs(world) == []


def test_the_notice_names_only_a_known_connection() -> None:
    assert (
        notice("started", "Datto RMM", None)
        == "Sync of Datto RMM started; this page refreshes until it has finished."
    )
    assert notice("started", None, None) is not None and "the connection" in str(
        notice("started", None, None)
    )
    assert (
        notice("started_all", None, "x" * 9)
        == "Every connection is already syncing; nothing new was started."
    )
    assert notice("running", "N-central", None) == "A sync of N-central is already running; it shows below."
    assert notice("other", "x", None) is None


async def test_an_unknown_connection_in_the_query_is_not_echoed(
    world: World, client: httpx.AsyncClient
) -> None:
    assert (await sign_in(client, plaintext(world.engineer))).status_code == 303
    page = await client.get(PAGE, params={"done": "started", "connection": "Pay this invoice"})
    assert "Pay this invoice" not in page.text and "Sync of the connection started" in page.text


async def test_billing_rule_form_offers_the_reported_products(
    world: World, client: httpx.AsyncClient
) -> None:
    await world.stack.client.post(
        "/api/v1/sync-runs", json={"connection_id": world.stack.rmm["id"]}, headers=world.engineer
    )
    await world.stack.work()
    assert (await sign_in(client, plaintext(world.engineer))).status_code == 303
    page = await client.get("/setup/rules")
    datalist = re.search(r'<datalist id="b-product-list">(.*?)</datalist>', page.text, re.S)
    assert datalist is not None, page.text
    assert re.findall(r'<option value="([^"]+)">', datalist.group(1)) == ["Acme EDR"]
    assert 'list="b-product-list"' in page.text


async def test_reported_products_are_the_tenants_current_ones(services: Services) -> None:
    async with db.transaction(services.sessions) as session:
        mine = await get_or_create_tenant(session, "mine")
        other = await get_or_create_tenant(session, "other")
    async with db.transaction(services.sessions) as session:
        rows = {}
        for tenant in (mine, other):
            rows[tenant.id] = Connection(
                tenant_id=tenant.id,
                name="RMM",
                kind="dummy",
                role="rmm",
                base_url="https://rmm.test",
                credentials_encrypted=b"x",
            )
            session.add(rows[tenant.id])
        await session.flush()
        now = datetime.now(UTC)
        for n, (tenant, product, retired) in enumerate(
            [
                (mine, "Zeta AV", None),
                (mine, "Acme EDR", None),
                (mine, "Acme EDR", None),
                (mine, None, None),
                (mine, "Old AV", now),
                (other, "Their AV", None),
            ]
        ):
            session.add(
                Endpoint(
                    tenant_id=tenant.id,
                    rmm_connection_id=rows[tenant.id].id,
                    endpoint_id=f"ep-{n}",
                    client_id="c",
                    hostname=f"H-{n}",
                    product=product,
                    retired_at=retired,
                )
            )
    async with services.sessions() as session:
        assert await fleet_service.reported_products(session, mine.id) == ["Acme EDR", "Zeta AV"]
        assert await fleet_service.reported_products(session, other.id) == ["Their AV"]


async def test_the_client_page_links_its_security_report(world: World, client: httpx.AsyncClient) -> None:
    company_id = world.stack.seed.company_ids[0]
    await world.stack.map_client("c-0", company_id)
    await world.stack.client.post(
        "/api/v1/sync-runs", json={"connection_id": world.stack.rmm["id"]}, headers=world.engineer
    )
    await world.stack.work()
    assert (await sign_in(client, plaintext(world.engineer))).status_code == 303
    page = await client.get(f"/clients/{world.stack.rmm['id']}/c-0")
    period = datetime.now(UTC).strftime("%Y-%m")
    pdf_link = f'href="/reports/clients/{company_id}?period={period}&amp;format=pdf" download'
    assert 'id="client-report"' in page.text and pdf_link in page.text
    pdf = await client.get(f"/reports/clients/{company_id}", params={"period": period, "format": "pdf"})
    assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF-")
    unmapped = await client.get(f"/clients/{world.stack.rmm['id']}/c-1")
    assert unmapped.status_code == 200 and 'id="client-report"' not in unmapped.text
