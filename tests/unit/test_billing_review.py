"""The tolerance and the guards: which proposed billing changes a push may write on its own."""

from __future__ import annotations

from decimal import Decimal

import pytest
from pydantic import ValidationError

from connector.billing.review import Decision, ReviewSettings, decided, judge, reusable, to_write, within

DEFAULTS = ReviewSettings()


@pytest.mark.parametrize(
    ("current", "proposed", "status"),
    [
        (10, 12, "auto_approved"),  # +2 seats
        (10, 13, "awaiting_review"),  # +3 seats, 30 %
        (100, 105, "auto_approved"),  # +5 %
        (100, 106, "awaiting_review"),
        (10, 8, "auto_approved"),  # a small drop with complete data
        (10, 4, "held"),  # -60 %
        (10, 0, "held"),
        (None, 40, "auto_approved"),  # a new line
    ],
)
def test_the_tolerance_and_the_drop_guard(current: int | None, proposed: int, status: str) -> None:
    assert judge(current, proposed, DEFAULTS).status == status


def test_each_guard_says_why() -> None:
    assert judge(10, 0, DEFAULTS).reason == "would go to zero"
    assert judge(10, 4, DEFAULTS).reason == "would drop by 60 % (more than 50 %)"
    gap = judge(10, 9, DEFAULTS, ["the latest sync of Fleet failed"])
    assert (gap.status, gap.reason) == ("held", "the data is incomplete: the latest sync of Fleet failed")
    assert judge(10, 11, DEFAULTS, ["Fleet has no full pass"]).status == "auto_approved"  # only drops


def test_new_lines_can_be_reviewed_too() -> None:
    strict = ReviewSettings(review_new_lines=True)
    assert judge(None, 40, strict).status == "awaiting_review"
    assert judge(None, 2, strict).status == "auto_approved"


def test_zero_tolerance_and_a_zero_line() -> None:
    none = ReviewSettings(tolerance_seats=0, tolerance_percent=Decimal(0))
    assert not within(10, 11, none) and within(10, 10, none)
    assert not within(0, 3, DEFAULTS)  # no percent of nothing


def test_decisions_override_the_verdict_and_set_what_is_written() -> None:
    verdict = judge(10, 16, DEFAULTS)
    adjust = Decision("adjust", 10, 16, 14)
    status, _ = decided(verdict, adjust)
    assert status == "adjusted" and to_write(status, 16, adjust) == 14
    approved, _ = decided(verdict, Decision("approve", 10, 16))
    assert approved == "approved" and to_write(approved, 16, None) == 16
    assert to_write("dismissed", 16, None) is None and to_write("held", 0, None) is None
    assert decided(verdict, None) == ("awaiting_review", verdict.reason)


def test_an_approval_or_dismissal_is_reused_while_the_difference_persists() -> None:
    assert reusable(Decision("dismiss", 10, 16), 10, 16)
    assert reusable(Decision("approve", 10, 16), 16, 22)
    assert not reusable(Decision("approve", 10, 16), 10, 17)
    assert not reusable(Decision("adjust", 10, 16, 14), 10, 16)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("tolerance_seats", -1),
        ("tolerance_percent", "-1"),
        ("max_drop_percent", 0),
        ("max_drop_percent", 101),
    ],
)
def test_settings_are_validated(field: str, value: object) -> None:
    with pytest.raises(ValidationError) as raised:
        ReviewSettings.model_validate({field: value})
    assert raised.value.errors()[0]["loc"] == (field,)
