"""`seed_fleet`: a deterministic N-central fleet for tests and benchmarks."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import timedelta

from adapters.ncentral.fake.store import (
    AV_PRODUCTS,
    CLASSES,
    NcentralStore,
)


@dataclass
class FleetSeed:
    customer_ids: list[int] = field(default_factory=list)
    site_ids: list[int] = field(default_factory=list)
    device_ids: list[int] = field(default_factory=list)


class NcentralSeeding(NcentralStore):
    """A seeded fleet, built through the same helpers tests use."""

    def seed_fleet(
        self, customers: int = 40, devices: int = 2500, *, sites_per_customer: int = 1, seed: int = 7
    ) -> FleetSeed:
        """A deterministic fleet: devices spread evenly over customers, mostly healthy, some without
        an AV service, with protection failing, a detected threat, or an agent offline for days."""
        rng = random.Random(seed)  # noqa: S311 - reproducible test data
        out = FleetSeed()
        by_customer: list[tuple[int, list[int]]] = []
        for c in range(customers):
            customer = self.add_customer(f"Customer {c + 1:03d} Ltd")
            out.customer_ids.append(customer.id)
            names = ["Main Office", "Branch", "Warehouse", "Remote"]
            sites = [self.add_site(customer.id, names[i % len(names)]).id for i in range(sites_per_customer)]
            out.site_ids.extend(sites)
            by_customer.append((customer.id, sites))
        for n in range(devices):
            customer_id, sites = by_customer[n % customers]
            roll = rng.random()
            product = None if roll < 0.06 else rng.choice(AV_PRODUCTS)
            protection = "Failed" if 0.06 <= roll < 0.10 else "Normal"
            threats = "Failed" if 0.10 <= roll < 0.12 else ("Normal" if product == AV_PRODUCTS[0] else None)
            online = rng.random() > 0.08
            checkin = (
                self.now - timedelta(minutes=rng.randint(0, 15))
                if online
                else self.now - timedelta(days=rng.randint(1, 20), minutes=rng.randint(0, 600))
            )
            device_class, os_name, _ = CLASSES[0] if rng.random() < 0.5 else rng.choice(CLASSES)
            prefix = "SRV" if device_class.startswith("Servers") else "WS"
            device = self.add_device(
                customer_id,
                f"C{(n % customers) + 1:03d}-{prefix}{n + 1:05d}",
                site_id=rng.choice(sites) if sites else None,
                product=product,
                protection=protection,
                threats=threats,
                online=online,
                last_checkin=checkin,
                device_class=device_class,
                os=os_name,
            )
            out.device_ids.append(device.id)
        return out
