"""Every request the HaloPSA adapter sends validates against Halo's own OpenAPI document, and Halo's
real payloads parse through the read models (`tests/support/contracts.py` says what is checked).

Halo declares request bodies (`additionalProperties: false` on its models already) and every query
parameter per operation; its answers are declared "200 Success" without a schema, so the fake's
answers are held to the payloads below instead. The token request (`POST /auth/token`) goes to the
authorisation server, which the API description does not cover.
"""

from __future__ import annotations

from typing import Any

import pytest

from adapters.base import ConfigurationUpdate, TicketSpec
from adapters.errors import ConfigurationError
from adapters.halopsa import SPEC
from adapters.halopsa.fake.schema import HaloApiError
from adapters.halopsa.models import (
    ActionRead,
    AssetRead,
    ClientRead,
    ContractRead,
    InvoiceLineRead,
    RecurringInvoiceRead,
    SiteRead,
    StatusRead,
    TeamRead,
    TicketRead,
    TicketTypeRead,
)
from adapters.testing.harness import PsaWorld, load_harness
from tests.support.contracts import (
    ContractError,
    Description,
    Exchange,
    drive_psa,
    no_sleep,
    openapi3,
    record_world,
)
from tests.support.specs import load_json

API = "https://msp.halopsa.com/api"


@pytest.fixture(scope="module")
def description() -> Description:
    return openapi3(load_json("halopsa/swagger.json"), base_paths=["/api"])


def world() -> PsaWorld:
    started = load_harness(SPEC).start(
        companies=("Acme Dental", "Blue Harbor Logistics"), devices_per_company=2
    )
    assert isinstance(started, PsaWorld)
    return started


def token_request(exchange: Exchange) -> bool:
    return exchange.path.startswith("/auth/")


async def test_every_request_the_adapter_sends_is_in_the_description(description: Description) -> None:
    log: list[Exchange] = []
    adapter = await drive_psa(world(), log)
    await adapter.aclose()
    operations = description.check_all(log, skip=token_request)
    assert operations >= {
        "GET /Client",
        "GET /ClientContract",
        "GET /Team",
        "GET /Status",
        "GET /Priority",
        "GET /TicketType",
        "GET /Tickets",
        "POST /Tickets",
        "GET /Tickets/{id}",
        "POST /Actions",
        "GET /Asset",
        "GET /Asset/{id}",
        "POST /Asset",
        "GET /Site",
        "GET /RecurringInvoice",
        "GET /RecurringInvoice/{id}",
        "POST /RecurringInvoice",
    }


def test_the_validator_refuses_planted_bad_requests(description: Description) -> None:
    def sent(method: str, path: str, body: Any = None) -> Exchange:
        return Exchange.of(method, f"{API}{path}", body)

    assert description.check(sent("POST", "/Tickets", [{"summary": "s", "client_id": 1}])) == "POST /Tickets"
    with pytest.raises(ContractError, match="team_id"):
        description.check(sent("POST", "/Tickets", [{"summary": "s", "client_id": 1, "team_id": 2}]))
    with pytest.raises(ContractError, match="client_id"):
        description.check(sent("POST", "/Tickets", [{"summary": "s", "client_id": "one"}]))
    with pytest.raises(ContractError, match="is not of type 'array'"):
        description.check(sent("POST", "/Actions", {"ticket_id": 1, "note": "n"}))
    # Halo's document marks one model's fields required (`LiveChatIsTyping`); none the adapter sends.
    with pytest.raises(ContractError, match="'sender_id' is a required property"):
        description.check(sent("POST", "/ChatMessage/IsTyping", {"chat_id": 1}))
    with pytest.raises(ContractError, match="not a path"):
        description.check(sent("GET", "/Widgets"))
    with pytest.raises(ContractError, match="query parameter 'clientid'"):
        description.check(sent("GET", "/Tickets?clientid=1"))


def test_real_payloads_parse_through_the_read_models() -> None:
    templates = "halopsa/fixtures/haloapi-templates"
    readers: dict[str, type[Any]] = {
        "Action": ActionRead,
        "Asset": AssetRead,
        "Client": ClientRead,
        "Contract": ContractRead,
        "Site": SiteRead,
        "Status": StatusRead,
        "Team": TeamRead,
        "Ticket": TicketRead,
        "TicketType": TicketTypeRead,
    }
    for name, reader in readers.items():
        value = load_json(f"{templates}/{name}.json")
        for item in value if isinstance(value, list) else [value]:
            reader.model_validate(item)
    invoice = RecurringInvoiceRead.model_validate(load_json("halopsa/fixtures/recurring-invoice-get.json"))
    assert invoice.lines
    for line in invoice.lines:
        InvoiceLineRead.model_validate(line)


# ---------------------------------------------------------------------------------------------
# What the description showed was wrong
# ---------------------------------------------------------------------------------------------


async def test_priorities_are_policies_with_uuid_ids() -> None:
    psa = world()
    fake: Any = psa.fake  # type: ignore[attr-defined]
    assert all(isinstance(p["id"], str) and len(p["id"]) == 36 for p in fake.priorities)
    adapter = psa.adapter(sleep=no_sleep)
    options = await adapter.list_ticket_options()
    await adapter.aclose()
    assert {o.id for o in options["priorities"]} == {str(p["priorityid"]) for p in fake.priorities}
    assert options["boards"] and options["statuses"] and options["types"]


async def test_a_ticket_names_its_team_by_name_and_department() -> None:
    log: list[Exchange] = []
    psa = world()
    fake: Any = psa.fake  # type: ignore[attr-defined]
    record_world(psa, log)
    adapter = psa.adapter(sleep=no_sleep)
    company = next(iter(psa.companies))
    ids = psa.ticket_ids
    spec = TicketSpec(
        marker="cn:ep-9:antivirus_off",
        company_id=company,
        board_id=ids.board_id,
        priority_id=ids.priority_id,
        summary="PC-9: antivirus off",
        description="Real-time protection is off.",
    )
    ref = await adapter.create_ticket(spec)
    with pytest.raises(ConfigurationError) as info:
        await adapter.create_ticket(spec.model_copy(update={"board_id": "777"}))
    assert info.value.field == "board_id"
    await adapter.aclose()
    (sent,) = [e.body[0] for e in log if e.method == "POST" and e.path == "/api/Tickets"]
    team = fake.teams[int(ids.board_id)]
    assert "team_id" not in sent
    assert (sent["team"], sent["team_department_id"]) == (team["name"], team["department_id"])
    assert fake.tickets[int(ref.id)]["team_id"] == team["id"]
    # The fake refuses what Halo's closed ticket schema refuses.
    with pytest.raises(HaloApiError):
        fake.add_ticket(int(company), "x", team_id=team["id"])


async def test_contract_status_is_text_and_site_client_ids_are_numbers() -> None:
    assert ContractRead.model_validate({"id": 1, "contract_status": "Active"}).contract_status == "Active"
    assert SiteRead.model_validate({"id": 30, "client_id": 12.0}).client_id == 12
    psa = world()
    fake: Any = psa.fake  # type: ignore[attr-defined]
    assert all(isinstance(s["client_id"], float) for s in fake.sites.values())
    adapter = psa.adapter(sleep=no_sleep)
    company = next(iter(psa.companies))
    (agreement,) = await adapter.list_agreements(company)
    assert agreement.active
    new = await adapter.upsert_configuration(
        ConfigurationUpdate(
            company_id=company,
            device_name="NEW-PC-09",
            create_if_missing=True,
            type_id=psa.configuration_type_id,
            fields={"AV": "x"},
        )
    )
    await adapter.aclose()
    assert new is not None and fake.assets[int(new)]["site_id"] in fake.sites
