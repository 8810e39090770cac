"""The fake Automate server's state: clients, locations, computers, alerts, scripts and users, the
seeding helpers and mutators tests drive it with, and the fault list and call records."""

from __future__ import annotations

import itertools
import zlib
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from starlette.applications import Starlette

from adapters.testing.faults import ScriptedFault

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


def scanner_of(product: str | None) -> tuple[int, str] | None:
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


class AutomateStore:
    """One fake Automate server's state. The HTTP layer (`app.py`) supplies `_build_app`."""

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
            6003: "Connector - Deploy Endpoint Protection Agent",
        }
        self.script_runs: list[ScriptRun] = []
        self.corrupted: dict[int, dict[str, Any]] = {}
        self._ids = {
            "client": itertools.count(1),
            "location": itertools.count(101),
            "computer": itertools.count(1001),
            "alert": itertools.count(900001),
            "run": itertools.count(50001),
        }
        self.app = self._build_app()

    def _build_app(self) -> Starlette:
        raise NotImplementedError

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
        scanner = scanner_of(product)
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
            computer.scanner = scanner_of(product)
        if not isinstance(definitions_date, _Unset):
            computer.definitions = definitions_date

    def set_online(self, computer_id: int, online: bool) -> None:
        self.computers[computer_id].online = online

    def corrupt_computer(self, computer_id: int, **fields: Any) -> None:
        """Serve the computer's list record malformed: a field set to `None` is dropped, others
        replaced (after filtering, so the computer is still listed where it was)."""
        self.corrupted[computer_id] = fields

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

    def complete_script_runs(self, state: str = "Success") -> None:
        for run in self.script_runs:
            if run.status == "Running":
                run.status, run.state = "Completed", state
