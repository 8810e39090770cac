"""HaloPSA settings and wire models.

Field names follow Halo's API as used by public clients (see `adapter.py` for the sources): the
object templates in `homotechsual/HaloAPI` (`Data/Templates/Ticket.json`, `Action.json`,
`Asset.json`, `Contract.json`, `Status.json`, `TicketType.json`, `Team.json`), the recurring-invoice
line shape in `jakesiney/HaloPSA-Update-Invoice-Lines` (`example-post.json`) and the ticket/action
bodies posted by `KelvinTegelaar/CIPP-API` (`New-HaloPSATicket.ps1`).

What the adapter SENDS is strict (`extra="forbid"`); what it READS is lenient (every field optional,
unknown fields ignored), because Halo's records carry hundreds of fields that vary by version.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PlainSerializer, SecretStr, field_validator

from adapters.base import OUTBOUND_URL

# ---------------------------------------------------------------------------------------------
# Connection settings
# ---------------------------------------------------------------------------------------------


class HaloCredentials(BaseModel):
    """An API application (Configuration → Integrations → Halo API → View Applications) using the
    Client ID and Secret (Services) authentication method."""

    model_config = ConfigDict(extra="forbid")

    client_id: str = Field(min_length=1, max_length=200)
    client_secret: SecretStr = Field(min_length=1)
    tenant: str | None = Field(
        default=None,
        max_length=200,
        description="Tenant name, sent as ?tenant= on the token request (hosted Halo instances).",
    )
    scope: str = Field(default="all", min_length=1, max_length=500)

    @field_validator("client_id", "tenant")
    @classmethod
    def _strip(cls, value: str | None) -> str | None:
        if value is None:
            return None
        value = value.strip()
        return value or None


class HaloOptions(BaseModel):
    """Per-connection options. The connection's base URL is the Halo instance, e.g.
    `https://acme.halopsa.com`; the API lives under `/api` and the auth server under `/auth`."""

    model_config = ConfigDict(extra="forbid")

    auth_url: str | None = Field(
        default=None,
        description="Authorisation server URL as shown under Halo API → API Details "
        "(default: {instance}/auth); the token endpoint is {auth_url}/token.",
        json_schema_extra=OUTBOUND_URL,
    )
    page_size: int = Field(default=100, ge=1, le=1000)
    max_concurrency: int = Field(default=4, ge=1, le=16)
    max_requests_per_minute: int | None = Field(
        default=None,
        ge=1,
        le=100_000,
        description=(
            "Calls started per minute, shared by every process of the deployment. None: no limit "
            "beyond max_concurrency."
        ),
    )
    token_refresh_margin: float = Field(
        default=60.0, ge=0, le=600, description="Refresh the token this many seconds before expiry."
    )
    closed_status_id: int = Field(
        default=9, description="Status a ticket is closed with when no status is given (Halo's 'Closed')."
    )
    note_outcome: str = Field(default="Private Note", min_length=1, max_length=100)
    note_outcome_id: int | None = Field(default=None, description="Sent instead of note_outcome when set.")
    close_outcome: str = Field(default="Close", min_length=1, max_length=100)
    close_outcome_id: int | None = None
    notes_hidden_from_user: bool = True
    marker_custom_field_id: int | None = Field(
        default=None,
        description="Ticket custom field that also receives the raw marker (optional; the marker "
        "always goes into the summary, which is what find_ticket searches).",
    )
    asset_fields_target: Literal["notes", "customfields"] = Field(
        default="notes",
        description="Where ConfigurationUpdate.fields go: a delimited block in the asset's notes, "
        "or asset custom fields matched by name or label.",
    )
    default_asset_type_id: int | None = Field(default=None, ge=1)
    billing_quantity_type: int = Field(
        default=0, ge=0, description="recurring_invoice_quantity_type for lines created here (0 = fixed)."
    )

    @field_validator("auth_url")
    @classmethod
    def _auth_url(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        value = value.strip().rstrip("/")
        if not value.startswith(("https://", "http://")):
            raise ValueError("auth_url must be an http(s) URL")
        return value.removesuffix("/token")


# ---------------------------------------------------------------------------------------------
# Sent models (strict)
# ---------------------------------------------------------------------------------------------

Money = Annotated[Decimal, PlainSerializer(float, return_type=float, when_used="json")]


class _Sent(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    def wire(self) -> dict[str, Any]:
        return self.model_dump(mode="json", exclude_none=True)


class CustomFieldWrite(_Sent):
    id: int
    value: Any = None

    def wire(self) -> dict[str, Any]:
        return {"id": self.id, "value": self.value}


class AssetRef(_Sent):
    """An asset a ticket is about, as `Faults.assets` lists them (`Device_List`, by `id`)."""

    id: int


class TicketCreate(_Sent):
    """One element of the `POST /api/Tickets` array."""

    summary: str = Field(min_length=1)
    details: str | None = None
    client_id: int
    team: str | None = None
    """The team's name (`Faults.team`); Halo's ticket schema has no `team_id`."""
    team_department_id: int | None = None
    """The department the team belongs to (`SectionDetail.department_id`), which tells apart
    teams of the same name in different departments."""
    tickettype_id: int | None = None
    priority_id: int | None = None
    status_id: int | None = None
    customfields: list[CustomFieldWrite] | None = None
    assets: list[AssetRef] | None = None
    """The endpoint's asset (`Faults.assets`, an array of `Device_List`)."""

    def wire(self) -> dict[str, Any]:
        data = super().wire()
        if self.customfields is not None:
            data["customfields"] = [cf.wire() for cf in self.customfields]
        return data


class ActionCreate(_Sent):
    """One element of the `POST /api/Actions` array: a note, optionally changing the status."""

    ticket_id: int
    outcome: str | None = None
    outcome_id: int | None = None
    note: str = Field(min_length=1)
    hiddenfromuser: bool = True
    new_status: int | None = None
    sendemail: bool = False


class AssetWrite(_Sent):
    """One element of the `POST /api/Asset` array; with `id` it updates that asset."""

    id: int | None = None
    client_id: int | None = None
    site_id: int | None = None
    assettype_id: int | None = None
    inventory_number: str | None = None
    key_field: str | None = None
    notes: str | None = None
    customfields: list[CustomFieldWrite] | None = None

    def wire(self) -> dict[str, Any]:
        data = super().wire()
        if self.customfields is not None:
            data["customfields"] = [cf.wire() for cf in self.customfields]
        return data


class InvoiceLineCreate(_Sent):
    """A new recurring-invoice line (no `id`: Halo creates it)."""

    item_id: int = Field(serialization_alias="_itemid")
    item_shortdescription: str
    item_longdescription: str | None = None
    item_internal_reference: str
    qty_order: Money
    unit_price: Money
    unit_cost: Money
    recurring_invoice_quantity_type: int = 0

    def wire(self) -> dict[str, Any]:
        return self.model_dump(mode="json", exclude_none=True, by_alias=True)


# ---------------------------------------------------------------------------------------------
# Read models (lenient)
# ---------------------------------------------------------------------------------------------


class _Read(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)


class TokenResponse(_Read):
    access_token: str
    token_type: str | None = "Bearer"
    expires_in: float | None = None


class ClientRead(_Read):
    id: int
    name: str | None = None
    inactive: bool | None = None


class SiteRead(_Read):
    id: int
    name: str | None = None
    client_id: float | None = None
    """`Site.client_id` is a `number` (double) in Halo's description, unlike other `client_id`s."""
    inactive: bool | None = None


class ContractRead(_Read):
    id: int
    client_id: int | None = None
    ref: str | None = None
    contract_status: str | None = None
    """A string in Halo's description (`ContractHeader.contract_status`)."""
    expired: bool | None = None
    billingdescription: Any = None


class ItemRead(_Read):
    id: int
    name: str | None = None
    inactive: bool | None = None


class StatusRead(_Read):
    id: int
    name: str | None = None
    type: int | None = None


class TicketTypeRead(_Read):
    id: int
    name: str | None = None
    visible: bool | None = None


class PriorityRead(_Read):
    """`Policy`: `id` is the row's UUID (a string); `priorityid` is what tickets take."""

    id: str | None = None
    priorityid: int | None = None
    slaid: int | None = None
    name: str | None = None


class TeamRead(_Read):
    id: int
    name: str | None = None
    department_id: int | None = None
    inactive: bool | None = None
    forrequests: bool | None = None


class TicketRead(_Read):
    id: int
    summary: str | None = None
    client_id: int | None = None
    status_id: int | None = None
    hasbeenclosed: bool | None = None
    agent_id: int | None = None
    merged_into_id: int | None = None
    deleted: bool | None = None


class ActionRead(_Read):
    id: int
    ticket_id: int | None = None
    note: str | None = None
    outcome: str | None = None
    new_status: int | None = None
    who_agentid: int | None = None
    who_type: int | None = None
    """Who made the action: 1 an agent (0 or absent: the system)."""
    timetaken: float | None = None
    datetime: str | None = None


class AgentRead(_Read):
    id: int
    name: str | None = None


class CustomFieldRead(_Read):
    id: int
    name: str | None = None
    label: str | None = None
    value: Any = None


class AssetRead(_Read):
    id: int
    inventory_number: str | None = None
    key_field: str | None = None
    client_id: int | None = None
    site_id: int | None = None
    assettype_id: int | None = None
    inactive: bool | None = None
    notes: str | None = None
    customfields: list[CustomFieldRead] | None = None


class InvoiceLineRead(_Read):
    id: int
    item_id: int | None = Field(default=None, alias="_itemid")
    item_shortdescription: str | None = None
    item_internal_reference: str | None = None
    qty_order: Decimal | None = None
    unit_price: Decimal | None = None
    unit_cost: Decimal | None = None
    isinactive: bool | None = None


class RecurringInvoiceRead(_Read):
    id: int
    client_id: int | None = None
    contract_id: int | None = None
    lines: list[dict[str, Any]] | None = None
