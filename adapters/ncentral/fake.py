"""A stateful fake of N-central's REST API-Service, as an ASGI app, plus its HTTP-XML notifications.

Use it in-process with `httpx.ASGITransport(app=fake.app)` (any host routes to it), or serve `fake.app`
with uvicorn for a demo. It behaves like N-central where the adapter depends on it (sources in
`adapter.py`):

- `POST /api/auth/authenticate` with the User-API token (JWT) as bearer → `{"tokens": {"access":
  {token, type: "Bearer", expirySeconds}, "refresh": {token, type: "Body", expirySeconds}}, "refresh",
  "validate"}`; `X-ACCESS-EXPIRY-OVERRIDE` / `X-REFRESH-EXPIRY-OVERRIDE` (`120s`, `30m`, `1h`) are
  honoured. `POST /api/auth/refresh` takes the refresh token as the raw body and rotates both tokens.
  Tokens expire by the fake's token clock (`clock`, `advance_clock`); `restart()` forgets every issued
  token like a rebooted server. A missing, unknown or expired bearer is 401.
- Paged lists (`/api/customers`, `/api/sites`, `/api/devices`, `/api/org-units/{id}/devices`):
  `pageNumber` (from 1), `pageSize` (1–1000, default 50; outside → 400), `sortBy`/`sortOrder`
  (ASC/ASCENDING/NATURAL, DESC/DESCENDING/REVERSE), `filterId` on devices (filters registered with
  `add_filter`); envelope `data, pageNumber, pageSize, itemCount, totalItems, totalPages, _links`.
- `GET /api/devices/{id}` → `{data, _links}`; `GET /api/devices/{id}/service-monitor-status` →
  `{data: [DeviceServiceMonitoringStatus], totalItems}`.
- `POST /api/scheduled-tasks/direct` validates the body, refuses repository items without API access
  (403 `ScriptNotRunnableException`) and records a task; `GET /api/scheduled-tasks/{id}`.
- Errors are `{"status": n, "message": "[ID=…] REASON: SomethingException: …"}` like the spec's
  examples; the exact texts are this fake's own. The monitored-service names used when seeding
  ("Agent Status", "AV Defender Status", "AV Status", "AV Defender Threat Status", "CPU", "Disk",
  "Windows UAC Status") are plausible but only "Windows UAC Status" and "Disk" appear in N-able's
  examples.

Test and demo hooks: `seed_fleet`, `add_*`, mutators (`touch`, `set_service`, `set_online`),
malformed data (`corrupt_device`, `break_status`, `old_server`), notifications (`notification_xml`),
fault injection (`rate_limit` → 429 + Retry-After, `fail_next` → 5xx, `embed_error_next` → an error
inside a 200, `latency`, `restart`, `advance_clock`) and call records (`requests`, `call_count`,
`reset_calls`, `tasks`).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import random
import secrets
import zlib
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from xml.sax.saxutils import escape

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from adapters.testing.faults import AsgiFake, CallLog, PathFaultHooks, ScriptedFault, first_fault, sort_key

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
_ORDER_WORDS = {
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


def local_text(when: datetime, *, millis: bool = False) -> str:
    """Server-local, offset-less form used by notifications and transition times (server in UTC)."""
    value = when.astimezone(UTC)
    return value.strftime("%Y-%m-%d %H:%M:%S") + (f".{value.microsecond // 1000:03d}" if millis else "")


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


@dataclass
class FleetSeed:
    customer_ids: list[int] = field(default_factory=list)
    site_ids: list[int] = field(default_factory=list)
    device_ids: list[int] = field(default_factory=list)


class NcentralApiError(Exception):
    REASONS = {
        400: "BAD REQUEST",
        401: "UNAUTHORIZED",
        403: "FORBIDDEN",
        404: "NOT FOUND",
        409: "CONFLICT",
        429: "TOO MANY REQUESTS",
        500: "INTERNAL SERVER ERROR",
        503: "SERVICE UNAVAILABLE",
    }

    def __init__(self, status: int, detail: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.headers = headers or {}

    def body(self) -> Row:
        reason = self.REASONS.get(self.status, "ERROR")
        return {"status": self.status, "message": f"[ID={secrets.token_hex(2)}] {reason}: {self.detail}"}

    def response(self) -> JSONResponse:
        return JSONResponse(self.body(), status_code=self.status, headers=self.headers)


def _expiry(value: str | None, default: int) -> int:
    if not value:
        return default
    text = value.strip().lower()
    unit = {"s": 1, "m": 60, "h": 3600}.get(text[-1:])
    if unit is None or not text[:-1].isdigit():
        raise NcentralApiError(400, f"BadRequestException: Invalid expiry override '{value}'.")
    return int(text[:-1]) * unit


# ---------------------------------------------------------------------------------------------
# The fake
# ---------------------------------------------------------------------------------------------


class NcentralFake(AsgiFake, PathFaultHooks[Fault], CallLog):
    """One fake N-central server. Construct, seed, then point an adapter at `app`.

    `call_count` keys are `"METHOD /api/path"` with device ids replaced by `{id}`."""

    fault_type = Fault

    def __init__(
        self,
        *,
        api_token: str = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJjb25uZWN0b3ItYXBpIn0.ZmFrZS1uY2VudHJhbC1qd3Q",  # noqa: S107
        now: datetime | None = None,
        access_lifetime: int = 3600,
        refresh_lifetime: int = 90000,
    ) -> None:
        self.api_token = api_token
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
        self.app = Starlette(
            routes=[Route("/api/{path:path}", self._dispatch, methods=["GET", "POST", "PUT", "DELETE"])]
        )

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

    def seed_fleet(
        self, customers: int = 40, devices: int = 2500, *, sites_per_customer: int = 1, seed: int = 7
    ) -> FleetSeed:
        """A deterministic fleet: devices spread evenly over customers, mostly healthy, some without
        an AV service, with protection failing, a detected threat, or an agent offline for days."""
        rng = random.Random(seed)  # noqa: S311 - reproducible test data
        out = FleetSeed()
        by_customer: list[tuple[int, list[int]]] = []
        for c in range(customers):
            customer = self.add_customer(f"Customer {c + 1:03d} Ltd")
            out.customer_ids.append(customer.id)
            names = ["Main Office", "Branch", "Warehouse", "Remote"]
            sites = [self.add_site(customer.id, names[i % len(names)]).id for i in range(sites_per_customer)]
            out.site_ids.extend(sites)
            by_customer.append((customer.id, sites))
        for n in range(devices):
            customer_id, sites = by_customer[n % customers]
            roll = rng.random()
            product = None if roll < 0.06 else rng.choice(AV_PRODUCTS)
            protection = "Failed" if 0.06 <= roll < 0.10 else "Normal"
            threats = "Failed" if 0.10 <= roll < 0.12 else ("Normal" if product == AV_PRODUCTS[0] else None)
            online = rng.random() > 0.08
            checkin = (
                self.now - timedelta(minutes=rng.randint(0, 15))
                if online
                else self.now - timedelta(days=rng.randint(1, 20), minutes=rng.randint(0, 600))
            )
            device_class, os_name, _ = CLASSES[0] if rng.random() < 0.5 else rng.choice(CLASSES)
            prefix = "SRV" if device_class.startswith("Servers") else "WS"
            device = self.add_device(
                customer_id,
                f"C{(n % customers) + 1:03d}-{prefix}{n + 1:05d}",
                site_id=rng.choice(sites) if sites else None,
                product=product,
                protection=protection,
                threats=threats,
                online=online,
                last_checkin=checkin,
                device_class=device_class,
                os=os_name,
            )
            out.device_ids.append(device.id)
        return out

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
        key = (device_id, service)
        trigger = self._triggers.get(key)
        if trigger is None:
            trigger = next(self._ids["trigger"])
            self._triggers[key] = trigger
        if new_state == "Normal":
            self._triggers.pop(key, None)
        values = {
            "ActiveNotificationTriggerID": str(trigger),
            "CustomerName": customer.name,
            "DeviceID": str(device.id),
            "DeviceName": device.name,
            "DeviceURI": f"10.0.{device.customer_id % 250}.{device.id % 250}",
            "ExternalCustomerID": customer.external_id or "",
            "AffectedService": service,
            "TaskIdent": task_ident,
            "NcentralURI": "ncentral.example.com",
            "QualitativeOldState": old_state or ("Normal" if new_state != "Normal" else "Failed"),
            "QualitativeNewState": new_state,
            "TimeOfStateChange": local_text(at or self.now),
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

    # -- wire rendering --------------------------------------------------------------------------

    def _customer_row(self, customer: FakeCustomer) -> Row:
        return {
            "customerId": str(customer.id),
            "customerName": customer.name,
            "orgUnitType": "CUSTOMER",
            "parentId": str(SO_ID),
            "externalId": customer.external_id,
            "externalId2": None,
            "city": "Ottawa",
            "country": "CA",
            "isSystem": False,
            "isServiceOrg": False,
        }

    def _site_row(self, site: FakeSite) -> Row:
        return {
            "siteId": str(site.id),
            "siteName": site.name,
            "orgUnitType": "SITE",
            "parentId": str(site.customer_id),
            "externalId": None,
            "city": "Ottawa",
            "country": "CA",
        }

    def _device_row(self, device: FakeDevice) -> Row:
        customer = self.customers[device.customer_id]
        site = self.sites.get(device.site_id) if device.site_id is not None else None
        row: Row = {
            "deviceId": device.id,
            "uri": f"10.0.{device.customer_id % 250}.{device.id % 250}",
            "remoteControlUri": "",
            "sourceUri": "",
            "longName": device.name,
            "deviceClass": device.device_class,
            "description": "",
            "isProbe": False,
            "osId": device.os_id,
            "supportedOs": device.os,
            "discoveredName": device.name,
            "deviceClassLabel": device.device_class,
            "supportedOsLabel": device.os,
            "lastLoggedInUser": "-",
            "stillLoggedIn": "",
            "licenseMode": "Professional",
            "orgUnitId": site.id if site else customer.id,
            "soId": SO_ID,
            "soName": SO_NAME,
            "customerId": customer.id,
            "customerName": customer.name,
            "siteId": site.id if site else None,
            "siteName": site.name if site else None,
            "applianceId": device.id % 1_000_000_007,
            "lastApplianceCheckinTime": iso(device.last_checkin),
            "lastApplianceCheckinTimeLocal": iso(device.last_checkin),
        }
        return row

    def _service_row(self, device: FakeDevice, service: FakeService) -> Row:
        return {
            "taskId": service.task_id,
            "serviceId": service.service_id,
            "timeToStale": 195,
            "taskNote": "Added by service template [ Workstations - Windows ]",
            "taskIdent": service.task_ident,
            "stateStatus": service.state,
            "lastUpdate": None,
            "lastDataId": None,
            "createdOn": None,
            "moduleName": service.module,
            "serviceItemId": service.service_id * 100,
            "lastScanTime": local_text(device.last_checkin or self.now, millis=True) + " +0000",
            "isManagedTask": True,
            "transitionTime": local_text(service.transition or self.now, millis=True),
            "applianceId": device.id % 1_000_000_007,
            "applianceName": device.name,
        }

    # -- HTTP ------------------------------------------------------------------------------------

    @staticmethod
    def _key(method: str, path: str) -> str:
        parts = ["{id}" if p.isdigit() else p for p in path.strip("/").split("/")]
        return f"{method} /" + "/".join(parts)

    async def _dispatch(self, request: Request) -> Response:
        path = "/api/" + request.path_params["path"].strip("/")
        path = path.rstrip("/")
        self.calls[self._key(request.method, path)] += 1
        body = await request.body()
        self.requests.append(
            {
                "method": request.method,
                "path": path,
                "params": dict(request.query_params),
                "authorization": request.headers.get("authorization"),
                "content_type": request.headers.get("content-type"),
                "headers": dict(request.headers),
                "body": body,
            }
        )
        if self.latency:
            await asyncio.sleep(self.latency)
        try:
            response = await self._handle(request, path, body)
        except NcentralApiError as exc:
            response = exc.response()
        self.statuses[response.status_code] += 1
        return response

    async def _handle(self, request: Request, path: str, body: bytes) -> Response:
        fault = first_fault(self.faults, None, path)
        if fault is not None:
            fault.claim()
            if fault.embedded:
                error = NcentralApiError(fault.status, "UnexpectedDmsResponseException: DMS error.")
                return JSONResponse(error.body(), status_code=200)
            detail = (
                "TooManyRequestsException: Too many concurrent requests."
                if fault.status == 429
                else "UnexpectedDmsResponseException: Unexpected response from DMS."
            )
            raise NcentralApiError(fault.status, detail, fault.retry_headers())
        method = request.method
        if path == "/api/auth/authenticate" and method == "POST":
            return self._authenticate(request)
        if path == "/api/auth/refresh" and method == "POST":
            return self._refresh(request, body)
        self._authorize(request)
        parts = path.strip("/").split("/")[1:]
        if method == "GET":
            if parts == ["auth", "validate"]:
                return JSONResponse({"message": "The token is valid."})
            if parts == ["customers"]:
                return self._page(request, [self._customer_row(c) for c in self.customers.values()])
            if parts == ["sites"]:
                return self._page(request, [self._site_row(s) for s in self.sites.values()])
            if parts == ["devices"]:
                return self._devices(request, list(self.devices.values()))
            if len(parts) == 3 and parts[0] == "org-units" and parts[2] == "devices":
                unit = parts[1]
                scoped = [
                    d
                    for d in self.devices.values()
                    if unit in (str(d.customer_id), str(d.site_id), str(SO_ID))
                ]
                return self._devices(request, scoped)
            if len(parts) == 2 and parts[0] == "devices":
                device = self._device(parts[1])
                return JSONResponse({"data": self._device_row(device), "_links": {}})
            if len(parts) == 3 and parts[0] == "devices" and parts[2] == "service-monitor-status":
                return self._service_status(self._device(parts[1]))
            if len(parts) == 2 and parts[0] == "scheduled-tasks":
                return self._task(parts[1])
        if method == "POST" and parts == ["scheduled-tasks", "direct"]:
            return self._direct_task(body)
        raise NcentralApiError(404, f"ResourceNotFoundException: No endpoint {method} {path}.")

    # -- auth --------------------------------------------------------------------------------------

    def _issue(self, request: Request) -> Response:
        now = self.clock()
        access_seconds = _expiry(request.headers.get("x-access-expiry-override"), self.access_lifetime)
        refresh_seconds = _expiry(request.headers.get("x-refresh-expiry-override"), self.refresh_lifetime)
        access, refresh = secrets.token_urlsafe(24), secrets.token_urlsafe(24)
        self.access_tokens[access] = now + timedelta(seconds=access_seconds)
        self.refresh_tokens[refresh] = now + timedelta(seconds=refresh_seconds)
        return JSONResponse(
            {
                "tokens": {
                    "access": {"token": access, "type": "Bearer", "expirySeconds": access_seconds},
                    "refresh": {"token": refresh, "type": "Body", "expirySeconds": refresh_seconds},
                },
                "refresh": "/api/auth/refresh",
                "validate": "/api/auth/validate",
            }
        )

    def _authenticate(self, request: Request) -> Response:
        scheme, _, token = (request.headers.get("authorization") or "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise NcentralApiError(401, "UnauthorizedException: Missing authorization header bearer.")
        if not secrets.compare_digest(token.strip(), self.api_token):
            raise NcentralApiError(401, "UnauthorizedException: Invalid N-central User-API token.")
        return self._issue(request)

    def _refresh(self, request: Request, body: bytes) -> Response:
        token = body.decode("utf-8", "replace").strip()
        expires = self.refresh_tokens.pop(token, None)
        if expires is None or expires <= self.clock():
            raise NcentralApiError(401, "UnauthorizedException: Invalid or expired refresh token.")
        return self._issue(request)

    def _authorize(self, request: Request) -> None:
        scheme, _, token = (request.headers.get("authorization") or "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise NcentralApiError(401, "UnauthorizedException: Missing authorization header bearer.")
        expires = self.access_tokens.get(token.strip())
        if expires is None or expires <= self.clock():
            raise NcentralApiError(401, "UnauthorizedException: The access token is invalid or expired.")

    # -- lists -------------------------------------------------------------------------------------

    def _paging(self, request: Request) -> tuple[int, int]:
        params = request.query_params
        try:
            number = int(params.get("pageNumber", "1"))
        except ValueError:
            raise NcentralApiError(400, "BadRequestException: Invalid pageNumber format.") from None
        try:
            size = int(params.get("pageSize", str(DEFAULT_PAGE_SIZE)))
        except ValueError:
            raise NcentralApiError(400, "BadRequestException: Invalid pageSize format.") from None
        if number < 1:
            raise NcentralApiError(400, "BadRequestException: Invalid pageNumber: must be 1 or more.")
        if not 1 <= size <= MAX_PAGE_SIZE:
            raise NcentralApiError(
                400, f"BadRequestException: Invalid pageSize: must be between 1 and {MAX_PAGE_SIZE}."
            )
        return number, size

    def _page(self, request: Request, rows: list[Row]) -> Response:
        number, size = self._paging(request)
        sort_by = request.query_params.get("sortBy")
        if sort_by:
            if rows and sort_by not in rows[0]:
                raise NcentralApiError(400, f"BadRequestException: Invalid sortBy field '{sort_by}'.")
            order = (request.query_params.get("sortOrder") or "ASC").lower()
            if order not in _ORDER_WORDS:
                raise NcentralApiError(400, f"BadRequestException: Invalid sortOrder '{order}'.")
            rows.sort(key=lambda r: sort_key(r.get(sort_by)), reverse=_ORDER_WORDS[order])
        total = len(rows)
        pages = (total + size - 1) // size
        chunk = rows[(number - 1) * size : number * size]
        base = request.url.path

        def link(n: int) -> str:
            return f"{base}?pageNumber={n}&pageSize={size}"

        links: Row = {"firstPage": link(1), "lastPage": link(max(pages, 1))}
        if number > 1:
            links["previousPage"] = link(number - 1)
        if number < pages:
            links["nextPage"] = link(number + 1)
        return JSONResponse(
            {
                "data": chunk,
                "pageNumber": number,
                "pageSize": size,
                "itemCount": len(chunk),
                "totalItems": total,
                "totalPages": pages,
                "_links": links,
            }
        )

    def _devices(self, request: Request, devices: list[FakeDevice]) -> Response:
        raw_filter = request.query_params.get("filterId")
        if raw_filter:
            if not raw_filter.isdigit():
                raise NcentralApiError(400, f"BadRequestException: Invalid filterId format: '{raw_filter}'.")
            predicate = self.filters.get(int(raw_filter))
            if predicate is None:
                raise NcentralApiError(404, f"ResourceNotFoundException: Filter {raw_filter} was not found!")
            devices = [d for d in devices if predicate(d)]
        rows: list[Row] = []
        for device in devices:
            row = self._device_row(device)
            if self.old_server:
                row.pop("lastApplianceCheckinTime", None)
                row.pop("lastApplianceCheckinTimeLocal", None)
            for name, value in self.corrupted.get(device.id, {}).items():
                if value is None:
                    row.pop(name, None)
                else:
                    row[name] = value
            rows.append(row)
        return self._page(request, rows)

    def _device(self, raw: str) -> FakeDevice:
        if not raw.isdigit():
            raise NcentralApiError(400, f"BadRequestException: Invalid deviceId format: '{raw}'.")
        device = self.devices.get(int(raw))
        if device is None:
            raise NcentralApiError(404, f"ResourceNotFoundException: Device with ID {raw} was not found!")
        return device

    def _service_status(self, device: FakeDevice) -> Response:
        mode = self.broken_status.get(device.id)
        if mode == "missing":
            raise NcentralApiError(
                404, f"ResourceNotFoundException: No monitoring data for device {device.id}."
            )
        if mode == "malformed":
            return JSONResponse({"data": {"error": "unexpected"}, "totalItems": "n/a"})
        rows = [self._service_row(device, s) for s in device.services]
        return JSONResponse({"data": rows, "totalItems": len(rows)})

    # -- tasks -------------------------------------------------------------------------------------

    def _direct_task(self, body: bytes) -> Response:
        try:
            task = json.loads(body or b"{}")
        except ValueError:
            raise NcentralApiError(400, "BadRequestException: Malformed JSON request body.") from None
        if not isinstance(task, dict):
            raise NcentralApiError(400, "BadRequestException: Malformed JSON request body.")
        for name in ("name", "itemId", "taskType", "customerId", "deviceId"):
            if task.get(name) in (None, ""):
                raise NcentralApiError(400, f"BadRequestException: Missing required field {name}.")
        if task["taskType"] not in ("Script", "AutomationPolicy", "MacScript"):
            raise NcentralApiError(400, f"BadRequestException: Invalid taskType '{task['taskType']}'.")
        for name in ("itemId", "customerId", "deviceId"):
            if not isinstance(task[name], int) or isinstance(task[name], bool):
                raise NcentralApiError(400, f"BadRequestException: Invalid {name} format.")
        credential = task.get("credential")
        if credential is not None and not (isinstance(credential, dict) and credential.get("type")):
            raise NcentralApiError(400, "BadRequestException: Invalid credential: type is required.")
        item = self.repository.get(task["itemId"])
        if item is None:
            raise NcentralApiError(
                404, f"ResourceNotFoundException: No remote execution item {task['itemId']}."
            )
        if not item.api_enabled:
            raise NcentralApiError(
                403,
                f"ScriptNotRunnableException: Remote Execution Item {item.id} is not enabled for API access.",
            )
        device = self.devices.get(task["deviceId"])
        if device is None:
            raise NcentralApiError(
                404, f"ResourceNotFoundException: Device with ID {task['deviceId']} was not found!"
            )
        if device.customer_id != task["customerId"]:
            raise NcentralApiError(
                400, f"BadRequestException: Invalid customerId {task['customerId']} for device {device.id}."
            )
        record = DirectTask(next(self._ids["task"]), task, self.now)
        self.tasks[record.id] = record
        return JSONResponse(
            {"data": {"taskId": record.id}, "_links": {"status": f"/api/scheduled-tasks/{record.id}/status"}},
            status_code=201,
        )

    def _task(self, raw: str) -> Response:
        task = self.tasks.get(int(raw)) if raw.isdigit() else None
        if task is None:
            raise NcentralApiError(404, f"ResourceNotFoundException: Task with ID {raw} was not found!")
        body = task.body
        return JSONResponse(
            {
                "data": {
                    "taskId": task.id,
                    "name": body["name"],
                    "itemId": body["itemId"],
                    "type": body["taskType"],
                    "customerId": body["customerId"],
                    "isEnabled": True,
                    "deviceIds": [str(body["deviceId"])],
                },
                "_links": {"status": f"/api/scheduled-tasks/{task.id}/status"},
            }
        )


__all__ = [
    "AGENT_SERVICE",
    "AV_PRODUCTS",
    "MAX_PAGE_SIZE",
    "THREAT_SERVICE",
    "DirectTask",
    "FakeCustomer",
    "FakeDevice",
    "FakeService",
    "FakeSite",
    "FleetSeed",
    "NcentralApiError",
    "NcentralFake",
    "iso",
    "local_text",
]
