"""The dashboard's settings and the forms that used to need the API, over plain HTTP: status
thresholds, currency and billing review settings (saved through the API's services, audited, bad
values named), rejecting mapping suggestions one at a time or in bulk and undoing it, editing and
switching maintenance windows, closing a billing period, and amounts in the tenant's currency.
Viewers see everything read-only."""

from __future__ import annotations

import html
import re
from decimal import Decimal
from typing import Any

import httpx

from connector.billing.review import ReviewSettings
from connector.fleet.domain import Thresholds
from connector.infra import db
from connector.infra.context import Services
from connector.models import BillingPeriod, BillingSnapshotLine, Connection
from connector.web.settings import submitted, window_changes
from tests.api.world import build_world
from tests.browser.test_dashboard_http import csrf_of
from tests.browser.test_setup_http import PSA, RMM, KeyMaker, connect, csrf, route, signed_in
from tests.support.vendors import VendorRouter

WINDOW = {
    "name": "Patch night",
    "timezone": "Europe/Berlin",
    "kind": "weekly",
    "weekdays": [2],
    "start_time": "22:00",
    "duration_minutes": 240,
}


async def _api(client: httpx.AsyncClient, path: str, headers: dict[str, str]) -> Any:
    response = await client.get(path, headers=headers)
    assert response.status_code == 200, response.text
    return response.json()


async def _audit(client: httpx.AsyncClient, headers: dict[str, str], kind: str) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = (await _api(client, f"/api/v1/audit?kind={kind}", headers))["events"]
    return events


# -- pure form reading ----------------------------------------------------------------------------


def test_form_values_are_typed_as_the_api_takes_them() -> None:
    assert submitted({"definitions_max_age_days": " 5 ", "scan_max_age_days": ""}, Thresholds) == {
        "definitions_max_age_days": 5
    }
    # text that is no whole number is passed on as typed, so validation names the field
    assert submitted({"offline_after_days": "1.5"}, Thresholds) == {"offline_after_days": "1.5"}
    values = submitted({"tolerance_seats": "3", "tolerance_percent": "7.5"}, ReviewSettings)
    assert values == {"tolerance_seats": 3, "tolerance_percent": "7.5", "review_new_lines": False}
    assert submitted({"review_new_lines": "on"}, ReviewSettings)["review_new_lines"] is True


def test_the_window_form_is_the_whole_window() -> None:
    weekly = window_changes(
        {"name": " Night ", "timezone": "UTC", "kind": "weekly", "day1": "1", "day4": "1",
         "start_time": "22:00", "duration_minutes": "90", "enabled": "on"}
    )  # fmt: skip
    assert weekly == {
        "name": "Night", "timezone": "UTC", "kind": "weekly", "rmm_connection_id": None,
        "client_id": None, "enabled": True, "weekdays": [1, 4], "start_time": "22:00",
        "duration_minutes": 90, "start_local": None, "end_local": None,
    }  # fmt: skip
    once = window_changes({"name": "Move", "timezone": "UTC", "start_local": "2026-12-12T20:00"})
    assert once["kind"] == "once" and once["enabled"] is False and once["weekdays"] == []
    assert once["start_local"] == "2026-12-12T20:00" and once["duration_minutes"] == 0


# -- settings -------------------------------------------------------------------------------------


async def test_settings_are_saved_through_the_api_services_and_audited(
    client: httpx.AsyncClient, make_key: KeyMaker
) -> None:
    headers = await signed_in(client, make_key, "engineer")
    page = await client.get("/setup/settings")
    assert page.status_code == 200
    assert '<a href="/setup/settings" aria-current="page">Settings</a>' in page.text
    assert 'id="currency-sample">$1,234.50<' in page.text
    token = csrf_of(page.text)
    thresholds = {"definitions_max_age_days": "5", "scan_max_age_days": "30", "offline_after_days": "14"}
    saved = await client.post("/setup/settings/thresholds", data={"csrf_token": token, **thresholds})
    assert saved.status_code == 303 and saved.headers["location"].startswith("/setup/settings?done=")
    assert await _api(client, "/api/v1/settings/thresholds", headers) == {
        k: int(v) for k, v in thresholds.items()
    }
    [entry] = await _audit(client, headers, "thresholds.updated")
    assert entry["actor"] == "dashboard" and entry["after"]["scan_max_age_days"] == 30

    saved = await client.post(
        "/setup/settings/currency", data={"csrf_token": token, "currency": "eur", "locale": "de-DE"}
    )
    assert saved.status_code == 303
    assert await _api(client, "/api/v1/settings/currency", headers) == {"currency": "EUR", "locale": "de_DE"}
    after = await client.get(saved.headers["location"])
    assert "Currency saved" in after.text and 'id="currency-sample">1.234,50\xa0€<' in after.text
    assert (await _audit(client, headers, "currency.updated"))[0]["actor"] == "dashboard"

    review = {"tolerance_seats": "4", "tolerance_percent": "7.5", "max_drop_percent": "30"}
    saved = await client.post(
        "/setup/settings/billing-review", data={"csrf_token": token, **review, "review_new_lines": "on"}
    )
    assert saved.status_code == 303
    assert await _api(client, "/api/v1/billing/review-settings", headers) == {
        "tolerance_seats": 4,
        "tolerance_percent": "7.5",
        "max_drop_percent": "30",
        "review_new_lines": True,
    }
    # an unticked box switches the flag off again
    await client.post("/setup/settings/billing-review", data={"csrf_token": token, **review})
    assert (await _api(client, "/api/v1/billing/review-settings", headers))["review_new_lines"] is False
    assert len(await _audit(client, headers, "billing_review.updated")) == 2


async def test_bad_settings_are_refused_naming_the_field(
    client: httpx.AsyncClient, make_key: KeyMaker
) -> None:
    headers = await signed_in(client, make_key, "engineer")
    token = await csrf(client, "/setup/settings")
    limits = {"definitions_max_age_days": "3", "scan_max_age_days": "14", "offline_after_days": "7"}
    review = {"tolerance_seats": "2", "tolerance_percent": "5", "max_drop_percent": "50"}
    cases = [
        ("thresholds", {**limits, "definitions_max_age_days": "0"}, "definitions_max_age_days"),
        ("thresholds", {**limits, "scan_max_age_days": "many"}, "scan_max_age_days"),
        ("thresholds", {**limits, "offline_after_days": "1.5"}, "offline_after_days"),
        ("currency", {"currency": "XYZ", "locale": "en_US"}, "currency"),
        ("currency", {"currency": "EUR", "locale": "zz_ZZ"}, "locale"),
        ("billing-review", {**review, "tolerance_seats": "-1"}, "tolerance_seats"),
        ("billing-review", {**review, "tolerance_percent": "lots"}, "tolerance_percent"),
        ("billing-review", {**review, "max_drop_percent": "0"}, "max_drop_percent"),
    ]
    for form, values, field in cases:
        response = await client.post(f"/setup/settings/{form}", data={"csrf_token": token, **values})
        assert response.status_code == 422, (form, field, response.text)
        assert f'data-field="{field}"><strong>{field}</strong>' in response.text, (form, field)
        assert re.search(rf'name="{field}"[^>]*aria-invalid="true"', response.text), field
        # what was typed is shown back
        assert f'value="{html.escape(values[field])}"' in response.text, field
    assert await _api(client, "/api/v1/settings/thresholds", headers) == {
        "definitions_max_age_days": 3,
        "scan_max_age_days": 14,
        "offline_after_days": 7,
    }
    assert (await _api(client, "/api/v1/settings/currency", headers))["currency"] == "USD"
    assert (await _api(client, "/api/v1/billing/review-settings", headers))["tolerance_seats"] == 2
    assert await _audit(client, headers, "thresholds.updated") == []


async def test_viewers_see_settings_read_only(client: httpx.AsyncClient, make_key: KeyMaker) -> None:
    admin = await make_key("admin")
    window = await client.post("/api/v1/maintenance-windows", json=WINDOW, headers=admin)
    assert window.status_code == 201
    await signed_in(client, make_key, "viewer")
    page = await client.get("/setup/settings")
    assert page.status_code == 200 and 'id="read-only"' in page.text
    assert 'id="thresholds-values"' in page.text and "<dd>14 days</dd>" in page.text
    assert 'id="currency-values"' in page.text and 'method="post" action="/setup/settings' not in page.text
    maintenance = await client.get("/maintenance")
    assert "/edit" not in maintenance.text and "/enabled" not in maintenance.text
    edit = await client.get(f"/maintenance/{window.json()['id']}/edit")
    assert edit.status_code == 200 and 'id="edit-window"' not in edit.text
    billing = await client.get("/billing", params={"period": "2026-08"})
    assert 'id="close-period"' not in billing.text
    assert (await client.get("/mappings/rejections")).status_code == 200
    token = await csrf(client)
    for path in (
        "/setup/settings/thresholds",
        "/setup/settings/currency",
        "/setup/settings/billing-review",
        "/mappings/reject",
        "/mappings/bulk-reject",
        "/mappings/rejections/x/undo",
        f"/maintenance/{window.json()['id']}/edit",
        f"/maintenance/{window.json()['id']}/enabled",
        "/billing/periods/2026-08/close",
    ):
        assert (await client.post(path, data={"csrf_token": token})).status_code == 403, path
    assert (await client.post("/setup/settings/thresholds", data={"csrf_token": "forged"})).status_code == 403


# -- rejected mapping suggestions -----------------------------------------------------------------


def _suggested(page: str) -> list[str]:
    """The RMM client names of the suggestions table."""
    if 'id="suggestions"' not in page:
        return []
    table = page.split('id="suggestions"', 1)[1].split("</table>", 1)[0]
    return [html.unescape(n) for n in re.findall(r'<th scope="row">([^<]*)</th>', table)]


async def test_suggestions_are_rejected_one_or_many_and_undone(
    client: httpx.AsyncClient, make_key: KeyMaker, vendors: VendorRouter
) -> None:
    headers = await signed_in(client, make_key, "engineer")
    names = ["Acme Dental", "Bluebird Logistics", "Cobalt Legal"]
    psa = PSA.start(companies=names, devices_per_company=0)
    rmm = RMM.start(clients=names, endpoints_per_client=1)
    route(vendors, psa)
    route(vendors, rmm)
    psa_row, rmm_row = await connect(client, headers, psa), await connect(client, headers, rmm)
    where = {"rmm": rmm_row["id"], "psa": psa_row["id"]}
    page = await client.get("/mappings", params=where)
    assert 'id="bulk-reject"' in page.text and 'formaction="/mappings/bulk-reject"' in page.text
    assert 'action="/mappings/reject"' in page.text and 'href="/mappings/rejections"' in page.text
    assert sorted(_suggested(page.text)) == names

    # one row's Reject button
    single = dict(
        re.findall(
            r'<input type="hidden" name="(\w+)" value="([^"]*)"',
            page.text.split('action="/mappings/reject"')[1].split("</form>")[0],
        )
    )
    single = {k: html.unescape(v) for k, v in single.items()}
    rejected = await client.post("/mappings/reject", data=single)
    assert rejected.status_code == 303, rejected.text
    after = await client.get(rejected.headers["location"])
    assert "Rejected: the pair is not suggested again" in after.text
    first = single["client_name"]
    assert first not in _suggested(after.text) and len(_suggested(after.text)) == 2

    # the rest in bulk, from the same ticks bulk accept reads
    form = dict(
        re.findall(
            r'<input type="hidden" name="((?:client|company)_(?:id|name)_\d+)" value="([^"]*)"', after.text
        )
    )
    form = {k: html.unescape(v) for k, v in form.items()}
    form |= {"csrf_token": csrf_of(after.text), "rmm_connection_id": rmm_row["id"],
             "psa_connection_id": psa_row["id"], "pick_0": "1", "pick_1": "1"}  # fmt: skip
    bulk = await client.post("/mappings/bulk-reject", data=form)
    assert bulk.status_code == 303, bulk.text
    empty = await client.get("/mappings", params=where)
    assert _suggested(empty.text) == [] and 'id="no-suggestions"' in empty.text
    none_picked = await client.post("/mappings/bulk-reject", data={"csrf_token": csrf_of(empty.text)})
    assert none_picked.status_code == 422 and "pick" in none_picked.text
    assert (await _api(client, "/api/v1/client-mappings", headers)) == []  # rejecting maps nothing

    listed = await client.get("/mappings/rejections")
    rows = re.findall(r'data-rejection-id="([^"]+)"', listed.text)
    assert len(rows) == 3 and all(n in listed.text for n in names)
    assert len(await _audit(client, headers, "mapping_suggestion.rejected")) == 3

    # a rejected company may still be mapped by hand
    company = next(c for c, n in psa.companies.items() if n == first)
    manual = await client.post(
        "/mappings/manual",
        data={"csrf_token": csrf_of(listed.text), "rmm_connection_id": rmm_row["id"],
              "psa_connection_id": psa_row["id"], "rmm_client_id": single["client_id"],
              "psa_company_id": company},
    )  # fmt: skip
    assert manual.status_code == 303, manual.text
    [mapping] = await _api(client, "/api/v1/client-mappings", headers)
    assert mapping["psa_company_id"] == company

    # undo one: its pair is suggested again
    undo_id = next(
        r for r in rows if names[1] in listed.text.split(f'data-rejection-id="{r}"')[1].split("</tr>")[0]
    )
    undone = await client.post(
        f"/mappings/rejections/{undo_id}/undo", data={"csrf_token": csrf_of(listed.text)}
    )
    assert undone.status_code == 303
    assert "Rejection undone" in (await client.get(undone.headers["location"])).text
    assert _suggested((await client.get("/mappings", params=where)).text) == [names[1]]
    again = await client.post(
        f"/mappings/rejections/{undo_id}/undo", data={"csrf_token": csrf_of(listed.text)}
    )
    assert again.status_code == 404
    assert len(await _audit(client, headers, "mapping_suggestion.restored")) == 1


async def test_a_rejection_naming_a_missing_field_is_refused(
    client: httpx.AsyncClient, make_key: KeyMaker
) -> None:
    headers = await signed_in(client, make_key, "engineer")
    world = await build_world(client, headers)
    token = await csrf(client)
    base = {"csrf_token": token, "rmm_connection_id": world.rmm["id"], "psa_connection_id": world.psa["id"]}
    missing = await client.post("/mappings/reject", data={**base, "client_id": "c-1"})
    assert missing.status_code == 422 and "psa_company_id" in missing.text
    wrong = await client.post(
        "/mappings/reject",
        data={**base, "rmm_connection_id": world.psa["id"], "client_id": "c-1", "company_id": "9"},
    )
    assert wrong.status_code == 422 and "rmm_connection_id" in wrong.text


# -- maintenance windows --------------------------------------------------------------------------


async def test_maintenance_windows_are_edited_and_switched_in_the_browser(
    client: httpx.AsyncClient, make_key: KeyMaker
) -> None:
    headers = await signed_in(client, make_key, "engineer")
    created = await client.post("/api/v1/maintenance-windows", json=WINDOW, headers=headers)
    window_id = created.json()["id"]
    listed = await client.get("/maintenance")
    assert f'href="/maintenance/{window_id}/edit"' in listed.text
    edit = await client.get(f"/maintenance/{window_id}/edit")
    assert edit.status_code == 200
    assert 'value="Patch night"' in edit.text and 'name="day2" value="1" checked' in edit.text
    assert 'value="22:00"' in edit.text and 'value="240"' in edit.text

    form = {"csrf_token": csrf_of(edit.text), "name": "Patch night (late)", "timezone": "America/New_York",
            "kind": "weekly", "day2": "1", "day5": "1", "start_time": "23:30", "duration_minutes": "120",
            "enabled": "on"}  # fmt: skip
    saved = await client.post(f"/maintenance/{window_id}/edit", data=form)
    assert saved.status_code == 303, saved.text
    assert "Maintenance window saved" in (await client.get(saved.headers["location"])).text
    stored = await _api(client, f"/api/v1/maintenance-windows/{window_id}", headers)
    assert (stored["name"], stored["timezone"], stored["weekdays"]) == (
        "Patch night (late)",
        "America/New_York",
        [2, 5],
    )
    assert (stored["start_time"], stored["duration_minutes"], stored["enabled"]) == ("23:30", 120, True)
    [entry] = await _audit(client, headers, "maintenance_window.updated")
    assert entry["actor"] == "dashboard" and entry["after"]["timezone"] == "America/New_York"

    bad = await client.post(f"/maintenance/{window_id}/edit", data={**form, "timezone": "Mars/Olympus"})
    assert bad.status_code == 422 and 'data-field="timezone"' in bad.text
    assert 'value="Mars/Olympus"' in bad.text
    one_off = {**form, "kind": "once", "start_local": "2026-12-12T20:00", "end_local": "2026-12-12T18:00"}
    bad = await client.post(f"/maintenance/{window_id}/edit", data=one_off)
    assert bad.status_code == 422 and "data-field=" in bad.text
    assert (await _api(client, f"/api/v1/maintenance-windows/{window_id}", headers))[
        "timezone"
    ] == "America/New_York"

    off = await client.post(
        f"/maintenance/{window_id}/enabled", data={"csrf_token": form["csrf_token"], "enabled": "false"}
    )
    assert off.status_code == 303
    stored = await _api(client, f"/api/v1/maintenance-windows/{window_id}", headers)
    assert stored["enabled"] is False and stored["weekdays"] == [2, 5]
    assert ">Enable</button>" in (await client.get("/maintenance")).text
    odd = await client.post(
        f"/maintenance/{window_id}/enabled", data={"csrf_token": form["csrf_token"], "enabled": "yes"}
    )
    assert odd.status_code == 422 and "enabled" in odd.text
    assert (await client.get("/maintenance/nope/edit")).status_code == 404


# -- billing: close a period, amounts in the tenant's currency ------------------------------------


async def test_a_period_is_closed_from_the_billing_page(
    client: httpx.AsyncClient, make_key: KeyMaker
) -> None:
    headers = await signed_in(client, make_key, "engineer")
    page = await client.get("/billing", params={"period": "2026-08"})
    assert 'id="close-period"' in page.text and 'action="/billing/periods/2026-08/close"' in page.text
    closed = await client.post("/billing/periods/2026-08/close", data={"csrf_token": csrf_of(page.text)})
    assert closed.status_code == 303 and closed.headers["location"] == "/billing?period=2026-08"
    after = await client.get(closed.headers["location"])
    assert 'id="period-closed"' in after.text and 'id="close-period"' not in after.text
    [entry] = await _audit(client, headers, "billing_period.closed")
    assert entry["actor"] == "dashboard"
    again = await client.post("/billing/periods/2026-08/close", data={"csrf_token": csrf_of(page.text)})
    assert again.status_code == 303 and len(await _audit(client, headers, "billing_period.closed")) == 1
    bad = await client.post("/billing/periods/August/close", data={"csrf_token": csrf_of(page.text)})
    assert bad.status_code == 422 and "period" in bad.text


async def test_billing_amounts_are_in_the_tenants_currency(
    client: httpx.AsyncClient, make_key: KeyMaker, services: Services
) -> None:
    headers = await signed_in(client, make_key, "engineer")
    world = await build_world(client, headers)
    currency = {"currency": "EUR", "locale": "de_DE"}
    assert (await client.put("/api/v1/settings/currency", json=currency, headers=headers)).status_code == 200
    async with db.transaction(services.sessions) as session:
        connection = await session.get(Connection, world.rmm["id"])
        assert connection is not None
        session.add(BillingPeriod(tenant_id=connection.tenant_id, period="2026-08"))
        session.add(
            BillingSnapshotLine(
                tenant_id=connection.tenant_id, period="2026-08", rule_id=world.billing_rule["id"],
                company_id="250", company_name="Contoso Ltd", product="Acme EDR", source="endpoint",
                quantity=300, unit_price=Decimal("4.50"), unit_cost=Decimal("2.00"),
            )
        )  # fmt: skip
    billing = await client.get("/billing", params={"period": "2026-08"})
    assert 'href="/billing/statements/2026-08/250"' in billing.text
    shown = await client.get("/billing/statements/2026-08/250")
    assert shown.status_code == 200 and 'id="grand-total">1.350,00\xa0€<' in shown.text
    assert "4,50\xa0€" in shown.text and "$" not in shown.text
    api = await client.get("/api/v1/billing/periods/2026-08/statements/250", headers=headers)
    assert 'id="grand-total">1.350,00\xa0€<' in api.text
    rules = await client.get("/setup/rules", params={"psa": world.psa["id"]})
    assert rules.status_code == 200 and "4,50\xa0€" in rules.text
