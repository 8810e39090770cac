"""Every request the KSC adapter sends checked against the Open API as the vendor notes document it.

KSC publishes no machine-readable description (its Open API is Doxygen HTML), so the contract is
../shared/specs/kaspersky-security-center/NOTES.md, encoded below as `METHODS`: per method the
section it comes from, the named arguments it takes (with their JSON types) and those it needs,
and how the call authenticates. Three methods the NOTES name only by class are taken from the
vendor's class reference (their `source` says which page): `VServers.GetVServers` (KSC/16 KSCAPI
a00632.html), `LicenseKeys.EnumKeys` (KSC/14 a00761.html) and the `GroupSyncIterator` it answers
(named by KSC/15 a00537). The attributes asked for (`vecFieldsToReturn`, `pFields`) must be
attributes the NOTES list (`KLHST_WKS_*`; of `KLLIC_*` the NOTES list two, the rest are from
KSC/13 a00115.html "List of license key attributes").

The specs folder holds no captured KSC answer (SOURCE.txt: "No sample payload files"); the payload
fragments the NOTES quote (typed values) are parsed through the read models instead.
"""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from adapters.base import SecurityAdapter
from adapters.kaspersky_security_center import SPEC
from adapters.kaspersky_security_center.adapter import HOST_FIELDS, KEY_FIELDS
from adapters.kaspersky_security_center.fake.harness import KscHarness, KscWorld
from adapters.kaspersky_security_center.models import HostRead, LicenceKeyRead, VServerRead, plain
from adapters.testing.harness import load_harness
from tests.support.contracts import ContractError, Exchange, no_sleep, record_world
from tests.support.specs import spec_path

SPECS_DIR = "kaspersky-security-center"
NOTES = f"{SPECS_DIR}/NOTES.md"
PATH = re.compile(r"^/api/v1\.0/([A-Za-z]+\.[A-Za-z]+)$")
B64 = r"[A-Za-z0-9+/]+={0,2}"
KSCBASIC = re.compile(rf'^KSCBasic user="({B64})", pass="({B64})"(, domain="({B64})")?, internal="([01])"$')


@dataclass(frozen=True)
class Method:
    source: str
    arguments: dict[str, type | tuple[type, ...]]
    required: frozenset[str]
    auth: str = "session"
    """"signin": the KSCBasic Authorization header; "session": X-KSC-Session."""
    scope: str = "vserver"
    """"vserver": carries the customer's X-KSC-VServer; "main": the main server, without it."""


METHODS: dict[str, Method] = {
    "Session.StartSession": Method(
        "NOTES 'Auth / sessions / tenants' (KSC/16 a00608.html)", {}, frozenset(), auth="signin", scope="any"
    ),
    "VServers.GetVServers": Method(
        "KSC/16 KSCAPI a00632.html (NOTES: virtual servers are the tenants)",
        {"lParentGroup": int},
        frozenset({"lParentGroup"}),
        scope="main",
    ),
    "HostGroup.FindHosts": Method(
        "NOTES 'Devices (hosts) and status'",
        {
            "wstrFilter": str,
            "vecFieldsToReturn": list,
            "vecFieldsToOrder": list,
            "pParams": dict,
            "lMaxLifeTime": int,
        },
        frozenset({"wstrFilter", "vecFieldsToReturn", "vecFieldsToOrder", "pParams", "lMaxLifeTime"}),
    ),
    "ChunkAccessor.GetItemsCount": Method(
        "NOTES 'Devices (hosts) and status'", {"strAccessor": str}, frozenset({"strAccessor"})
    ),
    "ChunkAccessor.GetItemsChunk": Method(
        "NOTES 'Devices (hosts) and status' (KSC/15 a00499_*.html)",
        {"strAccessor": str, "nStart": int, "nCount": int},
        frozenset({"strAccessor", "nStart", "nCount"}),
    ),
    "ChunkAccessor.Release": Method(
        "NOTES 'Devices (hosts) and status'", {"strAccessor": str}, frozenset({"strAccessor"})
    ),
    "LicenseKeys.EnumKeys": Method(
        "KSC/14 KSCAPI a00761.html (NOTES 'Licence usage per customer': LicenseKeys class)",
        {"pFields": list, "pFieldsToOrder": list, "pOptions": dict, "lTimeoutSec": int},
        frozenset({"pFields", "pFieldsToOrder", "pOptions", "lTimeoutSec"}),
    ),
    "GroupSyncIterator.GetNextItems": Method(
        "KSC/15 KSCAPI a00537 (the iterator EnumKeys answers)",
        {"szwIteratorId": str, "nCount": int},
        frozenset({"szwIteratorId", "nCount"}),
    ),
    "GroupSyncIterator.ReleaseIterator": Method(
        "KSC/15 KSCAPI a00537", {"szwIteratorId": str}, frozenset({"szwIteratorId"})
    ),
}
FROM_NOTES = (
    "Session.StartSession",
    "HostGroup.FindHosts",
    "ChunkAccessor.GetItemsCount",
    "ChunkAccessor.GetItemsChunk",
    "ChunkAccessor.Release",
)
FIND_PARAMS = frozenset({"KLGRP_FIND_FROM_CUR_VS_ONLY"})
KEY_ATTRIBUTES_FROM_REFERENCE = frozenset(
    {"KLLIC_SERIAL", "KLLIC_PROD_NAME", "KLLIC_KEY_TYPE", "KLLIC_LIMIT_DATE"}
)
"""Licence key attributes from KSC/13 KSCAPI a00115.html (the NOTES list KLLIC_LIC_COUNT and
KLLIC_NHOSTS_ASCURRENT)."""


@cache
def notes() -> str:
    return Path(spec_path(NOTES)).read_text()


def host_attributes() -> frozenset[str]:
    return frozenset(re.findall(r"KLHST_WKS_[A-Z_]*[A-Z]", notes()))


def key_attributes() -> frozenset[str]:
    return frozenset(re.findall(r"KLLIC_[A-Z_]*[A-Z]", notes())) | KEY_ATTRIBUTES_FROM_REFERENCE


def decoded(value: str) -> str:
    return base64.b64decode(value, validate=True).decode()


def check(exchange: Exchange, vservers: frozenset[str]) -> str:
    """The method the request calls, or `ContractError` naming what the notes do not allow."""
    if exchange.method != "POST":
        raise ContractError(f"{exchange.method}: KSC methods are called with POST")
    found = PATH.match(exchange.path)
    if found is None:
        raise ContractError(f"{exchange.path} is not /api/v1.0/Class.Method")
    name = found.group(1)
    method = METHODS.get(name)
    if method is None:
        raise ContractError(f"{name} is not a method of the contract")
    if not exchange.headers.get("content-type", "").startswith("application/json"):
        raise ContractError(f"{name}: the body must be application/json")
    body = exchange.body
    if not isinstance(body, dict):
        raise ContractError(f"{name}: the body is a JSON object of named arguments")
    unknown = sorted(set(body) - set(method.arguments))
    if unknown:
        raise ContractError(f"{name}: argument {unknown[0]!r} is not documented")
    missing = sorted(method.required - set(body))
    if missing:
        raise ContractError(f"{name}: argument {missing[0]!r} is missing")
    for argument, value in body.items():
        wanted = method.arguments[argument]
        if (isinstance(value, bool) and wanted is int) or not isinstance(value, wanted):
            raise ContractError(f"{name}: argument {argument!r} has the wrong type")
    if name == "HostGroup.FindHosts":
        fields = set(body["vecFieldsToReturn"]) - host_attributes()
        if fields:
            raise ContractError(f"{name}: {sorted(fields)[0]} is not a host attribute of the notes")
        params = set(body["pParams"]) - FIND_PARAMS
        if params:
            raise ContractError(f"{name}: pParams {sorted(params)[0]!r} is not documented")
    if name == "LicenseKeys.EnumKeys":
        fields = set(body["pFields"]) - key_attributes()
        if fields:
            raise ContractError(f"{name}: {sorted(fields)[0]} is not a licence key attribute")
    headers = exchange.headers
    if method.auth == "signin":
        basic = KSCBASIC.match(headers.get("authorization", ""))
        if basic is None:
            raise ContractError(f"{name}: Authorization is not KSCBasic user, pass, internal")
        decoded(basic.group(1)), decoded(basic.group(2))
        if "x-ksc-session" in headers:
            raise ContractError(f"{name}: a sign-in carries no session")
    else:
        if not headers.get("x-ksc-session"):
            raise ContractError(f"{name}: X-KSC-Session is missing")
        if "authorization" in headers:
            raise ContractError(f"{name}: a session call repeats no credentials")
    vserver = headers.get("x-ksc-vserver")
    if method.scope == "main" and vserver is not None:
        raise ContractError(f"{name}: is called on the main server, without X-KSC-VServer")
    if method.scope == "vserver" and (vserver is None or decoded(vserver) not in vservers):
        raise ContractError(f"{name}: X-KSC-VServer does not name a customer's virtual server (base64)")
    return name


def world() -> KscWorld:
    harness = load_harness(SPEC)
    assert isinstance(harness, KscHarness)
    return harness.start(
        customers=("Acme Dental", "Blue Harbor Logistics"), agents_per_customer=3, page_size=2
    )


async def drive(ksc: KscWorld, log: list[Exchange]) -> SecurityAdapter:
    """Every adapter method against the fake, with a session that expires halfway."""
    record_world(ksc, log)
    adapter = ksc.adapter(sleep=no_sleep)
    await adapter.test_connection()
    assert [c async for c in adapter.list_customers()]
    assert [a async for page in adapter.iter_agent_pages(None) for a in page.agents]
    cursor = ksc.cursor()
    first = next(iter(ksc.agents))
    ksc.touch([first])
    ksc.raise_threat(first)
    ksc.fake.expire_sessions()
    assert [a async for page in adapter.iter_agent_pages(cursor) for a in page.agents]
    assert (await adapter.list_threats(None)).threats
    assert await adapter.licence_use()
    return adapter


async def test_every_request_the_adapter_sends_is_in_the_notes() -> None:
    log: list[Exchange] = []
    ksc = world()
    adapter = await drive(ksc, log)
    await adapter.aclose()
    vservers = frozenset(ksc.customers)
    seen = {check(exchange, vservers) for exchange in log if exchange.status != 401}
    assert seen == set(METHODS)
    # The expired session was answered 401 once per scope and a new session started.
    assert {e.status for e in log} == {200, 401}
    assert sum(1 for e in log if e.path.endswith("Session.StartSession")) == 6
    # Host chunks follow the accessor in steps of the page size, and every accessor is released.
    chunks = [e.body for e in log if e.path.endswith("GetItemsChunk")]
    assert {c["nCount"] for c in chunks} == {2}
    assert {c["nStart"] for c in chunks} == {0, 2}
    accessors = {e.response["strAccessor"] for e in log if e.path.endswith("FindHosts") and e.status == 200}
    assert accessors == {e.body["strAccessor"] for e in log if e.path.endswith("ChunkAccessor.Release")}
    assert not ksc.fake.accessors and not ksc.fake.iterators


def test_the_table_is_the_notes() -> None:
    """The methods the table takes from the notes, and every attribute the adapter asks for, are in
    NOTES.md (the others are from the class reference pages their `source` names)."""
    text = notes()
    for name in FROM_NOTES:
        assert name.split(".")[1] in text and name.split(".")[0] in text, name
        for argument in METHODS[name].arguments:
            assert argument in text, (name, argument)
    assert "X-KSC-Session" in text and "X-KSC-VServer" in text and 'internal="1"' in text
    assert "KLGRP_FIND_FROM_CUR_VS_ONLY" in text and "KLCSP_ITERATOR_ARRAY" in text
    assert set(HOST_FIELDS) <= host_attributes()
    assert set(KEY_FIELDS) <= key_attributes()
    assert {"KLLIC_LIC_COUNT", "KLLIC_NHOSTS_ASCURRENT"} <= set(re.findall(r"KLLIC_[A-Z_]*[A-Z]", text))


def test_the_validator_refuses_planted_bad_requests() -> None:
    vs = "0f534fde-01d4-56fe-a1e3-9b2d7f9987d4"
    scoped = {"x-ksc-session": "s", "x-ksc-vserver": base64.b64encode(vs.encode()).decode()}
    url = "https://ksc.msp.example:13299/api/v1.0/"

    def sent(method: str, body: Any, headers: dict[str, str] | None = None) -> Exchange:
        return Exchange.of(
            "POST", url + method, body, headers={"content-type": "application/json", **(headers or scoped)}
        )

    find = {
        "wstrFilter": "",
        "vecFieldsToReturn": ["KLHST_WKS_HOSTNAME", "KLHST_WKS_RTP_STATE"],
        "vecFieldsToOrder": [],
        "pParams": {"KLGRP_FIND_FROM_CUR_VS_ONLY": True},
        "lMaxLifeTime": 600,
    }
    assert check(sent("HostGroup.FindHosts", find), frozenset({vs})) == "HostGroup.FindHosts"
    with pytest.raises(ContractError, match="'nLimit' is not documented"):
        check(sent("HostGroup.FindHosts", {**find, "nLimit": 5}), frozenset({vs}))
    with pytest.raises(ContractError, match="KLHST_WKS_MAC is not a host attribute"):
        check(sent("HostGroup.FindHosts", {**find, "vecFieldsToReturn": ["KLHST_WKS_MAC"]}), frozenset({vs}))
    with pytest.raises(ContractError, match="pParams 'KLGRP_ALL'"):
        check(sent("HostGroup.FindHosts", {**find, "pParams": {"KLGRP_ALL": 1}}), frozenset({vs}))
    with pytest.raises(ContractError, match="'nCount' has the wrong type"):
        chunk = {"strAccessor": "a", "nStart": 0, "nCount": "2"}
        check(sent("ChunkAccessor.GetItemsChunk", chunk), frozenset({vs}))
    with pytest.raises(ContractError, match="'nStart' is missing"):
        check(sent("ChunkAccessor.GetItemsChunk", {"strAccessor": "a", "nCount": 2}), frozenset({vs}))
    with pytest.raises(ContractError, match="not a method"):
        check(sent("HostGroup.GetHosts", {}), frozenset({vs}))
    with pytest.raises(ContractError, match="X-KSC-Session is missing"):
        check(
            sent("ChunkAccessor.Release", {"strAccessor": "a"}, {"x-ksc-vserver": scoped["x-ksc-vserver"]}),
            frozenset({vs}),
        )
    with pytest.raises(ContractError, match="X-KSC-VServer does not name"):
        check(sent("ChunkAccessor.Release", {"strAccessor": "a"}, {"x-ksc-session": "s"}), frozenset({vs}))
    with pytest.raises(ContractError, match="without X-KSC-VServer"):
        check(sent("VServers.GetVServers", {"lParentGroup": -1}), frozenset({vs}))
    with pytest.raises(ContractError, match="not KSCBasic"):
        check(sent("Session.StartSession", {}, {"authorization": "Basic dXNlcjpwYXNz"}), frozenset({vs}))
    with pytest.raises(ContractError, match=r"not /api/v1\.0"):
        check(
            Exchange.of("POST", "https://ksc.msp.example:13299/api/v2/HostGroup.FindHosts", {}), frozenset()
        )


def test_the_specs_folder_has_no_sample_payloads_and_the_quoted_fragments_parse() -> None:
    """No real KSC answer is stored (SOURCE.txt says so); the typed values NOTES.md quotes read
    through `plain` and the models."""
    folder = Path(spec_path(NOTES)).parent
    assert sorted(p.name for p in folder.iterdir()) == ["NOTES.md", "SOURCE.txt"]
    assert "No sample payload files" in (folder / "SOURCE.txt").read_text()
    quoted = re.search(r'\{"type":"datetime","value":"([^"]+)"\}', notes())
    assert quoted is not None
    typed = {"type": "datetime", "value": quoted.group(1)}
    host = HostRead.model_validate(
        plain(
            {
                "KLHST_WKS_HOSTNAME": "c0ffee00-0000-4000-8000-000000000001",
                "KLHST_WKS_LAST_VISIBLE": typed,
                "KLHST_WKS_UNCURED_COUNT": {"type": "long", "value": 2},
                "KLHST_WKS_STATUS": 0x1 | 0x4 | 0x8 | 0x10,
                "KLHST_WKS_RTP_STATE": 4,
            }
        )
    )
    assert host.KLHST_WKS_LAST_VISIBLE == datetime(2020, 4, 8, 12, 22, 35, tzinfo=UTC)
    assert host.KLHST_WKS_UNCURED_COUNT == 2
    nested = plain({"type": "params", "value": {"KLVSRV_ID": 3, "KLVSRV_UID": "vs-3", "KLVSRV_DN": "Acme"}})
    server = VServerRead.model_validate(nested)
    assert (server.KLVSRV_ID, server.KLVSRV_UID, server.KLVSRV_DN) == ("3", "vs-3", "Acme")
    key = LicenceKeyRead.model_validate(
        plain({"KLLIC_PROD_NAME": "KES", "KLLIC_LIC_COUNT": 50, "KLLIC_NHOSTS_ASCURRENT": 41, "extra": 1})
    )
    assert (key.KLLIC_LIC_COUNT, key.KLLIC_NHOSTS_ASCURRENT) == (50, 41)
