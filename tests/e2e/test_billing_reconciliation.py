"""Reconciliation end to end on a seeded world with each cause present exactly once: an RMM (the fleet
fake), a security console and a PSA through their real adapters, over HTTP as JSON, CSV and the
dashboard page.

- Acme: 6 endpoints with the product (one added after the push), one without a product, 5 console
  agents on its devices and one agent the RMM does not know; the PSA line says 5 → a device without
  the product, an agent without a device, a count changed since the push.
- Blue Harbor: mapped after the push, 3 endpoints → no agreement line (new revenue).
- Cedar: billed 2 at the push, its devices since gone from the RMM → a retired client still billed.
- Delta: billed 3 at the push, then someone sets the line to 5 in the PSA → read back, a PSA line
  changed outside connector.
- Echo: someone had already put a line of the product on the agreement → the push leaves it alone,
  an agreement line connector did not create (not where the PSA holds one line per product).
- Zephyr: an RMM client with 2 endpoints and no mapping → unmapped.

On every PSA's fake through its real adapter.
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
from adapters.testing.harness import (
    PsaHarness,
    device_mac,
    device_name,
    device_serial,
    installed_security_harnesses,
)
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
    kind_of,
    route,
)
from tests.support.fleet_rmm import FLEETS, FleetFake
from tests.support.vendors import VendorRouter

Headers = dict[str, str]
CONSOLES = installed_security_harnesses(discover().all())
ACME, BLUE, CEDAR, ZEPHYR = "Acme Dental", "Blue Harbor Logistics", "Cedar Law Group", "Zephyr Unmapped"
DELTA, ECHO = "Delta Dental Lab", "Echo Architects"
CLIENT_IDS = {
    ACME: "c-acme",
    BLUE: "c-blue",
    CEDAR: "c-cedar",
    DELTA: "c-delta",
    ECHO: "c-echo",
    ZEPHYR: "c-zephyr",
}


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
@pytest.mark.parametrize("harness", PSAS, ids=kind_of)
async def test_each_cause_is_found_once_from_the_device_lists(
    harness: PsaHarness,
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
    psa = harness.start(
        companies=[ACME, BLUE, CEDAR, DELTA, ECHO],
        devices_per_company=1,
        configuration_fields=CONFIGURATION_FIELDS,
    )
    one_line = psa.billing_ids.one_line_per_product
    route(vendors, psa)
    route(vendors, console)
    for n in range(5):
        rmm.put(status(ACME, n, product))
    rmm.put(status(ACME, 5, None))
    for n in range(2):
        rmm.put(status(CEDAR, n, product))
        rmm.put(status(ZEPHYR, n, product))
    for n in range(3):
        rmm.put(status(DELTA, n, product))
    for n in range(4):
        rmm.put(status(ECHO, n, product))
    theirs = psa.human_billing_line(company_of(psa, ECHO), 7)

    psa_row = await _connect_psa(client, headers, psa)
    rmm_row = await _post(
        client,
        headers,
        "/api/v1/connections",
        {"name": "Fleet", "kind": "fleet_rmm", "base_url": f"https://{host}", "credentials": {"token": "t"}},
    )
    console_row = await _connect(client, headers, console)
    for name in (ACME, CEDAR, DELTA, ECHO):
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
    assert sorted(line["quantity"] for line in pushed["lines"]) == [2, 3, 4, 5], pushed
    actions = {line["quantity"]: line["action"] for line in pushed["lines"]}
    assert actions[4] == ("updated" if one_line else "waiting"), pushed  # Echo's line is not connector's
    assert {actions[q] for q in (2, 3, 5)} <= {"created", "updated"}, pushed
    if not one_line:
        assert [line.quantity for line in psa.billing_lines(company_of(psa, ECHO))] == [7]

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
    delta = company_of(psa, DELTA)
    [delta_line] = psa.billing_lines(delta)
    psa.human_set_billing_quantity(delta, delta_line.id, 5)  # someone else, in the PSA
    await _post(client, headers, "/api/v1/billing/read-back", {"period": period})

    response = await client.get("/api/v1/billing/reconciliation", params={"period": period}, headers=headers)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    rows = {row["company_id"]: row for row in body["rows"]}
    assert body["causes"] == {
        "agreement_line_missing": 1,
        "console_agent_without_rmm_device": 1,
        "count_changed_since_push": 1,
        "psa_quantity_changed": 1,
        "retired_client_billed": 1,
        "rmm_device_without_product": 1,
        "unmapped_client": 1,
        **({} if one_line else {"unlinked_agreement_line": 1}),
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
        "count_changed_since_push": (1, [pushed_line(pushed, 5)]),
    }
    blue = rows[company_of(psa, BLUE)]
    # (Where a contract holds every product's line from the start, it reads 0 seats.)
    assert (blue["rmm_count"], blue["console_count"], blue["psa_quantity"]) == (
        3,
        None,
        0 if one_line else None,
    )
    assert [(c["code"], c["count"]) for c in blue["causes"]] == [("agreement_line_missing", 3)]
    cedar = rows[company_of(psa, CEDAR)]
    assert (cedar["rmm_count"], cedar["psa_quantity"]) == (0, 2)
    assert [(c["code"], c["count"], c["ids"]) for c in cedar["causes"]] == [
        ("retired_client_billed", 2, [pushed_line(pushed, 2)])
    ]
    changed_outside = rows[delta]
    assert (changed_outside["rmm_count"], changed_outside["psa_quantity"]) == (3, 5)
    assert [(c["code"], c["count"], c["ids"]) for c in changed_outside["causes"]] == [
        ("psa_quantity_changed", 2, [pushed_line(pushed, 3)])
    ]
    echo = rows[company_of(psa, ECHO)]
    if one_line:
        assert (echo["psa_quantity"], echo["causes"]) == (4, [])
    else:
        assert (echo["rmm_count"], echo["psa_quantity"]) == (4, 7)  # what their line holds
        assert [(c["code"], c["ids"]) for c in echo["causes"]] == [("unlinked_agreement_line", [theirs])]
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
    assert sorted(r["cause"] for r in table if r["cause"]) == sorted(body["causes"])  # '': a row in step
    [changed] = [r for r in table if r["cause"] == "count_changed_since_push"]
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
    assert (missing["console_count"], missing["psa_quantity"], missing["cause_count"]) == (
        "",
        "0" if one_line else "",
        "3",
    )

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
