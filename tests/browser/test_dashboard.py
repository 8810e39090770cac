"""The dashboard in headless Chromium (Debian's /usr/bin/chromium driven by Playwright) against a real
uvicorn server on a free port. The tenant is seeded through the JSON API over HTTP: an in-memory RMM
fleet (`fleet_rmm`) synced into the ConnectWise Manage fake, a billing rule, an unmapped client, and
a webhook delivery dead-lettered while the PSA refused tickets. SQLite only.

Screenshots go to each test's tmp_path, or to `CONNECTOR_SCREENSHOTS_DIR` (tests/browser/screens.py);
their paths are printed (`pytest -s` shows them)."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import socket
import threading
import time
import uuid
from collections.abc import Coroutine, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
import uvicorn
from cryptography.fernet import Fernet
from sqlalchemy import select, update

from adapters.base import ActionKind
from connector.app import create_app
from connector.infra import db
from connector.infra.context import Services
from connector.infra.security.apikeys import ApiRole
from connector.models import HealthDaily, Problem
from connector.runtime import build_services
from connector.settings import Settings
from connector.tenants.service import create_api_key, get_or_create_tenant
from tests.api.world import canonical_alert
from tests.browser import screens
from tests.conftest import no_wait, test_registry
from tests.e2e.stack import Stack, build_stack
from tests.support.fleet_rmm import FLEETS, FleetFake
from tests.support.vendors import VendorRouter

try:
    from playwright.sync_api import Browser, Page, Playwright, expect, sync_playwright
except ImportError:  # pragma: no cover - depends on the environment
    pytest.skip(
        "playwright is not installed (pip install -e '.[test]'); browser tests skipped",
        allow_module_level=True,
    )

CHROMIUM = Path("/usr/bin/chromium")
if not CHROMIUM.exists():  # pragma: no cover - depends on the environment
    pytest.skip(
        f"{CHROMIUM} not found (apt-get install -y chromium); browser tests skipped",
        allow_module_level=True,
    )

LAUNCH_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
CLIENT_NAMES = {"c-0": "Acme Dental", "c-1": "Blue Harbor Logistics", "c-2": "Cedar Law Group LLC"}
"""c-2 is left unmapped; its name is close to the Manage fake's "Cedar Law Group"."""
PER_CLIENT = 12
T = TypeVar("T")


class LiveServer:
    """uvicorn on its own thread and event loop. Seeding coroutines run on that same loop
    (`run`), so the database engine and the fakes are only ever used from one loop."""

    def __init__(self, app: Any) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.loop = asyncio.new_event_loop()
        config = uvicorn.Config(app, log_level="warning", lifespan="on", access_log=False)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self._serve, name="dashboard-uvicorn", daemon=True)

    def _serve(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_until_complete(self.server.serve(sockets=[self.sock]))

    def start(self) -> None:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.05)

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 120) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(15)
        self.loop.close()
        self.sock.close()


@dataclass
class World:
    server: LiveServer
    stack: Stack
    fleet: FleetFake
    engineer_key: str
    viewer_key: str
    dead_delivery_id: str
    unmapped_problem_id: str

    @property
    def api(self) -> httpx.Client:
        return httpx.Client(base_url=self.server.url, headers=self.stack.headers, timeout=30)

    def get(self, path: str, **params: str) -> Any:
        with self.api as client:
            response = client.get(path, params=params)
        assert response.status_code == 200, response.text
        return response.json()


async def _seed(server: LiveServer, services: Services, vendors: VendorRouter) -> World:
    async with db.transaction(services.sessions) as session:
        tenant = await get_or_create_tenant(session)
        _, engineer = await create_api_key(session, tenant, ApiRole.ENGINEER, "browser engineer")
        _, viewer = await create_api_key(session, tenant, ApiRole.VIEWER, "browser viewer")
    fleet = FleetFake(page_size=20)
    fleet.seed(len(CLIENT_NAMES), PER_CLIENT)
    for endpoint_id in list(fleet.endpoints):
        client_id = fleet.endpoints[endpoint_id].client_id
        fleet.change(endpoint_id, client_name=CLIENT_NAMES[client_id])
    fleet.change("ep-0-1", protection_enabled=False)
    fleet.change("ep-0-2", active_threats=2)
    fleet.change("ep-1-3", last_seen_at=datetime.now(UTC) - timedelta(days=30), online=False)
    fleet.change("ep-1-4", definitions_date=datetime.now(UTC) - timedelta(days=20))
    fleet.change("ep-2-5", protection_enabled=False)
    fleet.change("ep-1-6", product=None)
    host = f"fleet-{uuid.uuid4().hex[:8]}.example.com"
    FLEETS[host] = fleet

    client = httpx.AsyncClient(base_url=server.url, timeout=30)  # real HTTP to the uvicorn server
    stack = await build_stack(
        client,
        services,
        vendors,
        {"Authorization": f"Bearer {engineer}"},
        rmm_kind="fleet_rmm",
        rmm_credentials={"token": "t"},
        rmm_base_url=f"https://{host}",
        map_clients=(),
    )
    for index, client_id in enumerate(("c-0", "c-1")):
        company_id = stack.seed.company_ids[index]
        mapped = await client.post(
            "/api/v1/client-mappings",
            json={
                "rmm_connection_id": stack.rmm["id"],
                "rmm_client_id": client_id,
                "rmm_client_name": CLIENT_NAMES[client_id],
                "psa_connection_id": stack.psa["id"],
                "psa_company_id": str(company_id),
                "psa_company_name": stack.manage.companies.rows[company_id]["name"],
            },
            headers=stack.headers,
        )
        assert mapped.status_code == 201, mapped.text
    rule = await client.post(
        "/api/v1/billing-rules",
        json={
            "psa_connection_id": stack.psa["id"],
            "product": "acme edr",
            "count_scope": "installed",
            "count_method": "peak",
            "agreement_type": "Managed Services",
            "psa_product_id": "EDR-SEAT",
            "unit_price": "4.50",
            "cost_tiers": [{"min_seats": 1, "unit_cost": "2.10"}],
        },
        headers=stack.headers,
    )
    assert rule.status_code == 201, rule.text
    synced = await client.post(
        "/api/v1/sync-runs", json={"connection_id": stack.rmm["id"]}, headers=stack.headers
    )
    assert synced.status_code == 202, synced.text
    await stack.work()

    # A month of history behind the trend (each sync records only its own day).
    async with db.transaction(services.sessions) as session:
        today = datetime.now(UTC).date()
        for client_id in CLIENT_NAMES:
            for back in range(1, 30):
                at_risk = (back * 7 + len(client_id)) % 4
                session.add(
                    HealthDaily(
                        tenant_id=tenant.id,
                        rmm_connection_id=stack.rmm["id"],
                        client_id=client_id,
                        day=(today - timedelta(days=back)).isoformat(),
                        protected=PER_CLIENT - at_risk,
                        at_risk=at_risk,
                    )
                )
        # Problems that have been open for a while, so the age column says something.
        await session.execute(
            update(Problem).values(first_seen_at=datetime.now(UTC) - timedelta(hours=30, minutes=12))
        )

    unmapped = await stack.post_alert(canonical_alert("evt-unmapped", client_id="c-2", endpoint_id="ep-2-7"))
    assert unmapped.status_code == 202, unmapped.text
    await stack.work()
    async with services.sessions() as session:
        unmapped_problem = await session.scalar(
            select(Problem.id).where(Problem.routing == "unmapped", Problem.endpoint_id == "ep-2-7")
        )
    assert unmapped_problem is not None

    # Dead-lettered: the PSA refuses every ticket until the delivery runs out of retries.
    stack.manage.fail_path("/service/tickets", 400, method="POST")
    dead = await stack.post_alert(canonical_alert("evt-dead", client_id="c-0", endpoint_id="ep-0-9"))
    for _ in range(10):
        await stack.work()
        await stack.pass_time(3600)
    stack.manage.clear_faults()
    listed = await client.get("/api/v1/deliveries", params={"status": "dead"}, headers=stack.headers)
    assert [d["id"] for d in listed.json()] == [dead.json()["delivery_id"]]
    return World(server, stack, fleet, engineer, viewer, dead.json()["delivery_id"], unmapped_problem)


@pytest.fixture(scope="module")
def world(sqlite_template: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    data = tmp_path_factory.mktemp("dashboard")
    shutil.copy(sqlite_template, data / "connector.db")
    settings = Settings(
        database_url=f"sqlite+aiosqlite:///{data / 'connector.db'}",
        data_dir=data,
        secret_key=Fernet.generate_key().decode(),
        allow_insecure_loopback=True,
        public_url="https://connector.example.test",
        run_worker=False,
        run_scheduler=False,
    )
    vendors = VendorRouter()
    services = build_services(settings, registry=test_registry(), transport_factory=vendors.factory)
    services.adapter_sleep = no_wait
    server = LiveServer(create_app(services=services, migrate=False))
    server.start()
    try:
        built = server.run(_seed(server, services, vendors))
        yield built
        server.run(built.stack.client.aclose())
    finally:
        server.run(services.aclose())  # on the loop that owns its engine and delivery writer
        server.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        yield _launch(playwright)


def _launch(playwright: Playwright) -> Browser:
    return playwright.chromium.launch(executable_path=str(CHROMIUM), args=LAUNCH_ARGS)


@pytest.fixture
def page(browser: Browser, world: World) -> Iterator[Page]:
    context = browser.new_context(base_url=world.server.url, viewport={"width": 1280, "height": 900})
    opened = context.new_page()
    yield opened
    context.close()


def sign_in(page: Page, key: str, path: str = "/") -> None:
    page.goto(path)
    expect(page).to_have_url(re.compile(r"/login\?next="))
    page.get_by_label("API key").fill(key)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("navigation", name="Main")).to_be_visible()


def shot(page: Page, folder: Path, name: str) -> Path:
    """Into the test's tmp dir, or `CONNECTOR_SCREENSHOTS_DIR` as `dashboard-<name>.png`."""
    return screens.save(page, folder, name, prefix="dashboard-" if os.environ.get(screens.ENV) else "")


def test_sign_in_and_overview_numbers_match_the_api(page: Page, world: World, tmp_path: Path) -> None:
    page.goto("/")
    expect(page).to_have_url(re.compile(r"/login\?next=/$"))
    # Keyboard only: skip link first, then the key field; Enter submits.
    page.keyboard.press("Tab")
    expect(page.get_by_role("link", name="Skip to main content")).to_be_focused()
    page.get_by_label("API key").fill("ck_000000000000_wrong")
    page.keyboard.press("Enter")
    expect(page.get_by_role("alert")).to_contain_text("not valid")
    page.get_by_label("API key").fill(world.engineer_key)
    page.get_by_label("API key").press("Enter")
    expect(page).to_have_url(world.server.url + "/")
    assert world.engineer_key not in page.content()

    summary = world.get("/api/v1/fleet/summary")
    for health, count in summary["overall"].items():
        expect(page.locator(f"#count-{health}")).to_have_text(str(count))
    assert summary["overall"]["total"] == len(CLIENT_NAMES) * PER_CLIENT
    assert summary["overall"]["protected"] < summary["overall"]["total"]
    for client in summary["clients"]:
        row = page.locator(f'#clients-table tr[data-client-id="{client["client_id"]}"]')
        for health in ("protected", "at_risk", "unprotected", "offline"):
            expect(row.locator(f'td[data-health="{health}"]')).to_have_text(str(client[health]))
    unmapped = page.locator("#unmapped-clients")
    expect(unmapped).to_contain_text("Cedar Law Group LLC")
    expect(unmapped).not_to_contain_text("Acme Dental")

    chart = page.locator("svg.trend")
    expect(chart).to_be_visible()
    assert chart.locator("circle.dot").count() == len(summary["trend"]) == 30
    latest = summary["trend"][-1]
    expect(page.locator("figure.chart", has=chart).locator("figcaption")).to_contain_text(
        f"{round(100 * latest['protected'] / latest['total'])}%"
    )
    expect(page.locator("svg.tickets")).to_be_visible()
    expect(page.locator("#severity-counts li")).to_have_count(4)
    shot(page, tmp_path, "overview")

    page.set_viewport_size({"width": 390, "height": 844})
    page.reload()
    overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 1, f"page scrolls sideways by {overflow}px at phone width"
    expect(page.get_by_role("link", name="Problems", exact=True)).to_be_visible()
    shot(page, tmp_path, "overview-phone")


def test_open_a_problem_from_the_list(page: Page, world: World, tmp_path: Path) -> None:
    sign_in(page, world.viewer_key)
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Problems", exact=True).click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Open problems")
    problems = world.get("/api/v1/problems", state="open")
    unmapped = sum(1 for p in problems if p["routing"] == "unmapped")
    assert unmapped == 2  # the alert and the disabled protection of the unmapped client
    expect(page.locator("#unmapped-problems")).to_contain_text(f"{unmapped} open problems")
    rows = page.locator("#problems-table tbody tr")
    expect(rows).to_have_count(len(problems))
    ticketed = next(p for p in problems if p["ticket_url"])
    row = page.locator(f'#problems-table tr[data-problem-id="{ticketed["id"]}"]')
    expect(row).to_contain_text("1 d 6 h")  # first seen 30 h ago
    ticket_link = row.get_by_role("link", name=re.compile(f"#{ticketed['ticket_number']}"))
    expect(ticket_link).to_have_attribute("href", ticketed["ticket_url"])
    unmapped_row = page.locator(f'#problems-table tr[data-problem-id="{world.unmapped_problem_id}"]')
    expect(unmapped_row).to_contain_text("Unmapped")
    expect(unmapped_row).to_contain_text("Cedar Law Group LLC")
    shot(page, tmp_path, "problems")

    row.get_by_role("link").first.click()
    expect(page).to_have_url(f"{world.server.url}/problems/{ticketed['id']}")
    expect(page.get_by_role("heading", level=1)).to_contain_text(ticketed["hostname"])
    expect(page.locator("#problem-ticket a")).to_have_attribute("href", ticketed["ticket_url"])
    expect(page.locator("#problem-state")).to_have_text("open")
    shot(page, tmp_path, "problem")

    page.goto(f"/problems/{world.unmapped_problem_id}")
    expect(page.locator("#problem-unmapped")).to_contain_text("has no PSA company")


def test_billing_preview_matches_the_api(page: Page, world: World, tmp_path: Path) -> None:
    sign_in(page, world.viewer_key, "/billing")
    period = datetime.now(UTC).strftime("%Y-%m")
    preview = world.get("/api/v1/billing/preview", period=period)
    assert preview["lines"], preview
    expect(page.get_by_role("heading", level=1)).to_have_text(f"Billing preview {period}")
    expect(page.locator("#billing-lines tbody tr")).to_have_count(len(preview["lines"]))
    expect(page.locator("#billing-total")).to_have_text(f"${float(preview['total']):,.2f}")
    for line in preview["lines"]:
        row = page.locator("#billing-lines tbody tr", has_text=line["company_name"])
        expect(row).to_contain_text(str(line["quantity"]))
        expect(row).to_contain_text(line["margin"])
    shot(page, tmp_path, "billing")


def test_viewer_sees_no_engineer_actions(page: Page, world: World) -> None:
    sign_in(page, world.viewer_key, "/activity")
    expect(page.locator(f'#deliveries tr[data-delivery-id="{world.dead_delivery_id}"]')).to_be_visible()
    expect(page.get_by_role("button", name=re.compile("^Replay"))).to_have_count(0)
    page.goto("/mappings")
    expect(page.locator("#suggestions")).to_be_visible()
    expect(page.get_by_role("button", name=re.compile("^Accept"))).to_have_count(0)


def test_accept_a_mapping_suggestion(page: Page, world: World, tmp_path: Path) -> None:
    sign_in(page, world.engineer_key, "/mappings")
    suggestion = page.locator('#suggestions tr[data-client-id="c-2"]')
    expect(suggestion).to_contain_text("Cedar Law Group LLC")
    expect(suggestion).to_contain_text("Cedar Law Group")
    shot(page, tmp_path, "mappings")

    accept = suggestion.get_by_role("button", name="Accept: map Cedar Law Group LLC to Cedar Law Group")
    accept.focus()
    page.keyboard.press("Enter")
    expect(page.get_by_role("status")).to_contain_text("Mapping saved")
    expect(page.locator('#mappings tr[data-client-id="c-2"]')).to_contain_text("Cedar Law Group")
    expect(page.locator("#suggestions tr[data-client-id='c-2']")).to_have_count(0)

    mappings = world.get("/api/v1/client-mappings")
    [created] = [m for m in mappings if m["rmm_client_id"] == "c-2"]
    assert created["psa_company_name"] == "Cedar Law Group"
    assert created["psa_company_id"] == str(world.stack.seed.company_ids[2])


def test_replay_a_dead_delivery(page: Page, world: World, tmp_path: Path) -> None:
    tickets_before = len(world.stack.tickets())
    sign_in(page, world.engineer_key, "/activity")
    row = page.locator(f'#deliveries tr[data-delivery-id="{world.dead_delivery_id}"]')
    expect(row).to_contain_text("dead")
    expect(page.locator("#last-runs")).to_contain_text("succeeded")
    shot(page, tmp_path, "activity")

    row.get_by_role("button", name=re.compile("^Replay")).click()
    expect(page.get_by_role("status")).to_contain_text("queued for processing again")
    assert world.get(f"/api/v1/deliveries/{world.dead_delivery_id}")["status"] == "queued"

    world.server.run(world.stack.work())
    assert world.get(f"/api/v1/deliveries/{world.dead_delivery_id}")["status"] == "processed"
    assert len(world.stack.tickets()) == tickets_before + 1
    page.reload()
    expect(page.locator(f'#deliveries tr[data-delivery-id="{world.dead_delivery_id}"]')).to_have_count(0)


def test_approve_a_billing_line_in_the_review(page: Page, world: World, tmp_path: Path) -> None:
    period = datetime.now(UTC).strftime("%Y-%m")
    with world.api as client:
        settings = client.put("/api/v1/billing/review-settings", json={"review_new_lines": True})
        assert settings.status_code == 200, settings.text
    try:
        proposals = world.get("/api/v1/billing/proposals", period=period)["proposals"]
        waiting = [p for p in proposals if p["status"] == "awaiting_review"]
        assert waiting, proposals
        first = waiting[0]
        sign_in(page, world.engineer_key, f"/billing/review?period={period}")
        expect(page.get_by_role("heading", level=1)).to_have_text(f"Billing review {period}")
        expect(page.locator("#review-waiting")).to_contain_text(f"{len(waiting)} line(s) wait")
        row = page.locator(f'#proposals tr[data-company-id="{first["company_id"]}"]')
        expect(row).to_have_attribute("data-status", "awaiting_review")
        shot(page, tmp_path, "review")

        name = first["company_name"] or first["company_id"]
        row.get_by_role(
            "button", name=f"Approve {name}, {first['product']}: {first['proposed_quantity']}"
        ).click()
        expect(page.get_by_role("status")).to_contain_text("Decision recorded.")
        row = page.locator(f'#proposals tr[data-company-id="{first["company_id"]}"]')
        expect(row).to_have_attribute("data-status", "approved")
        expect(row.locator("td.decision")).to_contain_text("browser engineer")
        [after] = [
            p
            for p in world.get("/api/v1/billing/proposals", period=period)["proposals"]
            if p["company_id"] == first["company_id"]
        ]
        assert after["status"] == "approved" and after["write_quantity"] == first["proposed_quantity"]
        shot(page, tmp_path, "review-approved")

        page.set_viewport_size({"width": 390, "height": 844})
        page.reload()
        overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 1, f"page scrolls sideways by {overflow}px at phone width"
        expect(page.get_by_label("Reason (optional)")).to_be_visible()
        shot(page, tmp_path, "review-phone")
    finally:
        with world.api as client:
            assert client.put("/api/v1/billing/review-settings", json={}).status_code == 200


def test_drill_into_a_client_and_an_endpoint_and_run_a_scan(page: Page, world: World, tmp_path: Path) -> None:
    sign_in(page, world.engineer_key)
    page.locator('#clients-table tr[data-client-id="c-0"]').get_by_role("link", name="Acme Dental").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Acme Dental")
    expect(page.locator("#endpoints-table tbody tr")).to_have_count(PER_CLIENT)
    expect(page.locator("#client-company")).to_contain_text(
        world.stack.manage.companies.rows[world.stack.seed.company_ids[0]]["name"]
    )
    row = page.locator("#endpoints-table tbody tr", has_text="WS-00-002")
    expect(row).to_contain_text("Threat detected")
    page.locator("#endpoints-table").get_by_role("link", name=re.compile("^Endpoint")).click()
    expect(page.locator("#endpoints-table tbody tr").first).to_contain_text(f"WS-00-{PER_CLIENT - 1:03d}")
    shot(page, tmp_path, "client")

    page.get_by_label("Filter").first.fill("ws-00-002")
    page.get_by_role("button", name="Filter").first.click()
    expect(page.locator("#endpoints-table tbody tr")).to_have_count(1)
    page.locator("#endpoints-table").get_by_role("link", name="WS-00-002").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("WS-00-002")
    expect(page.locator('#fields-table tr[data-field="active_threats"]')).to_contain_text("RMM")
    before = len(world.fleet.actions)
    page.get_by_role("button", name="Run: Run a scan").click()
    expect(page.locator("#action-result")).to_contain_text("Scan")
    world.server.run(world.stack.work())
    assert world.fleet.actions[before:] == [("ep-0-2", ActionKind.SCAN)]
    page.reload()
    expect(page.locator("#action-result")).to_contain_text("sent; the RMM accepted it")
    expect(page.locator("#actions-table tbody tr").first).to_have_attribute("data-status", "accepted")
    shot(page, tmp_path, "endpoint")

    page.set_viewport_size({"width": 390, "height": 844})
    page.reload()
    overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 1, f"page scrolls sideways by {overflow}px at phone width"
    shot(page, tmp_path, "endpoint-phone")


def test_set_the_currency_on_a_phone(browser: Browser, world: World, tmp_path: Path) -> None:
    context = browser.new_context(base_url=world.server.url, viewport={"width": 390, "height": 844})
    page = context.new_page()
    try:
        sign_in(page, world.engineer_key, "/setup/settings")
        expect(page.locator("#currency-sample")).to_have_text("$1,234.50")
        page.get_by_label("Currency (ISO 4217 code)").fill("EUR")
        page.get_by_label("Locale").fill("de_DE")
        page.get_by_role("button", name="Save currency").click()
        expect(page.get_by_role("status")).to_contain_text("Currency saved")
        expect(page.locator("#currency-sample")).to_have_text("1.234,50\xa0€")
        assert world.get("/api/v1/settings/currency") == {"currency": "EUR", "locale": "de_DE"}
        shot(page, tmp_path, "settings-phone")
        page.goto("/billing")
        expect(page.locator("#billing-total")).to_have_text(re.compile(r"^[\d.]+,\d\d\s€$"))
        # a bad code is named on the form, and nothing changes
        page.goto("/setup/settings")
        page.get_by_label("Currency (ISO 4217 code)").fill("ZZZ")
        page.get_by_role("button", name="Save currency").click()
        expect(page.get_by_role("alert")).to_contain_text("currency")
        expect(page.get_by_label("Currency (ISO 4217 code)")).to_have_attribute("aria-invalid", "true")
    finally:
        page.goto("/setup/settings")
        page.get_by_label("Currency (ISO 4217 code)").fill("USD")
        page.get_by_label("Locale").fill("en_US")
        page.get_by_role("button", name="Save currency").click()
        context.close()
    assert world.get("/api/v1/settings/currency") == {"currency": "USD", "locale": "en_US"}
