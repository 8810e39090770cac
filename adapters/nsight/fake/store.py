"""The fake N-sight account's state: clients, sites, devices and checks; the seeding helpers,
mutators and fault hooks tests drive it with; and the call records."""

from __future__ import annotations

import itertools
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Literal

from starlette.applications import Starlette

from adapters.testing.faults import ScriptedFault

CheckKind = Literal["av_protection", "av_definitions", "threat", "scan", "disk", "service", "task"]

CHECK_TEMPLATES: dict[str, tuple[int, str, str]] = {
    "av_protection": (1026, "Managed Antivirus - Bitdefender", "Real-time protection is disabled"),
    "threat": (1034, "Managed Antivirus - Threat Check", "2 threats found, 1 not cleaned"),
    "av_definitions": (1007, "Antivirus Update Check - Bitdefender", "Definitions 6 days old"),
    "scan": (1026, "Managed Antivirus - Scheduled Scan", "Last deep scan 21 days ago"),
    "disk": (1004, "Disk Space Check - C:", "Free space 4% (3.1 GB)"),
    "service": (1013, "Windows Service Check - Spooler", "Status: STOPPED"),
    "task": (1023, "Windows Automated Task - Cleanup", "Script exited with code 1"),
}

BOMB = (
    b'<?xml version="1.0"?>\n<!DOCTYPE lolz [<!ENTITY lol "lol">'
    b'<!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">'
    b'<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">'
    b'<!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">]>\n'
    b'<result status="OK"><items><site><siteid>1</siteid><name>&lol4;</name></site></items></result>'
)


def wire_time(when: datetime | None) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S") if when else ""


def cdata(value: str) -> str:
    return "<![CDATA[" + value.replace("]]>", "]]]]><![CDATA[>") + "]]>"


@dataclass
class FakeClient:
    id: int
    name: str
    created: str = "2024-01-15"


@dataclass
class FakeSite:
    id: int
    client_id: int
    name: str


@dataclass
class FakeDevice:
    id: int
    site_id: int
    kind: Literal["server", "workstation"]
    name: str
    os: str
    online: bool
    last_boot: datetime | None
    last_contact: datetime | None
    user: str = ""
    ip: str = ""
    mav: bool = True
    """Managed Antivirus installed: the device reports scans (and threats when found)."""
    scans: list[FakeScan] = field(default_factory=list)
    threats: list[FakeThreat] = field(default_factory=list)


@dataclass
class FakeScan:
    """A Managed Antivirus scan as `list_mav_scans` reports it (Bitdefender names)."""

    type: str
    status: str
    start: datetime
    end: datetime | None


@dataclass
class FakeThreat:
    """The latest occurrence of one threat as `list_mav_threats` reports it."""

    name: str
    category: str
    last_status: str
    last_event: datetime


@dataclass
class FakeCheck:
    id: int
    device_id: int
    kind: str
    check_type: int
    description: str
    output: str
    failing: bool
    utc_run: datetime
    consecutive_fails: int = 1


class Fault(ScriptedFault):
    """A scripted failure on one `service` (held in `path`; None = any)."""

    ignore_case = False


@dataclass
class BodyFault:
    """Replace a successful body: `truncate` (cut in half) or `bomb` (entity expansion)."""

    kind: Literal["truncate", "bomb"]
    service: str
    scope: dict[str, str] = field(default_factory=dict)
    times: int | None = None
    fired: int = 0

    def matches(self, service: str, params: dict[str, str]) -> bool:
        if self.times is not None and self.fired >= self.times:
            return False
        return service == self.service and all(params.get(k) == v for k, v in self.scope.items())


class NsightStore:
    """One fake N-sight account's state. The HTTP layer (`app.py`) supplies `_build_app`."""

    def __init__(
        self,
        *,
        api_key: str = "fake-nsight-api-key-0001",
        host: str = "www.am.remote.management",
        now: datetime | None = None,
    ) -> None:
        self.api_key = api_key
        self.host = host
        self.now = now or datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
        self.auth_failure_status = 200
        self.latency = 0.0
        self.faults: list[Fault] = []
        self.body_faults: list[BodyFault] = []
        self.calls: Counter[str] = Counter()
        self.requests: list[dict[str, str]] = []
        self.clients: dict[int, FakeClient] = {}
        self.sites: dict[int, FakeSite] = {}
        self.devices: dict[int, FakeDevice] = {}
        self.checks: dict[int, FakeCheck] = {}
        self.broken: dict[int, dict[str, str | None]] = {}
        self.pending_definition_updates: set[int] = set()
        self.scans_started: list[int] = []
        self._ids = {
            "client": itertools.count(501),
            "site": itertools.count(21001),
            "device": itertools.count(300001),
            "check": itertools.count(7000001),
        }
        self.app = self._build_app()

    def _build_app(self) -> Starlette:
        raise NotImplementedError

    # -- wiring ---------------------------------------------------------------------------------

    def credentials(self) -> dict[str, str]:
        return {"api_key": self.api_key}

    # -- seeding --------------------------------------------------------------------------------

    def add_client(self, name: str) -> FakeClient:
        client = FakeClient(id=next(self._ids["client"]), name=name)
        self.clients[client.id] = client
        return client

    def add_site(self, client_id: int, name: str) -> FakeSite:
        if client_id not in self.clients:
            raise KeyError(f"no client {client_id}")
        site = FakeSite(id=next(self._ids["site"]), client_id=client_id, name=name)
        self.sites[site.id] = site
        return site

    def add_device(
        self,
        site_id: int,
        name: str,
        *,
        kind: Literal["server", "workstation"] = "workstation",
        os: str = "Microsoft Windows 11 Pro",
        online: bool = True,
        last_contact: datetime | None = None,
        last_boot: datetime | None = None,
        mav: bool = True,
    ) -> FakeDevice:
        if site_id not in self.sites:
            raise KeyError(f"no site {site_id}")
        contact = last_contact if last_contact is not None else self.now - timedelta(minutes=5)
        device = FakeDevice(
            id=next(self._ids["device"]),
            site_id=site_id,
            kind=kind,
            name=name,
            os=os,
            online=online,
            last_contact=contact,
            last_boot=last_boot if last_boot is not None else contact - timedelta(days=2),
            ip=f"10.{site_id % 250}.{len(self.devices) // 250 % 250}.{len(self.devices) % 250 + 1}",
        )
        if mav:
            self.install_mav(device)
        self.devices[device.id] = device
        return device

    # -- mutators -------------------------------------------------------------------------------

    def install_mav(self, device: FakeDevice, last_scan: datetime | None = None) -> None:
        """Managed Antivirus on the device: its active protection and a finished deep scan."""
        when = last_scan or self.now - timedelta(days=1)
        device.mav = True
        device.scans = [
            FakeScan("Active Protection", "FINISHED", when - timedelta(days=6), None),
            FakeScan("Deep", "FINISHED", when - timedelta(minutes=40), when),
        ]

    def remove_mav(self, device_id: int) -> None:
        """Managed Antivirus uninstalled (or never deployed): no scans, no threats."""
        device = self.devices[device_id]
        device.mav, device.scans, device.threats = False, [], []

    def set_last_scan(self, device_id: int, when: datetime) -> None:
        self.install_mav(self.devices[device_id], when)

    def fail_check(self, device_id: int, kind: CheckKind, output: str | None = None) -> int:
        """Make a check of this kind fail on the device (re-failing an existing one); its id."""
        if device_id not in self.devices:
            raise KeyError(f"no device {device_id}")
        check_type, description, default_output = CHECK_TEMPLATES[kind]
        existing = next(
            (c for c in self.checks.values() if c.device_id == device_id and c.kind == kind), None
        )
        if existing is None:
            existing = FakeCheck(
                id=next(self._ids["check"]),
                device_id=device_id,
                kind=kind,
                check_type=check_type,
                description=description,
                output=output or default_output,
                failing=True,
                utc_run=self.now,
            )
            self.checks[existing.id] = existing
        else:
            existing.consecutive_fails = existing.consecutive_fails + 1 if existing.failing else 1
            existing.failing = True
            existing.output = output or existing.output
            existing.utc_run = self.now
        return existing.id

    def clear_check(self, check_id: int) -> None:
        """The check passes on its next run."""
        check = self.checks[check_id]
        check.failing = False
        check.consecutive_fails = 0
        check.output = "OK"
        check.utc_run = self.now

    def set_av_state(
        self,
        device_id: int,
        *,
        protection: bool | None = None,
        definitions_current: bool | None = None,
        threats: int | None = None,
    ) -> None:
        """Express an antivirus state through the Managed Antivirus answers and the MAV / AV update
        checks: threats are `Detected` MAV threats (0 = every threat cleaned) and a failing threat
        check; protection off is a failing Managed Antivirus check."""
        found = f"{threats} threats found" if threats else None
        if threats is not None:
            device = self.devices[device_id]
            if not device.mav:
                self.install_mav(device)
            for threat in device.threats:
                threat.last_status = "Cleaned"
            for n in range(threats):
                device.threats.append(
                    FakeThreat(f"Gen:Variant.Fake.{device_id}.{n + 1}", "Trojan", "Detected", self.now)
                )
        wanted: list[tuple[CheckKind, bool | None, str | None]] = [
            ("av_protection", None if protection is None else not protection, None),
            ("av_definitions", None if definitions_current is None else not definitions_current, None),
            ("threat", None if threats is None else threats > 0, found),
        ]
        for kind, failing, output in wanted:
            if failing is None:
                continue
            if failing:
                self.fail_check(device_id, kind, output)
            else:
                for check in self.checks.values():
                    if check.device_id == device_id and check.kind == kind and check.failing:
                        self.clear_check(check.id)

    def touch(self, device_id: int, when: datetime | None = None) -> None:
        device = self.devices[device_id]
        device.last_contact = when or self.now
        device.online = True

    def set_online(self, device_id: int, online: bool) -> None:
        self.devices[device_id].online = online

    def break_device(self, device_id: int, field_name: str, value: str | None = None) -> None:
        """Serve the device without `field_name` (value None) or with a raw value."""
        self.broken.setdefault(device_id, {})[field_name] = value

    # -- faults ---------------------------------------------------------------------------------

    def rate_limit(self, times: int | None = 1, retry_after: float = 2, service: str | None = None) -> None:
        self.faults.append(Fault(429, times, path=service, retry_after=retry_after))

    def fail_next(self, status: int = 500, times: int | None = 1, service: str | None = None) -> None:
        self.faults.append(Fault(status, times, path=service))

    def truncate(self, service: str, times: int | None = None, **scope: str | int) -> None:
        self.body_faults.append(BodyFault("truncate", service, {k: str(v) for k, v in scope.items()}, times))

    def serve_bomb(self, service: str, times: int | None = None, **scope: str | int) -> None:
        self.body_faults.append(BodyFault("bomb", service, {k: str(v) for k, v in scope.items()}, times))

    def clear_faults(self) -> None:
        self.faults.clear()
        self.body_faults.clear()
        self.latency = 0.0

    def call_count(self, service: str | None = None) -> int:
        return self.calls[service] if service else sum(self.calls.values())

    def reset_calls(self) -> None:
        self.calls.clear()
        self.requests.clear()
