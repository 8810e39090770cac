"""Wire format of the HaloPSA adapter's requests (respx), and its pure helpers."""

from __future__ import annotations

import json
import urllib.parse
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import httpx
import pytest
import respx

from adapters.base import BillingLine, ConnectionContext, TicketSpec
from adapters.errors import CredentialsError, VendorRequestError
from adapters.halopsa.adapter import (
    HaloPsaAdapter,
    field_from_message,
    marker_token,
    merge_status_block,
    parse_halo_error,
    summary_with_marker,
)
from adapters.halopsa.models import HaloCredentials, HaloOptions

INSTANCE = "https://acme.halopsa.com"
API = f"{INSTANCE}/api"
TOKEN_URL = f"{INSTANCE}/auth/token"


async def no_sleep(_seconds: float) -> None:
    return None


def make_adapter(*, tenant: str | None = "acme", **options: Any) -> HaloPsaAdapter:
    ctx = ConnectionContext(
        connection_id="halo-wire",
        base_url=INSTANCE,
        credentials=HaloCredentials(client_id="app-id", client_secret="app-secret", tenant=tenant),
        options=HaloOptions(**options),
        sleep=no_sleep,
    )
    return HaloPsaAdapter(ctx)


def token_reply(token: str = "tok-1", expires_in: int = 3600) -> httpx.Response:
    return httpx.Response(
        200, json={"token_type": "Bearer", "access_token": token, "expires_in": expires_in, "scope": "all"}
    )


@pytest.fixture
def router() -> Iterator[respx.MockRouter]:
    with respx.mock(assert_all_called=True) as mock:
        mock.post(TOKEN_URL, name="token").mock(return_value=token_reply())
        yield mock


def form_of(request: httpx.Request) -> dict[str, str]:
    return dict(urllib.parse.parse_qsl(request.content.decode()))


def ticket_spec(**extra: Any) -> TicketSpec:
    values: dict[str, Any] = {
        "marker": "cn:ep-7:threat_detected",
        "company_id": "12",
        "board_id": "2",
        "summary": "PC-7: threat detected",
        "description": "Trojan quarantined.",
        "priority_id": "1",
        "type_id": "3",
        "status_id": None,
    }
    values.update(extra)
    return TicketSpec(**values)


async def test_token_request_and_bearer_header(router: respx.MockRouter) -> None:
    clients = router.get(f"{API}/Client").respond(json={"record_count": 0, "clients": []})
    adapter = make_adapter()
    await adapter.test_connection()
    await adapter.aclose()
    token_call = router.calls[0].request
    assert token_call.method == "POST"
    assert str(token_call.url) == f"{TOKEN_URL}?tenant=acme"
    assert token_call.headers["content-type"] == "application/x-www-form-urlencoded"
    assert form_of(token_call) == {
        "grant_type": "client_credentials",
        "client_id": "app-id",
        "client_secret": "app-secret",
        "scope": "all",
    }
    api_call = clients.calls[0].request
    assert api_call.headers["authorization"] == "Bearer tok-1"
    assert dict(api_call.url.params) == {"pageinate": "true", "page_size": "1", "page_no": "1"}


async def test_no_tenant_and_custom_auth_url(router: respx.MockRouter) -> None:
    custom = router.post("https://auth.example.net/auth/token").mock(return_value=token_reply("tok-x"))
    router.get(f"{API}/Client").respond(json={"record_count": 0, "clients": []})
    adapter = make_adapter(tenant=None, auth_url="https://auth.example.net/auth/")
    await adapter.test_connection()
    await adapter.aclose()
    assert str(custom.calls[0].request.url) == "https://auth.example.net/auth/token"
    default = router.routes.pop("token")
    assert not default.called  # the instance's own auth server is never asked


async def test_401_fetches_a_new_token_once_and_retries(router: respx.MockRouter) -> None:
    router.post(TOKEN_URL).mock(side_effect=[token_reply("tok-1"), token_reply("tok-2")])
    clients = router.get(f"{API}/Client").mock(
        side_effect=[httpx.Response(401), httpx.Response(200, json={"record_count": 0, "clients": []})]
    )
    adapter = make_adapter()
    await adapter.test_connection()
    await adapter.aclose()
    assert [c.request.headers["authorization"] for c in clients.calls] == ["Bearer tok-1", "Bearer tok-2"]


async def test_second_401_is_a_credentials_error(router: respx.MockRouter) -> None:
    router.get(f"{API}/Client").respond(401)
    adapter = make_adapter()
    with pytest.raises(CredentialsError):
        await adapter.test_connection()
    await adapter.aclose()
    assert len([c for c in router.calls if c.request.url.path == "/auth/token"]) == 2


async def test_ticket_create_body(router: respx.MockRouter) -> None:
    router.get(f"{API}/Team").respond(
        json=[{"id": 2, "name": "Security Operations", "department_id": 4, "inactive": False}]
    )
    route = router.post(f"{API}/Tickets").respond(
        json={"id": 1234, "summary": "x", "client_id": 12, "status_id": 1, "hasbeenclosed": False}
    )
    adapter = make_adapter(marker_custom_field_id=201)
    ref = await adapter.create_ticket(ticket_spec())
    await adapter.aclose()
    assert json.loads(route.calls[0].request.content) == [
        {
            "summary": "PC-7: threat detected [cn:ep-7:threat_detected]",
            "details": "Trojan quarantined.",
            "client_id": 12,
            "team": "Security Operations",
            "team_department_id": 4,
            "tickettype_id": 3,
            "priority_id": 1,
            "customfields": [{"id": 201, "value": "cn:ep-7:threat_detected"}],
        }
    ]
    assert ref.id == "1234" and ref.url == f"{INSTANCE}/ticket?id=1234" and not ref.closed


async def test_note_and_close_action_bodies(router: respx.MockRouter) -> None:
    actions = router.post(f"{API}/Actions").respond(json={"id": 1, "ticket_id": 1234})
    router.get(f"{API}/Tickets/1234").respond(json={"id": 1234, "status_id": 2, "client_id": 12})
    adapter = make_adapter()
    await adapter.add_note("1234", "Scan queued.")
    await adapter.close_ticket("1234", None, "Threat removed.")
    await adapter.aclose()
    bodies = [json.loads(c.request.content) for c in actions.calls]
    assert bodies == [
        [
            {
                "ticket_id": 1234,
                "outcome": "Private Note",
                "note": "Scan queued.",
                "hiddenfromuser": True,
                "sendemail": False,
            }
        ],
        [
            {
                "ticket_id": 1234,
                "outcome": "Close",
                "note": "Threat removed.",
                "hiddenfromuser": True,
                "new_status": 9,
                "sendemail": False,
            }
        ],
    ]


async def test_close_with_outcome_id_and_explicit_status(router: respx.MockRouter) -> None:
    actions = router.post(f"{API}/Actions").respond(json={"id": 1})
    router.get(f"{API}/Tickets/55").respond(json={"id": 55, "status_id": 1})
    adapter = make_adapter(close_outcome_id=12, notes_hidden_from_user=False)
    await adapter.close_ticket("55", "22", "")
    await adapter.aclose()
    assert json.loads(actions.calls[0].request.content) == [
        {
            "ticket_id": 55,
            "outcome_id": 12,
            "note": "Closed",
            "hiddenfromuser": False,
            "new_status": 22,
            "sendemail": False,
        }
    ]


async def test_billing_posts_every_line_back_with_the_new_one(router: respx.MockRouter) -> None:
    existing = {
        "id": 24963,
        "ihid": -94,
        "_itemid": 1402,
        "qty_order": 1.0,
        "unit_price": 825.0,
        "unit_cost": 0.0,
        "item_internal_reference": "",
        "nominal_code": "MS-Gold",
        "quantity_assets": [],
        "tax_rate": 20.0,
    }
    router.get(f"{API}/RecurringInvoice").respond(
        json={"record_count": 1, "invoices": [{"id": -94, "client_id": 12, "contract_id": 100}]}
    )
    router.get(f"{API}/RecurringInvoice/-94").respond(
        json={"id": -94, "client_id": 12, "contract_id": 100, "lines": [existing]}
    )
    post = router.post(f"{API}/RecurringInvoice").mock(
        side_effect=lambda request: httpx.Response(
            200,
            json={
                "id": -94,
                "lines": [existing, {**json.loads(request.content)[0]["lines"][1], "id": 25000}],
            },
        )
    )
    adapter = make_adapter()
    result = await adapter.upsert_billing_line(
        BillingLine(
            marker="bill:12:EDR",
            company_id="12",
            agreement_id="100",
            product_id="783",
            description="EDR per endpoint",
            quantity=Decimal("14"),
            unit_price=Decimal("6.00"),
            unit_cost=Decimal("2.50"),
        )
    )
    await adapter.aclose()
    assert (result.action, result.line_id) == ("created", "25000")
    search = router.calls[1].request.url.params
    assert (search["client_id"], search["contract_id"]) == ("12", "100")
    assert json.loads(post.calls[0].request.content) == [
        {
            "id": -94,
            "lines": [
                existing,
                {
                    "_itemid": 783,
                    "item_shortdescription": "EDR per endpoint",
                    "item_longdescription": "EDR per endpoint",
                    "item_internal_reference": "[bill:12:EDR]",
                    "qty_order": 14.0,
                    "unit_price": 6.0,
                    "unit_cost": 2.5,
                    "recurring_invoice_quantity_type": 0,
                },
            ],
        }
    ]


async def test_400_body_becomes_a_request_error_naming_the_field(router: respx.MockRouter) -> None:
    router.post(f"{API}/Actions").respond(400, json="An Outcome must be entered for this Action")
    adapter = make_adapter()
    with pytest.raises(VendorRequestError) as info:
        await adapter.add_note("5", "x")
    await adapter.aclose()
    assert (info.value.field, info.value.status) == ("outcome", 400)
    assert len(router.calls) == 2  # token + one POST: a 400 is never retried


@pytest.mark.parametrize(
    ("body", "message", "field"),
    [
        ("Please select a valid Client", "Please select a valid Client", "client_id"),
        ({"resultCode": 3, "errorMessage": "Summary is required"}, "3: Summary is required", "summary"),
        (
            {"ClassName": "System.Exception", "Message": "Invalid Asset Type"},
            "System.Exception: Invalid Asset Type",
            "assettype_id",
        ),
        ({"error": "invalid_client", "error_description": "bad secret"}, "invalid_client: bad secret", None),
        ({"message": "Ticket Type not allowed"}, "Ticket Type not allowed", "tickettype_id"),
    ],
)
def test_parse_halo_error_shapes(body: Any, message: str, field: str | None) -> None:
    response = httpx.Response(400, json=body, request=httpx.Request("POST", API))
    assert parse_halo_error(response) == (message, field)


def test_parse_halo_error_plain_text() -> None:
    response = httpx.Response(500, text="Server Error", request=httpx.Request("GET", API))
    assert parse_halo_error(response) == ("Server Error", None)


def test_helpers() -> None:
    assert marker_token("cn:ep-1:not_protected") == "[cn:ep-1:not_protected]"
    long = marker_token("x" * 80)
    assert long.startswith("[cn-") and len(long) == 29 and long == marker_token("x" * 80)
    summary = summary_with_marker("word " * 100, "[m]")
    assert summary.endswith("... [m]") and len(summary) <= 250
    assert field_from_message("An Outcome must be entered") == "outcome"
    assert field_from_message("Something odd") is None
    merged = merge_status_block(
        "keep\n[connector status]\nold: 1\n[/connector status]\ntail", {"b": "2", "a": "1"}
    )
    assert merged == "keep\n[connector status]\na: 1\nb: 2\n[/connector status]\ntail"
