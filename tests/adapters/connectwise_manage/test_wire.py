"""Wire format of every request the ConnectWise Manage adapter sends (respx), and its pure helpers."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import httpx
import pytest
import respx

from adapters.base import BillingLine, ConfigurationUpdate, ConnectionContext, TicketSpec
from adapters.connectwise_manage import conditions as cond
from adapters.connectwise_manage.adapter import (
    ConnectWiseManageAdapter,
    marker_token,
    merge_status_block,
    parse_manage_error,
    summary_with_marker,
)
from adapters.connectwise_manage.fake import (
    ADDITION_FIELDS,
    CONFIGURATION_FIELDS,
    NOTE_FIELDS,
    TICKET_FIELDS,
)
from adapters.connectwise_manage.models import (
    AdditionCreate,
    ConfigurationCreate,
    ManageCredentials,
    ManageOptions,
    PatchOperation,
    ServiceNoteCreate,
    TicketCreate,
)
from adapters.errors import CredentialsError, NotFoundError, TransientVendorError, VendorRequestError

SITE = "https://na.myconnectwise.net"
API = "https://api-na.myconnectwise.net/v2025_1/apis/3.0"
AUTH = "Basic " + base64.b64encode(b"training+PUBKEY123:PRIVKEY456").decode()
CLIENT_ID = "3f2504e0-4f89-11d3-9a0c-0305e82c3301"
ACCEPT = "application/vnd.connectwise.com+json; version=2025.1"


async def no_sleep(_seconds: float) -> None:
    return None


def make_adapter(**options: Any) -> ConnectWiseManageAdapter:
    ctx = ConnectionContext(
        connection_id="cw-wire",
        base_url=SITE,
        credentials=ManageCredentials(
            company_id="training", public_key="PUBKEY123", private_key="PRIVKEY456", client_id=CLIENT_ID
        ),
        options=ManageOptions(**options),
        sleep=no_sleep,
    )
    return ConnectWiseManageAdapter(ctx)


@pytest.fixture
def router() -> Iterator[respx.MockRouter]:
    with respx.mock(assert_all_called=True) as mock:
        mock.get(f"{SITE}/login/companyinfo/training").respond(
            json={
                "CompanyName": "Training",
                "Codebase": "v2025_1/",
                "VersionCode": "v2025.1",
                "VersionNumber": "v2025.1.10431",
                "CompanyID": "training",
                "IsCloud": True,
            }
        )
        yield mock


def api_calls(router: respx.MockRouter) -> list[httpx.Request]:
    return [call.request for call in router.calls if str(call.request.url).startswith(API)]


def assert_api_headers(request: httpx.Request) -> None:
    assert request.headers["authorization"] == AUTH
    assert request.headers["clientid"] == CLIENT_ID
    assert request.headers["accept"] == ACCEPT


def body(request: httpx.Request) -> Any:
    assert request.headers["content-type"] == "application/json"
    return json.loads(request.content)


# ---------------------------------------------------------------------------------------------
# Connection
# ---------------------------------------------------------------------------------------------


async def test_discovery_is_unauthenticated_and_api_calls_carry_auth(router: respx.MockRouter) -> None:
    router.get(f"{API}/system/info").respond(json={"version": "v2025.1", "isCloud": True})
    adapter = make_adapter()
    await adapter.test_connection()
    discovery = router.calls[0].request
    assert str(discovery.url) == f"{SITE}/login/companyinfo/training"
    assert "authorization" not in discovery.headers and "clientid" not in discovery.headers
    (info,) = api_calls(router)
    assert info.method == "GET" and str(info.url) == f"{API}/system/info"
    assert_api_headers(info)
    await adapter.aclose()


async def test_pinned_version_and_on_prem_codebase_discovery() -> None:
    with respx.mock(assert_all_called=True) as mock:
        mock.get("https://psa.example.com/login/companyinfo/training").respond(
            json={"Codebase": "v4_6_release/", "IsCloud": False}
        )
        info = mock.get("https://psa.example.com/v4_6_release/apis/3.0/system/info").respond(json={})
        ctx = ConnectionContext(
            connection_id="c",
            base_url="https://psa.example.com",
            credentials=ManageCredentials(
                company_id="training", public_key="PUBKEY123", private_key="PRIVKEY456", client_id=CLIENT_ID
            ),
            options=ManageOptions(api_version="2024.11"),
            sleep=no_sleep,
        )
        adapter = ConnectWiseManageAdapter(ctx)
        await adapter.test_connection()
        assert info.calls.last.request.headers["accept"] == (
            "application/vnd.connectwise.com+json; version=2024.11"
        )
        await adapter.aclose()


@pytest.mark.parametrize("status", [401, 403])
async def test_auth_failures_are_credentials_errors_without_retry(
    router: respx.MockRouter, status: int
) -> None:
    route = router.get(f"{API}/system/info").respond(
        status, json={"code": "Unauthorized", "message": "Your credentials are invalid.", "errors": None}
    )
    adapter = make_adapter()
    with pytest.raises(CredentialsError) as info:
        await adapter.test_connection()
    assert "credentials are invalid" in str(info.value)
    assert route.call_count == 1
    await adapter.aclose()


# ---------------------------------------------------------------------------------------------
# Reads
# ---------------------------------------------------------------------------------------------


async def test_list_companies_forward_only_wire(router: respx.MockRouter) -> None:
    first = [{"id": n, "identifier": f"C{n}", "name": f"Co {n}"} for n in range(1, 1001)]
    second = [{"id": 1001, "identifier": "C1001", "name": "Co 1001", "unknownField": 1}]
    route = router.get(f"{API}/company/companies").mock(
        side_effect=[
            httpx.Response(
                200,
                json=first,
                headers={"Link": f'<{API}/company/companies?pageSize=1000&pageId=1000>; rel="next"'},
            ),
            httpx.Response(200, json=second),
        ]
    )
    adapter = make_adapter()
    companies = [c async for c in adapter.list_companies()]
    assert len(companies) == 1001 and companies[-1].identifier == "C1001"
    one, two = (call.request for call in route.calls)
    for request in (one, two):
        assert_api_headers(request)
        assert request.headers["pagination-type"] == "forward-only"
        assert request.url.params["conditions"] == "deletedFlag = False"
        assert request.url.params["fields"] == "id,identifier,name"
        assert request.url.params["pageSize"] == "1000"
        assert "page" not in request.url.params and "orderBy" not in request.url.params
    assert "pageId" not in one.url.params
    assert two.url.params["pageId"] == "1000"
    await adapter.aclose()


async def test_navigable_paging_resends_conditions(router: respx.MockRouter) -> None:
    full = [
        {"id": n, "name": f"A{n}", "company": {"id": 7}, "agreementStatus": "Active"} for n in range(1000)
    ]
    route = router.get(f"{API}/finance/agreements").mock(
        side_effect=[
            # The vendor's next link drops the filter (pyconnectwise #14); only its page number is used.
            httpx.Response(
                200, json=full, headers={"Link": f'<{API}/finance/agreements?page=2>; rel="next"'}
            ),
            httpx.Response(200, json=full[:5]),
        ]
    )
    adapter = make_adapter()
    agreements = await adapter.list_agreements("7")
    assert len(agreements) == 1005
    pages = [call.request.url.params for call in route.calls]
    assert [p["page"] for p in pages] == ["1", "2"]
    assert all(p["conditions"] == "company/id = 7" and p["pageSize"] == "1000" for p in pages)
    assert all(p["orderBy"] == "id asc" for p in pages)
    await adapter.aclose()


async def test_ticket_options_wire(router: respx.MockRouter) -> None:
    boards = router.get(f"{API}/service/boards").respond(json=[{"id": 3, "name": "Alerts"}])
    priorities = router.get(f"{API}/service/priorities").respond(json=[{"id": 8, "name": "P1"}])
    statuses = router.get(f"{API}/service/boards/3/statuses").respond(
        json=[{"id": 30, "name": "New"}, {"id": 31, "name": "Closed", "closedStatus": True}]
    )
    types = router.get(f"{API}/service/boards/3/types").respond(json=[{"id": 40, "name": "Alert"}])
    adapter = make_adapter()
    options = await adapter.list_ticket_options()
    assert [(o.id, o.closed) for o in options["statuses"]] == [("30", False), ("31", True)]
    assert boards.calls.last.request.url.params["conditions"] == "inactiveFlag = False"
    assert priorities.calls.last.request.url.params["orderBy"] == "sortOrder asc"
    assert statuses.calls.last.request.url.params["conditions"] == "inactive = False"
    assert types.calls.last.request.url.params["conditions"] == "inactiveFlag = False"
    await adapter.aclose()


async def test_reads_retry_500_then_succeed(router: respx.MockRouter) -> None:
    route = router.get(f"{API}/system/info").mock(
        side_effect=[
            httpx.Response(
                500, json={"code": "UnexpectedServerError", "message": "Execution Timeout Expired"}
            ),
            httpx.Response(200, json={}),
        ]
    )
    adapter = make_adapter()
    await adapter.test_connection()
    assert route.call_count == 2
    await adapter.aclose()


# ---------------------------------------------------------------------------------------------
# Tickets
# ---------------------------------------------------------------------------------------------


SPEC = TicketSpec(
    marker="cn:42:threat_detected",
    company_id="19",
    board_id="3",
    summary="PC-7: threat detected",
    description="Trojan:Win32/Wacatac quarantined",
    priority_id="8",
    type_id="40",
    status_id="30",
)


async def test_create_ticket_wire(router: respx.MockRouter) -> None:
    route = router.post(f"{API}/service/tickets").respond(
        201, json={"id": 5001, "summary": "x", "closedFlag": False}
    )
    adapter = make_adapter()
    ref = await adapter.create_ticket(SPEC)
    assert ref.id == "5001"
    assert ref.url == f"{SITE}/v2025_1/ConnectWise.aspx?routeTo=ServiceFV&recid=5001"
    request = route.calls.last.request
    assert_api_headers(request)
    sent = body(request)
    assert sent == {
        "summary": "PC-7: threat detected [cn:42:threat_detected]",
        "board": {"id": 3},
        "company": {"id": 19},
        "status": {"id": 30},
        "priority": {"id": 8},
        "type": {"id": 40},
        "initialDescription": "Trojan:Win32/Wacatac quarantined",
        "externalXRef": "cn:42:threat_detected",
    }
    TicketCreate.model_validate(sent)
    assert set(sent) <= TICKET_FIELDS
    await adapter.aclose()


async def test_create_ticket_500_is_not_reposted_and_marker_is_looked_up(router: respx.MockRouter) -> None:
    post = router.post(f"{API}/service/tickets").respond(500, json={"code": "x", "message": "timeout"})
    search = router.get(f"{API}/service/tickets").mock(
        side_effect=[
            httpx.Response(200, json=[]),
            httpx.Response(
                200,
                json=[
                    {
                        "id": 77,
                        "summary": "PC-7: threat detected [cn:42:threat_detected]",
                        "closedFlag": False,
                    }
                ],
            ),
        ]
    )
    adapter = make_adapter()
    ref = await adapter.create_ticket(SPEC)
    assert ref.id == "77"
    assert post.call_count == 1
    params = search.calls.last.request.url.params
    assert params["conditions"] == 'summary contains "[[]cn:42:threat_detected]" and company/id = 19'
    assert params["orderBy"] == "id desc"
    await adapter.aclose()


async def test_create_ticket_connect_error_is_resent(router: respx.MockRouter) -> None:
    post = router.post(f"{API}/service/tickets").mock(
        side_effect=[httpx.ConnectError("refused"), httpx.Response(201, json={"id": 9})]
    )
    adapter = make_adapter()
    assert (await adapter.create_ticket(SPEC)).id == "9"
    assert post.call_count == 2  # the vendor never saw the first one
    await adapter.aclose()


async def test_add_note_wire(router: respx.MockRouter) -> None:
    route = router.post(f"{API}/service/tickets/5001/notes").respond(201, json={"id": 1})
    adapter = make_adapter()
    await adapter.add_note("5001", "Seen again")
    request = route.calls.last.request
    assert_api_headers(request)
    sent = body(request)
    assert sent == {"text": "Seen again", "detailDescriptionFlag": True}
    ServiceNoteCreate.model_validate(sent)
    assert set(sent) <= NOTE_FIELDS
    await adapter.aclose()


async def test_close_ticket_wire(router: respx.MockRouter) -> None:
    get = router.get(f"{API}/service/tickets/5001").respond(
        json={"id": 5001, "board": {"id": 3}, "status": {"id": 30}, "closedFlag": False}
    )
    statuses = router.get(f"{API}/service/boards/3/statuses").respond(
        json=[{"id": 31, "name": "Closed", "closedStatus": True, "inactive": False}]
    )
    notes = router.get(f"{API}/service/tickets/5001/notes").respond(json=[])
    post = router.post(f"{API}/service/tickets/5001/notes").respond(201, json={"id": 2})
    patch = router.patch(f"{API}/service/tickets/5001").respond(json={"id": 5001})
    adapter = make_adapter()
    await adapter.close_ticket("5001", None, "Resolved by the RMM.")
    assert get.calls.last.request.url.params["fields"] == "id,board,status,closedFlag"
    assert statuses.calls.last.request.url.params["conditions"] == "closedStatus = True and inactive = False"
    assert notes.calls.last.request.url.params["conditions"] == "resolutionFlag = True"
    assert body(post.calls.last.request) == {"text": "Resolved by the RMM.", "resolutionFlag": True}
    request = patch.calls.last.request
    assert_api_headers(request)
    sent = body(request)
    assert sent == [{"op": "replace", "path": "status", "value": {"id": 31}}]
    for op in sent:
        PatchOperation.model_validate(op)
    await adapter.aclose()


async def test_patch_500_is_retried_because_replace_is_idempotent(router: respx.MockRouter) -> None:
    router.get(f"{API}/service/tickets/5001").respond(
        json={"id": 5001, "board": {"id": 3}, "status": {"id": 30}}
    )
    patch = router.patch(f"{API}/service/tickets/5001").mock(
        side_effect=[httpx.Response(500, json={"message": "timeout"}), httpx.Response(200, json={})]
    )
    adapter = make_adapter()
    await adapter.close_ticket("5001", "31", "")
    assert patch.call_count == 2
    await adapter.aclose()


async def test_error_body_becomes_field_error(router: respx.MockRouter) -> None:
    router.post(f"{API}/service/tickets").respond(
        400,
        json={
            "code": "InvalidObject",
            "message": "ticket object is invalid",
            "errors": [
                {
                    "code": "InvalidField",
                    "message": "The summary is too long",
                    "resource": "ticket",
                    "field": "summary",
                }
            ],
        },
    )
    adapter = make_adapter()
    with pytest.raises(VendorRequestError) as info:
        await adapter.create_ticket(SPEC)
    assert info.value.field == "summary"
    assert info.value.message == "InvalidObject: ticket object is invalid (The summary is too long)"
    await adapter.aclose()


async def test_missing_record_is_not_found(router: respx.MockRouter) -> None:
    router.get(f"{API}/service/tickets/9").respond(
        404, json={"code": "NotFound", "message": "Ticket Id 9 not found"}
    )
    adapter = make_adapter()
    with pytest.raises(NotFoundError):
        await adapter.close_ticket("9", "31", "x")
    await adapter.aclose()


# ---------------------------------------------------------------------------------------------
# Configurations and additions
# ---------------------------------------------------------------------------------------------


async def test_configuration_update_wire(router: respx.MockRouter) -> None:
    find = router.get(f"{API}/company/configurations").respond(
        json=[{"id": 55, "name": "PC-7", "serialNumber": "SN1", "notes": None, "company": {"id": 19}}]
    )
    patch = router.patch(f"{API}/company/configurations/55").respond(json={"id": 55})
    adapter = make_adapter()
    update = ConfigurationUpdate(
        company_id="19", device_name='PC "7"', serial_number="SN1", fields={"Protection": "on"}
    )
    assert await adapter.upsert_configuration(update) == "55"
    assert find.calls.last.request.url.params["conditions"] == (
        'company/id = 19 and (name = "PC \\"7\\"" or serialNumber = "SN1")'
    )
    sent = body(patch.calls.last.request)
    assert sent == [
        {"op": "replace", "path": "notes", "value": "[connector status]\nProtection: on\n[/connector status]"}
    ]
    await adapter.aclose()


async def test_configuration_create_wire(router: respx.MockRouter) -> None:
    router.get(f"{API}/company/configurations").respond(json=[])
    post = router.post(f"{API}/company/configurations").respond(201, json={"id": 56, "name": "PC-8"})
    adapter = make_adapter(default_configuration_type_id=12)
    update = ConfigurationUpdate(
        company_id="19", device_name="PC-8", create_if_missing=True, fields={"AV": "ok"}
    )
    assert await adapter.upsert_configuration(update) == "56"
    sent = body(post.calls.last.request)
    assert sent == {
        "name": "PC-8",
        "type": {"id": 12},
        "company": {"id": 19},
        "notes": "[connector status]\nAV: ok\n[/connector status]",
    }
    ConfigurationCreate.model_validate(sent)
    assert set(sent) <= CONFIGURATION_FIELDS
    await adapter.aclose()


async def test_custom_fields_patch_sends_whole_array(router: respx.MockRouter) -> None:
    router.get(f"{API}/company/configurations").respond(
        json=[
            {
                "id": 55,
                "name": "PC-7",
                "customFields": [
                    {
                        "id": 1,
                        "caption": "AV",
                        "type": "Text",
                        "entryMethod": "EntryField",
                        "numberOfDecimals": 0,
                    },
                    {
                        "id": 2,
                        "caption": "Owner",
                        "type": "Text",
                        "entryMethod": "EntryField",
                        "value": "Ann",
                    },
                ],
            }
        ]
    )
    patch = router.patch(f"{API}/company/configurations/55").respond(json={"id": 55})
    adapter = make_adapter(configuration_fields_target="custom_fields")
    await adapter.upsert_configuration(
        ConfigurationUpdate(company_id="19", device_name="PC-7", fields={"AV": "ok"})
    )
    assert body(patch.calls.last.request) == [
        {
            "op": "replace",
            "path": "customFields",
            "value": [
                {
                    "id": 1,
                    "caption": "AV",
                    "type": "Text",
                    "entryMethod": "EntryField",
                    "numberOfDecimals": 0,
                    "value": "ok",
                },
                {"id": 2, "caption": "Owner", "type": "Text", "entryMethod": "EntryField", "value": "Ann"},
            ],
        }
    ]
    await adapter.aclose()


LINE = BillingLine(
    marker="bill:19:EDR",
    company_id="19",
    agreement_id="600",
    product_id="EDR-SEAT",
    description="EDR, per endpoint",
    quantity=Decimal("14"),
    unit_price=Decimal("6.25"),
    unit_cost=Decimal("2.10"),
)


async def test_addition_create_wire(router: respx.MockRouter) -> None:
    find = router.get(f"{API}/finance/agreements/600/additions").respond(json=[])
    post = router.post(f"{API}/finance/agreements/600/additions").respond(201, json={"id": 900})
    adapter = make_adapter()
    result = await adapter.upsert_billing_line(LINE)
    assert (result.action, result.line_id) == ("created", "900")
    assert find.calls.last.request.url.params["conditions"] == (
        '(product/identifier = "EDR-SEAT" or description contains "[[]bill:19:EDR]")'
    )
    request = post.calls.last.request
    assert_api_headers(request)
    sent = body(request)
    assert sent == {
        "product": {"identifier": "EDR-SEAT"},
        "billCustomer": "Billable",
        "quantity": 14.0,
        "unitPrice": 6.25,
        "unitCost": 2.1,
        "description": "EDR, per endpoint [bill:19:EDR]",
        "invoiceDescription": "EDR, per endpoint",
    }
    AdditionCreate.model_validate(sent)
    assert set(sent) <= ADDITION_FIELDS
    await adapter.aclose()


async def test_addition_update_wire_and_unchanged(router: respx.MockRouter) -> None:
    router.get(f"{API}/finance/agreements/600/additions").respond(
        content=b'[{"id": 900, "product": {"id": 4, "identifier": "EDR-SEAT"}, "quantity": 12.0,'
        b' "unitPrice": 6.25, "unitCost": 2.10, "description": "EDR, per endpoint [bill:19:EDR]"}]',
        headers={"Content-Type": "application/json"},
    )
    patch = router.patch(f"{API}/finance/agreements/600/additions/900").respond(json={"id": 900})
    adapter = make_adapter()
    result = await adapter.upsert_billing_line(LINE)
    assert (result.action, result.previous_quantity) == ("updated", Decimal("12.0"))
    assert body(patch.calls.last.request) == [{"op": "replace", "path": "quantity", "value": 14.0}]
    same = await adapter.upsert_billing_line(LINE.model_copy(update={"quantity": Decimal("12")}))
    assert same.action == "unchanged"
    assert patch.call_count == 1
    await adapter.aclose()


async def test_addition_by_product_id_option(router: respx.MockRouter) -> None:
    find = router.get(f"{API}/finance/agreements/600/additions").respond(json=[])
    post = router.post(f"{API}/finance/agreements/600/additions").respond(201, json={"id": 901})
    adapter = make_adapter(billing_product_key="id", bill_customer="NoCharge")
    await adapter.upsert_billing_line(LINE.model_copy(update={"product_id": "4"}))
    assert find.calls.last.request.url.params["conditions"].startswith("(product/id = 4 or ")
    sent = body(post.calls.last.request)
    assert sent["product"] == {"id": 4} and sent["billCustomer"] == "NoCharge"
    await adapter.aclose()


async def test_create_failure_without_match_raises(router: respx.MockRouter) -> None:
    router.get(f"{API}/finance/agreements/600/additions").respond(json=[])
    post = router.post(f"{API}/finance/agreements/600/additions").respond(503, json={"message": "down"})
    adapter = make_adapter()
    with pytest.raises(TransientVendorError):
        await adapter.upsert_billing_line(LINE)
    assert post.call_count == 1
    await adapter.aclose()


# ---------------------------------------------------------------------------------------------
# Pure helpers
# ---------------------------------------------------------------------------------------------


def test_condition_literals() -> None:
    assert cond.literal('say "hi" \\ bye') == '"say \\"hi\\" \\\\ bye"'
    assert cond.literal(True) == "True" and cond.literal(None) == "null" and cond.literal(12) == "12"
    assert cond.contains("summary", "[abc]") == 'summary contains "[[]abc]"'
    assert cond.and_(cond.eq("a/id", 1), cond.or_(cond.eq("b", "x"), cond.eq("c", "y"))) == (
        'a/id = 1 and (b = "x" or c = "y")'
    )
    with pytest.raises(ValueError):
        cond.eq("bad path", 1)


def test_marker_token_is_stable_and_safe() -> None:
    assert marker_token("cn:42:threat_detected") == "[cn:42:threat_detected]"
    assert marker_token('a "b" [c]') == "[a-b-c]"
    long = marker_token("x" * 200)
    assert long == marker_token("x" * 200) and len(long) <= 42 and long.startswith("[cn-")


def test_summary_fits() -> None:
    token = marker_token("m")
    text = summary_with_marker("word " * 50, token)
    assert len(text) == 100 and text.endswith(" [m]") and "..." in text
    assert summary_with_marker("a\n b", token, "prefix") == "[m] a b"


def test_merge_status_block_keeps_other_notes() -> None:
    first = merge_status_block("Owner: Ann", {"b": "2", "a": "1"})
    assert first == "Owner: Ann\n\n[connector status]\na: 1\nb: 2\n[/connector status]"
    second = merge_status_block(first + "\nmore", {"a": "x"})
    assert second == "Owner: Ann\n\n[connector status]\na: x\n[/connector status]\nmore"


def test_parse_manage_error_shapes() -> None:
    request = httpx.Request("GET", "https://x")
    rate = httpx.Response(
        429, json={"error": "ConnectWiseAPI", "message": "Too many requests."}, request=request
    )
    assert parse_manage_error(rate) == ("Too many requests.", None)
    plain = httpx.Response(500, text="<html>boom</html>", request=request)
    assert parse_manage_error(plain) == ("<html>boom</html>", None)
    coded = httpx.Response(
        400,
        json={"code": "InvalidObject", "message": "bad", "errors": [{"field": "x", "message": "bad"}]},
        request=request,
    )
    assert parse_manage_error(coded) == ("InvalidObject: bad", "x")


def test_strict_models_refuse_unknown_fields() -> None:
    with pytest.raises(ValueError):
        TicketCreate.model_validate({"summary": "s", "board": {"id": 1}, "company": {"id": 1}, "bogus": 1})
    with pytest.raises(ValueError):
        PatchOperation.model_validate({"op": "replace", "path": "company/identifier", "value": "x"})
    with pytest.raises(ValueError):
        TicketCreate.model_validate({"summary": "s" * 101, "board": {"id": 1}, "company": {"id": 1}})


def test_options_normalize_site_and_codebase() -> None:
    options = ManageOptions(site="https://NA.myconnectwise.net/", codebase="v2025_1")
    assert (options.site, options.codebase) == ("na.myconnectwise.net", "v2025_1/")
    with pytest.raises(ValueError):
        ManageOptions(api_version="latest")
    with pytest.raises(ValueError):
        ManageCredentials(company_id="a+b", public_key="p", private_key="k", client_id="c")


async def test_full_api_url_as_base_url_skips_discovery() -> None:
    with respx.mock(assert_all_called=True) as mock:
        info = mock.get("https://api-eu.myconnectwise.net/v2024_1/apis/3.0/system/info").respond(json={})
        ctx = ConnectionContext(
            connection_id="c",
            base_url="https://api-eu.myconnectwise.net/v2024_1/apis/3.0",
            credentials=ManageCredentials(
                company_id="training", public_key="PUBKEY123", private_key="PRIVKEY456", client_id=CLIENT_ID
            ),
            options=ManageOptions(),
            sleep=no_sleep,
        )
        adapter = ConnectWiseManageAdapter(ctx)
        await adapter.test_connection()
        assert info.call_count == 1
        await adapter.aclose()
