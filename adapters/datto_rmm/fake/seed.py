"""`seed_fleet`: a Datto account with sites of healthy devices, for tests, demos and benchmarks."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from adapters.datto_rmm.fake.store import PRODUCTS, DattoStore


@dataclass(frozen=True)
class FleetSeed:
    sites: dict[str, str]
    """Site uid → name, in seeding order."""
    devices: dict[str, tuple[str, str]]
    """Device uid → (site uid, hostname), in seeding order."""


class Seeding(DattoStore):
    def seed_fleet(
        self,
        sites: list[str],
        devices_per_site: int,
        *,
        name: Any = None,
        autotask_ids: dict[str, str] | None = None,
    ) -> FleetSeed:
        """Sites (`autotask_ids` links some to Autotask companies by site name) each holding
        `devices_per_site` online devices named by `name(site, n)`, antivirus running and current."""
        seeded_sites: dict[str, str] = {}
        seeded_devices: dict[str, tuple[str, str]] = {}
        for site_name in sites:
            site = self.add_site(site_name, autotask_company_id=(autotask_ids or {}).get(site_name))
            seeded_sites[site.uid] = site_name
            for n in range(devices_per_site):
                hostname = name(site_name, n) if name else f"{site_name[:4].upper()}-{n:02d}"
                device = self.add_device(site.uid, hostname, av_product=PRODUCTS[0])
                seeded_devices[device.uid] = (site.uid, hostname)
        return FleetSeed(seeded_sites, seeded_devices)
