"""A problem's ticket carries its endpoint's context, on every PSA fake: after a status sync wrote
the endpoint's configuration record, the ticket opened for the endpoint's problem is attached to
that record, and its body links to the problem in connector and to the endpoint in the RMM (NinjaOne,
whose console address the adapter can build)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import httpx
import pytest
from sqlalchemy import select

from adapters.ninjaone import SPEC as NINJAONE
from adapters.testing.harness import PsaHarness
from connector.infra.context import Services
from connector.models import Endpoint, EndpointConfiguration
from tests.e2e.test_vendor_matrix import (
    CONFIGURATION_FIELDS,
    PSAS,
    RMMS,
    Headers,
    _connect,
    _connect_psa,
    _map_by_suggestion,
    _sync,
    company_of,
    kind_of,
    route,
)
from tests.support.vendors import VendorRouter

CLIENTS = ("Acme Dental", "Blue Harbor Logistics")


@pytest.mark.parametrize("harness", PSAS, ids=kind_of)
async def test_ticket_is_attached_to_the_endpoints_configuration_and_links_to_it(
    harness: PsaHarness,
    client: httpx.AsyncClient,
    services: Services,
    vendors: VendorRouter,
    make_key: Callable[..., Awaitable[Headers]],
) -> None:
    [ninja] = [h for h in RMMS if h.spec.kind == NINJAONE.kind]
    headers = await make_key("engineer")
    rmm = ninja.start(clients=CLIENTS, endpoints_per_client=3, base_url="https://ninja.example.com")
    psa = harness.start(companies=CLIENTS, devices_per_company=3, configuration_fields=CONFIGURATION_FIELDS)
    route(vendors, rmm)
    route(vendors, psa)
    psa_row = await _connect_psa(client, headers, psa)
    rmm_row = await _connect(client, headers, rmm)
    await _map_by_suggestion(client, headers, rmm_row["id"], psa_row["id"], expected=len(CLIENTS))

    first = await _sync(client, headers, services, rmm_row["id"])
    assert first["status"] == "succeeded" and not first["errors"], first
    endpoint_id, seeded = next(iter(rmm.endpoints.items()))
    company = company_of(psa, rmm.clients[seeded.client_id])
    async with services.sessions() as session:
        record = await session.scalar(
            select(EndpointConfiguration.configuration_id)
            .join(Endpoint, Endpoint.id == EndpointConfiguration.endpoint_ref)
            .where(
                Endpoint.rmm_connection_id == rmm_row["id"],
                Endpoint.endpoint_id == endpoint_id,
                EndpointConfiguration.psa_connection_id == psa_row["id"],
            )
        )
    assert record is not None, "the sync kept no configuration record for the endpoint"
    assert psa.configurations(company, seeded.hostname)

    rmm.put_in_trouble(endpoint_id)
    second = await _sync(client, headers, services, rmm_row["id"])
    assert second["status"] == "succeeded", second
    [ticket] = psa.tickets(company)
    assert psa.ticket_configurations(ticket.id) == [record]
    problems = (await client.get("/api/v1/problems", params={"state": "open"}, headers=headers)).json()
    [problem] = [p for p in problems if p["endpoint_id"] == endpoint_id]
    body = "\n".join([ticket.description, *ticket.notes])  # Manage keeps the description as a note
    assert f"https://connector.example.test/problems/{problem['id']}" in body
    assert f"In the RMM: https://ninja.example.com/#/deviceDashboard/{endpoint_id}/overview" in body
    # Another endpoint of the client, whose record the PSA no longer has: its ticket still opens.
    other = next(e for e, s in rmm.endpoints.items() if s.client_id == seeded.client_id and e != endpoint_id)
    async with services.sessions() as session:
        other_record = await session.scalar(
            select(EndpointConfiguration.configuration_id)
            .join(Endpoint, Endpoint.id == EndpointConfiguration.endpoint_ref)
            .where(Endpoint.rmm_connection_id == rmm_row["id"], Endpoint.endpoint_id == other)
        )
    assert other_record is not None
    psa.delete_configuration(other_record)
    rmm.put_in_trouble(other)
    third = await _sync(client, headers, services, rmm_row["id"])
    assert third["status"] == "succeeded", third
    tickets = psa.tickets(company)
    assert len(tickets) == 2
    [new] = [t for t in tickets if t.id != ticket.id]
    assert psa.ticket_configurations(new.id) == []
    # The status change was written again and the PSA had no record left: it is forgotten.
    async with services.sessions() as session:
        kept = await session.scalar(
            select(EndpointConfiguration.configuration_id)
            .join(Endpoint, Endpoint.id == EndpointConfiguration.endpoint_ref)
            .where(Endpoint.rmm_connection_id == rmm_row["id"], Endpoint.endpoint_id == other)
        )
    assert kept is None
