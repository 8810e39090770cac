"""`seed_demo`: a deterministic Halo instance for tests, benchmarks and demos."""

from __future__ import annotations

from dataclasses import dataclass, field

from adapters.halopsa.fake.writes import HaloWrites


@dataclass
class DemoSeed:
    client_ids: list[int] = field(default_factory=list)
    site_ids: dict[int, int] = field(default_factory=dict)
    contract_ids: dict[int, int] = field(default_factory=dict)
    recurring_invoice_ids: dict[int, int] = field(default_factory=dict)
    team_ids: dict[str, int] = field(default_factory=dict)
    status_ids: dict[str, int] = field(default_factory=dict)
    type_ids: dict[str, int] = field(default_factory=dict)
    priority_ids: dict[str, int] = field(default_factory=dict)
    asset_type_id: int = 0
    item_ids: dict[str, int] = field(default_factory=dict)
    new_status_id: int = 1
    closed_status_id: int = 9


class HaloSeeding(HaloWrites):
    """The demo instance, built through the same helpers tests use."""

    def seed_demo(self, *, clients: int = 12, devices_per_client: int = 0) -> DemoSeed:
        """A deterministic instance: lookups, `clients` clients each with a site, a contract with a
        recurring invoice, and optionally `devices_per_client` assets."""
        seed = DemoSeed()
        for sid, name in ((1, "New"), (2, "In Progress"), (3, "Waiting on Customer"), (9, "Closed")):
            seed.status_ids[name] = self.add_status(sid, name)["id"]
        for tid, name in ((1, "Incident"), (3, "Security Alert"), (4, "Service Request")):
            seed.type_ids[name] = self.add_ticket_type(tid, name)["id"]
        for pid, name in ((1, "Critical"), (2, "High"), (3, "Medium"), (4, "Low")):
            seed.priority_ids[name] = self.add_priority(1, pid, name)["priorityid"]
        for tid, name in ((1, "Service Desk"), (2, "Security Operations")):
            seed.team_ids[name] = self.add_team(tid, name)["id"]
        for oid, name in ((7, "Private Note"), (8, "Note"), (9, "Close")):
            self.add_outcome(oid, name)
        seed.asset_type_id = self.add_asset_type(1, "Workstation")["id"]
        self.add_asset_type(2, "Server")
        self.add_asset_field(151, "CFavProduct", "AV Product")
        self.add_asset_field(152, "CFavStatus", "AV Status")
        for code, name, price, cost in (
            ("EDR-SEAT", "Endpoint detection & response (per endpoint)", 6.0, 2.5),
            ("AV-SEAT", "Managed antivirus (per endpoint)", 3.0, 1.1),
            ("MS-GOLD", "Managed services - Gold", 825.0, 0.0),
        ):
            seed.item_ids[code] = self.add_item(name, code=code, price=price, cost=cost)["id"]
        for n in range(1, clients + 1):
            client = self.add_client(f"Client {n:03d} Ltd")
            cid = client["id"]
            seed.client_ids.append(cid)
            seed.site_ids[cid] = self.add_site(cid, "Head Office")["id"]
            contract = self.add_contract(cid, f"MSA-{n:03d}")
            seed.contract_ids[cid] = contract["id"]
            invoice = self.add_recurring_invoice(cid, contract["id"])
            seed.recurring_invoice_ids[cid] = invoice["id"]
            self.add_invoice_line(invoice["id"], seed.item_ids["MS-GOLD"], 1, 825.0)
            for d in range(1, devices_per_client + 1):
                self.add_asset(cid, f"C{n:03d}-WS{d:03d}", assettype_id=seed.asset_type_id)
        return seed
