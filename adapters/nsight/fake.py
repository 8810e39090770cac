"""A stateful fake of the N-sight RMM Data Extraction API, as an ASGI app.

Use it in-process with `httpx.ASGITransport(app=fake.app)` (any host routes to it), or serve `fake.app`
with uvicorn for a demo. It behaves like the real API where the adapter depends on it
(see `adapter.py` for the sources):

- `GET /api/?apikey=…&service=…`; every answer is `<result created=".." host=".." status="OK|FAIL">`
  XML declared and encoded as ISO-8859-1, names in CDATA. A FAIL carries `<msg>`. The wording of the
  fake's FAIL messages (wrong key, unknown device, missing parameter) is its own: the real texts are
  not documented.
- Services: list_clients (with per-client server/workstation counts), list_sites&clientid,
  list_servers&siteid / list_workstations&siteid (no paging, like the real ones), list_failing_checks
  [&clientid][&check_type=random|checks|tasks] (1023 = Windows Automated Task), mav_scan_start&deviceid,
  mav_definitions_update&deviceid (FAIL "There is already a MAV definition update pending" when one
  is pending).
- A wrong or missing key is a FAIL with HTTP 200 by default (`auth_failure_status` switches to 401/403).

Test and demo hooks: `seed_fleet`, `add_*`, mutators (`fail_check`, `clear_check`, `set_av_state`,
`touch`, `set_online`, `break_device`), fault injection (`rate_limit` → 429 + Retry-After, `fail_next`
→ 500, `latency`, `truncate` → cut-off XML, `serve_bomb` → entity-expansion XML) and call records
(`calls`, `requests`, `call_count`, `reset_calls`). Check type ids other than 1023 (documented) and
1026/1034 (community-reported MAV types) are placeholders.
"""

from __future__ import annotations

import asyncio
import itertools
import random
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Literal
from xml.sax.saxutils import escape

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from adapters.testing.faults import AsgiFake, ScriptedFault, first_fault

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


def _fmt(when: datetime | None) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S") if when else ""


def _cdata(value: str) -> str:
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


@dataclass
class FleetSeed:
    client_ids: list[int] = field(default_factory=list)
    site_ids: list[int] = field(default_factory=list)
    device_ids: list[int] = field(default_factory=list)


class NsightApiError(Exception):
    def __init__(self, message: str, status: int = 200) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


class NsightFake(AsgiFake):
    """One fake N-sight account. Construct, seed, then point an adapter at `app`."""

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
        self.app = Starlette(routes=[Route("/api/", self._dispatch), Route("/api", self._dispatch)])

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
        self.devices[device.id] = device
        return device

    def seed_fleet(
        self,
        *,
        clients: int = 40,
        devices: int = 2500,
        sites_per_client: int = 3,
        server_ratio: float = 0.1,
        seed: int = 7,
    ) -> FleetSeed:
        """Deterministic fleet: `devices` spread over `clients` x 1..`sites_per_client` sites."""
        rng = random.Random(seed)  # noqa: S311 - reproducible test data
        out = FleetSeed()
        site_ids: list[int] = []
        for n in range(1, clients + 1):
            name = "Müller & Söhne GmbH" if n == 2 else f"Client {n:03d} Ltd"
            client = self.add_client(name)
            out.client_ids.append(client.id)
            for s in range(1, rng.randint(1, max(1, sites_per_client)) + 1):
                site = self.add_site(client.id, "Head Office" if s == 1 else f"Branch {s}")
                site_ids.append(site.id)
        out.site_ids = list(site_ids)
        for index in range(devices):
            site_id = site_ids[index % len(site_ids)]
            is_server = rng.random() < server_ratio
            kind: Literal["server", "workstation"] = "server" if is_server else "workstation"
            online = rng.random() < 0.85
            age = timedelta(minutes=rng.randint(1, 30)) if online else timedelta(hours=rng.randint(2, 400))
            contact = self.now - age
            device = self.add_device(
                site_id,
                f"{'SRV' if kind == 'server' else 'WS'}-{site_id}-{index:04d}",
                kind=kind,
                os="Microsoft Windows Server 2022 Standard" if is_server else "Microsoft Windows 11 Pro",
                online=online,
                last_contact=contact,
                last_boot=contact - timedelta(hours=rng.randint(1, 500)),
            )
            out.device_ids.append(device.id)
        return out

    # -- mutators -------------------------------------------------------------------------------

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
        """Express an antivirus state through the Managed Antivirus / AV update checks."""
        found = f"{threats} threats found" if threats else None
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

    # -- HTTP -----------------------------------------------------------------------------------

    def _result(self, inner: str, status: str = "OK") -> bytes:
        created = self.now.strftime("%Y-%m-%dT%H:%M:%S+00:00")
        text = (
            '<?xml version="1.0" encoding="ISO-8859-1"?>\n'
            f'<result created="{created}" host="{escape(self.host)}" status="{status}">{inner}</result>'
        )
        return text.encode("iso-8859-1", errors="xmlcharrefreplace")

    def _xml_response(
        self, body: bytes, status: int = 200, headers: dict[str, str] | None = None
    ) -> Response:
        return Response(body, status_code=status, media_type="text/xml; charset=ISO-8859-1", headers=headers)

    async def _dispatch(self, request: Request) -> Response:
        params = dict(request.query_params)
        service = params.get("service", "")
        self.calls[service] += 1
        self.requests.append(params)
        if self.latency:
            await asyncio.sleep(self.latency)
        fault = first_fault(self.faults, None, service)
        if fault is not None:
            fault.claim()
            message = "Too many requests" if fault.status == 429 else "Internal server error"
            return self._xml_response(
                self._result(f"<msg>{message}</msg>", "FAIL"), fault.status, fault.retry_headers()
            )
        if params.get("apikey") != self.api_key:
            return self._xml_response(
                self._result("<msg>Invalid API key</msg>", "FAIL"), self.auth_failure_status
            )
        try:
            body = self._service(service, params)
        except NsightApiError as exc:
            return self._xml_response(self._result(f"<msg>{escape(exc.message)}</msg>", "FAIL"), exc.status)
        for body_fault in self.body_faults:
            if body_fault.matches(service, params):
                body_fault.fired += 1
                body = BOMB if body_fault.kind == "bomb" else body[: len(body) // 2]
                break
        return self._xml_response(body)

    def _require(self, params: dict[str, str], name: str) -> int:
        value = params.get(name, "")
        if not value.isdigit():
            raise NsightApiError(f"Missing or invalid parameter {name}")
        return int(value)

    def _service(self, service: str, params: dict[str, str]) -> bytes:
        handlers = {
            "list_clients": self._list_clients,
            "list_sites": self._list_sites,
            "list_servers": lambda p: self._list_devices(p, "server"),
            "list_workstations": lambda p: self._list_devices(p, "workstation"),
            "list_failing_checks": self._list_failing_checks,
            "mav_scan_start": self._mav_scan_start,
            "mav_definitions_update": self._mav_definitions_update,
        }
        handler = handlers.get(service)
        if handler is None:
            raise NsightApiError(f"Unknown service {service}")
        return handler(params)

    def _counts(self, client_id: int) -> Counter[str]:
        counts: Counter[str] = Counter()
        for device in self.devices.values():
            if self.sites[device.site_id].client_id == client_id:
                counts[device.kind] += 1
        return counts

    def _list_clients(self, params: dict[str, str]) -> bytes:
        wanted = params.get("devicetype")
        parts: list[str] = []
        for client in self.clients.values():
            counts = self._counts(client.id)
            if wanted and not counts[wanted]:
                continue
            parts.append(
                f"<client><name>{_cdata(client.name)}</name><clientid>{client.id}</clientid>"
                "<view_dashboard>0</view_dashboard><view_wkstsn_assets>0</view_wkstsn_assets>"
                "<dashboard_username></dashboard_username><timezone>Europe/London</timezone>"
                f"<creation_date>{client.created}</creation_date>"
                f"<server_count>{counts['server']}</server_count>"
                f"<workstation_count>{counts['workstation']}</workstation_count>"
                "<mobile_device_count>0</mobile_device_count>"
                f"<device_count>{counts['server'] + counts['workstation']}</device_count></client>"
            )
        return self._result("<items>" + "".join(parts) + "</items>")

    def _list_sites(self, params: dict[str, str]) -> bytes:
        client_id = self._require(params, "clientid")
        if client_id not in self.clients:
            raise NsightApiError("Invalid clientid")
        parts = [
            f"<site><siteid>{site.id}</siteid><name>{_cdata(site.name)}</name>"
            "<connection_ok>1</connection_ok><creation_date>2024-01-15</creation_date>"
            "<primary_router></primary_router><secondary_router></secondary_router></site>"
            for site in self.sites.values()
            if site.client_id == client_id
        ]
        return self._result("<items>" + "".join(parts) + "</items>")

    def _device_xml(self, device: FakeDevice) -> str:
        fields: dict[str, str | None] = {
            "guid": f"{device.id:08x}-0000-4000-8000-{device.site_id:012x}",
            "name": _cdata(device.name),
            "description": "",
            "install_date": "2024-02-01",
            "last_boot_time": _fmt(device.last_boot),
            "dsc_active": "1",
            "utc_apt": _fmt(device.last_contact),
            "utc_offset": "0",
            "user": escape(device.user),
            "domain": "corp.local",
            "manufacturer": "LENOVO",
            "model": "20XW",
            "ip": device.ip,
            "os": escape(device.os),
            f"{device.kind}id": str(device.id),
            "agent_version": "10_13_3",
            "online": "1" if device.online else "0",
            "active_247": "1",
            "check_interval_247": "5",
            "status_247": "1" if device.online else "5",
        }
        for name, value in self.broken.get(device.id, {}).items():
            fields[name] = None if value is None else escape(value)
        body = "".join(
            f"<{name} />" if value == "" else f"<{name}>{value}</{name}>"
            for name, value in fields.items()
            if value is not None
        )
        return f"<{device.kind}>{body}</{device.kind}>"

    def _list_devices(self, params: dict[str, str], kind: str) -> bytes:
        site_id = self._require(params, "siteid")
        if site_id not in self.sites:
            raise NsightApiError("Invalid siteid")
        parts = [
            self._device_xml(d) for d in self.devices.values() if d.site_id == site_id and d.kind == kind
        ]
        return self._result("<items>" + "".join(parts) + "</items>")

    def _list_failing_checks(self, params: dict[str, str]) -> bytes:
        client_filter = self._require(params, "clientid") if "clientid" in params else None
        if client_filter is not None and client_filter not in self.clients:
            raise NsightApiError("Invalid clientid")
        check_type = params.get("check_type", "random")
        by_device: dict[int, list[FakeCheck]] = {}
        for check in self.checks.values():
            if not check.failing:
                continue
            if check_type == "checks" and check.check_type == 1023:
                continue
            if check_type == "tasks" and check.check_type != 1023:
                continue
            by_device.setdefault(check.device_id, []).append(check)
        clients: dict[int, dict[int, list[int]]] = {}
        for device_id in sorted(by_device):
            site = self.sites[self.devices[device_id].site_id]
            if client_filter is not None and site.client_id != client_filter:
                continue
            clients.setdefault(site.client_id, {}).setdefault(site.id, []).append(device_id)
        parts: list[str] = []
        for client_id, sites in clients.items():
            site_parts: list[str] = []
            for site_id, device_ids in sites.items():
                groups: dict[str, list[str]] = {"server": [], "workstation": []}
                for device_id in device_ids:
                    device = self.devices[device_id]
                    check_xml = "".join(
                        f"<check><checkid>{c.id}</checkid><check_type>{c.check_type}</check_type>"
                        f"<description>{_cdata(c.description)}</description>"
                        f"<date>{c.utc_run:%Y-%m-%d}</date><time>{c.utc_run:%H:%M:%S}</time>"
                        f"<utc_run>{_fmt(c.utc_run)}</utc_run>"
                        f"<formatted_output>{_cdata(c.output)}</formatted_output>"
                        f"<consecutive_fails>{c.consecutive_fails}</consecutive_fails></check>"
                        for c in by_device[device_id]
                    )
                    groups[device.kind].append(
                        f"<{device.kind}><id>{device.id}</id><name>{_cdata(device.name)}</name>"
                        f"<failed_checks>{check_xml}</failed_checks></{device.kind}>"
                    )
                site_parts.append(
                    f"<site><siteid>{site_id}</siteid><name>{_cdata(self.sites[site_id].name)}</name>"
                    f"<servers>{''.join(groups['server'])}</servers>"
                    f"<workstations>{''.join(groups['workstation'])}</workstations></site>"
                )
            parts.append(
                f"<client><clientid>{client_id}</clientid><name>{_cdata(self.clients[client_id].name)}</name>"
                + "".join(site_parts)
                + "</client>"
            )
        return self._result("<items>" + "".join(parts) + "</items>")

    def _device(self, params: dict[str, str]) -> FakeDevice:
        device = self.devices.get(self._require(params, "deviceid"))
        if device is None:
            raise NsightApiError("Device not found")
        return device

    def _mav_scan_start(self, params: dict[str, str]) -> bytes:
        device = self._device(params)
        self.scans_started.append(device.id)
        return self._result("<msg />")

    def _mav_definitions_update(self, params: dict[str, str]) -> bytes:
        device = self._device(params)
        if device.id in self.pending_definition_updates:
            raise NsightApiError("There is already a MAV definition update pending")
        self.pending_definition_updates.add(device.id)
        return self._result("<msg />")


__all__ = ["CHECK_TEMPLATES", "FakeCheck", "FakeDevice", "FleetSeed", "NsightApiError", "NsightFake"]
