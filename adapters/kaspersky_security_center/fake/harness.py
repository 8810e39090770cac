"""The Kaspersky Security Center harness: a seeded `KscFake` seen through `adapters.testing.harness`."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from adapters.base import SecurityAdapter, WebhookRequest
from adapters.kaspersky_security_center import SPEC
from adapters.kaspersky_security_center.fake.app import KscFake
from adapters.kaspersky_security_center.fake.seed import seed_world
from adapters.kaspersky_security_center.fake.store import (
    PRODUCT,
    RTP_RUNNING,
    RTP_STOPPED,
    STATUS_ALIVE,
    STATUS_VISIBLE,
)
from adapters.kaspersky_security_center.models import KscOptions
from adapters.testing.harness import (
    CLIENT_NAMES,
    ConnectionBody,
    FakeWorld,
    SecurityOperation,
    SeededAgent,
    host_of,
    security_adapter,
)

BASE_URL = "https://ksc.msp.example:13299"


@dataclass
class KscWorld(FakeWorld[KscFake]):
    customers: dict[str, str] = field(default_factory=dict)
    reports_serials: bool = False
    """Serials live in KSC's hardware inventory, whose attributes the adapter does not read."""
    reports_macs: bool = False
    licence_product: str = PRODUCT
    webhook_secret: str | None = None
    """KSC has no push."""

    @property
    def agents(self) -> Mapping[str, SeededAgent]:
        return {
            host.hostname: SeededAgent(host.hostname, uid, host.display_name)
            for uid, server in self.fake.vservers.items()
            for host in server.hosts.values()
        }

    @property
    def changed_at(self) -> datetime:
        """After `cursor()`, and not before the real clock."""
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
        return {**self.connection.credentials, "password": "not-the-right-one"}

    def agent_page_sizes(self) -> list[int]:
        size = self.page_size or KscOptions().page_size
        sizes: list[int] = []
        for server in self.fake.vservers.values():
            total = len(server.hosts)
            sizes += [min(size, total - start) for start in range(0, total, size)]
        return sizes

    def cursor(self) -> datetime:
        return self.fake.now + timedelta(minutes=1)

    def touch(self, agent_ids: Sequence[str]) -> None:
        for agent_id in agent_ids:
            host = self.fake.host(agent_id)
            host.last_connected = host.last_visible = self.changed_at

    def add_agent(
        self,
        customer_id: str,
        hostname: str,
        *,
        serial_number: str | None = None,
        mac_addresses: Sequence[str] = (),
    ) -> str:
        return self.fake.add_host(customer_id, hostname, at=self.changed_at).hostname

    def remove_agent(self, agent_id: str) -> None:
        self.fake.remove_host(agent_id)

    def set_protection(self, agent_id: str, enabled: bool) -> None:
        host = self.fake.host(agent_id)
        host.rtp_state = RTP_RUNNING if enabled else RTP_STOPPED
        host.status_id = 0 if enabled and not host.uncured_count else 1
        host.last_connected = self.changed_at

    def set_last_seen(self, agent_id: str, at: datetime) -> None:
        host = self.fake.host(agent_id)
        host.status &= ~(STATUS_ALIVE | STATUS_VISIBLE)
        host.last_connected = host.last_visible = at

    def raise_threat(self, agent_id: str, name: str = "Trojan.Generic") -> str:
        """An object the product could not cure on the host (KSC counts, it does not name: the
        threat is the host's, see the adapter's docstring)."""
        host = self.fake.host(agent_id)
        host.virus_count += 1
        host.uncured_count += 1
        host.status_id = 1
        host.last_connected = self.changed_at
        return f"{host.vserver}/{host.hostname}"

    def resolve_threat(self, threat_id: str) -> None:
        _vserver, _, hostname = threat_id.partition("/")
        host = self.fake.host(hostname)
        host.uncured_count = 0
        host.status_id = 0 if host.rtp_state == RTP_RUNNING else 1
        host.last_connected = self.changed_at

    def set_licences(self, customer_id: str, used: int, purchased: int | None) -> None:
        key = self.fake.vservers[customer_id].keys[0]
        key.used, key.lic_count = used, purchased

    def native_threat_webhook(self, threat_id: str) -> WebhookRequest | None:
        return None

    def calls(self, operation: SecurityOperation) -> int:
        return self.fake.call_count(operation.value)

    def reset_calls(self) -> None:
        self.fake.reset_calls()

    def fail_next(self, operation: SecurityOperation, status: int = 500, *, times: int | None = 1) -> None:
        self.fake.fail_next(operation.value, status, times)

    def rate_limit(
        self, operation: SecurityOperation, *, times: int | None = 1, retry_after: float = 1.0
    ) -> None:
        self.fake.rate_limit(operation.value, times, retry_after)

    def clear_faults(self) -> None:
        self.fake.clear_faults()


class KscHarness:
    """One Administration Server; each customer is a virtual server whose hosts run Kaspersky
    Endpoint Security (protection running, bases fresh, Network Agent alive) under one key."""

    spec = SPEC
    in_demo = True

    def start(
        self,
        *,
        customers: Sequence[str] = CLIENT_NAMES,
        agents_per_customer: int = 20,
        page_size: int | None = None,
        base_url: str | None = None,
    ) -> KscWorld:
        fake = KscFake(now=datetime.now(UTC))
        seed_world(fake, customers, agents_per_customer)
        url = base_url or BASE_URL
        connection = ConnectionBody(
            kind=SPEC.kind,
            name=SPEC.title,
            base_url=url,
            credentials=fake.credentials(),
            options={"product": PRODUCT, **({"page_size": page_size} if page_size else {})},
        )
        return KscWorld(
            spec=SPEC,
            fake=fake,
            connection=connection,
            hosts=(host_of(url),),
            page_size=page_size,
            customers={uid: server.name for uid, server in fake.vservers.items()},
        )
