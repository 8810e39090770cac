"""A client's monthly security report end to end: an RMM (the fleet fake), a security console and a
PSA through their real adapters. 5 RMM endpoints, 4 console agents on 4 of them: the fifth is not
protected (the console found it); a threat on one agent stays open, another is resolved. The
report for this month says so as JSON, HTML and PDF, over the API and on the dashboard."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from sqlalchemy import select

from adapters.registry import discover
from adapters.testing.harness import CLIENT_NAMES, device_name, installed_security_harnesses
from connector.infra import db
from connector.infra.context import Services
from connector.models import HealthDaily
from tests.browser.test_dashboard_http import plaintext, sign_in
from tests.e2e.test_security_consoles import rmm_status
from tests.e2e.test_vendor_matrix import (
    CONFIGURATION_FIELDS,
    PSAS,
    _connect,
    _connect_psa,
    _map_by_suggestion,
    _post,
    _sync,
    company_of,
    route,
)
from tests.support.fleet_rmm import FLEETS, FleetFake
from tests.support.pdf import text
from tests.support.vendors import VendorRouter

Headers = dict[str, str]
CONSOLES = installed_security_harnesses(discover().all())
CLIENT = CLIENT_NAMES[0]
ENDPOINTS, AGENTS = 5, 4


@pytest.fixture
def fleet() -> Iterator[tuple[str, FleetFake]]:
    fake = FleetFake(page_size=50)
    host = f"fleet-{uuid.uuid4().hex[:8]}.example.com"
    FLEETS[host] = fake
    yield host, fake
    FLEETS.pop(host, None)


@pytest.mark.skipif(not PSAS or not CONSOLES, reason="needs a PSA and a security console harness")
async def test_client_report_of_the_month_as_json_html_and_pdf(
    client: httpx.AsyncClient,
    services: Services,
    vendors: VendorRouter,
    make_key: Callable[..., Awaitable[Headers]],
    fleet: tuple[str, FleetFake],
) -> None:
    headers = await make_key("engineer")
    host, rmm = fleet
    for n in range(ENDPOINTS):
        rmm.put(rmm_status(device_name(CLIENT, n), n), modified_at=datetime.now(UTC) - timedelta(days=1))
    console = CONSOLES[0].start(customers=[CLIENT], agents_per_customer=AGENTS)
    agents = list(console.agents)
    psa = PSAS[0].start(
        companies=[CLIENT], devices_per_company=ENDPOINTS, configuration_fields=CONFIGURATION_FIELDS
    )
    route(vendors, psa)
    route(vendors, console)
    company = company_of(psa, CLIENT)
    psa_row = await _connect_psa(client, headers, psa)
    rmm_row = await _post(
        client,
        headers,
        "/api/v1/connections",
        {"name": "Fleet", "kind": "fleet_rmm", "base_url": f"https://{host}", "credentials": {"token": "t"}},
    )
    console_row = await _connect(client, headers, console)
    await _map_by_suggestion(client, headers, rmm_row["id"], psa_row["id"], expected=1)
    await _map_by_suggestion(client, headers, console_row["id"], psa_row["id"], expected=1)

    assert (await _sync(client, headers, services, rmm_row["id"]))["status"] == "succeeded"
    assert (await _sync(client, headers, services, console_row["id"]))["status"] == "succeeded"
    kept = console.raise_threat(agents[0], "Trojan.Kept")
    gone = console.raise_threat(agents[1], "Eicar-Test")
    assert (await _sync(client, headers, services, console_row["id"]))["status"] == "succeeded"
    console.resolve_threat(gone)
    assert (await _sync(client, headers, services, console_row["id"]))["status"] == "succeeded"
    assert (await _sync(client, headers, services, rmm_row["id"]))["status"] == "succeeded"
    assert kept

    # An earlier day of the month in the history: every endpoint protected then.
    today = datetime.now(UTC).date()
    period = today.strftime("%Y-%m")
    async with db.transaction(services.sessions) as session:
        [latest] = list(await session.scalars(select(HealthDaily)))
        if today.day > 1:
            session.add(
                HealthDaily(
                    tenant_id=latest.tenant_id,
                    rmm_connection_id=latest.rmm_connection_id,
                    client_id=latest.client_id,
                    day=today.replace(day=1).isoformat(),
                    protected=ENDPOINTS,
                )
            )
        today_counts = (
            latest.protected,
            latest.protected + latest.at_risk + latest.unprotected + latest.offline,
        )

    path = f"/api/v1/reports/clients/{company}"
    response = await client.get(path, params={"period": period, "format": "json"}, headers=headers)
    assert response.status_code == 200, response.text
    report = response.json()
    assert (report["period"], report["company_id"], report["company_name"]) == (period, company, CLIENT)

    devices = report["devices"]
    assert (devices["total"], devices["protected"], devices["not_protected"], devices["unknown"]) == (
        ENDPOINTS,
        ENDPOINTS - 1,
        1,
        0,
    ), devices
    assert devices["not_protected_hosts"] == [device_name(CLIENT, AGENTS)]
    coverage = devices["coverage"]
    assert coverage["consoles"] == [console_row["name"]]
    assert (coverage["devices"], coverage["with_agent"], coverage["without_agent"]) == (ENDPOINTS, AGENTS, 1)
    assert coverage["without_agent_hosts"] == [device_name(CLIENT, AGENTS)]

    problems = report["problems"]
    by_kind = {k["kind"]: (k["opened"], k["resolved"]) for k in problems["by_kind"]}
    assert by_kind == {"threat_detected": (2, 1), "not_protected": (1, 0)}, problems
    assert (problems["opened"], problems["resolved"], problems["open_at_end"]) == (3, 1, 2)

    threats = report["threats"]
    assert (threats["opened"], threats["resolved"], threats["from_console"], threats["from_rmm"]) == (
        2,
        1,
        2,
        0,
    )
    assert sorted((t["hostname"].casefold(), t["cleared_at"] is None) for t in threats["items"]) == sorted(
        [
            (console.agents[agents[0]].hostname.casefold(), True),
            (console.agents[agents[1]].hostname.casefold(), False),
        ]
    )
    assert any("Trojan.Kept" in t["message"] for t in threats["items"])

    trend = report["trend"]
    assert (trend["days"][-1]["day"], trend["days"][-1]["protected"], trend["days"][-1]["known"]) == (
        today.isoformat(),
        *today_counts,
    )
    assert today_counts == (ENDPOINTS - 1, ENDPOINTS)
    assert trend["last"] == 0.8
    if today.day > 1:
        assert [d["share"] for d in trend["days"]] == [1.0, 0.8] and trend["average"] == 0.9

    # HTML by default, PDF by Accept or ?format=pdf: the client's name in both.
    page = await client.get(path, params={"period": period}, headers=headers)
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert f'<span id="client-name">{CLIENT}</span>' in page.text
    assert device_name(CLIENT, AGENTS) in page.text and "Threat detected" in page.text
    for extra in (
        {"params": {"period": period, "format": "pdf"}, "headers": headers},
        {"params": {"period": period}, "headers": {**headers, "Accept": "application/pdf"}},
    ):
        document = await client.get(path, **extra)
        assert document.status_code == 200 and document.headers["content-type"] == "application/pdf"
        shown = text(document.content)
        assert f"Security report {period} - {CLIENT}" in shown and "80.0%" in shown

    # Unknown company, another tenant's, bad and future periods.
    missing = await client.get("/api/v1/reports/clients/no-such", params={"period": period}, headers=headers)
    assert missing.status_code == 404
    other = await make_key("admin", tenant="globex")
    assert (await client.get(path, params={"period": period}, headers=other)).status_code == 404
    for bad in ("2026-13", "last-month", f"{today.year + 1}-01"):
        refused = await client.get(path, params={"period": bad}, headers=headers)
        assert refused.status_code == 422, refused.text
        assert [e["field"] for e in refused.json()["errors"]] == ["period"]
    assert (await client.get(path, headers=headers)).json()["errors"][0]["field"] == "period"

    # The dashboard's page: the same report, and its PDF download.
    dashboard = f"/reports/clients/{company}"
    assert (await client.get(dashboard, params={"period": period})).status_code in (302, 303)
    await sign_in(client, plaintext(headers))
    overview = (await client.get("/")).text
    row = overview.split(f'data-company-id="{company}"', 1)[1].split("</tr>", 1)[0]
    assert f'<a href="{dashboard}"' in row  # the coverage table links each company's report
    html = await client.get(dashboard, params={"period": period})
    assert html.status_code == 200 and f'<span id="client-name">{CLIENT}</span>' in html.text
    assert 'id="pdf-link"' in html.text
    assert CLIENT in text((await client.get(dashboard, params={"period": period, "format": "pdf"})).content)
    assert (await client.get(dashboard)).status_code == 200  # this month by default
    assert (await client.get("/reports/clients/no-such")).status_code == 404
    assert (await client.get(dashboard, params={"period": "2026-13"})).status_code == 422
