"""Every request the ConnectWise Manage adapter sends validates against ConnectWise's own API
description, the fake's answers against its response schemas, and real Manage payloads parse
through the read models (`tests/support/contracts.py` says what is checked).

Requests are checked against the compact form of All.json 2025.1 (every operation, request model
and field; the version the adapter pins in its `Accept` header), so `conditions`, `orderBy`,
`fields` and JSON Patch paths must name fields of the resource model. GET answers are checked
against the vendor's OpenAPI 2026.4 document where it has the operation. The unauthenticated
`/login/companyinfo/{companyId}` discovery is not part of the REST API described there.
"""

from __future__ import annotations

import base64
from typing import Any

import httpx
import pytest

from adapters.base import ConfigurationUpdate
from adapters.connectwise_manage import SPEC
from adapters.connectwise_manage.models import (
    AgreementRead,
    BoardRead,
    BoardStatusRead,
    BoardTypeRead,
    CompanyInfo,
    CompanyRead,
    NoteRead,
    PriorityRead,
    TicketRead,
)
from adapters.errors import ConfigurationError
from adapters.testing.harness import PsaWorld, load_harness
from tests.support.contracts import (
    ContractError,
    Description,
    Exchange,
    connectwise_compact,
    drive_psa,
    no_sleep,
    record_world,
)
from tests.support.specs import load_json

API = "https://api-na.myconnectwise.net/v2025_1/apis/3.0"
HEADERS = {"clientid": "3f2504e0-4f89-11d3-9a0c-0305e82c3301"}


@pytest.fixture(scope="module")
def description() -> Description:
    return connectwise_compact(
        load_json("connectwise-manage/go-client-2025.1.compact.json"),
        base_paths=["/v2025_1/apis/3.0", "/v4_6_release/apis/3.0"],
        responses_from=load_json("connectwise-manage/openapi-get-subset-2026.4.json"),
    )


def world() -> PsaWorld:
    started = load_harness(SPEC).start(
        companies=("Acme Dental", "Blue Harbor Logistics"), devices_per_company=2
    )
    assert isinstance(started, PsaWorld)
    return started


def api_only(exchange: Exchange) -> bool:
    return "/login/companyinfo/" in exchange.path


async def test_every_request_the_adapter_sends_is_in_the_description(description: Description) -> None:
    log: list[Exchange] = []
    psa = world()
    adapter = await drive_psa(psa, log)
    await adapter.aclose()
    # Status written into configuration custom fields (a whole-array `customFields` replace).
    fake: Any = psa.fake  # type: ignore[attr-defined]
    fake.add_configuration_custom_field("Antivirus Status")
    fake.add_configuration_custom_field("Threats", type="Number")
    custom = psa.adapter(sleep=no_sleep, options={"configuration_fields_target": "custom_fields"})
    company = next(iter(psa.companies))
    await custom.upsert_configuration(
        ConfigurationUpdate(
            company_id=company,
            device_name=psa.device_names(company)[0],
            fields={"Antivirus Status": "Protected", "Threats": "2"},
        )
    )
    await custom.aclose()

    operations = description.check_all(log, skip=api_only)
    assert operations >= {
        "GET /system/info",
        "GET /company/companies",
        "GET /finance/agreements",
        "GET /service/boards",
        "GET /service/priorities",
        "GET /service/boards/{parentId}/statuses",
        "GET /service/boards/{parentId}/types",
        "GET /service/tickets",
        "POST /service/tickets",
        "GET /service/tickets/{id}",
        "PATCH /service/tickets/{id}",
        "GET /service/tickets/{parentId}/notes",
        "POST /service/tickets/{parentId}/notes",
        "GET /company/configurations",
        "POST /company/configurations",
        "PATCH /company/configurations/{id}",
        "GET /finance/agreements/{parentId}/additions",
        "POST /finance/agreements/{parentId}/additions",
        "PATCH /finance/agreements/{parentId}/additions/{id}",
    }
    answered = [e for e in log if not api_only(e) and description.check_response(e)]
    assert any(e.path.endswith("/service/tickets") and e.method == "GET" for e in answered)


async def test_a_number_custom_field_is_written_as_a_number() -> None:
    log: list[Exchange] = []
    psa = world()
    fake: Any = psa.fake  # type: ignore[attr-defined]
    fake.add_configuration_custom_field("Threats", type="Number")
    fake.add_configuration_custom_field("Antivirus Status")
    record_world(psa, log)
    adapter = psa.adapter(sleep=no_sleep, options={"configuration_fields_target": "custom_fields"})
    company = next(iter(psa.companies))
    device = psa.device_names(company)[0]
    update = ConfigurationUpdate(company_id=company, device_name=device, fields={"Threats": "3"})
    await adapter.upsert_configuration(update)
    (patch,) = [e for e in log if e.method == "PATCH"]
    values = {cf["caption"]: cf["value"] for cf in patch.body[0]["value"]}
    assert values == {"Threats": 3, "Antivirus Status": None}
    # Unchanged: nothing more is sent.
    await adapter.upsert_configuration(update)
    assert len([e for e in log if e.method == "PATCH"]) == 1
    with pytest.raises(ConfigurationError) as info:
        await adapter.upsert_configuration(update.model_copy(update={"fields": {"Threats": "many"}}))
    assert info.value.field == "fields.Threats"
    await adapter.aclose()


async def test_the_fake_refuses_text_in_a_number_custom_field() -> None:
    psa = world()
    fake: Any = psa.fake  # type: ignore[attr-defined]
    fake.add_configuration_custom_field("Threats", type="Number")
    config_id = fake.configurations.ids[0]
    token = base64.b64encode(f"{fake.company_id}+{fake.public_key}:{fake.private_key}".encode()).decode()
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=fake.app),
        base_url=f"https://api-na.myconnectwise.net{fake.api_prefix}",
        headers={"Authorization": f"Basic {token}", "clientId": fake.client_id},
    ) as client:
        for value, status in (("3", 400), (3, 200)):
            ops = [{"op": "replace", "path": "customFields", "value": [{"id": 1, "value": value}]}]
            response = await client.patch(f"/company/configurations/{config_id}", json=ops)
            assert response.status_code == status, response.text


def test_the_validator_refuses_planted_bad_requests(description: Description) -> None:
    def sent(method: str, path: str, body: Any = None, headers: dict[str, str] = HEADERS) -> Exchange:
        return Exchange.of(method, f"{API}{path}", body, headers=headers)

    good = {"summary": "s", "company": {"id": 1}, "board": {"id": 2}}
    assert description.check(sent("POST", "/service/tickets", good)) == "POST /service/tickets"
    with pytest.raises(ContractError, match="summry"):
        description.check(sent("POST", "/service/tickets", {**good, "summry": "typo"}))
    with pytest.raises(ContractError, match="'summary' is a required property"):
        description.check(sent("POST", "/service/tickets", {"company": {"id": 1}}))
    with pytest.raises(ContractError, match="is too long"):
        description.check(sent("POST", "/service/tickets", {**good, "summary": "x" * 101}))
    with pytest.raises(ContractError, match="not a path"):
        description.check(sent("GET", "/service/widgets"))
    with pytest.raises(ContractError, match="query parameter 'filter'"):
        description.check(sent("GET", "/service/tickets?filter=x"))
    with pytest.raises(ContractError, match="'colour', not a field of Ticket"):
        description.check(sent("GET", "/service/tickets?conditions=colour%20%3D%20%22red%22"))
    with pytest.raises(ContractError, match="'company/nme', not a field of Ticket"):
        description.check(sent("GET", "/service/tickets?orderBy=company/nme%20asc"))
    with pytest.raises(ContractError, match="'summery', not a field of Ticket"):
        description.check(sent("GET", "/service/tickets?fields=id,summery"))
    with pytest.raises(ContractError, match="'set' is not one of"):
        description.check(sent("PATCH", "/service/tickets/5", [{"op": "set", "path": "status", "value": 1}]))
    with pytest.raises(ContractError, match="patch path 'stauts'"):
        description.check(
            sent("PATCH", "/service/tickets/5", [{"op": "replace", "path": "stauts", "value": 1}])
        )
    with pytest.raises(ContractError, match="required header 'clientid'"):
        description.check(sent("GET", "/service/tickets", headers={}))


def test_real_payloads_parse_through_the_read_models() -> None:
    fixtures = load_json("connectwise-manage/fixtures/djconnectwise-fixtures.json")
    BoardRead.model_validate(fixtures["API_BOARD"])
    for status in fixtures["API_BOARD_STATUS_LIST"]:
        BoardStatusRead.model_validate(status)
    CompanyRead.model_validate(fixtures["API_COMPANY"])
    for note in fixtures["API_SERVICE_NOTE_LIST"]:
        NoteRead.model_validate(note)
    PriorityRead.model_validate(fixtures["API_SERVICE_PRIORITY"])
    BoardTypeRead.model_validate(fixtures["API_TYPE"])
    TicketRead.model_validate(fixtures["API_SERVICE_TICKET"])
    TicketRead.model_validate(fixtures["API_PROJECT_TICKET"])
    AgreementRead.model_validate(fixtures["API_AGREEMENT"])
    CompanyInfo.model_validate(fixtures["API_COMPANY_INFO"])
    TicketRead.model_validate(load_json("connectwise-manage/fixtures/pipedream-ticket-test-event.json"))
