"""A technician closes the ticket of a still-active Datto RMM alert, and the ticket rule says to
clear RMM alerts: the alert is resolved in Datto RMM (by the alert uid the problem kept from its
webhook), once, with an audit entry, and no second ticket opens. Through
the real Datto RMM and ConnectWise Manage adapters against their fakes."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

import httpx
import pytest
from sqlalchemy import select

from adapters.testing.harness import CLIENT_NAMES
from connector.infra.context import Services
from connector.models import AuditEvent, Problem
from tests.e2e.test_vendor_matrix import (
    CONFIGURATION_FIELDS,
    PSAS,
    RMMS,
    Headers,
    _connect,
    _map_by_suggestion,
    _post,
    _work,
    company_of,
    route,
)
from tests.support.vendors import VendorRouter

DATTO = [h for h in RMMS if h.spec.kind == "datto_rmm"]
MANAGE = [h for h in PSAS if h.spec.kind == "connectwise_manage"]


@pytest.mark.skipif(not DATTO or not MANAGE, reason="needs the Datto RMM and ConnectWise Manage harnesses")
async def test_a_technicians_close_resolves_the_alert_in_datto_rmm(
    client: httpx.AsyncClient,
    services: Services,
    vendors: VendorRouter,
    make_key: Callable[..., Awaitable[Headers]],
) -> None:
    headers = await make_key("engineer")
    client_name = CLIENT_NAMES[0]
    datto = DATTO[0].start(clients=[client_name], endpoints_per_client=2)
    psa = MANAGE[0].start(
        companies=[client_name], devices_per_company=2, configuration_fields=CONFIGURATION_FIELDS
    )
    route(vendors, datto)
    route(vendors, psa)
    psa_row = await _connect(client, headers, psa)
    await _post(
        client,
        headers,
        "/api/v1/ticket-rules",
        {
            "psa_connection_id": psa_row["id"],
            "summary_template": "{problem_title} on {hostname}",
            "note_interval_minutes": 0,
            "clear_rmm_alert": True,
            **psa.ticket_ids.rule_fields(),
        },
    )
    rmm_row = await _connect(client, headers, datto)
    await _map_by_suggestion(client, headers, rmm_row["id"], psa_row["id"], expected=1)
    endpoint = next(iter(datto.endpoints))
    device = datto.fake.devices[endpoint]
    # A threat: Datto reports none on the device itself, only its alert (and the alert's webhook).
    alert = datto.fake.add_alert(endpoint, {"@class": "ransomware_ctx"}, "Ransomware detected")
    params = {"token": rmm_row["webhook_secret"]}

    async def deliver(state: str, uid: str) -> None:
        body = {
            "source": "datto-rmm",
            "state": state,
            "alertUid": uid,
            "deviceUid": device.uid,
            "siteUid": device.site_uid,
            "hostname": device.hostname,
            "alertType": "Ransomware",
            "priority": "High",
            "message": "Ransomware detected",
            "timestamp": str(int(datetime.now(UTC).timestamp() * 1000)),
        }
        answer = await client.post(f"/webhooks/{rmm_row['id']}", json=body, params=params)
        assert answer.status_code == 202, answer.text
        await _work(services)

    await deliver("active", alert.uid)
    async with services.sessions() as session:
        opened = await session.scalar(select(Problem.vendor_alert_id).where(Problem.endpoint_id == endpoint))
    assert opened == alert.uid  # kept from the alert that opened the problem
    company = company_of(psa, client_name)
    tickets = psa.tickets(company)
    assert len(tickets) == 1 and not tickets[0].closed and not alert.resolved

    psa.human_close(tickets[0].id)
    # Datto alerts again on the device (a new alert): the closed ticket is seen, and that alert,
    # the problem's latest, is resolved in Datto.
    again = datto.fake.add_alert(endpoint, {"@class": "ransomware_ctx"}, "Ransomware detected")
    await deliver("active", again.uid)
    assert again.resolved is True
    assert datto.fake.calls["POST /v2/alert/{alertUid}/resolve"] == 1
    async with services.sessions() as session:
        cleared = select(AuditEvent).where(AuditEvent.kind == "rmm_alert.cleared")
        [entry] = list(await session.scalars(cleared))
    assert entry.after == {"alert_id": again.uid, "endpoint_id": endpoint}

    await deliver("resolved", again.uid)  # Datto's webhook for the resolution
    problems = (await client.get("/api/v1/problems", params={"state": "open"}, headers=headers)).json()
    assert [p for p in problems if p["endpoint_id"] == endpoint] == []
    assert len(psa.tickets(company)) == 1  # no second ticket: the technician's close stands
    assert datto.fake.calls["POST /v2/alert/{alertUid}/resolve"] == 1
