"""The Datto RMM harness: a seeded `DattoFake` seen through `adapters.testing.harness`."""

from __future__ import annotations

import itertools
import json
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from adapters.base import ActionKind, ProblemKind, RmmAdapter, WebhookRequest
from adapters.datto_rmm import SPEC
from adapters.datto_rmm.fake.app import DattoFake
from adapters.datto_rmm.fake.store import PRODUCTS, millis
from adapters.datto_rmm.models import DattoOptions
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

SERVER = "https://concord-api.centrastage.net"
PATHS = {RmmOperation.LIST_CLIENTS: "/v2/account/sites", RmmOperation.LIST_ENDPOINTS: "/v2/account/devices"}
COMPONENTS = {
    ActionKind.SCAN: "AV - Run full scan",
    ActionKind.UPDATE_DEFINITIONS: "AV - Update definitions",
    ActionKind.DEPLOY_AGENT: "AV - Deploy agent",
}
OPTION = {
    ActionKind.SCAN: "scan_component_uid",
    ActionKind.UPDATE_DEFINITIONS: "update_component_uid",
    ActionKind.DEPLOY_AGENT: "deploy_component_uid",
}
NOT_RUNNING = {"@class": "antivirus_ctx", "status": "NOTRUNNING", "productName": PRODUCTS[0]}


@dataclass
class DattoWorld(FakeWorld[DattoFake]):
    clients: dict[str, str] = field(default_factory=dict)
    endpoints: dict[str, SeededEndpoint] = field(default_factory=dict)
    components: dict[str, ActionKind] = field(default_factory=dict)
    reports_products: bool = True
    trouble_kinds: tuple[ProblemKind, ...] = (ProblemKind.PROTECTION_DISABLED, ProblemKind.NOT_PROTECTED)
    polls_snapshots: bool = True
    """`GET /v2/account/alerts/open` is every alert open now."""
    _alert_numbers: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

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
        built = self.build(
            sleep=sleep, credentials=credentials, options=options, extra={"monotonic": self.fake.clock}
        )
        return rmm_adapter(built)

    def wrong_credentials(self) -> dict[str, Any]:
        return {**self.connection.credentials, "api_secret": "not-the-right-one"}

    def endpoint_page_sizes(self) -> list[int]:
        size = self.page_size or DattoOptions().page_size
        total = len(self.fake.devices)
        return [min(size, total - start) for start in range(0, total, size)]

    def cursor(self) -> datetime:
        return self.fake.now + timedelta(minutes=1)

    def touch(self, endpoint_ids: Sequence[str]) -> None:
        for endpoint_id in endpoint_ids:
            self.fake.touch(endpoint_id, at=self.changed_at)

    def put_in_trouble(self, endpoint_id: str, kind: ProblemKind | None = None) -> ProblemKind:
        kind = kind or self.trouble_kinds[0]
        if kind is ProblemKind.PROTECTION_DISABLED:
            self.fake.set_av(endpoint_id, product=PRODUCTS[0], status="NotRunning")
        elif kind is ProblemKind.NOT_PROTECTED:
            self.fake.set_av(endpoint_id, product=None, status="NotDetected")
        else:
            raise ValueError(f"the Datto RMM fake cannot cause {kind}")
        self.touch([endpoint_id])
        return kind

    def clear_trouble(self, endpoint_id: str) -> None:
        self.fake.set_av(endpoint_id, product=PRODUCTS[0], status="RunningAndUpToDate")
        self.fake.resolve_alerts(endpoint_id)
        self.touch([endpoint_id])

    def break_endpoint(self, endpoint_id: str) -> bool:
        self.fake.corrupt_device(endpoint_id, hostname=None)
        return True

    def actions_run(self) -> list[tuple[str, ActionKind]]:
        return [(job.device_uid, self.components[job.component_uid]) for job in self.fake.quick_jobs]

    def native_alert(self, endpoint_id: str, *, active: bool) -> NativeAlert | None:
        """A delivery of connector's documented body template, variables substituted."""
        device = self.fake.devices[endpoint_id]
        body = {
            "source": "datto-rmm",
            "state": "active" if active else "resolved",
            "alertUid": f"{next(self._alert_numbers):08d}-fake-webhook-alert",
            "deviceUid": device.uid,
            "siteUid": device.site_uid,
            "hostname": device.hostname,
            "alertType": "Antivirus",
            "priority": "High",
            "message": f"Antivirus {PRODUCTS[0]} is not running",
            "timestamp": str(millis(self.fake.now)),
        }
        request = WebhookRequest(
            body=json.dumps(body).encode(), headers={}, query={}, received_at=datetime.now(UTC)
        )
        return NativeAlert(
            request, endpoint_id, ProblemKind.PROTECTION_DISABLED, "active" if active else "cleared"
        )

    def raise_polled_alert(self, endpoint_id: str) -> ProblemKind | None:
        self.fake.add_alert(endpoint_id, dict(NOT_RUNNING), f"{PRODUCTS[0]} is not running")
        return ProblemKind.PROTECTION_DISABLED

    def calls(self, operation: RmmOperation) -> int:
        return self.fake.call_count(f"GET {PATHS[operation]}")

    def reset_calls(self) -> None:
        self.fake.reset_calls()

    def fail_next(self, operation: RmmOperation, status: int = 500, *, times: int | None = 1) -> None:
        self.fake.fail_next(status, times, path=PATHS[operation])

    def rate_limit(self, operation: RmmOperation, *, times: int | None = 1, retry_after: float = 1.0) -> None:
        self.fake.rate_limit(times, retry_after, path=PATHS[operation])

    def clear_faults(self) -> None:
        self.fake.clear_faults()


class DattoHarness:
    """One Datto account; each client is a site of devices (Datto AV running and current, online),
    the connection runs a seeded component per action."""

    spec = SPEC
    in_demo = True

    def start(
        self,
        *,
        clients: Sequence[str] = CLIENT_NAMES,
        endpoints_per_client: int = 20,
        page_size: int | None = None,
        base_url: str | None = None,
    ) -> DattoWorld:
        fake = DattoFake(now=datetime.now(UTC))
        fake.add_user("FAKEAPIKEY0123456789", "fake-api-secret-0123456789")
        components = {fake.add_component(name): action for action, name in COMPONENTS.items()}
        seed = fake.seed_fleet(list(clients), endpoints_per_client, name=device_name)
        url = base_url or SERVER
        connection = ConnectionBody(
            kind=SPEC.kind,
            name=SPEC.title,
            base_url=url,
            credentials=fake.credentials(),
            options={
                **{OPTION[action]: uid for uid, action in components.items()},
                **({"page_size": page_size} if page_size else {}),
            },
        )
        return DattoWorld(
            spec=SPEC,
            fake=fake,
            connection=connection,
            hosts=(host_of(url),),
            page_size=page_size,
            clients=dict(seed.sites),
            endpoints={uid: SeededEndpoint(uid, site, host) for uid, (site, host) in seed.devices.items()},
            components=components,
        )
