"""The fake N-central server's state: customers, sites, devices and their services, tokens, repository
items and tasks; the seeding helpers, mutators and malformed-data hooks tests drive it with; the
notifications it would post; and the fault list and call records."""

from __future__ import annotations

import itertools
import zlib
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any
from xml.sax.saxutils import escape
from zoneinfo import ZoneInfo

from starlette.applications import Starlette

from adapters.testing.faults import ScriptedFault

Row = dict[str, Any]

MAX_PAGE_SIZE = 1000
DEFAULT_PAGE_SIZE = 50
SO_ID = 50
SO_NAME = "Fake MSP"

AGENT_SERVICE = "Agent Status"
AV_PRODUCTS = ("AV Defender Status", "AV Status")
THREAT_SERVICE = "AV Defender Threat Status"
NOISE_SERVICES = (("CPU", ""), ("Disk", "C:"), ("Windows UAC Status", ""))
CLASSES = (
    ("Workstations - Windows", "Microsoft Windows 11 Pro", "winnt"),
    ("Laptop - Windows", "Microsoft Windows 10 Enterprise", "winnt"),
    ("Servers - Windows", "Microsoft Windows Server 2022 Standard", "winnt"),
)
ORDER_WORDS = {
    "asc": False,
    "ascending": False,
    "natural": False,
    "desc": True,
    "descending": True,
    "reverse": True,
}


def iso(when: datetime | None) -> str | None:
    """The API's ISO form with milliseconds and offset, e.g. 2017-02-16T21:00:00.000+01:00."""
    if when is None:
        return None
    text = when.astimezone(UTC).isoformat(timespec="milliseconds")
    return text


def local_text(when: datetime, *, millis: bool = False, zone: tzinfo = UTC) -> str:
    """The offset-less form of notifications (server-local: `zone`) and transition times (UTC). A
    naive `when` is taken as already in `zone`."""
    value = when if when.tzinfo is None else when.astimezone(zone)
    return value.strftime("%Y-%m-%d %H:%M:%S") + (f".{value.microsecond // 1000:03d}" if millis else "")


def local_iso(when: datetime | None, zone: tzinfo) -> str | None:
    """A `…Local` field: "server local time with timezone offset", e.g. 2026-11-20T07:00:00.000-05:00."""
    return None if when is None else when.astimezone(zone).isoformat(timespec="milliseconds")


DEFAULT_TEMPLATE = (
    "ActiveNotificationTriggerID",
    "CustomerName",
    "DeviceName",
    "DeviceURI",
    "ExternalCustomerID",
    "AffectedService",
    "TaskIdent",
    "NcentralURI",
    "QualitativeOldState",
    "QualitativeNewState",
    "TimeOfStateChange",
    "ProbeURI",
    "QuantitativeNewState",
    "ServiceOrganizationName",
)
"""The keywords of N-central's default HTTP-XML notification template, in its order: no `DeviceID`
(the real sample, specs/rmm/samples/ncentral/notification-default-template.xml)."""


# ---------------------------------------------------------------------------------------------
# State
# ---------------------------------------------------------------------------------------------


@dataclass
class FakeCustomer:
    id: int
    name: str
    external_id: str | None = None


@dataclass
class FakeSite:
    id: int
    customer_id: int
    name: str


@dataclass
class FakeService:
    task_id: int
    service_id: int
    module: str
    state: str = "Normal"
    task_ident: str = ""
    transition: datetime | None = None


@dataclass
class FakeDevice:
    id: int
    customer_id: int
    site_id: int | None
    name: str
    device_class: str = "Workstations - Windows"
    os: str = "Microsoft Windows 11 Pro"
    os_id: str = "winnt"
    last_checkin: datetime | None = None
    services: list[FakeService] = field(default_factory=list)


@dataclass
class RepositoryItem:
    id: int
    name: str
    api_enabled: bool = True


@dataclass
class DirectTask:
    id: int
    body: Row
    at: datetime
    status: str = "In Pending"


@dataclass
class Fault(ScriptedFault):
    """A scripted failure on every path starting with `path` (None = any); `embedded` answers 200
    with the error inside, N-central's documented quirk."""

    ignore_case = False
    prefix_match = True

    embedded: bool = False


class NcentralStore:
    """One fake N-central server's state. The HTTP layer (`app.py`) supplies `_build_app`."""

    def __init__(
        self,
        *,
        api_token: str = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJjb25uZWN0b3ItYXBpIn0.ZmFrZS1uY2VudHJhbC1qd3Q",  # noqa: S107
        now: datetime | None = None,
        access_lifetime: int = 3600,
        refresh_lifetime: int = 90000,
        server_timezone: str = "UTC",
    ) -> None:
        self.api_token = api_token
        self.server_zone: tzinfo = ZoneInfo(server_timezone)
        """The server's zone: `…Local` fields and notification times are in it; other times UTC."""
        self.now = now or datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
        self.access_lifetime = access_lifetime
        self.refresh_lifetime = refresh_lifetime
        self._clock_offset = timedelta(0)
        self.access_tokens: dict[str, datetime] = {}
        self.refresh_tokens: dict[str, datetime] = {}
        self.latency = 0.0
        self.faults: list[Fault] = []
        self.calls: Counter[str] = Counter()
        self.statuses: Counter[int] = Counter()
        self.requests: list[dict[str, Any]] = []
        self.customers: dict[int, FakeCustomer] = {}
        self.sites: dict[int, FakeSite] = {}
        self.devices: dict[int, FakeDevice] = {}
        self.filters: dict[int, Callable[[FakeDevice], bool]] = {}
        self.repository: dict[int, RepositoryItem] = {
            2001: RepositoryItem(2001, "Connector - AV Quick Scan"),
            2002: RepositoryItem(2002, "Connector - Update AV Definitions"),
            105: RepositoryItem(105, "Bundled script", api_enabled=False),
        }
        self.tasks: dict[int, DirectTask] = {}
        self.corrupted: dict[int, dict[str, Any]] = {}
        self.broken_status: dict[int, str] = {}
        self.old_server = False
        """True: device lists omit lastApplianceCheckinTime (servers before 2025.3.1.9)."""
        self.notifications: list[bytes] = []
        self._triggers: dict[tuple[int, str], int] = {}
        self._ids = {
            "customer": itertools.count(100),
            "site": itertools.count(5000),
            "device": itertools.count(526_898_132_189),
            "task": itertools.count(905_592_865),
            "service_task": itertools.count(27_446_324),
            "trigger": itertools.count(1_557_534_924),
        }
        self.app = self._build_app()

    def _build_app(self) -> Starlette:
        raise NotImplementedError

    # -- wiring ----------------------------------------------------------------------------------

    def credentials(self) -> dict[str, str]:
        return {"api_token": self.api_token}

    def clock(self) -> datetime:
        """The token clock: real time plus whatever `advance_clock` added."""
        return datetime.now(UTC) + self._clock_offset

    def advance_clock(self, seconds: float) -> None:
        self._clock_offset += timedelta(seconds=seconds)

    # -- fault injection and records -------------------------------------------------------------

    def embed_error_next(self, status: int = 500, times: int | None = 1, path: str | None = None) -> None:
        """The documented quirk: an error message inside a 200 response."""
        self.faults.append(Fault(status, times, path=path, embedded=True))

    def restart(self) -> None:
        """A rebooted server: every issued access and refresh token is forgotten."""
        self.access_tokens.clear()
        self.refresh_tokens.clear()

    def expire_access_tokens(self) -> None:
        """Access tokens stop working; refresh tokens still do."""
        self.access_tokens.clear()

    # -- seeding ---------------------------------------------------------------------------------

    def add_customer(self, name: str, *, external_id: str | None = None) -> FakeCustomer:
        customer = FakeCustomer(next(self._ids["customer"]), name, external_id)
        self.customers[customer.id] = customer
        return customer

    def add_site(self, customer_id: int, name: str = "Main Office") -> FakeSite:
        site = FakeSite(next(self._ids["site"]), customer_id, name)
        self.sites[site.id] = site
        return site

    def _service(self, module: str, state: str = "Normal", ident: str = "") -> FakeService:
        return FakeService(
            task_id=next(self._ids["service_task"]),
            service_id=zlib.crc32(module.encode()) % 900 + 100,
            module=module,
            state=state,
            task_ident=ident,
            transition=self.now - timedelta(hours=3),
        )

    def add_device(
        self,
        customer_id: int,
        name: str,
        *,
        site_id: int | None = None,
        product: str | None = "AV Defender Status",
        protection: str = "Normal",
        threats: str | None = None,
        online: bool = True,
        last_checkin: datetime | None = None,
        device_class: str = "Workstations - Windows",
        os: str = "Microsoft Windows 11 Pro",
    ) -> FakeDevice:
        """A device with an Agent Status service, optionally an AV protection service in state
        `protection` and a threat service in state `threats`, plus non-security services."""
        services = [self._service(AGENT_SERVICE, "Normal" if online else "Failed")]
        if product:
            services.append(self._service(product, protection))
        if threats:
            services.append(self._service(THREAT_SERVICE, threats))
        services.extend(self._service(module, "Normal", ident) for module, ident in NOISE_SERVICES)
        device = FakeDevice(
            id=next(self._ids["device"]),
            customer_id=customer_id,
            site_id=site_id,
            name=name,
            device_class=device_class,
            os=os,
            last_checkin=last_checkin or self.now - timedelta(minutes=2),
            services=services,
        )
        self.devices[device.id] = device
        return device

    def add_filter(self, filter_id: int, predicate: Callable[[FakeDevice], bool]) -> None:
        self.filters[filter_id] = predicate

    def add_repository_item(self, item_id: int, name: str, *, api_enabled: bool = True) -> None:
        self.repository[item_id] = RepositoryItem(item_id, name, api_enabled)

    def touch(self, device_id: int, at: datetime | None = None) -> None:
        """The agent checks in: last check-in moves, Agent Status is Normal."""
        device = self.devices[device_id]
        device.last_checkin = at or self.now
        self.set_service(device_id, AGENT_SERVICE, "Normal")

    def set_online(self, device_id: int, online: bool) -> None:
        self.set_service(device_id, AGENT_SERVICE, "Normal" if online else "Failed")

    def set_service(self, device_id: int, module: str, state: str, *, ident: str = "") -> FakeService:
        """Set (or add) a monitored service's state on a device."""
        device = self.devices[device_id]
        for service in device.services:
            if service.module == module and service.task_ident == ident:
                service.state, service.transition = state, self.now
                return service
        service = self._service(module, state, ident)
        device.services.append(service)
        return service

    def corrupt_device(self, device_id: int, **fields: Any) -> None:
        """Make the device's list record malformed: a field set to `None` is dropped, others replaced."""
        self.corrupted[device_id] = fields

    def break_status(self, device_id: int, mode: str = "malformed") -> None:
        """`malformed` → a service-monitor-status body without a list; `missing` → 404."""
        self.broken_status[device_id] = mode

    # -- notifications ---------------------------------------------------------------------------

    def notification_xml(
        self,
        device_id: int,
        service: str,
        new_state: str,
        *,
        old_state: str | None = None,
        at: datetime | None = None,
        quantitative: str = "",
        task_ident: str = "",
        keywords: tuple[str, ...] | None = None,
    ) -> bytes:
        """The HTTP-XML notification N-central would POST for this state change (and remember it).
        The trigger id stays the same from the failure until the return to Normal. `keywords`
        limits the elements to those listed, like a notification template."""
        device = self.devices[device_id]
        customer = self.customers[device.customer_id]
        site = self.sites.get(device.site_id) if device.site_id is not None else None
        key = (device_id, service)
        trigger = self._triggers.get(key)
        if trigger is None:
            trigger = next(self._ids["trigger"])
            self._triggers[key] = trigger
        if new_state == "Normal":
            self._triggers.pop(key, None)
        values = {
            "ActiveNotificationTriggerID": str(trigger),
            # The org-unit path: "Customer > Site" for a device at a site.
            "CustomerName": f"{customer.name} > {site.name}" if site else customer.name,
            "DeviceID": str(device.id),
            "DeviceName": device.name,
            "DeviceURI": f"10.0.{device.customer_id % 250}.{device.id % 250}",
            "ExternalCustomerID": customer.external_id or "",
            "AffectedService": service,
            "TaskIdent": task_ident,
            "NcentralURI": "ncentral.example.com",
            "QualitativeOldState": old_state or ("Normal" if new_state != "Normal" else "Failed"),
            "QualitativeNewState": new_state,
            "TimeOfStateChange": local_text(at or self.now, zone=self.server_zone),
            "ProbeURI": f"10.0.{device.customer_id % 250}.{device.id % 250}",
            "QuantitativeNewState": quantitative,
            "ServiceOrganizationName": SO_NAME,
        }
        wanted = keywords or tuple(values)
        inner = "".join(
            f"\n  <{name}>{escape(values[name])}</{name}>" if values[name] else f"\n  <{name}/>"
            for name in wanted
            if name in values
        )
        body = f'<?xml version="1.0" encoding="UTF-8"?><notification>{inner}\n</notification>'.encode()
        self.notifications.append(body)
        return body
