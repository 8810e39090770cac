"""`seed_demo`: a small, plausible Manage tenant for tests, benchmarks and `connector demo`."""

from __future__ import annotations

from dataclasses import dataclass, field

from adapters.connectwise_manage.fake.writes import ManageWrites


@dataclass
class DemoSeed:
    company_ids: list[int] = field(default_factory=list)
    agreement_ids: dict[int, int] = field(default_factory=dict)
    board_id: int = 0
    new_status_id: int = 0
    closed_status_id: int = 0
    priority_ids: dict[str, int] = field(default_factory=dict)
    type_ids: dict[str, int] = field(default_factory=dict)
    configuration_type_id: int = 0
    product_identifiers: list[str] = field(default_factory=list)


class ManageSeeding(ManageWrites):
    """The demo tenant, built through the same helpers tests use."""

    def seed_demo(self, *, companies: int = 12, devices_per_company: int = 0) -> DemoSeed:
        """A small, plausible tenant: companies with a managed-services agreement each, a service
        board with New/In Progress/Closed, priorities, ticket types, a configuration type and
        products for per-seat billing."""
        seed = DemoSeed()
        names = [
            "Acme Dental",
            "Blue Harbor Logistics",
            "Cedar Law Group",
            "Delta Machining",
            "Evergreen Clinic",
            "Fairview Schools",
            "Granite Accounting",
            "Harbor Marine",
            "Iris Architects",
            "Juniper Foods",
            "Keystone Realty",
            "Lakeside Vets",
        ]
        for n in range(companies):
            name = names[n] if n < len(names) else f"Client {n + 1}"
            company = self.add_company(name)
            seed.company_ids.append(company["id"])
            seed.agreement_ids[company["id"]] = self.add_agreement(company["id"], "Managed Services")["id"]
        board = self.add_board(
            "Security Alerts",
            statuses=(("New", False), ("In Progress", False), ("Waiting Customer", False), ("Closed", True)),
            types=("Security Alert", "Maintenance"),
        )
        seed.board_id = board["id"]
        board_statuses = [self.statuses.rows[i] for i in self.statuses.by_parent[board["id"]]]
        seed.new_status_id = board_statuses[0]["id"]
        seed.closed_status_id = next(s["id"] for s in board_statuses if s["closedStatus"])
        for name in ("Priority 1 - Critical", "Priority 2 - High", "Priority 3 - Normal", "Priority 4 - Low"):
            seed.priority_ids[name] = self.add_priority(name, default=name.startswith("Priority 3"))["id"]
        seed.type_ids = {self.types.rows[i]["name"]: i for i in self.types.by_parent[board["id"]]}
        seed.configuration_type_id = self.add_configuration_type("Managed Workstation")["id"]
        for identifier, price, cost in (("EDR-SEAT", 6.0, 2.5), ("AV-SEAT", 3.0, 1.0)):
            self.add_product(identifier, f"{identifier} per endpoint", price=price, cost=cost)
            seed.product_identifiers.append(identifier)
        for company_id in seed.company_ids:
            for d in range(devices_per_company):
                self.add_configuration(
                    company_id,
                    f"WS-{company_id:03d}-{d + 1:03d}",
                    type_id=seed.configuration_type_id,
                    serial_number=f"SN{company_id:04d}{d + 1:04d}",
                )
        return seed
