"""Per-vendor drivers for the end-to-end matrix: how to stand up each vendor's stateful fake, what a
connection to it looks like, and how to read back what connector wrote there."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from tests.support.vendors import VendorRouter

CLIENT_NAMES = ("Acme Dental", "Blue Harbor Logistics", "Cedar Law Group")
CONFIGURATION_FIELDS = (
    "Security status",
    "AV product",
    "Real-time protection",
    "Definitions date",
    "Last scan",
    "Active threats",
)


@dataclass
class PsaDriver:
    """A seeded fake PSA: the companies for the three clients, the ticket rule and billing rule bodies
    that fit it, and readers for tickets, configurations and billing lines."""

    kind: str
    connection: dict[str, Any]
    company_ids: list[str]
    rule: dict[str, Any]
    billing: dict[str, Any]
    tickets: Callable[[str], list[dict[str, Any]]]
    """company id → [{"summary", "closed", "notes": [text]}]"""
    configuration_text: Callable[[str, str], str]
    """company id, device name → everything written on its configuration record, as text"""
    billed_quantity: Callable[[str], int | None]
    """company id → seats on the connector-managed billing line (None: no line)"""
    billing_lines: Callable[[str], int]
    """company id → how many connector-managed billing lines exist"""
    fake: Any = None


@dataclass
class RmmDriver:
    """A seeded fake RMM with three clients of 20 endpoints each."""

    kind: str
    connection: dict[str, Any]
    client_ids: list[str]
    endpoints: int
    trouble: Callable[[], tuple[str, str]]
    """puts one endpoint of the first client into trouble; returns (endpoint id, problem kind)"""
    reports_products: bool
    fake: Any = None
    extra: dict[str, Any] = field(default_factory=dict)


# -- PSAs -------------------------------------------------------------------------------------------


def manage(vendors: VendorRouter) -> PsaDriver:
    from adapters.connectwise_manage.fake import ManageFake

    fake = ManageFake(is_cloud=True)
    seed = fake.seed_demo(companies=3)
    for company_id, name in zip(seed.company_ids, CLIENT_NAMES, strict=True):
        fake.companies.rows[company_id]["name"] = name
        for n in range(20):
            fake.add_configuration(
                company_id, f"{name[:4].upper()}-{n:02d}", type_id=seed.configuration_type_id
            )
    vendors.add("na.myconnectwise.net", fake.transport())
    vendors.add("api-na.myconnectwise.net", fake.transport())

    def tickets(company_id: str) -> list[dict[str, Any]]:
        return [
            {
                "summary": t["summary"],
                "closed": t["status"]["id"] == seed.closed_status_id,
                "notes": [n["text"] for n in fake.notes_for(t["id"])],
            }
            for t in fake.tickets_for(int(company_id))
        ]

    def configuration_text(company_id: str, device: str) -> str:
        rows = [
            c
            for c in fake.configurations.all()
            if c["company"]["id"] == int(company_id) and c["name"] == device
        ]
        return str(rows)

    def lines(company_id: str) -> list[dict[str, Any]]:
        return fake.additions_for(seed.agreement_ids[int(company_id)])

    return PsaDriver(
        kind="connectwise_manage",
        connection={
            "name": "Manage",
            "kind": "connectwise_manage",
            "base_url": "https://na.myconnectwise.net",
            "credentials": fake.credentials(),
        },
        company_ids=[str(c) for c in seed.company_ids],
        rule={
            "board_id": str(seed.board_id),
            "priority_id": str(seed.priority_ids["Priority 2 - High"]),
            "status_new_id": str(seed.new_status_id),
            "status_closed_id": str(seed.closed_status_id),
        },
        billing={"agreement_type": "Managed Services", "psa_product_id": "EDR-SEAT"},
        tickets=tickets,
        configuration_text=configuration_text,
        billed_quantity=lambda c: int(lines(c)[0]["quantity"]) if lines(c) else None,
        billing_lines=lambda c: len(lines(c)),
        fake=fake,
    )


def halopsa(vendors: VendorRouter) -> PsaDriver:
    from adapters.halopsa.fake import HaloFake

    fake = HaloFake()
    seed = fake.seed_demo(clients=3)
    for client_id, name in zip(seed.client_ids, CLIENT_NAMES, strict=True):
        fake.clients[client_id]["name"] = name
        for n in range(20):
            fake.add_asset(client_id, f"{name[:4].upper()}-{n:02d}", assettype_id=seed.asset_type_id)
    vendors.add("msp.halopsa.com", fake.transport())

    def tickets(company_id: str) -> list[dict[str, Any]]:
        return [
            {
                "summary": t["summary"],
                "closed": t["status_id"] == seed.closed_status_id,
                "notes": [str(a.get("note", "")) for a in fake.actions_for(t["id"])],
            }
            for t in fake.tickets_for(int(company_id))
        ]

    def configuration_text(company_id: str, device: str) -> str:
        return str([a for a in fake.assets_for(int(company_id)) if a.get("inventory_number") == device])

    def lines(company_id: str) -> list[dict[str, Any]]:
        invoice = fake.recurring_invoices[seed.recurring_invoice_ids[int(company_id)]]
        return [line for line in invoice["lines"] if line.get("_itemid") == seed.item_ids["EDR-SEAT"]]

    return PsaDriver(
        kind="halopsa",
        connection={
            "name": "Halo",
            "kind": "halopsa",
            "base_url": "https://msp.halopsa.com",
            "credentials": fake.credentials(),
        },
        company_ids=[str(c) for c in seed.client_ids],
        rule={
            "board_id": str(seed.team_ids["Security Operations"]),
            "type_id": str(seed.type_ids["Security Alert"]),
            "priority_id": str(seed.priority_ids["High"]),
            "status_new_id": str(seed.new_status_id),
            "status_closed_id": str(seed.closed_status_id),
        },
        billing={"agreement_type": "Contract", "psa_product_id": str(seed.item_ids["EDR-SEAT"])},
        tickets=tickets,
        configuration_text=configuration_text,
        billed_quantity=lambda c: int(float(lines(c)[0]["qty_order"])) if lines(c) else None,
        billing_lines=lambda c: len(lines(c)),
        fake=fake,
    )


def autotask(vendors: VendorRouter) -> PsaDriver:
    from adapters.autotask.fake import AutotaskFake

    fake = AutotaskFake()
    seed = fake.seed_demo(companies=3, configuration_items_per_company=0, seats=0)
    for udf in CONFIGURATION_FIELDS:  # the MSP creates these user-defined fields once in Autotask
        fake.add_udf("ConfigurationItems", udf)
    for company_id, name in zip(seed.company_ids, CLIENT_NAMES, strict=True):
        fake.data["Companies"][company_id]["companyName"] = name
        for n in range(20):
            fake.add_configuration_item(company_id, f"{name[:4].upper()}-{n:02d}", product_id=seed.product_id)
    for host in ("webservices.autotask.net", "webservices14.autotask.net"):
        vendors.add(host, fake.transport())

    def tickets(company_id: str) -> list[dict[str, Any]]:
        return [
            {
                "summary": t["title"],
                "closed": t["status"] == seed.complete_status_id,
                "notes": [str(n.get("description", "")) for n in fake.notes_for(t["id"])],
            }
            for t in fake.tickets_for(int(company_id))
        ]

    def configuration_text(company_id: str, device: str) -> str:
        return str(
            [
                c
                for c in fake.data["ConfigurationItems"].values()
                if c["companyID"] == int(company_id) and c["referenceTitle"] == device
            ]
        )

    def quantity(company_id: str) -> int | None:
        return fake.current_units(seed.contract_service_ids[int(company_id)])

    return PsaDriver(
        kind="autotask",
        connection={
            "name": "Autotask",
            "kind": "autotask",
            "base_url": "https://webservices.autotask.net/ATServicesRest",
            "credentials": fake.credentials(),
        },
        company_ids=[str(c) for c in seed.company_ids],
        rule={
            "board_id": str(next(iter(seed.queue_ids.values()))),
            "priority_id": str(next(iter(seed.priority_ids.values()))),
            "type_id": str(next(iter(seed.issue_type_ids.values()))),
            "status_new_id": str(seed.new_status_id),
            "status_closed_id": str(seed.complete_status_id),
        },
        billing={"agreement_type": "Recurring Service", "psa_product_id": str(seed.service_ids["EDR"])},
        tickets=tickets,
        configuration_text=configuration_text,
        billed_quantity=quantity,
        billing_lines=lambda c: 1,
        fake=fake,
    )


PSAS: dict[str, Callable[[VendorRouter], PsaDriver]] = {
    "connectwise_manage": manage,
    "halopsa": halopsa,
    "autotask": autotask,
}


# -- RMMs -------------------------------------------------------------------------------------------

DEVICES_PER_CLIENT = 20


def _rmm(
    vendors: VendorRouter,
    *,
    kind: str,
    name: str,
    fake: Any,
    add_client: Callable[[str], tuple[int, Callable[[str], Any]]],
    trouble: Callable[[Any], str],
    reports_products: bool,
) -> RmmDriver:
    """Seeds the three clients with `DEVICES_PER_CLIENT` devices each through `add_client` (which
    returns the client id and a device adder) and wires the fake to `{kind}.example.com`."""
    client_ids, devices = [], []
    for client_name in CLIENT_NAMES:
        client_id, add_device = add_client(client_name)
        client_ids.append(str(client_id))
        devices += [add_device(f"{client_name[:4].upper()}-{n:02d}") for n in range(DEVICES_PER_CLIENT)]
    host = f"{kind.replace('_', '-')}.example.com"
    vendors.add(host, fake.transport())

    def put_in_trouble() -> tuple[str, str]:
        return str(devices[3].id), trouble(devices[3])

    return RmmDriver(
        kind=kind,
        connection={
            "name": name,
            "kind": kind,
            "base_url": f"https://{host}",
            "credentials": fake.credentials(),
        },
        client_ids=client_ids,
        endpoints=len(devices),
        trouble=put_in_trouble,
        reports_products=reports_products,
        fake=fake,
    )


def connectwise_automate(vendors: VendorRouter) -> RmmDriver:
    from adapters.connectwise_automate.fake import AutomateFake

    fake = AutomateFake(now=datetime.now(UTC))

    def add_client(name: str) -> tuple[int, Callable[[str], Any]]:
        location = fake.add_location(fake.add_client(name).id)
        return location.client_id, lambda device: fake.add_computer(location.id, device)

    def trouble(computer: Any) -> str:
        fake.set_av(computer.id, definitions_date=datetime.now(UTC) - timedelta(days=12))
        fake.touch(computer.id)
        return "definitions_outdated"

    return _rmm(
        vendors, kind="connectwise_automate", name="Automate", fake=fake, add_client=add_client,
        trouble=trouble, reports_products=True,
    )  # fmt: skip


def nsight(vendors: VendorRouter) -> RmmDriver:
    from adapters.nsight.fake import NsightFake

    fake = NsightFake(now=datetime.now(UTC))

    def add_client(name: str) -> tuple[int, Callable[[str], Any]]:
        client = fake.add_client(name)
        site = fake.add_site(client.id, "Head Office")
        return client.id, lambda device: fake.add_device(site.id, device)

    def trouble(device: Any) -> str:
        fake.set_av_state(device.id, threats=2)
        return "threat_detected"

    return _rmm(
        vendors, kind="nsight", name="N-sight", fake=fake, add_client=add_client, trouble=trouble,
        reports_products=False,
    )  # fmt: skip


def ncentral(vendors: VendorRouter) -> RmmDriver:
    from adapters.ncentral.fake import THREAT_SERVICE, NcentralFake

    fake = NcentralFake(now=datetime.now(UTC))

    def add_client(name: str) -> tuple[int, Callable[[str], Any]]:
        customer = fake.add_customer(name)
        site = fake.add_site(customer.id)
        return customer.id, lambda device: fake.add_device(customer.id, device, site_id=site.id)

    def trouble(device: Any) -> str:
        fake.set_service(device.id, THREAT_SERVICE, "Failed")
        fake.touch(device.id)
        return "threat_detected"

    return _rmm(
        vendors, kind="ncentral", name="N-central", fake=fake, add_client=add_client, trouble=trouble,
        reports_products=True,
    )  # fmt: skip


RMMS: dict[str, Callable[[VendorRouter], RmmDriver]] = {
    "connectwise_automate": connectwise_automate,
    "ncentral": ncentral,
    "nsight": nsight,
}
