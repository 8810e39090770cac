"""The N-sight harness: a seeded `NsightFake` seen through `adapters.testing.harness`."""

from __future__ import annotations

from collections import Counter
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from adapters.base import ActionKind, ProblemKind, RmmAdapter
from adapters.nsight import SPEC
from adapters.nsight.fake.app import NsightFake
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

SERVICES = {
    RmmOperation.LIST_CLIENTS: ("list_clients",),
    RmmOperation.LIST_ENDPOINTS: ("list_workstations", "list_servers"),
}
"""N-sight lists devices per site and kind, with no paging: faults hit the workstation listing."""


@dataclass
class NsightWorld(FakeWorld[NsightFake]):
    clients: dict[str, str] = field(default_factory=dict)
    endpoints: dict[str, SeededEndpoint] = field(default_factory=dict)
    reports_products: bool = True
    """Each device's Managed Antivirus answers name the product (MAV on every seeded device)."""
    trouble_kinds: tuple[ProblemKind, ...] = (
        ProblemKind.THREAT_DETECTED,
        ProblemKind.PROTECTION_DISABLED,
        ProblemKind.DEFINITIONS_OUTDATED,
        ProblemKind.NOT_PROTECTED,
    )
    polls_snapshots: bool = True
    """`list_failing_checks` is what fails now, per client."""

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
        return {"api_key": "wrong-key-123456789"}

    def endpoint_page_sizes(self) -> list[int]:
        """One page per site that has devices, clients and sites in the order N-sight lists them."""
        per_site = Counter(d.site_id for d in self.fake.devices.values())
        return [per_site[site_id] for site_id in self.fake.sites if per_site[site_id]]

    def cursor(self) -> datetime:
        return self.fake.now + timedelta(minutes=1)

    def touch(self, endpoint_ids: Sequence[str]) -> None:
        for endpoint_id in endpoint_ids:
            self.fake.touch(int(endpoint_id), self.changed_at)

    def put_in_trouble(self, endpoint_id: str, kind: ProblemKind | None = None) -> ProblemKind:
        kind = kind or self.trouble_kinds[0]
        device = int(endpoint_id)
        if kind is ProblemKind.THREAT_DETECTED:
            self.fake.set_av_state(device, threats=2)
        elif kind is ProblemKind.PROTECTION_DISABLED:
            self.fake.set_av_state(device, protection=False)
        elif kind is ProblemKind.DEFINITIONS_OUTDATED:
            self.fake.set_av_state(device, definitions_current=False)
        elif kind is ProblemKind.NOT_PROTECTED:
            self.fake.remove_mav(device)
        else:
            raise ValueError(f"the N-sight fake cannot cause {kind}")
        self.touch([endpoint_id])
        return kind

    def clear_trouble(self, endpoint_id: str) -> None:
        if not self.fake.devices[int(endpoint_id)].mav:
            self.fake.install_mav(self.fake.devices[int(endpoint_id)])
        self.fake.set_av_state(int(endpoint_id), protection=True, definitions_current=True, threats=0)
        self.touch([endpoint_id])

    def break_endpoint(self, endpoint_id: str) -> bool:
        self.fake.break_device(int(endpoint_id), "name")
        return True

    def actions_run(self) -> list[tuple[str, ActionKind]]:
        return [(str(d), ActionKind.SCAN) for d in self.fake.scans_started] + [
            (str(d), ActionKind.UPDATE_DEFINITIONS) for d in sorted(self.fake.pending_definition_updates)
        ]

    def native_alert(self, endpoint_id: str, *, active: bool) -> NativeAlert | None:
        return None  # N-sight has no outbound webhook: failing checks are polled

    def raise_polled_alert(self, endpoint_id: str) -> ProblemKind | None:
        self.fake.fail_check(int(endpoint_id), "av_protection")
        return ProblemKind.PROTECTION_DISABLED

    def calls(self, operation: RmmOperation) -> int:
        return sum(self.fake.call_count(service) for service in SERVICES[operation])

    def reset_calls(self) -> None:
        self.fake.reset_calls()

    def fail_next(self, operation: RmmOperation, status: int = 500, *, times: int | None = 1) -> None:
        self.fake.fail_next(status, times, service=SERVICES[operation][0])

    def rate_limit(self, operation: RmmOperation, *, times: int | None = 1, retry_after: float = 1.0) -> None:
        self.fake.rate_limit(times, retry_after, service=SERVICES[operation][0])

    def clear_faults(self) -> None:
        self.fake.clear_faults()


class NsightHarness:
    """One N-sight account; each client has one site ("Head Office") of workstations. N-sight lists
    per site without paging, so `page_size` changes nothing."""

    spec = SPEC
    in_demo = True

    def start(
        self,
        *,
        clients: Sequence[str] = CLIENT_NAMES,
        endpoints_per_client: int = 20,
        page_size: int | None = None,
        base_url: str | None = None,
    ) -> NsightWorld:
        url = base_url or SPEC.default_base_url or "https://www.am.remote.management"
        fake = NsightFake(now=datetime.now(UTC), host=host_of(url))
        names: dict[str, str] = {}
        endpoints: dict[str, SeededEndpoint] = {}
        for name in clients:
            client = fake.add_client(name)
            site = fake.add_site(client.id, "Head Office")
            names[str(client.id)] = name
            for n in range(endpoints_per_client):
                device = fake.add_device(site.id, device_name(name, n))
                endpoints[str(device.id)] = SeededEndpoint(str(device.id), str(client.id), device.name)
        connection = ConnectionBody(
            kind=SPEC.kind,
            name=SPEC.title,
            base_url=url,
            credentials=fake.credentials(),
            options={"without_mav": "unprotected"},  # the seeded MSP runs Managed Antivirus everywhere
        )
        return NsightWorld(
            spec=SPEC,
            fake=fake,
            connection=connection,
            hosts=(host_of(url),),
            page_size=None,
            clients=names,
            endpoints=endpoints,
        )
