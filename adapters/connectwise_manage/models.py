"""ConnectWise PSA (Manage) settings and wire models.

Field names and types follow the public OpenAPI description of the Manage REST API (`All.json`,
model 2025.x) as generated into the MIT-licensed repository `ai-connor/connectwise` (`model_ticket.go`,
`model_service_note.go`, `model_addition.go`, `model_company_configuration.go`,
`model_patch_operation.go`, `model_error_response_message.go`, `model_validation_error.go`,
`model_*_reference.go`, `model_board_status.go`, `model_priority.go`, `model_board_type.go`,
`model_agreement.go`, `model_company.go`, `model_info.go`). See also vendor-notes/psa.md §1.7.

What the adapter SENDS is strict (`extra="forbid"`): a misspelt field is a bug here, not a field
Manage silently drops. What it READS is lenient: the published nullability does not match live data
(vendor-notes §5.4), so every read field is optional and unknown fields are ignored.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PlainSerializer, SecretStr, field_validator

from adapters.base import OUTBOUND_HOST

# ---------------------------------------------------------------------------------------------
# Connection settings
# ---------------------------------------------------------------------------------------------


class ManageCredentials(BaseModel):
    """An API Member's keys (System → Members → API Members) plus the integration's clientId."""

    model_config = ConfigDict(extra="forbid")

    company_id: str = Field(min_length=1, max_length=100, description="Login company id, e.g. 'training'")
    public_key: str = Field(min_length=1, max_length=200)
    private_key: SecretStr = Field(min_length=1)
    client_id: SecretStr = Field(
        min_length=1, description="clientId GUID from developer.connectwise.com/ClientID (keep private)"
    )

    @field_validator("company_id", "public_key")
    @classmethod
    def _strip(cls, value: str) -> str:
        value = value.strip()
        if not value or any(c in value for c in "+:/ "):
            raise ValueError("must be non-empty and contain no '+', ':', '/' or spaces")
        return value


class ManageOptions(BaseModel):
    """Per-connection options. The connection's base URL is the site the engineer logs in to."""

    model_config = ConfigDict(extra="forbid")

    site: str | None = Field(
        default=None,
        description="Host of the Manage site (e.g. na.myconnectwise.net or psa.example.com); "
        "overrides the host of the connection's base URL when set.",
        json_schema_extra=OUTBOUND_HOST,
    )
    api_version: str = Field(
        default="2025.1",
        pattern=r"^\d{4}\.\d{1,2}$",
        description="Model version pinned in the Accept header (equals a PSA release).",
    )
    codebase: str | None = Field(
        default=None,
        pattern=r"^[A-Za-z0-9_.]+/?$",
        description="e.g. v2025_1/ or v4_6_release/; skips GET /login/companyinfo discovery when set.",
    )
    cloud: bool | None = Field(
        default=None,
        description="Force the cloud 'api-' host prefix on (True) or off (False); default: as discovered.",
    )
    marker_style: Literal["suffix", "prefix"] = Field(
        default="suffix", description="Where the [marker] goes in ticket summaries."
    )
    page_size: int = Field(default=1000, ge=1, le=1000)
    max_concurrency: int = Field(default=4, ge=1, le=16)
    max_requests_per_minute: int | None = Field(
        default=None,
        ge=1,
        le=100_000,
        description=(
            "Calls started per minute, shared by every process of the deployment; ConnectWise "
            "rate-limits integrations near 1,000 a minute. None: no limit beyond max_concurrency."
        ),
    )
    configuration_fields_target: Literal["notes", "custom_fields"] = Field(
        default="notes",
        description="Where ConfigurationUpdate.fields are written: a delimited block inside the "
        "configuration's `notes`, or configuration custom fields matched by caption.",
    )
    default_configuration_type_id: int | None = Field(default=None, ge=1)
    billing_product_key: Literal["identifier", "id"] = Field(
        default="identifier", description="How BillingLine.product_id names the catalog item."
    )
    bill_customer: Literal["Billable", "DoNotBill", "NoCharge"] = "Billable"

    @field_validator("site")
    @classmethod
    def _site_host(cls, value: str | None) -> str | None:
        if value is None:
            return None
        value = value.strip().removeprefix("https://").removeprefix("http://").strip("/")
        if not value or "/" in value or " " in value:
            raise ValueError("site must be a host name such as na.myconnectwise.net")
        return value.lower()

    @field_validator("codebase")
    @classmethod
    def _codebase_slash(cls, value: str | None) -> str | None:
        if value is None:
            return None
        return value.strip("/") + "/"


# ---------------------------------------------------------------------------------------------
# Sent models (strict)
# ---------------------------------------------------------------------------------------------

Money = Annotated[Decimal, PlainSerializer(float, return_type=float, when_used="json")]
"""Decimal in Python, a JSON number on the wire (All.json declares these as `number/double`)."""


class _Sent(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    def wire(self) -> dict[str, Any]:
        return self.model_dump(mode="json", exclude_none=True, by_alias=True)


class IdRef(_Sent):
    """A write reference by id, e.g. `{"id": 12}` (BoardReference, CompanyReference, ...)."""

    id: int = Field(ge=1)


class ProductRef(_Sent):
    """IvItemReference for writes: `{"identifier": "MDR-ENDPOINT"}` or `{"id": 3}`."""

    id: int | None = Field(default=None, ge=1)
    identifier: str | None = Field(default=None, min_length=1, max_length=75)


class TicketCreate(_Sent):
    """`POST /service/tickets` body (Ticket). `initialDescription` is POST-only."""

    summary: str = Field(min_length=1, max_length=100)
    board: IdRef
    company: IdRef
    status: IdRef | None = None
    priority: IdRef | None = None
    type: IdRef | None = None
    initialDescription: str | None = None
    externalXRef: str | None = Field(default=None, max_length=100)


class ServiceNoteCreate(_Sent):
    """`POST /service/tickets/{parentId}/notes` body (ServiceNote)."""

    text: str = Field(min_length=1)
    detailDescriptionFlag: bool | None = None
    internalAnalysisFlag: bool | None = None
    resolutionFlag: bool | None = None
    processNotifications: bool | None = None


class CustomFieldValueWrite(_Sent):
    """CustomFieldValue as written back in a whole-array `customFields` replace."""

    id: int
    caption: str | None = None
    type: str | None = None
    entryMethod: str | None = None
    numberOfDecimals: int | None = None
    value: Any = None
    connectWiseId: str | None = None

    def wire(self) -> dict[str, Any]:
        data = super().wire()
        data.setdefault("value", None)
        return data


class ConfigurationCreate(_Sent):
    """`POST /company/configurations` body (CompanyConfiguration; name/type/company required)."""

    name: str = Field(min_length=1, max_length=100)
    type: IdRef
    company: IdRef
    serialNumber: str | None = Field(default=None, max_length=250)
    notes: str | None = None


class AdditionCreate(_Sent):
    """`POST /finance/agreements/{parentId}/additions` body (Addition; product/billCustomer required)."""

    product: ProductRef
    billCustomer: Literal["Billable", "DoNotBill", "NoCharge"]
    quantity: Money
    unitPrice: Money
    unitCost: Money
    description: str | None = None
    invoiceDescription: str | None = Field(default=None, max_length=6000)


PatchValue = IdRef | Money | str | int | bool | list[CustomFieldValueWrite] | None


class PatchOperation(_Sent):
    """One JSON Patch operation. Manage paths are top-level and case-sensitive (no '/')."""

    op: Literal["add", "replace", "remove"]
    path: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    value: PatchValue = None

    def wire(self) -> dict[str, Any]:
        data = self.model_dump(mode="json", by_alias=True)
        if isinstance(self.value, list):
            data["value"] = [item.wire() for item in self.value]
        if self.op == "remove":
            data.pop("value", None)
        return data


def patch_body(ops: list[PatchOperation]) -> list[dict[str, Any]]:
    return [op.wire() for op in ops]


# ---------------------------------------------------------------------------------------------
# Read models (lenient)
# ---------------------------------------------------------------------------------------------


class _Read(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)


class Ref(_Read):
    id: int | None = None
    name: str | None = None
    identifier: str | None = None


class CompanyInfo(_Read):
    """`GET /login/companyinfo/{companyId}` (not in All.json; CW Developer Guide)."""

    CompanyName: str | None = None
    Codebase: str | None = None
    VersionCode: str | None = None
    VersionNumber: str | None = None
    CompanyID: str | None = None
    IsCloud: bool | None = None


class CompanyRead(_Read):
    id: int
    identifier: str | None = None
    name: str | None = None
    deletedFlag: bool | None = None


class AgreementRead(_Read):
    id: int
    name: str | None = None
    type: Ref | None = None
    company: Ref | None = None
    agreementStatus: str | None = None
    cancelledFlag: bool | None = None


class AgreementTypeRead(_Read):
    id: int
    name: str | None = None
    inactiveFlag: bool | None = None


class CatalogItemRead(_Read):
    id: int
    identifier: str | None = None
    description: str | None = None
    inactiveFlag: bool | None = None


class BoardRead(_Read):
    id: int
    name: str | None = None
    inactiveFlag: bool | None = None


class BoardStatusRead(_Read):
    id: int
    name: str | None = None
    board: Ref | None = None
    sortOrder: int | None = None
    inactive: bool | None = None
    closedStatus: bool | None = None
    defaultFlag: bool | None = None


class BoardTypeRead(_Read):
    id: int
    name: str | None = None
    board: Ref | None = None
    inactiveFlag: bool | None = None


class PriorityRead(_Read):
    id: int
    name: str | None = None
    sortOrder: int | None = None


class InfoRead(_Read):
    """`_info` on every record: who entered and last updated it (member identifiers)."""

    enteredBy: str | None = None
    updatedBy: str | None = None
    lastUpdated: str | None = None
    dateEntered: str | None = None


class TicketRead(_Read):
    id: int
    summary: str | None = None
    board: Ref | None = None
    status: Ref | None = None
    company: Ref | None = None
    closedFlag: bool | None = None
    closedBy: str | None = None
    owner: Ref | None = None
    mergedParentTicket: Ref | None = None
    info: InfoRead | None = Field(default=None, alias="_info")


class NoteRead(_Read):
    id: int
    text: str | None = None
    resolutionFlag: bool | None = None
    createdBy: str | None = None
    member: Ref | None = None
    dateCreated: str | None = None


class TimeEntryRead(_Read):
    id: int
    member: Ref | None = None
    dateEntered: str | None = None


class CustomFieldRead(_Read):
    id: int
    caption: str | None = None
    type: str | None = None
    entryMethod: str | None = None
    numberOfDecimals: int | None = None
    value: Any = None
    connectWiseId: str | None = None


class ConfigurationRef(_Read):
    """A ticket's ConfigurationReference (`GET /service/tickets/{parentId}/configurations`)."""

    id: int
    deviceIdentifier: str | None = None


class ConfigurationRead(_Read):
    id: int
    name: str | None = None
    serialNumber: str | None = None
    company: Ref | None = None
    type: Ref | None = None
    activeFlag: bool | None = None
    notes: str | None = None
    customFields: list[CustomFieldRead] | None = None


class AdditionRead(_Read):
    id: int
    product: Ref | None = None
    quantity: Decimal | None = None
    unitPrice: Decimal | None = None
    unitCost: Decimal | None = None
    description: str | None = None
    invoiceDescription: str | None = None
    cancelledDate: str | None = None
    agreementStatus: str | None = None


class ValidationErrorRead(_Read):
    code: str | None = None
    message: str | None = None
    resource: str | None = None
    field: str | None = None
    details: str | None = None


class ErrorResponseRead(_Read):
    """ErrorResponseMessage `{code, message, errors[]}`; the 429 body uses `error` instead of `code`."""

    code: str | None = None
    message: str | None = None
    error: str | None = None
    errors: list[ValidationErrorRead] | None = None
