"""The dashboard's sign-in, roles and CSRF checks over plain HTTP (no browser): fast, and run on every
database backend like the API tests."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from datetime import date

import httpx

from connector.fleet.stats import TrendPoint
from connector.web.auth import SESSION_COOKIE, safe_next
from connector.web.charts import trend_chart
from connector.web.render import ENV, external

KeyMaker = Callable[..., Awaitable[dict[str, str]]]
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def plaintext(headers: dict[str, str]) -> str:
    return headers["Authorization"].removeprefix("Bearer ")


def csrf_of(html: str) -> str:
    match = CSRF.search(html)
    assert match is not None, html
    return match.group(1)


async def sign_in(client: httpx.AsyncClient, key: str) -> httpx.Response:
    form = await client.get("/login")
    assert form.status_code == 200
    return await client.post(
        "/login", data={"csrf_token": csrf_of(form.text), "api_key": key, "next": "/problems"}
    )


def set_cookies(response: httpx.Response) -> list[str]:
    return response.headers.get_list("set-cookie")


async def test_pages_redirect_to_sign_in_when_signed_out(client: httpx.AsyncClient) -> None:
    for path in (
        "/",
        "/problems",
        "/problems/nope",
        "/activity",
        "/billing?period=2026-01",
        "/billing/reconciliation?period=2026-01",
        "/billing/review?period=2026-01",
        "/billing/statements/2026-01/100?format=pdf",
        "/mappings",
        "/audit",
    ):
        response = await client.get(path)
        assert response.status_code == 303, path
        assert response.headers["location"].startswith("/login?next=/"), response.headers["location"]
    replay = await client.post("/deliveries/x/replay", data={"csrf_token": "x"})
    assert replay.status_code == 303 and replay.headers["location"].startswith("/login")
    page = await client.get("/login")
    assert page.status_code == 200
    assert '<label for="api_key">API key</label>' in page.text
    assert "default-src 'none'" in page.headers["content-security-policy"]


async def test_wrong_key_is_refused_without_a_session(client: httpx.AsyncClient, make_key: KeyMaker) -> None:
    real = plaintext(await make_key("engineer"))
    for wrong in ("ck_000000000000_nope", real[:-2] + "xx", ""):
        response = await sign_in(client, wrong)
        assert response.status_code == 401
        assert "not valid" in response.text
        assert not any(c.startswith(SESSION_COOKIE + "=") for c in set_cookies(response))
        if wrong:
            assert wrong not in response.text
    assert (await client.get("/")).status_code == 303


async def test_sign_in_cookie_is_sealed_and_strict(client: httpx.AsyncClient, make_key: KeyMaker) -> None:
    key = plaintext(await make_key("viewer"))
    response = await sign_in(client, key)
    assert response.status_code == 303
    assert response.headers["location"] == "/problems"
    [cookie] = [c for c in set_cookies(response) if c.startswith(SESSION_COOKIE + "=")]
    attributes = cookie.lower()
    assert "httponly" in attributes and "samesite=strict" in attributes and "path=/" in attributes
    assert "secure" not in attributes  # plain http here; see the https test
    value = cookie.split(";", 1)[0].split("=", 1)[1]
    _, prefix, secret = key.split("_", 2)
    assert key not in cookie and prefix not in cookie and secret not in cookie
    assert value and value == client.cookies[SESSION_COOKIE]

    for path in (
        "/",
        "/problems",
        "/activity",
        "/billing",
        "/billing/reconciliation",
        "/billing/review",
        "/mappings",
    ):
        page = await client.get(path)
        assert page.status_code == 200, (path, page.text)
        assert key not in page.text and secret not in page.text
        assert page.headers["cache-control"] == "no-store"


async def test_cookie_is_secure_over_https(app: object, make_key: KeyMaker) -> None:
    key = plaintext(await make_key("viewer"))
    transport = httpx.ASGITransport(app=app)  # type: ignore[arg-type]
    async with httpx.AsyncClient(transport=transport, base_url="https://testserver") as client:
        response = await sign_in(client, key)
    [cookie] = [c for c in set_cookies(response) if c.startswith(SESSION_COOKIE + "=")]
    assert "secure" in cookie.lower()


async def test_tampered_cookie_and_revoked_key_end_the_session(
    client: httpx.AsyncClient, make_key: KeyMaker
) -> None:
    admin = await make_key("admin")
    viewer = plaintext(await make_key("viewer"))
    await sign_in(client, viewer)
    assert (await client.get("/")).status_code == 200
    good = client.cookies[SESSION_COOKIE]
    client.cookies.set(SESSION_COOKIE, good[:-4] + "AAAA")
    assert (await client.get("/")).status_code == 303
    client.cookies.set(SESSION_COOKIE, good)
    assert (await client.get("/")).status_code == 200

    keys = (await client.get("/api/v1/api-keys", headers=admin)).json()
    [viewer_key] = [k for k in keys if k["role"] == "viewer"]
    revoked = await client.delete(f"/api/v1/api-keys/{viewer_key['id']}", headers=admin)
    assert revoked.status_code == 204
    assert (await client.get("/")).status_code == 303


async def test_viewer_sees_no_engineer_buttons_and_gets_403(
    client: httpx.AsyncClient, make_key: KeyMaker
) -> None:
    await sign_in(client, plaintext(await make_key("viewer")))
    page = await client.get("/activity")
    token = csrf_of(page.text)
    assert "/replay" not in page.text
    replay = await client.post("/deliveries/any/replay", data={"csrf_token": token})
    assert replay.status_code == 403
    assert "engineer" in replay.text
    mapping = await client.post("/mappings", data={"csrf_token": token, "rmm_client_id": "c-1"})
    assert mapping.status_code == 403


async def test_forms_need_the_session_csrf_token(client: httpx.AsyncClient, make_key: KeyMaker) -> None:
    no_form = await client.post("/login", data={"api_key": plaintext(await make_key("engineer"))})
    assert no_form.status_code == 403  # the sign-in form's own token is missing too

    await sign_in(client, plaintext(await make_key("engineer")))
    token = csrf_of((await client.get("/")).text)
    for data in ({}, {"csrf_token": ""}, {"csrf_token": token[:-1] + "x"}):
        assert (await client.post("/deliveries/any/replay", data=data)).status_code == 403
        assert (await client.post("/mappings", data=data)).status_code == 403
        assert (await client.post("/logout", data=data)).status_code == 403
    # A JSON body is not a form: refused rather than parsed.
    assert (await client.post("/deliveries/any/replay", json={"csrf_token": token})).status_code == 415
    # With the token the request goes through (here: to "no such delivery").
    assert (await client.post("/deliveries/any/replay", data={"csrf_token": token})).status_code == 404
    signed_out = await client.post("/logout", data={"csrf_token": token})
    assert signed_out.status_code == 303 and signed_out.headers["location"] == "/login"
    assert (await client.get("/")).status_code == 303


def test_next_is_same_site_only() -> None:
    assert safe_next("/problems?routing=unmapped") == "/problems?routing=unmapped"
    for bad in (None, "", "https://evil.example", "//evil.example", "/\\evil.example", "problems"):
        assert safe_next(bad) == "/"


def test_templates_escape_and_psa_links_are_http_only() -> None:
    html = ENV.get_template("error.html").render(
        request_path="/", user=None, notice=None, message="<script>alert(1)</script>"
    )
    assert "<script>alert(1)" not in html and "&lt;script&gt;" in html
    assert external("https://na.myconnectwise.net/t?id=1") == "https://na.myconnectwise.net/t?id=1"
    assert external("javascript:alert(1)") is None and external(None) is None


def test_trend_chart_leaves_out_days_without_history() -> None:
    today = date(2026, 11, 30)
    points = [
        TrendPoint("2026-10-01", 5, 10),  # before the window
        TrendPoint("2026-11-01", 9, 10),  # the first day of the 30
        TrendPoint("2026-11-15", 0, 0),  # nothing recorded
        TrendPoint("2026-11-30", 10, 10),
    ]
    chart = trend_chart(points, 30, today)
    assert [p.day for p in chart.points] == ["2026-11-01", "2026-11-30"]
    assert chart.points[0].x == chart.left and chart.points[-1].x == chart.right
    assert chart.points[-1].y == chart.top and chart.latest == 1.0 and chart.lowest == 0.9
    assert trend_chart([], 30, today).line == ""


async def test_the_audit_page_lists_changes_with_filters_and_no_secrets(
    client: httpx.AsyncClient, make_key: KeyMaker
) -> None:
    engineer = await make_key("engineer")
    secret = "psa-audit-page-secret-41b7"
    created = await client.post(
        "/api/v1/connections",
        json={
            "name": "Audited PSA",
            "kind": "dummy_psa",
            "base_url": "https://psa.example.com",
            "credentials": {"username": "svc", "api_secret": secret},
        },
        headers=engineer,
    )
    assert created.status_code == 201
    patched = await client.patch(
        f"/api/v1/connections/{created.json()['id']}", json={"enabled": False}, headers=engineer
    )
    assert patched.status_code == 200
    assert (await sign_in(client, plaintext(await make_key("viewer")))).status_code == 303

    page = await client.get("/audit")
    assert page.status_code == 200
    assert 'data-kind="connection.created"' in page.text and 'data-kind="connection.updated"' in page.text
    assert "connection &#39;Audited PSA&#39; disabled" in page.text
    assert secret not in page.text
    only_psa = await client.get("/audit", params={"category": "psa"})
    assert 'id="no-audit"' in only_psa.text
    assert (await client.get("/audit", params={"kind": "nonsense"})).status_code == 422


async def test_maintenance_page_adds_lists_and_deletes_windows_and_tests_a_channel(
    client: httpx.AsyncClient, make_key: KeyMaker
) -> None:
    headers = await make_key("engineer")
    channel = await client.post(
        "/api/v1/notification-channels",
        json={
            "name": "ops hook",
            "kind": "webhook",
            "url": "https://hooks.example.com/secret-path",
            "secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        },
        headers=headers,
    )
    assert channel.status_code == 201, channel.text
    await sign_in(client, plaintext(headers))
    page = await client.get("/maintenance")
    assert page.status_code == 200
    assert 'id="no-windows"' in page.text and "ops hook" in page.text
    assert "secret-path" not in page.text and "whsec_" not in page.text
    token = csrf_of(page.text)

    bad = await client.post(
        "/maintenance",
        data={
            "csrf_token": token,
            "name": "n",
            "timezone": "Nowhere/Land",
            "kind": "once",
            "start_local": "2026-12-01T10:00",
            "end_local": "2026-12-01T11:00",
        },
    )
    assert bad.status_code == 422 and "timezone" in bad.text
    added = await client.post(
        "/maintenance",
        data={
            "csrf_token": token,
            "name": "Patch Tuesday",
            "timezone": "Europe/Berlin",
            "kind": "weekly",
            "day1": "1",
            "start_time": "22:00",
            "duration_minutes": "240",
        },
    )
    assert added.status_code == 303, added.text
    page = await client.get("/maintenance")
    assert "Patch Tuesday" in page.text and "Tue 22:00 for 240 min" in page.text
    [window] = (await client.get("/api/v1/maintenance-windows", headers=headers)).json()
    assert window["weekdays"] == [1] and window["timezone"] == "Europe/Berlin"

    tested = await client.post(
        f"/notification-channels/{channel.json()['id']}/test", data={"csrf_token": token}
    )
    assert tested.status_code == 303
    [sent] = (await client.get("/api/v1/notifications", headers=headers)).json()
    assert sent["event"] == "test" and sent["status"] == "queued"

    deleted = await client.post(f"/maintenance/{window['id']}/delete", data={"csrf_token": token})
    assert deleted.status_code == 303
    assert (await client.get("/api/v1/maintenance-windows", headers=headers)).json() == []


async def test_reconciliation_page_names_a_bad_period_and_says_when_there_is_nothing(
    client: httpx.AsyncClient, make_key: KeyMaker
) -> None:
    await sign_in(client, plaintext(await make_key("viewer")))
    page = await client.get("/billing/reconciliation", params={"period": "2026-13"})
    assert page.status_code == 200
    assert "The period must look like YYYY-MM" in page.text
    assert "Nothing to reconcile for" in page.text and 'id="reconciliation"' not in page.text
