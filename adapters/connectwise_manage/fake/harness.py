"""The ConnectWise Manage harness: a seeded `ManageFake` seen through `adapters.testing.harness`."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from adapters.base import PsaAdapter
from adapters.connectwise_manage import SPEC
from adapters.connectwise_manage.fake.app import ManageFake
from adapters.connectwise_manage.fake.seed import DemoSeed
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

CLOUD_SITE = "https://na.myconnectwise.net"
ROUTES: dict[PsaOperation, tuple[str, str]] = {
    PsaOperation.LIST_COMPANIES: ("GET", "/company/companies"),
    PsaOperation.CREATE_TICKET: ("POST", "/service/tickets"),
    PsaOperation.ADD_NOTE: ("POST", "/service/tickets/{parentId}/notes"),
    PsaOperation.CREATE_CONFIGURATION: ("POST", "/company/configurations"),
    PsaOperation.UPDATE_CONFIGURATION: ("PATCH", "/company/configurations/{id}"),
    PsaOperation.CREATE_BILLING_LINE: ("POST", "/finance/agreements/{parentId}/additions"),
}
PRODUCT = "EDR-SEAT"


@dataclass
class ManageWorld(FakeWorld[ManageFake]):
    seed: DemoSeed = field(default_factory=DemoSeed)
    companies: dict[str, str] = field(default_factory=dict)
    devices: dict[str, list[str]] = field(default_factory=dict)
    configuration_fields: tuple[str, ...] = ()

    @property
    def ticket_ids(self) -> TicketIds:
        return TicketIds(
            board_id=str(self.seed.board_id),
            status_new_id=str(self.seed.new_status_id),
            status_closed_id=str(self.seed.closed_status_id),
            priority_id=str(self.seed.priority_ids["Priority 2 - High"]),
            type_id=str(self.seed.type_ids["Security Alert"]),
        )

    @property
    def billing_ids(self) -> BillingIds:
        return BillingIds(agreement_type="Managed Services", product_id=PRODUCT)

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
        return {**self.connection.credentials, "private_key": "not-the-right-one"}

    def agreement_id(self, company_id: str) -> str:
        return str(self.seed.agreement_ids[int(company_id)])

    def device_names(self, company_id: str) -> list[str]:
        return list(self.devices.get(company_id, []))

    def add_companies(self, count: int, *, active: bool = True) -> list[str]:
        start = len(self.fake.companies) + 1
        return [
            str(self.fake.add_company(f"Company {n}", f"CO{n}", deletedFlag=not active)["id"])
            for n in range(start, start + count)
        ]

    def tickets(self, company_id: str) -> list[TicketSeen]:
        return [
            TicketSeen(
                id=str(t["id"]),
                summary=t["summary"],
                closed=bool(t["closedFlag"]) or t["status"]["id"] == self.seed.closed_status_id,
                notes=tuple(n["text"] for n in self.fake.notes_for(t["id"])),
                description=str(t.get("initialDescription") or ""),
            )
            for t in self.fake.tickets_for(int(company_id))
        ]

    def human_note(self, ticket_id: str, text: str) -> None:
        self.fake.member_note(int(ticket_id), text)

    def human_time_entry(self, ticket_id: str) -> None:
        self.fake.member_time_entry(int(ticket_id), 0.5)

    def human_close(self, ticket_id: str) -> None:
        self.fake.member_update(int(ticket_id), close=True)

    def human_reassign(self, ticket_id: str) -> None:
        self.fake.member_update(int(ticket_id), owner="akumar")

    def delete_ticket(self, ticket_id: str) -> None:
        self.fake.delete_ticket(int(ticket_id))

    def ticket_configurations(self, ticket_id: str) -> list[str]:
        return [str(c) for c in self.fake.ticket_configurations.get(int(ticket_id), [])]

    def delete_configuration(self, configuration_id: str) -> None:
        self.fake.configurations.remove(int(configuration_id))

    def configurations(self, company_id: str, device: str) -> list[str]:
        return [
            str(c)
            for c in self.fake.configurations
            if c["company"]["id"] == int(company_id) and c["name"] == device
        ]

    def billing_lines(self, company_id: str) -> list[BillingLineSeen]:
        return [
            BillingLineSeen(id=str(row["id"]), quantity=Decimal(str(row["quantity"])))
            for row in self.fake.additions_for(self.seed.agreement_ids[int(company_id)])
            if row["product"]["identifier"] == PRODUCT and not row.get("cancelledDate")
        ]

    def human_set_billing_quantity(self, company_id: str, line_id: str, quantity: int) -> None:
        agreement = self.seed.agreement_ids[int(company_id)]
        row = next(r for r in self.fake.additions_for(agreement) if str(r["id"]) == line_id)
        row["quantity"] = float(quantity)
        row["_info"] = {**row.get("_info", {}), "updatedBy": "akumar"}

    def human_billing_line(self, company_id: str, quantity: int) -> str:
        agreement = self.seed.agreement_ids[int(company_id)]
        row = self.fake.add_addition(
            agreement, PRODUCT, float(quantity), unit_price=6.0, description="EDR seats (entered by hand)"
        )
        return str(row["id"])

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


class ManageHarness:
    """Manage cloud (`na.myconnectwise.net`, codebase discovered, API on `api-na…`) by default;
    any other base URL is an on-premises site that keeps its host."""

    spec = SPEC
    in_demo = True

    def start(
        self,
        *,
        companies: Sequence[str] = CLIENT_NAMES,
        devices_per_company: int = 20,
        page_size: int | None = None,
        base_url: str | None = None,
        configuration_fields: Sequence[str] = CONFIGURATION_FIELDS,
    ) -> ManageWorld:
        cloud = base_url is None
        fake = ManageFake(is_cloud=cloud)
        seed = fake.seed_demo(companies=len(companies))
        names: dict[str, str] = {}
        devices: dict[str, list[str]] = {}
        for company_id, name in zip(seed.company_ids, companies, strict=True):
            fake.companies.rows[company_id]["name"] = name
            names[str(company_id)] = name
            devices[str(company_id)] = []
            for n in range(devices_per_company):
                device = device_name(name, n)
                fake.add_configuration(company_id, device, type_id=seed.configuration_type_id)
                devices[str(company_id)].append(device)
        url = base_url or CLOUD_SITE
        hosts = (host_of(url), "api-na.myconnectwise.net") if cloud else (host_of(url),)
        connection = ConnectionBody(
            kind=SPEC.kind,
            name=SPEC.title,
            base_url=url,
            credentials=fake.credentials(),
            options={"page_size": page_size} if page_size else {},
        )
        return ManageWorld(
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
