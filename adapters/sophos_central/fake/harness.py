"""The Sophos Central harness: a seeded `SophosCentralFake` seen through `adapters.testing.harness`."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from adapters.base import SecurityAdapter, WebhookRequest
from adapters.sophos_central import SPEC
from adapters.sophos_central.fake.app import GLOBAL_HOST, ID_HOST, SophosCentralFake
from adapters.sophos_central.fake.store import ENDPOINT_MAX_PAGE, PRODUCT
from adapters.sophos_central.models import GLOBAL_API, SophosOptions
from adapters.testing.harness import (
    CLIENT_NAMES,
    ConnectionBody,
    FakeWorld,
    SecurityOperation,
    SeededAgent,
    device_mac,
    device_name,
    device_serial,
    host_of,
    security_adapter,
)

PATHS = {
    SecurityOperation.LIST_CUSTOMERS: "/partner/v1/tenants",
    SecurityOperation.LIST_AGENTS: "/endpoint/v1/endpoints",
    SecurityOperation.LIST_THREATS: "/common/v1/alerts",
    SecurityOperation.LICENCE_USE: "/partner/v1/billing/usage/",
}
"""The vendor call each operation's faults hit (a path prefix) and its calls are counted by."""
THREAT_TYPE = "Event::Endpoint::CoreDetection"


@dataclass
class SophosCentralWorld(FakeWorld[SophosCentralFake]):
    customers: dict[str, str] = field(default_factory=dict)
    agents: dict[str, SeededAgent] = field(default_factory=dict)
    reports_serials: bool = True
    reports_macs: bool = True
    licence_product: str = PRODUCT[2]
    webhook_secret: str | None = None

    @property
    def changed_at(self) -> datetime:
        """After `cursor()`, and not before the real clock (a core cursor taken by a long run)."""
        return max(self.fake.now + timedelta(minutes=2), datetime.now(UTC) + timedelta(seconds=1))

    def adapter(
        self,
        *,
        sleep: Callable[[float], Awaitable[None]] | None = None,
        credentials: Mapping[str, Any] | None = None,
        options: Mapping[str, Any] | None = None,
    ) -> SecurityAdapter:
        return security_adapter(self.build(sleep=sleep, credentials=credentials, options=options))

    def wrong_credentials(self) -> dict[str, Any]:
        return {**self.connection.credentials, "client_secret": "not-the-right-one"}

    def agent_page_sizes(self) -> list[int]:
        """Each tenant is listed on its own host, in pages of the asked size (at most the fake's
        `maxSize`)."""
        size = min(self.page_size or SophosOptions().page_size, ENDPOINT_MAX_PAGE)
        sizes: list[int] = []
        for customer in self.fake.tenants:
            total = sum(1 for e in self.fake.endpoints.values() if e.tenant_id == customer)
            sizes.extend(min(size, total - start) for start in range(0, total, size))
        return sizes

    def cursor(self) -> datetime:
        return self.fake.now + timedelta(minutes=1)

    def touch(self, agent_ids: Sequence[str]) -> None:
        for agent_id in agent_ids:
            self.fake.touch(agent_id, self.changed_at)

    def add_agent(
        self,
        customer_id: str,
        hostname: str,
        *,
        serial_number: str | None = None,
        mac_addresses: Sequence[str] = (),
    ) -> str:
        endpoint = self.fake.add_endpoint(
            customer_id, hostname, serial=serial_number, macs=tuple(mac_addresses), last_seen=self.changed_at
        )
        self.agents[endpoint.id] = SeededAgent(
            endpoint.id, customer_id, hostname, serial_number, tuple(mac_addresses)
        )
        return endpoint.id

    def remove_agent(self, agent_id: str) -> None:
        self.fake.endpoints.pop(agent_id, None)
        self.agents.pop(agent_id, None)

    def set_protection(self, agent_id: str, enabled: bool) -> None:
        self.fake.set_services(agent_id, "good" if enabled else "bad", self.changed_at)

    def set_last_seen(self, agent_id: str, at: datetime) -> None:
        self.fake.set_last_seen(agent_id, at)

    def raise_threat(self, agent_id: str, name: str = "Trojan.Generic") -> str:
        hostname = self.fake.endpoints[agent_id].hostname
        alert = self.fake.raise_alert(
            agent_id,
            type=THREAT_TYPE,
            category="malware",
            description=f"Malware detected: '{name}' at 'C:\\Users\\Public\\{name}.exe' on {hostname}",
            at=datetime.now(UTC),
        )
        self.fake.touch(agent_id, self.changed_at)
        return alert.id

    def resolve_threat(self, threat_id: str) -> None:
        self.fake.acknowledge(threat_id)

    def set_licences(self, customer_id: str, used: int, purchased: int | None) -> None:
        """The billing report counts seats used; MSP monthly billing has no purchased count, so
        `purchased` is not reported."""
        self.fake.set_usage(customer_id, used)

    def native_threat_webhook(self, threat_id: str) -> WebhookRequest | None:
        return None

    def calls(self, operation: SecurityOperation) -> int:
        return self.fake.call_count(f"GET {PATHS[operation]}", prefix=True)

    def reset_calls(self) -> None:
        self.fake.reset_calls()

    def fail_next(self, operation: SecurityOperation, status: int = 500, *, times: int | None = 1) -> None:
        self.fake.fail_next(status, times, path=PATHS[operation])

    def rate_limit(
        self, operation: SecurityOperation, *, times: int | None = 1, retry_after: float = 1.0
    ) -> None:
        self.fake.rate_limit(times, retry_after, path=PATHS[operation])

    def clear_faults(self) -> None:
        self.fake.clear_faults()


class SophosCentralHarness:
    """One Sophos Central partner; each customer is a tenant in its own data region whose
    endpoints run Intercept X (services good, no threats, online), billed monthly by use."""

    spec = SPEC
    in_demo = True

    def start(
        self,
        *,
        customers: Sequence[str] = CLIENT_NAMES,
        agents_per_customer: int = 20,
        page_size: int | None = None,
        base_url: str | None = None,
    ) -> SophosCentralWorld:
        fake = SophosCentralFake(now=datetime.now(UTC))
        names: dict[str, str] = {}
        agents: dict[str, SeededAgent] = {}
        for name in customers:
            tenant = fake.add_tenant(name)
            names[tenant.id] = name
            for n in range(agents_per_customer):
                hostname = device_name(name, n)
                serial, mac = device_serial(hostname), device_mac(hostname)
                endpoint = fake.add_endpoint(tenant.id, hostname, serial=serial, macs=(mac,))
                agents[endpoint.id] = SeededAgent(endpoint.id, tenant.id, hostname, serial, (mac,))
            fake.set_usage(tenant.id, agents_per_customer)
        url = base_url or GLOBAL_API
        connection = ConnectionBody(
            kind=SPEC.kind,
            name=SPEC.title,
            base_url=url,
            credentials=fake.credentials(),
            options={"page_size": page_size} if page_size else {},
        )
        regional = sorted({host_of(t.api_host) for t in fake.tenants.values()})
        return SophosCentralWorld(
            spec=SPEC,
            fake=fake,
            connection=connection,
            hosts=(ID_HOST, host_of(url) if base_url else GLOBAL_HOST, *regional),
            page_size=page_size,
            customers=names,
            agents=agents,
        )
