"""An in-memory RMM for the core's sync tests (kind `fleet_rmm`): a fleet that tests mutate, paging
with `changed_since`, request counting, failure injection and recorded actions. The vendor adapters
have their own fakes; this one keeps the core's tests about the core."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from pydantic import BaseModel, ConfigDict, Field

from adapters.base import (
    ActionKind,
    ActionResult,
    AdapterSpec,
    AlertEvent,
    ConnectionContext,
    EndpointPage,
    EndpointStatus,
    PolledAlerts,
    ProblemKind,
    RmmClient,
    Role,
    SkippedEndpoint,
    WebhookRequest,
)
from adapters.errors import AdapterError, UnsupportedActionError

NOW = datetime.now(UTC)


class FleetCredentials(BaseModel):
    model_config = ConfigDict(extra="forbid")
    token: str = Field(min_length=1)


@dataclass
class FleetFake:
    page_size: int = 100
    endpoints: dict[str, EndpointStatus] = field(default_factory=dict)
    modified: dict[str, datetime] = field(default_factory=dict)
    page_requests: int = 0
    fail_on_page: int | None = None
    failure: AdapterError | None = None
    actions: list[tuple[str, ActionKind]] = field(default_factory=list)
    latency: float = 0.0
    adapters_built: int = 0
    """Adapter objects constructed over this fleet (the core builds one per connection and change)."""
    action_failure: AdapterError | None = None
    """Raised by the next `run_action` after recording the call (a failure after the RMM saw it)."""
    alerts: list[AlertEvent] = field(default_factory=list)
    """What `poll_alerts` reports: the RMM's currently known alert states."""
    complete_for: frozenset[str] = frozenset()
    """The clients `poll_alerts` says it reported every open alert of (a snapshot RMM's poll)."""
    skipped: list[SkippedEndpoint] = field(default_factory=list)
    """Endpoints the RMM lists but the adapter cannot read (reported on the first page, left out
    of the statuses)."""
    cleared_alerts: list[tuple[str, ProblemKind]] = field(default_factory=list)
    """`clear_alert` calls: the RMM resolving an alert because a technician closed its ticket."""

    def seed(self, clients: int, per_client: int) -> None:
        for c in range(clients):
            for e in range(per_client):
                endpoint_id = f"ep-{c}-{e}"
                self.put(
                    EndpointStatus(
                        endpoint_id=endpoint_id,
                        client_id=f"c-{c}",
                        client_name=f"Client {c}",
                        hostname=f"WS-{c:02d}-{e:03d}",
                        serial_number=f"SN{c:02d}{e:04d}",
                        product="Acme EDR",
                        protection_enabled=True,
                        definitions_date=NOW - timedelta(hours=12),
                        last_scan_at=NOW - timedelta(days=1),
                        active_threats=0,
                        online=True,
                        last_seen_at=NOW - timedelta(minutes=5),
                    ),
                    modified_at=NOW - timedelta(days=1),
                )

    def put(self, status: EndpointStatus, modified_at: datetime | None = None) -> None:
        self.endpoints[status.endpoint_id] = status
        self.modified[status.endpoint_id] = modified_at or datetime.now(UTC)

    def change(self, endpoint_id: str, **values: object) -> None:
        self.put(self.endpoints[endpoint_id].model_copy(update=values))

    def remove(self, endpoint_id: str) -> None:
        self.endpoints.pop(endpoint_id)
        self.modified.pop(endpoint_id)


FLEETS: dict[str, FleetFake] = {}
"""Fakes by connection base URL host, so each test's connection reads its own fleet."""


ACTIONS = frozenset({ActionKind.SCAN, ActionKind.UPDATE_DEFINITIONS})


class FleetRmm:
    def __init__(self, ctx: ConnectionContext) -> None:
        self.fake = FLEETS[ctx.base_url.split("://", 1)[-1].split("/", 1)[0]]
        self.fake.adapters_built += 1

    async def test_connection(self) -> None:
        return None

    async def aclose(self) -> None:
        return None

    async def list_clients(self) -> AsyncIterator[RmmClient]:
        seen: dict[str, str] = {}
        for status in self.fake.endpoints.values():
            seen.setdefault(status.client_id, status.client_name or status.client_id)
        for client_id, name in sorted(seen.items()):
            yield RmmClient(id=client_id, name=name)

    async def iter_endpoint_pages(self, changed_since: datetime | None) -> AsyncIterator[EndpointPage]:
        unreadable = {s.endpoint_id for s in self.fake.skipped}
        ids = sorted(
            i
            for i in self.fake.endpoints
            if (changed_since is None or self.fake.modified[i] >= changed_since) and i not in unreadable
        )
        for number, start in enumerate(range(0, max(len(ids), 1), self.fake.page_size), start=1):
            self.fake.page_requests += 1
            if self.fake.latency:
                await asyncio.sleep(self.fake.latency)
            if self.fake.fail_on_page == number and self.fake.failure is not None:
                raise self.fake.failure
            yield EndpointPage(
                statuses=[self.fake.endpoints[i] for i in ids[start : start + self.fake.page_size]],
                skipped=list(self.fake.skipped) if number == 1 else [],
            )

    def verify_webhook(self, request: WebhookRequest, secret: str) -> bool | None:
        return None

    def parse_webhook(self, request: WebhookRequest) -> list[AlertEvent]:
        return []

    async def poll_alerts(self, since: datetime | None) -> PolledAlerts:
        return PolledAlerts(events=list(self.fake.alerts), complete_for=self.fake.complete_for)

    async def clear_alert(self, endpoint_id: str, problem: ProblemKind, alert_id: str | None) -> bool:
        self.fake.cleared_alerts.append((endpoint_id, problem))
        return True

    async def run_action(self, endpoint_id: str, action: ActionKind) -> ActionResult:
        if action not in ACTIONS:
            raise UnsupportedActionError(f"{action.value} is not offered")
        self.fake.actions.append((endpoint_id, action))
        if self.fake.action_failure is not None:
            failure, self.fake.action_failure = self.fake.action_failure, None
            raise failure
        return ActionResult(accepted=True, vendor_reference=f"job-{len(self.fake.actions)}")


FLEET_RMM = AdapterSpec(
    kind="fleet_rmm",
    role=Role.RMM,
    title="In-memory fleet (tests)",
    credentials_model=FleetCredentials,
    factory=FleetRmm,
    actions=ACTIONS,
)
