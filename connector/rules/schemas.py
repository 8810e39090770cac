"""Response bodies of `/api/v1/client-mappings`, `/api/v1/ticket-rules`, `/api/v1/billing-rules` and
`/api/v1/deploy-rules` (their request bodies are the rule models of `mappings.rules`)."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from connector.api.schemas import RequestBody
from mappings.matching import Suggestion
from mappings.rules import CostTier


class ClientMappingOut(BaseModel):
    id: str
    rmm_connection_id: str
    rmm_client_id: str
    rmm_client_name: str | None
    psa_connection_id: str
    psa_company_id: str
    psa_company_name: str | None
    psa_check: str | None
    """`checked`: the ids were found in the PSA when last saved; `unchecked`: saved while the PSA
    could not be read (`allow_unchecked=true`); null: saved before ids were checked."""
    created_at: datetime
    updated_at: datetime


class SuggestionOut(BaseModel):
    rmm_client_id: str
    rmm_client_name: str
    psa_company_id: str
    psa_company_name: str
    score: float
    linked: bool = False
    """The RMM itself links this client to this company (e.g. a Datto site's Autotask company)."""

    @classmethod
    def of(cls, suggestion: Suggestion) -> SuggestionOut:
        return cls(
            rmm_client_id=suggestion.client_id,
            rmm_client_name=suggestion.client_name,
            psa_company_id=suggestion.company_id,
            psa_company_name=suggestion.company_name,
            score=suggestion.score,
            linked=suggestion.linked,
        )


class RejectionIn(RequestBody):
    """A suggestion to reject: this RMM client is not this PSA company."""

    rmm_connection_id: str = Field(min_length=1, max_length=32)
    rmm_client_id: str = Field(min_length=1, max_length=100)
    rmm_client_name: str | None = Field(default=None, max_length=300)
    psa_connection_id: str = Field(min_length=1, max_length=32)
    psa_company_id: str = Field(min_length=1, max_length=100)
    psa_company_name: str | None = Field(default=None, max_length=300)


class RejectionsIn(RequestBody):
    model_config = ConfigDict(
        extra="forbid",
        str_strip_whitespace=True,
        json_schema_extra={
            "examples": [
                {
                    "rejections": [
                        {
                            "rmm_connection_id": "c_0123abcd",
                            "rmm_client_id": "42",
                            "psa_connection_id": "c_4567ef01",
                            "psa_company_id": "250",
                        }
                    ]
                }
            ]
        },
    )
    rejections: list[RejectionIn] = Field(min_length=1, max_length=500)


class RejectionOut(BaseModel):
    id: str
    rmm_connection_id: str
    rmm_client_id: str
    rmm_client_name: str | None
    psa_connection_id: str
    psa_company_id: str
    psa_company_name: str | None
    rejected_by: str | None
    created_at: datetime
    created: bool = False
    """True when this request stored the rejection; false when it was already stored."""


class TicketRuleOut(BaseModel):
    id: str
    psa_connection_id: str
    problem: str | None
    board_id: str
    type_id: str | None
    priority_id: str | None
    status_new_id: str | None
    status_closed_id: str | None
    summary_template: str
    note_interval_minutes: int
    auto_action: str | None
    close_policy: str
    reraise_minutes: int | None
    clear_rmm_alert: bool
    update_configurations: bool
    create_configurations: bool
    enabled: bool
    storm_min_endpoints: int | None
    storm_min_percent: int | None
    storm_window_minutes: int
    priority_map: dict[str, str]
    disabled_problems: list[str]
    exclusions: list[dict[str, str]]
    min_age_minutes: int
    psa_check: str | None
    """As on client mappings."""
    created_at: datetime
    updated_at: datetime


class BillingRuleOut(BaseModel):
    id: str
    psa_connection_id: str
    product: str
    count_scope: str
    count_method: str
    agreement_type: str | None
    agreement_id: str | None
    psa_product_id: str
    description: str | None
    unit_price: Decimal
    cost_tiers: list[CostTier]
    enabled: bool
    device_category: str | None
    included_seats: int
    minimum_quantity: int
    billing_timing: str
    psa_check: str | None
    """As on client mappings."""
    created_at: datetime
    updated_at: datetime


class PriceOverrideOut(BaseModel):
    rule_id: str
    company_id: str
    unit_price: Decimal
    created_at: datetime
    updated_at: datetime


class DependentOut(BaseModel):
    kind: str
    """client_mapping | ticket_rule | billing_rule | billing_line | deploy_rule | usage_profile |
    open_ticket"""
    id: str
    label: str


class TicketOutcomeOut(BaseModel):
    problem_id: str
    ticket_id: str | None
    ticket_number: str | None
    action: Literal["handed_over", "kept"]
    """`handed_over`: a note says connector no longer manages it, left open for a technician;
    `kept`: still managed by connector, closed when its problem clears."""
    noted: bool
    error: str | None


class RemovalOut(BaseModel):
    """What a forced delete removed with the row, and what it did with the open tickets."""

    deleted: DependentOut
    removed: list[DependentOut]
    tickets: list[TicketOutcomeOut]


class DeployRuleOut(BaseModel):
    id: str
    rmm_connection_id: str
    interval_minutes: int
    enabled: bool
    created_at: datetime
    updated_at: datetime
