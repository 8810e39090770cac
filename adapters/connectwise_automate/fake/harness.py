"""The ConnectWise Automate harness: a seeded `AutomateFake` seen through `adapters.testing.harness`."""

from __future__ import annotations

import itertools
import json
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from adapters.base import ActionKind, ProblemKind, RmmAdapter, WebhookRequest
from adapters.connectwise_automate import SPEC
from adapters.connectwise_automate.fake.app import AutomateFake
from adapters.connectwise_automate.fake.store import wire_time
from adapters.connectwise_automate.models import AutomateOptions
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

SERVER = "https://connectwise-automate.example.com"
PRODUCT = "Microsoft Defender Antivirus"
PATHS = {RmmOperation.LIST_CLIENTS: "/Clients", RmmOperation.LIST_ENDPOINTS: "/Computers"}
KEYS = {RmmOperation.LIST_CLIENTS: "GET /clients", RmmOperation.LIST_ENDPOINTS: "GET /computers"}
SCRIPTS = {ActionKind.SCAN: 6001, ActionKind.UPDATE_DEFINITIONS: 6002}
"""The fake's seeded scripts the connection runs for each action."""


@dataclass
class AutomateWorld(FakeWorld[AutomateFake]):
    clients: dict[str, str] = field(default_factory=dict)
    endpoints: dict[str, SeededEndpoint] = field(default_factory=dict)
    reports_products: bool = True
    trouble_kinds: tuple[ProblemKind, ...] = (ProblemKind.DEFINITIONS_OUTDATED, ProblemKind.NOT_PROTECTED)
    polls_snapshots: bool = False
    """`GET /Alerts` is the alerts since a time, not what is open now."""
    _alert_ids: itertools.count[int] = field(default_factory=lambda: itertools.count(990001))

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
        return {**self.connection.credentials, "password": "not-the-right-one"}

    def endpoint_page_sizes(self) -> list[int]:
        size = self.page_size or AutomateOptions().page_size
        total = len(self.fake.computers)
        return [min(size, total - start) for start in range(0, total, size)]

    def cursor(self) -> datetime:
        return self.fake.now + timedelta(minutes=1)

    def touch(self, endpoint_ids: Sequence[str]) -> None:
        for endpoint_id in endpoint_ids:
            self.fake.touch(int(endpoint_id), at=self.changed_at)

    def put_in_trouble(self, endpoint_id: str, kind: ProblemKind | None = None) -> ProblemKind:
        kind = kind or self.trouble_kinds[0]
        if kind is ProblemKind.DEFINITIONS_OUTDATED:
            self.fake.set_av(int(endpoint_id), definitions_date=self.fake.now - timedelta(days=12))
        elif kind is ProblemKind.NOT_PROTECTED:
            self.fake.set_av(int(endpoint_id), product=None)
        else:
            raise ValueError(f"the Automate fake cannot cause {kind}")
        self.touch([endpoint_id])
        return kind

    def clear_trouble(self, endpoint_id: str) -> None:
        self.fake.set_av(int(endpoint_id), product=PRODUCT, definitions_date=self.fake.now)
        self.touch([endpoint_id])

    def break_endpoint(self, endpoint_id: str) -> bool:
        self.fake.corrupt_computer(int(endpoint_id), Client=None)
        return True

    def actions_run(self) -> list[tuple[str, ActionKind]]:
        actions = {script: action for action, script in SCRIPTS.items()}
        return [(str(run.computer_id), actions[run.script_id]) for run in self.fake.script_runs]

    def native_alert(self, endpoint_id: str, *, active: bool) -> NativeAlert | None:
        """The body an alert template's script posts (see `alerts.py`)."""
        computer = self.fake.computers[int(endpoint_id)]
        body = {
            "AlertId": next(self._alert_ids),
            "ComputerId": computer.id,
            "ClientId": computer.client_id,
            "ComputerName": computer.name,
            "MonitorName": "AV - Definitions",
            "Message": "Antivirus definitions are 12 days old",
            "Status": "Failed" if active else "Success",
            "AlertDate": wire_time(self.fake.now),
        }
        request = WebhookRequest(
            body=json.dumps(body).encode(), headers={}, query={}, received_at=datetime.now(UTC)
        )
        return NativeAlert(
            request, endpoint_id, ProblemKind.DEFINITIONS_OUTDATED, "active" if active else "cleared"
        )

    def raise_polled_alert(self, endpoint_id: str) -> ProblemKind | None:
        self.fake.add_alert(int(endpoint_id), "AV - Definitions", "Antivirus definitions are 12 days old")
        return ProblemKind.DEFINITIONS_OUTDATED

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


class AutomateHarness:
    """One Automate server; each client has one location holding its computers (Defender, current
    definitions, online); the connection runs the seeded scan and definitions scripts."""

    spec = SPEC
    in_demo = True

    def start(
        self,
        *,
        clients: Sequence[str] = CLIENT_NAMES,
        endpoints_per_client: int = 20,
        page_size: int | None = None,
        base_url: str | None = None,
    ) -> AutomateWorld:
        fake = AutomateFake(now=datetime.now(UTC))
        names: dict[str, str] = {}
        endpoints: dict[str, SeededEndpoint] = {}
        for name in clients:
            client = fake.add_client(name)
            location = fake.add_location(client.id)
            names[str(client.id)] = name
            for n in range(endpoints_per_client):
                computer = fake.add_computer(location.id, device_name(name, n), product=PRODUCT)
                endpoints[str(computer.id)] = SeededEndpoint(str(computer.id), str(client.id), computer.name)
        url = base_url or SERVER
        connection = ConnectionBody(
            kind=SPEC.kind,
            name=SPEC.title,
            base_url=url,
            credentials=fake.credentials(),
            options={
                "scan_script_id": SCRIPTS[ActionKind.SCAN],
                "definitions_script_id": SCRIPTS[ActionKind.UPDATE_DEFINITIONS],
                # Every product on this fleet is one Automate detects, so a computer without a
                # scanner has none (the NOT_PROTECTED trouble), not an undetected one (unknown).
                "missing_scanner_means_unprotected": True,
                **({"page_size": page_size} if page_size else {}),
            },
        )
        return AutomateWorld(
            spec=SPEC,
            fake=fake,
            connection=connection,
            hosts=(host_of(url),),
            page_size=page_size,
            clients=names,
            endpoints=endpoints,
        )
