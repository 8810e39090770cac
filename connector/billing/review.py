"""Which proposed billing changes may be written without a person looking at them. Pure: no I/O.

A change within the tenant's tolerance (either in seats or in percent) is approved on its own; a
larger one waits for review. Guards hold a line that would drop to zero, drop by more than the
allowed share, or drop while the data behind it is incomplete: a missing count costs the MSP money
that a late count never does, so only decreases are guarded.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

Status = Literal["auto_approved", "awaiting_review", "held", "approved", "adjusted", "dismissed"]
DecisionKind = Literal["approve", "adjust", "dismiss"]
WRITABLE: frozenset[str] = frozenset({"auto_approved", "approved", "adjusted"})
"""The statuses a push writes; every other proposal waits (or was dismissed)."""


class ReviewSettings(BaseModel):
    """A tenant's tolerance and drop guard (kept in `tenant.settings["billing_review"]`)."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"tolerance_seats": 2, "tolerance_percent": "5", "max_drop_percent": "50"}]
        },
    )
    tolerance_seats: int = Field(default=2, ge=0, le=1_000_000, strict=True, description="± seats")
    tolerance_percent: Decimal = Field(default=Decimal(5), ge=0, le=1000, description="± % of the line")
    max_drop_percent: Decimal = Field(
        default=Decimal(50), gt=0, le=100, description="the largest drop (%) written without review"
    )
    review_new_lines: bool = Field(
        default=False, strict=True, description="a line connector has never written waits for review too"
    )


@dataclass(frozen=True)
class Verdict:
    status: Status
    reason: str | None = None


@dataclass(frozen=True)
class Decision:
    """An engineer's answer to one proposal."""

    kind: DecisionKind
    current: int | None
    proposed: int
    quantity: int | None = None
    """The quantity to write instead (`adjust`)."""


def judge(
    current: int | None, proposed: int, settings: ReviewSettings, data_gaps: Sequence[str] = ()
) -> Verdict:
    """The verdict on changing a line from `current` (None: never written) to `proposed` seats;
    `data_gaps` says why the counts may be incomplete (a failed, stale or partial sync)."""
    if current is None:
        if settings.review_new_lines and not within(0, proposed, settings):
            return Verdict("awaiting_review", "a new line beyond the tolerance")
        return Verdict("auto_approved")
    if proposed < current:
        if proposed == 0:
            return Verdict("held", "would go to zero")
        drop = Decimal(current - proposed) * 100 / current
        if drop > settings.max_drop_percent:
            return Verdict("held", f"would drop by {drop:.0f} % (more than {settings.max_drop_percent} %)")
        if data_gaps:
            return Verdict("held", "the data is incomplete: " + "; ".join(data_gaps))
    if within(current, proposed, settings):
        return Verdict("auto_approved")
    return Verdict("awaiting_review", f"{proposed - current:+d} seats is beyond the tolerance")


def within(current: int, proposed: int, settings: ReviewSettings) -> bool:
    """Within either tolerance: the seats, or the percent of the current quantity."""
    change = abs(proposed - current)
    if change <= settings.tolerance_seats:
        return True
    return current > 0 and Decimal(change) * 100 / current <= settings.tolerance_percent


def decided(verdict: Verdict, decision: Decision | None) -> tuple[Status, str | None]:
    """A decision overrides the verdict; without one the verdict stands."""
    if decision is None:
        return verdict.status, verdict.reason
    return DECIDED[decision.kind], verdict.reason


DECIDED: dict[DecisionKind, Status] = {"approve": "approved", "adjust": "adjusted", "dismiss": "dismissed"}


def reusable(earlier: Decision, current: int | None, proposed: int) -> bool:
    """An approval or dismissal of an earlier period still answers the same difference now (an
    adjustment named a quantity for its own month and is not carried over)."""
    if earlier.kind == "adjust":
        return False
    return earlier.proposed - (earlier.current or 0) == proposed - (current or 0)


def to_write(status: Status, proposed: int, decision: Decision | None) -> int | None:
    """The quantity a push writes for the proposal, or None when it waits or was dismissed."""
    if status not in WRITABLE:
        return None
    if status == "adjusted" and decision is not None and decision.quantity is not None:
        return decision.quantity
    return proposed
