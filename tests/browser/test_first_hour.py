"""A newcomer's first hour, in headless Chromium against a real `connector demo --empty` process:
only the simulated vendor systems run, nothing is configured. Everything after start is done in the
browser, from what the demo printed and what its pages show (no API call, no database write):

add a Datto RMM and a ConnectWise PSA connection from the demo banner's details and test them,
accept the suggested client mappings, create a ticket rule from the PSA's lists, run a sync, create
a billing rule from the products the endpoints report and the PSA's catalog, open a client and one of
its endpoints and run a scan, review and approve the billing period and push it, and download the
client's security report (a PDF naming the client).

A full-page screenshot of every page visited goes to `CONNECTOR_SCREENSHOTS_DIR` (or the test's tmp
dir): `CONNECTOR_SCREENSHOTS_DIR=docs/screenshots` refreshes the README's overview.png and client.png."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.browser import screens
from tests.browser.test_dashboard import CHROMIUM, LAUNCH_ARGS  # skips this module without them
from tests.support.pdf import text as pdf_text
from tests.support.processes import free_port

from playwright.sync_api import Browser, Locator, Page, expect, sync_playwright  # isort: skip

PER_CLIENT = 12
"""Endpoints per simulated client (`connector demo --per-client`)."""
WAIT = 60_000
"""Milliseconds a page may take to show what is expected (a loaded 2-core machine is slow)."""
SYNC_WAIT = 240_000
RMM_KIND, PSA_KIND = "datto_rmm", "connectwise_manage"
RMM_NAME, PSA_NAME = "Datto RMM (demo)", "ConnectWise PSA (demo)"
KEY = re.compile(r"Admin API key \(sign in with it\): (ck_\S+)")
SYSTEM = re.compile(r"^\s+.+ \((\w+)\): (https://\S+)  (.*)$")


@dataclass
class Demo:
    url: str
    key: str
    printed: dict[str, tuple[str, str]]
    """kind → (base URL, the rest of its printed line: credentials and options)"""
    output: list[str] = field(default_factory=list)


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Demo]:
    """`connector demo --empty` as its own process, on a free port; its printed details parsed."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONNECTOR_")}
    env["CONNECTOR_DATA_DIR"] = str(tmp_path_factory.mktemp("first-hour"))
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "connector.cli",
            "demo",
            "--empty",
            "--per-client",
            str(PER_CLIENT),
            "--port",
            str(port),
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert proc.stdout is not None
    lines: list[str] = []
    ready = threading.Event()

    def drain() -> None:  # keeps the pipe empty for as long as the demo logs
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line)
            if "Stop with Ctrl+C" in line:
                ready.set()
        ready.set()

    reader = threading.Thread(target=drain, name="demo-output", daemon=True)
    reader.start()
    try:
        assert ready.wait(240), "the demo did not start:\n" + "".join(lines)
        output = "".join(lines)
        assert proc.poll() is None, output
        [key] = KEY.findall(output)
        printed = {}
        for line in output.split("simulated systems answer at:", 1)[1].splitlines():
            if found := SYSTEM.match(line):
                printed[found.group(1)] = (found.group(2), found.group(3))
        assert {RMM_KIND, PSA_KIND} <= printed.keys(), output
        yield Demo(f"http://127.0.0.1:{port}", key, printed, lines)
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:  # pragma: no cover - a hung shutdown
            proc.kill()
            proc.wait(10)
        reader.join(10)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        yield playwright.chromium.launch(executable_path=str(CHROMIUM), args=LAUNCH_ARGS)


@pytest.fixture
def page(browser: Browser, demo: Demo) -> Iterator[Page]:
    context = browser.new_context(
        base_url=demo.url, viewport={"width": 1280, "height": 900}, accept_downloads=True
    )
    opened = context.new_page()
    opened.set_default_timeout(WAIT)
    opened.set_default_navigation_timeout(WAIT * 2)
    yield opened
    context.close()


class Walk:
    """The newcomer's browser, with a screenshot of every page they look at."""

    def __init__(self, page: Page, folder: Path) -> None:
        self.page = page
        self.folder = folder

    def shot(self, name: str) -> None:
        screens.save(self.page, self.folder, name)

    def heading(self, text: str | re.Pattern[str]) -> None:
        expect(self.page.get_by_role("heading", level=1)).to_have_text(text, timeout=WAIT)

    def status(self, text: str | re.Pattern[str]) -> None:
        expect(self.page.get_by_role("status").first).to_contain_text(text, timeout=WAIT)

    def nav(self, name: str) -> None:
        self.page.get_by_role("navigation", name="Main").get_by_role("link", name=name, exact=True).click()


def _pairs(cells: Locator) -> dict[str, str]:
    found: list[list[str]] = cells.evaluate_all("els => els.map(e => [e.dataset.name, e.dataset.value])")
    return {name: value for name, value in found}


def _banner(walk: Walk, kind: str) -> tuple[str, dict[str, str], dict[str, str]]:
    """What the demo banner says about one simulated system: base URL, credentials, options."""
    row = walk.page.locator(f'#demo-banner tr[data-kind="{kind}"]')
    expect(row).to_be_visible(timeout=WAIT)
    base_url = row.locator("code.base-url").inner_text().strip()
    return base_url, _pairs(row.locator("code.credential")), _pairs(row.locator("code.option"))


def _fill_generated(walk: Walk, prefix: str, values: dict[str, str]) -> None:
    """Type each value into the schema-generated input of that name, as its kind of input takes it."""
    form = walk.page.locator("#add-connection")
    for name, value in values.items():
        field = form.locator(f'[name="{prefix}.{name}"]')
        expect(field).to_have_count(1)
        tag = field.evaluate("e => e.tagName.toLowerCase() + ':' + (e.type || '')")
        if tag.startswith("select"):
            field.select_option(value.lower() if value in ("True", "False") else value)
        elif tag == "input:checkbox":
            field.set_checked(value == "True")
        else:
            field.fill(value)


def add_connection(walk: Walk, demo: Demo, kind: str, name: str) -> None:
    page = walk.page
    page.goto("/setup/connections")
    walk.heading("Connections")
    base_url, credentials, options = _banner(walk, kind)
    printed_url, printed_rest = demo.printed[kind]
    assert base_url == printed_url  # the banner shows what the demo printed
    for key, value in credentials.items():
        assert f"{key}={value}" in printed_rest
    page.get_by_label("Kind").select_option(kind)
    page.get_by_role("button", name="Show its form").click()
    form = page.locator("#add-connection")
    expect(form).to_be_visible(timeout=WAIT)
    form.get_by_label(re.compile("^Name")).fill(name)
    form.get_by_label(re.compile("^Base URL")).fill(base_url)
    _fill_generated(walk, "credentials", credentials)
    _fill_generated(walk, "options", options)
    walk.shot(f"connection-form-{kind}")
    form.get_by_role("button", name="Add connection").click()
    row = page.locator("#connections tbody tr", has=page.get_by_role("rowheader", name=name, exact=True))
    expect(row).to_be_visible(timeout=WAIT)
    expect(page.locator("#add-connection")).to_have_count(0)
    expect(page.locator(".error")).to_have_count(0)

    row.get_by_role("button", name=f"Test {name}").click()
    expect(page.locator("#test-result")).to_contain_text(
        f"{name}: the vendor accepted the credentials", timeout=WAIT
    )
    walk.shot(f"connection-tested-{kind}")


def accept_suggestions(walk: Walk) -> int:
    page = walk.page
    walk.nav("Mappings")
    walk.heading("Client mappings")
    rows = page.locator("#suggestions tbody tr")
    expect(rows.first).to_be_visible(timeout=WAIT)
    count = rows.count()
    assert count == 5, count  # the RMM's share of the demo's 25 clients, each named like a PSA company
    walk.shot("mappings-suggested")
    for n in range(count):
        rows.nth(n).get_by_role("checkbox").check()
    page.get_by_role("button", name="Accept the ticked suggestions").click()
    walk.status("Mapping saved")
    expect(page.locator("#mappings tbody tr")).to_have_count(count, timeout=WAIT)
    expect(page.locator("#no-suggestions")).to_be_visible()
    walk.shot("mappings")
    return count


def _pick_first(select: Locator, *, prefer: str | None = None) -> str:
    """Choose an entry of a PSA list: the first whose label contains `prefer`, else the first."""
    options: list[list[str]] = select.locator("option").evaluate_all(
        "os => os.filter(o => o.value).map(o => [o.value, o.textContent.trim()])"
    )
    assert options, "the PSA list is empty"
    value = next((v for v, label in options if prefer and prefer in label), options[0][0])
    select.select_option(value)
    return value


def add_ticket_rule(walk: Walk) -> None:
    page = walk.page
    walk.nav("Set-up")
    page.get_by_role("navigation", name="Set-up").get_by_role("link", name="Ticket & billing rules").click()
    walk.heading("Ticket and billing rules")
    form = page.locator("#ticket-rule-form")
    assert form.locator("select#t-board_id").count() == 1, "the board should be picked from the PSA's list"
    _pick_first(form.locator("#t-board_id"))
    _pick_first(form.locator("#t-priority_id"))
    _pick_first(form.locator("#t-status_new_id"), prefer="New")
    _pick_first(form.locator("#t-status_closed_id"), prefer="closes")
    form.get_by_label("Summary").fill("{problem_title} on {hostname} ({client})")
    form.get_by_role("button", name="Save ticket rule").click()
    walk.status("Ticket rule saved.")
    expect(page.locator("#ticket-rules tbody tr")).to_have_count(1)
    expect(page.locator("#ticket-rules")).to_contain_text(PSA_NAME)


def run_sync(walk: Walk) -> None:
    """Run sync on the sync page and watch it finish (the page refreshes itself while it runs). A
    scheduled first sync may already be going; the button waits for it."""
    page = walk.page
    walk.nav("Syncs & deliveries")
    page.get_by_role("link", name=re.compile("^Recent sync runs")).click()
    walk.heading("Sync runs")
    source = page.locator("#sync-sources tbody tr", has_text=RMM_NAME)
    for _ in range(3):
        expect(source).not_to_have_attribute("data-status", "running", timeout=SYNC_WAIT)
        source.get_by_role("button", name=f"Run sync of {RMM_NAME}").click()
        notice = page.get_by_role("status").first
        expect(notice).to_contain_text(re.compile(f"Sync of {re.escape(RMM_NAME)} started|already running"))
        if "started" in notice.inner_text():
            break
    else:  # pragma: no cover - the scheduler won every race
        pytest.fail("the sync never started from the dashboard")
    mine = page.locator('#sync-runs tbody tr[data-trigger="dashboard"]').first
    expect(mine).to_have_attribute("data-status", "succeeded", timeout=SYNC_WAIT)
    expect(mine).to_contain_text(RMM_NAME)
    page.reload()  # the refresh stops once nothing runs
    expect(page.locator("#sync-refreshing")).to_have_count(0, timeout=WAIT)
    mine = page.locator('#sync-runs tbody tr[data-trigger="dashboard"]').first
    assert int(mine.locator('td[data-label="Seen"]').inner_text()) == 5 * PER_CLIENT
    walk.shot("sync-runs")


def add_billing_rule(walk: Walk) -> str:
    page = walk.page
    page.goto("/setup/rules")
    walk.heading("Ticket and billing rules")
    form = page.locator("#billing-rule-form")
    reported = form.locator("#b-product-list option").evaluate_all("os => os.map(o => o.value)")
    assert reported, "the products the endpoints report should be offered"
    product = str(reported[0])
    form.get_by_label(re.compile("^Product")).fill(product)
    _pick_first(form.locator("#b-agreement_type"), prefer="Managed")
    _pick_first(form.locator("#b-psa_product_id"))
    form.get_by_label(re.compile("^Unit price")).fill("6.00")
    form.get_by_label("Count", exact=True).select_option("installed")
    walk.shot("rules-form")
    form.get_by_role("button", name="Save billing rule").click()
    walk.status("Billing rule saved.")
    expect(page.locator("#billing-rules tbody tr")).to_have_count(1)
    expect(page.locator("#billing-rules")).to_contain_text(product)
    walk.shot("rules")
    return product


def open_client(walk: Walk) -> str:
    page = walk.page
    walk.nav("Overview")
    clients = page.locator("#clients-table tbody tr")
    expect(clients).to_have_count(5, timeout=WAIT)
    expect(page.locator("#count-total")).to_have_text(str(5 * PER_CLIENT))
    walk.shot("overview")
    link = clients.first.get_by_role("link").first
    name = link.inner_text().strip()
    link.click()
    walk.heading(name)
    expect(page.locator("#client-company")).to_have_text(name)  # mapped to the company of that name
    expect(page.locator("#endpoints-table tbody tr")).to_have_count(PER_CLIENT)
    walk.shot("client")
    return name


def scan_an_endpoint(walk: Walk) -> None:
    page = walk.page
    link = page.locator("#endpoints-table tbody tr").first.get_by_role("link").first
    hostname = link.inner_text().strip()
    link.click()
    walk.heading(hostname)
    page.get_by_role("button", name="Run: Run a scan").click()
    result = page.locator("#action-result")
    expect(result).to_contain_text("Scan", timeout=WAIT)
    deadline = time.monotonic() + SYNC_WAIT / 1000
    while result.get_attribute("data-status") in ("queued", "sending") and time.monotonic() < deadline:
        page.wait_for_timeout(1000)  # the worker sends it; the page says so once reloaded
        page.reload()
    expect(result).to_contain_text("sent; the RMM accepted it")
    expect(page.locator("#actions-table tbody tr").first).to_have_attribute("data-status", "accepted")
    walk.shot("endpoint")
    page.go_back()
    page.go_back()


def review_and_push(walk: Walk, mapped: int) -> None:
    page = walk.page
    period = datetime.now(UTC).strftime("%Y-%m")
    walk.nav("Billing")
    expect(page.locator("#billing-lines tbody tr")).to_have_count(mapped, timeout=WAIT)
    walk.shot("billing")
    page.get_by_role("navigation", name="Billing").get_by_role("link", name="Review", exact=True).click()
    walk.heading(f"Billing review {period}")
    rows = page.locator("#proposals tbody tr")
    expect(rows).to_have_count(mapped)
    walk.shot("review")
    for n in range(mapped):
        rows.nth(n).get_by_role("checkbox").check()
    page.get_by_role("button", name="Approve selected").click()
    walk.status(f"Decisions recorded for {mapped} line(s).")
    for n in range(mapped):
        expect(rows.nth(n)).to_have_attribute("data-status", "approved")
    page.get_by_role("button", name="Push approved lines").click()
    walk.status(f"Pushed: {mapped} line(s) written to the PSA; 0 line(s) still wait.")
    expect(page.locator("#no-proposals")).to_be_visible()
    walk.shot("review-pushed")


def download_report(walk: Walk, client: str) -> None:
    page = walk.page
    page.go_back()
    walk.nav("Overview")
    page.locator("#clients-table").get_by_role("link", name=client, exact=True).click()
    walk.heading(client)
    with page.expect_download(timeout=WAIT * 2) as info:
        page.locator("#client-report").get_by_role("link", name="download the PDF").click()
    path = info.value.path()
    document = Path(path).read_bytes()
    assert document.startswith(b"%PDF-"), document[:20]
    assert client in pdf_text(document)
    page.locator("#client-report").get_by_role("link", name="read it").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text(client, timeout=WAIT)
    walk.shot("report")


def test_a_newcomers_first_hour_on_the_empty_demo(page: Page, demo: Demo, tmp_path: Path) -> None:
    walk = Walk(page, tmp_path)
    page.goto("/")
    expect(page).to_have_url(re.compile(r"/login\?next="))
    page.get_by_label("API key").fill(demo.key)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("navigation", name="Main")).to_be_visible(timeout=WAIT)
    walk.nav("Set-up")
    expect(page.locator("#demo-banner")).to_be_visible(timeout=WAIT)
    expect(page.locator('#first-run li[data-done="no"]')).to_have_count(4)
    walk.shot("setup")

    add_connection(walk, demo, RMM_KIND, RMM_NAME)
    add_connection(walk, demo, PSA_KIND, PSA_NAME)
    mapped = accept_suggestions(walk)
    add_ticket_rule(walk)
    run_sync(walk)
    add_billing_rule(walk)
    client = open_client(walk)
    scan_an_endpoint(walk)
    review_and_push(walk, mapped)
    download_report(walk, client)

    page.goto("/setup")  # the report is a document of its own, without the dashboard's navigation
    expect(page.locator('#first-run li[data-done="yes"]')).to_have_count(4, timeout=WAIT)
    walk.shot("setup-done")

    # Every change of the hour is in the audit trail, made from the dashboard.
    walk.nav("Audit")
    audit = page.locator("#audit-table tbody")
    for kind in (
        "connection.created",
        "client_mapping.created",
        "ticket_rule.created",
        "billing_rule.created",
        "action.sent",
        "billing_decision.recorded",
        "billing_line.written",
        "ticket.created",
    ):
        expect(audit.locator(f'tr[data-kind="{kind}"]').first).to_be_visible(timeout=WAIT)
    made = audit.locator('tr[data-kind="connection.created"]')
    expect(made).to_have_count(2)
    for n in range(2):
        expect(made.nth(n)).to_contain_text("dashboard")
    walk.shot("audit")
