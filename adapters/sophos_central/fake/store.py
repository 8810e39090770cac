"""The records of the fake Sophos Central and the functions that seed and change them."""

from __future__ import annotations

import secrets
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from adapters.testing.faults import ScriptedFault

Row = dict[str, Any]
REGIONS = ("eu02", "us01", "eu01", "us03", "de01")
"""Data regions tenants are seeded in, in turn (each is its own `api-{region}` host)."""
TOKEN_LIFETIME = timedelta(hours=1)
ENDPOINT_MAX_PAGE = 500
"""The fake's largest endpoint page (`pages.maxSize`); larger `pageSize` values are lowered to it."""
ALERT_MAX_PAGE = 1000
"""`pages.maxSize` of the collection's alerts example."""
USAGE_MAX_PAGE = 100
TENANT_MAX_PAGE = 100
DEFAULT_PAGE = 50
PRODUCT = ("CIXA1CSMM", "CIXA-MSP", "Central Intercept X Advanced - MSP Monthly", "User")
"""(sku, productCode, productDescription, productGroup) of the seeded billed product."""


class Fault(ScriptedFault):
    prefix_match = True


@dataclass
class FakeTenant:
    id: str
    name: str
    region: str
    geography: str
    usage: list[tuple[str, str, str, str, int]] = field(default_factory=list)
    """Billing rows: (sku, productCode, productDescription, productGroup, quantity)."""

    @property
    def api_host(self) -> str:
        return f"https://api-{self.region}.central.sophos.com"


@dataclass
class FakeEndpoint:
    id: str
    tenant_id: str
    hostname: str
    serial: str | None
    macs: tuple[str, ...]
    last_seen: datetime
    type: str = "computer"
    os_name: str = "Windows 11 Pro"
    services: str = "good"
    threats: str = "good"
    tamper: bool = True
    online: bool = True
    isolation: str = "notIsolated"
    version: str = "2024.3.2.5"
    corrupt: dict[str, Any] = field(default_factory=dict)


@dataclass
class FakeAlert:
    id: str
    tenant_id: str
    agent_id: str
    type: str
    category: str
    description: str
    severity: str
    raised_at: datetime
    allowed_actions: tuple[str, ...]


class SophosStore:
    """State of one fake Sophos Central partner account."""

    def __init__(self, *, now: datetime | None = None, id_type: str = "partner") -> None:
        self.now = now or datetime.now(UTC)
        self.id_type = id_type
        self.partner_id = str(uuid.uuid4())
        self.client_id = str(uuid.uuid4())
        self.client_secret = secrets.token_hex(24)
        self.tenants: dict[str, FakeTenant] = {}
        self.endpoints: dict[str, FakeEndpoint] = {}
        self.alerts: dict[str, FakeAlert] = {}
        self.tokens: dict[str, datetime] = {}
        self.usage_months: set[tuple[int, int]] | None = None
        """Months the billing report has data for (None: every month up to `now`'s)."""
        self.faults: list[Fault] = []
        self.calls: Counter[str] = Counter()
        self.statuses: Counter[int] = Counter()
        self.requests: list[dict[str, Any]] = []

    def credentials(self) -> dict[str, str]:
        return {"client_id": self.client_id, "client_secret": self.client_secret}

    # -- seeding ---------------------------------------------------------------------------------

    def add_tenant(self, name: str, *, region: str | None = None) -> FakeTenant:
        region = region or REGIONS[len(self.tenants) % len(REGIONS)]
        geography = region[:2].upper()
        tenant = FakeTenant(str(uuid.uuid4()), name, region, geography)
        self.tenants[tenant.id] = tenant
        return tenant

    def add_endpoint(
        self,
        tenant_id: str,
        hostname: str,
        *,
        serial: str | None = None,
        macs: tuple[str, ...] = (),
        last_seen: datetime | None = None,
        server: bool = False,
    ) -> FakeEndpoint:
        endpoint = FakeEndpoint(
            str(uuid.uuid4()),
            tenant_id,
            hostname,
            serial,
            tuple(macs),
            last_seen or self.now - timedelta(minutes=5),
            type="server" if server else "computer",
            os_name="Windows Server 2022 Standard" if server else "Windows 11 Pro",
        )
        self.endpoints[endpoint.id] = endpoint
        return endpoint

    def set_usage(self, tenant_id: str, quantity: int, product: tuple[str, str, str, str] = PRODUCT) -> None:
        tenant = self.tenants[tenant_id]
        tenant.usage = [row for row in tenant.usage if row[0] != product[0]]
        tenant.usage.append((*product, quantity))

    # -- changes ---------------------------------------------------------------------------------

    def touch(self, endpoint_id: str, at: datetime) -> None:
        endpoint = self.endpoints[endpoint_id]
        endpoint.last_seen = at
        endpoint.online = True

    def set_services(self, endpoint_id: str, status: str, at: datetime) -> None:
        self.endpoints[endpoint_id].services = status
        self.touch(endpoint_id, at)

    def set_last_seen(self, endpoint_id: str, at: datetime) -> None:
        endpoint = self.endpoints[endpoint_id]
        endpoint.last_seen = at
        endpoint.online = at >= self.now - timedelta(minutes=15)

    def raise_alert(
        self,
        endpoint_id: str,
        *,
        type: str,
        category: str,
        description: str,
        severity: str = "high",
        actions: tuple[str, ...] = ("acknowledge", "cleanVirus"),
        at: datetime | None = None,
    ) -> FakeAlert:
        endpoint = self.endpoints[endpoint_id]
        alert = FakeAlert(
            str(uuid.uuid4()),
            endpoint.tenant_id,
            endpoint_id,
            type,
            category,
            description,
            severity,
            at or self.now,
            actions,
        )
        self.alerts[alert.id] = alert
        if category in ("malware", "pua"):
            endpoint.threats = "bad"
        return alert

    def acknowledge(self, alert_id: str) -> None:
        """The alert is dealt with in Central: it leaves the open alerts."""
        alert = self.alerts.pop(alert_id)
        endpoint = self.endpoints.get(alert.agent_id)
        if endpoint and not any(a.agent_id == endpoint.id for a in self.alerts.values()):
            endpoint.threats = "good"

    def issue_token(self) -> str:
        token = secrets.token_urlsafe(32)
        self.tokens[token] = self.now + TOKEN_LIFETIME
        return token

    def expire_tokens(self) -> None:
        self.tokens.clear()
