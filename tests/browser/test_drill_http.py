"""The client and endpoint drill-down pages over plain HTTP, against a fleet synced from the in-memory
RMM into the ConnectWise Manage fake: what each page lists, the remote action form (run through the
RMM fake by an engineer, refused to a viewer), sorting, filtering, paging and CSV, and tenancy."""

from __future__ import annotations

import csv
import io
import re
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import httpx
import pytest

from adapters.base import ActionKind
from connector.infra.context import Services
from connector.web.tables import PAGE_SIZE, Column, View, build, matching, to_csv
from tests.browser.test_dashboard_http import csrf_of, plaintext, sign_in
from tests.e2e.stack import Stack, build_stack
from tests.support.fleet_rmm import FLEETS, FleetFake
from tests.support.vendors import VendorRouter

KeyMaker = Callable[..., Awaitable[dict[str, str]]]
PER_CLIENT = PAGE_SIZE + 10


@dataclass
class Drill:
    stack: Stack
    fleet: FleetFake
    engineer: str
    viewer: str

    @property
    def client_path(self) -> str:
        return f"/clients/{self.stack.rmm['id']}/c-0"

    async def endpoint(self, endpoint_id: str) -> dict[str, object]:
        listed = await self.stack.client.get(
            "/api/v1/endpoints", params={"limit": "5000"}, headers=self.stack.headers
        )
        [found] = [e for e in listed.json() if e["endpoint_id"] == endpoint_id]
        detail = await self.stack.client.get(f"/api/v1/endpoints/{found['id']}", headers=self.stack.headers)
        body: dict[str, object] = detail.json()
        return body


async def _sync(stack: Stack) -> None:
    response = await stack.client.post(
        "/api/v1/sync-runs", json={"connection_id": stack.rmm["id"]}, headers=stack.headers
    )
    assert response.status_code == 202, response.text
    await stack.work()


@pytest.fixture
async def drill(
    client: httpx.AsyncClient, services: Services, vendors: VendorRouter, make_key: KeyMaker
) -> AsyncIterator[Drill]:
    fleet = FleetFake(page_size=40)
    fleet.seed(2, PER_CLIENT)
    host = f"fleet-{uuid.uuid4().hex[:8]}.example.com"
    FLEETS[host] = fleet
    engineer = await make_key("engineer")
    stack = await build_stack(
        client,
        services,
        vendors,
        engineer,
        rmm_kind="fleet_rmm",
        rmm_credentials={"token": "t"},
        rmm_base_url=f"https://{host}",
        map_clients=(),
    )
    await stack.map_client("c-0", stack.seed.company_ids[0])  # c-1 stays unmapped
    rule = await client.post(
        "/api/v1/billing-rules",
        json={
            "psa_connection_id": stack.psa["id"],
            "product": "acme edr",
            "count_scope": "installed",
            "count_method": "peak",
            "agreement_type": "Managed Services",
            "psa_product_id": "EDR-SEAT",
            "unit_price": "4.50",
            "cost_tiers": [{"min_seats": 1, "unit_cost": "2.10"}],
        },
        headers=engineer,
    )
    assert rule.status_code == 201, rule.text
    fleet.change("ep-0-1", protection_enabled=False)
    fleet.change("ep-0-2", active_threats=2)
    fleet.change("ep-0-3", protection_enabled=False)
    fleet.change("ep-1-4", protection_enabled=False)
    await _sync(stack)
    fleet.change("ep-0-3", protection_enabled=True)  # cleared by the second sync
    await _sync(stack)
    yield Drill(stack, fleet, plaintext(engineer), plaintext(await make_key("viewer")))
    FLEETS.pop(host, None)


async def test_client_page_lists_endpoints_problems_tickets_billing_and_mapping(
    client: httpx.AsyncClient, drill: Drill
) -> None:
    await sign_in(client, drill.viewer)
    page = await client.get(drill.client_path)
    assert page.status_code == 200, page.text
    html = page.text
    assert "<h1>Client 0</h1>" in html
    assert f"Company {drill.stack.seed.company_ids[0]}" in html and 'id="client-company"' in html
    assert f"/mappings?rmm={drill.stack.rmm['id']}&amp;psa={drill.stack.psa['id']}" in html
    # endpoints: the first page of 50, sorted by host name, each with its class and open problems
    rows = re.findall(r'<tr data-endpoint-id="([^"]+)">', html)
    assert len(rows) == PAGE_SIZE
    assert f"{PER_CLIENT} rows, page 1 of 2" in html
    ep1 = await drill.endpoint("ep-0-1")
    row = html[html.index(f'data-endpoint-id="{ep1["id"]}"') :].split("</tr>", 1)[0]
    assert 'data-health="at_risk"' in row and "Protection disabled" in row
    assert f'href="/endpoints/{ep1["id"]}"' in row
    # problem history: open ones and the cleared one
    problems = html[html.index('id="problems-table"') :].split("</table>", 1)[0]
    assert problems.count('data-state="open"') == 2 and problems.count('data-state="cleared"') == 1
    # tickets with their PSA number and state
    tickets = drill.stack.tickets()
    assert len(tickets) == 3
    table = html[html.index('id="tickets-table"') :].split("</table>", 1)[0]
    for ticket in tickets:
        assert f"#{ticket['id']}" in table
    assert "open" in table and "closed" in table
    # billing: the company's line for this month counts the client's seats
    period = datetime.now(UTC).strftime("%Y-%m")
    preview = (
        await client.get("/api/v1/billing/preview", params={"period": period}, headers=drill.stack.headers)
    ).json()
    [line] = preview["lines"]
    billing = html[html.index('id="billing-table"') :].split("</table>", 1)[0]
    assert "acme edr" in billing and f">{line['quantity']}<" in billing and "4.50" in billing

    unmapped = await client.get(f"/clients/{drill.stack.rmm['id']}/c-1")
    assert unmapped.status_code == 200
    assert 'id="client-unmapped"' in unmapped.text and 'id="client-unbilled"' in unmapped.text
    assert "No billing lines count this client" in unmapped.text

    # the overview and the problem pages link the client's name to it
    assert f'href="{drill.client_path}"' in (await client.get("/")).text
    assert f'href="{drill.client_path}"' in (await client.get("/problems")).text
    [first_problem, *_] = re.findall(r'data-problem-id="([^"]+)"', problems)
    problem_page = await client.get(f"/problems/{first_problem}")
    assert f'href="{drill.client_path}"' in problem_page.text and 'href="/endpoints/' in problem_page.text
    assert (await client.get(f"/clients/{drill.stack.rmm['id']}/nope")).status_code == 404
    assert (await client.get(f"/clients/{drill.stack.psa['id']}/c-0")).status_code == 404


async def test_client_tables_sort_filter_page_and_export_csv(client: httpx.AsyncClient, drill: Drill) -> None:
    await sign_in(client, drill.viewer)
    second = await client.get(drill.client_path, params={"table": "endpoints", "page": "2"})
    hosts = re.findall(r'<a href="/endpoints/[^"]+">(WS-[^<]+)</a>', second.text)
    assert hosts == sorted(f"WS-00-{e:03d}" for e in range(PER_CLIENT))[PAGE_SIZE:]
    assert "page 2 of 2" in second.text and 'rel="prev"' in second.text

    descending = await client.get(drill.client_path, params={"table": "endpoints", "sort": "-hostname"})
    hosts = re.findall(r'<a href="/endpoints/[^"]+">(WS-[^<]+)</a>', descending.text)
    assert hosts[0] == f"WS-00-{PER_CLIENT - 1:03d}" and 'aria-sort="descending"' in descending.text
    by_health = await client.get(drill.client_path, params={"table": "endpoints", "sort": "health"})
    assert (
        re.findall(r'data-health="(\w+)">', by_health.text.split('id="endpoints-table"')[1])[0] == "at_risk"
    )

    filtered = await client.get(drill.client_path, params={"table": "endpoints", "q": "protection"})
    rows = re.findall(r'<tr data-endpoint-id="([^"]+)">', filtered.text)
    assert len(rows) == 1 and "1 row matching" in filtered.text

    export = await client.get(drill.client_path, params={"table": "endpoints", "format": "csv"})
    assert export.status_code == 200 and export.headers["content-type"].startswith("text/csv")
    assert "attachment" in export.headers["content-disposition"]
    parsed = list(csv.reader(io.StringIO(export.text)))
    assert parsed[0] == [
        "Endpoint",
        "Status",
        "Open problems",
        "Security product",
        "Operating system",
        "Last seen",
    ]
    assert len(parsed) == 1 + PER_CLIENT  # every row, not one page
    only = await client.get(
        drill.client_path, params={"table": "endpoints", "q": "threat", "format": "csv", "sort": "-hostname"}
    )
    [_, threat] = list(csv.reader(io.StringIO(only.text)))
    assert threat[0] == "WS-00-002" and threat[2] == "Threat detected"
    tickets = list(
        csv.reader(
            io.StringIO(
                (await client.get(drill.client_path, params={"table": "tickets", "format": "csv"})).text
            )
        )
    )
    assert len(tickets) == 4 and tickets[0][0] == "PSA ticket"
    assert (await client.get(drill.client_path, params={"table": "nope", "format": "csv"})).status_code == 404
    # nonsense in the query falls back to the defaults rather than failing
    odd = await client.get(drill.client_path, params={"table": "endpoints", "sort": "password", "page": "x9"})
    assert odd.status_code == 200 and "page 1 of 2" in odd.text


async def test_endpoint_page_shows_sources_and_runs_a_scan_for_engineers_only(
    client: httpx.AsyncClient, drill: Drill
) -> None:
    detail = await drill.endpoint("ep-0-2")
    path = f"/endpoints/{detail['id']}"
    await sign_in(client, drill.viewer)
    page = await client.get(path)
    assert page.status_code == 200, page.text
    fields = page.text[page.text.index('id="fields-table"') :].split("</table>", 1)[0]
    sources = detail["sources"]
    assert isinstance(sources, dict)
    for name, source in sources.items():
        row = fields[fields.index(f'data-field="{name}"') :].split("</tr>", 1)[0]
        assert ("RMM (RMM)" if source == "rmm" else "Console") in row, (name, row)
    assert "Threat detected" in page.text and 'data-action="scan"' in page.text
    assert "Run: Run a scan" not in page.text  # a viewer sees no button
    assert "deploy the security agent" in page.text  # not declared by the kind: named as unavailable
    token = csrf_of(page.text)
    refused = await client.post(f"{path}/actions", data={"csrf_token": token, "action": "scan"})
    assert refused.status_code == 403 and drill.fleet.actions == []

    client.cookies.clear()
    await sign_in(client, drill.engineer)
    page = await client.get(path)
    assert "Run: Run a scan" in page.text and "Run: Update definitions" in page.text
    token = csrf_of(page.text)
    assert (await client.post(f"{path}/actions", data={"action": "scan"})).status_code == 403
    sent = await client.post(f"{path}/actions", data={"csrf_token": token, "action": "scan"})
    assert sent.status_code == 303 and "done=queued" in sent.headers["location"]
    queued = await client.get(sent.headers["location"])
    assert 'id="action-result" data-status="queued"' in queued.text
    await drill.stack.work()
    assert drill.fleet.actions == [("ep-0-2", ActionKind.SCAN)]
    done = await client.get(sent.headers["location"])
    assert 'id="action-result" data-status="accepted"' in done.text and "job-1" in done.text
    assert 'data-status="accepted"' in done.text.split('id="actions-table"')[1]
    history = done.text.split('id="history-table"')[1]
    assert "Scan requested (dashboard)" in history and "Threat detected opened" in history

    undeclared = await client.post(f"{path}/actions", data={"csrf_token": token, "action": "deploy_agent"})
    assert undeclared.status_code == 422
    assert "Refused: action: fleet_rmm cannot run &#39;deploy_agent&#39;" in undeclared.text
    bogus = await client.post(f"{path}/actions", data={"csrf_token": token, "action": "reboot"})
    assert bogus.status_code == 422 and "action: must be one of" in bogus.text
    assert drill.fleet.actions == [("ep-0-2", ActionKind.SCAN)]

    by_value = await client.get(path, params={"table": "fields", "sort": "-value"})
    assert by_value.status_code == 200 and 'aria-sort="descending"' in by_value.text
    fields_csv = await client.get(path, params={"table": "fields", "format": "csv"})
    parsed = list(csv.reader(io.StringIO(fields_csv.text)))
    assert parsed[0] == ["Field", "Value", "Source", "Value's time", "Source last changed"]
    assert ["Active threats", "2", "RMM (RMM)"] == parsed[[r[0] for r in parsed].index("Active threats")][:3]
    assert (
        await client.post("/endpoints/nope/actions", data={"csrf_token": token, "action": "scan"})
    ).status_code == 404


async def test_another_tenants_endpoint_and_client_are_not_found(
    client: httpx.AsyncClient, drill: Drill, make_key: KeyMaker
) -> None:
    detail = await drill.endpoint("ep-0-1")
    for path in (f"/endpoints/{detail['id']}", drill.client_path):
        response = await client.get(path)
        assert response.status_code == 303 and response.headers["location"].startswith("/login?next=/")
    await sign_in(client, plaintext(await make_key("engineer", tenant="other")))
    page = await client.get(f"/endpoints/{detail['id']}")
    assert page.status_code == 404 and "WS-00-001" not in page.text
    assert (await client.get(drill.client_path)).status_code == 404
    token = csrf_of((await client.get("/")).text)
    posted = await client.post(
        f"/endpoints/{detail['id']}/actions", data={"csrf_token": token, "action": "scan"}
    )
    assert posted.status_code == 404
    await drill.stack.work()
    assert drill.fleet.actions == []


def test_tables_sort_blanks_last_filter_every_word_and_quote_formulas() -> None:
    columns = (Column("name", "Name"), Column("seen", "Seen"), Column("n", "N", numeric=True))
    rows: list[dict[str, Any]] = [
        {"name": "beta", "seen": None, "n": 2},
        {"name": "Alpha", "seen": datetime(2026, 1, 2, tzinfo=UTC), "n": 10},
        {"name": "=cmd()", "seen": datetime(2026, 1, 1, tzinfo=UTC), "n": Decimal("-1.5")},
    ]
    assert [r["name"] for r in matching(rows, columns, View("name"))] == ["=cmd()", "Alpha", "beta"]
    assert [r["n"] for r in matching(rows, columns, View("seen", descending=True))] == [
        10,
        Decimal("-1.5"),
        2,
    ]
    assert [r["n"] for r in matching(rows, columns, View("n"))] == [Decimal("-1.5"), 2, 10]
    assert [r["name"] for r in matching(rows, columns, View(q="ALPHA 2026-01-02"))] == ["Alpha"]
    values: tuple[Any, ...] = ("b", 3, None, datetime(2026, 1, 1), True, Decimal("1.5"), [], "A")
    mixed = [{"name": v} for v in values]
    assert [r["name"] for r in matching(mixed, columns, View("name"))] == [
        Decimal("1.5"),
        3,
        datetime(2026, 1, 1),
        "A",
        "b",
        True,
        None,
        [],
    ]
    out = to_csv(columns, matching(rows, columns, View("n")))
    assert out.splitlines() == [
        "Name,Seen,N",
        "'=cmd(),2026-01-01T00:00:00+00:00,-1.50",
        "beta,,2",
        "Alpha,2026-01-02T00:00:00+00:00,10",
    ]
    many = [{"name": f"r{i:03d}", "seen": None, "n": i} for i in range(PAGE_SIZE * 2 + 1)]
    table = build("t", "T", columns, many, {"table": "t", "page": "9", "sort": "-n"}, "/x")
    assert table.view.page == table.pages == 3 and [r["n"] for r in table.rows] == [0]
    assert table.next_url is None and table.previous_url == "/x?table=t&sort=-n&page=2#t"
    assert table.sort_url("n") == "/x?table=t&sort=n#t" and table.aria_sort("n") == "descending"
    other = build("u", "U", columns, many, {"table": "t", "page": "2"}, "/x", default="name")
    assert other.view == View("name", False, "", 1)
