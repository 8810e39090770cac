"""Minimal adapters for exercising the configuration API without a vendor: an RMM and a PSA whose
`test_connection` calls `GET {base_url}/ping` with a bearer token (mocked with respx in tests)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime
from decimal import Decimal

from pydantic import BaseModel, ConfigDict, Field, SecretStr

from adapters.base import (
    ActionKind,
    ActionResult,
    AdapterSpec,
    AlertEvent,
    BillingLine,
    BillingLineRead,
    BillingLineResult,
    CatalogKind,
    ConfigurationUpdate,
    ConnectionContext,
    EndpointPage,
    PolledAlerts,
    PsaAgreement,
    PsaCompany,
    PsaOption,
    RmmClient,
    Role,
    TicketReadback,
    TicketRef,
    TicketSpec,
    WebhookRequest,
)
from adapters.http import VendorHttpClient


class DummyCredentials(BaseModel):
    model_config = ConfigDict(extra="forbid")
    username: str = Field(min_length=1)
    api_secret: SecretStr = Field(min_length=1)


class DummyOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    page_size: int = Field(default=100, ge=1, le=1000)


class _Base:
    def __init__(self, ctx: ConnectionContext) -> None:
        creds = ctx.credentials
        assert isinstance(creds, DummyCredentials)
        token = creds.api_secret.get_secret_value()
        self.http = VendorHttpClient(
            ctx.base_url,
            headers={"Authorization": f"Bearer {token}"},
            transport=ctx.transport_factory(ctx.base_url),
            sleep=ctx.sleep,
        )

    async def test_connection(self) -> None:
        await self.http.request("GET", "/ping")

    async def aclose(self) -> None:
        await self.http.aclose()


class DummyRmm(_Base):
    clients: list[RmmClient] = []

    async def list_clients(self) -> AsyncIterator[RmmClient]:
        for client in self.clients:
            yield client

    async def iter_endpoint_pages(self, changed_since: datetime | None) -> AsyncIterator[EndpointPage]:
        if False:
            yield EndpointPage(statuses=[])

    def verify_webhook(self, request: WebhookRequest, secret: str) -> bool | None:
        return None

    def parse_webhook(self, request: WebhookRequest) -> list[AlertEvent]:
        return []

    async def poll_alerts(self, since: datetime | None) -> PolledAlerts:
        return PolledAlerts(events=[])

    async def run_action(self, endpoint_id: str, action: ActionKind) -> ActionResult:
        return ActionResult(accepted=True)


DEFAULT_CATALOG: dict[CatalogKind, list[str]] = {
    CatalogKind.BOARDS: ["1", "2", "7"],
    CatalogKind.STATUSES: ["1", "2", "10", "20", "30"],
    CatalogKind.PRIORITIES: ["1", "2", "3", "4"],
    CatalogKind.TICKET_TYPES: ["1", "2", "3"],
    CatalogKind.AGREEMENT_TYPES: ["Managed Services", "Managed Security"],
    CatalogKind.PRODUCTS: ["EDR-SEAT", "KES-SEAT", "AV-SEAT"],
    CatalogKind.COMPANIES: [*(str(n) for n in range(1, 10)), *(str(n) for n in range(250, 310))],
}
"""What the dummy PSA holds unless a test says otherwise: the ids the API tests write rules with."""


class DummyPsa(_Base):
    companies: list[PsaCompany] = []

    async def list_companies(self) -> AsyncIterator[PsaCompany]:
        for company in self.companies:
            yield company

    async def list_agreements(self, company_id: str) -> list[PsaAgreement]:
        return []

    async def list_ticket_options(self) -> dict[str, list[PsaOption]]:
        return {}

    catalog: dict[CatalogKind, list[str]] = DEFAULT_CATALOG
    """The ids each look-up holds (tests set their own to check refusals)."""
    catalog_error: Exception | None = None
    """Raised by every look-up (a PSA that cannot be reached)."""
    catalog_reads: list[CatalogKind] = []

    async def list_catalog(self, kind: CatalogKind) -> list[PsaOption]:
        type(self).catalog_reads.append(kind)
        if self.catalog_error is not None:
            raise self.catalog_error
        ids = list(self.catalog.get(kind, []))
        if kind is CatalogKind.COMPANIES:
            ids += [c.id for c in self.companies]
        return [PsaOption(id=i, name=i) for i in ids]

    async def find_ticket(self, marker: str, company_id: str) -> TicketRef | None:
        return None

    async def create_ticket(self, spec: TicketSpec) -> TicketRef:
        return TicketRef(id="1")

    async def add_note(self, ticket_id: str, text: str) -> None:
        return None

    async def close_ticket(self, ticket_id: str, status_id: str | None, resolution: str) -> None:
        return None

    async def read_ticket(self, ticket_id: str) -> TicketReadback | None:
        return TicketReadback(id=ticket_id, closed=False)

    async def upsert_configuration(self, update: ConfigurationUpdate) -> str | None:
        return None

    async def read_billing_line(self, line: BillingLine) -> BillingLineRead | None:
        written = BILLED.get(line.marker)
        return None if written is None else BillingLineRead(line_id="1", quantity=written, marked=True)

    async def upsert_billing_line(self, line: BillingLine) -> BillingLineResult:
        BILLED[line.marker] = line.quantity
        return BillingLineResult(action="created", line_id="1")


BILLED: dict[str, Decimal] = {}
"""What the dummy PSA holds per billing-line marker (process-wide, like a real PSA)."""

DUMMY_RMM = AdapterSpec(
    kind="dummy_rmm",
    role=Role.RMM,
    title="Dummy RMM",
    credentials_model=DummyCredentials,
    options_model=DummyOptions,
    factory=DummyRmm,
    actions=frozenset(ActionKind),
)
DUMMY_PSA = AdapterSpec(
    kind="dummy_psa",
    role=Role.PSA,
    title="Dummy PSA",
    credentials_model=DummyCredentials,
    factory=DummyPsa,
)
