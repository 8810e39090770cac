"""`seed_fleet`: a deterministic NinjaOne fleet for tests and benchmarks."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import timedelta

from adapters.ninjaone.fake.store import PRODUCTS, NinjaOneStore


@dataclass
class FleetSeed:
    organization_ids: list[int] = field(default_factory=list)
    device_ids: list[int] = field(default_factory=list)


class NinjaOneSeeding(NinjaOneStore):
    """A seeded fleet, built through the same helpers tests use."""

    def seed_fleet(self, organizations: int = 40, devices: int = 2500, *, seed: int = 7) -> FleetSeed:
        """Devices spread evenly over organizations, mostly healthy; some without a product, with
        protection off or old definitions, a second product, a threat, or offline for days."""
        rng = random.Random(seed)  # noqa: S311 - reproducible test data
        out = FleetSeed()
        for o in range(organizations):
            out.organization_ids.append(self.add_organization(f"Organization {o + 1:03d} Ltd").id)
        for n in range(devices):
            org = out.organization_ids[n % organizations]
            roll = rng.random()
            products = [] if roll < 0.04 else [rng.choice(PRODUCTS)]
            if 0.04 <= roll < 0.1:
                products.append(PRODUCTS[0])
            offline = rng.random() < 0.08
            contact = self.now - (
                timedelta(days=rng.randint(1, 20)) if offline else timedelta(minutes=rng.randint(0, 15))
            )
            server = rng.random() < 0.2
            device = self.add_device(
                org,
                f"O{(n % organizations) + 1:03d}-{'SRV' if server else 'WS'}{n + 1:05d}",
                products=products,
                offline=offline,
                last_contact=contact,
                node_class="WINDOWS_SERVER" if server else "WINDOWS_WORKSTATION",
            )
            if products and rng.random() < 0.05:
                self.set_product(device.id, products[0], state="OFF", at=self.now - timedelta(hours=2))
            if products and rng.random() < 0.05:
                self.set_product(
                    device.id, products[0], definitions="OUT_OF_DATE", at=self.now - timedelta(hours=3)
                )
            if rng.random() < 0.01:
                self.add_threat(device.id, at=self.now - timedelta(hours=1))
            out.device_ids.append(device.id)
        return out
