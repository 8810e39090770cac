"""Every /api/v1 route: a key is required, roles are enforced, and another tenant's ids are 404.

The route table below is checked against the app's real routes, so a route added without an
entry here fails `test_every_route_is_in_the_matrix`."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import pytest

from connector.infra import db
from connector.infra.context import Services
from connector.models import (
    AgentMatchOverride,
    BillingPeriod,
    BillingPriceOverride,
    BillingSnapshotLine,
    Connection,
    ConsoleAgent,
    Endpoint,
)
from tests.api.world import (
    World,
    billing_rule_body,
    build_world,
    mapping_body,
    psa_body,
    rejection_body,
    rmm_body,
    ticket_rule_body,
)

CLOSED = "2026-08"
"""A period the world has closed, with one snapshot line (company 100)."""


@dataclass(frozen=True)
class Route:
    method: str
    template: str
    role: str
    body: Callable[[World], dict[str, Any]] | None = None
    query: Callable[[World], dict[str, str]] | None = None
    """Which of the world's ids fill `{id}` placeholders."""
    id_source: Callable[[World], str] | None = None
    owned_id: bool = True
    """False where the path parameter names something every tenant has (a billing period)."""
    content: Callable[[World], str] | None = None
    """A CSV body (sent as `text/csv`) instead of JSON."""
    answers: tuple[int, ...] = (200, 201, 202, 204)
    """What the role's request gets past authorization (the world's dummy RMM cannot register a
    webhook: that route's own 422 says the request reached it)."""

    def path(self, world: World) -> str:
        if "{" not in self.template:
            return self.template
        assert self.id_source is not None
        values = iter(self.id_source(world).split("|"))  # "a|b" fills two placeholders
        return re.sub(r"\{[^}]+\}", lambda m: next(values, "boards"), self.template)


def _conn(w: World) -> str:
    return str(w.rmm["id"])


ROUTES = [
    Route("GET", "/api/v1/adapters", "viewer"),
    Route("GET", "/api/v1/api-keys", "admin"),
    Route("POST", "/api/v1/api-keys", "admin", body=lambda w: {"name": "x", "role": "viewer"}),
    Route("DELETE", "/api/v1/api-keys/{key_id}", "admin", id_source=lambda w: w.ids["key_id"]),
    Route("GET", "/api/v1/connections", "viewer"),
    Route("POST", "/api/v1/connections", "engineer", body=lambda w: rmm_body("Another RMM")),
    Route("GET", "/api/v1/connections/{connection_id}", "viewer", id_source=_conn),
    Route(
        "PATCH",
        "/api/v1/connections/{connection_id}",
        "engineer",
        body=lambda w: {"name": "Renamed"},
        id_source=_conn,
    ),
    Route(
        "DELETE",
        "/api/v1/connections/{connection_id}",
        "engineer",
        query=lambda w: {"force": "true"},  # it has a mapping: a plain delete answers 409
        id_source=_conn,
    ),
    Route("POST", "/api/v1/connections/{connection_id}/test", "engineer", id_source=_conn),
    Route("POST", "/api/v1/connections/{connection_id}/webhook-secret", "engineer", id_source=_conn),
    Route(
        "POST",
        "/api/v1/connections/{connection_id}/register-webhook",
        "engineer",
        id_source=_conn,
        answers=(422,),
    ),
    Route(
        "GET", "/api/v1/connections/{connection_id}/catalog/{kind}", "viewer", id_source=lambda w: w.psa["id"]
    ),
    Route("GET", "/api/v1/deliveries", "viewer"),
    Route("GET", "/api/v1/deliveries/{delivery_id}", "viewer", id_source=lambda w: w.ids["delivery_id"]),
    Route(
        "POST",
        "/api/v1/deliveries/{delivery_id}/replay",
        "engineer",
        id_source=lambda w: w.ids["delivery_id"],
    ),
    Route("GET", "/api/v1/problems", "viewer"),
    Route("GET", "/api/v1/sync-runs", "viewer"),
    Route("POST", "/api/v1/sync-runs", "engineer", body=lambda w: {}),
    Route("GET", "/api/v1/sync-runs/{run_id}", "viewer", id_source=lambda w: w.ids["run_id"]),
    Route("GET", "/api/v1/endpoints", "viewer"),
    Route("GET", "/api/v1/endpoints/{endpoint_id}", "viewer", id_source=lambda w: w.ids["endpoint_id"]),
    Route(
        "POST",
        "/api/v1/endpoints/{endpoint_id}/actions",
        "engineer",
        body=lambda w: {"action": "scan"},
        id_source=lambda w: w.ids["endpoint_id"],
    ),
    Route("GET", "/api/v1/settings/thresholds", "viewer"),
    Route("GET", "/api/v1/fleet/summary", "viewer"),
    Route("GET", "/api/v1/audit", "viewer"),
    Route("GET", "/api/v1/billing/preview", "viewer", query=lambda w: {"period": "2026-10"}),
    Route("GET", "/api/v1/billing/reconciliation", "viewer", query=lambda w: {"period": "2026-10"}),
    Route("POST", "/api/v1/billing/push", "engineer", body=lambda w: {"period": "2026-10", "dry_run": True}),
    Route("POST", "/api/v1/billing/read-back", "engineer", body=lambda w: {"period": "2026-10"}),
    Route("GET", "/api/v1/billing/review-settings", "viewer"),
    Route("PUT", "/api/v1/billing/review-settings", "engineer", body=lambda w: {"tolerance_seats": 3}),
    Route("GET", "/api/v1/settings/currency", "viewer"),
    Route(
        "PUT", "/api/v1/settings/currency", "engineer", body=lambda w: {"currency": "EUR", "locale": "en_IE"}
    ),
    Route("GET", "/api/v1/billing/proposals", "viewer", query=lambda w: {"period": "2026-10"}),
    Route(
        "POST",
        "/api/v1/billing/decisions",
        "engineer",
        body=lambda w: {
            "period": "2026-10",
            "decisions": [{"rule_id": "r", "company_id": "c", "proposed_quantity": 1, "action": "approve"}],
        },
        answers=(200, 422),  # the world proposes nothing: the 422 names the missing proposal
    ),
    Route(
        "POST",
        "/api/v1/billing/periods/{period}/close",
        "engineer",
        id_source=lambda w: "2026-09",
        owned_id=False,
    ),
    Route("GET", "/api/v1/billing/periods/{period}/lines", "viewer", id_source=lambda w: CLOSED),
    Route(
        "GET",
        "/api/v1/billing/periods/{period}/lines/{line_id}/devices",
        "viewer",
        id_source=lambda w: f"{CLOSED}|{w.ids['snapshot_line_id']}",
    ),
    Route(
        "GET",
        "/api/v1/billing/periods/{period}/changes",
        "viewer",
        query=lambda w: {"company_id": "100"},
        id_source=lambda w: CLOSED,
    ),
    Route(
        "GET",
        "/api/v1/billing/periods/{period}/statements/{company_id}",
        "viewer",
        id_source=lambda w: f"{CLOSED}|100",
    ),
    Route(
        "GET",
        "/api/v1/reports/clients/{company_id}",
        "viewer",
        query=lambda w: {"period": CLOSED, "format": "json"},
        id_source=lambda w: "250",
    ),
    Route(
        "PUT",
        "/api/v1/settings/thresholds",
        "engineer",
        body=lambda w: {"definitions_max_age_days": 5, "scan_max_age_days": 30, "offline_after_days": 14},
    ),
    Route(
        "GET",
        "/api/v1/client-mappings/suggestions",
        "viewer",
        query=lambda w: {"rmm_connection_id": w.rmm["id"], "psa_connection_id": w.psa["id"]},
    ),
    Route(
        "POST",
        "/api/v1/mapping-suggestions/rejections",
        "engineer",
        body=lambda w: {"rejections": [rejection_body(w.rmm["id"], w.psa["id"], "c-7")]},
    ),
    Route("GET", "/api/v1/mapping-suggestions/rejections", "viewer"),
    Route(
        "DELETE",
        "/api/v1/mapping-suggestions/rejections/{rejection_id}",
        "engineer",
        id_source=lambda w: w.ids["rejection_id"],
    ),
]
for _path, _attr, _body, _patch in (
    (
        "/api/v1/client-mappings",
        "mapping",
        lambda w: mapping_body(w.rmm["id"], w.psa["id"], "c-99"),
        {"psa_company_name": "Renamed"},
    ),
    (
        "/api/v1/ticket-rules",
        "ticket_rule",
        lambda w: ticket_rule_body(w.psa["id"], "agent_offline"),
        {"enabled": False},
    ),
    (
        "/api/v1/billing-rules",
        "billing_rule",
        lambda w: billing_rule_body(w.psa["id"], "Other AV"),
        {"enabled": False},
    ),
    (
        "/api/v1/deploy-rules",
        "deploy_rule",
        lambda w: {"rmm_connection_id": w.ids["spare_rmm_id"], "interval_minutes": 60},
        {"enabled": False},
    ),
):
    _ident: Callable[[World], str] = lambda w, a=_attr: str(getattr(w, a)["id"])  # noqa: E731
    ROUTES += [
        Route("GET", _path, "viewer"),
        Route("POST", _path, "engineer", body=_body),
        Route("GET", _path + "/{item_id}", "viewer", id_source=_ident),
        Route("PATCH", _path + "/{item_id}", "engineer", body=lambda w, p=_patch: dict(p), id_source=_ident),
        Route("DELETE", _path + "/{item_id}", "engineer", id_source=_ident),
    ]

WINDOW = {
    "name": "w",
    "timezone": "UTC",
    "kind": "weekly",
    "weekdays": [0],
    "start_time": "01:00",
    "duration_minutes": 60,
}
CHANNEL = {"name": "hook", "kind": "slack", "url": "https://hooks.example.com/services/x"}
_window: Callable[[World], str] = lambda w: w.ids["window_id"]  # noqa: E731
_channel: Callable[[World], str] = lambda w: w.ids["channel_id"]  # noqa: E731
ROUTES += [
    Route("GET", "/api/v1/maintenance-windows", "viewer"),
    Route("POST", "/api/v1/maintenance-windows", "engineer", body=lambda w: dict(WINDOW)),
    Route("GET", "/api/v1/maintenance-windows/{window_id}", "viewer", id_source=_window),
    Route(
        "PATCH",
        "/api/v1/maintenance-windows/{window_id}",
        "engineer",
        body=lambda w: {"enabled": False},
        id_source=_window,
    ),
    Route("DELETE", "/api/v1/maintenance-windows/{window_id}", "engineer", id_source=_window),
    Route("GET", "/api/v1/notification-channels", "viewer"),
    Route("POST", "/api/v1/notification-channels", "engineer", body=lambda w: {**CHANNEL, "name": "another"}),
    Route("GET", "/api/v1/notification-channels/{channel_id}", "viewer", id_source=_channel),
    Route(
        "PATCH",
        "/api/v1/notification-channels/{channel_id}",
        "engineer",
        body=lambda w: {"enabled": False},
        id_source=_channel,
    ),
    Route("DELETE", "/api/v1/notification-channels/{channel_id}", "engineer", id_source=_channel),
    Route("POST", "/api/v1/notification-channels/{channel_id}/test", "engineer", id_source=_channel),
    Route("GET", "/api/v1/notifications", "viewer"),
    Route("GET", "/api/v1/console-agents", "viewer"),
    Route("GET", "/api/v1/fleet/coverage", "viewer"),
    Route("GET", "/api/v1/console-agents/{agent_id}", "viewer", id_source=lambda w: w.ids["agent_id"]),
    Route(
        "PUT",
        "/api/v1/console-agents/{agent_id}/match",
        "engineer",
        body=lambda w: {"endpoint_id": w.ids["endpoint_id"]},
        id_source=lambda w: w.ids["agent_id"],
    ),
    Route(
        "DELETE", "/api/v1/console-agents/{agent_id}/match", "engineer", id_source=lambda w: w.ids["agent_id"]
    ),
]


def usage_profile_body(w: World, name: str = "Vendor report") -> dict[str, Any]:
    return {
        "name": name,
        "psa_connection_id": w.psa["id"],
        "customer_column": "Customer",
        "product_column": "SKU",
        "quantity_column": "Seats",
    }


USAGE_REPORT = "Customer,SKU,Seats\nContoso Ltd,Kaspersky Endpoint Security,3\n"
_profile: Callable[[World], str] = lambda w: w.ids["usage_profile_id"]  # noqa: E731
_upload: Callable[[World], str] = lambda w: w.ids["usage_upload_id"]  # noqa: E731
ROUTES += [
    Route("GET", "/api/v1/billing/usage-profiles", "viewer"),
    Route(
        "POST", "/api/v1/billing/usage-profiles", "engineer", body=lambda w: usage_profile_body(w, "Another")
    ),
    Route("GET", "/api/v1/billing/usage-profiles/{profile_id}", "viewer", id_source=_profile),
    Route(
        "PUT",
        "/api/v1/billing/usage-profiles/{profile_id}",
        "engineer",
        body=lambda w: usage_profile_body(w, "Renamed"),
        id_source=_profile,
    ),
    Route("DELETE", "/api/v1/billing/usage-profiles/{profile_id}", "engineer", id_source=_profile),
    Route(
        "POST",
        "/api/v1/billing/usage-uploads",
        "engineer",
        query=lambda w: {"period": "2026-10", "profile": w.ids["usage_profile_id"]},
        content=lambda w: USAGE_REPORT,
    ),
    Route("GET", "/api/v1/billing/usage-uploads", "viewer", query=lambda w: {"period": "2026-10"}),
    Route("GET", "/api/v1/billing/usage-uploads/{upload_id}", "viewer", id_source=_upload),
    Route("DELETE", "/api/v1/billing/usage-uploads/{upload_id}", "engineer", id_source=_upload),
]
_override: Callable[[World], str] = lambda w: f"{w.billing_rule['id']}|100"  # noqa: E731
ROUTES += [
    Route(
        "GET",
        "/api/v1/billing-rules/{rule_id}/price-overrides",
        "viewer",
        id_source=lambda w: str(w.billing_rule["id"]),
    ),
    Route(
        "PUT",
        "/api/v1/billing-rules/{rule_id}/price-overrides/{company_id}",
        "engineer",
        body=lambda w: {"unit_price": "3.95"},
        id_source=_override,
    ),
    Route(
        "DELETE",
        "/api/v1/billing-rules/{rule_id}/price-overrides/{company_id}",
        "engineer",
        id_source=_override,
    ),
]

ROLE_RANK = {"viewer": 0, "engineer": 1, "admin": 2}
ROUTE_IDS = [f"{r.method} {r.template}" for r in ROUTES]


async def _call(client: Any, route: Route, world: World, headers: dict[str, str]) -> Any:
    if route.content is not None:
        return await client.request(
            route.method,
            route.path(world),
            content=route.content(world).encode(),
            params=route.query(world) if route.query else None,
            headers={**headers, "Content-Type": "text/csv"},
        )
    return await client.request(
        route.method,
        route.path(world),
        json=route.body(world) if route.body else None,
        params=route.query(world) if route.query else None,
        headers=headers,
    )


@pytest.fixture
async def acme(client: Any, make_key: Any, services: Services) -> World:
    world = await build_world(client, await make_key("admin", tenant="acme"))
    run = await client.post(
        "/api/v1/sync-runs", json={"connection_id": world.rmm["id"]}, headers=world.headers
    )
    assert run.status_code == 202, run.text
    world.ids["run_id"] = run.json()[0]["id"]
    for path, body, key in (
        ("/api/v1/maintenance-windows", WINDOW, "window_id"),
        ("/api/v1/notification-channels", CHANNEL, "channel_id"),
    ):
        created = await client.post(path, json=body, headers=world.headers)
        assert created.status_code == 201, created.text
        world.ids[key] = created.json()["id"]
    rejected = await client.post(
        "/api/v1/mapping-suggestions/rejections",
        json={"rejections": [rejection_body(world.rmm["id"], world.psa["id"])]},
        headers=world.headers,
    )
    assert rejected.status_code == 200, rejected.text
    world.ids["rejection_id"] = rejected.json()[0]["id"]
    profile = await client.post(
        "/api/v1/billing/usage-profiles", json=usage_profile_body(world), headers=world.headers
    )
    assert profile.status_code == 201, profile.text
    world.ids["usage_profile_id"] = profile.json()["id"]
    uploaded = await client.post(
        "/api/v1/billing/usage-uploads",
        params={"period": "2026-09", "profile": world.ids["usage_profile_id"]},
        content=USAGE_REPORT.encode(),
        headers={**world.headers, "Content-Type": "text/csv"},
    )
    assert uploaded.status_code == 201, uploaded.text
    world.ids["usage_upload_id"] = uploaded.json()["id"]
    async with db.transaction(services.sessions) as session:
        connection = await session.get(Connection, world.rmm["id"])
        assert connection is not None
        endpoint = Endpoint(
            tenant_id=connection.tenant_id,
            rmm_connection_id=connection.id,
            endpoint_id="ep-1",
            client_id="c-1",
            hostname="EP-1-PC",
            health="protected",
            fingerprint="x",
        )
        session.add(endpoint)
        await session.flush()
        world.ids["endpoint_id"] = endpoint.id
        agent = ConsoleAgent(
            tenant_id=connection.tenant_id,
            connection_id=connection.id,
            agent_id="agent-1",
            customer_id="c-1",
            hostname="EP-1-PC",
            endpoint_ref=endpoint.id,
            match_rule="manual",
        )
        session.add(agent)
        session.add(
            AgentMatchOverride(
                tenant_id=connection.tenant_id,
                connection_id=connection.id,
                agent_id="agent-1",
                endpoint_ref=endpoint.id,
            )
        )
        await session.flush()
        world.ids["agent_id"] = agent.id
        session.add(BillingPeriod(tenant_id=connection.tenant_id, period=CLOSED))
        session.add(
            BillingPriceOverride(
                tenant_id=connection.tenant_id,
                rule_id=world.billing_rule["id"],
                company_id="100",
                unit_price=Decimal("3.50"),
            )
        )
        line = BillingSnapshotLine(
            tenant_id=connection.tenant_id,
            period=CLOSED,
            rule_id="r-1",
            company_id="100",
            product="Acme EDR",
            source="endpoint",
            quantity=1,
            unit_price=Decimal("4.50"),
            unit_cost=Decimal("2.00"),
        )
        session.add(line)
        await session.flush()
        world.ids["snapshot_line_id"] = line.id
    return world


def test_every_route_is_in_the_matrix(app: Any) -> None:
    actual = {
        (method.upper(), path)
        for path, operations in app.openapi()["paths"].items()
        if path.startswith("/api/v1")
        for method in operations
    }
    assert actual == {(r.method, r.template) for r in ROUTES}


async def test_every_route_rejects_missing_and_bad_keys(client: Any, acme: World) -> None:
    for route in ROUTES:
        for headers in ({}, {"Authorization": "Bearer ck_000000000000_nope"}, {"Authorization": "Basic x"}):
            response = await _call(client, route, acme, headers)
            assert response.status_code == 401, (route, headers, response.text)
            assert response.headers["www-authenticate"] == "Bearer"


@pytest.mark.parametrize("route", ROUTES, ids=ROUTE_IDS)
async def test_roles_below_the_required_one_get_403(
    client: Any, make_key: Any, acme: World, route: Route
) -> None:
    for role, rank in ROLE_RANK.items():
        if rank >= ROLE_RANK[route.role]:
            continue
        response = await _call(client, route, acme, await make_key(role, tenant="acme"))
        assert response.status_code == 403, (role, response.text)


@pytest.mark.parametrize("route", ROUTES, ids=ROUTE_IDS)
async def test_the_required_role_is_enough(client: Any, make_key: Any, acme: World, route: Route) -> None:
    response = await _call(client, route, acme, await make_key(route.role, tenant="acme"))
    assert response.status_code in route.answers, response.text


@pytest.mark.parametrize(
    "route", [r for r in ROUTES if "{" in r.template and r.owned_id], ids=lambda r: f"{r.method} {r.template}"
)
async def test_another_tenants_ids_are_404(client: Any, make_key: Any, acme: World, route: Route) -> None:
    globex = await make_key("admin", tenant="globex")
    response = await _call(client, route, acme, globex)
    assert response.status_code == 404, response.text
    # and nothing of acme's changed
    for path in (f"/api/v1/connections/{acme.rmm['id']}", f"/api/v1/client-mappings/{acme.mapping['id']}"):
        still = await client.get(path, headers=acme.headers)
        assert still.status_code == 200
    assert (await client.get(f"/api/v1/connections/{acme.rmm['id']}", headers=acme.headers)).json()[
        "name"
    ] == ("Automate")


async def test_lists_show_only_the_callers_tenant(client: Any, make_key: Any, acme: World) -> None:
    globex = await make_key("admin", tenant="globex")
    for path in (
        "/api/v1/connections",
        "/api/v1/client-mappings",
        "/api/v1/ticket-rules",
        "/api/v1/billing-rules",
        "/api/v1/deploy-rules",
    ):
        assert (await client.get(path, headers=globex)).json() == []
        assert len((await client.get(path, headers=acme.headers)).json()) >= 1
    globex_keys = (await client.get("/api/v1/api-keys", headers=globex)).json()
    assert {k["id"] for k in globex_keys}.isdisjoint({acme.ids["key_id"]})


async def test_references_to_another_tenants_connections_are_refused(
    client: Any, make_key: Any, acme: World
) -> None:
    globex = await make_key("admin", tenant="globex")
    own_psa = (await client.post("/api/v1/connections", json=psa_body(), headers=globex)).json()
    cases = [
        ("/api/v1/client-mappings", mapping_body(acme.rmm["id"], own_psa["id"]), "rmm_connection_id"),
        ("/api/v1/ticket-rules", ticket_rule_body(acme.psa["id"]), "psa_connection_id"),
        ("/api/v1/billing-rules", billing_rule_body(acme.psa["id"]), "psa_connection_id"),
        ("/api/v1/deploy-rules", {"rmm_connection_id": acme.rmm["id"]}, "rmm_connection_id"),
        (
            "/api/v1/mapping-suggestions/rejections",
            {"rejections": [rejection_body(acme.rmm["id"], own_psa["id"])]},
            "rmm_connection_id",
        ),
    ]
    for path, body, field in cases:
        response = await client.post(path, json=body, headers=globex)
        assert response.status_code == 422, response.text
        assert response.json()["errors"][0] == {"field": field, "message": "no such connection"}
    suggestions = await client.get(
        "/api/v1/client-mappings/suggestions",
        params={"rmm_connection_id": acme.rmm["id"], "psa_connection_id": own_psa["id"]},
        headers=globex,
    )
    assert suggestions.status_code == 422


async def test_revoked_key_stops_working(client: Any, make_key: Any, acme: World) -> None:
    viewer = await make_key("viewer", tenant="acme")
    assert (await client.get("/api/v1/connections", headers=viewer)).status_code == 200
    keys = (await client.get("/api/v1/api-keys", headers=acme.headers)).json()
    viewer_id = next(k["id"] for k in keys if k["role"] == "viewer")
    assert (await client.delete(f"/api/v1/api-keys/{viewer_id}", headers=acme.headers)).status_code == 204
    assert (await client.get("/api/v1/connections", headers=viewer)).status_code == 401


async def test_created_key_is_shown_once_and_works(client: Any, acme: World) -> None:
    created = await client.post(
        "/api/v1/api-keys", json={"name": "ops", "role": "engineer"}, headers=acme.headers
    )
    assert created.status_code == 201
    key = created.json()["key"]
    listed = (await client.get("/api/v1/api-keys", headers=acme.headers)).json()
    assert all("key" not in k and "key_hash" not in k for k in listed)
    engineer = {"Authorization": f"Bearer {key}"}
    assert (
        await client.post("/api/v1/connections", json=psa_body("P2"), headers=engineer)
    ).status_code == 201
    assert (await client.get("/api/v1/api-keys", headers=engineer)).status_code == 403
