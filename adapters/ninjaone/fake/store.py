"""The fake NinjaOne instance's state: API clients, organizations, devices with their antivirus
rows, threats and computer systems, scripts, the webhook registration, the seeding helpers and
mutators tests drive it with, and the fault list and call records."""

from __future__ import annotations

import itertools
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from starlette.applications import Starlette

from adapters.testing.faults import ScriptedFault

Row = dict[str, Any]

SCOPES = frozenset({"monitoring", "management", "control"})
TOKEN_LIFETIME = 3600
CURSOR_LIFETIME = 600.0
DEFAULT_PAGE_SIZE = 100
PRODUCTS = (
    "Windows Defender",
    "Bitdefender Endpoint Security Tools",
    "SentinelOne",
    "Webroot SecureAnywhere",
)


def epoch(when: datetime | None) -> float | None:
    return None if when is None else when.timestamp()


@dataclass
class FakeOrganization:
    id: int
    name: str


@dataclass
class FakeProduct:
    name: str
    state: str = "ON"
    definitions: str = "UP_TO_DATE"
    version: str = "4.18.24090.11"
    at: datetime = field(default_factory=lambda: datetime.now(UTC))


@dataclass
class FakeThreat:
    id: int
    device_id: int
    name: str
    status: str
    at: datetime


@dataclass
class FakeDevice:
    id: int
    organization_id: int
    location_id: int
    name: str
    uid: str
    node_class: str = "WINDOWS_WORKSTATION"
    offline: bool = False
    last_contact: datetime | None = None
    last_update: datetime | None = None
    created: datetime | None = None
    macs: list[str] = field(default_factory=list)
    serial: str = ""
    products: list[FakeProduct] = field(default_factory=list)
    system_at: datetime | None = None


@dataclass
class ScriptRun:
    device_id: int
    script_id: int
    parameters: str | None
    run_as: str | None
    at: datetime


class Fault(ScriptedFault):
    """A scripted failure on every path starting with `path` (None = any)."""

    prefix_match = True
    ignore_case = False


class NinjaOneStore:
    """One fake NinjaOne instance's state. The HTTP layer (`app.py`) supplies `_build_app`."""

    def __init__(
        self,
        *,
        client_id: str = "fake-ninjaone-client",
        client_secret: str = "fake-ninjaone-secret-1",  # noqa: S107 - the fake's own API client
        now: datetime | None = None,
        token_lifetime: int = TOKEN_LIFETIME,
    ) -> None:
        self.client_id = client_id
        self.client_secret = client_secret
        self.granted_scopes: frozenset[str] = SCOPES
        self.system_administrator = True
        """Whether the API client's account may configure webhooks (403 otherwise)."""
        self.now = now or datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
        self.token_lifetime = token_lifetime
        self._clock_offset = timedelta(0)
        self.tokens: dict[str, tuple[datetime, frozenset[str]]] = {}
        self.cursors: dict[str, tuple[str, int, datetime]] = {}
        self.latency = 0.0
        self.faults: list[Fault] = []
        self.calls: Counter[str] = Counter()
        self.statuses: Counter[int] = Counter()
        self.requests: list[dict[str, Any]] = []
        self.organizations: dict[int, FakeOrganization] = {}
        self.devices: dict[int, FakeDevice] = {}
        self.threats: dict[int, FakeThreat] = {}
        self.scripts: dict[int, str] = {
            71: "Connector - Antivirus Full Scan",
            72: "Connector - Update Antivirus Definitions",
            73: "Connector - Deploy Security Agent",
        }
        self.script_runs: list[ScriptRun] = []
        self.webhook: Row | None = None
        self.corrupted: dict[int, dict[str, Any]] = {}
        self._ids = {
            "organization": itertools.count(1),
            "location": itertools.count(1),
            "device": itertools.count(1),
            "threat": itertools.count(5001),
            "activity": itertools.count(880001),
        }
        self.app = self._build_app()

    def _build_app(self) -> Starlette:
        raise NotImplementedError

    # -- wiring ----------------------------------------------------------------------------------

    def credentials(self) -> dict[str, str]:
        return {"client_id": self.client_id, "client_secret": self.client_secret}

    def clock(self) -> datetime:
        """The token and cursor clock: real time plus whatever `advance_clock` added."""
        return datetime.now(UTC) + self._clock_offset

    def advance_clock(self, seconds: float) -> None:
        self._clock_offset += timedelta(seconds=seconds)

    def expire_tokens(self) -> None:
        self.tokens.clear()

    # -- seeding ---------------------------------------------------------------------------------

    def add_organization(self, name: str) -> FakeOrganization:
        org = FakeOrganization(next(self._ids["organization"]), name)
        self.organizations[org.id] = org
        return org

    def add_device(
        self,
        organization_id: int,
        name: str,
        *,
        products: list[str] | None = None,
        offline: bool = False,
        last_contact: datetime | None = None,
        node_class: str = "WINDOWS_WORKSTATION",
    ) -> FakeDevice:
        device_id = next(self._ids["device"])
        seen = last_contact or self.now - timedelta(minutes=2)
        device = FakeDevice(
            id=device_id,
            organization_id=organization_id,
            location_id=organization_id * 10 + 1,
            name=name,
            uid=str(uuid.UUID(int=device_id)),
            node_class=node_class,
            offline=offline,
            last_contact=seen,
            last_update=seen,
            created=self.now - timedelta(days=400),
            macs=[f"00:15:5D:{device_id >> 16 & 255:02X}:{device_id >> 8 & 255:02X}:{device_id & 255:02X}"],
            serial=f"NJ{device_id:08d}",
            products=[
                FakeProduct(p, at=self.now - timedelta(hours=6))
                for p in (products if products is not None else [PRODUCTS[0]])
            ],
            system_at=self.now - timedelta(days=1),
        )
        self.devices[device.id] = device
        return device

    # -- mutators --------------------------------------------------------------------------------

    def touch(self, device_id: int, at: datetime | None = None) -> None:
        """The agent checks in: last contact moves, the device is online."""
        device = self.devices[device_id]
        device.last_contact = at or self.now
        device.offline = False

    def set_product(
        self,
        device_id: int,
        name: str,
        *,
        state: str | None = None,
        definitions: str | None = None,
        at: datetime | None = None,
    ) -> None:
        """Change what the agent reports for one product (added when the device lacks it)."""
        device = self.devices[device_id]
        product = next((p for p in device.products if p.name == name), None)
        if product is None:
            product = FakeProduct(name)
            device.products.append(product)
        if state is not None:
            product.state = state
        if definitions is not None:
            product.definitions = definitions
        product.at = at or self.now

    def remove_products(self, device_id: int) -> None:
        self.devices[device_id].products.clear()

    def add_threat(
        self, device_id: int, name: str = "Trojan:Win32/Wacatac.B!ml", at: datetime | None = None
    ) -> FakeThreat:
        threat = FakeThreat(next(self._ids["threat"]), device_id, name, "ACTIVE", at or self.now)
        self.threats[threat.id] = threat
        return threat

    def resolve_threats(self, device_id: int, at: datetime | None = None) -> None:
        for threat in self.threats.values():
            if threat.device_id == device_id and threat.status == "ACTIVE":
                threat.status, threat.at = "QUARANTINED", at or self.now

    def corrupt_device(self, device_id: int, **fields: Any) -> None:
        """Serve the device's list record malformed: a field set to `None` is dropped, others replaced."""
        self.corrupted[device_id] = fields

    def activity(
        self,
        device_id: int,
        *,
        activity_type: str,
        status_code: str,
        series_uid: str | None = None,
        source_name: str = "",
        message: str = "",
        at: datetime | None = None,
    ) -> Row:
        """An `Activity` as NinjaOne posts it to the webhook, the device expanded."""
        device = self.devices[device_id]
        return {
            "id": next(self._ids["activity"]),
            "activityTime": epoch(at or self.now),
            "deviceId": device.id,
            "severity": "MAJOR",
            "priority": "HIGH",
            "seriesUid": series_uid or str(uuid.uuid4()),
            "activityType": activity_type,
            "statusCode": status_code,
            "status": status_code.replace("_", " ").title(),
            "activityResult": "SUCCESS",
            "sourceConfigUid": str(uuid.UUID(int=device.id + 7)),
            "sourceName": source_name,
            "subject": source_name,
            "message": message,
            "type": activity_type,
            "data": {"message": {"code": status_code, "params": {}}},
            "device": {
                "id": device.id,
                "organizationId": device.organization_id,
                "locationId": device.location_id,
                "nodeClass": device.node_class,
                "systemName": device.name,
                "displayName": device.name,
                "offline": device.offline,
            },
        }
