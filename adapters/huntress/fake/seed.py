"""`seed_fleet`: a deterministic Huntress account for demos and benchmarks."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import timedelta

from adapters.huntress.fake.store import HuntressStore
from adapters.testing.harness import device_mac, device_serial


@dataclass
class FleetSeed:
    organization_ids: list[int] = field(default_factory=list)
    agent_ids: list[int] = field(default_factory=list)


def seed_fleet(
    store: HuntressStore, organizations: int = 20, agents: int = 500, *, seed: int = 7
) -> FleetSeed:
    """Agents spread evenly over organizations, mostly healthy; some with Defender disabled or out
    of date, silent for days, isolated, or with an open incident report."""
    rng = random.Random(seed)  # noqa: S311 - reproducible test data
    out = FleetSeed()
    for o in range(organizations):
        out.organization_ids.append(store.add_organization(f"Organization {o + 1:03d} Ltd").id)
    for n in range(agents):
        org = store.organizations[out.organization_ids[n % organizations]]
        server = rng.random() < 0.2
        name = f"O{(n % organizations) + 1:03d}-{'SRV' if server else 'WS'}{n + 1:05d}"
        agent = store.add_agent(
            org.id,
            name,
            serial_number=device_serial(name),
            mac_addresses=[device_mac(name)],
            os="Windows Server 2022 Standard" if server else "Windows 11 Pro",
        )
        roll = rng.random()
        if roll < 0.04:
            store.set_defender(agent.id, "Disabled", "Up to date", at=store.now)
        elif roll < 0.08:
            store.set_defender(agent.id, "Unhealthy", "Out of date", at=store.now)
        elif roll < 0.12:
            store.set_last_callback(agent.id, store.now - timedelta(days=rng.randint(2, 20)), at=store.now)
        elif roll < 0.13:
            store.set_firewall(agent.id, "Isolated", at=store.now)
        if rng.random() < 0.02:
            store.add_report(agent.id, "Malicious scheduled task", at=store.now - timedelta(hours=2))
        out.agent_ids.append(agent.id)
    return out
