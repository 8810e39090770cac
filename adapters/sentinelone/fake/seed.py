"""`seed_console`: a deterministic SentinelOne console for tests, benchmarks and the demo."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import timedelta

from adapters.sentinelone.fake.store import SentinelOneStore


@dataclass
class ConsoleSeed:
    site_ids: list[str] = field(default_factory=list)
    agent_ids: list[str] = field(default_factory=list)


class SentinelOneSeeding(SentinelOneStore):
    """A seeded console, built through the same methods tests use."""

    def seed_console(self, sites: int = 20, agents: int = 2000, *, seed: int = 11) -> ConsoleSeed:
        """Agents spread evenly over sites, mostly healthy; some offline for days, with protection
        disabled, an out-of-date agent, isolated, or an open threat. Each site is licensed for its
        agents."""
        rng = random.Random(seed)  # noqa: S311 - reproducible test data
        out = ConsoleSeed()
        for s in range(sites):
            out.site_ids.append(self.add_site(f"Site {s + 1:03d} Ltd", external_id=str(1000 + s)).id)
        for n in range(agents):
            site_id = out.site_ids[n % sites]
            server = rng.random() < 0.2
            name = f"S{(n % sites) + 1:03d}-{'SRV' if server else 'WS'}{n + 1:05d}"
            agent = self.add_agent(
                site_id,
                name,
                serial=f"SN-{name.replace('-', '')}",
                macs=[f"02:53:31:{n >> 16 & 255:02X}:{n >> 8 & 255:02X}:{n & 255:02X}"],
                machine_type="server" if server else "desktop",
            )
            roll = rng.random()
            if roll < 0.05:
                self.set_last_active(agent.id, self.now - timedelta(days=rng.randint(2, 20)))
            elif roll < 0.08:
                self.set_operational_state(agent.id, "fully_disabled")
            elif roll < 0.12:
                agent.is_up_to_date = False
            elif roll < 0.13:
                agent.network_status = "disconnected"
            elif roll < 0.14:
                self.add_threat(agent.id, at=self.now - timedelta(hours=1))
            out.agent_ids.append(agent.id)
        for site in self.sites.values():
            count = sum(1 for a in self.agents.values() if a.site_id == site.id)
            site.active_licenses, site.total_licenses = count, count
        return out
