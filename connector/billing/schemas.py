"""Request and response bodies of `/api/v1/billing`."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from connector.billing.domain import PERIOD_PATTERN


class PushRequest(BaseModel):
    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"period": "2026-01", "dry_run": True}]}
    )
    period: str = Field(pattern=PERIOD_PATTERN, description="YYYY-MM")
    # Strict: `"dry_run": "no"` or `0` must not turn a planned dry run into a real push.
    dry_run: bool = Field(default=False, strict=True)
    override: bool = Field(default=False, strict=True, description="push a closed period anyway")


Money = Annotated[str, Field(description="a decimal number as text, rounded to cents (e.g. `459.00`)")]
Price = Annotated[str, Field(description="a decimal number as text, as configured (up to 4 places)")]


class PushedOut(BaseModel):
    """What was last written to the PSA for the line."""

    period: str | None = Field(description="the period it was written for")
    quantity: int
    unit_price: Price
    unit_cost: Price
    line_id: str | None


class PreviewLineOut(BaseModel):
    company_id: str
    company_name: str | None
    product: str
    rule_id: str
    rmm_clients: list[str] = Field(description="the RMM clients whose seats the line counts")
    quantity: int
    unit_price: Price
    unit_cost: Price
    total: Money
    cost: Money
    margin: Money
    pushed: PushedOut | None
    action: Literal["create", "update", "unchanged"] = Field(description="what a push would do")
    rmm_seats: int | None = Field(
        default=None, description="seats the RMM counts (`installed` beside a console-counted rule)"
    )
    console_seats: int | None = Field(
        default=None, description="seats the security consoles count (what the vendor invoices)"
    )
    billed_quantity: str = Field(
        description="the quantity priced and written to the PSA, as text: `quantity`, or a prorated "
        "rule's seat-days / days of the period with 2 decimals (then `quantity` is it rounded up)"
    )
    counted_seats: int | None = Field(
        default=None, description="the seats counted before the rule's included seats and minimum"
    )
    device_category: Literal["server", "workstation", "other"] | None = Field(
        default=None, description="the device category the rule counts (None: all)"
    )
    included_seats: int = Field(default=0, description="seats the agreement's fixed fee includes")
    minimum_quantity: int = Field(default=0, description="the least quantity the line bills")
    billing_timing: Literal["current", "arrears", "prorated"] = Field(
        default="current",
        description="`current`: this period's count; `arrears`: the previous month's; `prorated`: "
        "seat-days / days of the period",
    )
    price_override: bool = Field(
        default=False, description="the unit price is the company's own override of the rule's price"
    )


class ProductTotalOut(BaseModel):
    product: str
    quantity: int
    total: Money
    cost: Money
    margin: Money


class ClientTotalOut(BaseModel):
    """One client's invoice: every product it is billed for this period, on its agreement."""

    company_id: str
    company_name: str | None
    products: list[str]
    agreement_ids: list[str] = Field(
        description="the agreements its lines were last written to (one, when they share the invoice)"
    )
    total: Money
    cost: Money
    margin: Money


class UnmappedClientOut(BaseModel):
    """An RMM client with seats of a billed product but no mapping to a company of the rule's PSA."""

    rmm_connection_id: str
    client_id: str
    seats: int
    product: str


class PreviewOut(BaseModel):
    period: str
    closed: bool
    lines: list[PreviewLineOut]
    products: list[ProductTotalOut]
    clients: list[ClientTotalOut] = Field(
        default_factory=list, description="per client, its products and totals (its invoice)"
    )
    total: Money
    cost: Money
    margin: Money
    unmapped_clients: list[UnmappedClientOut]


class PushLineOut(BaseModel):
    company_id: str
    product: str
    quantity: int
    action: Literal[
        "created", "updated", "unchanged", "error", "would_create", "would_update", "waiting", "dismissed"
    ]
    line_id: str | None
    error: str | None
    reason: str | None = Field(default=None, description="why the line waits or was not written")
    billed_quantity: str | None = Field(
        default=None,
        description="the quantity priced and written: `quantity`, or a prorated line's exact one",
    )


class PushOut(BaseModel):
    period: str
    dry_run: bool
    summary: dict[str, int] = Field(description="lines per action")
    lines: list[PushLineOut]


class ClosedPeriodOut(BaseModel):
    period: str
    closed: bool


class CauseOut(BaseModel):
    """Why the numbers differ, with the devices, clients or lines behind it."""

    code: Literal[
        "rmm_device_without_product",
        "console_agent_without_rmm_device",
        "unmapped_client",
        "agreement_line_missing",
        "psa_quantity_changed",
        "unlinked_agreement_line",
        "count_changed_since_push",
        "retired_client_billed",
        "uploaded_seats_without_rmm_device",
        "upload_customer_unmatched",
    ]
    count: int = Field(
        description="devices or clients; seats for the line causes (signed for a change) and for "
        "uploaded seats beyond the RMM's count"
    )
    ids: list[str] = Field(
        description="up to 50 endpoint, agent, client (`connection:client`) or line ids; usage "
        "upload ids, or the customers of uploaded reports that matched no PSA company"
    )
    total: int = Field(description="how many ids there are in all")


class ReconciliationRowOut(BaseModel):
    rule_id: str
    product: str
    company_id: str | None = Field(description="None for the rule's clients mapped to no company")
    company_name: str | None
    rmm_count: int = Field(description="seats the RMM counts, by the rule's scope and count method")
    console_count: int | None = Field(
        description="seats the security consoles count, or else an uploaded usage report; None without either"
    )
    console_source: Literal["console", "upload"] | None = Field(
        description="where console_count comes from: a mapped security console (it wins), an "
        "uploaded usage report, or none"
    )
    psa_quantity: int | None = Field(
        description="the PSA line's quantity as last read back from the PSA (else as connector last wrote it)"
    )
    billed_count: int = Field(description="the count the rule bills by")
    differences: dict[str, int | None] = Field(
        description="rmm_minus_psa, console_minus_psa, console_minus_rmm (None where a side is absent)"
    )
    causes: list[CauseOut]


class ReconciliationOut(BaseModel):
    period: str
    rows: list[ReconciliationRowOut]
    causes: dict[str, int] = Field(description="rows per cause code")


Status = Literal["auto_approved", "awaiting_review", "held", "approved", "adjusted", "dismissed"]


class DecisionOut(BaseModel):
    action: Literal["approve", "adjust", "dismiss"]
    quantity: int | None = Field(description="the quantity written instead (`adjust`)")
    reason: str | None
    decided_by: str = Field(description="the API key id (or `cli`) that decided")
    decided_at: datetime
    period: str = Field(description="the period it was made for (an earlier one when reused)")
    reused: bool = Field(description="made for an earlier period on the same difference")


class ProposalOut(BaseModel):
    rule_id: str
    company_id: str
    company_name: str | None
    product: str
    current_quantity: int | None = Field(
        description="what the line holds now: the PSA's quantity where it was changed there, else what "
        "connector last wrote; None for a new line"
    )
    proposed_quantity: int
    difference: int
    status: Status
    reason: str | None = Field(description="why it waits or is held (the guard, the tolerance)")
    write_quantity: int | None = Field(description="what a push writes; None while it waits or dismissed")
    decision: DecisionOut | None
    psa_quantity: int | None = Field(
        default=None, description="the quantity on the PSA's line when it was last read back"
    )
    psa_finding: Literal["edited_outside", "removed_outside", "unlinked", "unreadable"] | None = Field(
        default=None,
        description="how the PSA's line differs from what connector wrote: changed or removed there, a "
        "line of the product connector did not create (approving links it), or not readable",
    )


class ReadBackRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"period": "2026-01"}]})
    period: str = Field(pattern=PERIOD_PATTERN, description="YYYY-MM")


class ProposalsOut(BaseModel):
    period: str
    proposals: list[ProposalOut]
    summary: dict[str, int] = Field(description="proposals per status")


class DecisionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    rule_id: str = Field(min_length=1, max_length=32)
    company_id: str = Field(min_length=1, max_length=100)
    proposed_quantity: int = Field(ge=0, strict=True, description="the proposal decided on, as listed")
    action: Literal["approve", "adjust", "dismiss"]
    quantity: int | None = Field(
        default=None, ge=0, le=1_000_000, strict=True, validate_default=True, description="for `adjust`"
    )
    reason: str | None = Field(
        default=None, max_length=2000, validate_default=True, description="required for `adjust`"
    )

    @field_validator("quantity")
    @classmethod
    def _quantity_only_to_adjust(cls, value: int | None, info: ValidationInfo) -> int | None:
        adjusting = info.data.get("action") == "adjust"
        if adjusting and value is None:
            raise ValueError("an adjustment needs the quantity to write")
        if not adjusting and value is not None:
            raise ValueError("only an adjustment takes a quantity")
        return value

    @field_validator("reason")
    @classmethod
    def _adjustment_has_a_reason(cls, value: str | None, info: ValidationInfo) -> str | None:
        if info.data.get("action") == "adjust" and not (value or "").strip():
            raise ValueError("an adjustment needs a reason")
        return value.strip() if value else None


class DecisionsIn(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "period": "2026-01",
                    "decisions": [
                        {"rule_id": "…", "company_id": "19", "proposed_quantity": 40, "action": "approve"}
                    ],
                }
            ]
        },
    )
    period: str = Field(pattern=PERIOD_PATTERN, description="YYYY-MM")
    decisions: list[DecisionIn] = Field(min_length=1, max_length=1000)


class SnapshotLineOut(BaseModel):
    """A billed line of a closed period as frozen at the close."""

    id: str
    company_id: str
    company_name: str | None
    product: str
    rule_id: str
    source: str
    quantity: int
    billed_quantity: str = Field(
        description="the quantity priced: `quantity`, or a prorated line's exact one"
    )
    pushed_quantity: int | None
    unit_price: str
    total: str
    devices: int


class SnapshotDeviceOut(BaseModel):
    device_id: str
    hostname: str
    serial_number: str | None
    first_seen_at: datetime
    last_seen_at: datetime


class LineDevicesOut(BaseModel):
    period: str
    line: SnapshotLineOut
    devices: list[SnapshotDeviceOut]


class ProductChangeOut(BaseModel):
    product: str
    previous_count: int | None
    count: int | None
    added: list[SnapshotDeviceOut]
    removed: list[SnapshotDeviceOut]


class ChangesOut(BaseModel):
    period: str
    previous_period: str | None
    company_id: str
    products: list[ProductChangeOut]


CustomerKind = Literal["psa_company_id", "psa_company_name", "customer_name"]
Column = Annotated[str, Field(min_length=1, max_length=200)]


class UsageProfileIn(BaseModel):
    """How one vendor's monthly usage report (CSV) is read."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "name": "Vendor X monthly",
                    "psa_connection_id": "…",
                    "customer_column": "Customer",
                    "customer_kind": "customer_name",
                    "aliases": {"ACME Dental Ltd": "100"},
                    "product_column": "SKU",
                    "quantity_column": "Seats",
                    "delimiter": ";",
                    "header_row": 0,
                }
            ]
        },
    )
    name: str = Field(min_length=1, max_length=200)
    psa_connection_id: str = Field(min_length=1, max_length=32)
    customer_column: Column
    customer_kind: CustomerKind = Field(
        default="customer_name",
        description="psa_company_id: the column holds PSA company ids; psa_company_name: the PSA's own "
        "company names (exact); customer_name: the vendor's names, matched to PSA company names "
        "ignoring case and repeated spaces",
    )
    aliases: dict[
        Annotated[str, Field(min_length=1, max_length=300)],
        Annotated[str, Field(min_length=1, max_length=100)],
    ] = Field(
        default_factory=dict,
        description="customer (as the report names it) → PSA company id; wins over matching",
    )
    product_column: Column = Field(description="the SKU or product name, matched like billing rules")
    quantity_column: Column = Field(description="whole seats")
    delimiter: Literal[",", ";", "\t"] | None = Field(
        default=None, description="`,` `;` or a tab (`tab` is accepted); None: the one the header line uses"
    )
    header_row: int = Field(default=0, ge=0, le=1000, description="lines before the header line")

    @field_validator("delimiter", mode="before")
    @classmethod
    def _tab(cls, value: object) -> object:
        return "\t" if value == "tab" else value

    @field_validator("aliases")
    @classmethod
    def _alias_count(cls, value: dict[str, str]) -> dict[str, str]:
        if len(value) > 5000:
            raise ValueError("at most 5000 aliases")
        return value


class UsageProfileOut(UsageProfileIn):
    id: str
    created_at: datetime
    updated_at: datetime


class UsageRowOut(BaseModel):
    customer: str
    product: str
    quantity: int
    company_id: str | None
    company_name: str | None
    lines: list[int] = Field(description="the file's line numbers the seats add up from")
    reason: str | None = Field(default=None, description="why the customer matched no PSA company")


class RejectedRowOut(BaseModel):
    line: int = Field(description="the file's line number (1 = the first line)")
    column: str
    reason: str


class UsageUploadOut(BaseModel):
    id: str
    profile_id: str
    psa_connection_id: str
    period: str
    filename: str | None
    uploaded_at: datetime
    rows_read: int = Field(description="data rows read from the file (accepted and rejected)")
    rows_accepted: int
    replaced: bool = Field(
        default=False, description="it replaced an earlier upload of the period and profile"
    )
    accepted: list[UsageRowOut] = Field(description="customers matched to a PSA company, per product")
    unmatched: list[UsageRowOut] = Field(description="customers matched to no PSA company, per product")
    rejected: list[RejectedRowOut]
    warnings: list[str]
