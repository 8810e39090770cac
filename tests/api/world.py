"""A small configured tenant built through the API, shared by the API tests."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import httpx

RMM_CREDENTIALS = {"username": "svc-rmm", "api_secret": "rmm-super-secret-value"}
PSA_CREDENTIALS = {"username": "svc-psa", "api_secret": "psa-super-secret-value"}


@dataclass
class World:
    headers: dict[str, str]
    rmm: dict[str, Any]
    psa: dict[str, Any]
    mapping: dict[str, Any]
    ticket_rule: dict[str, Any]
    billing_rule: dict[str, Any]
    deploy_rule: dict[str, Any] = field(default_factory=dict)
    ids: dict[str, str] = field(default_factory=dict)


def canonical_alert(
    event_id: str,
    *,
    endpoint_id: str = "ep-1",
    client_id: str = "c-1",
    problem: str = "threat_detected",
    state: str = "active",
    occurred_at: str = "2026-11-20T10:00:00Z",
    message: str = "Trojan.Win32.Generic found in C:\\Users\\x\\a.exe",
) -> dict[str, Any]:
    return {
        "event_id": event_id,
        "client_id": client_id,
        "endpoint_id": endpoint_id,
        "hostname": f"{endpoint_id.upper()}-PC",
        "problem": problem,
        "state": state,
        "message": message,
        "occurred_at": occurred_at,
    }


def rmm_body(name: str = "Automate") -> dict[str, Any]:
    return {
        "name": name,
        "kind": "dummy_rmm",
        "base_url": "https://rmm.example.com",
        "credentials": dict(RMM_CREDENTIALS),
        "options": {"page_size": 500},
    }


def psa_body(name: str = "Manage") -> dict[str, Any]:
    return {
        "name": name,
        "kind": "dummy_psa",
        "base_url": "https://psa.example.com",
        "credentials": dict(PSA_CREDENTIALS),
    }


def mapping_body(rmm_id: str, psa_id: str, client_id: str = "c-1") -> dict[str, Any]:
    return {
        "rmm_connection_id": rmm_id,
        "rmm_client_id": client_id,
        "rmm_client_name": "Contoso",
        "psa_connection_id": psa_id,
        "psa_company_id": "250",
        "psa_company_name": "Contoso Ltd",
    }


def rejection_body(
    rmm_id: str, psa_id: str, client_id: str = "c-1", company_id: str = "251"
) -> dict[str, Any]:
    """A rejected suggestion: the RMM client is not this PSA company."""
    return {
        "rmm_connection_id": rmm_id,
        "rmm_client_id": client_id,
        "rmm_client_name": "Contoso",
        "psa_connection_id": psa_id,
        "psa_company_id": company_id,
        "psa_company_name": "Contoso Holdings",
    }


def ticket_rule_body(psa_id: str, problem: str | None = "threat_detected") -> dict[str, Any]:
    return {
        "psa_connection_id": psa_id,
        "problem": problem,
        "board_id": "1",
        "priority_id": "4",
        "status_new_id": "10",
        "status_closed_id": "20",
        "summary_template": "{problem_title} on {hostname} ({client})",
    }


def billing_rule_body(psa_id: str, product: str = "Kaspersky Endpoint Security") -> dict[str, Any]:
    return {
        "psa_connection_id": psa_id,
        "product": product,
        "count_method": "peak",
        "agreement_type": "Managed Security",
        "psa_product_id": "KES-SEAT",
        "unit_price": "4.50",
        "cost_tiers": [
            {"min_seats": 1, "unit_cost": "2.10"},
            {"min_seats": 101, "unit_cost": "1.85"},
            {"min_seats": 501, "unit_cost": "1.60"},
        ],
    }


async def build_world(client: httpx.AsyncClient, headers: dict[str, str]) -> World:
    async def post(path: str, body: dict[str, Any]) -> dict[str, Any]:
        response = await client.post(path, json=body, headers=headers)
        assert response.status_code == 201, response.text
        result: dict[str, Any] = response.json()
        return result

    rmm = await post("/api/v1/connections", rmm_body())
    psa = await post("/api/v1/connections", psa_body())
    mapping = await post("/api/v1/client-mappings", mapping_body(rmm["id"], psa["id"]))
    ticket_rule = await post("/api/v1/ticket-rules", ticket_rule_body(psa["id"]))
    billing_rule = await post("/api/v1/billing-rules", billing_rule_body(psa["id"]))
    deploy_rule = await post("/api/v1/deploy-rules", {"rmm_connection_id": rmm["id"]})
    spare = await post("/api/v1/connections", rmm_body("Spare RMM"))
    world = World(headers, rmm, psa, mapping, ticket_rule, billing_rule, deploy_rule)
    world.ids["spare_rmm_id"] = spare["id"]
    alert = canonical_alert("evt-world-1")
    received = await client.post(
        f"/webhooks/{rmm['id']}", json=alert, params={"token": rmm["webhook_secret"]}
    )
    assert received.status_code == 202, received.text
    world.ids["delivery_id"] = received.json()["delivery_id"]
    keys = await client.get("/api/v1/api-keys", headers=headers)
    if keys.status_code == 200:  # only admins may list keys
        world.ids["key_id"] = keys.json()[0]["id"]
    return world
