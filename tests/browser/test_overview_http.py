"""The overview and billing pages over plain HTTP (no browser), on every database backend: unknown
endpoints as their own class, unmapped and unbilled clients called out with links, open problems
by severity, the ticket trend, the tables' sort/filter/page/CSV, and amounts in the tenant's
currency."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

import httpx
from sqlalchemy import select

from connector.infra import db
from connector.infra.context import Services
from connector.models import AuditEvent, ClientMapping, Connection, Endpoint, Problem, Tenant
from connector.statuses import Health, ProblemSource, ProblemStatus
from tests.browser.test_dashboard_http import plaintext, sign_in
from tests.e2e.stack import Stack
from tests.e2e.test_billing import PERIOD, record_usage
from tests.e2e.test_billing import stack as stack  # the fixture, re-exported

KeyMaker = Callable[..., Awaitable[dict[str, str]]]


async def _world(services: Services, *, extra_clients: int = 0) -> None:
    """Known Co: 3 protected, 1 unprotected; Mystery Co: 4 endpoints without an antivirus state
    (mapped); an unmapped client with 2 at risk. Open problems of several kinds, ticket entries."""
    async with db.transaction(services.sessions) as session:
        tenant = await session.scalar(select(Tenant).where(Tenant.name == "default"))
        assert tenant is not None
        rmm = Connection(
            tenant_id=tenant.id,
            name="RMM",
            kind="dummy",
            role="rmm",
            base_url="https://rmm.test",
            credentials_encrypted=b"x",
        )
        psa = Connection(
            tenant_id=tenant.id,
            name="PSA",
            kind="dummy",
            role="psa",
            base_url="https://psa.test",
            credentials_encrypted=b"x",
        )
        session.add_all([rmm, psa])
        await session.flush()
        fleet = [
            ("c-known", "Known Clinic", Health.PROTECTED, 3),
            ("c-known", "Known Clinic", Health.UNPROTECTED, 1),
        ]
        fleet += [
            ("c-mystery", "Mystery Works", Health.UNKNOWN, 4),
            ("c-loose", "Loose Ends", Health.AT_RISK, 2),
        ]
        fleet += [(f"c-extra-{i:02d}", f"Extra {i:02d}", Health.PROTECTED, 1) for i in range(extra_clients)]
        n = 0
        for client_id, name, health, count in fleet:
            for _ in range(count):
                n += 1
                session.add(
                    Endpoint(
                        tenant_id=tenant.id,
                        rmm_connection_id=rmm.id,
                        endpoint_id=f"e{n}",
                        client_id=client_id,
                        client_name=name,
                        hostname=f"host-{n}",
                        health=health,
                    )
                )
        for client_id, name, company in (
            ("c-known", "Known Clinic", "100"),
            ("c-mystery", "Mystery Works", "200"),
        ):
            session.add(
                ClientMapping(
                    tenant_id=tenant.id,
                    rmm_connection_id=rmm.id,
                    rmm_client_id=client_id,
                    rmm_client_name=name,
                    psa_connection_id=psa.id,
                    psa_company_id=company,
                    psa_company_name=f"{name} Inc",
                )
            )
        kinds = ["threat_detected", "threat_detected", "not_protected", "agent_offline", "scan_overdue"]
        for i, kind in enumerate(kinds):
            session.add(
                Problem(
                    tenant_id=tenant.id,
                    rmm_connection_id=rmm.id,
                    endpoint_id=f"e{i + 1}",
                    client_id="c-known",
                    hostname=f"host-{i + 1}",
                    kind=kind,
                    source=ProblemSource.STATUS,
                )
            )
        session.add(
            Problem(
                tenant_id=tenant.id,
                rmm_connection_id=rmm.id,
                endpoint_id="e9",
                client_id="c-known",
                kind="threat_detected",
                source=ProblemSource.STATUS,
                state=ProblemStatus.CLEARED,
            )
        )
        now = datetime.now(UTC)
        for at, kind in (
            (now - timedelta(days=1), "ticket.created"),
            (now - timedelta(days=1), "ticket.created"),
            (now - timedelta(days=1), "ticket.noted"),
            (now, "ticket.closed"),
            (now - timedelta(days=45), "ticket.created"),
        ):
            session.add(
                AuditEvent(
                    tenant_id=tenant.id,
                    at=at,
                    category="psa",
                    kind=kind,
                    actor="worker",
                    target_type="ticket",
                    summary=kind,
                )
            )


def _row(html: str, client_id: str) -> str:
    match = re.search(rf'<tr data-client-id="{client_id}".*?</tr>', html, re.S)
    assert match is not None, html
    return match.group(0)


def _client_order(html: str) -> list[str]:
    table = html[html.index('id="clients-table"') :]
    return re.findall(r'<tr data-client-id="([^"]+)"', table[: table.index("</table>")])


async def test_unknown_endpoints_are_their_own_class_not_zero_percent(
    client: httpx.AsyncClient, services: Services, make_key: KeyMaker
) -> None:
    key = plaintext(await make_key("viewer"))
    await _world(services)
    await sign_in(client, key)
    page = await client.get("/")
    assert page.status_code == 200, page.text
    share = re.search(r'<dd id="protected-share">(.*?)</dd>', page.text, re.S)
    assert share is not None and "50%" in share.group(1) and "of 6 known endpoints" in share.group(1)
    assert 'id="count-unknown">4<' in page.text
    assert (
        "4 endpoints report no antivirus state" in page.text and "1 client with no known state" in page.text
    )
    mystery = _row(page.text, "c-mystery")
    assert 'data-class="unknown"' in mystery and "Unknown" in mystery and "0%" not in mystery
    assert "75%" in _row(page.text, "c-known") and "0%" in _row(page.text, "c-loose")
    # least protected first; a client with no known state sorts apart, after the others
    assert _client_order(page.text) == ["c-loose", "c-known", "c-mystery"]
    descending = await client.get("/", params={"sort": "-share"})
    assert _client_order(descending.text) == ["c-known", "c-loose", "c-mystery"]


async def test_unmapped_and_unbilled_clients_are_called_out_with_links(
    client: httpx.AsyncClient, services: Services, make_key: KeyMaker
) -> None:
    key = plaintext(await make_key("engineer"))
    await _world(services)
    await sign_in(client, key)
    page = await client.get("/")
    unmapped = page.text[page.text.index('id="unmapped-clients"') :]
    assert "Loose Ends" in unmapped[: unmapped.index("</section>")] and 'href="/mappings"' in unmapped
    unbilled = page.text[page.text.index('id="unbilled-clients"') :]
    unbilled = unbilled[: unbilled.index("</section>")]
    assert "Known Clinic" in unbilled and "Mystery Works" in unbilled and "Loose Ends" not in unbilled
    assert 'href="/docs#/billing"' in unbilled and 'href="/billing?period=' in unbilled
    billing = await client.get("/billing")
    callout = billing.text[billing.text.index('id="billing-unbilled"') :]
    assert "Known Clinic" in callout and 'href="/docs#/billing"' in callout and 'href="/mappings"' in callout


async def test_open_problems_by_severity_and_the_ticket_trend(
    client: httpx.AsyncClient, services: Services, make_key: KeyMaker
) -> None:
    key = plaintext(await make_key("viewer"))
    await _world(services)
    await sign_in(client, key)
    page = await client.get("/")
    counts = dict(re.findall(r'data-severity="(\w+)"><a href="/problems"><strong>(\d+)</strong>', page.text))
    assert counts == {"critical": "2", "high": "1", "medium": "1", "low": "1"}
    today = datetime.now(UTC).date()
    yesterday = (today - timedelta(days=1)).isoformat()
    trend = page.text[page.text.index('id="tickets-table"') :]
    rows = re.findall(
        r'<tr data-day="([^"]+)"><th scope="row">[^<]+</th>'
        r'<td class="num">(\d+)</td><td class="num">(\d+)</td>',
        trend,
    )
    assert len(rows) == 30 and rows[-1] == (today.isoformat(), "0", "1") and rows[-2] == (yesterday, "2", "0")
    assert (
        'class="tickets"' in page.text
        and '<strong>2</strong>, <span class="key closed">closed</span> <strong>1</strong>' in page.text
    )


async def test_tables_sort_filter_page_and_export_csv(
    client: httpx.AsyncClient, services: Services, make_key: KeyMaker
) -> None:
    key = plaintext(await make_key("viewer"))
    await _world(services, extra_clients=30)
    await sign_in(client, key)
    first = await client.get("/")
    assert len(_client_order(first.text)) == 25 and 'id="clients-page">Page 1 of 2<' in first.text
    assert 'href="/?table=clients&amp;sort=share&amp;page=2#clients-title"' in first.text
    second = await client.get("/", params={"page": 2})
    assert len(_client_order(second.text)) == 8 and _client_order(second.text)[-1] == "c-mystery"
    by_name = await client.get("/", params={"sort": "client"})
    assert _client_order(by_name.text)[:2] == ["c-extra-00", "c-extra-01"]
    assert 'aria-sort="ascending"><a href="/?table=clients&amp;sort=-client' in by_name.text
    found = await client.get("/", params={"q": "mystery"})
    assert _client_order(found.text) == ["c-mystery"] and "1 row match" in found.text
    exported = await client.get("/", params={"format": "csv", "sort": "client", "q": "extra"})
    assert exported.status_code == 200 and exported.headers["content-type"].startswith("text/csv")
    assert 'filename="clients.csv"' in exported.headers["content-disposition"]
    rows = list(csv.reader(io.StringIO(exported.text)))
    assert rows[0][:2] == ["Client", "PSA company"] and len(rows) == 31 and rows[1][0] == "Extra 00"
    everything = list(csv.reader(io.StringIO((await client.get("/?format=csv")).text)))
    mystery = next(r for r in everything if r[0] == "Mystery Works")
    assert mystery[-1] == "" and mystery[-2] == "0"  # share unknown, not 0
    bad = await client.get("/", params={"table": "nope"})
    assert bad.status_code == 422


async def test_currency_setting_validates_and_formats_billing_amounts(
    client: httpx.AsyncClient, stack: Stack
) -> None:
    url = "/api/v1/settings/currency"
    assert (await client.get(url, headers=stack.headers)).json() == {"currency": "USD", "locale": "en_US"}
    await record_usage(stack, "c-0", [40, 60, 55])
    await sign_in(client, plaintext(stack.headers))
    page = await client.get("/billing", params={"period": PERIOD})
    assert 'id="billing-total">$270.00<' in page.text
    bad = await client.put(url, json={"currency": "EUX"}, headers=stack.headers)
    assert bad.status_code == 422 and "currency" in bad.text
    bad_locale = await client.put(url, json={"currency": "EUR", "locale": "xx_QQ"}, headers=stack.headers)
    assert bad_locale.status_code == 422 and "locale" in bad_locale.text
    saved = await client.put(url, json={"currency": "eur", "locale": "en_IE"}, headers=stack.headers)
    assert saved.status_code == 200 and saved.json() == {"currency": "EUR", "locale": "en_IE"}
    page = await client.get("/billing", params={"period": PERIOD})
    assert 'id="billing-total">€270.00<' in page.text and "€4.50" in page.text
    audit = await client.get("/api/v1/audit", params={"kind": "currency.updated"}, headers=stack.headers)
    assert audit.status_code == 200 and len(audit.json()["events"]) == 1, audit.text
