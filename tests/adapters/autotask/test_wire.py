"""Wire format of the Autotask adapter's requests (respx), and its pure helpers."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import httpx
import pytest
import respx

from adapters.autotask.adapter import (
    AutotaskAdapter,
    autotask_date,
    field_from_message,
    marker_token,
    note_title,
    parse_autotask_error,
)
from adapters.autotask.models import AutotaskCredentials, AutotaskOptions
from adapters.base import BillingLine, ConnectionContext, TicketSpec
from adapters.errors import CredentialsError, VendorRequestError

DISCOVERY = "https://webservices.autotask.net/ATServicesRest"
ZONE = "https://webservices14.autotask.net/ATServicesRest/"
API = "https://webservices14.autotask.net/ATServicesRest/V1.0"
NOW = datetime(2025, 3, 14, 10, 30, tzinfo=UTC)


async def no_sleep(_seconds: float) -> None:
    return None


def make_adapter(**options: Any) -> AutotaskAdapter:
    ctx = ConnectionContext(
        connection_id="at-wire",
        base_url=DISCOVERY,
        credentials=AutotaskCredentials(
            username="api@msp.example", secret="s3cret", integration_code="TRACKINGID123"
        ),
        options=AutotaskOptions(**options),
        sleep=no_sleep,
        extra={"now": lambda: NOW},
    )
    return AutotaskAdapter(ctx)


def page(items: list[dict[str, Any]], next_url: str | None = None) -> httpx.Response:
    details = {"count": len(items), "requestCount": 500, "prevPageUrl": None, "nextPageUrl": next_url}
    return httpx.Response(200, json={"items": items, "pageDetails": details})


@pytest.fixture
def router() -> Iterator[respx.MockRouter]:
    with respx.mock(assert_all_called=True) as mock:
        mock.get(f"{DISCOVERY}/V1.0/ZoneInformation").respond(
            json={"zoneName": "America West 2", "url": ZONE, "webUrl": "https://ww14.autotask.net/", "ci": 7}
        )
        mock.get(f"{API}/ThresholdInformation").respond(
            json={
                "externalRequestThreshold": 10000,
                "requestThresholdTimeframe": 60,
                "currentTimeframeRequestCount": 120,
            }
        )
        yield mock


def body_of(request: httpx.Request) -> Any:
    return json.loads(request.content)


async def test_zone_discovery_and_auth_headers(router: respx.MockRouter) -> None:
    adapter = make_adapter()
    await adapter.test_connection()
    await adapter.aclose()
    zone, threshold = (call.request for call in router.calls)
    assert str(zone.url) == f"{DISCOVERY}/V1.0/ZoneInformation?user=api%40msp.example"
    assert str(threshold.url) == f"{API}/ThresholdInformation"
    for request in (zone, threshold):
        assert request.headers["ApiIntegrationCode"] == "TRACKINGID123"
        assert request.headers["UserName"] == "api@msp.example"
        assert request.headers["Secret"] == "s3cret"
        assert "authorization" not in request.headers
        assert "impersonationresourceid" not in request.headers


async def test_company_query_body_and_paging_by_post(router: respx.MockRouter) -> None:
    next_url = f"{API}/Companies/query/next?paging=abc123"
    first = router.post(f"{API}/Companies/query").mock(
        return_value=page([{"id": 1, "companyName": "A", "companyNumber": "A1"}], next_url)
    )
    second = router.post(next_url).mock(return_value=page([{"id": 2, "companyName": "B"}]))
    adapter = make_adapter()
    companies = [c async for c in adapter.list_companies()]
    await adapter.aclose()
    assert [(c.id, c.name, c.identifier) for c in companies] == [("1", "A", "A1"), ("2", "B", None)]
    expected = {
        "filter": [{"op": "eq", "field": "isActive", "value": True}],
        "maxRecords": 500,
        "includeFields": ["id", "companyName", "companyNumber", "isActive"],
    }
    assert body_of(first.calls.last.request) == expected
    assert second.calls.last.request.method == "POST"
    assert body_of(second.calls.last.request) == expected
    assert second.calls.last.request.headers["Content-Type"] == "application/json"


async def test_next_page_url_on_another_host_is_refused(router: respx.MockRouter) -> None:
    router.post(f"{API}/Companies/query").mock(
        return_value=page([{"id": 1, "companyName": "A"}], "https://evil.example/ATServicesRest/V1.0/x")
    )
    adapter = make_adapter()
    with pytest.raises(Exception, match="off the zone host"):
        [c async for c in adapter.list_companies()]
    await adapter.aclose()


async def test_find_ticket_and_create_bodies(router: respx.MockRouter) -> None:
    query = router.post(f"{API}/Tickets/query").mock(return_value=page([]))
    create = router.post(f"{API}/Tickets").respond(json={"itemId": 812})
    router.get(f"{API}/Tickets/812").respond(
        json={"item": {"id": 812, "ticketNumber": "T20250314.0001", "status": 1, "externalID": "cn:ep-7"}}
    )
    adapter = make_adapter()
    spec = TicketSpec(
        marker="cn:ep-7",
        company_id="174",
        board_id="29683481",
        summary="PC-7:   threat detected",
        description="Trojan quarantined.",
        priority_id="4",
        type_id="10",
    )
    ref = await adapter.create_ticket(spec)
    await adapter.aclose()
    assert (ref.id, ref.number, ref.closed) == ("812", "T20250314.0001", False)
    assert body_of(query.calls.last.request) == {
        "filter": [
            {"op": "eq", "field": "externalID", "value": "cn:ep-7"},
            {"op": "eq", "field": "companyID", "value": 174},
        ],
        "maxRecords": 500,
        "includeFields": ["id", "ticketNumber", "companyID", "status", "externalID", "completedDate"],
    }
    assert body_of(create.calls.last.request) == {
        "companyID": 174,
        "title": "PC-7: threat detected",
        "description": "Trojan quarantined.",
        "status": 1,
        "priority": 4,
        "queueID": 29683481,
        "issueType": 10,
        "externalID": "cn:ep-7",
    }


async def test_note_and_close_bodies(router: respx.MockRouter) -> None:
    router.get(f"{API}/Tickets/812").respond(json={"item": {"id": 812, "status": 1}})
    router.post(f"{API}/TicketNotes/query").mock(return_value=page([]))
    note = router.post(f"{API}/Tickets/812/Notes").respond(json={"itemId": 9001})
    patch = router.patch(f"{API}/Tickets").respond(json={"itemId": 812})
    adapter = make_adapter(complete_status_id=5, note_publish=2)
    await adapter.close_ticket("812", None, "Cleared by the RMM.")
    await adapter.aclose()
    assert body_of(note.calls.last.request) == {
        "ticketID": 812,
        "title": "Resolution",
        "description": "Cleared by the RMM.",
        "noteType": 1,
        "publish": 2,
    }
    assert body_of(patch.calls.last.request) == {"id": 812, "status": 5, "resolution": "Cleared by the RMM."}


async def test_seat_adjustment_body_is_a_delta(router: respx.MockRouter) -> None:
    router.post(f"{API}/ContractServices/query").mock(
        return_value=page(
            [{"id": 1201, "contractID": 29684001, "serviceID": 29683601, "unitPrice": 6.0, "unitCost": 2.5}]
        )
    )
    units = router.post(f"{API}/ContractServiceUnits/query").mock(
        return_value=page(
            [
                {
                    "id": 5001,
                    "units": 5,
                    "startDate": "2025-03-01T00:00:00",
                    "endDate": "2025-03-31T00:00:00",
                },
            ]
        )
    )
    adjust = router.post(f"{API}/ContractServiceAdjustments").respond(json={"itemId": 77})
    adapter = make_adapter()
    line = BillingLine(
        marker="bill:1",
        company_id="174",
        agreement_id="29684001",
        product_id="29683601",
        description="EDR",
        quantity=Decimal(12),
        unit_price=Decimal("6.00"),
        unit_cost=Decimal("2.50"),
    )
    result = await adapter.upsert_billing_line(line)
    await adapter.aclose()
    assert result.action == "updated" and result.previous_quantity == Decimal(5)
    assert body_of(units.calls.last.request)["filter"] == [
        {"op": "eq", "field": "contractID", "value": 29684001},
        {"op": "eq", "field": "serviceID", "value": 29683601},
        {"op": "lte", "field": "startDate", "value": "2025-03-14T00:00:00"},
        {"op": "gte", "field": "endDate", "value": "2025-03-14T00:00:00"},
    ]
    assert body_of(adjust.calls.last.request) == {
        "contractID": 29684001,
        "serviceID": 29683601,
        "contractServiceID": 1201,
        "effectiveDate": "2025-03-14T00:00:00",
        "unitChange": 7,
        "adjustedUnitPrice": 6.0,
        "adjustedUnitCost": 2.5,
    }


async def test_udf_filter_and_or_grouping_in_configuration_lookup(router: respx.MockRouter) -> None:
    query = router.post(f"{API}/ConfigurationItems/query").mock(return_value=page([]))
    adapter = make_adapter()
    from adapters.base import ConfigurationUpdate

    update = ConfigurationUpdate(company_id="174", device_name="PC-7", serial_number="SN7")
    assert await adapter.upsert_configuration(update) is None
    await adapter.aclose()
    assert body_of(query.calls.last.request)["filter"] == [
        {"op": "eq", "field": "companyID", "value": 174},
        {
            "op": "or",
            "items": [
                {"op": "eq", "field": "referenceTitle", "value": "PC-7"},
                {"op": "eq", "field": "serialNumber", "value": "SN7"},
            ],
        },
    ]


async def test_401_is_credentials_error_and_not_retried(router: respx.MockRouter) -> None:
    route = router.post(f"{API}/Contracts/query").respond(401)
    adapter = make_adapter()
    with pytest.raises(CredentialsError):
        await adapter.list_agreements("174")
    await adapter.aclose()
    assert route.call_count == 1


async def test_error_body_becomes_vendor_error_naming_the_field(router: respx.MockRouter) -> None:
    router.post(f"{API}/Tickets/query").mock(return_value=page([]))
    route = router.post(f"{API}/Tickets").respond(
        500, json={"errors": ["Value does not reference an existing entity for issueType . "]}
    )
    adapter = make_adapter()
    spec = TicketSpec(marker="m", company_id="1", board_id="2", summary="s", description="d", type_id="99")
    with pytest.raises(VendorRequestError) as caught:
        await adapter.create_ticket(spec)
    await adapter.aclose()
    assert caught.value.field == "issueType"
    assert route.call_count == 1


async def test_bad_integration_code_is_a_credentials_error(router: respx.MockRouter) -> None:
    router.get(f"{API}/ThresholdInformation").respond(
        500, json={"errors": ["The ApiIntegrationCode is invalid."]}
    )
    adapter = make_adapter()
    with pytest.raises(CredentialsError) as caught:
        await adapter.test_connection()
    await adapter.aclose()
    assert caught.value.field == "integration_code"


# ---------------------------------------------------------------------------------------------
# Pure helpers
# ---------------------------------------------------------------------------------------------


def test_marker_token() -> None:
    assert marker_token("cn:ep-1:not_protected") == "cn:ep-1:not_protected"
    assert marker_token("a b/c") == "a-b-c"
    long = marker_token("x" * 60)
    assert long.startswith("cn-") and len(long) <= 50 and long == marker_token("x" * 60)


def test_field_from_message() -> None:
    assert field_from_message("Value does not reference an existing entity for taskType . ", []) == "taskType"
    assert field_from_message("Missing Required Field: priority.", ["title", "priority"]) == "priority"
    assert field_from_message("The user-defined field 'Colour' does not exist.", ["Colour", "id"]) == "Colour"
    assert field_from_message("Something went wrong", ["id", "title"]) is None


def test_parse_autotask_error_uses_the_sent_body() -> None:
    request = httpx.Request("POST", f"{API}/Tickets", json={"companyID": 1, "queueID": 3})
    response = httpx.Response(
        500, json={"errors": ["The queueID is inactive.", "Second problem."]}, request=request
    )
    assert parse_autotask_error(response) == ("The queueID is inactive.; Second problem.", "queueID")
    empty = httpx.Response(401, content=b"", request=request)
    assert parse_autotask_error(empty)[1] is None


def test_dates_and_titles() -> None:
    assert autotask_date(datetime(2025, 1, 31, 15, 4, 5, tzinfo=UTC)) == "2025-01-31T15:04:05"
    assert note_title("\n  First line  \nsecond") == "First line"
    assert len(note_title("y" * 400)) == 250
