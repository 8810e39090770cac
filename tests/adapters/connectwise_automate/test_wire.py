"""Wire details of the Automate adapter (respx), and its pure helpers."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
import respx

from adapters.base import ActionKind, ConnectionContext, ProblemKind
from adapters.connectwise_automate import conditions as cond
from adapters.connectwise_automate.adapter import (
    ConnectWiseAutomateAdapter,
    api_base,
    parse_automate_error,
    parse_time,
)
from adapters.connectwise_automate.alerts import classify
from adapters.connectwise_automate.models import AutomateCredentials, AutomateOptions
from adapters.errors import ConfigurationError, CredentialsError, TransientVendorError

SERVER = "https://rancor.hostedrmm.com"
API = f"{SERVER}/cwa/api/v1"
CLIENT_ID = "0c5a6f9e-1111-4222-8333-444455556666"
NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


async def no_sleep(_seconds: float) -> None:
    return None


def make_adapter(
    *, passcode: str | None = None, base_url: str = SERVER, clock: Any = None, **options: Any
) -> ConnectWiseAutomateAdapter:
    ctx = ConnectionContext(
        connection_id="cwa-wire",
        base_url=base_url,
        credentials=AutomateCredentials(
            username="integrator", password="s3cret!", client_id=CLIENT_ID, two_factor_passcode=passcode
        ),
        options=AutomateOptions.model_validate(options),
        sleep=no_sleep,
        extra={"clock": clock} if clock else {},
    )
    return ConnectWiseAutomateAdapter(ctx)


def token_body(token: str = "tok-1", expires: datetime | None = None) -> dict[str, Any]:
    return {
        "AccessToken": token,
        "TokenType": "Bearer",
        "ExpirationDate": (expires or datetime.now(UTC) + timedelta(hours=1)).isoformat(),
        "IsTwoFactorRequired": False,
    }


def computer(n: int) -> dict[str, Any]:
    return {
        "Id": str(n),
        "ComputerName": f"WS{n}",
        "Client": {"Id": 7, "Name": "Acme"},
        "Location": {"Id": 70, "Name": "HQ"},
        "Status": "Online",
        "VirusScanner": {"Id": 12, "Name": "Microsoft Defender Antivirus"},
        "AntivirusDefinitionDate": "2026-11-19T08:00:00",
        "RemoteAgentLastContact": "2026-11-20T11:59:00",
    }


@pytest.fixture
def router() -> Iterator[respx.MockRouter]:
    with respx.mock(assert_all_called=True) as mock:
        yield mock


# ---------------------------------------------------------------------------------------------
# Token request and headers
# ---------------------------------------------------------------------------------------------


async def test_token_request_body_and_headers(router: respx.MockRouter) -> None:
    token = router.post(f"{API}/apitoken").mock(return_value=httpx.Response(200, json=token_body()))
    router.get(f"{API}/Computers").mock(return_value=httpx.Response(200, json=[]))
    adapter = make_adapter(passcode="123 456")
    await adapter.test_connection()
    sent = token.calls.last.request
    assert json.loads(sent.content) == {
        "Username": "integrator",
        "Password": "s3cret!",
        "TwoFactorPasscode": "123456",
    }
    assert sent.headers["ClientId"] == CLIENT_ID
    assert sent.headers["Content-Type"] == "application/json"
    assert "Authorization" not in sent.headers
    await adapter.aclose()


async def test_token_body_without_passcode(router: respx.MockRouter) -> None:
    token = router.post(f"{API}/apitoken").mock(return_value=httpx.Response(200, json=token_body()))
    router.get(f"{API}/Computers").mock(return_value=httpx.Response(200, json=[]))
    await make_adapter().test_connection()
    assert json.loads(token.calls.last.request.content) == {"Username": "integrator", "Password": "s3cret!"}


async def test_every_call_carries_bearer_and_client_id_and_page_two_keeps_the_condition(
    router: respx.MockRouter,
) -> None:
    router.post(f"{API}/apitoken").mock(return_value=httpx.Response(200, json=token_body("tok-A")))
    listing = router.get(f"{API}/Computers").mock(
        side_effect=[
            httpx.Response(200, json=[computer(1), computer(2)]),
            httpx.Response(200, json=[computer(3)]),
        ]
    )
    adapter = make_adapter(page_size=2, computer_condition="Client.Id = 7")
    pages = [p async for p in adapter.iter_endpoint_pages(datetime(2026, 11, 20, 11, 0, tzinfo=UTC))]
    assert [[s.endpoint_id for s in p.statuses] for p in pages] == [["1", "2"], ["3"]]
    assert listing.call_count == 2
    first, second = (c.request for c in listing.calls)
    for number, sent in ((1, first), (2, second)):
        assert sent.headers["Authorization"] == "Bearer tok-A"
        assert sent.headers["ClientId"] == CLIENT_ID
        assert sent.url.params["page"] == str(number)
        assert sent.url.params["pageSize"] == "2"
        assert sent.url.params["orderBy"] == "Id asc"
        assert sent.url.params["condition"] == (
            "(Client.Id = 7) and (RemoteAgentLastContact >= 2026-11-20T11:00:00)"
        )
        assert sent.url.params["includeFields"].startswith("Id,ComputerName,Client,Location,Status")
    assert first.url.path == "/cwa/api/v1/Computers"


async def test_401_renews_the_token_and_retries_with_the_new_bearer(router: respx.MockRouter) -> None:
    router.post(f"{API}/apitoken").mock(
        side_effect=[httpx.Response(200, json=token_body("old")), httpx.Response(200, json=token_body("new"))]
    )
    listing = router.get(f"{API}/Clients").mock(
        side_effect=[
            httpx.Response(401, json={"Message": "Authorization has been denied for this request."}),
            httpx.Response(200, json=[{"Id": "1", "Name": "Acme"}]),
        ]
    )
    clients = [c async for c in make_adapter().list_clients()]
    assert [c.name for c in clients] == ["Acme"]
    assert [c.request.headers["Authorization"] for c in listing.calls] == ["Bearer old", "Bearer new"]


@pytest.mark.parametrize("status", [400, 401, 403])
async def test_refused_token_request_is_a_credentials_error(router: respx.MockRouter, status: int) -> None:
    token = router.post(f"{API}/apitoken").mock(
        return_value=httpx.Response(status, json={"Message": "Username or password is incorrect."})
    )
    with pytest.raises(CredentialsError) as caught:
        await make_adapter().test_connection()
    assert "Username or password is incorrect." in caught.value.message
    assert token.call_count == 1


async def test_two_factor_answer_is_a_credentials_error(router: respx.MockRouter) -> None:
    router.post(f"{API}/apitoken").mock(
        return_value=httpx.Response(200, json={"AccessToken": "", "IsTwoFactorRequired": True})
    )
    with pytest.raises(CredentialsError) as caught:
        await make_adapter().test_connection()
    assert caught.value.field == "two_factor_passcode"


async def test_token_without_expiry_is_renewed_soon(router: respx.MockRouter) -> None:
    token = router.post(f"{API}/apitoken").mock(
        return_value=httpx.Response(200, json={"AccessToken": "t", "ExpirationDate": None})
    )
    router.get(f"{API}/Clients").mock(return_value=httpx.Response(200, json=[]))
    clock = [NOW]
    adapter = make_adapter(clock=lambda: clock[0])
    [c async for c in adapter.list_clients()]
    clock[0] = NOW + timedelta(minutes=7)
    [c async for c in adapter.list_clients()]
    assert token.call_count == 1
    clock[0] = NOW + timedelta(minutes=9)  # fallback lifetime 10 min, margin 2 min
    [c async for c in adapter.list_clients()]
    assert token.call_count == 2


async def test_script_execute_body(router: respx.MockRouter) -> None:
    router.post(f"{API}/apitoken").mock(return_value=httpx.Response(200, json=token_body()))
    batch = router.post(f"{API}/Batch/ScriptExecute").mock(
        return_value=httpx.Response(
            200,
            json={
                "ScriptResults": [{"EntityId": 42, "ResultDetails": {"ResultStatus": 0, "Message": ""}}],
                "ContainsUnsuccessfulResults": False,
            },
        )
    )
    adapter = make_adapter(definitions_script_id=812, definitions_script_parameters={"Force": "1"})
    result = await adapter.run_action("42", ActionKind.UPDATE_DEFINITIONS)
    assert result.accepted and result.vendor_reference == "script:812:computer:42"
    sent = batch.calls.last.request
    assert json.loads(sent.content) == {
        "EntityType": "Computer",
        "EntityIds": [42],
        "ScriptId": 812,
        "Parameters": [{"Key": "Force", "Value": "1"}],
        "OfflineActionFlags": {
            "SkipsOfflineAgents": False,
            "WakesOfflineAgents": False,
            "OnlyRunsOnOfflineAgents": False,
        },
    }
    assert sent.headers["ClientId"] == CLIENT_ID and sent.headers["Authorization"].startswith("Bearer ")


async def test_paging_that_repeats_a_page_is_detected(router: respx.MockRouter) -> None:
    router.post(f"{API}/apitoken").mock(return_value=httpx.Response(200, json=token_body()))
    router.get(f"{API}/Computers").mock(return_value=httpx.Response(200, json=[computer(1), computer(2)]))
    with pytest.raises(TransientVendorError, match="paging"):
        [p async for p in make_adapter(page_size=2).iter_endpoint_pages(None)]


async def test_alert_rows_from_the_wire(router: respx.MockRouter) -> None:
    router.post(f"{API}/apitoken").mock(return_value=httpx.Response(200, json=token_body()))
    alerts = router.get(f"{API}/Alerts").mock(
        return_value=httpx.Response(
            200,
            json=[
                {
                    "AlertId": 77,
                    "Client": {"Id": 7, "Name": "Acme"},
                    "Computer": {"Id": 42, "Name": "WS42", "ComputerStatus": "Online"},
                    "Monitor": {"Id": 5, "Name": "AV - Real-time protection"},
                    "AlertDate": "2026-11-20T07:00:00",
                    "Message": "Real-time protection is disabled",
                },
                {"AlertId": 78, "Client": {"Id": 7}, "Device": {"Id": 3}, "Message": "Switch port down"},
            ],
        )
    )
    adapter = make_adapter(server_timezone="America/New_York")
    [event] = (await adapter.poll_alerts(datetime(2026, 11, 20, 17, 0, tzinfo=UTC))).events
    assert event.event_id == "cwa:alert:77"
    assert event.problem is ProblemKind.PROTECTION_DISABLED
    assert event.occurred_at == datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
    params = alerts.calls.last.request.url.params
    assert params["condition"] == "AlertDate >= 2026-11-20T12:00:00"
    assert params["orderBy"] == "AlertId asc"


# ---------------------------------------------------------------------------------------------
# Pure helpers
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("base_url", "expected"),
    [
        ("https://rancor.hostedrmm.com", API),
        ("rancor.hostedrmm.com/", API),
        ("https://rancor.hostedrmm.com/cwa/api/v1/", API),
        ("https://lt.example.com:8443/automate", "https://lt.example.com:8443/automate/cwa/api/v1"),
    ],
)
def test_api_base(base_url: str, expected: str) -> None:
    assert api_base(base_url) == expected


def test_api_base_requires_a_server() -> None:
    with pytest.raises(ConfigurationError):
        api_base("  ")


def test_parse_time() -> None:
    ny = ZoneInfo("America/New_York")
    assert parse_time("2026-11-20T07:00:00", ny) == datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
    assert parse_time("2026-11-20T07:00:00Z", ny) == datetime(2026, 11, 20, 7, 0, tzinfo=UTC)
    assert parse_time("2026-11-20T07:00:00.1234567") == datetime(2026, 11, 20, 7, 0, 0, 123456, tzinfo=UTC)
    assert parse_time("0001-01-01T00:00:00") is None
    assert parse_time("0000-00-00 00:00:00") is None
    assert parse_time("") is None and parse_time(None) is None


def test_parse_automate_error() -> None:
    plain = httpx.Response(400, json={"Message": "Unknown field 'Foo' in condition."})
    assert parse_automate_error(plain) == ("Unknown field 'Foo' in condition.", None)
    model = httpx.Response(
        400, json={"Message": "The request is invalid.", "ModelState": {"request.ScriptId": ["required"]}}
    )
    assert parse_automate_error(model) == ("The request is invalid. (ScriptId: required)", "ScriptId")
    html = httpx.Response(502, text="<html>Bad gateway</html>")
    assert parse_automate_error(html)[0] == "<html>Bad gateway</html>"


def test_condition_literals() -> None:
    assert cond.compare("ComputerName", "=", "O'Brien-PC") == 'ComputerName = "O\'Brien-PC"'
    assert cond.compare("Status", "=", "Online") == "Status = 'Online'"
    assert cond.compare("IsVirtualMachine", "=", True) == "IsVirtualMachine = true"
    assert cond.in_("Client.Id", [1, 2]) == "Client.Id in (1, 2)"
    assert cond.compare(
        "AlertDate", ">=", datetime(2026, 1, 1, 5, tzinfo=UTC), ZoneInfo("Europe/Berlin")
    ) == ("AlertDate >= 2026-01-01T06:00:00")
    assert cond.and_("A = 1", None, "") == "A = 1"
    assert cond.or_("A = 1", "B = 2") == "((A = 1) or (B = 2))"
    with pytest.raises(ValueError):
        cond.literal("both ' and \"")
    with pytest.raises(ValueError):
        cond.compare("Bad Field", "=", 1)


@pytest.mark.parametrize(
    ("texts", "expected"),
    [
        (("Kaspersky - Threats", "3 threats detected"), ProblemKind.THREAT_DETECTED),
        (("AV - Definitions", "Definitions are 9 days old"), ProblemKind.DEFINITIONS_OUTDATED),
        (("Antivirus", "No antivirus installed"), ProblemKind.NOT_PROTECTED),
        (("Defender", "Real-time protection is off"), ProblemKind.PROTECTION_DISABLED),
        (("AV - Scan", "Last full scan 30 days ago"), ProblemKind.SCAN_OVERDUE),
        (("Agent Offline", "Agent has not checked in"), ProblemKind.AGENT_OFFLINE),
        (("Windows Update", "Updates out of date"), None),
        (("Disk Space - C:", "Free space 3%"), None),
        (("AV - Threat definitions", "Threat definitions are outdated"), ProblemKind.DEFINITIONS_OUTDATED),
    ],
)
def test_classify(texts: tuple[str, str], expected: ProblemKind | None) -> None:
    assert classify(*texts) is expected
