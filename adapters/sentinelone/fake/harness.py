"""The SentinelOne harness: a seeded `SentinelOneFake` seen through `adapters.testing.harness`.

Operations map onto the console's calls: customers and licence use are both `GET /sites` (the
console keeps licence counts on the site), so a fault aimed at either hits the next `/sites` call
and `calls` counts both alike; agents are `GET /agents`, threats `GET /threats`. SentinelOne has no
webhook push: `native_threat_webhook` and `webhook_secret` are None."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from adapters.base import SecurityAdapter, WebhookRequest, normal_macs
from adapters.sentinelone import SPEC
from adapters.sentinelone.fake.app import SentinelOneFake
from adapters.sentinelone.fake.store import BUNDLE
from adapters.sentinelone.models import SentinelOneOptions
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

BASE_URL = "https://connector-msp.sentinelone.net"
PATHS = {
    SecurityOperation.LIST_CUSTOMERS: "/sites",
    SecurityOperation.LIST_AGENTS: "/agents",
    SecurityOperation.LIST_THREATS: "/threats",
    SecurityOperation.LICENCE_USE: "/sites",
}
LICENCE_PRODUCT = f"SentinelOne {BUNDLE[1]}"
"""What `licence_use` names the seeded sites' bundle."""


@dataclass
class SentinelOneWorld(FakeWorld[SentinelOneFake]):
    customers: dict[str, str] = field(default_factory=dict)
    seeded: dict[str, SeededAgent] = field(default_factory=dict)
    reports_serials: bool = True
    reports_macs: bool = True
    licence_product: str = LICENCE_PRODUCT
    webhook_secret: str | None = None

    @property
    def agents(self) -> Mapping[str, SeededAgent]:
        return {
            agent_id: agent
            for agent_id, agent in self.seeded.items()
            if agent_id in self.fake.agents and not self.fake.agents[agent_id].decommissioned
        }

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
        return {"api_token": "not-the-console-token"}

    def reset_calls(self) -> None:
        self.fake.reset_calls()

    def clear_faults(self) -> None:
        self.fake.clear_faults()

    def agent_page_sizes(self) -> list[int]:
        size = self.page_size or SentinelOneOptions().page_size
        total = len(self.agents)
        return [min(size, total - start) for start in range(0, total, size)]

    def cursor(self) -> datetime:
        return self.fake.now + timedelta(minutes=1)

    def touch(self, agent_ids: Sequence[str]) -> None:
        for agent_id in agent_ids:
            self.fake.touch(agent_id, at=self.changed_at)

    def add_agent(
        self,
        customer_id: str,
        hostname: str,
        *,
        serial_number: str | None = None,
        mac_addresses: Sequence[str] = (),
    ) -> str:
        agent = self.fake.add_agent(
            customer_id, hostname, serial=serial_number, macs=list(mac_addresses), updated_at=self.changed_at
        )
        agent.last_active = self.changed_at
        self.seeded[agent.id] = SeededAgent(
            agent.id, customer_id, hostname, serial_number, normal_macs(mac_addresses)
        )
        return agent.id

    def remove_agent(self, agent_id: str) -> None:
        self.fake.decommission(agent_id, at=self.changed_at)

    def set_protection(self, agent_id: str, enabled: bool) -> None:
        self.fake.set_operational_state(agent_id, "na" if enabled else "fully_disabled", at=self.changed_at)

    def set_last_seen(self, agent_id: str, at: datetime) -> None:
        self.fake.set_last_active(agent_id, at, at=self.changed_at)

    def raise_threat(self, agent_id: str, name: str = "Trojan.Generic") -> str:
        return self.fake.add_threat(agent_id, name, at=self.changed_at).id

    def resolve_threat(self, threat_id: str) -> None:
        self.fake.resolve_threat(threat_id, at=self.changed_at)

    def set_licences(self, customer_id: str, used: int, purchased: int | None) -> None:
        site = self.fake.sites[customer_id]
        site.active_licenses = used
        site.unlimited_licenses = purchased is None
        site.total_licenses = purchased if purchased is not None else 0

    def native_threat_webhook(self, threat_id: str) -> WebhookRequest | None:
        return None

    def calls(self, operation: SecurityOperation) -> int:
        return self.fake.call_count(f"GET {PATHS[operation]}")

    def fail_next(self, operation: SecurityOperation, status: int = 500, *, times: int | None = 1) -> None:
        self.fake.fail_next(status, times, path=PATHS[operation])

    def rate_limit(
        self, operation: SecurityOperation, *, times: int | None = 1, retry_after: float = 1.0
    ) -> None:
        self.fake.rate_limit(times, retry_after, path=PATHS[operation])


class SentinelOneHarness:
    """One SentinelOne console; each customer is a site (its externalId empty) with a Complete
    licence for its agents, which are active, protecting, up to date and connected."""

    spec = SPEC
    in_demo = True

    def start(
        self,
        *,
        customers: Sequence[str] = CLIENT_NAMES,
        agents_per_customer: int = 20,
        page_size: int | None = None,
        base_url: str | None = None,
    ) -> SentinelOneWorld:
        fake = SentinelOneFake(now=datetime.now(UTC))
        names: dict[str, str] = {}
        seeded: dict[str, SeededAgent] = {}
        for name in customers:
            site = fake.add_site(name)
            names[site.id] = name
            for n in range(agents_per_customer):
                hostname = device_name(name, n)
                serial, mac = device_serial(hostname), device_mac(hostname)
                agent = fake.add_agent(site.id, hostname, serial=serial, macs=[mac])
                seeded[agent.id] = SeededAgent(agent.id, site.id, hostname, serial, (mac,))
            site.active_licenses = site.total_licenses = agents_per_customer
        url = base_url or BASE_URL
        connection = ConnectionBody(
            kind=SPEC.kind,
            name=SPEC.title,
            base_url=url,
            credentials={"api_token": fake.api_token},
            options={"page_size": page_size} if page_size else {},
        )
        return SentinelOneWorld(
            spec=SPEC,
            fake=fake,
            connection=connection,
            hosts=(host_of(url),),
            page_size=page_size,
            customers=names,
            seeded=seeded,
        )


HARNESS = SentinelOneHarness()
"""The harness instance (`AdapterSpec.harness` names the class; `load_harness` builds one)."""
