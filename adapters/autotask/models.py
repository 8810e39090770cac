"""Autotask PSA settings and wire models.

Field names and types follow Autotask's own Swagger 2.0 document (`swagger.json`, "Datto|Autotask
PSA Rest API" v1; vendor-notes/psa.md §2.1): `QueryModel`, `Filter`, `PagingModel`, `TicketModel`,
`TicketNoteModel`, `ConfigurationItemModel`, `ContractModel`, `ContractServiceModel`,
`ContractServiceUnitModel`, `ContractServiceAdjustmentModel`, `FieldInformationModel`,
`PickListValue`, `ThresholdStatusResultModel`, `ZoneInformationResultModel`, `UserDefinedField`.

What the adapter SENDS is strict (`extra="forbid"`), so a misspelt field is a bug here and not a
value Autotask silently drops. What it READS is lenient: every field optional, unknown ones ignored.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Any

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    SecretStr,
    field_validator,
)

from adapters.base import OUTBOUND_URL
from adapters.common import LenientRead, id_text

# ---------------------------------------------------------------------------------------------
# Connection settings
# ---------------------------------------------------------------------------------------------


class AutotaskCredentials(BaseModel):
    """An API-only user (security level "API User (system)") and the integration's tracking code."""

    model_config = ConfigDict(extra="forbid")

    username: str = Field(min_length=3, max_length=200, description="The API user's username (e-mail form)")
    secret: SecretStr = Field(min_length=1, description="The API user's password (Secret header)")
    integration_code: SecretStr = Field(
        min_length=1, description="API tracking identifier (ApiIntegrationCode header)"
    )
    impersonation_resource_id: int | None = Field(
        default=None, ge=1, description="Optional ImpersonationResourceId: act as this resource"
    )

    @field_validator("username")
    @classmethod
    def _strip(cls, value: str) -> str:
        value = value.strip()
        if not value or " " in value:
            raise ValueError("must be non-empty and contain no spaces")
        return value


class AutotaskOptions(BaseModel):
    """Per-connection options. The connection's base URL is the zone-discovery host."""

    model_config = ConfigDict(extra="forbid")

    zone_url: str | None = Field(
        default=None,
        description="The zone's REST root, e.g. https://webservices14.autotask.net/ATServicesRest/; "
        "skips the ZoneInformation discovery call when set.",
        json_schema_extra=OUTBOUND_URL,
    )
    web_url: str | None = Field(
        default=None, description="The zone's web UI root, for ticket links.", json_schema_extra=OUTBOUND_URL
    )
    page_size: int = Field(default=500, ge=1, le=500, description="MaxRecords per query page (max 500)")
    max_concurrency: int = Field(
        default=3, ge=1, le=3, description="Parallel requests; Autotask allows 3 threads per endpoint."
    )
    max_requests_per_minute: int | None = Field(
        default=None,
        ge=1,
        le=100_000,
        description=(
            "Calls started per minute, shared by every process of the deployment (the hourly "
            "threshold is watched separately). None: no limit beyond max_concurrency."
        ),
    )
    threshold_check_every: int = Field(
        default=100, ge=1, description="Re-read ThresholdInformation after this many requests."
    )
    threshold_slow_share: float = Field(
        default=0.5, gt=0, le=1, description="Usage share of the hourly budget above which calls are spaced."
    )
    threshold_slow_delay: float = Field(default=1.0, ge=0, le=60, description="Seconds between spaced calls")
    threshold_refuse_share: float = Field(
        default=0.8,
        gt=0,
        le=1,
        description="Usage share above which the adapter refuses work (the budget is shared with "
        "every other integration on the tenant).",
    )
    threshold_retry_after: float = Field(
        default=300.0, ge=1, description="Seconds to stay refused before reading the threshold again."
    )
    new_status_id: int = Field(default=1, ge=0, description="Ticket status when the rule sets none (New)")
    complete_status_id: int | None = Field(
        default=None,
        ge=0,
        description="Ticket status that closes a ticket; default: the picklist value labelled "
        "'Complete' (5 on an unchanged instance).",
    )
    default_priority_id: int | None = Field(default=None, ge=0)
    note_type: int = Field(default=1, ge=0, description="TicketNotes noteType picklist value")
    note_publish: int = Field(default=1, ge=0, description="TicketNotes publish picklist value")
    resolution_note_title: str = Field(default="Resolution", min_length=1, max_length=250)
    configuration_product_id: int | None = Field(
        default=None, ge=1, description="Product for configuration items the adapter creates."
    )
    default_configuration_type_id: int | None = Field(default=None, ge=0)
    adjustment_ledger_seconds: float = Field(
        default=900.0,
        ge=0,
        description="How long a posted seat adjustment blocks re-posting the same change while "
        "ContractServiceUnits does not show it yet.",
    )

    @field_validator("zone_url", "web_url")
    @classmethod
    def _slash(cls, value: str | None) -> str | None:
        if value is None:
            return None
        value = value.strip()
        if not value.startswith(("https://", "http://")):
            raise ValueError("must be an absolute http(s) URL")
        return value.rstrip("/") + "/"


# ---------------------------------------------------------------------------------------------
# Sent models (strict)
# ---------------------------------------------------------------------------------------------

Money = Annotated[Decimal, PlainSerializer(float, return_type=float, when_used="json")]
"""Decimal in Python, a JSON number on the wire (`number/double` in the Swagger)."""

FilterValue = int | str | bool | list[int] | list[str] | None


class SentModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    def wire(self) -> dict[str, Any]:
        return self.model_dump(mode="json", exclude_none=True, by_alias=True)


class QueryFilter(SentModel):
    """One `Filter`: `{op, field, value}` or a grouping `{op: "and"|"or", items: [...]}`."""

    op: str
    field: str | None = None
    value: FilterValue = None
    udf: bool | None = None
    items: list[QueryFilter] | None = None


class QueryBody(SentModel):
    """`QueryModel`; top-level filters are ANDed."""

    filter: list[QueryFilter] = Field(min_length=1)
    maxRecords: int | None = Field(default=None, ge=1, le=500)
    includeFields: list[str] | None = None


class UdfValue(SentModel):
    """`UserDefinedField`: values travel as strings."""

    name: str
    value: str | None = None

    def wire(self) -> dict[str, Any]:
        return {"name": self.name, "value": self.value}


class TicketCreate(SentModel):
    """`POST /Tickets` (TicketModel). `externalID` carries the connector's marker."""

    companyID: int
    title: str = Field(min_length=1, max_length=255)
    description: str | None = Field(default=None, max_length=8000)
    status: int
    priority: int | None = None
    queueID: int | None = None
    issueType: int | None = None
    externalID: str | None = Field(default=None, max_length=50)
    configurationItemID: int | None = None
    """The endpoint's configuration item (TicketModel `configurationItemID`, int32)."""


class TicketUpdate(SentModel):
    """`PATCH /Tickets`: a partial update; `id` is required in the body."""

    id: int
    status: int | None = None
    resolution: str | None = Field(default=None, max_length=32000)


class TicketNoteCreate(SentModel):
    """`POST /Tickets/{parentId}/Notes` (TicketNoteModel)."""

    ticketID: int
    title: str = Field(min_length=1, max_length=250)
    description: str = Field(min_length=1, max_length=32000)
    noteType: int
    publish: int


class ConfigurationItemCreate(SentModel):
    """`POST /ConfigurationItems` (ConfigurationItemModel)."""

    companyID: int
    productID: int
    isActive: bool = True
    referenceTitle: str = Field(min_length=1, max_length=200)
    serialNumber: str | None = Field(default=None, max_length=100)
    configurationItemType: int | None = None
    userDefinedFields: list[UdfValue] | None = None

    def wire(self) -> dict[str, Any]:
        data = super().wire()
        if self.userDefinedFields is not None:
            data["userDefinedFields"] = [udf.wire() for udf in self.userDefinedFields]
        return data


class ConfigurationItemUpdate(SentModel):
    """`PATCH /ConfigurationItems`: only the user-defined fields that change."""

    id: int
    userDefinedFields: list[UdfValue]

    def wire(self) -> dict[str, Any]:
        return {"id": self.id, "userDefinedFields": [udf.wire() for udf in self.userDefinedFields]}


class ContractServiceAdjustmentCreate(SentModel):
    """`POST /ContractServiceAdjustments`: `unitChange` is a DELTA, never an absolute count."""

    contractID: int
    serviceID: int
    contractServiceID: int | None = None
    effectiveDate: str
    unitChange: int
    adjustedUnitPrice: Money | None = None
    adjustedUnitCost: Money | None = None


class ContractServiceUpdate(SentModel):
    """`PATCH /Contracts/{parentId}/Services`: absolute prices, safe to repeat."""

    id: int
    unitPrice: Money | None = None
    unitCost: Money | None = None


# ---------------------------------------------------------------------------------------------
# Read models (lenient)
# ---------------------------------------------------------------------------------------------


class ZoneInfo(LenientRead):
    zoneName: str | None = None
    url: str | None = None
    webUrl: str | None = None
    ci: int | None = None


class ThresholdInfo(LenientRead):
    externalRequestThreshold: int | None = None
    requestThresholdTimeframe: int | None = None
    currentTimeframeRequestCount: int | None = None


class PageDetails(LenientRead):
    count: int | None = None
    requestCount: int | None = None
    prevPageUrl: str | None = None
    nextPageUrl: str | None = None


class QueryPage(LenientRead):
    items: list[dict[str, Any]] = Field(default_factory=list)
    pageDetails: PageDetails | None = None


class PicklistValue(LenientRead):
    """`PickListValue.value` is a string in the document; real tenants also answer integers
    (`subIssueType`, `ticketType`), so both are read, as text."""

    value: Annotated[str, BeforeValidator(id_text)]
    label: str | None = None
    isDefaultValue: bool | None = None
    sortOrder: int | None = None
    parentValue: Annotated[str | None, BeforeValidator(id_text)] = None
    isActive: bool | None = None
    isSystem: bool | None = None


class FieldInfo(LenientRead):
    name: str
    dataType: str | None = None
    isRequired: bool | None = None
    isReadOnly: bool | None = None
    isQueryable: bool | None = None
    isPickList: bool | None = None
    picklistValues: list[PicklistValue] | None = None
    picklistParentValueField: str | None = None


class FieldsResult(LenientRead):
    fields: list[FieldInfo] = Field(default_factory=list)


class UdfRead(LenientRead):
    name: str
    value: str | None = None


class CompanyRead(LenientRead):
    id: int
    companyName: str | None = None
    companyNumber: str | None = None
    isActive: bool | None = None


class ContractRead(LenientRead):
    id: int
    companyID: int | None = None
    contractName: str | None = None
    contractType: int | None = None
    status: int | None = None
    startDate: str | None = None
    endDate: str | None = None


class ServiceRead(LenientRead):
    id: int
    name: str | None = None
    isActive: bool | None = None


class TicketRead(LenientRead):
    id: int
    ticketNumber: str | None = None
    companyID: int | None = None
    title: str | None = None
    status: int | None = None
    queueID: int | None = None
    externalID: str | None = None
    completedDate: str | None = None
    resolution: str | None = None
    creatorResourceID: int | None = None
    completedByResourceID: int | None = None
    assignedResourceID: int | None = None
    lastActivityDate: str | None = None
    lastActivityPersonType: int | None = None
    """1 a resource, 2 a contact (not queryable: read it from the ticket itself)."""
    lastActivityResourceID: int | None = None


class TicketNoteRead(LenientRead):
    id: int
    ticketID: int | None = None
    title: str | None = None
    description: str | None = None
    creatorResourceID: int | None = None
    createdByContactID: int | None = None
    createDateTime: str | None = None


class TimeEntryRead(LenientRead):
    id: int
    ticketID: int | None = None
    resourceID: int | None = None
    dateWorked: str | None = None


class ConfigurationItemRead(LenientRead):
    id: int
    companyID: int | None = None
    referenceTitle: str | None = None
    serialNumber: str | None = None
    isActive: bool | None = None
    userDefinedFields: list[UdfRead] | None = None


class ContractServiceRead(LenientRead):
    id: int
    contractID: int | None = None
    serviceID: int | None = None
    unitPrice: Decimal | None = None
    unitCost: Decimal | None = None


class ContractServiceUnitRead(LenientRead):
    id: int
    contractID: int | None = None
    contractServiceID: int | None = None
    serviceID: int | None = None
    units: int | None = None
    startDate: str | None = None
    endDate: str | None = None


class OperationResult(LenientRead):
    itemId: int | None = None


class ItemResult(LenientRead):
    item: dict[str, Any] | None = None
