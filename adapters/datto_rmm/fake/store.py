"""The fake Datto RMM account's state: sites, devices, open and resolved alerts, components, API
users and their tokens, the request budget's rolling window, faults and call records, and the
mutators tests drive it with."""

from __future__ import annotations

import itertools
import time
import uuid
from collections import Counter, deque
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from starlette.applications import Starlette

from adapters.testing.faults import AsgiFake, ScriptedFault

MAX_PAGE_SIZE = 250
DEFAULT_PAGE_SIZE = 250
TOKEN_LIFETIME_SECONDS = 100 * 3600
READS_PER_MINUTE = 600
WRITES_PER_MINUTE = 100
PRODUCTS = ("Datto AV", "Microsoft Windows Defender", "Sophos Intercept X", "Webroot SecureAnywhere")
AV_STATUSES = ("RunningAndUpToDate", "RunningAndNotUpToDate", "NotRunning", "NotDetected")


def millis(when: datetime | None) -> int | None:
    """Datto's wire form of a time: Unix milliseconds."""
    return None if when is None else int(when.timestamp() * 1000)


def new_uid(namespace: str, number: int) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"datto-fake:{namespace}:{number}"))


@dataclass
class FakeSite:
    id: int
    uid: str
    name: str
    autotask_company_id: str | None = None
    autotask_company_name: str | None = None


@dataclass
class FakeDevice:
    id: int
    uid: str
    site_uid: str
    hostname: str
    last_seen: datetime
    operating_system: str = "Microsoft Windows 11 Pro 10.0.22631"
    category: str = "Desktop"
    online: bool = True
    deleted: bool = False
    av_product: str | None = PRODUCTS[0]
    av_status: str | None = "RunningAndUpToDate"
    corrupt: dict[str, Any] = field(default_factory=dict)
    """Fields served as given (None = left out), to serve a record the adapter cannot read."""


@dataclass
class FakeAlert:
    uid: str
    device_uid: str
    context: dict[str, Any]
    diagnostics: str
    timestamp: datetime
    priority: str = "High"
    resolved: bool = False
    muted: bool = False


@dataclass(frozen=True)
class QuickJob:
    uid: str
    device_uid: str
    component_uid: str
    name: str
    variables: tuple[tuple[str, str], ...]


class DattoStore(AsgiFake):
    """Construction and state; `_build_app` comes from the HTTP class (`app.py`)."""

    def __init__(self, *, now: datetime | None = None, platform: str = "concord") -> None:
        self.now = now or datetime.now(UTC)
        self.platform = platform
        self.sites: dict[str, FakeSite] = {}
        self.devices: dict[str, FakeDevice] = {}
        self.alerts: dict[str, FakeAlert] = {}
        self.components: dict[str, str] = {}
        self.users: dict[str, str] = {}
        self.tokens: dict[str, float] = {}
        self.token_lifetime = float(TOKEN_LIFETIME_SECONDS)
        self.reads_per_minute = READS_PER_MINUTE
        self.writes_per_minute = WRITES_PER_MINUTE
        self.window: deque[float] = deque()
        self.write_window: deque[float] = deque()
        self.clock_offset = 0.0
        self.faults: list[ScriptedFault] = []
        self.latency = 0.0
        self.calls: Counter[str] = Counter()
        self.statuses: Counter[int] = Counter()
        self.requests: list[dict[str, Any]] = []
        self.quick_jobs: list[QuickJob] = []
        self.token_requests = 0
        self._ids = itertools.count(1)
        self.app: Starlette = self._build_app()

    def _build_app(self) -> Starlette:  # pragma: no cover - supplied by the HTTP class
        raise NotImplementedError

    # -- clocks ----------------------------------------------------------------------------------

    def clock(self) -> float:
        """The fake's monotonic clock (tokens, rate window): real time plus `advance_clock`."""
        return time.monotonic() + self.clock_offset

    def advance_clock(self, seconds: float) -> None:
        self.clock_offset += seconds

    def expire_tokens(self) -> None:
        self.tokens.clear()

    # -- seeding helpers -------------------------------------------------------------------------

    def add_user(self, api_key: str, api_secret: str) -> None:
        self.users[api_key] = api_secret

    def credentials(self) -> dict[str, str]:
        key, secret = next(iter(self.users.items()))
        return {"api_key": key, "api_secret": secret}

    def add_component(self, name: str) -> str:
        uid = new_uid("component", len(self.components) + 1)
        self.components[uid] = name
        return uid

    def add_site(self, name: str, *, autotask_company_id: str | None = None) -> FakeSite:
        number = next(self._ids)
        site = FakeSite(
            number, new_uid("site", number), name, autotask_company_id, name if autotask_company_id else None
        )
        self.sites[site.uid] = site
        return site

    def add_device(self, site_uid: str, hostname: str, **values: Any) -> FakeDevice:
        number = next(self._ids)
        device = FakeDevice(
            number, new_uid("device", number), site_uid, hostname, values.pop("last_seen", self.now), **values
        )
        self.devices[device.uid] = device
        return device

    # -- mutators --------------------------------------------------------------------------------

    def touch(self, device_uid: str, at: datetime) -> None:
        self.devices[device_uid].last_seen = at

    def set_av(self, device_uid: str, *, product: str | None, status: str | None) -> None:
        device = self.devices[device_uid]
        device.av_product, device.av_status = product, status

    def corrupt_device(self, device_uid: str, **fields: Any) -> None:
        self.devices[device_uid].corrupt.update(fields)

    def add_alert(
        self, device_uid: str, context: dict[str, Any], diagnostics: str, **values: Any
    ) -> FakeAlert:
        alert = FakeAlert(
            new_uid("alert", next(self._ids)),
            device_uid,
            context,
            diagnostics,
            values.pop("timestamp", self.now),
            **values,
        )
        self.alerts[alert.uid] = alert
        return alert

    def resolve_alerts(self, device_uid: str) -> None:
        for alert in self.alerts.values():
            if alert.device_uid == device_uid:
                alert.resolved = True

    # -- faults and records ----------------------------------------------------------------------

    def fail_next(self, status: int = 500, times: int | None = 1, path: str | None = None) -> None:
        self.faults.append(ScriptedFault(status, times, path=path))

    def rate_limit(
        self, times: int | None = 1, retry_after: float | None = 2.0, path: str | None = None
    ) -> None:
        self.faults.append(ScriptedFault(429, times, path=path, retry_after=retry_after))

    def clear_faults(self) -> None:
        self.faults.clear()

    def call_count(self, key: str | None = None) -> int:
        return sum(self.calls.values()) if key is None else self.calls[key]

    def reset_calls(self) -> None:
        self.calls.clear()
        self.statuses.clear()
        self.requests.clear()
