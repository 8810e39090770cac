"""A vendor without an adapter: its monthly usage report, uploaded as CSV with a saved column
profile, is the reconciliation's console count, end to end through an RMM (the fleet fake) and a
PSA through its real adapter over HTTP.

- Acme Dental: 5 endpoints with the product, billed 5; the report gives 7 seats under the vendor's
  own spelling of the name → 2 seats the RMM does not see, naming the upload.
- Blue Harbor: 2 endpoints, billed 2; the report names it "Blue Harbour Log." (an alias) → equal.
- Nobody Corp: in the report only, matching no PSA company → reported, and a cause of its own.
Uploading the month again replaces the first report: nothing is counted twice.
"""

from __future__ import annotations

import csv
import io
import uuid
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from connector.infra.context import Services
from tests.e2e.test_billing_reconciliation import ACME, BLUE, CLIENT_IDS, map_client, status
from tests.e2e.test_vendor_matrix import PSAS, _connect_psa, _post, _sync, company_of, route
from tests.support.fleet_rmm import FLEETS, FleetFake
from tests.support.vendors import VendorRouter

Headers = dict[str, str]
PRODUCT = "Sentinel EDR"


@pytest.fixture
def fleet() -> Iterator[tuple[str, FleetFake]]:
    fake = FleetFake(page_size=50)
    host = f"fleet-{uuid.uuid4().hex[:8]}.example.com"
    FLEETS[host] = fake
    yield host, fake
    FLEETS.pop(host, None)


def report(acme_seats: int) -> bytes:
    text = (
        "Monthly usage, all customers\n"
        "Tenant;Edition;Devices billed\n"
        f'"{ACME.upper()}";"{PRODUCT} Complete; per device";{acme_seats}\n'
        f"Blue Harbour Log.;{PRODUCT} Complete;2\n"
        f"Nobody Corp;{PRODUCT} Complete;1\n"
        f"Blue Harbour Log.;{PRODUCT} Complete;two\n"
    )
    return b"\xef\xbb\xbf" + text.encode()


@pytest.mark.skipif(not PSAS, reason="needs a PSA harness")
async def test_an_uploaded_usage_report_is_the_console_count(
    client: httpx.AsyncClient,
    services: Services,
    vendors: VendorRouter,
    make_key: Callable[..., Awaitable[Headers]],
    fleet: tuple[str, FleetFake],
) -> None:
    headers = await make_key("engineer")
    host, rmm = fleet
    psa = PSAS[0].start(companies=[ACME, BLUE], devices_per_company=1)
    route(vendors, psa)
    for n in range(5):
        rmm.put(status(ACME, n, PRODUCT))
    for n in range(2):
        rmm.put(status(BLUE, n, PRODUCT))
    psa_row = await _connect_psa(client, headers, psa)
    rmm_row = await _post(
        client,
        headers,
        "/api/v1/connections",
        {"name": "Fleet", "kind": "fleet_rmm", "base_url": f"https://{host}", "credentials": {"token": "t"}},
    )
    for name in (ACME, BLUE):
        await map_client(
            client, headers, rmm_row["id"], psa_row["id"], CLIENT_IDS[name], company_of(psa, name)
        )
    assert (await _sync(client, headers, services, rmm_row["id"]))["status"] == "succeeded"
    await _post(
        client,
        headers,
        "/api/v1/billing-rules",
        {
            "psa_connection_id": psa_row["id"],
            "product": PRODUCT,
            "count_scope": "installed",
            "count_method": "end_of_period",
            "unit_price": "4.00",
            **psa.billing_ids.rule_fields(),
        },
    )
    period = datetime.now(UTC).strftime("%Y-%m")
    pushed = await _post(client, headers, "/api/v1/billing/push", {"period": period})
    assert sorted(line["quantity"] for line in pushed["lines"]) == [2, 5], pushed

    profile = await _post(
        client,
        headers,
        "/api/v1/billing/usage-profiles",
        {
            "name": "Sentinel monthly",
            "psa_connection_id": psa_row["id"],
            "customer_column": "tenant",
            "customer_kind": "customer_name",
            "aliases": {"Blue Harbour Log.": company_of(psa, BLUE)},
            "product_column": "Edition",
            "quantity_column": "Devices billed",
            "header_row": 1,
        },
    )
    uploaded = await upload(client, headers, period, profile["id"], report(7))
    assert uploaded["rows_accepted"] == 2
    assert [(u["customer"], u["quantity"]) for u in uploaded["unmatched"]] == [("Nobody Corp", 1)]
    assert uploaded["rejected"] == [
        {"line": 6, "column": "Devices billed", "reason": "not a whole number: 'two'"}
    ]

    body = await reconciliation(client, headers, period)
    rows = {row["company_id"]: row for row in body["rows"]}
    acme = rows[company_of(psa, ACME)]
    assert (acme["rmm_count"], acme["console_count"], acme["console_source"], acme["psa_quantity"]) == (
        5,
        7,
        "upload",
        5,
    )
    assert acme["differences"] == {"rmm_minus_psa": 0, "console_minus_psa": 2, "console_minus_rmm": 2}
    assert [(c["code"], c["count"], c["ids"]) for c in acme["causes"]] == [
        ("uploaded_seats_without_rmm_device", 2, [uploaded["id"]])
    ]
    blue = rows[company_of(psa, BLUE)]
    assert (blue["console_count"], blue["console_source"], blue["causes"]) == (2, "upload", [])
    assert [(c["code"], c["ids"]) for c in rows[None]["causes"]] == [
        ("upload_customer_unmatched", ["Nobody Corp"])
    ]
    assert body["causes"] == {"upload_customer_unmatched": 1, "uploaded_seats_without_rmm_device": 1}

    spreadsheet = await client.get(
        "/api/v1/billing/reconciliation", params={"period": period}, headers={**headers, "Accept": "text/csv"}
    )
    table = list(csv.DictReader(io.StringIO(spreadsheet.text)))
    [beyond] = [r for r in table if r["cause"] == "uploaded_seats_without_rmm_device"]
    assert (
        beyond["company_id"],
        beyond["console_count"],
        beyond["console_source"],
        beyond["cause_count"],
    ) == (
        company_of(psa, ACME),
        "7",
        "upload",
        "2",
    )

    again = await upload(client, headers, period, profile["id"], report(6))
    assert again["replaced"] is True
    listed = (
        await client.get("/api/v1/billing/usage-uploads", params={"period": period}, headers=headers)
    ).json()
    assert [u["id"] for u in listed] == [again["id"]]
    rows = {row["company_id"]: row for row in (await reconciliation(client, headers, period))["rows"]}
    acme = rows[company_of(psa, ACME)]
    assert (acme["console_count"], [(c["count"], c["ids"]) for c in acme["causes"]]) == (
        6,
        [(1, [again["id"]])],
    )
    assert rows[company_of(psa, BLUE)]["console_count"] == 2


async def upload(client: httpx.AsyncClient, headers: Headers, period: str, profile: str, data: bytes) -> Any:
    response = await client.post(
        "/api/v1/billing/usage-uploads",
        params={"period": period, "profile": profile},
        files={"file": ("sentinel.csv", data, "text/csv")},
        headers=headers,
    )
    assert response.status_code == 201, response.text
    return response.json()


async def reconciliation(client: httpx.AsyncClient, headers: Headers, period: str) -> dict[str, Any]:
    response = await client.get("/api/v1/billing/reconciliation", params={"period": period}, headers=headers)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body
