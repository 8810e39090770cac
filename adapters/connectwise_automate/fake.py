"""A stateful fake of the ConnectWise Automate REST API v1, as an ASGI app.

Use it in-process with `httpx.ASGITransport(app=fake.app)` (any host routes to it), or serve `fake.app`
with uvicorn for a demo. It behaves like Automate where the adapter depends on it (sources in
`adapter.py`):

- `POST /cwa/api/v1/apitoken` `{UserName, Password[, TwoFactorPasscode]}` → `TokenResult`; a user with
  2FA and no passcode gets 200 with an empty `AccessToken` and `IsTwoFactorRequired: true`. Tokens
  expire after `token_lifetime` seconds by the fake's token clock (`clock`, `advance_clock`) or when
  `expire_tokens()` is called; a missing, unknown or expired bearer is 401.
- The `ClientId` header is required on every route (token route included); missing or unregistered
  is 403. Routes match case-insensitively, like ASP.NET routing.
- Lists (`/Clients`, `/Locations`, `/Computers`, `/Alerts`, `/Computers/{id}/ScriptHistory`) are bare
  JSON arrays: `page` (1-based), `pageSize` (default 50, silently capped at 1000), `orderBy`
  (`Field asc|desc`), `includeFields`, and `condition` parsed, not pattern-matched: `= eq > >= < <=`,
  `like` (`%`/`_`), `contains`, `in (...)`, `not` before in/like/contains, `and`/`or`, parentheses,
  quoted strings, numbers, `true`/`false`/`null`, bare datetimes, dotted fields (`Client.Id`),
  case-insensitive field names and string comparisons (MySQL collation). An unknown field or bad
  syntax is a 400 `{"Message": ...}`.
- `POST /Batch/ScriptExecute` validates the body, records a script run per accepted computer and
  answers `{ScriptResults, ContainsUnsuccessfulResults}`; unknown computers or scripts and offline
  agents with `SkipsOfflineAgents` are per-target failures.
- Errors are ASP.NET-style `{"Message": ...}` bodies. The exact message texts (and 403 for a bad
  ClientId) are this fake's own: Automate's are not published.

Test and demo hooks: `seed_fleet`, `add_*`, mutators (`touch`, `set_av`, `set_online`, `add_alert`),
fault injection (`rate_limit` → 429 + Retry-After, `fail_next` → 5xx, `latency`, `expire_tokens`,
`advance_clock`) and call records (`requests`, `call_count`, `reset_calls`, `script_runs`).
"""

from __future__ import annotations

import asyncio
import functools
import itertools
import json
import random
import re
import secrets
import zlib
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from adapters.testing.faults import AsgiFake, CallLog, PathFaultHooks, ScriptedFault, first_fault, sort_key

Row = dict[str, Any]
Predicate = Callable[[Row], bool]

MAX_PAGE_SIZE = 1000
DEFAULT_PAGE_SIZE = 50
API_PREFIX = "/cwa/api/v1"

PRODUCTS = (
    (11, "Kaspersky Endpoint Security for Windows"),
    (12, "Microsoft Defender Antivirus"),
    (13, "Bitdefender Endpoint Security Tools"),
    (14, "Webroot SecureAnywhere"),
    (15, "Sophos Intercept X"),
)
OS_NAMES = (
    ("Workstation", "Microsoft Windows 11 Pro x64"),
    ("Workstation", "Microsoft Windows 10 Pro x64"),
    ("Server", "Microsoft Windows Server 2022 Standard x64"),
)


class _Unset:
    pass


UNSET = _Unset()


def _scanner(product: str | None) -> tuple[int, str] | None:
    if not product:
        return None
    return next(((i, n) for i, n in PRODUCTS if n == product), (99, product))


def _words(text: str) -> frozenset[str]:
    return frozenset(w.lower() for w in text.split())


CLIENT_FIELDS = _words("Id Name Company City ExternalId")
LOCATION_FIELDS = _words("Id Client Client.Id Client.Name Name ExternalId")
COMPUTER_FIELDS = _words(
    "Id ComputerName FriendlyName Client Client.Id Client.Name Location Location.Id Location.Name Status "
    "Type OperatingSystemName DomainName SerialNumber RemoteAgentLastContact LastHeartbeat DateAdded "
    "VirusScanner VirusScanner.Id VirusScanner.Name AntivirusDefinitionDate LocalIPAddress "
    "IsMaintenanceModeEnabled RemoteAgentVersion"
)
ALERT_FIELDS = _words(
    "AlertId Client Client.Id Client.Name Computer Computer.Id Computer.Name Computer.ComputerStatus Device "
    "Location Location.Id Location.Name Monitor Monitor.Id Monitor.Name AlertDate Severity Severity.Id "
    "Severity.Name Source Message FieldName"
)
RUN_FIELDS = _words("Id ScriptId ComputerId Name User Status State HistoryDate DiagnosticMessage")


def wire_time(when: datetime | None) -> str | None:
    """Automate's offset-less sortable form (the fake's server runs in UTC)."""
    if when is None:
        return None
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S")


# ---------------------------------------------------------------------------------------------
# State
# ---------------------------------------------------------------------------------------------


@dataclass
class FakeClient:
    id: int
    name: str
    city: str = "Springfield"
    external_id: str | None = None


@dataclass
class FakeLocation:
    id: int
    client_id: int
    name: str


@dataclass
class FakeComputer:
    id: int
    client_id: int
    location_id: int
    name: str
    type: str = "Workstation"
    os: str = "Microsoft Windows 11 Pro x64"
    online: bool = True
    last_contact: datetime | None = None
    scanner: tuple[int, str] | None = None
    definitions: datetime | None = None
    serial: str = ""
    date_added: datetime | None = None


@dataclass
class FakeAlert:
    id: int
    computer_id: int
    monitor_id: int
    monitor: str
    message: str
    field_name: str
    at: datetime
    severity: tuple[int, str] = (3, "Critical")
    source: str = "Monitor"


@dataclass
class FakeUser:
    password: str
    two_factor: str | None = None


@dataclass
class ScriptRun:
    id: int
    script_id: int
    computer_id: int
    parameters: list[dict[str, str]]
    skips_offline: bool
    at: datetime
    status: str = "Running"
    state: str | None = None


class Fault(ScriptedFault):
    """A scripted failure on every path starting with `path` (any case; None = any)."""

    prefix_match = True


@dataclass
class FleetSeed:
    client_ids: list[int] = field(default_factory=list)
    location_ids: list[int] = field(default_factory=list)
    computer_ids: list[int] = field(default_factory=list)


class AutomateApiError(Exception):
    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}

    def response(self) -> JSONResponse:
        return JSONResponse({"Message": self.message}, status_code=self.status, headers=self.headers)


class ConditionError(ValueError):
    pass


# ---------------------------------------------------------------------------------------------
# `condition` parser
# ---------------------------------------------------------------------------------------------

_TOKEN = re.compile(
    r"""
    (?P<ws>\s+)
  | (?P<str>'[^']*'|"[^"]*")
  | (?P<date>\d{4}-\d{2}-\d{2}(?:[T\s]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:\d{2})?)?(?![\d:]))
  | (?P<num>-?\d+(?:\.\d+)?(?![\w.]))
  | (?P<op><=|>=|=|<|>)
  | (?P<lp>\()
  | (?P<rp>\))
  | (?P<comma>,)
  | (?P<word>[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*)
    """,
    re.VERBOSE,
)
_KEYWORDS = frozenset({"and", "or", "not", "like", "contains", "in", "eq", "true", "false", "null"})


def _tokens(text: str) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    pos = 0
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if match is None:
            raise ConditionError(f"Unexpected character '{text[pos]}' at position {pos} in condition.")
        kind = match.lastgroup or ""
        if kind != "ws":
            value = match.group()
            if kind == "word" and value.lower() in _KEYWORDS:
                kind = value.lower()
            out.append((kind, value))
        pos = match.end()
    return out


def _parse_dt(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value
    if not isinstance(value, str):
        return None
    try:
        when = datetime.fromisoformat(value.strip())
    except ValueError:
        return None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def _resolve(row: Row, path: str) -> Any:
    value: Any = row
    for part in path.split("."):
        if not isinstance(value, dict):
            return None
        lowered = {k.lower(): v for k, v in value.items()}
        value = lowered.get(part.lower())
    return value


def _compare(left: Any, op: str, right: Any) -> bool:
    if right is None:
        return (left is None) if op == "=" else False
    if left is None:
        return False
    if isinstance(right, bool):
        return op == "=" and isinstance(left, bool) and left == right
    if isinstance(right, datetime) or (isinstance(right, str) and _parse_dt(right) and _parse_dt(left)):
        a, b = _parse_dt(left), _parse_dt(right)
        if a is None or b is None:
            return False
        pair: tuple[Any, Any] = (a, b)
    elif isinstance(right, int | float):
        try:
            pair = (float(left), float(right))
        except (TypeError, ValueError):
            return False
    else:
        pair = (str(left).lower(), str(right).lower())
    a, b = pair
    return bool({"=": a == b, ">": a > b, ">=": a >= b, "<": a < b, "<=": a <= b}[op])


def _like(value: Any, pattern: str) -> bool:
    if value is None:
        return False
    regex = "".join(".*" if c == "%" else "." if c == "_" else re.escape(c) for c in pattern)
    return re.fullmatch(regex, str(value), re.I | re.S) is not None


def _contains(value: Any, needle: Any) -> bool:
    if value is None:
        return False
    if isinstance(value, list):
        return any(str(v).lower() == str(needle).lower() for v in value)
    return str(needle).lower() in str(value).lower()


class _Parser:
    def __init__(self, text: str, fields: frozenset[str]) -> None:
        self.tokens = _tokens(text)
        self.pos = 0
        self.fields = fields

    def peek(self) -> str | None:
        return self.tokens[self.pos][0] if self.pos < len(self.tokens) else None

    def take(self, *kinds: str) -> tuple[str, str]:
        if self.pos >= len(self.tokens):
            raise ConditionError("Unexpected end of condition.")
        token = self.tokens[self.pos]
        if kinds and token[0] not in kinds:
            raise ConditionError(f"Unexpected '{token[1]}' in condition; expected {' or '.join(kinds)}.")
        self.pos += 1
        return token

    def parse(self) -> Predicate:
        predicate = self.or_()
        if self.pos != len(self.tokens):
            raise ConditionError(f"Unexpected '{self.tokens[self.pos][1]}' in condition.")
        return predicate

    def or_(self) -> Predicate:
        parts = [self.and_()]
        while self.peek() == "or":
            self.take()
            parts.append(self.and_())
        return parts[0] if len(parts) == 1 else (lambda row: any(p(row) for p in parts))

    def and_(self) -> Predicate:
        parts = [self.unary()]
        while self.peek() == "and":
            self.take()
            parts.append(self.unary())
        return parts[0] if len(parts) == 1 else (lambda row: all(p(row) for p in parts))

    def unary(self) -> Predicate:
        if self.peek() == "lp":
            self.take()
            inner = self.or_()
            self.take("rp")
            return inner
        return self.comparison()

    def value(self) -> Any:
        kind, text = self.take("str", "num", "date", "true", "false", "null")
        if kind == "str":
            return text[1:-1]
        if kind == "num":
            return float(text) if "." in text else int(text)
        if kind == "date":
            when = _parse_dt(text.replace(" ", "T"))
            if when is None:
                raise ConditionError(f"'{text}' is not a valid date.")
            return when
        return {"true": True, "false": False, "null": None}[kind]

    def comparison(self) -> Predicate:
        _, path = self.take("word")
        if path.lower() not in self.fields:
            raise ConditionError(f"Unknown field '{path}' in condition.")
        negate = False
        if self.peek() == "not":
            self.take()
            negate = True
            if self.peek() not in ("like", "contains", "in"):
                raise ConditionError("'not' can only be used with 'in', 'like' or 'contains'.")
        kind, op = self.take("op", "eq", "like", "contains", "in")
        if kind == "in":
            self.take("lp")
            values = [self.value()]
            while self.peek() == "comma":
                self.take()
                values.append(self.value())
            self.take("rp")
            test: Predicate = lambda row: any(_compare(_resolve(row, path), "=", v) for v in values)  # noqa: E731
        elif kind in ("like", "contains"):
            operand = self.value()
            if kind == "like":
                test = lambda row: _like(_resolve(row, path), str(operand))  # noqa: E731
            else:
                test = lambda row: _contains(_resolve(row, path), operand)  # noqa: E731
        else:
            symbol = "=" if kind == "eq" else op
            operand = self.value()
            return lambda row: _compare(_resolve(row, path), symbol, operand)
        return (lambda row: not test(row)) if negate else test


def parse_condition(text: str, fields: frozenset[str]) -> Predicate:
    return _Parser(text, fields).parse()


# ---------------------------------------------------------------------------------------------
# The fake
# ---------------------------------------------------------------------------------------------


class AutomateFake(AsgiFake, PathFaultHooks[Fault], CallLog):
    """One fake Automate server. Construct, seed, then point an adapter at `app`.

    `call_count` keys are `"METHOD /path"` with the path lower-cased (e.g. `"GET /computers"`)."""

    fault_type = Fault

    def __init__(
        self,
        *,
        username: str = "connector-integrator",
        password: str = "fake-automate-password-1",  # noqa: S107 - the fake's own test user
        client_id: str = "3f1b2c9e-0000-4000-8000-00000000c0de",
        now: datetime | None = None,
        token_lifetime: float = 3600.0,
    ) -> None:
        self.username = username
        self.password = password
        self.client_id = client_id
        self.users: dict[str, FakeUser] = {username.lower(): FakeUser(password)}
        self.client_ids: set[str] = {client_id.lower()}
        self.now = now or datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
        self.token_lifetime = token_lifetime
        self._clock_offset = timedelta(0)
        self.tokens: dict[str, datetime] = {}
        self.latency = 0.0
        self.faults: list[Fault] = []
        self.calls: Counter[str] = Counter()
        self.statuses: Counter[int] = Counter()
        self.requests: list[dict[str, Any]] = []
        self.clients: dict[int, FakeClient] = {}
        self.locations: dict[int, FakeLocation] = {}
        self.computers: dict[int, FakeComputer] = {}
        self.alerts: dict[int, FakeAlert] = {}
        self.scripts: dict[int, str] = {
            6001: "Connector - Antivirus Full Scan",
            6002: "Connector - Update Antivirus Definitions",
        }
        self.script_runs: list[ScriptRun] = []
        self._ids = {
            "client": itertools.count(1),
            "location": itertools.count(101),
            "computer": itertools.count(1001),
            "alert": itertools.count(900001),
            "run": itertools.count(50001),
        }
        self.app = Starlette(
            routes=[Route(API_PREFIX + "/{path:path}", self._dispatch, methods=["GET", "POST"])]
        )

    # -- wiring ----------------------------------------------------------------------------------

    def credentials(self) -> dict[str, str]:
        return {"username": self.username, "password": self.password, "client_id": self.client_id}

    def clock(self) -> datetime:
        """The token clock: real time plus whatever `advance_clock` added."""
        return datetime.now(UTC) + self._clock_offset

    def advance_clock(self, seconds: float) -> None:
        self._clock_offset += timedelta(seconds=seconds)

    # -- fault injection and records -------------------------------------------------------------

    def expire_tokens(self) -> None:
        """Every issued token stops working now (server restart, revocation, expiry)."""
        self.tokens.clear()

    # -- seeding ---------------------------------------------------------------------------------

    def add_client(self, name: str, *, external_id: str | None = None) -> FakeClient:
        client = FakeClient(next(self._ids["client"]), name, external_id=external_id)
        self.clients[client.id] = client
        return client

    def add_location(self, client_id: int, name: str = "Main Office") -> FakeLocation:
        location = FakeLocation(next(self._ids["location"]), client_id, name)
        self.locations[location.id] = location
        return location

    def add_computer(
        self,
        location_id: int,
        name: str,
        *,
        product: str | None = "Microsoft Defender Antivirus",
        definitions_age: timedelta = timedelta(hours=6),
        online: bool = True,
        last_contact: datetime | None = None,
        type_: str = "Workstation",
        os: str = "Microsoft Windows 11 Pro x64",
    ) -> FakeComputer:
        location = self.locations[location_id]
        scanner = _scanner(product)
        computer_id = next(self._ids["computer"])
        computer = FakeComputer(
            id=computer_id,
            client_id=location.client_id,
            location_id=location_id,
            name=name,
            type=type_,
            os=os,
            online=online,
            last_contact=last_contact or self.now - timedelta(minutes=2),
            scanner=scanner,
            definitions=self.now - definitions_age if scanner else None,
            serial=f"SN{computer_id:08d}",
            date_added=self.now - timedelta(days=400),
        )
        self.computers[computer.id] = computer
        return computer

    def seed_fleet(
        self, clients: int = 40, computers: int = 2500, *, locations_per_client: int = 2, seed: int = 7
    ) -> FleetSeed:
        """A deterministic fleet: computers spread evenly over clients, mostly healthy, some without
        AV, with old definitions, or offline for days."""
        rng = random.Random(seed)  # noqa: S311 - reproducible test data
        out = FleetSeed()
        by_client: list[list[int]] = []
        for c in range(clients):
            client = self.add_client(f"Client {c + 1:03d} Ltd")
            out.client_ids.append(client.id)
            names = ["Main Office", "Branch", "Warehouse", "Remote"]
            locs = [
                self.add_location(client.id, names[i % len(names)]).id for i in range(locations_per_client)
            ]
            out.location_ids.extend(locs)
            by_client.append(locs)
        for n in range(computers):
            locs = by_client[n % clients]
            roll = rng.random()
            product = None if roll < 0.06 else rng.choice(PRODUCTS)[1]
            age = timedelta(days=rng.randint(5, 30)) if roll > 0.9 else timedelta(hours=rng.randint(1, 30))
            online = rng.random() > 0.08
            contact = (
                self.now - timedelta(minutes=rng.randint(0, 15))
                if online
                else self.now - timedelta(days=rng.randint(1, 20), minutes=rng.randint(0, 600))
            )
            kind, os_name = OS_NAMES[0] if rng.random() < 0.5 else rng.choice(OS_NAMES)
            computer = self.add_computer(
                rng.choice(locs),
                f"C{(n % clients) + 1:03d}-{'SRV' if kind == 'Server' else 'WS'}{n + 1:05d}",
                product=product,
                definitions_age=age,
                online=online,
                last_contact=contact,
                type_=kind,
                os=os_name,
            )
            out.computer_ids.append(computer.id)
        return out

    def touch(self, computer_id: int, at: datetime | None = None) -> None:
        """The agent checks in: last contact moves, the agent is online."""
        computer = self.computers[computer_id]
        computer.last_contact = at or self.now
        computer.online = True

    def set_av(
        self,
        computer_id: int,
        *,
        product: str | _Unset | None = UNSET,
        definitions_date: datetime | _Unset | None = UNSET,
    ) -> None:
        """Change what the agent reports about antivirus (product None = no scanner detected)."""
        computer = self.computers[computer_id]
        if not isinstance(product, _Unset):
            computer.scanner = _scanner(product)
        if not isinstance(definitions_date, _Unset):
            computer.definitions = definitions_date

    def set_online(self, computer_id: int, online: bool) -> None:
        self.computers[computer_id].online = online

    def add_alert(
        self,
        computer_id: int,
        monitor: str,
        message: str,
        *,
        field_name: str = "",
        at: datetime | None = None,
        severity: tuple[int, str] = (3, "Critical"),
    ) -> FakeAlert:
        alert = FakeAlert(
            id=next(self._ids["alert"]),
            computer_id=computer_id,
            monitor_id=zlib.crc32(monitor.encode()) % 9000 + 1000,
            monitor=monitor,
            message=message,
            field_name=field_name,
            at=at or self.now,
            severity=severity,
        )
        self.alerts[alert.id] = alert
        return alert

    def add_script(self, script_id: int, name: str) -> None:
        self.scripts[script_id] = name

    # -- wire rendering --------------------------------------------------------------------------

    def _client_row(self, client: FakeClient) -> Row:
        return {
            "Id": str(client.id),
            "Name": client.name,
            "Company": client.name,
            "City": client.city,
            "ExternalId": client.external_id,
        }

    def _location_row(self, location: FakeLocation) -> Row:
        client = self.clients[location.client_id]
        return {
            "Id": location.id,
            "Client": {"Id": client.id, "Name": client.name},
            "Name": location.name,
            "ExternalId": None,
        }

    def _computer_row(self, computer: FakeComputer) -> Row:
        client = self.clients[computer.client_id]
        location = self.locations[computer.location_id]
        return {
            "Id": str(computer.id),
            "ComputerName": computer.name,
            "FriendlyName": computer.name,
            "Client": {"Id": client.id, "Name": client.name},
            "Location": {"Id": location.id, "Name": location.name},
            "Status": "Online" if computer.online else "Offline",
            "Type": computer.type,
            "OperatingSystemName": computer.os,
            "DomainName": "CORP",
            "SerialNumber": computer.serial,
            "RemoteAgentLastContact": wire_time(computer.last_contact),
            "LastHeartbeat": wire_time(computer.last_contact),
            "DateAdded": wire_time(computer.date_added),
            "VirusScanner": (
                {"Id": computer.scanner[0], "Name": computer.scanner[1]} if computer.scanner else None
            ),
            "AntivirusDefinitionDate": wire_time(computer.definitions),
            "LocalIPAddress": f"10.{computer.client_id % 250}.{computer.id // 250 % 250}.{computer.id % 250}",
            "IsMaintenanceModeEnabled": False,
            "RemoteAgentVersion": "2024.11.0.18",
        }

    def _alert_row(self, alert: FakeAlert) -> Row:
        computer = self.computers[alert.computer_id]
        client = self.clients[computer.client_id]
        location = self.locations[computer.location_id]
        return {
            "AlertId": alert.id,
            "Client": {"Id": client.id, "Name": client.name},
            "Computer": {
                "Id": computer.id,
                "Name": computer.name,
                "ComputerStatus": "Online" if computer.online else "Offline",
            },
            "Device": None,
            "Location": {"Id": location.id, "Name": location.name},
            "Monitor": {"Id": alert.monitor_id, "Name": alert.monitor},
            "AlertDate": wire_time(alert.at),
            "Severity": {"Id": alert.severity[0], "Name": alert.severity[1]},
            "Source": alert.source,
            "Message": alert.message,
            "FieldName": alert.field_name,
        }

    def _run_row(self, run: ScriptRun) -> Row:
        return {
            "Id": run.id,
            "ScriptId": run.script_id,
            "ComputerId": run.computer_id,
            "Name": self.scripts.get(run.script_id, ""),
            "User": self.username,
            "Status": run.status,
            "State": run.state,
            "HistoryDate": wire_time(run.at),
            "DiagnosticMessage": "",
        }

    # -- HTTP ------------------------------------------------------------------------------------

    async def _dispatch(self, request: Request) -> Response:
        path = "/" + request.path_params["path"].strip("/")
        key = f"{request.method} {path.lower()}"
        self.calls[key] += 1
        self.requests.append(
            {
                "method": request.method,
                "path": path,
                "params": dict(request.query_params),
                "authorization": request.headers.get("authorization"),
                "client_id": request.headers.get("clientid"),
            }
        )
        if self.latency:
            await asyncio.sleep(self.latency)
        try:
            response = await self._handle(request, path)
        except AutomateApiError as exc:
            response = exc.response()
        self.statuses[response.status_code] += 1
        return response

    async def _handle(self, request: Request, path: str) -> Response:
        fault = first_fault(self.faults, request.method, path)
        if fault is not None:
            fault.claim()
            text = "Too many requests" if fault.status == 429 else "An error has occurred."
            raise AutomateApiError(fault.status, text, fault.retry_headers())
        client_id = (request.headers.get("clientid") or "").strip().lower()
        if not client_id or client_id not in self.client_ids:
            raise AutomateApiError(403, "A registered ClientId header is required.")
        lowered = path.lower()
        if lowered == "/apitoken" and request.method == "POST":
            return await self._token(request)
        self._authorize(request)
        parts = lowered.strip("/").split("/")
        if request.method == "GET":
            if parts == ["clients"]:
                rows = [self._client_row(c) for c in self.clients.values()]
                return self._list(request, rows, CLIENT_FIELDS)
            if parts == ["locations"]:
                rows = [self._location_row(x) for x in self.locations.values()]
                return self._list(request, rows, LOCATION_FIELDS)
            if parts == ["computers"]:
                rows = [self._computer_row(c) for c in self.computers.values()]
                return self._list(request, rows, COMPUTER_FIELDS)
            if parts == ["alerts"]:
                rows = [self._alert_row(a) for a in self.alerts.values()]
                return self._list(request, rows, ALERT_FIELDS, "AlertId")
            if len(parts) == 2 and parts[0] == "computers":
                return JSONResponse(self._computer_row(self._computer(parts[1])))
            if len(parts) == 3 and parts[0] == "computers" and parts[2] == "scripthistory":
                computer = self._computer(parts[1])
                rows = [self._run_row(r) for r in self.script_runs if r.computer_id == computer.id]
                return self._list(request, rows, RUN_FIELDS)
        if request.method == "POST" and parts == ["batch", "scriptexecute"]:
            return await self._script_execute(request)
        raise AutomateApiError(404, f"No HTTP resource was found that matches the request URI '{path}'.")

    def _computer(self, raw: str) -> FakeComputer:
        if not raw.isdigit() or int(raw) not in self.computers:
            raise AutomateApiError(404, f"Computer {raw} was not found.")
        return self.computers[int(raw)]

    async def _token(self, request: Request) -> Response:
        try:
            body = json.loads(await request.body() or b"{}")
        except ValueError:
            raise AutomateApiError(400, "The request is invalid.") from None
        if not isinstance(body, dict):
            raise AutomateApiError(400, "The request is invalid.")
        fields = {str(k).lower(): v for k, v in body.items()}
        user = self.users.get(str(fields.get("username") or "").lower())
        if user is None or fields.get("password") != user.password:
            raise AutomateApiError(401, "Username or password is incorrect.")
        now = self.clock()
        if user.two_factor is not None:
            passcode = str(fields.get("twofactorpasscode") or "")
            if not passcode:
                return JSONResponse(self._token_result("", now, two_factor=True))
            if passcode != user.two_factor:
                raise AutomateApiError(401, "The two-factor passcode is incorrect.")
        token = secrets.token_urlsafe(24)
        self.tokens[token] = now + timedelta(seconds=self.token_lifetime)
        return JSONResponse(self._token_result(token, now))

    def _token_result(self, token: str, now: datetime, *, two_factor: bool = False) -> Row:
        expires = now + timedelta(seconds=self.token_lifetime)
        return {
            "AccessToken": token,
            "TokenType": "Bearer" if token else None,
            "ExpirationDate": expires.isoformat() if token else None,
            "AbsoluteExpirationDate": (now + timedelta(hours=8)).isoformat() if token else None,
            "UserId": "42",
            "InternalUserName": self.username,
            "IsTwoFactorRequired": two_factor,
            "IsInternalTwoFactorRequired": False,
            "SSOAccessToken": None,
        }

    def _authorize(self, request: Request) -> None:
        header = request.headers.get("authorization") or ""
        scheme, _, token = header.partition(" ")
        expires = self.tokens.get(token.strip()) if scheme.lower() == "bearer" else None
        if expires is None or expires <= self.clock():
            raise AutomateApiError(401, "Authorization has been denied for this request.")

    def _list(
        self, request: Request, rows: list[Row], fields: frozenset[str], default_order: str = "Id"
    ) -> Response:
        params = request.query_params
        try:
            page = int(params.get("page", "1"))
            size = int(params.get("pageSize", str(DEFAULT_PAGE_SIZE)))
        except ValueError:
            raise AutomateApiError(400, "The request is invalid.") from None
        if page < 1 or size < 1:
            raise AutomateApiError(400, "The request is invalid.")
        size = min(size, MAX_PAGE_SIZE)
        condition = params.get("condition")
        if condition and condition.strip():
            try:
                predicate = parse_condition(condition, fields)
            except ConditionError as exc:
                raise AutomateApiError(400, str(exc)) from None
            rows = [r for r in rows if predicate(r)]
        order = (params.get("orderBy") or f"{default_order} asc").strip()
        for clause in reversed([c.strip() for c in order.split(",") if c.strip()]):
            name, _, direction = clause.partition(" ")
            if name.lower() not in fields:
                raise AutomateApiError(400, f"Unknown field '{name}' in orderBy.")
            descending = direction.strip().lower() == "desc"
            rows.sort(key=functools.partial(_row_key, name), reverse=descending)
        chunk = rows[(page - 1) * size : page * size]
        include = params.get("includeFields")
        if include:
            wanted = {f.strip().lower() for f in include.split(",") if f.strip()}
            chunk = [{k: v for k, v in r.items() if k.lower() in wanted} for r in chunk]
        return JSONResponse(chunk)

    async def _script_execute(self, request: Request) -> Response:
        try:
            body = json.loads(await request.body() or b"{}")
        except ValueError:
            raise AutomateApiError(400, "The request is invalid.") from None
        if not isinstance(body, dict):
            raise AutomateApiError(400, "The request is invalid.")
        if body.get("EntityType") != "Computer":
            raise AutomateApiError(400, "EntityType must be Computer for this fake.")
        ids = body.get("EntityIds")
        if not isinstance(ids, list) or not ids or not all(isinstance(i, int) for i in ids):
            raise AutomateApiError(400, "EntityIds must be a non-empty list of ids.")
        script_id = body.get("ScriptId")
        flags = body.get("OfflineActionFlags") or {}
        params = body.get("Parameters") or []
        if not isinstance(params, list) or not all(
            isinstance(p, dict) and set(p) == {"Key", "Value"} for p in params
        ):
            raise AutomateApiError(400, "Parameters must be a list of {Key, Value}.")
        results: list[Row] = []
        failed = False
        for entity in ids:
            computer = self.computers.get(entity)
            if script_id not in self.scripts:
                status, message = 1, f"Script {script_id} does not exist."
            elif computer is None:
                status, message = 1, f"Computer {entity} does not exist."
            elif not computer.online and flags.get("SkipsOfflineAgents"):
                status, message = 1, f"Computer {entity} is offline; the script was skipped."
            else:
                status, message = 0, ""
                self.script_runs.append(
                    ScriptRun(
                        id=next(self._ids["run"]),
                        script_id=int(script_id),
                        computer_id=entity,
                        parameters=params,
                        skips_offline=bool(flags.get("SkipsOfflineAgents")),
                        at=self.now,
                    )
                )
            failed = failed or status != 0
            details = {"ResultStatus": status, "ReasonCode": 0, "Message": message}
            results.append({"EntityId": entity, "ResultDetails": details})
        return JSONResponse({"ScriptResults": results, "ContainsUnsuccessfulResults": failed})

    def complete_script_runs(self, state: str = "Success") -> None:
        for run in self.script_runs:
            if run.status == "Running":
                run.status, run.state = "Completed", state


def _row_key(name: str, row: Row) -> tuple[int, Any]:
    return sort_key(_resolve(row, name))


__all__ = [
    "AutomateApiError",
    "AutomateFake",
    "ConditionError",
    "FakeAlert",
    "FakeClient",
    "FakeComputer",
    "FakeLocation",
    "FleetSeed",
    "ScriptRun",
    "parse_condition",
    "wire_time",
]
