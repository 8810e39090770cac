"""`seed_fleet`: a deterministic Automate fleet for tests and benchmarks."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import timedelta

from adapters.connectwise_automate.fake.store import (
    OS_NAMES,
    PRODUCTS,
    AutomateStore,
)


@dataclass
class FleetSeed:
    client_ids: list[int] = field(default_factory=list)
    location_ids: list[int] = field(default_factory=list)
    computer_ids: list[int] = field(default_factory=list)


class AutomateSeeding(AutomateStore):
    """A seeded fleet, built through the same helpers tests use."""

    def seed_fleet(
        self, clients: int = 40, computers: int = 2500, *, locations_per_client: int = 2, seed: int = 7
    ) -> FleetSeed:
        """A deterministic fleet: computers spread evenly over clients, mostly healthy, some without
        AV, with old definitions, or offline for days."""
        rng = random.Random(seed)  # noqa: S311 - reproducible test data
        out = FleetSeed()
        by_client: list[list[int]] = []
        for c in range(clients):
            client = self.add_client(f"Client {c + 1:03d} Ltd")
            out.client_ids.append(client.id)
            names = ["Main Office", "Branch", "Warehouse", "Remote"]
            locs = [
                self.add_location(client.id, names[i % len(names)]).id for i in range(locations_per_client)
            ]
            out.location_ids.extend(locs)
            by_client.append(locs)
        for n in range(computers):
            locs = by_client[n % clients]
            roll = rng.random()
            product = None if roll < 0.06 else rng.choice(PRODUCTS)[1]
            age = timedelta(days=rng.randint(5, 30)) if roll > 0.9 else timedelta(hours=rng.randint(1, 30))
            online = rng.random() > 0.08
            contact = (
                self.now - timedelta(minutes=rng.randint(0, 15))
                if online
                else self.now - timedelta(days=rng.randint(1, 20), minutes=rng.randint(0, 600))
            )
            kind, os_name = OS_NAMES[0] if rng.random() < 0.5 else rng.choice(OS_NAMES)
            computer = self.add_computer(
                rng.choice(locs),
                f"C{(n % clients) + 1:03d}-{'SRV' if kind == 'Server' else 'WS'}{n + 1:05d}",
                product=product,
                definitions_age=age,
                online=online,
                last_contact=contact,
                type_=kind,
                os=os_name,
            )
            out.computer_ids.append(computer.id)
        return out
