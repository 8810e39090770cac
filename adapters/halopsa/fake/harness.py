"""The HaloPSA harness: a seeded `HaloFake` seen through `adapters.testing.harness`."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from adapters.base import PsaAdapter
from adapters.halopsa import SPEC
from adapters.halopsa.fake.app import HaloFake
from adapters.halopsa.fake.seed import DemoSeed
from adapters.testing.harness import (
    CLIENT_NAMES,
    CONFIGURATION_FIELDS,
    BillingIds,
    BillingLineSeen,
    ConnectionBody,
    FakeWorld,
    PsaOperation,
    TicketIds,
    TicketSeen,
    device_name,
    host_of,
    psa_adapter,
)

INSTANCE = "https://msp.halopsa.com"
ROUTES: dict[PsaOperation, tuple[str, str]] = {
    PsaOperation.LIST_COMPANIES: ("GET", "/Client"),
    PsaOperation.CREATE_TICKET: ("POST", "/Tickets"),
    PsaOperation.ADD_NOTE: ("POST", "/Actions"),
    PsaOperation.CREATE_CONFIGURATION: ("POST", "/Asset"),
    PsaOperation.UPDATE_CONFIGURATION: ("POST", "/Asset"),
    PsaOperation.CREATE_BILLING_LINE: ("POST", "/RecurringInvoice"),
}
"""Halo writes are POSTs of arrays to the collection (an element with an id updates), so creating and
updating an asset share one route."""
PRODUCT = "EDR-SEAT"


@dataclass
class HaloWorld(FakeWorld[HaloFake]):
    seed: DemoSeed = field(default_factory=DemoSeed)
    companies: dict[str, str] = field(default_factory=dict)
    devices: dict[str, list[str]] = field(default_factory=dict)
    configuration_fields: tuple[str, ...] = ()

    @property
    def ticket_ids(self) -> TicketIds:
        return TicketIds(
            board_id=str(self.seed.team_ids["Security Operations"]),
            status_new_id=str(self.seed.new_status_id),
            status_closed_id=str(self.seed.closed_status_id),
            priority_id=str(self.seed.priority_ids["High"]),
            type_id=str(self.seed.type_ids["Security Alert"]),
        )

    @property
    def billing_ids(self) -> BillingIds:
        return BillingIds(agreement_type="Contract", product_id=str(self.seed.item_ids[PRODUCT]))

    @property
    def configuration_type_id(self) -> str | None:
        return str(self.seed.asset_type_id)

    def adapter(
        self,
        *,
        sleep: Callable[[float], Awaitable[None]] | None = None,
        credentials: Mapping[str, Any] | None = None,
        options: Mapping[str, Any] | None = None,
    ) -> PsaAdapter:
        return psa_adapter(self.build(sleep=sleep, credentials=credentials, options=options))

    def wrong_credentials(self) -> dict[str, Any]:
        return {**self.connection.credentials, "client_secret": "not-the-right-one"}

    def agreement_id(self, company_id: str) -> str:
        return str(self.seed.contract_ids[int(company_id)])

    def device_names(self, company_id: str) -> list[str]:
        return list(self.devices.get(company_id, []))

    def add_companies(self, count: int, *, active: bool = True) -> list[str]:
        start = len(self.fake.clients) + 1
        return [
            str(self.fake.add_client(f"Company {n}", inactive=not active)["id"])
            for n in range(start, start + count)
        ]

    def tickets(self, company_id: str) -> list[TicketSeen]:
        return [
            TicketSeen(
                id=str(t["id"]),
                summary=t["summary"],
                closed=t["status_id"] == self.seed.closed_status_id,
                notes=tuple(str(a.get("note", "")) for a in self.fake.actions_for(t["id"])),
                description=str(t.get("details") or ""),
            )
            for t in self.fake.tickets_for(int(company_id))
        ]

    def human_note(self, ticket_id: str, text: str) -> None:
        self.fake.agent_action(int(ticket_id), text)

    def human_time_entry(self, ticket_id: str) -> None:
        self.fake.agent_action(int(ticket_id), "", timetaken=0.5)

    def human_close(self, ticket_id: str) -> None:
        self.fake.agent_action(int(ticket_id), "Fixed on site", new_status=self.seed.closed_status_id)

    def human_reassign(self, ticket_id: str) -> None:
        self.fake.agent_assign(int(ticket_id))

    def delete_ticket(self, ticket_id: str) -> None:
        self.fake.delete_ticket(int(ticket_id))

    def ticket_configurations(self, ticket_id: str) -> list[str]:
        ticket = self.fake.tickets.get(int(ticket_id))
        return [str(a["id"]) for a in (ticket or {}).get("assets") or []]

    def delete_configuration(self, configuration_id: str) -> None:
        del self.fake.assets[int(configuration_id)]

    def configurations(self, company_id: str, device: str) -> list[str]:
        return [str(a) for a in self.fake.assets_for(int(company_id)) if a.get("inventory_number") == device]

    def billing_lines(self, company_id: str) -> list[BillingLineSeen]:
        invoice = self.fake.recurring_invoices[self.seed.recurring_invoice_ids[int(company_id)]]
        return [
            BillingLineSeen(id=str(line["id"]), quantity=Decimal(str(line["qty_order"])))
            for line in invoice["lines"]
            if line.get("_itemid") == self.seed.item_ids[PRODUCT]
        ]

    def human_set_billing_quantity(self, company_id: str, line_id: str, quantity: int) -> None:
        invoice = self.fake.recurring_invoices[self.seed.recurring_invoice_ids[int(company_id)]]
        line = next(x for x in invoice["lines"] if str(x["id"]) == line_id)
        line["qty_order"] = float(quantity)

    def human_billing_line(self, company_id: str, quantity: int) -> str:
        invoice_id = self.seed.recurring_invoice_ids[int(company_id)]
        line = self.fake.add_invoice_line(invoice_id, self.seed.item_ids[PRODUCT], float(quantity), 6.0)
        return str(line["id"])

    def calls(self, operation: PsaOperation) -> int:
        return self.fake.call_count(*ROUTES[operation])

    def reset_calls(self) -> None:
        self.fake.reset_calls()

    def fail_next(
        self, operation: PsaOperation, status: int = 500, *, times: int | None = 1, after_apply: bool = False
    ) -> None:
        method, path = ROUTES[operation]
        self.fake.fail_next(times, status, method=method, path=path, after_apply=after_apply)

    def time_out_next(self, operation: PsaOperation, *, after_apply: bool = True) -> None:
        method, path = ROUTES[operation]
        self.fake.timeout_next(method=method, path=path, after_apply=after_apply)

    def rate_limit(self, operation: PsaOperation, *, times: int | None = 1, retry_after: float = 1.0) -> None:
        method, path = ROUTES[operation]
        self.fake.fail_next(times, 429, method=method, path=path, retry_after=retry_after)

    def clear_faults(self) -> None:
        self.fake.clear_faults()

    def set_latency(self, seconds: float) -> None:
        self.fake.set_latency(seconds)

    def request_count(self, method: str | None = None) -> int:
        return self.fake.call_count(method)


class HaloHarness:
    """One Halo instance whose auth server and API share the base URL's host."""

    spec = SPEC
    in_demo = False

    def start(
        self,
        *,
        companies: Sequence[str] = CLIENT_NAMES,
        devices_per_company: int = 20,
        page_size: int | None = None,
        base_url: str | None = None,
        configuration_fields: Sequence[str] = CONFIGURATION_FIELDS,
    ) -> HaloWorld:
        fake = HaloFake()
        seed = fake.seed_demo(clients=len(companies))
        names: dict[str, str] = {}
        devices: dict[str, list[str]] = {}
        for client_id, name in zip(seed.client_ids, companies, strict=True):
            fake.clients[client_id]["name"] = name
            names[str(client_id)] = name
            devices[str(client_id)] = [device_name(name, n) for n in range(devices_per_company)]
            for device in devices[str(client_id)]:
                fake.add_asset(client_id, device, assettype_id=seed.asset_type_id)
        url = base_url or INSTANCE
        connection = ConnectionBody(
            kind=SPEC.kind,
            name=SPEC.title,
            base_url=url,
            credentials=fake.credentials(),
            options={"page_size": page_size} if page_size else {},
        )
        return HaloWorld(
            spec=SPEC,
            fake=fake,
            connection=connection,
            hosts=(host_of(url),),
            page_size=page_size,
            seed=seed,
            companies=names,
            devices=devices,
            configuration_fields=tuple(configuration_fields),
        )
