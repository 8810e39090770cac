"""Review before money moves, on every installed PSA's fake through its real adapter: a change
within the tenant's tolerance is written, a larger one waits for approval, an adjustment is written
with its reason recorded, and a failed sync never lowers a line."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from sqlalchemy import delete, select, update

from adapters.base import EndpointStatus
from adapters.errors import AdapterError
from adapters.testing.harness import CLIENT_NAMES, PsaHarness, device_name
from connector.infra import db
from connector.infra.context import Services
from connector.models import AuditEvent, UsageDaily
from tests.e2e import test_billing as billing
from tests.e2e.stack import Stack
from tests.e2e.test_billing import stack as billing_stack
from tests.e2e.test_vendor_matrix import (
    CONFIGURATION_FIELDS,
    PSAS,
    Headers,
    _connect_psa,
    _map_by_suggestion,
    _post,
    _sync,
    company_of,
    fleet,
    kind_of,
    route,
)
from tests.support.fleet_rmm import FleetFake
from tests.support.vendors import VendorRouter

__all__ = ["billing_stack", "fleet"]  # fixtures shared with the billing and vendor matrix tests


def _endpoint(client_name: str, n: int) -> EndpointStatus:
    now = datetime.now(UTC)
    return EndpointStatus(
        endpoint_id=f"ep-{n}",
        client_id="c-acme",
        client_name=client_name,
        hostname=device_name(client_name, n),
        product="Acme EDR",
        protection_enabled=True,
        definitions_date=now,
        last_scan_at=now,
        active_threats=0,
        online=True,
        last_seen_at=now,
    )


async def _proposals(client: httpx.AsyncClient, headers: Headers, period: str) -> list[dict[str, Any]]:
    response = await client.get("/api/v1/billing/proposals", params={"period": period}, headers=headers)
    assert response.status_code == 200, response.text
    proposals: list[dict[str, Any]] = response.json()["proposals"]
    return proposals


@pytest.mark.parametrize("harness", PSAS, ids=kind_of)
async def test_tolerance_approval_adjustment_and_the_failed_sync_guard(
    harness: PsaHarness,
    client: httpx.AsyncClient,
    services: Services,
    vendors: VendorRouter,
    make_key: Callable[..., Awaitable[Headers]],
    fleet: tuple[str, FleetFake],
) -> None:
    headers = await make_key("engineer")
    psa = harness.start(configuration_fields=CONFIGURATION_FIELDS)
    route(vendors, psa)
    host, fake = fleet
    client_name = CLIENT_NAMES[0]
    for n in range(10):
        fake.put(_endpoint(client_name, n))
    psa_row = await _connect_psa(client, headers, psa)
    rmm_row = await _post(
        client,
        headers,
        "/api/v1/connections",
        {"name": "Fleet", "kind": "fleet_rmm", "base_url": f"https://{host}", "credentials": {"token": "t"}},
    )
    await _map_by_suggestion(client, headers, rmm_row["id"], psa_row["id"], expected=1)
    company = company_of(psa, client_name)
    assert (await _sync(client, headers, services, rmm_row["id"]))["status"] == "succeeded"
    await _post(
        client,
        headers,
        "/api/v1/billing-rules",
        {
            "psa_connection_id": psa_row["id"],
            "product": "acme edr",
            "count_scope": "installed",
            "count_method": "end_of_period",
            "unit_price": "6.00",
            "cost_tiers": [{"min_seats": 1, "unit_cost": "2.50"}],
            **psa.billing_ids.rule_fields(),
        },
    )
    settings = (await client.get("/api/v1/billing/review-settings", headers=headers)).json()
    assert settings["tolerance_seats"] == 2 and settings["max_drop_percent"] == "50"
    period = datetime.now(UTC).strftime("%Y-%m")
    first = await _post(client, headers, "/api/v1/billing/push", {"period": period})
    assert first["summary"] in ({"created": 1}, {"updated": 1}), first
    assert [line.quantity for line in psa.billing_lines(company)] == [10]

    # +1 seat: within the tolerance, written on its own.
    fake.put(_endpoint(client_name, 10))
    await _sync(client, headers, services, rmm_row["id"])
    [proposal] = await _proposals(client, headers, period)
    assert proposal["status"] == "auto_approved" and proposal["difference"] == 1
    assert (await _post(client, headers, "/api/v1/billing/push", {"period": period}))["summary"] == {
        "updated": 1
    }
    assert [line.quantity for line in psa.billing_lines(company)] == [11]

    # +5 seats: beyond it, the line waits for approval and the PSA keeps 11.
    for n in range(11, 16):
        fake.put(_endpoint(client_name, n))
    await _sync(client, headers, services, rmm_row["id"])
    waiting = await _post(client, headers, "/api/v1/billing/push", {"period": period})
    assert waiting["summary"] == {"waiting": 1}, waiting
    assert "awaiting_review" in (waiting["lines"][0]["reason"] or "")
    assert [line.quantity for line in psa.billing_lines(company)] == [11]
    [proposal] = await _proposals(client, headers, period)
    assert (proposal["current_quantity"], proposal["proposed_quantity"], proposal["status"]) == (
        11,
        16,
        "awaiting_review",
    )

    # Adjusted to 14 with a reason: written as 14, the reason in the audit trail.
    decided = await _post(
        client,
        headers,
        "/api/v1/billing/decisions",
        {
            "period": period,
            "decisions": [
                {
                    "rule_id": proposal["rule_id"],
                    "company_id": proposal["company_id"],
                    "proposed_quantity": 16,
                    "action": "adjust",
                    "quantity": 14,
                    "reason": "two are lab machines",
                }
            ],
        },
    )
    [after] = decided["proposals"]
    assert after["status"] == "adjusted" and after["write_quantity"] == 14
    assert after["decision"]["reason"] == "two are lab machines"
    pushed = await _post(client, headers, "/api/v1/billing/push", {"period": period})
    assert pushed["summary"] == {"updated": 1}, pushed
    assert [line.quantity for line in psa.billing_lines(company)] == [14]
    again = await _post(client, headers, "/api/v1/billing/push", {"period": period})
    assert again["summary"] == {"unchanged": 1}, again
    async with services.sessions() as session:
        written = list(
            await session.scalars(
                select(AuditEvent).where(AuditEvent.kind == "billing_line.written").order_by(AuditEvent.seq)
            )
        )
        kinds = set(await session.scalars(select(AuditEvent.kind)))
    assert written[-1].after is not None and written[-1].after["quantity"] == 14
    assert written[-1].after["reason"] == "two are lab machines"
    assert "billing_decision.recorded" in kinds

    # A failed sync and a lower count: held, the PSA keeps 14.
    fake.failure, fake.fail_on_page = AdapterError("the RMM is down"), 1
    assert (await _sync(client, headers, services, rmm_row["id"]))["status"] == "failed"
    async with db.transaction(services.sessions) as session:
        await session.execute(
            update(UsageDaily)
            .where(UsageDaily.rmm_connection_id == rmm_row["id"])
            .values(last_installed=12, peak_installed=12)
        )
    [held] = await _proposals(client, headers, period)
    assert held["status"] == "held" and "failed" in held["reason"], held
    blocked = await _post(client, headers, "/api/v1/billing/push", {"period": period})
    assert blocked["summary"] == {"waiting": 1}, blocked
    assert [line.quantity for line in psa.billing_lines(company)] == [14]


async def test_settings_and_decisions_are_validated_naming_the_field(
    client: httpx.AsyncClient, make_key: Callable[..., Awaitable[Headers]]
) -> None:
    engineer, viewer = await make_key("engineer"), await make_key("viewer")
    bad = await client.put(
        "/api/v1/billing/review-settings", json={"max_drop_percent": 120}, headers=engineer
    )
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "max_drop_percent"
    denied = await client.put("/api/v1/billing/review-settings", json={}, headers=viewer)
    assert denied.status_code == 403
    saved = await client.put(
        "/api/v1/billing/review-settings",
        json={"tolerance_seats": 3, "tolerance_percent": 10},
        headers=engineer,
    )
    assert saved.status_code == 200 and saved.json()["tolerance_seats"] == 3
    assert (await client.get("/api/v1/billing/review-settings", headers=viewer)).json()[
        "tolerance_percent"
    ] == "10"
    decision = {"rule_id": "r", "company_id": "c", "proposed_quantity": 3, "action": "adjust", "quantity": 2}
    body = {"period": "2026-10", "decisions": [decision]}
    missing = await client.post("/api/v1/billing/decisions", json=body, headers=engineer)
    assert missing.status_code == 422 and missing.json()["errors"][0]["field"] == "decisions.0.reason"
    decision.update(action="approve", quantity=None)
    unknown = await client.post("/api/v1/billing/decisions", json=body, headers=engineer)
    assert unknown.status_code == 422 and unknown.json()["errors"][0]["field"] == "decisions[0].company_id"


async def test_a_line_whose_usage_vanished_is_held_at_zero_not_written(billing_stack: Stack) -> None:
    stack = billing_stack
    await billing.record_usage(stack, "c-0", [10])
    assert (await billing.push(stack))[1]["summary"] == {"created": 1}
    async with db.transaction(stack.services.sessions) as session:
        await session.execute(delete(UsageDaily))
    [proposal] = await _proposals(stack.client, stack.headers, billing.PERIOD)
    assert (proposal["current_quantity"], proposal["proposed_quantity"]) == (10, 0)
    assert (proposal["status"], proposal["reason"]) == ("held", "would go to zero")
    _, body = await billing.push(stack)
    assert body["summary"] == {"waiting": 1}, body
    assert [a["quantity"] for a in billing.additions(stack, 0)] == [10]
