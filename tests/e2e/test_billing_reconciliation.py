"""Reconciliation end to end on a seeded world with each cause present exactly once: an RMM (the fleet
fake), a security console and a PSA through their real adapters, over HTTP as JSON, CSV and the
dashboard page.

- Acme: 6 endpoints with the product (one added after the push), one without a product, 5 console
  agents on its devices and one agent the RMM does not know; the PSA line says 5 → a device without
  the product, an agent without a device, a quantity changed since the push.
- Blue Harbor: mapped after the push, 3 endpoints → no agreement line (new revenue).
- Cedar: billed 2 at the push, its devices since gone from the RMM → a retired client still billed.
- Zephyr: an RMM client with 2 endpoints and no mapping → unmapped.
"""

from __future__ import annotations

import csv
import io
import uuid
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import update

from adapters.base import EndpointStatus
from adapters.registry import discover
from adapters.testing.harness import device_mac, device_name, device_serial, installed_security_harnesses
from connector.infra import db
from connector.infra.context import Services
from connector.models import SyncCursor
from tests.browser.test_dashboard_http import plaintext, sign_in
from tests.e2e.test_vendor_matrix import (
    CONFIGURATION_FIELDS,
    PSAS,
    _connect,
    _connect_psa,
    _post,
    _sync,
    company_of,
    route,
)
from tests.support.fleet_rmm import FLEETS, FleetFake
from tests.support.vendors import VendorRouter

Headers = dict[str, str]
CONSOLES = installed_security_harnesses(discover().all())
ACME, BLUE, CEDAR, ZEPHYR = "Acme Dental", "Blue Harbor Logistics", "Cedar Law Group", "Zephyr Unmapped"
CLIENT_IDS = {ACME: "c-acme", BLUE: "c-blue", CEDAR: "c-cedar", ZEPHYR: "c-zephyr"}


def status(client: str, n: int, product: str | None) -> EndpointStatus:
    now = datetime.now(UTC)
    hostname = device_name(client, n)
    return EndpointStatus(
        endpoint_id=f"{CLIENT_IDS[client]}-{n}",
        client_id=CLIENT_IDS[client],
        client_name=client,
        hostname=hostname,
        serial_number=device_serial(hostname),
        mac_addresses=[device_mac(hostname)],
        product=product,
        protection_enabled=product is not None,
        definitions_date=now - timedelta(hours=6),
        last_scan_at=now - timedelta(days=1),
        active_threats=0,
        online=True,
        last_seen_at=now - timedelta(minutes=5),
    )


@pytest.fixture
def fleet() -> Iterator[tuple[str, FleetFake]]:
    fake = FleetFake(page_size=50)
    host = f"fleet-{uuid.uuid4().hex[:8]}.example.com"
    FLEETS[host] = fake
    yield host, fake
    FLEETS.pop(host, None)


async def map_client(
    client: httpx.AsyncClient, headers: Headers, source_id: str, psa_id: str, client_id: str, company: str
) -> None:
    await _post(
        client,
        headers,
        "/api/v1/client-mappings",
        {
            "rmm_connection_id": source_id,
            "rmm_client_id": client_id,
            "psa_connection_id": psa_id,
            "psa_company_id": company,
        },
    )


@pytest.mark.skipif(not CONSOLES or not PSAS, reason="needs a security console and a PSA harness")
async def test_each_cause_is_found_once_from_the_device_lists(
    client: httpx.AsyncClient,
    services: Services,
    vendors: VendorRouter,
    make_key: Callable[..., Awaitable[Headers]],
    fleet: tuple[str, FleetFake],
) -> None:
    headers = await make_key("engineer")
    host, rmm = fleet
    console = CONSOLES[0].start(customers=[ACME], agents_per_customer=5)
    product = console.licence_product
    [customer] = console.customers
    rogue = console.add_agent(customer, "ROGUE-LAPTOP-1")
    console.set_licences(customer, 6, 10)
    psa = PSAS[0].start(
        companies=[ACME, BLUE, CEDAR], devices_per_company=1, configuration_fields=CONFIGURATION_FIELDS
    )
    route(vendors, psa)
    route(vendors, console)
    for n in range(5):
        rmm.put(status(ACME, n, product))
    rmm.put(status(ACME, 5, None))
    for n in range(2):
        rmm.put(status(CEDAR, n, product))
        rmm.put(status(ZEPHYR, n, product))

    psa_row = await _connect_psa(client, headers, psa)
    rmm_row = await _post(
        client,
        headers,
        "/api/v1/connections",
        {"name": "Fleet", "kind": "fleet_rmm", "base_url": f"https://{host}", "credentials": {"token": "t"}},
    )
    console_row = await _connect(client, headers, console)
    for name in (ACME, CEDAR):
        await map_client(
            client, headers, rmm_row["id"], psa_row["id"], CLIENT_IDS[name], company_of(psa, name)
        )
    await map_client(client, headers, console_row["id"], psa_row["id"], customer, company_of(psa, ACME))
    assert (await _sync(client, headers, services, rmm_row["id"]))["status"] == "succeeded"
    assert (await _sync(client, headers, services, console_row["id"]))["status"] == "succeeded"
    await _post(
        client,
        headers,
        "/api/v1/billing-rules",
        {
            "psa_connection_id": psa_row["id"],
            "product": product,
            "count_scope": "installed",
            "count_method": "end_of_period",
            "unit_price": "4.00",
            **psa.billing_ids.rule_fields(),
        },
    )
    period = datetime.now(UTC).strftime("%Y-%m")
    pushed = await _post(client, headers, "/api/v1/billing/push", {"period": period})
    assert sorted(line["quantity"] for line in pushed["lines"]) == [2, 5], pushed
    assert all(line["action"] in ("created", "updated") for line in pushed["lines"]), pushed

    # After the push: Acme grows by one, Blue Harbor arrives, Cedar's devices leave the RMM.
    rmm.put(status(ACME, 6, product))
    for n in range(3):
        rmm.put(status(BLUE, n, product))
    for n in range(2):
        rmm.remove(f"{CLIENT_IDS[CEDAR]}-{n}")
    async with db.transaction(services.sessions) as session:  # the next pass is a full one
        await session.execute(
            update(SyncCursor).where(SyncCursor.connection_id == rmm_row["id"]).values(last_full_at=None)
        )
    after = await _sync(client, headers, services, rmm_row["id"])
    assert after["status"] == "succeeded" and after["endpoints_retired"] == 2, after
    await map_client(client, headers, rmm_row["id"], psa_row["id"], CLIENT_IDS[BLUE], company_of(psa, BLUE))

    response = await client.get("/api/v1/billing/reconciliation", params={"period": period}, headers=headers)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    rows = {row["company_id"]: row for row in body["rows"]}
    assert body["causes"] == {
        "agreement_line_missing": 1,
        "console_agent_without_rmm_device": 1,
        "psa_quantity_changed": 1,
        "retired_client_billed": 1,
        "rmm_device_without_product": 1,
        "unmapped_client": 1,
    }, body
    endpoints = (await client.get("/api/v1/endpoints", params={"limit": "500"}, headers=headers)).json()
    bare = next(e["id"] for e in endpoints if e["hostname"] == device_name(ACME, 5))
    agents = (await client.get("/api/v1/console-agents", params={"matched": "false"}, headers=headers)).json()
    [unknown_agent] = [a["id"] for a in agents if a["agent_id"] == rogue]

    acme = rows[company_of(psa, ACME)]
    assert (acme["rmm_count"], acme["console_count"], acme["psa_quantity"]) == (6, 6, 5)
    assert acme["differences"] == {"rmm_minus_psa": 1, "console_minus_psa": 1, "console_minus_rmm": 0}
    assert {c["code"]: (c["count"], c["ids"]) for c in acme["causes"]} == {
        "rmm_device_without_product": (1, [bare]),
        "console_agent_without_rmm_device": (1, [unknown_agent]),
        "psa_quantity_changed": (1, [pushed_line(pushed, 5)]),
    }
    blue = rows[company_of(psa, BLUE)]
    assert (blue["rmm_count"], blue["console_count"], blue["psa_quantity"]) == (3, None, None)
    assert [(c["code"], c["count"]) for c in blue["causes"]] == [("agreement_line_missing", 3)]
    cedar = rows[company_of(psa, CEDAR)]
    assert (cedar["rmm_count"], cedar["psa_quantity"]) == (0, 2)
    assert [(c["code"], c["count"], c["ids"]) for c in cedar["causes"]] == [
        ("retired_client_billed", 2, [pushed_line(pushed, 2)])
    ]
    unmapped = rows[None]
    assert unmapped["rmm_count"] == 2
    assert [(c["code"], c["ids"]) for c in unmapped["causes"]] == [
        ("unmapped_client", [f"{rmm_row['id']}:{CLIENT_IDS[ZEPHYR]}"])
    ]

    spreadsheet = await client.get(
        "/api/v1/billing/reconciliation",
        params={"period": period},
        headers={**headers, "Accept": "text/csv"},
    )
    assert spreadsheet.status_code == 200 and spreadsheet.headers["content-type"].startswith("text/csv")
    table = list(csv.DictReader(io.StringIO(spreadsheet.text)))
    assert sorted(r["cause"] for r in table) == sorted(body["causes"])
    [changed] = [r for r in table if r["cause"] == "psa_quantity_changed"]
    assert (
        changed["company_id"],
        changed["rmm_count"],
        changed["console_count"],
        changed["psa_quantity"],
    ) == (
        company_of(psa, ACME),
        "6",
        "6",
        "5",
    )
    [missing] = [r for r in table if r["cause"] == "agreement_line_missing"]
    assert (missing["console_count"], missing["psa_quantity"], missing["cause_count"]) == ("", "", "3")

    viewer = await make_key("viewer")
    await sign_in(client, plaintext(viewer))
    page = await client.get("/billing/reconciliation", params={"period": period})
    assert page.status_code == 200, page.text
    for code in body["causes"]:
        assert page.text.count(f'data-cause="{code}"') == 1, code
    assert bare in page.text and unknown_agent in page.text
    assert 'href="/billing/reconciliation?period=' in (await client.get("/billing")).text


def pushed_line(pushed: dict[str, Any], quantity: int) -> str:
    [line_id] = [line["line_id"] for line in pushed["lines"] if line["quantity"] == quantity]
    assert isinstance(line_id, str)
    return line_id
