"""Every request the Autotask adapter sends validates against Autotask's own Swagger document, the
fake's answers against its response schemas, and Autotask's real payloads parse through the read
models (`tests/support/contracts.py` says what is checked).

Deliberate departures from the raw document:
- `Filter.value` is declared `type: object` but described as "an Integer, String, Boolean, an Array
  of Integers, or an Array of Strings"; it is validated as the description says.
- `…/{Entity}/query/next?paging=…` (the `nextPageUrl` Autotask returns) is not in the document; it
  is checked as a POST whose body validates against the `/{Entity}/query` POST body schema.
- `PickListValue.value` is declared a string; real answers carry integers too.
"""

from __future__ import annotations

import dataclasses
from decimal import Decimal
from typing import Any

import pytest

from adapters.autotask import SPEC
from adapters.autotask.models import (
    CompanyRead,
    ContractRead,
    FieldsResult,
    QueryPage,
    TicketNoteRead,
    TicketRead,
)
from adapters.base import BillingLine, ConfigurationUpdate
from adapters.testing.harness import ticket_spec
from tests.support.contracts import ContractError, Description, Exchange, drive_psa, psa_world, swagger2
from tests.support.specs import load_json

API = "https://webservices14.autotask.net/ATServicesRest"
HEADERS = {"apiintegrationcode": "x", "username": "u", "secret": "s", "content-type": "application/json"}


def _as_documented(definitions: dict[str, Any]) -> None:
    definitions["Filter"]["properties"]["value"] = {
        "type": ["integer", "string", "boolean", "array", "null"],
        "items": {"type": ["integer", "string"]},
    }
    # A GET of an id that no longer exists (a ticket deleted in Autotask) answers 200 with
    # `{"item": null}`, which the adapter reads as gone.
    item = definitions["ItemQueryResultModel[TicketModel,Ticket]"]["properties"]["item"]
    definitions["ItemQueryResultModel[TicketModel,Ticket]"]["properties"]["item"] = {
        "anyOf": [item, {"type": "null"}]
    }
    # Real answers (fixtures below) carry integer picklist values.
    for name in ("value", "parentValue"):
        definitions["PickListValue"]["properties"][name] = {"type": ["string", "integer"]}


@pytest.fixture(scope="module")
def description() -> Description:
    return swagger2(load_json("autotask/swagger.json"), adjust=_as_documented)


def as_documented(exchange: Exchange) -> Exchange:
    """`…/query/next?paging=…` as the `/query` POST it continues."""
    if not exchange.path.endswith("/query/next"):
        return exchange
    assert exchange.method == "POST", "nextPageUrl must be followed with POST"
    assert dict(exchange.query).get("paging")
    return dataclasses.replace(exchange, url=exchange.url.split("?")[0].removesuffix("/next"), query=())


def check_all(description: Description, log: list[Exchange]) -> set[str]:
    for exchange in log:
        for header in ("apiintegrationcode", "username", "secret"):
            assert exchange.headers.get(header), f"{exchange.url}: header {header}"
        if exchange.body is not None:
            assert exchange.headers.get("content-type", "").startswith("application/json")
    return description.check_all(as_documented(e) for e in log)


async def test_every_request_the_adapter_sends_is_in_the_swagger(description: Description) -> None:
    log: list[Exchange] = []
    psa = psa_world(SPEC)
    adapter = await drive_psa(psa, log)
    fake: Any = psa.fake  # type: ignore[attr-defined]
    company = next(iter(psa.companies))
    # More companies than one page, so the adapter follows `nextPageUrl`.
    psa.add_companies(501)
    assert len([c async for c in adapter.list_companies()]) > 500
    # A ticket whose create timed out after Autotask applied it is found, not created twice.
    fake.timeout_next(method="POST", path="/Tickets")
    await adapter.create_ticket(ticket_spec(psa, "cn:ep-2:threat_detected", company))
    await adapter.upsert_configuration(
        ConfigurationUpdate(company_id=company, device_name=psa.device_names(company)[0], fields={})
    )
    line = BillingLine(
        marker="bill:AV",
        company_id=company,
        agreement_id=psa.agreement_id(company),
        product_id=str(psa.seed.service_ids["AV"]),  # type: ignore[attr-defined]
        description="AV",
        quantity=Decimal(3),
        unit_price=Decimal("2.00"),
        unit_cost=Decimal("1.00"),
    )
    await adapter.upsert_billing_line(line)
    await adapter.aclose()

    operations = check_all(description, log)
    answered = [e for e in log if description.check_response(as_documented(e))]
    assert len(answered) > len(log) // 2, "most answers have a response schema"
    assert any(e.path.endswith("/Companies/query/next") for e in log)
    assert operations >= {
        "GET /V1.0/ZoneInformation",
        "GET /V1.0/ThresholdInformation",
        "POST /V1.0/Companies/query",
        "POST /V1.0/Contracts/query",
        "GET /V1.0/Contracts/entityInformation/fields",
        "GET /V1.0/Tickets/entityInformation/fields",
        "POST /V1.0/Tickets",
        "GET /V1.0/Tickets/{id}",
        "POST /V1.0/Tickets/query",
        "POST /V1.0/Tickets/{parentId}/Notes",
        "POST /V1.0/TicketNotes/query",
        "PATCH /V1.0/Tickets",
        "POST /V1.0/ConfigurationItems/query",
        "POST /V1.0/ConfigurationItems",
        "PATCH /V1.0/ConfigurationItems",
        "POST /V1.0/ContractServices/query",
        "POST /V1.0/ContractServiceUnits/query",
        "POST /V1.0/ContractServiceAdjustments",
    }


def test_the_validator_refuses_planted_bad_requests(description: Description) -> None:
    def sent(method: str, path: str, body: Any = None) -> Exchange:
        return Exchange.of(method, f"{API}{path}", body, headers=HEADERS)

    assert (
        description.check(sent("POST", "/V1.0/Tickets", {"title": "t", "companyID": 1}))
        == "POST /V1.0/Tickets"
    )
    with pytest.raises(ContractError, match="titel"):
        description.check(sent("POST", "/V1.0/Tickets", {"title": "t", "titel": "typo"}))
    with pytest.raises(ContractError, match="companyID"):
        description.check(sent("POST", "/V1.0/Tickets", {"companyID": "one"}))
    # Autotask's document requires no body field (the tenant's field metadata does); it requires
    # the body and the authentication headers.
    with pytest.raises(ContractError, match="needs a JSON body"):
        description.check(sent("POST", "/V1.0/Tickets"))
    with pytest.raises(ContractError, match="required header 'secret'"):
        description.check(Exchange.of("GET", f"{API}/V1.0/Tickets/5", headers={"apiintegrationcode": "x"}))
    with pytest.raises(ContractError, match="not an operation"):
        description.check(sent("DELETE", "/V1.0/Tickets/5"))
    with pytest.raises(ContractError, match="not a path"):
        description.check(sent("POST", "/V1.0/Widgets/query", {"filter": []}))
    with pytest.raises(ContractError, match="query parameter 'foo'"):
        description.check(sent("GET", "/V1.0/Tickets/5?foo=1"))


def test_real_payloads_parse_through_the_read_models() -> None:
    fixtures = load_json("autotask/fixtures/djautotask-fixtures.json")
    readers: dict[str, type[Any]] = {
        "API_ACCOUNT": CompanyRead,
        "API_CONTRACT": ContractRead,
        "API_TICKET": TicketRead,
        "API_TICKET_NOTE": TicketNoteRead,
    }
    for name, reader in readers.items():
        page = QueryPage.model_validate(fixtures[name])
        assert page.items, name
        for item in page.items:
            reader.model_validate(item)
    TicketRead.model_validate(fixtures["API_TICKET_BY_ID"]["item"])
    QueryPage.model_validate(fixtures["API_EMPTY"])
    for name, value in fixtures.items():
        if name.endswith("_FIELD") or name == "API_UDF":
            fields = FieldsResult.model_validate(value).fields
            assert fields and all(info.picklistValues for info in fields), name
