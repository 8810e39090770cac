"""A billed line edited in the PSA by someone else is seen, reported and never overwritten silently,
on every installed PSA's fake through its real adapter: the push reads each line back first, holds a
changed one for review with both numbers, writes it only once approved (or leaves the PSA's number
when dismissed); a line of the product that connector did not create is left alone until an
approval links connector to it."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from adapters.testing.harness import CLIENT_NAMES, PsaHarness
from connector.infra.context import Services
from connector.models import AuditEvent
from tests.e2e.test_billing_review import _endpoint, _proposals
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

__all__ = ["fleet"]


async def _world(
    harness: PsaHarness,
    client: httpx.AsyncClient,
    services: Services,
    vendors: VendorRouter,
    headers: Headers,
    fleet: tuple[str, FleetFake],
    seats: int,
) -> tuple[Any, str]:
    """A PSA, an RMM with `seats` endpoints of one client mapped to its company, and a billing rule."""
    psa = harness.start(configuration_fields=CONFIGURATION_FIELDS)
    route(vendors, psa)
    host, fake = fleet
    for n in range(seats):
        fake.put(_endpoint(CLIENT_NAMES[0], n))
    psa_row = await _connect_psa(client, headers, psa)
    rmm_row = await _post(
        client,
        headers,
        "/api/v1/connections",
        {"name": "Fleet", "kind": "fleet_rmm", "base_url": f"https://{host}", "credentials": {"token": "t"}},
    )
    await _map_by_suggestion(client, headers, rmm_row["id"], psa_row["id"], expected=1)
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
            **psa.billing_ids.rule_fields(),
        },
    )
    return psa, company_of(psa, CLIENT_NAMES[0])


async def _decide(
    client: httpx.AsyncClient, headers: Headers, period: str, proposal: dict[str, Any], action: str
) -> dict[str, Any]:
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
                    "proposed_quantity": proposal["proposed_quantity"],
                    "action": action,
                    "reason": "checked with the client" if action == "dismiss" else None,
                }
            ],
        },
    )
    [after] = decided["proposals"]
    return dict(after)


@pytest.mark.parametrize("harness", PSAS, ids=kind_of)
async def test_a_line_edited_in_the_psa_waits_for_review_and_is_written_only_once_approved(
    harness: PsaHarness,
    client: httpx.AsyncClient,
    services: Services,
    vendors: VendorRouter,
    make_key: Callable[..., Awaitable[Headers]],
    fleet: tuple[str, FleetFake],
) -> None:
    headers = await make_key("engineer")
    psa, company = await _world(harness, client, services, vendors, headers, fleet, seats=10)
    period = datetime.now(UTC).strftime("%Y-%m")
    first = await _post(client, headers, "/api/v1/billing/push", {"period": period})
    assert first["summary"] in ({"created": 1}, {"updated": 1}), first
    [line] = psa.billing_lines(company)
    assert line.quantity == 10

    # Someone sets the line to 13 in the PSA: the next push sees it and leaves it alone.
    psa.human_set_billing_quantity(company, line.id, 13)
    held = await _post(client, headers, "/api/v1/billing/push", {"period": period})
    assert held["summary"] == {"waiting": 1}, held
    assert (
        "changed in the PSA outside connector: connector wrote 10, the PSA has 13"
        in held["lines"][0]["reason"]
    )
    assert [seen.quantity for seen in psa.billing_lines(company)] == [13]
    [proposal] = await _proposals(client, headers, period)
    assert (
        proposal["psa_finding"],
        proposal["status"],
        proposal["current_quantity"],
        proposal["psa_quantity"],
        proposal["proposed_quantity"],
    ) == ("edited_outside", "held", 13, 13, 10)
    recon = await client.get("/api/v1/billing/reconciliation", params={"period": period}, headers=headers)
    [row] = [r for r in recon.json()["rows"] if r["company_id"] == company]
    assert row["psa_quantity"] == 13
    assert [(c["code"], c["count"]) for c in row["causes"]] == [("psa_quantity_changed", 3)]

    # Approved: connector's count is written back, once, into the same line.
    assert (await _decide(client, headers, period, proposal, "approve"))["write_quantity"] == 10
    approved = await _post(client, headers, "/api/v1/billing/push", {"period": period})
    assert approved["summary"] == {"updated": 1}, approved
    assert [(seen.id, seen.quantity) for seen in psa.billing_lines(company)] == [(line.id, 10)]
    again = await _post(client, headers, "/api/v1/billing/push", {"period": period})
    assert again["summary"] == {"unchanged": 1}, again
    assert await _proposals(client, headers, period) == []
    async with services.sessions() as session:
        decisions = list(
            await session.scalars(select(AuditEvent).where(AuditEvent.kind == "billing_decision.recorded"))
        )
    assert decisions and "approve" in decisions[-1].summary

    # Edited again and this time dismissed: the PSA keeps the number someone put there.
    psa.human_set_billing_quantity(company, line.id, 12)
    await _post(client, headers, "/api/v1/billing/read-back", {"period": period})
    [proposal] = await _proposals(client, headers, period)
    assert (proposal["psa_finding"], proposal["current_quantity"]) == ("edited_outside", 12)
    assert (await _decide(client, headers, period, proposal, "dismiss"))["status"] == "dismissed"
    dismissed = await _post(client, headers, "/api/v1/billing/push", {"period": period})
    assert dismissed["summary"] == {"dismissed": 1}, dismissed
    assert [seen.quantity for seen in psa.billing_lines(company)] == [12]


@pytest.mark.parametrize("harness", PSAS, ids=kind_of)
async def test_a_line_connector_did_not_create_is_left_alone_until_an_approval_links_it(
    harness: PsaHarness,
    client: httpx.AsyncClient,
    services: Services,
    vendors: VendorRouter,
    make_key: Callable[..., Awaitable[Headers]],
    fleet: tuple[str, FleetFake],
) -> None:
    headers = await make_key("engineer")
    psa, company = await _world(harness, client, services, vendors, headers, fleet, seats=10)
    if psa.billing_ids.one_line_per_product:
        pytest.skip(
            f"{harness.spec.kind} holds one line per product: the rule's line is named by its product"
        )
    theirs = psa.human_billing_line(company, 4)
    period = datetime.now(UTC).strftime("%Y-%m")

    held = await _post(client, headers, "/api/v1/billing/push", {"period": period})
    assert held["summary"] == {"waiting": 1}, held
    assert "did not create" in held["lines"][0]["reason"]
    assert [(seen.id, seen.quantity) for seen in psa.billing_lines(company)] == [(theirs, 4)]
    [proposal] = await _proposals(client, headers, period)
    assert (proposal["psa_finding"], proposal["psa_quantity"], proposal["current_quantity"]) == (
        "unlinked",
        4,
        4,
    )

    await _decide(client, headers, period, proposal, "approve")
    linked = await _post(client, headers, "/api/v1/billing/push", {"period": period})
    assert linked["summary"] == {"updated": 1}, linked
    assert linked["lines"][0]["line_id"] == theirs
    assert [(seen.id, seen.quantity) for seen in psa.billing_lines(company)] == [(theirs, 10)]
    again = await _post(client, headers, "/api/v1/billing/push", {"period": period})
    assert again["summary"] == {"unchanged": 1}, again
    assert await _proposals(client, headers, period) == []
