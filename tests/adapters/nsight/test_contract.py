"""The N-sight adapter against N-able's own description of the Data Extraction API and real answers.

Read from the specs folder (`tests/support/specs.py`), never copied:
- `rmm/samples/nsight/service_params.json`: each service's documented required/optional parameters,
  integer parameters and enumerations, and the two FAIL shapes;
- real answers: list_clients (two public clients' test payloads), a failing-checks answer with an
  `<offline>` device, the documented list_workstations example and a real dashboard's workstation
  item (which reports `online` 1 for offline devices).

The Managed Antivirus listings the adapter reads are documented on pages the specs file does not
cover yet; their parameters are written here as the pages give them:
- list_mav_scans (https://documentation.n-able.com/remote-management/userguide/Content/
  api_list_mav_scans.htm): deviceid integer required, details YES|NO required, v 1|2 optional,
  describe optional;
- list_mav_threats (https://developer.n-able.com/n-sight/docs/list-managed-antivirus): deviceid
  integer required, v 1|2 optional, describe optional.

Every request the adapter can send (test connection, clients, the full listing with its antivirus
reads, both alert-poll scopes, both actions) is captured at the stateful fake and checked: the
service is documented, every documented required parameter is present, no parameter is undocumented,
integers are integers and enumerated values are among the documented ones.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from typing import Any
from xml.etree.ElementTree import Element

import httpx
import pytest
import respx

from adapters.base import ActionKind, ConnectionContext
from adapters.errors import AdapterError, CredentialsError, VendorRequestError
from adapters.nsight import SPEC, NsightAdapter
from adapters.nsight.fake import NsightFake
from adapters.nsight.models import NsightCredentials, NsightOptions, ParseReport
from adapters.nsight.parsing import (
    check_result,
    parse_clients,
    parse_devices,
    parse_failing_checks,
    parse_offline_devices,
    parse_xml,
)
from tests.support.adapter_helpers import asgi_transports, build_adapter
from tests.support.specs import load_json, spec_path

SAMPLES = "rmm/samples/nsight"
MAV_SERVICES: dict[str, dict[str, Any]] = {
    "list_mav_scans": {
        "required": ["deviceid", "details"],
        "optional": ["v", "describe"],
        "integers": ["deviceid"],
        "enums": {"details": ["YES", "NO"], "v": ["1", "2"]},
    },
    "list_mav_threats": {
        "required": ["deviceid"],
        "optional": ["v", "describe"],
        "integers": ["deviceid"],
        "enums": {"v": ["1", "2"]},
    },
}


def documented_services() -> dict[str, dict[str, Any]]:
    services: dict[str, dict[str, Any]] = dict(load_json(f"{SAMPLES}/service_params.json")["services"])
    for name, description in MAV_SERVICES.items():
        services.setdefault(name, description)
    return services


def request_problems(params: Mapping[str, str], services: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """What is wrong with one Data Extraction API request against the documented parameters."""
    if not params.get("apikey"):
        return ["apikey missing"]
    service = params.get("service", "")
    described = services.get(service)
    if described is None:
        return [f"service {service!r} is not documented"]
    given = {k: v for k, v in params.items() if k not in ("apikey", "service")}
    allowed = set(described.get("required", [])) | set(described.get("optional", []))
    problems = [
        f"{service}: required parameter {p} missing" for p in described.get("required", []) if p not in given
    ]
    problems += [f"{service}: parameter {p} is not documented" for p in given if p not in allowed]
    problems += [
        f"{service}: {p}={given[p]!r} is not an integer"
        for p in described.get("integers", [])
        if p in given and not given[p].isdigit()
    ]
    problems += [
        f"{service}: {p}={given[p]!r} is not one of {values}"
        for p, values in described.get("enums", {}).items()
        if p in given and given[p] not in values
    ]
    return problems


def all_problems(requests: Iterable[Mapping[str, str]]) -> list[str]:
    services = documented_services()
    return [problem for params in requests for problem in request_problems(params, services)]


def make_adapter(fake: NsightFake, **options: Any) -> NsightAdapter:
    return build_adapter(
        SPEC,
        NsightAdapter,
        connection_id="ns-contract",
        base_url="https://www.am.remote.management",
        credentials=NsightCredentials(api_key=fake.api_key),
        options=NsightOptions(**options),
        transport_factory=asgi_transports(fake.app),
    )


# ---------------------------------------------------------------------------------------------
# Requests
# ---------------------------------------------------------------------------------------------


def test_the_check_refuses_unknown_services_parameters_and_values() -> None:
    """Planted failures: each kind of mistake the contract test exists to catch is caught."""
    key = {"apikey": "k"}
    assert all_problems([{**key, "service": "list_workstations", "siteid": "7"}]) == []
    assert all_problems([{**key, "service": "list_devices", "siteid": "7"}]) == [
        "service 'list_devices' is not documented"
    ]
    assert all_problems([{**key, "service": "list_workstations"}]) == [
        "list_workstations: required parameter siteid missing"
    ]
    assert all_problems([{**key, "service": "list_workstations", "siteid": "7", "page": "2"}]) == [
        "list_workstations: parameter page is not documented"
    ]
    assert all_problems([{**key, "service": "list_sites", "clientid": "x1"}]) == [
        "list_sites: clientid='x1' is not an integer"
    ]
    assert all_problems([{**key, "service": "list_failing_checks", "check_type": "all"}]) == [
        "list_failing_checks: check_type='all' is not one of ['random', 'checks', 'tasks']"
    ]
    assert all_problems([{**key, "service": "list_mav_scans", "deviceid": "5", "details": "true"}]) == [
        "list_mav_scans: details='true' is not one of ['YES', 'NO']"
    ]
    assert all_problems([{"service": "list_clients"}]) == ["apikey missing"]


async def test_every_request_the_adapter_sends_is_documented() -> None:
    fake = NsightFake()
    fake.seed_fleet(clients=3, devices=24, sites_per_client=2, server_ratio=0.3)
    device = next(iter(fake.devices.values()))
    fake.set_av_state(device.id, protection=False, threats=1)
    fake.set_online(device.id, False)
    adapter = make_adapter(fake)
    await adapter.test_connection()
    assert [c async for c in adapter.list_clients()]
    assert [page async for page in adapter.iter_endpoint_pages(None)]
    assert (await adapter.poll_alerts(None)).events
    for action in sorted(SPEC.actions):
        assert (await adapter.run_action(str(device.id), action)).accepted
    await adapter.aclose()
    for options in ({"failing_checks_scope": "account"}, {"mav_engine": 1}):
        other = make_adapter(fake, **options)
        await other.poll_alerts(None)
        assert [page async for page in other.iter_endpoint_pages(None)]
        await other.aclose()
    sent = {params.get("service") for params in fake.requests}
    assert sent >= {
        "list_clients",
        "list_sites",
        "list_servers",
        "list_workstations",
        "list_failing_checks",
        "list_mav_scans",
        "list_mav_threats",
        "mav_scan_start",
        "mav_definitions_update",
    }
    assert all_problems(fake.requests) == []


async def test_deploy_agent_is_refused_before_any_request() -> None:
    fake = NsightFake()
    adapter = make_adapter(fake)
    assert ActionKind.DEPLOY_AGENT not in SPEC.actions
    with pytest.raises(AdapterError, match="no call"):
        await adapter.run_action("1", ActionKind.DEPLOY_AGENT)
    assert fake.call_count() == 0
    await adapter.aclose()


# ---------------------------------------------------------------------------------------------
# Real payloads
# ---------------------------------------------------------------------------------------------


def sample(name: str) -> bytes:
    return spec_path(f"{SAMPLES}/{name}").read_bytes()


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        (
            "list_clients_python_test.xml",
            [("111111", "Mock client 1", 10, 20), ("222222", "Mock client 2", 1, 2)],
        ),
        (
            "list_clients_rust_test.xml",
            [("1289", "cool client", 0, 13), ("68964", "the second super cool client", 0, 8)],
        ),
    ],
)
def test_real_list_clients_answers_parse(name: str, expected: list[tuple[str, str, int, int]]) -> None:
    report = ParseReport()
    root = check_result(parse_xml(sample(name), name), "list_clients", name)
    clients = parse_clients(root, report)
    assert [(c.id, c.name, c.server_count, c.workstation_count) for c in clients] == expected
    assert report.skipped == []


def test_real_failing_checks_answer_parses_checks_and_offline_devices() -> None:
    root = check_result(
        parse_xml(sample("failing_checks_client_fixture.xml"), "t"), "list_failing_checks", "t"
    )
    report = ParseReport()
    (check,) = parse_failing_checks(root, report)
    assert (check.client_id, check.site_id, check.device_id, check.check_id, check.check_type) == (
        "123",
        "10",
        "38549",
        "77",
        1013,
    )
    assert check.output == "Status: STOPPED"
    assert parse_offline_devices(root) == {"49324"}
    assert report.skipped == []


def _item_xml(kind: str, item: Mapping[str, str | None]) -> bytes:
    fields = "".join(f"<{k}>{v}</{k}>" if v else f"<{k}/>" for k, v in item.items())
    return f'<result status="OK"><items><{kind}>{fields}</{kind}></items></result>'.encode()


def test_documented_list_workstations_example_parses() -> None:
    """The docs example is cut off (it is not well-formed), so its elements are read one by one."""
    text = sample("list_workstations_docs_excerpt.xml").decode()
    body = text[text.index("<workstation>") + len("<workstation>") :]
    item: dict[str, str | None] = {}
    for match in re.finditer(r"<(\w+)\s*/>|<(\w+)>([^<]*)</\2>", body):
        item[match.group(1) or match.group(2)] = None if match.group(1) else match.group(3)
    assert item["name"] == "PETE-LAPTOP"
    report = ParseReport()
    (device,) = parse_devices(
        parse_xml(_item_xml("workstation", {"workstationid": "1", **item}), "t"),
        "workstation",
        "docs",
        report,
    )
    assert (device.name, device.last_boot_at, device.last_contact_at) == ("PETE-LAPTOP", None, None)
    assert report.skipped == []


def workstation_item() -> dict[str, str | None]:
    data = json.loads(sample("workstation_item_python_nableapi.json"))
    item: dict[str, str | None] = data["item"]
    return item


def test_real_workstation_item_parses() -> None:
    item = workstation_item()
    report = ParseReport()
    (device,) = parse_devices(parse_xml(_item_xml("workstation", item), "t"), "workstation", "t", report)
    assert (device.id, device.name, device.os, device.serial_number) == (
        "293334",
        "DESKTOP-123",
        "Microsoft Windows 10 Pro",
        "SN2134",
    )
    assert device.last_boot_at is not None and device.last_contact_at is not None
    assert report.skipped == []


async def test_a_real_online_1_is_not_taken_for_online() -> None:
    """The dashboard that answered this item reports `online` 1 for offline devices: the adapter
    takes offline from the client's failing checks, which list the device with `<offline>`."""
    item = workstation_item()
    assert item["online"] == "1"
    base = "https://www.am.remote.management"
    failing = (
        b'<result status="OK"><items><client><clientid>5</clientid><site><siteid>6</siteid>'
        b"<workstations><workstation><id>293334</id><name>DESKTOP-123</name><offline><description>"
        b"offline</description></offline></workstation></workstations></site></client></items></result>"
    )
    bodies = {
        "list_clients": b'<result status="OK"><items><client><clientid>5</clientid><name>C</name>'
        b"<server_count>0</server_count><workstation_count>1</workstation_count></client></items></result>",
        "list_sites": b'<result status="OK"><items><site><siteid>6</siteid><name>S</name></site>'
        b"</items></result>",
        "list_failing_checks": failing,
        "list_workstations": _item_xml("workstation", item),
        "list_mav_scans": b'<result status="OK"/>',
        "list_mav_threats": b'<result status="OK"/>',
    }
    with respx.mock(assert_all_called=True) as router:
        router.get(f"{base}/api/").mock(
            side_effect=lambda r: httpx.Response(200, content=bodies[r.url.params["service"]])
        )
        adapter = NsightAdapter(
            ConnectionContext(
                connection_id="ns",
                base_url=base,
                credentials=NsightCredentials(api_key="0123456789abcdef"),
                options=NsightOptions(),
            )
        )
        (page,) = [page async for page in adapter.iter_endpoint_pages(None)]
        await adapter.aclose()
    (status,) = page.statuses
    assert status.endpoint_id == "293334" and status.online is False


def test_documented_fail_shapes_are_classified_by_errorcode() -> None:
    shapes = load_json(f"{SAMPLES}/service_params.json")["error_shapes"]

    def xml_of(shape: str) -> Element:
        return parse_xml(shape.split("  (", 1)[0].replace("...", "no published text").encode(), "t")

    with pytest.raises(CredentialsError):
        check_result(xml_of(shapes["fail_error"]), "list_clients", "t")
    with pytest.raises(VendorRequestError) as info:
        check_result(xml_of(shapes["fail_msg"]), "mav_definitions_update", "t")
    assert "already a MAV definition update pending" in str(info.value)


# ---------------------------------------------------------------------------------------------
# The fake answers in the real shapes
# ---------------------------------------------------------------------------------------------


def element_paths(root: Element, prefix: str = "") -> set[str]:
    paths: set[str] = set()
    for child in root:
        path = f"{prefix}/{child.tag}"
        paths.add(path)
        paths |= element_paths(child, path)
    return paths


async def _fake_answer(fake: NsightFake, **params: str) -> Element:
    transport = httpx.ASGITransport(app=fake.app)
    async with httpx.AsyncClient(transport=transport, base_url="https://fake") as client:
        response = await client.get("/api/", params={"apikey": fake.api_key, **params})
    return parse_xml(response.content, "fake")


async def test_fake_list_clients_and_failing_checks_have_the_real_elements() -> None:
    fake = NsightFake()
    client = fake.add_client("Acme")
    site = fake.add_site(client.id, "HQ")
    workstation = fake.add_device(site.id, "WS-01")
    server = fake.add_device(site.id, "SRV-01", kind="server", online=False)
    fake.fail_check(workstation.id, "service")
    for name in ("list_clients_python_test.xml", "list_clients_rust_test.xml"):
        real = element_paths(parse_xml(sample(name), name))
        assert real <= element_paths(await _fake_answer(fake, service="list_clients"))
    real = element_paths(parse_xml(sample("failing_checks_client_fixture.xml"), "t"))
    served = element_paths(await _fake_answer(fake, service="list_failing_checks", clientid=str(client.id)))
    assert real - served <= {"/items/client/site/workstations/workstation/failed_checks/check/checkstatus"}
    assert parse_offline_devices(
        await _fake_answer(fake, service="list_failing_checks", clientid=str(client.id))
    ) == {str(server.id)}


async def test_fake_device_items_use_only_real_fields_and_say_online_1_like_a_real_dashboard() -> None:
    fake = NsightFake()
    site = fake.add_site(fake.add_client("Acme").id, "HQ")
    fake.add_device(site.id, "WS-01", online=False)
    root = await _fake_answer(fake, service="list_workstations", siteid=str(site.id))
    (item,) = root.iterfind("items/workstation")
    assert {child.tag for child in item} <= set(workstation_item())
    assert item.findtext("online") == "1"


async def test_fake_refuses_a_wrong_key_with_errorcode_3() -> None:
    fake = NsightFake()
    transport = httpx.ASGITransport(app=fake.app)
    async with httpx.AsyncClient(transport=transport, base_url="https://fake") as client:
        response = await client.get("/api/", params={"apikey": "wrong", "service": "list_clients"})
    root = parse_xml(response.content, "fake")
    assert root.get("status") == "FAIL" and root.findtext("error/errorcode") == "3"
