"""Wire format of every request the N-sight adapter sends (respx), and its pure parsing helpers."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime

import httpx
import pytest
import respx

from adapters.base import ActionKind, ConnectionContext, ProblemKind
from adapters.errors import (
    AdapterError,
    CredentialsError,
    NotFoundError,
    TransientVendorError,
    VendorRequestError,
)
from adapters.nsight.adapter import NsightAdapter
from adapters.nsight.alerts import is_security_check, problem_for
from adapters.nsight.models import FailingCheck, NsightCredentials, NsightOptions, ParseReport
from adapters.nsight.parsing import (
    NsightMalformedResponseError,
    check_result,
    classify_failure,
    parse_devices,
    parse_failing_checks,
    parse_time,
    parse_xml,
)

SERVER = "https://wwweurope1.systemmonitor.eu.com"
API = f"{SERVER}/api/"
KEY = "0123456789abcdef0123456789abcdef"
OK_EMPTY = (
    b'<?xml version="1.0" ?><result created="2026-11-20T12:00:00+00:00" host="X" status="OK">'
    b"<items/></result>"
)


async def no_sleep(_seconds: float) -> None:
    return None


def make_adapter(base_url: str = SERVER, **options: object) -> NsightAdapter:
    ctx = ConnectionContext(
        connection_id="ns-wire",
        base_url=base_url,
        credentials=NsightCredentials(api_key=KEY),
        options=NsightOptions.model_validate(options),
        sleep=no_sleep,
    )
    return NsightAdapter(ctx)


def xml(inner: str, status: str = "OK") -> bytes:
    return (
        f'<?xml version="1.0" encoding="ISO-8859-1"?><result created="2026-11-20T12:00:00+00:00" '
        f'host="X" status="{status}">{inner}</result>'
    ).encode("iso-8859-1")


@pytest.fixture
def router() -> Iterator[respx.MockRouter]:
    with respx.mock(assert_all_called=True) as mock:
        yield mock


def params(request: httpx.Request) -> dict[str, str]:
    return dict(request.url.params)


# ---------------------------------------------------------------------------------------------
# Wire
# ---------------------------------------------------------------------------------------------


async def test_listing_wire_services_and_apikey_parameter(router: respx.MockRouter) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        service = request.url.params["service"]
        device = request.url.params.get("deviceid")
        bodies = {
            "list_clients": xml(
                "<items><client><name><![CDATA[Acme & Co]]></name><clientid>11</clientid>"
                "<server_count>1</server_count><workstation_count>1</workstation_count></client></items>"
            ),
            "list_sites": xml("<items><site><siteid>21</siteid><name>HQ</name></site></items>"),
            "list_failing_checks": xml(
                "<items><client><clientid>11</clientid><name>Acme</name><site><siteid>21</siteid>"
                "<servers><server><id>31</id><name>SRV</name><offline><description>offline"
                "</description></offline></server></servers></site></client></items>"
            ),
            "list_servers": xml(
                "<items><server><name>SRV</name><serverid>31</serverid><online>1</online>"
                "<last_boot_time>1763640000</last_boot_time></server></items>"
            ),
            "list_workstations": xml(
                "<items><workstation><name>WS</name><workstationid>32</workstationid><online>1</online>"
                "<utc_apt>2026-11-20 11:00:00</utc_apt></workstation></items>"
            ),
            "list_mav_scans": xml(
                "<scan><type>Deep</type><status>FINISHED</status><start>2026-11-19 10:00:00</start>"
                "<end>2026-11-19 10:40:00</end></scan>"
                if device == "31"
                else ""
            ),
            "list_mav_threats": xml(
                "<threat><name>Gen:Trojan.X</name><category>Trojan</category>"
                "<last_event>2026-11-19 10:30:00</last_event><last_status>Detected</last_status></threat>"
                if device == "31"
                else ""
            ),
        }
        return httpx.Response(200, content=bodies[service])

    route = router.get(API).mock(side_effect=handler)
    adapter = make_adapter(without_mav="unprotected")
    pages = [page async for page in adapter.iter_endpoint_pages(None)]
    assert [[s.endpoint_id for s in page.statuses] for page in pages] == [["31", "32"]]
    requests = [call.request for call in route.calls]
    assert [params(r) for r in requests] == [
        {"apikey": KEY, "service": "list_clients"},
        {"apikey": KEY, "service": "list_sites", "clientid": "11"},
        {"apikey": KEY, "service": "list_failing_checks", "clientid": "11"},
        {"apikey": KEY, "service": "list_servers", "siteid": "21"},
        {"apikey": KEY, "service": "list_mav_scans", "deviceid": "31", "details": "NO", "v": "2"},
        {"apikey": KEY, "service": "list_mav_threats", "deviceid": "31", "v": "2"},
        {"apikey": KEY, "service": "list_workstations", "siteid": "21"},
        {"apikey": KEY, "service": "list_mav_scans", "deviceid": "32", "details": "NO", "v": "2"},
        {"apikey": KEY, "service": "list_mav_threats", "deviceid": "32", "v": "2"},
    ]
    first = requests[0]
    assert first.method == "GET" and first.url.path == "/api/"
    assert str(first.url).startswith(f"{API}?apikey={KEY}&service=list_clients")
    assert "xml" in first.headers["accept"]
    server, workstation = pages[0].statuses
    assert server.last_seen_at is None
    assert workstation.last_seen_at == datetime(2026, 11, 20, 11, tzinfo=UTC)
    assert server.client_name == "Acme & Co"
    # `<online>1` is what a real dashboard says of offline devices too: the failing checks decide.
    assert (server.online, workstation.online) == (False, True)
    assert (server.product, server.protection_enabled, server.active_threats) == (
        "Managed Antivirus (Bitdefender)",
        True,
        1,
    )
    assert server.last_scan_at == datetime(2026, 11, 19, 10, 40, tzinfo=UTC)
    # No scan and no threat: no Managed Antivirus on the device, so nothing N-sight manages protects it.
    assert (workstation.product, workstation.protection_enabled, workstation.active_threats) == (
        None,
        False,
        None,
    )
    await adapter.aclose()
    # By default that is unknown (another antivirus may protect it), never "unprotected".
    default = make_adapter()
    pages = [page async for page in default.iter_endpoint_pages(None)]
    assert pages[0].statuses[1].product is None and pages[0].statuses[1].protection_enabled is None
    await default.aclose()


@pytest.mark.parametrize("base", [SERVER, f"{SERVER}/", f"{SERVER}/api", "wwweurope1.systemmonitor.eu.com"])
async def test_base_url_forms_resolve_to_the_api_path(router: respx.MockRouter, base: str) -> None:
    route = router.get(API).respond(200, content=OK_EMPTY)
    adapter = make_adapter(base)
    await adapter.test_connection()
    assert route.call_count == 1
    await adapter.aclose()


async def test_failing_checks_wire_per_client_and_account(router: respx.MockRouter) -> None:
    clients = xml("<items><client><name>A</name><clientid>11</clientid></client></items>")
    checks = xml(
        "<items><client><clientid>11</clientid><name>A</name><site><siteid>21</siteid><name>HQ</name>"
        "<workstations><workstation><id>32</id><name>WS</name><failed_checks><check>"
        "<checkid>901</checkid><check_type>1026</check_type><description>Managed Antivirus</description>"
        "<utc_run>2026-11-20 11:55:00</utc_run><formatted_output>Protection off</formatted_output>"
        "</check></failed_checks></workstation></workstations></site></client></items>"
    )
    route = router.get(API).mock(
        side_effect=lambda r: httpx.Response(
            200, content=clients if r.url.params["service"] == "list_clients" else checks
        )
    )
    adapter = make_adapter()
    polled = await adapter.poll_alerts(None)
    (event,) = polled.events
    assert polled.complete_for == frozenset({"11"})
    assert params(route.calls[-1].request) == {
        "apikey": KEY,
        "service": "list_failing_checks",
        "clientid": "11",
        "check_type": "checks",
    }
    assert event.event_id == "nsight:32:901" and event.occurred_at == datetime(
        2026, 11, 20, 11, 55, tzinfo=UTC
    )
    await adapter.aclose()
    account = make_adapter(failing_checks_scope="account")
    assert (await account.poll_alerts(None)).complete_for == frozenset({"11"})
    assert params(route.calls[-1].request) == {
        "apikey": KEY,
        "service": "list_failing_checks",
        "check_type": "checks",
    }
    await account.aclose()


@pytest.mark.parametrize(
    ("action", "service"),
    [(ActionKind.SCAN, "mav_scan_start"), (ActionKind.UPDATE_DEFINITIONS, "mav_definitions_update")],
)
async def test_action_wire(router: respx.MockRouter, action: ActionKind, service: str) -> None:
    route = router.get(API).respond(200, content=xml("<msg />"))
    adapter = make_adapter()
    result = await adapter.run_action("38549", action)
    assert result.accepted
    assert params(route.calls.last.request) == {"apikey": KEY, "service": service, "deviceid": "38549"}
    await adapter.aclose()


async def test_action_500_is_not_repeated(router: respx.MockRouter) -> None:
    route = router.get(API).respond(500, content=xml("<msg>oops</msg>", "FAIL"))
    adapter = make_adapter()
    with pytest.raises(TransientVendorError) as info:
        await adapter.run_action("38549", ActionKind.SCAN)
    assert info.value.maybe_applied and route.call_count == 1
    assert KEY not in str(info.value)
    await adapter.aclose()


async def test_reads_retry_429_then_succeed(router: respx.MockRouter) -> None:
    route = router.get(API).mock(
        side_effect=[
            httpx.Response(429, headers={"Retry-After": "3"}, content=b"slow down"),
            httpx.Response(503, content=b"<html>maintenance</html>"),
            httpx.Response(200, content=OK_EMPTY),
        ]
    )
    adapter = make_adapter()
    await adapter.test_connection()
    assert route.call_count == 3
    await adapter.aclose()


@pytest.mark.parametrize("status", [401, 403])
async def test_http_auth_failure_is_credentials_error(router: respx.MockRouter, status: int) -> None:
    route = router.get(API).respond(status, content=xml("<msg>Access denied</msg>", "FAIL"))
    adapter = make_adapter()
    with pytest.raises(CredentialsError) as info:
        await adapter.test_connection()
    assert route.call_count == 1 and "Access denied" in str(info.value) and KEY not in str(info.value)
    await adapter.aclose()


async def test_fail_with_error_element_shape(router: respx.MockRouter) -> None:
    router.get(API).respond(
        200, content=xml("<error><errorcode>3</errorcode><message>Invalid API key</message></error>", "FAIL")
    )
    adapter = make_adapter()
    with pytest.raises(CredentialsError) as info:
        await adapter.test_connection()
    assert info.value.field == "api_key"
    await adapter.aclose()


# ---------------------------------------------------------------------------------------------
# Parsing helpers
# ---------------------------------------------------------------------------------------------


def test_check_result_classifies_failures_by_errorcode_not_wording() -> None:
    assert check_result(parse_xml(OK_EMPTY, "t"), "list_clients", "t").tag == "result"

    def failure(inner: str) -> AdapterError:
        with pytest.raises(AdapterError) as info:
            check_result(parse_xml(xml(inner, "FAIL"), "t"), "list_sites", "t")
        return info.value

    def coded(code: int, message: str) -> str:
        return f"<error><errorcode>{code}</errorcode><message>{message}</message></error>"

    # errorcode 3 = login failed, whatever the text says (the texts are not published).
    assert type(failure(coded(3, "Login failed"))) is CredentialsError
    assert type(failure(coded(3, "Something else entirely"))) is CredentialsError
    assert failure(coded(3, "x")).field == "api_key"
    # errorcode 4 = invalid parameter: the id is not one the key can see, not a credentials problem.
    assert type(failure(coded(4, "Invalid API key permission for siteid"))) is NotFoundError
    # A `<msg>` without a code is a refusal of the request, whatever words it uses.
    for message in ("Invalid API key", "Too many requests", "Device not found", "Access denied"):
        assert type(failure(f"<msg>{message}</msg>")) is VendorRequestError
    assert type(classify_failure("whatever", "list_sites")) is VendorRequestError
    assert type(classify_failure("whatever", "list_sites", "3")) is CredentialsError
    with pytest.raises(NsightMalformedResponseError):
        check_result(parse_xml(b"<scans/>", "t"), "list_sites", "t")


def test_parse_xml_refuses_entity_expansion_fast() -> None:
    bomb = (
        b'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY a "aaaaaaaaaa">'
        + b"".join(f'<!ENTITY {chr(98 + i)} "{("&" + chr(97 + i) + ";") * 10}">'.encode() for i in range(8))
        + b']><result status="OK"><items>&i;</items></result>'
    )
    started = time.monotonic()
    with pytest.raises(NsightMalformedResponseError) as info:
        parse_xml(bomb, "site 7")
    assert time.monotonic() - started < 1
    assert info.value.field == "site 7" and "DTD/entity" in info.value.message
    external = (
        b'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]><result>&x;</result>'
    )
    with pytest.raises(NsightMalformedResponseError):
        parse_xml(external, "site 7")


@pytest.mark.parametrize("body", [b"", b'<result status="OK"><items><site>', b"<html>502</html"])
def test_parse_xml_names_the_scope_for_broken_bodies(body: bytes) -> None:
    with pytest.raises(NsightMalformedResponseError) as info:
        parse_xml(body, "site 9 (HQ)")
    assert info.value.field == "site 9 (HQ)"


def test_parse_time_formats() -> None:
    assert parse_time("2015-07-21 23:09:38") == datetime(2015, 7, 21, 23, 9, 38, tzinfo=UTC)
    assert parse_time("2026-11-20T10:00:00+01:00") == datetime(2026, 11, 20, 9, tzinfo=UTC)
    assert parse_time("1763640000") == datetime.fromtimestamp(1763640000, tz=UTC)
    assert parse_time(None) is None and parse_time("0000-00-00 00:00:00") is None
    with pytest.raises(ValueError):
        parse_time("last tuesday")


def test_parse_devices_single_item_and_id_variants() -> None:
    root = parse_xml(
        xml(
            "<items><server><id>5</id><name><![CDATA[DC-01]]></name>"
            "<device_serial>SN1</device_serial></server></items>"
        ),
        "t",
    )
    report = ParseReport()
    (device,) = parse_devices(root, "server", "site 1", report)
    assert (device.id, device.name, device.serial_number, device.online) == ("5", "DC-01", "SN1", None)
    assert report.skipped == []


def test_parse_failing_checks_skips_and_reports_bad_rows() -> None:
    root = parse_xml(
        xml(
            "<items><client><clientid>1</clientid><site><siteid>2</siteid>"
            "<servers><server><name>NOID</name><failed_checks><check><checkid>1</checkid></check>"
            "</failed_checks></server><server><id>9</id><name>OFF</name><offline><description>offline"
            "</description></offline></server></servers>"
            "<workstations><workstation><id>3</id><name>WS</name><failed_checks>"
            "<check><description>Managed Antivirus</description></check>"
            "<check><checkid>77</checkid><check_type>x</check_type><description>AV</description></check>"
            "</failed_checks></workstation></workstations></site></client></items>"
        ),
        "t",
    )
    report = ParseReport()
    (check,) = parse_failing_checks(root, report)
    assert (check.device_id, check.check_id, check.check_type) == ("3", "77", None)
    assert len(report.skipped) == 3
    assert any("server NOID: field id missing" in line for line in report.skipped)
    assert any("check #1: field checkid missing" in line for line in report.skipped)


@pytest.mark.parametrize(
    ("description", "output", "check_type", "security", "problem"),
    [
        ("Managed Antivirus - Bitdefender", "Protection off", 1026, True, ProblemKind.PROTECTION_DISABLED),
        (
            "Antivirus Update Check - Sophos",
            "Definitions 9 days old",
            1007,
            True,
            ProblemKind.DEFINITIONS_OUTDATED,
        ),
        ("Managed Antivirus - Threat Check", "", 1034, True, ProblemKind.THREAT_DETECTED),
        ("Custom check", "Malware found: Trojan.X", 1034, True, ProblemKind.THREAT_DETECTED),
        ("Windows Service Check - Spooler", "STOPPED", 1013, False, ProblemKind.PROTECTION_DISABLED),
        ("Disk Space Check - C:", "4%", 1004, False, ProblemKind.PROTECTION_DISABLED),
    ],
)
def test_security_classification(
    description: str, output: str, check_type: int, security: bool, problem: ProblemKind
) -> None:
    check = FailingCheck("1", "2", "3", "WS", "4", check_type, description, output)
    assert is_security_check(check, (1026, 1034)) is security
    if security:
        assert problem_for(check) == problem
