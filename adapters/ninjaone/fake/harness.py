"""The NinjaOne harness: a seeded `NinjaOneFake` seen through `adapters.testing.harness`."""

from __future__ import annotations

import json
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from adapters.base import ActionKind, ProblemKind, RmmAdapter, WebhookRequest
from adapters.ninjaone import SPEC
from adapters.ninjaone.fake.app import NinjaOneFake
from adapters.ninjaone.models import REGIONS, NinjaOneOptions
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

PRODUCT = "Windows Defender"
PATHS = {RmmOperation.LIST_CLIENTS: "/v2/organizations", RmmOperation.LIST_ENDPOINTS: "/v2/devices-detailed"}
SCRIPTS = {ActionKind.SCAN: 71, ActionKind.UPDATE_DEFINITIONS: 72, ActionKind.DEPLOY_AGENT: 73}
"""The fake's seeded scripts the connection runs for each action."""
WEBHOOK_SECRET = "ninjaone-world-webhook-secret"


@dataclass
class NinjaOneWorld(FakeWorld[NinjaOneFake]):
    clients: dict[str, str] = field(default_factory=dict)
    endpoints: dict[str, SeededEndpoint] = field(default_factory=dict)
    reports_products: bool = True
    trouble_kinds: tuple[ProblemKind, ...] = (
        ProblemKind.PROTECTION_DISABLED,
        ProblemKind.THREAT_DETECTED,
        ProblemKind.DEFINITIONS_OUTDATED,
        ProblemKind.NOT_PROTECTED,
    )
    polls_snapshots: bool = False
    """NinjaOne pushes activities; nothing is polled."""
    _series: dict[str, str] = field(default_factory=dict)

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
    ) -> RmmAdapter:
        return rmm_adapter(self.build(sleep=sleep, credentials=credentials, options=options))

    def wrong_credentials(self) -> dict[str, Any]:
        return {**self.connection.credentials, "client_secret": "not-the-right-one"}

    def endpoint_page_sizes(self) -> list[int]:
        size = self.page_size or NinjaOneOptions().page_size
        total = len(self.fake.devices)
        return [min(size, total - start) for start in range(0, total, size)]

    def cursor(self) -> datetime:
        return self.fake.now + timedelta(minutes=1)

    def touch(self, endpoint_ids: Sequence[str]) -> None:
        for endpoint_id in endpoint_ids:
            self.fake.touch(int(endpoint_id), at=self.changed_at)

    def put_in_trouble(self, endpoint_id: str, kind: ProblemKind | None = None) -> ProblemKind:
        kind = kind or self.trouble_kinds[0]
        device, at = int(endpoint_id), self.changed_at
        if kind is ProblemKind.PROTECTION_DISABLED:
            self.fake.set_product(device, PRODUCT, state="OFF", at=at)
        elif kind is ProblemKind.DEFINITIONS_OUTDATED:
            self.fake.set_product(device, PRODUCT, definitions="OUT_OF_DATE", at=at)
        elif kind is ProblemKind.THREAT_DETECTED:
            self.fake.add_threat(device, at=at)
        elif kind is ProblemKind.NOT_PROTECTED:
            self.fake.remove_products(device)
            self.fake.set_product(device, "Malwarebytes", at=at)
        else:
            raise ValueError(f"the NinjaOne fake cannot cause {kind}")
        return kind

    def clear_trouble(self, endpoint_id: str) -> None:
        device, at = int(endpoint_id), self.changed_at
        self.fake.remove_products(device)
        self.fake.set_product(device, PRODUCT, state="ON", definitions="UP_TO_DATE", at=at)
        self.fake.resolve_threats(device, at=at)

    def break_endpoint(self, endpoint_id: str) -> bool:
        self.fake.corrupt_device(int(endpoint_id), organizationId=None)
        return True

    def actions_run(self) -> list[tuple[str, ActionKind]]:
        actions = {script: action for action, script in SCRIPTS.items()}
        return [(str(run.device_id), actions[run.script_id]) for run in self.fake.script_runs]

    def native_alert(self, endpoint_id: str, *, active: bool) -> NativeAlert | None:
        """A policy condition's TRIGGERED (or RESET, same series) activity, as NinjaOne posts it with
        the registration's header."""
        series = self._series.setdefault(endpoint_id, str(uuid.uuid4()))
        body = self.fake.activity(
            int(endpoint_id),
            activity_type="CONDITION",
            status_code="TRIGGERED" if active else "RESET",
            series_uid=series,
            source_name="Antivirus threat detected",
            message="Trojan:Win32/Wacatac.B!ml found by Windows Defender",
        )
        header = str(self.connection.options.get("webhook_header") or NinjaOneOptions().webhook_header)
        request = WebhookRequest(
            body=json.dumps(body).encode(),
            headers={header: WEBHOOK_SECRET, "content-type": "application/json"},
            query={},
            received_at=datetime.now(UTC),
        )
        return NativeAlert(
            request, endpoint_id, ProblemKind.THREAT_DETECTED, "active" if active else "cleared"
        )

    def raise_polled_alert(self, endpoint_id: str) -> ProblemKind | None:
        return None

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


class NinjaOneHarness:
    """One NinjaOne instance; each client is an organization whose devices run Windows Defender
    (on, up to date, online); the connection runs the seeded scan, definitions and deploy scripts."""

    spec = SPEC
    in_demo = True

    def start(
        self,
        *,
        clients: Sequence[str] = CLIENT_NAMES,
        endpoints_per_client: int = 20,
        page_size: int | None = None,
        base_url: str | None = None,
    ) -> NinjaOneWorld:
        fake = NinjaOneFake(now=datetime.now(UTC))
        names: dict[str, str] = {}
        endpoints: dict[str, SeededEndpoint] = {}
        for name in clients:
            org = fake.add_organization(name)
            names[str(org.id)] = name
            for n in range(endpoints_per_client):
                device = fake.add_device(org.id, device_name(name, n), products=[PRODUCT])
                endpoints[str(device.id)] = SeededEndpoint(str(device.id), str(org.id), device.name)
        url = base_url or REGIONS["us"]
        connection = ConnectionBody(
            kind=SPEC.kind,
            name=SPEC.title,
            base_url=url,
            credentials=fake.credentials(),
            options={
                "billed_product": PRODUCT,
                "scan_script_id": SCRIPTS[ActionKind.SCAN],
                "definitions_script_id": SCRIPTS[ActionKind.UPDATE_DEFINITIONS],
                "deploy_script_id": SCRIPTS[ActionKind.DEPLOY_AGENT],
                **({"page_size": page_size} if page_size else {}),
            },
        )
        return NinjaOneWorld(
            spec=SPEC,
            fake=fake,
            connection=connection,
            hosts=(host_of(url),),
            page_size=page_size,
            clients=names,
            endpoints=endpoints,
        )
