"""Every billed seat traceable, end to end: an RMM (the fleet fake) and a PSA through their real
adapters; sync → push → close freezes the devices behind each line; the next month a device leaves
and another arrives, and the diff and the client's statement say so, over HTTP."""

from __future__ import annotations

import contextlib
import csv
import io
import uuid
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select, update

from connector.billing import snapshots
from connector.infra import db
from connector.infra.context import Services
from connector.models import (
    BillingPeriod,
    BillingSnapshotDevice,
    BillingSnapshotLine,
    Endpoint,
    SyncCursor,
    UsageDaily,
)
from tests.browser.test_dashboard_http import plaintext, sign_in
from tests.e2e.test_billing_reconciliation import ACME, CLIENT_IDS, map_client, status
from tests.e2e.test_vendor_matrix import (
    CONFIGURATION_FIELDS,
    PSAS,
    _connect_psa,
    _post,
    _sync,
    company_of,
    route,
)
from tests.support.fleet_rmm import FLEETS, FleetFake
from tests.support.vendors import VendorRouter

Headers = dict[str, str]
PRODUCT = "Acme EDR 12"


@pytest.fixture
def fleet() -> Iterator[tuple[str, FleetFake]]:
    fake = FleetFake(page_size=50)
    host = f"fleet-{uuid.uuid4().hex[:8]}.example.com"
    FLEETS[host] = fake
    yield host, fake
    FLEETS.pop(host, None)


async def _get(client: httpx.AsyncClient, headers: Headers, path: str, **params: str) -> Any:
    response = await client.get(path, params=params, headers=headers)
    assert response.status_code == 200, response.text
    return response.json()


async def _close(client: httpx.AsyncClient, headers: Headers, period: str) -> None:
    assert (await _post(client, headers, f"/api/v1/billing/periods/{period}/close", {}))["closed"] is True


def _dies(**values: Any) -> None:
    raise RuntimeError("the close dies after writing its lines, before their devices")


@pytest.mark.skipif(not PSAS, reason="needs a PSA harness")
async def test_closed_lines_show_their_devices_changes_and_statement(
    client: httpx.AsyncClient,
    services: Services,
    vendors: VendorRouter,
    make_key: Callable[..., Awaitable[Headers]],
    fleet: tuple[str, FleetFake],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    headers = await make_key("engineer")
    host, rmm = fleet
    psa = PSAS[0].start(companies=[ACME], devices_per_company=1, configuration_fields=CONFIGURATION_FIELDS)
    route(vendors, psa)
    for n in range(3):
        rmm.put(status(ACME, n, PRODUCT))
    psa_row = await _connect_psa(client, headers, psa)
    rmm_row = await _post(
        client,
        headers,
        "/api/v1/connections",
        {"name": "Fleet", "kind": "fleet_rmm", "base_url": f"https://{host}", "credentials": {"token": "t"}},
    )
    company = company_of(psa, ACME)
    await map_client(client, headers, rmm_row["id"], psa_row["id"], CLIENT_IDS[ACME], company)
    assert (await _sync(client, headers, services, rmm_row["id"]))["status"] == "succeeded"
    await _post(
        client,
        headers,
        "/api/v1/billing-rules",
        {
            "psa_connection_id": psa_row["id"],
            "product": "acme edr",
            "count_scope": "installed",
            "count_method": "peak",
            "unit_price": "4.25",
            **psa.billing_ids.rule_fields(),
        },
    )
    # The first sync belongs to last month: its usage and its devices are moved back to it.
    this_month = datetime.now(UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    before, now = (this_month - timedelta(days=1)).strftime("%Y-%m"), this_month.strftime("%Y-%m")
    async with db.transaction(services.sessions) as session:
        await session.execute(update(UsageDaily).values(day=f"{before}-01"))
        await session.execute(update(Endpoint).values(first_seen_at=this_month - timedelta(days=20)))

    pushed = await _post(client, headers, "/api/v1/billing/push", {"period": before})
    assert [line["quantity"] for line in pushed["lines"]] == [3], pushed
    with monkeypatch.context() as patched:  # a close that dies midway leaves nothing behind
        patched.setattr(snapshots, "BillingSnapshotDevice", _dies)
        with contextlib.suppress(RuntimeError):
            died = await client.post(f"/api/v1/billing/periods/{before}/close", headers=headers)
            assert died.status_code == 500
    async with services.sessions() as session:
        assert await session.scalar(select(func.count()).select_from(BillingPeriod)) == 0
        assert await session.scalar(select(func.count()).select_from(BillingSnapshotLine)) == 0
    await _close(client, headers, before)
    await _close(client, headers, before)  # closing again keeps the one snapshot
    async with services.sessions() as session:
        assert await session.scalar(select(func.count()).select_from(BillingSnapshotLine)) == 1
        assert await session.scalar(select(func.count()).select_from(BillingSnapshotDevice)) == 3

    [line] = await _get(client, headers, f"/api/v1/billing/periods/{before}/lines")
    assert (line["company_id"], line["quantity"], line["pushed_quantity"], line["devices"]) == (
        company,
        3,
        3,
        3,
    )
    assert line["total"] == "12.75"
    path = f"/api/v1/billing/periods/{before}/lines/{line['id']}/devices"
    body = await _get(client, headers, path)
    assert len(body["devices"]) == body["line"]["quantity"] == 3
    endpoints = {e["hostname"]: e for e in await _get(client, headers, "/api/v1/endpoints")}
    for device in body["devices"]:
        endpoint = endpoints[device["hostname"]]
        assert (device["device_id"], device["serial_number"]) == (endpoint["id"], endpoint["serial_number"])
        assert device["first_seen_at"].startswith(f"{before}-")
    as_csv = await client.get(path, headers={**headers, "Accept": "text/csv"})
    assert as_csv.status_code == 200 and as_csv.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(as_csv.text)))
    assert sorted(r["hostname"] for r in rows) == sorted(endpoints)
    missing = await client.get(f"/api/v1/billing/periods/{before}/lines/nope/devices", headers=headers)
    assert missing.status_code == 404
    elsewhere = await client.get(path, headers=await make_key("viewer", tenant="globex"))
    assert elsewhere.status_code == 404

    # This month: the first device left the RMM at the turn of the month, a fourth one arrived.
    gone = status(ACME, 0, PRODUCT).endpoint_id
    rmm.remove(gone)
    rmm.put(status(ACME, 3, PRODUCT))
    async with db.transaction(services.sessions) as session:  # the next pass is a full one
        await session.execute(
            update(SyncCursor).where(SyncCursor.connection_id == rmm_row["id"]).values(last_full_at=None)
        )
    assert (await _sync(client, headers, services, rmm_row["id"]))["endpoints_retired"] == 1
    async with db.transaction(services.sessions) as session:
        await session.execute(
            update(Endpoint).where(Endpoint.endpoint_id == gone).values(retired_at=this_month)
        )
    pushed = await _post(client, headers, "/api/v1/billing/push", {"period": now, "override": True})
    assert [line["quantity"] for line in pushed["lines"]] == [3], pushed
    await _close(client, headers, now)

    changes = await _get(client, headers, f"/api/v1/billing/periods/{now}/changes", company_id=company)
    assert changes["previous_period"] == before
    [change] = changes["products"]
    assert (change["previous_count"], change["count"]) == (3, 3)
    assert [d["hostname"] for d in change["added"]] == [status(ACME, 3, PRODUCT).hostname]
    assert [d["hostname"] for d in change["removed"]] == [status(ACME, 0, PRODUCT).hostname]

    statement_path = f"/api/v1/billing/periods/{now}/statements/{company}"
    page = await client.get(statement_path, headers=headers)
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert '<th class=num id="grand-total">$12.75</th>' in page.text and "acme edr" in page.text
    for extra in ({"params": {"format": "pdf"}}, {"headers": {**headers, "Accept": "application/pdf"}}):
        options: dict[str, Any] = {"headers": headers, **extra}
        document = await client.get(statement_path, **options)
        assert document.status_code == 200 and document.headers["content-type"] == "application/pdf"
        assert document.content.startswith(b"%PDF")
    unknown = await client.get(f"/api/v1/billing/periods/{now}/statements/no-such-company", headers=headers)
    assert unknown.status_code == 404

    # The dashboard's billing page links each billed client's statement of the closed period.
    await sign_in(client, plaintext(headers))
    page = await client.get("/billing", params={"period": now})
    link = f'href="/billing/statements/{now}/{company}"'
    assert page.status_code == 200 and link in page.text, page.text
    shown = await client.get(f"/billing/statements/{now}/{company}")
    assert shown.status_code == 200 and 'id="grand-total">$12.75<' in shown.text
    as_pdf = await client.get(f"/billing/statements/{now}/{company}", params={"format": "pdf"})
    assert as_pdf.content.startswith(b"%PDF")
    assert (await client.get(f"/billing/statements/{now}/nobody")).status_code == 404
