"""The Huntress harness: a seeded `HuntressFake` seen through `adapters.testing.harness`."""

from __future__ import annotations

import base64
import json
import secrets
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from adapters.base import SecurityAdapter, WebhookRequest
from adapters.huntress import SPEC
from adapters.huntress.adapter import PRODUCT
from adapters.huntress.fake.app import HuntressFake
from adapters.huntress.models import API_BASE, HuntressOptions
from adapters.huntress.webhooks import sign
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

CALL_KEYS = {
    SecurityOperation.LIST_CUSTOMERS: "GET /v1/organizations",
    SecurityOperation.LIST_AGENTS: "GET /v1/agents",
    SecurityOperation.LIST_THREATS: "GET /v1/incident_reports",
    SecurityOperation.LICENCE_USE: "GET /v1/organizations/{id}",
}
FAULT_PATHS = {
    SecurityOperation.LIST_CUSTOMERS: "/v1/organizations",
    SecurityOperation.LIST_AGENTS: "/v1/agents",
    SecurityOperation.LIST_THREATS: "/v1/incident_reports",
    SecurityOperation.LICENCE_USE: "/v1/organizations/*",
}
WEBHOOK_SECRET = "whsec_" + base64.b64encode(b"huntress-world-svix-signing-key!").decode()
"""A Svix endpoint signing secret (`whsec_` + base64 of the key) as the portal shows it."""


@dataclass
class HuntressWorld(FakeWorld[HuntressFake]):
    reports_serials: bool = True
    reports_macs: bool = True
    licence_product: str = PRODUCT
    webhook_secret: str | None = WEBHOOK_SECRET

    @property
    def changed_at(self) -> datetime:
        """After `cursor()`, and not before the real clock (a core cursor taken by a long run)."""
        return max(self.fake.now + timedelta(minutes=2), datetime.now(UTC) + timedelta(seconds=1))

    @property
    def customers(self) -> Mapping[str, str]:
        return {str(org.id): org.name for org in self.fake.organizations.values()}

    @property
    def agents(self) -> Mapping[str, SeededAgent]:
        return {
            str(a.id): SeededAgent(
                id=str(a.id),
                customer_id=str(a.organization_id),
                hostname=a.hostname,
                serial_number=a.serial_number,
                mac_addresses=tuple(m.upper() for m in a.mac_addresses),
            )
            for a in self.fake.agents.values()
        }

    def adapter(
        self,
        *,
        sleep: Callable[[float], Awaitable[None]] | None = None,
        credentials: Mapping[str, Any] | None = None,
        options: Mapping[str, Any] | None = None,
    ) -> SecurityAdapter:
        return security_adapter(self.build(sleep=sleep, credentials=credentials, options=options))

    def wrong_credentials(self) -> dict[str, Any]:
        return {**self.connection.credentials, "api_secret": "not-the-right-secret"}

    def agent_page_sizes(self) -> list[int]:
        size = self.page_size or HuntressOptions().page_size
        total = len(self.fake.agents)
        return [min(size, total - start) for start in range(0, total, size)]

    def cursor(self) -> datetime:
        return self.fake.now + timedelta(minutes=1)

    def touch(self, agent_ids: Sequence[str]) -> None:
        for agent_id in agent_ids:
            self.fake.touch(int(agent_id), at=self.changed_at)

    def add_agent(
        self,
        customer_id: str,
        hostname: str,
        *,
        serial_number: str | None = None,
        mac_addresses: Sequence[str] = (),
    ) -> str:
        agent = self.fake.add_agent(
            int(customer_id),
            hostname,
            serial_number=serial_number,
            mac_addresses=list(mac_addresses),
            at=self.changed_at,
        )
        return str(agent.id)

    def remove_agent(self, agent_id: str) -> None:
        self.fake.remove_agent(int(agent_id))

    def set_protection(self, agent_id: str, enabled: bool) -> None:
        status = "Healthy" if enabled else "Not Protected"
        agent = self.fake.agents[int(agent_id)]
        self.fake.set_defender(int(agent_id), status, agent.defender_substatus, at=self.changed_at)

    def set_last_seen(self, agent_id: str, at: datetime) -> None:
        self.fake.set_last_callback(int(agent_id), at, at=self.changed_at)

    def raise_threat(self, agent_id: str, name: str = "Trojan.Generic") -> str:
        report = self.fake.add_report(int(agent_id), name, at=self.changed_at)
        return str(report.id)

    def resolve_threat(self, threat_id: str) -> None:
        self.fake.close_report(int(threat_id), at=self.changed_at)

    def set_licences(self, customer_id: str, used: int, purchased: int | None) -> None:
        """`used` becomes the organization's billable agent count; Huntress publishes no purchased
        seats per organization, so `purchased` is kept but never reported."""
        self.fake.set_billable(int(customer_id), used, purchased)

    def native_threat_webhook(self, threat_id: str) -> WebhookRequest | None:
        """`incident_report.created` (or `.closed` once resolved), signed the Svix way."""
        report = self.fake.reports[int(threat_id)]
        body = json.dumps(self.fake.webhook_payload(report)).encode()
        now = datetime.now(UTC)
        message_id = "msg_" + secrets.token_urlsafe(18)
        assert self.webhook_secret is not None
        return WebhookRequest(
            body=body,
            headers={
                "content-type": "application/json",
                "svix-id": message_id,
                "svix-timestamp": str(int(now.timestamp())),
                "svix-signature": sign(self.webhook_secret, message_id, now, body),
            },
            query={},
            received_at=now,
        )

    def calls(self, operation: SecurityOperation) -> int:
        return self.fake.call_count(CALL_KEYS[operation])

    def reset_calls(self) -> None:
        self.fake.reset_calls()

    def fail_next(self, operation: SecurityOperation, status: int = 500, *, times: int | None = 1) -> None:
        self.fake.fail_next(status, times, path=FAULT_PATHS[operation])

    def rate_limit(
        self, operation: SecurityOperation, *, times: int | None = 1, retry_after: float = 1.0
    ) -> None:
        self.fake.rate_limit(times, retry_after, path=FAULT_PATHS[operation])

    def clear_faults(self) -> None:
        self.fake.clear_faults()


class HuntressHarness:
    """One Huntress account; each customer is an organization whose agents run Huntress EDR with
    Managed Antivirus (Defender healthy, definitions up to date, checked in now)."""

    spec = SPEC
    in_demo = True

    def start(
        self,
        *,
        customers: Sequence[str] = CLIENT_NAMES,
        agents_per_customer: int = 20,
        page_size: int | None = None,
        base_url: str | None = None,
    ) -> HuntressWorld:
        fake = HuntressFake(now=datetime.now(UTC))
        for name in customers:
            org = fake.add_organization(name)
            for n in range(agents_per_customer):
                host = device_name(name, n)
                fake.add_agent(
                    org.id, host, serial_number=device_serial(host), mac_addresses=[device_mac(host)]
                )
        url = base_url or API_BASE
        connection = ConnectionBody(
            kind=SPEC.kind,
            name=SPEC.title,
            base_url=url,
            credentials=fake.credentials(),
            options={"page_size": page_size} if page_size else {},
        )
        return HuntressWorld(
            spec=SPEC,
            fake=fake,
            connection=connection,
            hosts=(host_of(url),),
            page_size=page_size,
        )
