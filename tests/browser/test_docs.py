"""`/docs` in headless Chromium with the network cut off: every request other than to the local
uvicorn server is aborted (and host names other than 127.0.0.1 do not resolve), yet Swagger UI
renders the whole API from the installed package's assets, and its Authorize button takes an API key
that a "Try it out" call then uses. SQLite only."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from connector.app import create_app
from connector.infra import db
from connector.infra.security.apikeys import ApiRole
from connector.settings import Settings
from connector.tenants.service import create_api_key, get_or_create_tenant
from tests.browser.test_dashboard import CHROMIUM, LAUNCH_ARGS, LiveServer

from playwright.sync_api import Page, Route, expect, sync_playwright  # isort: skip

OFFLINE_ARGS = [*LAUNCH_ARGS, "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1"]


@pytest.fixture(scope="module")
def server(sqlite_template: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    folder = tmp_path_factory.mktemp("docs")
    shutil.copy(sqlite_template, folder / "connector.db")
    settings = Settings(
        database_url=f"sqlite+aiosqlite:///{folder / 'connector.db'}",
        data_dir=folder,
        secret_key=Fernet.generate_key().decode(),
        run_worker=False,
        run_scheduler=False,
    )
    live = LiveServer(create_app(settings, migrate=False))
    live.start()
    try:
        yield live
    finally:
        live.stop()


def _admin_key(server: LiveServer) -> str:
    async def make() -> str:
        services = server.server.config.app.state.services  # type: ignore[attr-defined]
        async with db.transaction(services.sessions) as session:
            tenant = await get_or_create_tenant(session)
            _, key = await create_api_key(session, tenant, ApiRole.ADMIN, "docs browser")
        return key

    return server.run(make())


def test_docs_render_and_authorize_without_network(server: LiveServer, tmp_path: Path) -> None:
    key = _admin_key(server)
    blocked: list[str] = []
    loaded: list[str] = []

    def only_local(route: Route) -> None:
        url = route.request.url
        if url.startswith(server.url + "/"):
            loaded.append(url[len(server.url) :])
            route.continue_()
        else:
            blocked.append(url)
            route.abort("internetdisconnected")

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=OFFLINE_ARGS)
        try:
            context = browser.new_context(base_url=server.url, viewport={"width": 1280, "height": 900})
            context.route("**/*", only_local)
            page: Page = context.new_page()
            page.goto("/docs")
            expect(page.locator(".swagger-ui .info .title")).to_contain_text("connector", timeout=20_000)
            expect(
                page.locator(".opblock-summary-path[data-path='/api/v1/connections']").first
            ).to_be_visible()
            assert page.locator(".opblock").count() >= 40
            assert page.locator(".errors-wrapper").count() == 0  # no "could not render" / resolver errors

            page.locator("button.authorize").first.click()
            dialog = page.locator(".dialog-ux .modal-ux")
            expect(dialog).to_contain_text("ApiKey")
            expect(dialog).to_contain_text("Bearer")
            dialog.locator("input").first.fill(key)
            dialog.locator("button.authorize").click()
            dialog.locator("button.btn-done").click()

            operation = page.locator("#operations-connections-list_connections_api_v1_connections_get")
            operation.locator(".opblock-summary").click()
            operation.locator("button.try-out__btn").click()
            operation.locator("button.execute").click()
            status = operation.locator(".live-responses-table tr.response .response-col_status").first
            expect(status).to_have_text("200", timeout=20_000)
            page.screenshot(path=str(tmp_path / "docs.png"), full_page=False)
            print(f"screenshot: {tmp_path / 'docs.png'}")
        finally:
            browser.close()
    assert blocked == [], blocked
    assert any(url.startswith("/static-offline-docs/swagger-ui-bundle.js") for url in loaded), loaded
    assert "/openapi.json" in loaded
    assert "/api/v1/connections" in loaded
