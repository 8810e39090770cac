"""`seed_world`: virtual servers of healthy hosts, each with a licence key for them."""

from __future__ import annotations

from collections.abc import Sequence

from adapters.kaspersky_security_center.fake.app import KscFake
from adapters.kaspersky_security_center.fake.store import PRODUCT, FakeHost
from adapters.testing.harness import device_name


def seed_world(fake: KscFake, customers: Sequence[str], hosts_per_customer: int) -> dict[str, list[FakeHost]]:
    """One virtual server per customer name, holding `hosts_per_customer` hosts named by
    `device_name` (protected, bases fresh, Network Agent alive) and one key of `PRODUCT` licensed
    for them; virtual server UID → its hosts."""
    seeded: dict[str, list[FakeHost]] = {}
    for name in customers:
        server = fake.add_vserver(name)
        seeded[server.uid] = [
            fake.add_host(server.uid, device_name(name, n)) for n in range(hosts_per_customer)
        ]
        fake.add_key(server.uid, PRODUCT, lic_count=max(hosts_per_customer, 1))
    return seeded
