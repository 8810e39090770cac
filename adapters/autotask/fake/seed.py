"""`seed_demo`: a deterministic Autotask tenant for tests, benchmarks and demos."""

from __future__ import annotations

from dataclasses import dataclass, field

from adapters.autotask.fake.writes import AutotaskWrites


@dataclass
class DemoSeed:
    company_ids: list[int] = field(default_factory=list)
    contract_ids: dict[int, int] = field(default_factory=dict)
    contract_service_ids: dict[int, int] = field(default_factory=dict)
    service_ids: dict[str, int] = field(default_factory=dict)
    queue_ids: dict[str, int] = field(default_factory=dict)
    status_ids: dict[str, int] = field(default_factory=dict)
    priority_ids: dict[str, int] = field(default_factory=dict)
    issue_type_ids: dict[str, int] = field(default_factory=dict)
    configuration_item_ids: dict[int, list[int]] = field(default_factory=dict)
    new_status_id: int = 1
    complete_status_id: int = 5
    product_id: int = 0
    configuration_type_id: int = 1
    udf_names: list[str] = field(default_factory=list)
    seats: int = 0


class AutotaskSeeding(AutotaskWrites):
    """The demo tenant, built through the same helpers tests use."""

    def seed_demo(
        self, *, companies: int = 12, configuration_items_per_company: int = 0, seats: int = 5
    ) -> DemoSeed:
        """A deterministic tenant: companies (each with a recurring-service contract holding the
        seeded per-seat services), picklists, configuration-item UDFs."""
        seed = DemoSeed(seats=seats)
        for name in ("Antivirus Status", "Definitions Date", "Last Scan", "Threats"):
            self.add_udf("ConfigurationItems", name)
        seed.udf_names = sorted(self.udfs["ConfigurationItems"])
        edr = self.add_service("Managed EDR seat", unit_price=6.0, unit_cost=2.5)
        av = self.add_service("Managed antivirus seat", unit_price=3.0, unit_cost=1.0)
        seed.service_ids = {"EDR": edr["id"], "AV": av["id"]}
        seed.product_id = 29682900
        for n in range(1, companies + 1):
            company = self.add_company(f"Customer {n:03d}", number=f"C{n:04d}")
            cid = company["id"]
            seed.company_ids.append(cid)
            contract = self.add_contract(cid, f"Managed Services {n:03d}")
            seed.contract_ids[cid] = contract["id"]
            seed.contract_service_ids[cid] = self.add_contract_service(
                contract["id"], edr["id"], units=seats
            )["id"]
            seed.configuration_item_ids[cid] = [
                self.add_configuration_item(
                    cid, f"C{n:03d}-WS{m + 1:02d}", serial=f"SN{n:03d}{m + 1:03d}", product_id=seed.product_id
                )["id"]
                for m in range(configuration_items_per_company)
            ]
        pick = self.picklists["Tickets"]
        seed.queue_ids = {v["label"]: int(v["value"]) for v in pick["queueID"]}
        seed.status_ids = {v["label"]: int(v["value"]) for v in pick["status"]}
        seed.priority_ids = {v["label"]: int(v["value"]) for v in pick["priority"]}
        seed.issue_type_ids = {v["label"]: int(v["value"]) for v in pick["issueType"]}
        return seed
