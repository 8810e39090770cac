"""Billing models end to end: rules per device category with included seats, a minimum and a
company's own price, and a prorated rule — previewed over HTTP, then pushed through the real
ConnectWise Manage adapter into its stateful fake."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from connector.infra import db
from connector.infra.context import Services
from connector.models import AuditEvent, Connection, UsageDaily
from tests.e2e.stack import Stack, build_stack
from tests.e2e.test_billing_reconciliation import ACME, CLIENT_IDS, status
from tests.e2e.test_vendor_matrix import _sync
from tests.support.fleet_rmm import FLEETS, FleetFake
from tests.support.vendors import VendorRouter

PERIOD = "2026-10"


def rule_body(stack: Stack, **fields: Any) -> dict[str, Any]:
    return {
        "psa_connection_id": stack.psa["id"],
        "product": "acme edr",
        "count_scope": "installed",
        "agreement_type": "Managed Services",
        "psa_product_id": "EDR-SEAT",
        "cost_tiers": [{"min_seats": 1, "unit_cost": "2.10"}],
        **fields,
    }


async def create_rule(stack: Stack, **fields: Any) -> dict[str, Any]:
    response = await stack.client.post(
        "/api/v1/billing-rules", json=rule_body(stack, **fields), headers=stack.headers
    )
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


@pytest.fixture
async def stack(
    client: httpx.AsyncClient,
    services: Services,
    vendors: VendorRouter,
    make_key: Callable[..., Awaitable[dict[str, str]]],
) -> Stack:
    built = await build_stack(client, services, vendors, await make_key("engineer"), map_clients=())
    await built.map_client("c-0", built.seed.company_ids[0])
    await built.map_client("c-1", built.seed.company_ids[1])
    return built


async def record_usage(
    stack: Stack,
    client_id: str,
    category: str,
    counts: list[int],
    product: str = "Acme EDR 12",
    month: str = PERIOD,
) -> None:
    async with db.transaction(stack.services.sessions) as session:
        connection = await session.get(Connection, stack.rmm["id"])
        assert connection is not None
        for day, count in enumerate(counts, start=1):
            session.add(
                UsageDaily(
                    tenant_id=connection.tenant_id,
                    rmm_connection_id=stack.rmm["id"],
                    client_id=client_id,
                    product=product,
                    category=category,
                    day=f"{month}-{day:02d}",
                    peak_installed=count,
                    last_installed=count,
                    peak_protected=count,
                    last_protected=count,
                )
            )


async def test_modelled_quantities_and_prices_are_previewed_and_pushed(stack: Stack) -> None:
    first, second = (str(stack.seed.company_ids[i]) for i in (0, 1))
    servers = await create_rule(
        stack,
        device_category="server",
        unit_price="12.00",
        psa_product_id="AV-SEAT",
        description="EDR – servers",
        included_seats=1,
    )
    workstations = await create_rule(
        stack,
        device_category="workstation",
        unit_price="4.50",
        description="EDR – workstations",
        included_seats=5,
        minimum_quantity=10,
    )
    backup = await create_rule(
        stack,
        product="acme backup",
        unit_price="3.00",
        billing_timing="prorated",
        description="Backup",
        psa_product_id="AV-SEAT",  # Manage matches an agreement addition by its product
    )
    override = await stack.client.put(
        f"/api/v1/billing-rules/{workstations['id']}/price-overrides/{first}",
        json={"unit_price": "4.00"},
        headers=stack.headers,
    )
    assert override.status_code == 200, override.text
    await record_usage(stack, "c-0", "workstation", [18, 20])
    await record_usage(stack, "c-0", "server", [3, 3])
    await record_usage(stack, "c-1", "workstation", [8])
    await record_usage(stack, "c-1", "other", [2])  # billed by neither category rule
    await record_usage(stack, "c-1", "workstation", [10] * 15, product="Acme Backup")

    response = await stack.client.get(
        "/api/v1/billing/preview", params={"period": PERIOD}, headers=stack.headers
    )
    assert response.status_code == 200, response.text
    lines = {(line["rule_id"], line["company_id"]): line for line in response.json()["lines"]}
    assert set(lines) == {
        (servers["id"], first),
        (workstations["id"], first),
        (workstations["id"], second),
        (backup["id"], second),
    }
    server_line = lines[(servers["id"], first)]
    assert (server_line["quantity"], server_line["counted_seats"], server_line["device_category"]) == (
        2,
        3,
        "server",
    )
    assert (server_line["total"], server_line["cost"], server_line["margin"]) == ("24.00", "4.20", "19.80")
    overridden = lines[(workstations["id"], first)]
    assert (overridden["quantity"], overridden["unit_price"], overridden["price_override"]) == (
        15,
        "4.0000",
        True,
    )
    assert overridden["margin"] == "28.50"  # 60.00 − 15 × 2.10
    minimum = lines[(workstations["id"], second)]
    assert (minimum["quantity"], minimum["counted_seats"], minimum["minimum_quantity"]) == (10, 8, 10)
    assert (Decimal(minimum["unit_price"]), minimum["price_override"]) == (Decimal("4.50"), False)
    prorated = lines[(backup["id"], second)]
    assert prorated["billing_timing"] == "prorated"
    assert prorated["billed_quantity"] == "4.84"  # 150 seat-days / 31 days
    assert (prorated["total"], prorated["cost"], prorated["margin"]) == ("14.52", "10.16", "4.36")

    pushed = await stack.client.post("/api/v1/billing/push", json={"period": PERIOD}, headers=stack.headers)
    assert pushed.status_code == 200, pushed.text
    assert pushed.json()["summary"] == {"created": 4}
    assert sorted(line["billed_quantity"] for line in pushed.json()["lines"]) == ["10", "15", "2", "4.84"]

    def written(company_index: int) -> dict[str, tuple[Decimal, Decimal]]:
        agreement_id = stack.seed.agreement_ids[stack.seed.company_ids[company_index]]
        return {
            str(a["description"]).split(" [")[0]: (Decimal(str(a["quantity"])), Decimal(str(a["unitPrice"])))
            for a in stack.manage.additions_for(agreement_id)
        }

    assert written(0) == {
        "EDR – servers": (Decimal(2), Decimal("12.00")),
        "EDR – workstations": (Decimal(15), Decimal("4.00")),
    }
    assert written(1) == {
        "EDR – workstations": (Decimal(10), Decimal("4.50")),
        "Backup": (Decimal("4.84"), Decimal("3.00")),
    }

    again = await stack.client.post("/api/v1/billing/push", json={"period": PERIOD}, headers=stack.headers)
    assert again.json()["summary"] == {"unchanged": 4}  # the prorated quantity was recorded exactly

    closed = await stack.client.post(f"/api/v1/billing/periods/{PERIOD}/close", headers=stack.headers)
    assert closed.status_code == 200, closed.text
    frozen = await stack.client.get(f"/api/v1/billing/periods/{PERIOD}/lines", headers=stack.headers)
    assert frozen.status_code == 200, frozen.text
    by_rule = {(line["rule_id"], line["company_id"]): line for line in frozen.json()}
    assert (by_rule[(backup["id"], second)]["billed_quantity"], by_rule[(backup["id"], second)]["total"]) == (
        "4.84",
        "14.52",
    )
    assert by_rule[(servers["id"], first)]["devices"] == 0  # usage written directly: no endpoints behind it


async def test_a_rule_billed_in_arrears_writes_the_previous_months_count(stack: Stack) -> None:
    rule = await create_rule(stack, unit_price="4.50", billing_timing="arrears")
    await record_usage(stack, "c-0", "workstation", [7, 9], month="2026-09")
    await record_usage(stack, "c-0", "workstation", [30])

    response = await stack.client.get(
        "/api/v1/billing/preview", params={"period": PERIOD}, headers=stack.headers
    )
    [line] = response.json()["lines"]
    assert (line["rule_id"], line["quantity"], line["billing_timing"], line["total"]) == (
        rule["id"],
        9,
        "arrears",
        "40.50",
    )
    pushed = await stack.client.post("/api/v1/billing/push", json={"period": PERIOD}, headers=stack.headers)
    assert pushed.json()["summary"] == {"created": 1}, pushed.text
    [addition] = stack.manage.additions_for(stack.seed.agreement_ids[stack.seed.company_ids[0]])
    assert addition["quantity"] == 9


async def test_rule_fields_and_overrides_are_validated_naming_the_field(stack: Stack) -> None:
    for fields, name in (
        ({"device_category": "laptop"}, "device_category"),
        ({"included_seats": -1}, "included_seats"),
        ({"minimum_quantity": "3"}, "minimum_quantity"),
        ({"billing_timing": "advance"}, "billing_timing"),
        ({"count_scope": "console_seats", "device_category": "server"}, "device_category"),
    ):
        response = await stack.client.post(
            "/api/v1/billing-rules", json=rule_body(stack, unit_price="1.00", **fields), headers=stack.headers
        )
        assert response.status_code == 422, (fields, response.text)
        assert name in response.text, (fields, response.text)
    rule = await create_rule(stack, unit_price="1.00")
    duplicate = await stack.client.post(
        "/api/v1/billing-rules", json=rule_body(stack, unit_price="2.00"), headers=stack.headers
    )
    assert duplicate.status_code == 422, duplicate.text
    await create_rule(stack, unit_price="2.00", device_category="server")  # another category is another rule

    url = f"/api/v1/billing-rules/{rule['id']}/price-overrides"
    for body in ({"unit_price": "-1"}, {"unit_price": "1.23456"}, {"price": "1"}, {}):
        bad = await stack.client.put(f"{url}/19", json=body, headers=stack.headers)
        assert bad.status_code == 422, (body, bad.text)
        assert "unit_price" in bad.text or "price" in bad.text
    assert (
        await stack.client.put(f"{url}/19", json={"unit_price": "0.90"}, headers=stack.headers)
    ).status_code == 200
    listed = await stack.client.get(url, headers=stack.headers)
    assert [(o["company_id"], o["unit_price"]) for o in listed.json()] == [("19", "0.9000")]
    assert (await stack.client.delete(f"{url}/19", headers=stack.headers)).status_code == 204
    assert (await stack.client.delete(f"{url}/19", headers=stack.headers)).status_code == 404
    async with stack.services.sessions() as session:
        kinds = set(await session.scalars(select(AuditEvent.kind)))
    assert "billing_price_override.created" in kinds and "billing_price_override.deleted" in kinds


@pytest.fixture
def fleet() -> Iterator[tuple[str, FleetFake]]:
    fake = FleetFake(page_size=50)
    host = f"fleet-{uuid.uuid4().hex[:8]}.example.com"
    FLEETS[host] = fake
    yield host, fake
    FLEETS.pop(host, None)


async def test_a_sync_records_usage_per_device_category(
    client: httpx.AsyncClient,
    services: Services,
    make_key: Callable[..., Awaitable[dict[str, str]]],
    fleet: tuple[str, FleetFake],
) -> None:
    headers = await make_key("engineer")
    host, rmm = fleet
    kinds = [
        ("server", "Windows 11 Pro"),
        (None, "Windows Server 2022"),
        (None, "Windows 10 Pro"),
        ("laptop", None),
    ]
    kinds += [(None, "Android 14")]
    for n, (device_type, os_name) in enumerate(kinds):
        rmm.put(
            status(ACME, n, "Acme EDR 12").model_copy(update={"device_type": device_type, "os_name": os_name})
        )
    connection = await client.post(
        "/api/v1/connections",
        json={
            "name": "Fleet",
            "kind": "fleet_rmm",
            "base_url": f"https://{host}",
            "credentials": {"token": "t"},
        },
        headers=headers,
    )
    assert connection.status_code == 201, connection.text
    rmm_id = connection.json()["id"]
    today = datetime.now(UTC).date().isoformat()
    async with db.transaction(services.sessions) as session:  # today's count from before categories
        tenant_id = (await session.get(Connection, rmm_id)).tenant_id  # type: ignore[union-attr]
        session.add(
            UsageDaily(
                tenant_id=tenant_id,
                rmm_connection_id=rmm_id,
                client_id=CLIENT_IDS[ACME],
                product="Acme EDR 12",
                day=today,
                peak_installed=9,
                last_installed=9,
                peak_protected=9,
                last_protected=9,
            )
        )

    assert (await _sync(client, headers, services, rmm_id))["status"] == "succeeded"

    async with services.sessions() as session:
        rows = {
            row.category: (row.peak_installed, row.last_installed)
            for row in await session.scalars(select(UsageDaily).where(UsageDaily.rmm_connection_id == rmm_id))
        }
    # The RMM's type first (a "server" running Windows 11 is a server), then the OS name.
    assert rows == {"server": (2, 2), "workstation": (2, 2), "other": (1, 1), "": (9, 0)}
