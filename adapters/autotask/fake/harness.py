"""The Autotask harness: a seeded `AutotaskFake` seen through `adapters.testing.harness`."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from adapters.autotask import SPEC
from adapters.autotask.fake.app import AutotaskFake
from adapters.autotask.fake.seed import DemoSeed
from adapters.base import PsaAdapter
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

DISCOVERY = "https://webservices.autotask.net/ATServicesRest"
ZONE = "https://webservices14.autotask.net/ATServicesRest/"
ROUTES: dict[PsaOperation, tuple[str, str]] = {
    PsaOperation.LIST_COMPANIES: ("POST", "/Companies/query"),
    PsaOperation.CREATE_TICKET: ("POST", "/Tickets"),
    PsaOperation.ADD_NOTE: ("POST", "/Tickets/{id}/Notes"),
    PsaOperation.CREATE_CONFIGURATION: ("POST", "/ConfigurationItems"),
    PsaOperation.UPDATE_CONFIGURATION: ("PATCH", "/ConfigurationItems"),
    PsaOperation.CREATE_BILLING_LINE: ("POST", "/ContractServiceAdjustments"),
}
"""Seats are contract-service units changed by adjustments (deltas): the billed "line" is the
contract service, and the write that bills is the adjustment."""


@dataclass
class AutotaskWorld(FakeWorld[AutotaskFake]):
    seed: DemoSeed = field(default_factory=DemoSeed)
    companies: dict[str, str] = field(default_factory=dict)
    devices: dict[str, list[str]] = field(default_factory=dict)
    configuration_fields: tuple[str, ...] = ()

    @property
    def ticket_ids(self) -> TicketIds:
        return TicketIds(
            board_id=str(self.seed.queue_ids["Security Operations"]),
            status_new_id=str(self.seed.new_status_id),
            status_closed_id=str(self.seed.complete_status_id),
            priority_id=str(self.seed.priority_ids["High"]),
            type_id=str(self.seed.issue_type_ids["Security"]),
        )

    @property
    def billing_ids(self) -> BillingIds:
        return BillingIds(
            agreement_type="Recurring Service",
            product_id=str(self.seed.service_ids["EDR"]),
            one_line_per_product=True,
        )

    @property
    def configuration_type_id(self) -> str | None:
        return str(self.seed.configuration_type_id)

    def adapter(
        self,
        *,
        sleep: Callable[[float], Awaitable[None]] | None = None,
        credentials: Mapping[str, Any] | None = None,
        options: Mapping[str, Any] | None = None,
    ) -> PsaAdapter:
        return psa_adapter(self.build(sleep=sleep, credentials=credentials, options=options))

    def wrong_credentials(self) -> dict[str, Any]:
        return {**self.connection.credentials, "secret": "not-the-right-one"}

    def agreement_id(self, company_id: str) -> str:
        return str(self.seed.contract_ids[int(company_id)])

    def device_names(self, company_id: str) -> list[str]:
        return list(self.devices.get(company_id, []))

    def add_companies(self, count: int, *, active: bool = True) -> list[str]:
        start = len(self.fake.data["Companies"]) + 1
        return [
            str(self.fake.add_company(f"Company {n}", number=f"X{n:04d}", active=active)["id"])
            for n in range(start, start + count)
        ]

    def tickets(self, company_id: str) -> list[TicketSeen]:
        return [
            TicketSeen(
                id=str(t["id"]),
                summary=t["title"],
                closed=t["status"] == self.seed.complete_status_id,
                notes=tuple(str(n.get("description", "")) for n in self.fake.notes_for(t["id"])),
                description=str(t.get("description") or ""),
            )
            for t in self.fake.tickets_for(int(company_id))
        ]

    def human_note(self, ticket_id: str, text: str) -> None:
        self.fake.resource_note(int(ticket_id), text)

    def human_time_entry(self, ticket_id: str) -> None:
        self.fake.resource_time_entry(int(ticket_id), 0.5)

    def human_close(self, ticket_id: str) -> None:
        self.fake.resource_update(int(ticket_id), complete=True)

    def human_reassign(self, ticket_id: str) -> None:
        self.fake.resource_update(int(ticket_id), assign=True)

    def delete_ticket(self, ticket_id: str) -> None:
        self.fake.delete_ticket(int(ticket_id))

    def ticket_configurations(self, ticket_id: str) -> list[str]:
        ticket = self.fake.data["Tickets"].get(int(ticket_id))
        item = ticket.get("configurationItemID") if ticket else None
        return [] if item is None else [str(item)]

    def delete_configuration(self, configuration_id: str) -> None:
        del self.fake.data["ConfigurationItems"][int(configuration_id)]

    def configurations(self, company_id: str, device: str) -> list[str]:
        return [
            str(c)
            for c in self.fake.data["ConfigurationItems"].values()
            if c["companyID"] == int(company_id) and c["referenceTitle"] == device
        ]

    def billing_lines(self, company_id: str) -> list[BillingLineSeen]:
        contract = self.seed.contract_ids[int(company_id)]
        service = self.seed.service_ids["EDR"]
        return [
            BillingLineSeen(id=str(s["id"]), quantity=Decimal(self.fake.current_units(s["id"])))
            for s in self.fake.data["ContractServices"].values()
            if s["contractID"] == contract and s["serviceID"] == service
        ]

    def human_set_billing_quantity(self, company_id: str, line_id: str, quantity: int) -> None:
        service = self.fake.data["ContractServices"][int(line_id)]
        self._adjust(service, quantity)

    def human_billing_line(self, company_id: str, quantity: int) -> str:
        contract = self.seed.contract_ids[int(company_id)]
        service = next(
            s
            for s in self.fake.data["ContractServices"].values()
            if s["contractID"] == contract and s["serviceID"] == self.seed.service_ids["EDR"]
        )
        self._adjust(service, quantity)
        return str(service["id"])

    def _adjust(self, service: dict[str, Any], quantity: int) -> None:
        """An adjustment posted by another resource, through the fake's own write path."""
        self.fake._post_adjustment(
            {
                "contractID": service["contractID"],
                "serviceID": service["serviceID"],
                "contractServiceID": service["id"],
                "effectiveDate": self.fake.now().strftime("%Y-%m-%dT00:00:00"),
                "unitChange": quantity - self.fake.current_units(service["id"]),
            }
        )

    def calls(self, operation: PsaOperation) -> int:
        method, path = ROUTES[operation]
        pages = self.fake.call_count(method, path + "/next") if path.endswith("/query") else 0
        return self.fake.call_count(method, path) + pages

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


class AutotaskHarness:
    """Autotask's discovery host by default, with the API in zone 14; any other base URL serves the
    zone itself. The EDR contract service starts at 0 seats, so billing adjusts it."""

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
    ) -> AutotaskWorld:
        url = base_url or DISCOVERY
        fake = AutotaskFake(zone_url=ZONE if base_url is None else url)
        seed = fake.seed_demo(companies=len(companies), configuration_items_per_company=0, seats=0)
        for udf in configuration_fields:  # the MSP creates its user-defined fields once in Autotask
            if udf not in fake.udfs["ConfigurationItems"]:
                fake.add_udf("ConfigurationItems", udf)
        names: dict[str, str] = {}
        devices: dict[str, list[str]] = {}
        for company_id, name in zip(seed.company_ids, companies, strict=True):
            fake.data["Companies"][company_id]["companyName"] = name
            names[str(company_id)] = name
            devices[str(company_id)] = [device_name(name, n) for n in range(devices_per_company)]
            for device in devices[str(company_id)]:
                fake.add_configuration_item(company_id, device, product_id=seed.product_id)
        options: dict[str, Any] = {"configuration_product_id": seed.product_id}
        if page_size:
            options["page_size"] = page_size
        connection = ConnectionBody(
            kind=SPEC.kind, name=SPEC.title, base_url=url, credentials=fake.credentials(), options=options
        )
        hosts = (host_of(url), host_of(fake.zone_url)) if base_url is None else (host_of(url),)
        return AutotaskWorld(
            spec=SPEC,
            fake=fake,
            connection=connection,
            hosts=hosts,
            page_size=page_size,
            seed=seed,
            companies=names,
            devices=devices,
            configuration_fields=tuple(configuration_fields),
        )
