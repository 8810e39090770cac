"""Every request the ConnectWise Automate adapter sends validates against Automate's own OpenAPI
sections (Computers, Company, Batch, Scripts, System, Commands), the fake's answers against their
response schemas (`tests/support/contracts.py` says what is checked).

Automate's API lives under `/cwa` (`/cwa/api/v1/…`); its routes and query names are matched
without regard to case, as the ASP.NET server does (`/apitoken` is the document's `/APIToken`).
The document, generated from .NET models, marks no property `nullable` though the server writes
`null` for unset ones, so answers may carry `null` anywhere.
"""

from __future__ import annotations

from datetime import UTC, datetime
from functools import cache
from typing import Any

import pytest

from adapters.connectwise_automate import SPEC
from adapters.connectwise_automate.models import AutomateOptions, ComputerRead
from adapters.testing.harness import RmmWorld, load_harness
from connector.fleet.domain import Thresholds, health
from connector.statuses import Health
from tests.support.contracts import ContractError, Description, Exchange, drive_rmm, no_sleep, openapi3
from tests.support.specs import load_json

SECTIONS = ("Computers", "Company", "Batch", "Scripts", "System", "Commands")
API = "https://automate.example.com/cwa/api/v1"


@cache
def merged() -> dict[str, Any]:
    documents = [load_json(f"rmm/automate/{name}.json") for name in SECTIONS]
    paths: dict[str, Any] = {}
    components: dict[str, dict[str, Any]] = {}
    for document in documents:
        paths.update(document["paths"])
        for section, entries in document.get("components", {}).items():
            components.setdefault(section, {}).update(entries)
    return {
        "openapi": "3.0.0",
        "info": {"title": "Automate API v1"},
        "paths": paths,
        "components": components,
    }


BOUND_AS = {
    "options.page": "page",
    "options.pageSize": "pageSize",
    "options.condition": "condition",
    "options.orderBy.name": "orderBy",
    "options.includedFields": "includeFields",
    "options.excludedFields": "excludeFields",
    "options.expands": "expand",
    "options.ids": "ids",
}
"""The document lists each list operation's query as the members of its bound `options` model;
the server takes them by these names (`orderBy=Id asc` for name and direction), as the public
clients send them (gavsto/AutomateAPI `Get-AutomateAPIGeneric.ps1`, pyconnectwise
`ConnectWiseAutomateRequestParams`)."""


@pytest.fixture(scope="module")
def description() -> Description:
    loaded = openapi3(merged(), base_paths=["/cwa"], case_insensitive_query=True, null_in_answers=True)
    for operation in loaded.operations.values():
        operation.query = operation.query | {BOUND_AS[q] for q in operation.query if q in BOUND_AS}
    return loaded


def world() -> RmmWorld:
    started = load_harness(SPEC).start(
        clients=("Acme Dental", "Blue Harbor Logistics"), endpoints_per_client=3
    )
    assert isinstance(started, RmmWorld)
    return started


async def test_every_request_the_adapter_sends_is_in_the_description(description: Description) -> None:
    log: list[Exchange] = []
    adapter = await drive_rmm(world(), log)
    await adapter.aclose()
    operations = description.check_all(log)
    assert operations >= {
        "POST /api/v1/APIToken",
        "GET /api/v1/Clients",
        "GET /api/v1/Computers",
        "GET /api/v1/Alerts",
        "POST /api/v1/Batch/ScriptExecute",
    }


def test_the_validator_refuses_planted_bad_requests(description: Description) -> None:
    def sent(method: str, path: str, body: Any = None) -> Exchange:
        return Exchange.of(method, f"{API}{path}", body)

    good = {"EntityType": "Computer", "EntityIds": [1], "ScriptId": 5}
    assert description.check(sent("POST", "/Batch/ScriptExecute", good)) == "POST /api/v1/Batch/ScriptExecute"
    with pytest.raises(ContractError, match="ScriptID"):
        description.check(sent("POST", "/Batch/ScriptExecute", {**good, "ScriptID": 5}))
    with pytest.raises(ContractError, match="ScriptId"):
        description.check(sent("POST", "/Batch/ScriptExecute", {**good, "ScriptId": "five"}))
    with pytest.raises(ContractError, match="not a path"):
        description.check(sent("GET", "/Widgets"))
    with pytest.raises(ContractError, match="query parameter 'filter'"):
        description.check(sent("GET", "/Computers?filter=x"))


@pytest.mark.parametrize(
    "scanner",
    [
        None,
        {},
        {"Id": "0", "Name": ""},
        {"Id": "0", "Name": "Windows Defender"},
        {"Id": "31", "Name": " "},
        {"Id": "31", "Name": "Unknown"},
    ],
)
async def test_an_empty_or_unrecognised_virus_scanner_is_unknown_protection(scanner: Any) -> None:
    assert AutomateOptions().missing_scanner_means_unprotected is False  # the default
    adapter: Any = world().adapter(sleep=no_sleep, options={"missing_scanner_means_unprotected": False})
    computer = ComputerRead.model_validate(
        {"Id": "7", "ComputerName": "WS-7", "Client": {"Id": "1", "Name": "Acme"}, "VirusScanner": scanner}
    )
    status = adapter.endpoint_status(computer)
    await adapter.aclose()
    assert status.product is None and status.protection_enabled is None
    assert health(status, Thresholds(), datetime.now(UTC)) is Health.UNKNOWN


async def test_a_recognised_scanner_names_the_product() -> None:
    adapter: Any = world().adapter(sleep=no_sleep)
    computer = ComputerRead.model_validate(
        {"Id": "7", "Client": {"Id": "1"}, "VirusScanner": {"Id": "12", "Name": "Webroot SecureAnywhere"}}
    )
    assert adapter.endpoint_status(computer).product == "Webroot SecureAnywhere"
    await adapter.aclose()
