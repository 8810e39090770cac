"""The mapping rules engineers configure, as strict pydantic models.

These validate everything that can be checked without the database; the service layer adds the
checks that need it (connection exists in this tenant, has the right role, no duplicate).
"""

from __future__ import annotations

import enum
import itertools
import string
from decimal import Decimal
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from adapters.base import ActionKind, ProblemKind

SUMMARY_FIELDS = frozenset({"problem", "problem_title", "hostname", "client", "message", "endpoint_id"})
PROBLEM_TITLES: dict[ProblemKind, str] = {
    ProblemKind.NOT_PROTECTED: "No endpoint protection",
    ProblemKind.PROTECTION_DISABLED: "Real-time protection disabled",
    ProblemKind.DEFINITIONS_OUTDATED: "Antivirus definitions outdated",
    ProblemKind.THREAT_DETECTED: "Threat detected",
    ProblemKind.SCAN_OVERDUE: "Full scan overdue",
    ProblemKind.AGENT_OFFLINE: "Agent offline",
    ProblemKind.UNMANAGED_AGENT: "Security agent on a device the RMM does not manage",
}


class ClosePolicy(enum.StrEnum):
    """What a ticket rule does with its ticket when the problem clears."""

    CLOSE = "close"
    """Close it, whatever was done on it in the PSA."""
    NOTE_ONLY = "note_only"
    """Add the resolution note and leave it open for a technician to close."""
    CLOSE_IF_UNTOUCHED = "close_if_untouched"
    """Close it unless a person added a note or time, changed its status or reassigned it; then
    add the resolution note and leave it open."""


class _Strict(BaseModel):
    """Unknown fields are refused; flags and counts are strict types (`1` is not `true`, `true` is
    not a number of minutes or seats), because a coerced value would change what the rule does."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class ClientMappingIn(_Strict):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "rmm_connection_id": "c_0123abcd",
                    "rmm_client_id": "42",
                    "rmm_client_name": "Acme Dental",
                    "psa_connection_id": "c_4567ef01",
                    "psa_company_id": "250",
                    "psa_company_name": "Acme Dental Group",
                }
            ]
        }
    )

    rmm_connection_id: str = Field(min_length=1, max_length=32)
    rmm_client_id: str = Field(min_length=1, max_length=100)
    rmm_client_name: str | None = Field(default=None, max_length=300)
    psa_connection_id: str = Field(min_length=1, max_length=32)
    psa_company_id: str = Field(min_length=1, max_length=100)
    psa_company_name: str | None = Field(default=None, max_length=300)


class TicketExclusion(_Strict):
    """Problems of matching endpoints open no ticket. `field`: `endpoint` (host name or RMM id),
    `client` (name or RMM id) or `device_type` (operating system name); `pattern`: shell-style
    (`*`, `?`), case-insensitive."""

    field: Literal["endpoint", "client", "device_type"]
    pattern: str = Field(min_length=1, max_length=200)


class TicketRuleIn(_Strict):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "psa_connection_id": "c_4567ef01",
                    "problem": "threat_detected",
                    "board_id": "1",
                    "priority_id": "2",
                    "summary_template": "{problem_title} on {hostname}",
                    "auto_action": "scan",
                }
            ]
        }
    )

    psa_connection_id: str = Field(min_length=1, max_length=32)
    problem: ProblemKind | None = None
    """None = the default rule for every problem without a rule of its own."""
    board_id: str = Field(min_length=1, max_length=100)
    type_id: str | None = Field(default=None, max_length=100)
    priority_id: str | None = Field(default=None, max_length=100)
    status_new_id: str | None = Field(default=None, max_length=100)
    status_closed_id: str | None = Field(default=None, max_length=100)
    summary_template: str = Field(default="{problem_title} on {hostname}", min_length=1, max_length=300)
    note_interval_minutes: int = Field(default=60, ge=0, le=10_080, strict=True)
    auto_action: ActionKind | None = None
    close_policy: ClosePolicy = ClosePolicy.CLOSE_IF_UNTOUCHED
    reraise_minutes: int | None = Field(default=None, ge=1, le=525_600, strict=True)
    """A ticket a technician closed while its problem lasts: open a new one after this long (None:
    only once the problem clears and comes back)."""
    clear_rmm_alert: bool = Field(default=False, strict=True)
    """When a technician closes the ticket, resolve the alert in the RMM (RMMs that can)."""
    update_configurations: bool = Field(default=True, strict=True)
    create_configurations: bool = Field(default=False, strict=True)
    enabled: bool = Field(default=True, strict=True)
    storm_min_endpoints: int | None = Field(default=None, ge=2, le=100_000, strict=True)
    """A client-level storm ticket once this many endpoints of one client have the problem."""
    storm_min_percent: int | None = Field(default=None, ge=1, le=100, strict=True)
    """... or once this share (%) of the client's endpoints has it."""
    storm_window_minutes: int = Field(default=60, ge=1, le=10_080, strict=True)
    """The endpoints that start a storm were first seen within this window."""
    priority_map: dict[Literal["critical", "high", "medium", "low"], str] = Field(default_factory=dict)
    """Problem severity → PSA priority id; severities not listed use `priority_id`."""
    disabled_problems: list[ProblemKind] = Field(default_factory=list, max_length=20)
    """Problems that open no ticket under this rule."""
    exclusions: list[TicketExclusion] = Field(default_factory=list, max_length=200)
    min_age_minutes: int = Field(default=0, ge=0, le=10_080, strict=True)
    """A problem found by a status sync opens a ticket only once it is this old."""

    @field_validator("priority_map")
    @classmethod
    def _priority_ids(cls, value: dict[str, str]) -> dict[str, str]:
        if any(not 1 <= len(v) <= 100 for v in value.values()):
            raise ValueError("each priority id is 1 to 100 characters")
        return value

    @field_validator("summary_template")
    @classmethod
    def _known_placeholders(cls, value: str) -> str:
        try:
            names = {name for _, name, _, _ in string.Formatter().parse(value) if name is not None}
        except ValueError as exc:
            raise ValueError(f"invalid template: {exc}") from exc
        unknown = names - SUMMARY_FIELDS
        if unknown:
            # The allowed names only: errors never echo what was submitted.
            raise ValueError(f"unknown placeholder; allowed: {sorted(SUMMARY_FIELDS)}")
        return value


class DeployRuleIn(_Strict):
    """Automatic agent deployment on one RMM connection (its kind must declare `deploy_agent`)."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"rmm_connection_id": "c_0123abcd", "interval_minutes": 10_080, "enabled": True}]
        }
    )

    rmm_connection_id: str = Field(min_length=1, max_length=32)
    interval_minutes: int = Field(
        default=10_080,
        ge=1,
        le=525_600,
        strict=True,
        description="at most one deployment per endpoint within this many minutes (default a week)",
    )
    enabled: bool = Field(default=True, strict=True)


class CostTier(_Strict):
    """From `min_seats` (inclusive) upward, every seat costs `unit_cost` (aggregated pricing)."""

    min_seats: int = Field(ge=1, strict=True)
    unit_cost: Decimal = Field(ge=0, max_digits=14, decimal_places=4)


class BillingRuleIn(_Strict):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "psa_connection_id": "c_4567ef01",
                    "product": "acme edr",
                    "agreement_type": "Managed Services",
                    "psa_product_id": "EDR-SEAT",
                    "unit_price": "4.50",
                    "cost_tiers": [
                        {"min_seats": 1, "unit_cost": "2.10"},
                        {"min_seats": 100, "unit_cost": "1.80"},
                    ],
                }
            ]
        }
    )

    psa_connection_id: str = Field(min_length=1, max_length=32)
    product: str = Field(min_length=1, max_length=200)
    """Security product name as reported by the RMM, or by the console for `console_seats`
    (case-insensitive substring match)."""
    count_scope: Literal["protected", "installed", "console_seats"] = "protected"
    """What a seat is: an RMM endpoint with the product and protection on (`protected`), with the
    product at all (`installed`), or a seat the security console counts for its customer (its
    licence use, what the vendor invoices for: `console_seats`)."""
    count_method: Literal["peak", "average", "end_of_period"] = "peak"
    agreement_type: str | None = Field(default=None, max_length=200)
    agreement_id: str | None = Field(default=None, max_length=100)
    psa_product_id: str = Field(min_length=1, max_length=200)
    description: str | None = Field(default=None, max_length=300)
    unit_price: Decimal = Field(ge=0, max_digits=14, decimal_places=4)
    cost_tiers: list[CostTier] = Field(default_factory=list)
    enabled: bool = Field(default=True, strict=True)
    device_category: Literal["server", "workstation", "other"] | None = None
    """Only endpoints of this category count (from the RMM's device type, else the OS name); None:
    all. One product can have a rule per category, with its own price and PSA product."""
    included_seats: int = Field(default=0, ge=0, le=1_000_000, strict=True)
    """Seats the agreement's fixed fee includes: the line bills only the seats beyond them."""
    minimum_quantity: int = Field(default=0, ge=0, le=1_000_000, strict=True)
    """The billed quantity (after included seats) is never below this for a company the rule bills."""
    billing_timing: Literal["current", "arrears", "prorated"] = "current"
    """`current`: the period's count; `arrears`: the previous month's count; `prorated`: seat-days
    divided by the period's days (2 decimals)."""

    @field_validator("device_category")
    @classmethod
    def _category_of_rmm_seats(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is not None and info.data.get("count_scope") == "console_seats":
            raise ValueError("console seats have no device category; leave it empty or count RMM seats")
        return value

    @model_validator(mode="after")
    def _target_and_tiers(self) -> BillingRuleIn:
        if not self.agreement_type and not self.agreement_id:
            raise ValueError("agreement_type or agreement_id is required")
        if self.cost_tiers:
            mins = [tier.min_seats for tier in self.cost_tiers]
            if mins[0] != 1:
                raise ValueError("cost_tiers must start at min_seats 1")
            if any(b <= a for a, b in itertools.pairwise(mins)):
                raise ValueError("cost_tiers must have strictly increasing min_seats")
        return self


__all__ = [
    "PROBLEM_TITLES",
    "SUMMARY_FIELDS",
    "BillingRuleIn",
    "ClientMappingIn",
    "CostTier",
    "DeployRuleIn",
    "TicketRuleIn",
]
