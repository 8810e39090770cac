"""`seed_fleet`: a deterministic N-sight account for tests and benchmarks."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Literal

from adapters.nsight.fake.store import NsightStore


@dataclass
class FleetSeed:
    client_ids: list[int] = field(default_factory=list)
    site_ids: list[int] = field(default_factory=list)
    device_ids: list[int] = field(default_factory=list)


class NsightSeeding(NsightStore):
    """A seeded account, built through the same helpers tests use."""

    def seed_fleet(
        self,
        *,
        clients: int = 40,
        devices: int = 2500,
        sites_per_client: int = 3,
        server_ratio: float = 0.1,
        seed: int = 7,
    ) -> FleetSeed:
        """Deterministic fleet: `devices` spread over `clients` x 1..`sites_per_client` sites."""
        rng = random.Random(seed)  # noqa: S311 - reproducible test data
        out = FleetSeed()
        site_ids: list[int] = []
        for n in range(1, clients + 1):
            name = "Müller & Söhne GmbH" if n == 2 else f"Client {n:03d} Ltd"
            client = self.add_client(name)
            out.client_ids.append(client.id)
            for s in range(1, rng.randint(1, max(1, sites_per_client)) + 1):
                site = self.add_site(client.id, "Head Office" if s == 1 else f"Branch {s}")
                site_ids.append(site.id)
        out.site_ids = list(site_ids)
        for index in range(devices):
            site_id = site_ids[index % len(site_ids)]
            is_server = rng.random() < server_ratio
            kind: Literal["server", "workstation"] = "server" if is_server else "workstation"
            online = rng.random() < 0.85
            age = timedelta(minutes=rng.randint(1, 30)) if online else timedelta(hours=rng.randint(2, 400))
            contact = self.now - age
            device = self.add_device(
                site_id,
                f"{'SRV' if kind == 'server' else 'WS'}-{site_id}-{index:04d}",
                kind=kind,
                os="Microsoft Windows Server 2022 Standard" if is_server else "Microsoft Windows 11 Pro",
                online=online,
                last_contact=contact,
                last_boot=contact - timedelta(hours=rng.randint(1, 500)),
            )
            out.device_ids.append(device.id)
        return out
