"""Client mappings, ticket rules, billing rules: every validation error is a 422 naming the field."""

from __future__ import annotations

from typing import Any

import pytest

from adapters.base import PsaCompany, RmmClient
from tests.api.world import World, billing_rule_body, build_world, mapping_body, ticket_rule_body
from tests.support.dummy_adapters import DummyPsa, DummyRmm


@pytest.fixture
async def world(client: Any, make_key: Any) -> World:
    return await build_world(client, await make_key("engineer"))


async def _error(
    client: Any, method: str, path: str, body: dict[str, Any], headers: dict[str, str]
) -> dict[str, str]:
    response = await client.request(method, path, json=body, headers=headers)
    assert response.status_code == 422, response.text
    error: dict[str, str] = response.json()["errors"][0]
    return error


async def test_mapping_must_point_at_connections_of_the_right_role(client: Any, world: World) -> None:
    swapped = mapping_body(world.psa["id"], world.rmm["id"], "c-2")
    error = await _error(client, "POST", "/api/v1/client-mappings", swapped, world.headers)
    assert error["field"] == "rmm_connection_id"
    assert "is a psa connection; expected rmm" in error["message"]
    wrong_psa = mapping_body(world.rmm["id"], world.rmm["id"], "c-2")
    error = await _error(client, "POST", "/api/v1/client-mappings", wrong_psa, world.headers)
    assert error["field"] == "psa_connection_id"


async def test_duplicate_mapping_is_refused(client: Any, world: World) -> None:
    error = await _error(
        client,
        "POST",
        "/api/v1/client-mappings",
        mapping_body(world.rmm["id"], world.psa["id"]),
        world.headers,
    )
    assert error == {
        "field": "rmm_client_id",
        "message": "a client mapping for this rmm_client_id already exists",
    }
    other = mapping_body(world.rmm["id"], world.psa["id"], "c-2")
    created = await client.post("/api/v1/client-mappings", json=other, headers=world.headers)
    assert created.status_code == 201
    # moving it onto the first mapping's client is a duplicate too
    error = await _error(
        client,
        "PATCH",
        f"/api/v1/client-mappings/{created.json()['id']}",
        {"rmm_client_id": "c-1"},
        world.headers,
    )
    assert error["field"] == "rmm_client_id"


async def test_mapping_patch_and_delete(client: Any, world: World) -> None:
    path = f"/api/v1/client-mappings/{world.mapping['id']}"
    patched = await client.patch(path, json={"psa_company_id": "300"}, headers=world.headers)
    assert patched.status_code == 200 and patched.json()["psa_company_id"] == "300"
    assert (await client.delete(path, headers=world.headers)).status_code == 204
    assert (await client.get(path, headers=world.headers)).status_code == 404


@pytest.mark.parametrize(
    ("change", "field", "message_part"),
    [
        ({"problem": "printer_on_fire"}, "problem", "Input should be"),
        ({"summary_template": "{hostname} {secret}"}, "summary_template", "unknown placeholder"),
        ({"summary_template": "{hostname"}, "summary_template", "invalid template"),
        ({"note_interval_minutes": -1}, "note_interval_minutes", "greater than or equal to 0"),
        ({"auto_action": "reboot"}, "auto_action", "Input should be"),
        ({"board_id": ""}, "board_id", "at least 1 character"),
        ({"psa_connection_id": "nope"}, "psa_connection_id", "no such connection"),
    ],
)
async def test_ticket_rule_validation(
    client: Any, world: World, change: dict[str, Any], field: str, message_part: str
) -> None:
    body = ticket_rule_body(world.psa["id"], "agent_offline") | change
    error = await _error(client, "POST", "/api/v1/ticket-rules", body, world.headers)
    assert error["field"] == field and message_part in error["message"], error


async def test_one_ticket_rule_per_problem_and_one_default(client: Any, world: World) -> None:
    error = await _error(
        client, "POST", "/api/v1/ticket-rules", ticket_rule_body(world.psa["id"]), world.headers
    )
    assert error["field"] == "problem"
    default = ticket_rule_body(world.psa["id"], None)
    assert (await client.post("/api/v1/ticket-rules", json=default, headers=world.headers)).status_code == 201
    error = await _error(client, "POST", "/api/v1/ticket-rules", default, world.headers)
    assert error["field"] == "problem"


@pytest.mark.parametrize(
    ("change", "field", "message_part"),
    [
        ({"agreement_type": None}, "body", "agreement_type or agreement_id is required"),
        ({"count_method": "maximum"}, "count_method", "Input should be"),
        ({"count_scope": "everything"}, "count_scope", "Input should be"),
        ({"unit_price": "-1"}, "unit_price", "greater than or equal to 0"),
        ({"unit_price": "abc"}, "unit_price", "valid decimal"),
        ({"unit_price": "1.123456"}, "unit_price", "decimal places"),
        ({"cost_tiers": [{"min_seats": 5, "unit_cost": "1"}]}, "body", "must start at min_seats 1"),
        (
            {"cost_tiers": [{"min_seats": 1, "unit_cost": "2"}, {"min_seats": 1, "unit_cost": "1"}]},
            "body",
            "strictly increasing",
        ),
        ({"cost_tiers": [{"min_seats": 1}]}, "cost_tiers.0.unit_cost", "Field required"),
        ({"product": ""}, "product", "at least 1 character"),
    ],
)
async def test_billing_rule_validation(
    client: Any, world: World, change: dict[str, Any], field: str, message_part: str
) -> None:
    body = billing_rule_body(world.psa["id"], "Other AV") | change
    error = await _error(client, "POST", "/api/v1/billing-rules", body, world.headers)
    assert error["field"] == field and message_part in error["message"], error


async def test_billing_rule_money_round_trips_exactly(client: Any, world: World) -> None:
    fetched = (
        await client.get(f"/api/v1/billing-rules/{world.billing_rule['id']}", headers=world.headers)
    ).json()
    assert fetched["unit_price"] == "4.5000"
    assert [t["unit_cost"] for t in fetched["cost_tiers"]] == ["2.10", "1.85", "1.60"]
    error = await _error(
        client, "POST", "/api/v1/billing-rules", billing_rule_body(world.psa["id"]), world.headers
    )
    assert error["field"] == "product"


async def test_suggestions_pair_unmapped_clients_by_name(
    client: Any, world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(
        DummyRmm,
        "clients",
        [
            RmmClient(id="c-1", name="Contoso"),
            RmmClient(id="c-2", name="Fabrikam, Inc."),
            RmmClient(id="c-3", name="Northwind Traders"),
            RmmClient(id="c-4", name="Zeta Unmatched"),
        ],
    )
    monkeypatch.setattr(
        DummyPsa,
        "companies",
        [
            PsaCompany(id="250", name="Contoso Ltd"),
            PsaCompany(id="251", name="Fabrikam"),
            PsaCompany(id="252", name="Northwind Trader LLC"),
            PsaCompany(id="253", name="Adventure Works"),
        ],
    )
    response = await client.get(
        "/api/v1/client-mappings/suggestions",
        params={"rmm_connection_id": world.rmm["id"], "psa_connection_id": world.psa["id"]},
        headers=world.headers,
    )
    assert response.status_code == 200, response.text
    pairs = {(s["rmm_client_id"], s["psa_company_id"]) for s in response.json()}
    assert pairs == {("c-2", "251"), ("c-3", "252")}  # c-1 is already mapped, c-4 matches nothing


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("close_policy", "close_when_idle"),
        ("reraise_minutes", 0),
        ("reraise_minutes", "60"),
        ("clear_rmm_alert", "yes"),
    ],
)
async def test_ticket_rule_human_work_fields_are_validated(
    client: Any, world: World, field: str, value: Any
) -> None:
    body = {**ticket_rule_body(world.psa["id"], "scan_overdue"), field: value}
    error = await _error(client, "POST", "/api/v1/ticket-rules", body, world.headers)
    assert error["field"] == field


async def test_ticket_rule_close_policy_defaults_and_round_trips(client: Any, world: World) -> None:
    body = ticket_rule_body(world.psa["id"], "scan_overdue")
    created = (await client.post("/api/v1/ticket-rules", json=body, headers=world.headers)).json()
    assert (created["close_policy"], created["reraise_minutes"], created["clear_rmm_alert"]) == (
        "close_if_untouched",
        None,
        False,
    )
    changed = {"close_policy": "note_only", "reraise_minutes": 240, "clear_rmm_alert": True}
    response = await client.patch(
        f"/api/v1/ticket-rules/{created['id']}", json=changed, headers=world.headers
    )
    assert response.status_code == 200, response.text
    assert {k: response.json()[k] for k in changed} == changed
