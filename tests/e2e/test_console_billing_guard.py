"""A console-counted billing line is guarded by its console's sync state: after a failed console
sync, a lower seat count is held for review (the data may be partial) instead of being written, on
every installed console's fake with a PSA fake, through the real adapters; once the console reads
completely again, the same change is written on its own."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

import httpx
import pytest
from sqlalchemy import update

from adapters.testing.harness import CLIENT_NAMES, SecurityHarness, SecurityOperation
from connector.infra import db
from connector.infra.context import Services
from connector.models import LicenceDaily
from tests.e2e.test_billing_review import _proposals
from tests.e2e.test_security_consoles import CONSOLES
from tests.e2e.test_vendor_matrix import (
    CONFIGURATION_FIELDS,
    PSAS,
    Headers,
    _connect,
    _connect_psa,
    _map_by_suggestion,
    _post,
    _sync,
    company_of,
    kind_of,
    route,
)
from tests.support.vendors import VendorRouter

CLIENT = CLIENT_NAMES[0]
SEATS = 8


@pytest.mark.skipif(not PSAS, reason="needs a PSA harness")
@pytest.mark.parametrize("harness", CONSOLES, ids=kind_of)
async def test_a_failed_console_sync_never_lowers_a_console_counted_line(
    harness: SecurityHarness,
    client: httpx.AsyncClient,
    services: Services,
    vendors: VendorRouter,
    make_key: Callable[..., Awaitable[Headers]],
) -> None:
    headers = await make_key("engineer")
    console = harness.start(customers=[CLIENT], agents_per_customer=SEATS)
    [customer] = console.customers
    console.set_licences(customer, SEATS, 20)
    psa = PSAS[0].start(companies=[CLIENT], devices_per_company=1, configuration_fields=CONFIGURATION_FIELDS)
    route(vendors, psa)
    route(vendors, console)
    psa_row = await _connect_psa(client, headers, psa)
    console_row = await _connect(client, headers, console)
    await _map_by_suggestion(client, headers, console_row["id"], psa_row["id"], expected=1)
    assert (await _sync(client, headers, services, console_row["id"]))["status"] == "succeeded"
    await _post(
        client,
        headers,
        "/api/v1/billing-rules",
        {
            "psa_connection_id": psa_row["id"],
            "product": console.licence_product,
            "count_scope": "console_seats",
            "count_method": "end_of_period",
            "unit_price": "4.00",
            **psa.billing_ids.rule_fields(),
        },
    )
    period = datetime.now(UTC).strftime("%Y-%m")
    first = await _post(client, headers, "/api/v1/billing/push", {"period": period})
    assert first["summary"] in ({"created": 1}, {"updated": 1}), first
    company = company_of(psa, CLIENT)
    assert [line.quantity for line in psa.billing_lines(company)] == [SEATS]

    # The console fails mid-sync; its seat count reads one lower (a partial read, or a real drop).
    console.fail_next(SecurityOperation.LIST_AGENTS, 500, times=None)
    assert (await _sync(client, headers, services, console_row["id"]))["status"] == "failed"
    async with db.transaction(services.sessions) as session:
        await session.execute(
            update(LicenceDaily)
            .where(LicenceDaily.connection_id == console_row["id"])
            .values(last_used=SEATS - 1, peak_used=SEATS - 1)
        )
    [held] = await _proposals(client, headers, period)
    assert held["status"] == "held" and "failed" in held["reason"], held
    assert console_row["name"] in held["reason"]
    blocked = await _post(client, headers, "/api/v1/billing/push", {"period": period})
    assert blocked["summary"] == {"waiting": 1}, blocked
    assert [line.quantity for line in psa.billing_lines(company)] == [SEATS]

    # The console reads completely again and still counts one lower: within the tolerance, written.
    console.clear_faults()
    console.set_licences(customer, SEATS - 1, 20)
    assert (await _sync(client, headers, services, console_row["id"]))["status"] == "succeeded"
    [proposal] = await _proposals(client, headers, period)
    assert proposal["status"] == "auto_approved", proposal
    written = await _post(client, headers, "/api/v1/billing/push", {"period": period})
    assert written["summary"] == {"updated": 1}, written
    assert [line.quantity for line in psa.billing_lines(company)] == [SEATS - 1]
