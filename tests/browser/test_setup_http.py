"""The dashboard's set-up pages over plain HTTP: connections from the adapter's own credential form,
the live test, webhook secrets, bulk and manual client mappings, ticket and billing rules picked
from the PSA catalog, API keys (admin only), the first-run checklist and the demo banner."""

from __future__ import annotations

import html
import re
from collections.abc import Awaitable, Callable
from typing import Any

import httpx

from adapters.registry import discover
from adapters.testing.harness import PsaHarness, PsaWorld, RmmHarness, VendorWorld, installed_harnesses
from connector.web.setup import form_values, schema_fields
from tests.browser.test_dashboard_http import csrf_of, plaintext, sign_in
from tests.support.vendors import VendorRouter

KeyMaker = Callable[..., Awaitable[dict[str, str]]]
RMMS, PSAS = installed_harnesses(discover().all())
PSA: PsaHarness = PSAS[0]
RMM: RmmHarness = RMMS[0]


def route(vendors: VendorRouter, world: VendorWorld) -> None:
    for host in world.hosts:
        vendors.add(host, world.transport())


async def signed_in(client: httpx.AsyncClient, make_key: KeyMaker, role: str) -> dict[str, str]:
    headers = await make_key(role)
    assert (await sign_in(client, plaintext(headers))).status_code == 303
    return headers


async def csrf(client: httpx.AsyncClient, path: str = "/setup") -> str:
    return csrf_of((await client.get(path)).text)


async def connect(client: httpx.AsyncClient, headers: dict[str, str], world: VendorWorld) -> dict[str, Any]:
    response = await client.post("/api/v1/connections", json=world.connection.as_json(), headers=headers)
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def connection_form(world: PsaWorld, token: str, **overrides: str) -> dict[str, str]:
    body = world.connection
    form = {"csrf_token": token, "kind": body.kind, "name": "Manage from the form", "base_url": body.base_url}
    for name, value in body.credentials.items():
        if isinstance(value, bool):
            if value:
                form[f"credentials.{name}"] = "on"
        else:
            form[f"credentials.{name}"] = str(value)
    for name, value in body.options.items():
        form[f"options.{name}"] = str(value)
    form.update(overrides)
    return form


def options_of(page: str, select_id: str) -> list[str]:
    match = re.search(rf'<select id="{select_id}"[^>]*>(.*?)</select>', page, re.S)
    assert match is not None, select_id
    return [html.unescape(v) for v in re.findall(r'<option value="([^"]*)"', match.group(1))]


def test_generated_form_fields_follow_the_schema() -> None:
    schema = {
        "properties": {
            "account": {"type": "string", "title": "Account", "description": "the tenant"},
            "secret": {"type": "string", "format": "password", "writeOnly": True, "title": "Secret"},
            "page": {"anyOf": [{"type": "integer"}, {"type": "null"}], "default": None, "title": "Page"},
            "verify": {"type": "boolean", "default": True, "title": "Verify"},
            "cloud": {"anyOf": [{"type": "boolean"}, {"type": "null"}], "default": None},
            "region": {"$ref": "#/$defs/Region"},
        },
        "required": ["account", "secret"],
        "$defs": {"Region": {"enum": ["eu", "us"], "title": "Region", "type": "string"}},
    }
    fields = {f.name: f for f in schema_fields(schema)}
    assert [f.kind for f in fields.values()] == ["string", "secret", "integer", "boolean", "boolean", "enum"]
    assert fields["cloud"].nullable and not fields["verify"].nullable
    assert fields["account"].required and fields["account"].description == "the tenant"
    assert not fields["page"].required and fields["region"].choices == ("eu", "us")
    values = form_values(
        list(fields.values()), {"c.account": " acme ", "c.secret": "s3", "c.page": "x", "c.region": ""}, "c"
    )
    assert values == {"account": "acme", "secret": "s3", "page": "x", "verify": False}  # cloud: unset
    assert form_values([fields["cloud"]], {"c.cloud": "false"}, "c") == {"cloud": False}


async def test_pages_render_with_nav_and_checklist(client: httpx.AsyncClient, make_key: KeyMaker) -> None:
    await signed_in(client, make_key, "engineer")
    overview = await client.get("/")
    assert overview.status_code == 200
    assert '<a href="/setup">Set-up</a>' in overview.text
    assert 'id="first-run"' in overview.text
    for item, href in (
        ("rmm", "/setup/connections"),
        ("psa", "/setup/connections"),
        ("mapping", "/mappings"),
        ("rule", "/setup/rules"),
    ):
        assert re.search(rf'data-item="{item}" data-done="no"><a href="{href}">', overview.text), item
    for path in ("/setup", "/setup/connections", "/setup/rules", "/mappings"):
        page = await client.get(path)
        assert page.status_code == 200, (path, page.text)
    assert "/setup/api-keys" not in (await client.get("/setup")).text  # admin only


async def test_connection_from_the_generated_form(
    client: httpx.AsyncClient, make_key: KeyMaker, vendors: VendorRouter
) -> None:
    await signed_in(client, make_key, "engineer")
    psa = PSA.start(devices_per_company=0)
    route(vendors, psa)
    page = await client.get("/setup/connections", params={"kind": psa.connection.kind})
    assert page.status_code == 200
    spec = next(s for s in discover().all() if s.kind == psa.connection.kind)
    for f in schema_fields(spec.credentials_schema()):
        assert f'<label for="credentials-{f.name}">{html.escape(f.label)}' in page.text, f.name
        if f.kind == "secret":
            assert f'type="password" id="credentials-{f.name}"' in page.text
    secrets = [str(v) for k, v in psa.connection.credentials.items() if "key" in k or "secret" in k]

    created = await client.post("/setup/connections", data=connection_form(psa, csrf_of(page.text)))
    assert created.status_code == 201, created.text
    assert "Manage from the form" in created.text
    for secret in secrets:
        assert secret not in created.text
    [row] = re.findall(r'data-connection-id="([^"]+)"', created.text)

    tested = await client.post(f"/setup/connections/{row}/test", data={"csrf_token": csrf_of(created.text)})
    assert tested.status_code == 200
    assert 'id="test-result" class="notice"' in tested.text and "accepted the credentials" in tested.text

    disabled = await client.post(
        f"/setup/connections/{row}/disable", data={"csrf_token": csrf_of(tested.text)}
    )
    assert disabled.status_code == 303
    listing = await client.get("/setup/connections")
    assert "Disabled" in listing.text and f'/setup/connections/{row}/enable"' in listing.text
    enabled = await client.post(
        f"/setup/connections/{row}/enable", data={"csrf_token": csrf_of(listing.text)}
    )
    assert enabled.status_code == 303
    assert f'/setup/connections/{row}/disable"' in (await client.get("/setup/connections")).text


async def test_failed_test_says_what_failed(
    client: httpx.AsyncClient, make_key: KeyMaker, vendors: VendorRouter
) -> None:
    headers = await signed_in(client, make_key, "engineer")
    vendors.add("down.example.com", lambda _request: httpx.Response(401, json={"error": "bad key"}))
    body = {**PSA.start(devices_per_company=0).connection.as_json(), "base_url": "https://down.example.com"}
    row = (await client.post("/api/v1/connections", json=body, headers=headers)).json()
    tested = await client.post(
        f"/setup/connections/{row['id']}/test", data={"csrf_token": await csrf(client)}
    )
    assert tested.status_code == 200
    assert 'id="test-result" class="error"' in tested.text
    assert "the test failed (credentials)" in tested.text


async def test_validation_errors_name_the_field(
    client: httpx.AsyncClient, make_key: KeyMaker, vendors: VendorRouter
) -> None:
    await signed_in(client, make_key, "engineer")
    psa = PSA.start(devices_per_company=0)
    required = [n for n in psa.connection.credentials if not isinstance(psa.connection.credentials[n], bool)]
    token = await csrf(client)
    form = connection_form(psa, token, **{f"credentials.{required[0]}": ""})
    answer = await client.post("/setup/connections", data=form)
    assert answer.status_code == 422
    assert f'data-field="credentials.{required[0]}"' in answer.text
    assert 'id="add-connection"' in answer.text  # the form is shown again, filled in
    assert 'value="Manage from the form"' in answer.text
    nameless = await client.post("/setup/connections", data=connection_form(psa, token, name=" "))
    assert nameless.status_code == 422 and 'data-field="name"' in nameless.text
    bad_kind = await client.post(
        "/setup/connections", data={"csrf_token": token, "kind": "nope", "name": "x"}
    )
    assert bad_kind.status_code == 422 and 'data-field="kind"' in bad_kind.text


async def test_webhook_secret_rotation_is_shown_once(
    client: httpx.AsyncClient, make_key: KeyMaker, vendors: VendorRouter
) -> None:
    headers = await signed_in(client, make_key, "engineer")
    rmm = RMM.start(clients=["Acme"], endpoints_per_client=1)
    route(vendors, rmm)
    row = await connect(client, headers, rmm)
    rotated = await client.post(
        f"/setup/connections/{row['id']}/webhook-secret", data={"csrf_token": await csrf(client)}
    )
    assert rotated.status_code == 200
    secret = re.search(r'<code id="secret-value">([^<]+)</code>', rotated.text)
    assert secret is not None and secret.group(1) != row["webhook_secret"]
    assert f"/webhooks/{row['id']}</code>" in rotated.text
    assert secret.group(1) not in (await client.get("/setup/connections")).text
    # the new secret verifies webhooks, the old one no longer does
    assert (
        await client.post(f"/webhooks/{row['id']}", json={}, params={"token": row["webhook_secret"]})
    ).status_code == 401


async def test_mapping_suggestions_bulk_accept_and_manual_form(
    client: httpx.AsyncClient, make_key: KeyMaker, vendors: VendorRouter
) -> None:
    headers = await signed_in(client, make_key, "engineer")
    names = ["Acme Dental", "Bluebird Logistics", "Cobalt Legal"]
    psa = PSA.start(companies=names, devices_per_company=0)
    rmm = RMM.start(clients=names, endpoints_per_client=1)
    route(vendors, psa)
    route(vendors, rmm)
    psa_row, rmm_row = await connect(client, headers, psa), await connect(client, headers, rmm)
    page = await client.get("/mappings", params={"rmm": rmm_row["id"], "psa": psa_row["id"]})
    assert page.status_code == 200
    assert (
        'form="bulk-mappings" name="pick_0"' in page.text
        and 'form="bulk-mappings" name="pick_2"' in page.text
    )
    form: dict[str, str] = dict(
        re.findall(
            r'<input type="hidden" name="((?:client|company)_(?:id|name)_\d+)" value="([^"]*)"', page.text
        )
    )
    form = {k: html.unescape(v) for k, v in form.items()}
    form |= {
        "csrf_token": csrf_of(page.text),
        "rmm_connection_id": rmm_row["id"],
        "psa_connection_id": psa_row["id"],
        "pick_0": "1",
        "pick_2": "1",
    }
    accepted = await client.post("/mappings/bulk", data=form)
    assert accepted.status_code == 303, accepted.text
    mappings = (await client.get("/api/v1/client-mappings", headers=headers)).json()
    assert sorted(m["rmm_client_id"] for m in mappings) == sorted([form["client_id_0"], form["client_id_2"]])
    assert all(m["psa_check"] == "checked" for m in mappings)

    after = await client.get(accepted.headers["location"])
    assert "Mapping saved" in after.text
    companies = options_of(after.text, "m-company")
    assert len(companies) == len(names)
    left = next(c for c, n in psa.companies.items() if n == names[1])
    manual = await client.post(
        "/mappings/manual",
        data={
            "csrf_token": csrf_of(after.text),
            "rmm_connection_id": rmm_row["id"],
            "psa_connection_id": psa_row["id"],
            "rmm_client_id": form["client_id_1"],
            "psa_company_id": left,
        },
    )
    assert manual.status_code == 303, manual.text
    mappings = (await client.get("/api/v1/client-mappings", headers=headers)).json()
    assert {m["psa_company_name"] for m in mappings} == set(names)
    none_picked = await client.post("/mappings/bulk", data={"csrf_token": csrf_of(after.text)})
    assert none_picked.status_code == 422 and "pick" in none_picked.text


async def test_ticket_and_billing_rules_from_picked_lists(
    client: httpx.AsyncClient, make_key: KeyMaker, vendors: VendorRouter
) -> None:
    headers = await signed_in(client, make_key, "engineer")
    psa = PSA.start(devices_per_company=0)
    route(vendors, psa)
    psa_row = await connect(client, headers, psa)
    page = await client.get("/setup/rules", params={"psa": psa_row["id"]})
    assert page.status_code == 200 and 'id="catalog-error"' not in page.text
    ids = psa.ticket_ids
    assert ids.board_id in options_of(page.text, "t-board_id")
    assert ids.status_new_id in options_of(page.text, "t-status_new_id")
    billing = psa.billing_ids
    assert billing.product_id in options_of(page.text, "b-psa_product_id")
    agreement_types = options_of(page.text, "b-agreement_type")
    assert billing.agreement_type.lower() in [a.lower() for a in agreement_types]
    agreement_type = next(a for a in agreement_types if a.lower() == billing.agreement_type.lower())

    token = csrf_of(page.text)
    ticket = {
        "csrf_token": token,
        "psa_connection_id": psa_row["id"],
        "enabled": "on",
        "summary_template": "{problem_title} on {hostname}",
        **ids.rule_fields(),
    }
    saved = await client.post("/setup/ticket-rules", data=ticket)
    assert saved.status_code == 303, saved.text
    [rule] = (await client.get("/api/v1/ticket-rules", headers=headers)).json()
    assert rule["board_id"] == ids.board_id and rule["psa_check"] == "checked" and rule["enabled"]

    edit = await client.get("/setup/rules", params={"edit_ticket": rule["id"]})
    assert f'action="/setup/ticket-rules/{rule["id"]}"' in edit.text
    updated = await client.post(
        f"/setup/ticket-rules/{rule['id']}",
        data={**ticket, "summary_template": "{problem_title}!", "problem": "not_protected"},
    )
    assert updated.status_code == 303, updated.text
    [rule] = (await client.get("/api/v1/ticket-rules", headers=headers)).json()
    assert rule["summary_template"] == "{problem_title}!"
    assert rule["problem"] == "not_protected" and rule["board_id"] == ids.board_id

    bill = {
        "csrf_token": token,
        "psa_connection_id": psa_row["id"],
        "enabled": "on",
        "product": "Acme EDR",
        "agreement_type": agreement_type,
        "psa_product_id": billing.product_id,
        "unit_price": "4.50",
        "description": "Seats",
        "count_scope": "protected",
        "count_method": "peak",
        "billing_timing": "current",
    }
    bad = await client.post("/setup/billing-rules", data={**bill, "unit_price": "lots"})
    assert bad.status_code == 422 and 'data-field="unit_price"' in bad.text
    assert 'value="lots"' in bad.text  # kept for correction
    saved = await client.post("/setup/billing-rules", data=bill)
    assert saved.status_code == 303, saved.text
    [billing_rule] = (await client.get("/api/v1/billing-rules", headers=headers)).json()
    assert billing_rule["psa_product_id"] == billing.product_id and billing_rule["unit_price"] == "4.5000"
    listing = await client.get(saved.headers["location"])
    assert "Billing rule saved" in listing.text and "Acme EDR" in listing.text
    assert billing_rule["description"] == "Seats"
    cleared = await client.post(
        f"/setup/billing-rules/{billing_rule['id']}", data={**bill, "description": ""}
    )
    assert cleared.status_code == 303, cleared.text
    [billing_rule] = (await client.get("/api/v1/billing-rules", headers=headers)).json()
    assert billing_rule["description"] is None  # emptied on the form: cleared


async def test_unreadable_psa_shows_the_error_and_takes_typed_ids(
    client: httpx.AsyncClient, make_key: KeyMaker, vendors: VendorRouter
) -> None:
    headers = await signed_in(client, make_key, "engineer")
    body = {**PSA.start(devices_per_company=0).connection.as_json(), "base_url": "https://gone.example.com"}
    vendors.add("gone.example.com", lambda _request: httpx.Response(503, text="maintenance"))
    psa_row = (await client.post("/api/v1/connections", json=body, headers=headers)).json()
    page = await client.get("/setup/rules", params={"psa": psa_row["id"]})
    assert page.status_code == 200 and 'id="catalog-error"' in page.text
    assert '<input id="t-board_id" name="board_id"' in page.text and 'name="allow_unchecked"' in page.text
    form = {
        "csrf_token": csrf_of(page.text),
        "psa_connection_id": psa_row["id"],
        "summary_template": "{problem_title}",
        "board_id": "7",
        "enabled": "on",
    }
    refused = await client.post("/setup/ticket-rules", data=form)
    assert refused.status_code == 502 and 'data-field="psa_connection_id"' in refused.text
    assert (await client.get("/api/v1/ticket-rules", headers=headers)).json() == []
    saved = await client.post("/setup/ticket-rules", data={**form, "allow_unchecked": "on"})
    assert saved.status_code == 303
    [rule] = (await client.get("/api/v1/ticket-rules", headers=headers)).json()
    assert rule["psa_check"] == "unchecked" and rule["board_id"] == "7"


async def test_api_keys_for_admins_only(client: httpx.AsyncClient, make_key: KeyMaker) -> None:
    await signed_in(client, make_key, "admin")
    page = await client.get("/setup/api-keys")
    assert page.status_code == 200 and "this session" in page.text
    created = await client.post(
        "/setup/api-keys", data={"csrf_token": csrf_of(page.text), "name": "ci", "role": "viewer"}
    )
    assert created.status_code == 201
    key = re.search(r'<code id="key-value">([^<]+)</code>', created.text)
    assert key is not None
    new_key = key.group(1)
    assert (
        await client.get("/api/v1/fleet/summary", headers={"Authorization": f"Bearer {new_key}"})
    ).status_code != 401
    listing = await client.get("/setup/api-keys")
    assert new_key not in listing.text
    [key_id] = re.findall(r'<tr data-key-id="([^"]+)"><th scope="row">ci</th>', listing.text)
    revoked = await client.post(
        f"/setup/api-keys/{key_id}/revoke", data={"csrf_token": csrf_of(listing.text)}
    )
    assert revoked.status_code == 303
    assert "Revoked" in (await client.get("/setup/api-keys")).text
    assert (
        await client.get("/api/v1/fleet/summary", headers={"Authorization": f"Bearer {new_key}"})
    ).status_code == 401
    bad = await client.post(
        "/setup/api-keys", data={"csrf_token": csrf_of(listing.text), "name": "", "role": "root"}
    )
    assert bad.status_code == 422 and 'data-field="name"' in bad.text and 'data-field="role"' in bad.text

    async with httpx.AsyncClient(transport=client._transport, base_url="http://testserver") as engineer:
        await signed_in(engineer, make_key, "engineer")
        assert (await engineer.get("/setup/api-keys")).status_code == 403
        token = await csrf(engineer)
        assert (
            await engineer.post("/setup/api-keys", data={"csrf_token": token, "name": "x", "role": "admin"})
        ).status_code == 403
        assert (
            await engineer.post(f"/setup/api-keys/{key_id}/revoke", data={"csrf_token": token})
        ).status_code == 403


async def test_viewers_read_only(
    client: httpx.AsyncClient, make_key: KeyMaker, vendors: VendorRouter
) -> None:
    admin = await make_key("admin")
    psa = PSA.start(devices_per_company=0)
    route(vendors, psa)
    row = await connect(client, admin, psa)
    await signed_in(client, make_key, "viewer")
    for path in ("/setup", "/setup/connections", f"/setup/rules?psa={row['id']}", "/mappings"):
        page = await client.get(path)
        assert page.status_code == 200, path
        assert 'method="post" action="/setup' not in page.text and 'action="/mappings/' not in page.text, path
    token = await csrf(client)
    for path in (
        "/setup/connections",
        f"/setup/connections/{row['id']}/test",
        f"/setup/connections/{row['id']}/disable",
        "/setup/ticket-rules",
        "/setup/billing-rules",
        "/mappings/bulk",
        "/mappings/manual",
    ):
        assert (await client.post(path, data={"csrf_token": token})).status_code == 403, path
    assert (await client.get("/setup/api-keys")).status_code == 403


async def test_demo_banner_for_engineers_only(
    app: Any, client: httpx.AsyncClient, make_key: KeyMaker
) -> None:
    app.state.demo_systems = [
        {
            "title": "Fake PSA",
            "kind": "halopsa",
            "base_url": "https://halo.demo.invalid",
            "credentials": {"client_id": "demo-id"},
        }
    ]
    try:
        await signed_in(client, make_key, "engineer")
        page = await client.get("/setup/connections")
        assert 'id="demo-banner"' in page.text and "https://halo.demo.invalid" in page.text
        assert "client_id=demo-id" in page.text
        async with httpx.AsyncClient(transport=client._transport, base_url="http://testserver") as viewer:
            await signed_in(viewer, make_key, "viewer")
            assert "demo-id" not in (await viewer.get("/setup/connections")).text
    finally:
        del app.state.demo_systems


async def test_signed_out_and_forged_forms_are_refused(client: httpx.AsyncClient, make_key: KeyMaker) -> None:
    for path in ("/setup", "/setup/connections", "/setup/rules", "/setup/api-keys"):
        response = await client.get(path)
        assert response.status_code == 303 and response.headers["location"].startswith("/login?next=/setup")
    await signed_in(client, make_key, "admin")
    for path in ("/setup/connections", "/setup/ticket-rules", "/setup/api-keys", "/mappings/bulk"):
        assert (await client.post(path, data={"csrf_token": "forged"})).status_code == 403, path
