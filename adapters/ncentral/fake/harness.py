"""The N-central harness: a seeded `NcentralFake` seen through `adapters.testing.harness`."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from adapters.base import ActionKind, ProblemKind, RmmAdapter, WebhookRequest
from adapters.ncentral import SPEC
from adapters.ncentral.fake.app import NcentralFake
from adapters.ncentral.fake.store import THREAT_SERVICE
from adapters.ncentral.models import NcentralOptions
from adapters.testing.harness import (
    CLIENT_NAMES,
    ConnectionBody,
    FakeWorld,
    NativeAlert,
    RmmOperation,
    SeededEndpoint,
    device_name,
    host_of,
    rmm_adapter,
)

SERVER = "https://ncentral.example.com"
PROTECTION_SERVICE = "AV Defender Status"
PATHS = {RmmOperation.LIST_CLIENTS: "/api/customers", RmmOperation.LIST_ENDPOINTS: "/api/devices"}
KEYS = {RmmOperation.LIST_CLIENTS: "GET /api/customers", RmmOperation.LIST_ENDPOINTS: "GET /api/devices"}
ITEMS = {ActionKind.SCAN: 2001, ActionKind.UPDATE_DEFINITIONS: 2002, ActionKind.DEPLOY_AGENT: 2003}
"""The fake's API-enabled repository items the connection runs for each action."""


@dataclass
class NcentralWorld(FakeWorld[NcentralFake]):
    clients: dict[str, str] = field(default_factory=dict)
    endpoints: dict[str, SeededEndpoint] = field(default_factory=dict)
    reports_products: bool = True
    trouble_kinds: tuple[ProblemKind, ...] = (ProblemKind.THREAT_DETECTED, ProblemKind.PROTECTION_DISABLED)
    polls_snapshots: bool = False
    """N-central pushes notifications; nothing is polled."""

    @property
    def changed_at(self) -> datetime:
        return self.fake.now + timedelta(minutes=2)

    def adapter(
        self,
        *,
        sleep: Callable[[float], Awaitable[None]] | None = None,
        credentials: Mapping[str, Any] | None = None,
        options: Mapping[str, Any] | None = None,
    ) -> RmmAdapter:
        return rmm_adapter(self.build(sleep=sleep, credentials=credentials, options=options))

    def wrong_credentials(self) -> dict[str, Any]:
        return {"api_token": "eyJ.not-the-token.x"}

    def endpoint_page_sizes(self) -> list[int]:
        size = self.page_size or NcentralOptions().page_size
        total = len(self.fake.devices)
        return [min(size, total - start) for start in range(0, total, size)]

    def cursor(self) -> datetime:
        return self.fake.now + timedelta(minutes=1)

    def touch(self, endpoint_ids: Sequence[str]) -> None:
        for endpoint_id in endpoint_ids:
            self.fake.touch(int(endpoint_id), at=self.changed_at)

    def put_in_trouble(self, endpoint_id: str, kind: ProblemKind | None = None) -> ProblemKind:
        kind = kind or self.trouble_kinds[0]
        if kind is ProblemKind.THREAT_DETECTED:
            self.fake.set_service(int(endpoint_id), THREAT_SERVICE, "Failed")
        elif kind is ProblemKind.PROTECTION_DISABLED:
            self.fake.set_service(int(endpoint_id), PROTECTION_SERVICE, "Failed")
        else:
            raise ValueError(f"the N-central fake cannot cause {kind}")
        self.touch([endpoint_id])
        return kind

    def clear_trouble(self, endpoint_id: str) -> None:
        for service in (THREAT_SERVICE, PROTECTION_SERVICE):
            self.fake.set_service(int(endpoint_id), service, "Normal")
        self.touch([endpoint_id])

    def break_endpoint(self, endpoint_id: str) -> bool:
        self.fake.corrupt_device(int(endpoint_id), customerId=None)
        return True

    def actions_run(self) -> list[tuple[str, ActionKind]]:
        actions = {item: action for action, item in ITEMS.items()}
        return [
            (str(task.body["deviceId"]), actions[task.body["itemId"]]) for task in self.fake.tasks.values()
        ]

    def native_alert(self, endpoint_id: str, *, active: bool) -> NativeAlert | None:
        """An HTTP-XML notification of the protection service failing or returning to Normal."""
        body = self.fake.notification_xml(
            int(endpoint_id), PROTECTION_SERVICE, "Failed" if active else "Normal"
        )
        request = WebhookRequest(
            body=body, headers={"content-type": "text/xml"}, query={}, received_at=datetime.now(UTC)
        )
        return NativeAlert(
            request, endpoint_id, ProblemKind.PROTECTION_DISABLED, "active" if active else "cleared"
        )

    def raise_polled_alert(self, endpoint_id: str) -> ProblemKind | None:
        return None  # N-central pushes notifications

    def calls(self, operation: RmmOperation) -> int:
        return self.fake.call_count(KEYS[operation])

    def reset_calls(self) -> None:
        self.fake.reset_calls()

    def fail_next(self, operation: RmmOperation, status: int = 500, *, times: int | None = 1) -> None:
        self.fake.fail_next(status, times, path=PATHS[operation])

    def rate_limit(self, operation: RmmOperation, *, times: int | None = 1, retry_after: float = 1.0) -> None:
        self.fake.rate_limit(times, retry_after, path=PATHS[operation])

    def clear_faults(self) -> None:
        self.fake.clear_faults()


class NcentralHarness:
    """One N-central server; each client is a customer with one site holding its devices (AV
    Defender, no threats, online); the connection runs the seeded scan and definitions items."""

    spec = SPEC
    in_demo = True

    def start(
        self,
        *,
        clients: Sequence[str] = CLIENT_NAMES,
        endpoints_per_client: int = 20,
        page_size: int | None = None,
        base_url: str | None = None,
    ) -> NcentralWorld:
        fake = NcentralFake(now=datetime.now(UTC))
        names: dict[str, str] = {}
        endpoints: dict[str, SeededEndpoint] = {}
        for name in clients:
            customer = fake.add_customer(name)
            site = fake.add_site(customer.id)
            names[str(customer.id)] = name
            for n in range(endpoints_per_client):
                device = fake.add_device(customer.id, device_name(name, n), site_id=site.id)
                endpoints[str(device.id)] = SeededEndpoint(str(device.id), str(customer.id), device.name)
        url = base_url or SERVER
        connection = ConnectionBody(
            kind=SPEC.kind,
            name=SPEC.title,
            base_url=url,
            credentials=fake.credentials(),
            options={
                "scan_item_id": ITEMS[ActionKind.SCAN],
                "definitions_item_id": ITEMS[ActionKind.UPDATE_DEFINITIONS],
                "deploy_item_id": ITEMS[ActionKind.DEPLOY_AGENT],
                **({"page_size": page_size} if page_size else {}),
            },
        )
        return NcentralWorld(
            spec=SPEC,
            fake=fake,
            connection=connection,
            hosts=(host_of(url),),
            page_size=page_size,
            clients=names,
            endpoints=endpoints,
        )
