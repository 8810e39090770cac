"""KSC wire details pinned with respx: the sign-in and session headers, an empty argument object,
`PxgError` bodies (on an error status and inside a 200), a 429's HTTP-date `Retry-After`, and key
iterators read to `bEOF` over several calls."""

from __future__ import annotations

import base64
import email.utils
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import respx
from pydantic import SecretStr

from adapters.base import ConnectionContext
from adapters.errors import TransientVendorError, VendorRequestError
from adapters.kaspersky_security_center.adapter import KscAdapter
from adapters.kaspersky_security_center.models import KscCredentials, KscOptions
from adapters.testing.harness import RecordingSleep

SERVER = "https://ksc.msp.example:13299"
API = f"{SERVER}/api/v1.0"
VS = "vs-acme"


def adapter(sleep: RecordingSleep | None = None, **options: Any) -> KscAdapter:
    ctx = ConnectionContext(
        connection_id="c",
        base_url="ksc.msp.example:13299/api/v1.0",
        credentials=KscCredentials(username="api", password=SecretStr("pw")),
        options=KscOptions.model_validate(options),
        transport_factory=lambda _url: httpx.AsyncHTTPTransport(),
        sleep=sleep or RecordingSleep(),
    )
    return KscAdapter(ctx)


def vservers() -> httpx.Response:
    row = {"type": "params", "value": {"KLVSRV_ID": 7, "KLVSRV_UID": VS, "KLVSRV_DN": "Acme Dental"}}
    return httpx.Response(200, json={"PxgRetVal": [row]})


def sessions() -> respx.Route:
    def start(request: httpx.Request) -> httpx.Response:
        vserver = request.headers.get("x-ksc-vserver")
        name = base64.b64decode(vserver).decode() if vserver else "main"
        return httpx.Response(200, json={"PxgRetVal": f"token-{name}"})

    return respx.post(f"{API}/Session.StartSession").mock(side_effect=start)


@respx.mock
async def test_sign_in_and_session_headers() -> None:
    start = sessions()
    listed = respx.post(f"{API}/VServers.GetVServers").mock(return_value=vservers())
    ksc = adapter()
    assert [(c.id, c.name) async for c in ksc.list_customers()] == [(VS, "Acme Dental")]
    await ksc.aclose()
    sign_in = start.calls[0].request
    assert sign_in.headers["authorization"] == 'KSCBasic user="YXBp", pass="cHc=", internal="1"'
    assert json.loads(sign_in.content) == {}
    assert "x-ksc-session" not in sign_in.headers and "x-ksc-vserver" not in sign_in.headers
    call = listed.calls[0].request
    assert call.headers["x-ksc-session"] == "token-main"
    assert call.headers["content-type"] == "application/json"
    assert "authorization" not in call.headers
    assert json.loads(call.content) == {"lParentGroup": -1}


@respx.mock
async def test_licence_keys_are_read_until_eof_and_the_iterator_released() -> None:
    sessions()
    respx.post(f"{API}/VServers.GetVServers").mock(return_value=vservers())
    enum = respx.post(f"{API}/LicenseKeys.EnumKeys").mock(
        return_value=httpx.Response(200, json={"lKeyCount": 2, "wstrIterator": "it-1"})
    )
    keys = [
        {
            "KLLIC_SERIAL": "AAAA-1",
            "KLLIC_PROD_NAME": "KES for Windows",
            "KLLIC_LIC_COUNT": 50,
            "KLLIC_NHOSTS_ASCURRENT": 41,
        },
        {"KLLIC_SERIAL": "BBBB-2", "KLLIC_PROD_NAME": "KES for Servers", "KLLIC_NHOSTS_ASCURRENT": 3},
    ]
    nexts = respx.post(f"{API}/GroupSyncIterator.GetNextItems").mock(
        side_effect=[
            httpx.Response(
                200,
                json={
                    "pData": {"KLCSP_ITERATOR_ARRAY": [{"type": "params", "value": keys[0]}]},
                    "bEOF": False,
                },
            ),
            httpx.Response(
                200,
                json={
                    "pData": {"KLCSP_ITERATOR_ARRAY": [{"type": "params", "value": keys[1]}]},
                    "bEOF": True,
                },
            ),
        ]
    )
    release = respx.post(f"{API}/GroupSyncIterator.ReleaseIterator").mock(
        return_value=httpx.Response(200, json={})
    )
    ksc = adapter(page_size=1)
    uses = await ksc.licence_use()
    await ksc.aclose()
    assert [(u.customer_id, u.product, u.sku, u.seats_used, u.seats_purchased) for u in uses] == [
        (VS, "KES for Windows", "AAAA-1", 41, 50),
        (VS, "KES for Servers", "BBBB-2", 3, None),
    ]
    assert enum.calls[0].request.headers["x-ksc-session"] == f"token-{VS}"
    assert base64.b64decode(enum.calls[0].request.headers["x-ksc-vserver"]).decode() == VS
    assert [json.loads(c.request.content) for c in nexts.calls] == [
        {"szwIteratorId": "it-1", "nCount": 1}
    ] * 2
    assert json.loads(release.calls[0].request.content) == {"szwIteratorId": "it-1"}


@respx.mock
async def test_a_429_with_an_http_date_is_waited_for() -> None:
    sessions()
    later = email.utils.format_datetime(datetime.now(UTC) + timedelta(seconds=30), usegmt=True)
    respx.post(f"{API}/VServers.GetVServers").mock(
        side_effect=[httpx.Response(429, headers={"Retry-After": later}), vservers()]
    )
    sleep = RecordingSleep()
    ksc = adapter(sleep)
    await ksc.test_connection()
    await ksc.aclose()
    assert sleep.calls and 20 <= sleep.calls[0] <= 31


@respx.mock
async def test_pxgerror_bodies_name_the_vendor_message() -> None:
    sessions()
    error = {"PxgError": {"code": 1190, "module": "KLSTD", "message": "Object not found"}}
    respx.post(f"{API}/VServers.GetVServers").mock(return_value=httpx.Response(500, json=error))
    ksc = adapter()
    with pytest.raises(TransientVendorError, match=r"Object not found \(code 1190\)"):
        await ksc.test_connection()
    respx.post(f"{API}/VServers.GetVServers").mock(return_value=httpx.Response(200, json=error))
    with pytest.raises(VendorRequestError, match="Object not found"):
        await ksc.test_connection()
    await ksc.aclose()
