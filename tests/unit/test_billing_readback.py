"""The PSA's copy of a billed line against connector's record of it: which differences hold a line
for review, and why."""

from __future__ import annotations

from decimal import Decimal

from connector.billing.readback import Finding, PsaView, Written, judge


def test_a_line_the_psa_holds_as_written_is_in_step() -> None:
    assert judge(Written("L1", Decimal(5)), PsaView("L1", Decimal(5), True)) is None


def test_never_read_is_not_a_finding() -> None:
    assert judge(Written("L1", Decimal(5)), None) is None


def test_a_quantity_changed_in_the_psa_is_edited_outside_with_both_numbers() -> None:
    found = judge(Written("L1", Decimal(5)), PsaView("L1", Decimal(8), True))
    assert found is not None
    assert (found.finding, found.psa_quantity, found.link_line_id) == (Finding.EDITED_OUTSIDE, 8, "L1")
    assert "connector wrote 5, the PSA has 8" in found.reason


def test_a_line_gone_from_the_agreement_is_removed_outside() -> None:
    found = judge(Written("L1", Decimal(5)), PsaView(None, None, None))
    assert found is not None and (found.finding, found.link_line_id) == (Finding.REMOVED_OUTSIDE, None)


def test_someone_elses_line_before_connector_wrote_any_is_unlinked() -> None:
    found = judge(None, PsaView("X9", Decimal(7), False))
    assert found is not None
    assert (found.finding, found.psa_quantity, found.link_line_id) == (Finding.UNLINKED, 7, "X9")


def test_connectors_own_marked_line_not_yet_recorded_is_not_held() -> None:
    """A push that wrote the line and died before recording it: the marker says it is connector's."""
    assert judge(None, PsaView("L1", Decimal(5), True)) is None
    assert judge(Written(None, Decimal(0)), PsaView("L1", Decimal(5), True)) is None


def test_a_line_the_psa_keeps_one_per_product_is_the_rules_by_configuration() -> None:
    assert judge(None, PsaView("S1", Decimal(10), None)) is None


def test_a_failed_read_is_unreadable_whatever_was_read_before() -> None:
    found = judge(Written("L1", Decimal(5)), PsaView("L1", Decimal(5), True, error="503 from the PSA"))
    assert found is not None and found.finding == Finding.UNREADABLE
    assert "503 from the PSA" in found.reason


def test_a_prorated_line_compares_exactly_and_shows_both_figures() -> None:
    assert judge(Written("L1", Decimal("4.84")), PsaView("L1", Decimal("4.84"), True)) is None
    found = judge(Written("L1", Decimal("4.84")), PsaView("L1", Decimal("4.40"), True))
    assert found is not None and found.psa_quantity == 5  # whole seats, rounded up like a line's
    assert "connector wrote 4.84, the PSA has 4.4" in found.reason
