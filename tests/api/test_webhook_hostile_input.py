"""Hostile webhook bodies, headers, query strings and paths, sent straight to the ASGI app (raw
bytes, no client library normalizing them): each one must be refused with a 4xx and a JSON body
naming the problem — never a 5xx — and must not harm a valid delivery sent beside it.

On SQLite and on PostgreSQL, whose text columns refuse NUL characters and lone surrogates."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from connector.infra.context import Services
from connector.models import Delivery
from tests.api.world import canonical_alert

LIMIT = 262_144  # the default webhook body limit; every hostile body below fits under it


@dataclass(frozen=True)
class Hostile:
    name: str
    body: bytes = b""
    headers: tuple[tuple[bytes, bytes], ...] = ()
    query: bytes | None = None  # None: authenticate with ?token=<secret>
    path: str | None = None  # None: the connection's webhook path
    kind: str = "dummy_rmm"
    field: str | None = None  # the field the refusal must name


@dataclass
class Answer:
    status: int
    body: bytes
    raised: BaseException | None = None

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Target:
    id: str
    secret: str


@dataclass
class Setup:
    app: Any
    services: Services
    targets: dict[str, Target] = field(default_factory=dict)


async def call_asgi(
    app: Any, path: str, body: bytes, headers: list[tuple[bytes, bytes]], query: bytes
) -> Answer:
    """One request as an ASGI server hands it over: exact bytes, Content-Length as given."""
    if not any(k == b"content-length" for k, _ in headers):
        headers = [*headers, (b"content-length", str(len(body)).encode())]
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode("utf-8", "surrogateescape"),
        "query_string": query,
        "root_path": "",
        "headers": headers,
        "client": ("127.0.0.1", 40000),
        "server": ("testserver", 80),
    }
    sent = False

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if sent:
            await asyncio.sleep(3600)  # the client stays connected
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    status = 0
    chunks: list[bytes] = []

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]
        elif message["type"] == "http.response.body":
            chunks.append(message.get("body", b""))

    raised: BaseException | None = None
    try:
        await app(scope, receive, send)
    except Exception as exc:  # the server error middleware answered 500 and re-raised
        raised = exc
    return Answer(status, b"".join(chunks), raised)


def alert_bytes(**overrides: Any) -> bytes:
    alert = canonical_alert("evt-hostile")
    alert.update(overrides)
    return json.dumps(alert).encode()


def alert_with(raw_field: str, raw_value: bytes) -> bytes:
    """A canonical alert with one value spliced in as raw JSON text (numbers, escapes, nesting)."""
    alert = canonical_alert("evt-hostile")
    alert[raw_field] = "@@"
    return json.dumps(alert).encode().replace(b'"@@"', raw_value)


def datto_alert(**overrides: Any) -> bytes:
    """The body template documented for Datto RMM's webhook settings, variables substituted."""
    item: dict[str, Any] = {
        "source": "datto-rmm",
        "state": "active",
        "alertUid": "a1b2c3d4-0000-4000-8000-000000000001",
        "deviceUid": "d1b2c3d4-0000-4000-8000-000000000001",
        "siteUid": "s1b2c3d4-0000-4000-8000-000000000001",
        "alertType": "Antivirus",
        "message": "Antivirus is not running",
    }
    item.update(overrides)
    return json.dumps(item).encode()


def automate_alert(**overrides: Any) -> bytes:
    item: dict[str, Any] = {
        "ComputerId": "12",
        "ClientId": "3",
        "ComputerName": "PC-12",
        "MonitorName": "Antivirus - Threat found",
        "Status": "Failed",
        "Problem": "threat_detected",
    }
    item.update(overrides)
    return json.dumps(item).encode()


def automate_with(raw_field: str, raw_value: bytes) -> bytes:
    return automate_alert(**{raw_field: "@@"}).replace(b'"@@"', raw_value)


NOTIFICATION = (
    b"<notification><ActiveNotificationTriggerID>7</ActiveNotificationTriggerID><DeviceID>1</DeviceID>"
    b"<AffectedService>Antivirus Status</AffectedService><QualitativeNewState>Failed</QualitativeNewState>"
    b"<CustomerName>&lol9;</CustomerName></notification>"
)
BILLION_LAUGHS = (
    b'<?xml version="1.0"?>\n<!DOCTYPE notification [\n<!ENTITY lol "lol">\n'
    + b"".join(
        b'<!ENTITY lol%d "%s">\n' % (n, (b"&lol%d;" % (n - 1) if n > 1 else b"&lol;") * 10)
        for n in range(1, 10)
    )
    + b"]>\n"
    + NOTIFICATION
)
QUADRATIC_BLOWUP = (
    b'<?xml version="1.0"?><!DOCTYPE notification [<!ENTITY a "'
    + b"A" * 50_000
    + b'">]><notification><CustomerName>'
    + b"&a;" * 20_000
    + b"</CustomerName></notification>"
)
EXTERNAL_ENTITY = (
    b'<?xml version="1.0"?><!DOCTYPE notification [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>'
    b"<notification><CustomerName>&xxe;</CustomerName></notification>"
)
PARAMETER_ENTITY = (
    b'<?xml version="1.0"?><!DOCTYPE notification [<!ENTITY % remote SYSTEM "http://127.0.0.1:9/x.dtd">'
    b"%remote;]><notification/>"
)
EXTERNAL_DTD = (
    b'<?xml version="1.0"?><!DOCTYPE notification SYSTEM "http://127.0.0.1:9/x.dtd"><notification/>'
)


def no_token(name: str, body: bytes = b"", **kwargs: Any) -> Hostile:
    """Sent without any credential."""
    return Hostile(name, body, query=b"", **kwargs)


HOSTILE: list[Hostile] = [
    # --- JSON structure -----------------------------------------------------------------------
    Hostile("deeply nested arrays", b"[" * 100_000 + b"]" * 100_000, field="body"),
    Hostile("deeply nested objects", b'{"a":' * 40_000 + b"0" + b"}" * 40_000, field="body"),
    Hostile(
        "deep nesting inside an alert", alert_with("message", b"[" * 50_000 + b"]" * 50_000), field="body"
    ),
    Hostile("a 10,000-digit number as event_id", alert_with("event_id", b"1" * 10_000), field="body"),
    Hostile("a 10,000-digit number as occurred_at", alert_with("occurred_at", b"9" * 10_000)),
    Hostile("a 10,000-digit float", alert_with("occurred_at", b"1" * 10_000 + b".5")),
    Hostile("huge element count", b"[" + b"0," * 100_000 + b"0]"),
    Hostile("many keys", json.dumps({f"k{n}": n for n in range(12_000)}).encode()),
    Hostile("many empty alerts", json.dumps({"alerts": [{}] * 50_000}).encode()),
    Hostile("invalid UTF-8", b'{"event_id": "\xff\xfe", "problem": "threat_detected"}', field="body"),
    Hostile("UTF-8 overlong NUL", b'{"event_id": "a\xc0\x80", "problem": "threat_detected"}', field="body"),
    Hostile("raw control character in a string", alert_with("event_id", b'"a\x00b"'), field="body"),
    # --- values the database cannot store -----------------------------------------------------
    Hostile("NUL in event_id", alert_with("event_id", b'"evt\\u0000-1"'), field="event_id"),
    Hostile("NUL in client_id", alert_with("client_id", b'"c\\u0000"'), field="client_id"),
    Hostile("NUL in endpoint_id", alert_with("endpoint_id", b'"ep\\u0000"'), field="endpoint_id"),
    Hostile("NUL in hostname", alert_with("hostname", b'"PC\\u0000"'), field="hostname"),
    Hostile("NUL in message", alert_with("message", b'"bad\\u0000news"'), field="message"),
    Hostile(
        "NUL in the second alert of a batch",
        b"["
        + alert_bytes(event_id="ok-1")
        + b","
        + alert_with("event_id", b'"evt\\u0000-2"').replace(b"evt-hostile", b"x")
        + b"]",
        field="alerts[1].event_id",
    ),
    Hostile("lone surrogate in event_id", alert_with("event_id", b'"evt\\ud800"'), field="event_id"),
    Hostile("lone surrogate in message", alert_with("message", b'"a\\udfff b"'), field="message"),
    Hostile("only NULs as event_id", alert_with("event_id", b'"\\u0000\\u0000"'), field="event_id"),
    # --- Content-Length -----------------------------------------------------------------------
    no_token("Content-Length 2**31, no credential", headers=((b"content-length", b"2147483648"),)),
    no_token("Content-Length 2**63, no credential", headers=((b"content-length", b"9223372036854775808"),)),
    no_token("Content-Length of 5,000 digits", headers=((b"content-length", b"9" * 5_000),)),
    no_token("Content-Length not a number", headers=((b"content-length", b"ten"),), field="content-length"),
    no_token("negative Content-Length", headers=((b"content-length", b"-1"),), field="content-length"),
    no_token(
        "Content-Length with underscores", headers=((b"content-length", b"1_0"),), field="content-length"
    ),
    no_token("Content-Length in Arabic digits", headers=((b"content-length", "١٠".encode()),)),
    no_token("Content-Length in Latin-1", headers=((b"content-length", b"\xb2"),), field="content-length"),
    # --- authentication headers and query -----------------------------------------------------
    no_token("non-ASCII signature", alert_bytes(), headers=((b"x-connector-signature", b"sha256=\xe9\xe9"),)),
    no_token("UTF-8 signature", alert_bytes(), headers=((b"x-connector-signature", "sha256=é".encode()),)),
    no_token("NUL in the signature", alert_bytes(), headers=((b"x-connector-signature", b"sha256=\x00"),)),
    no_token(
        "400-digit timestamp",
        alert_bytes(),
        headers=((b"x-connector-signature", b"sha256=00"), (b"x-connector-timestamp", b"9" * 400)),
    ),
    no_token(
        "timestamp in Arabic digits",
        alert_bytes(),
        headers=((b"x-connector-signature", b"sha256=00"), (b"x-connector-timestamp", "١٧".encode())),
    ),
    no_token("non-ASCII token header", alert_bytes(), headers=((b"x-connector-token", b"\xe9t\xe9"),)),
    no_token("NUL in the token header", alert_bytes(), headers=((b"x-connector-token", b"a\x00b"),)),
    Hostile("NUL in ?token=", alert_bytes(), query=b"token=%00"),
    Hostile("invalid UTF-8 in ?token=", alert_bytes(), query=b"token=%FF%FE"),
    Hostile("raw Latin-1 in the query", alert_bytes(), query=b"token=\xe9&x=\x00"),
    Hostile("a surrogate escape in ?token=", alert_bytes(), query=b"token=%ED%A0%80"),
    no_token("NUL in User-Agent, no credential", alert_bytes(), headers=((b"user-agent", b"evil\x00agent"),)),
    no_token(
        "NUL in Content-Type, no credential", alert_bytes(), headers=((b"content-type", b"a\x00/json"),)
    ),
    no_token("Latin-1 User-Agent, no credential", alert_bytes(), headers=((b"user-agent", b"\xe9\xff"),)),
    # --- paths ---------------------------------------------------------------------------------
    Hostile("NUL in the connection id", alert_bytes(), path="/webhooks/abc\x00def"),
    Hostile("non-ASCII connection id", alert_bytes(), path="/webhooks/\u00e9\u4e2d"),
    Hostile("surrogate escape in the connection id", alert_bytes(), path="/webhooks/a\udcff"),
    # --- ConnectWise Automate's alert template ------------------------------------------------
    Hostile(
        "Automate: 5,000-digit ComputerId",
        automate_alert(ComputerId="1" * 5_000),
        kind="connectwise_automate",
        field="ComputerId",
    ),
    Hostile(
        "Automate: 150-digit ComputerId",
        automate_alert(ComputerId="1" * 150),
        kind="connectwise_automate",
        field="ComputerId",
    ),
    Hostile(
        "Automate: superscript digit as ClientId",
        automate_alert(ClientId="\u00b2"),
        kind="connectwise_automate",
        field="ClientId",
    ),
    Hostile(
        "Automate: 10,000-digit number as ComputerId",
        automate_with("ComputerId", b"7" * 10_000),
        kind="connectwise_automate",
        field="body",
    ),
    Hostile(
        "Automate: NUL in MonitorName",
        automate_with("MonitorName", b'"AV\\u0000"'),
        kind="connectwise_automate",
    ),
    Hostile(
        "Automate: NUL in ComputerName",
        automate_with("ComputerName", b'"PC\\u0000"'),
        kind="connectwise_automate",
        field="ComputerName",
    ),
    Hostile(
        "Automate: surrogate in Message",
        automate_with("Message", b'"\\ud800"'),
        kind="connectwise_automate",
        field="Message",
    ),
    Hostile(
        "Automate: deeply nested body",
        b"[" * 100_000 + b"]" * 100_000,
        kind="connectwise_automate",
        field="body",
    ),
    Hostile(
        "Automate: canonical alert with NUL",
        alert_with("endpoint_id", b'"ep\\u0000"'),
        kind="connectwise_automate",
        field="endpoint_id",
    ),
    # --- N-central's XML notifications --------------------------------------------------------
    Hostile("N-central: billion laughs", BILLION_LAUGHS, kind="ncentral", field="body"),
    Hostile("N-central: quadratic blowup", QUADRATIC_BLOWUP, kind="ncentral", field="body"),
    Hostile("N-central: external entity", EXTERNAL_ENTITY, kind="ncentral", field="body"),
    Hostile("N-central: parameter entity", PARAMETER_ENTITY, kind="ncentral", field="body"),
    Hostile("N-central: external DTD", EXTERNAL_DTD, kind="ncentral", field="body"),
    Hostile(
        "N-central: deeply nested XML",
        b"<notification>" + b"<a>" * 30_000 + b"</a>" * 30_000 + b"</notification>",
        kind="ncentral",
    ),
    Hostile(
        "N-central: character reference to NUL",
        NOTIFICATION.replace(b"&lol9;", b"&#0;"),
        kind="ncentral",
        field="body",
    ),
    Hostile("N-central: invalid UTF-8 in XML", NOTIFICATION.replace(b"&lol9;", b"\xff\xfe"), kind="ncentral"),
    Hostile(
        "N-central: 300-digit DeviceID",
        NOTIFICATION.replace(b"<DeviceID>1<", b"<DeviceID>" + b"1" * 300 + b"<").replace(b"&lol9;", b"Acme"),
        kind="ncentral",
    ),
    Hostile(
        "N-central: canonical alert with NUL",
        alert_with("event_id", b'"evt\\u0000"'),
        kind="ncentral",
        field="event_id",
    ),
    Hostile("N-central: deeply nested JSON", b"[" * 100_000 + b"]" * 100_000, kind="ncentral", field="body"),
    # --- Datto RMM's webhook body template ----------------------------------------------------
    Hostile(
        "Datto RMM: 5,000-character alertUid",
        datto_alert(alertUid="a" * 5_000),
        kind="datto_rmm",
        field="alertUid",
    ),
    Hostile(
        "Datto RMM: NUL in deviceUid", datto_alert(deviceUid="d\x00"), kind="datto_rmm", field="deviceUid"
    ),
    Hostile(
        "Datto RMM: lone surrogate in siteUid",
        datto_alert(siteUid="SITE").replace(b'"SITE"', b'"\\ud800"'),
        kind="datto_rmm",
        field="siteUid",
    ),
    Hostile(
        "Datto RMM: unsubstituted variable",
        datto_alert(deviceUid="[device_uid]"),
        kind="datto_rmm",
        field="deviceUid",
    ),
    Hostile("Datto RMM: object as siteUid", datto_alert(siteUid={"a": 1}), kind="datto_rmm", field="siteUid"),
    Hostile("Datto RMM: unknown state", datto_alert(state="maybe"), kind="datto_rmm", field="state"),
    Hostile(
        "N-central: 10,000-digit number", alert_with("event_id", b"3" * 10_000), kind="ncentral", field="body"
    ),
]


def test_every_hostile_body_fits_the_webhook_body_limit() -> None:
    assert all(len(case.body) <= LIMIT for case in HOSTILE), [c.name for c in HOSTILE if len(c.body) > LIMIT]


@pytest.fixture
async def setup(
    app: Any,
    client: httpx.AsyncClient,
    services: Services,
    make_key: Callable[..., Awaitable[dict[str, str]]],
) -> Setup:
    headers = await make_key("engineer")
    made = Setup(app, services)
    connections = {
        "dummy_rmm": {"username": "svc", "api_secret": "rmm-secret"},
        "connectwise_automate": {"username": "svc", "password": "pw", "client_id": "cid"},
        "ncentral": {"api_token": "token-0123456789"},
        "datto_rmm": {"api_key": "KEY", "api_secret": "secret"},
    }
    for kind, credentials in connections.items():
        response = await client.post(
            "/api/v1/connections",
            json={
                "name": kind,
                "kind": kind,
                "base_url": "https://rmm.example.com",
                "credentials": credentials,
            },
            headers=headers,
        )
        assert response.status_code == 201, response.text
        made.targets[kind] = Target(response.json()["id"], response.json()["webhook_secret"])
    return made


async def send(setup: Setup, case: Hostile) -> Answer:
    target = setup.targets[case.kind]
    query = case.query if case.query is not None else f"token={target.secret}".encode()
    headers = [(b"content-type", b"application/json"), *case.headers]
    return await call_asgi(setup.app, case.path or f"/webhooks/{target.id}", case.body, headers, query)


async def send_valid(setup: Setup, event_id: str) -> Answer:
    target = setup.targets["dummy_rmm"]
    body = json.dumps(canonical_alert(event_id)).encode()
    headers = [(b"content-type", b"application/json")]
    return await call_asgi(
        setup.app, f"/webhooks/{target.id}", body, headers, f"token={target.secret}".encode()
    )


def problem_with(case: Hostile, answer: Answer) -> str | None:
    """What is wrong with the answer to a hostile request, or None when it is a proper refusal."""
    if answer.raised is not None:
        return f"{answer.status} ({type(answer.raised).__name__}: {str(answer.raised)[:80]})"
    if not 400 <= answer.status < 500:
        return f"{answer.status} {answer.body[:120]!r}"
    try:
        body = answer.json()
    except ValueError:
        return f"{answer.status} with a non-JSON body {answer.body[:80]!r}"
    if not isinstance(body, dict) or not body.get("error") or not body.get("message"):
        return f"{answer.status} without error and message: {body!r:.120}"
    if case.field is not None:
        named = [e.get("field") for e in body.get("errors", [])]
        if case.field not in named:
            return f"{answer.status} naming {named or body['message']!r}, not {case.field!r}"
    return None


async def test_hostile_webhooks_are_refused_with_a_4xx_and_harm_no_valid_delivery(setup: Setup) -> None:
    wrong: list[str] = []
    valid = 0
    for index, case in enumerate(HOSTILE):
        # The hostile request and a valid one at once, so they share the writer's commit batch.
        hostile, beside = await asyncio.gather(send(setup, case), send_valid(setup, f"valid-{index}"))
        valid += 1
        if (problem := problem_with(case, hostile)) is not None:
            wrong.append(f"{case.name}: {problem}")
        if beside.status != 202:
            wrong.append(
                f"{case.name}: the valid delivery beside it got {beside.status} {beside.body[:80]!r}"
            )
    assert not wrong, f"{len(wrong)} of {len(HOSTILE)} hostile cases went wrong:\n" + "\n".join(wrong)
    async with setup.services.sessions() as session:
        stored = await session.scalar(
            select(func.count()).select_from(Delivery).where(Delivery.status != "rejected")
        )
    assert stored == valid


async def test_control_characters_in_metadata_headers_do_not_cost_a_valid_delivery(setup: Setup) -> None:
    """User-Agent and Content-Type are kept for the deliveries list only: a NUL or Latin-1 byte in
    them is cleaned, the alert itself is stored."""
    target = setup.targets["dummy_rmm"]
    headers = [(b"content-type", b"application/json\x00x"), (b"user-agent", b"curl\x00\xe9/8")]
    answer = await call_asgi(
        setup.app, f"/webhooks/{target.id}", alert_bytes(), headers, f"token={target.secret}".encode()
    )
    assert answer.status == 202, (answer.status, answer.body, answer.raised)
    async with setup.services.sessions() as session:
        row = await session.get(Delivery, answer.json()["delivery_id"])
    assert row is not None and row.user_agent is not None and "\x00" not in row.user_agent
    assert row.content_type is not None and "\x00" not in row.content_type
