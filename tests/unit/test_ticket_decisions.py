"""The pure ticket decision: problem × link × routing → the next action. No I/O, no mocks."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from adapters.base import ProblemKind
from connector.alerts import domain as d
from mappings.rules import ClosePolicy

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
RULE = d.RuleView(
    note_interval=timedelta(minutes=60), summary_template="{problem_title} on {hostname} ({client})"
)
ROUTED = d.Routing(company_id="250", rule=RULE)
OPEN = d.ProblemView(
    kind=ProblemKind.THREAT_DETECTED,
    state="open",
    hostname="WS-01",
    endpoint_id="ep-1",
    client="Contoso",
    message="Trojan found",
    occurrences=1,
    noted_occurrences=1,
    first_seen_at=NOW - timedelta(hours=2),
    last_seen_at=NOW - timedelta(hours=1),
)


def test_open_problem_without_ticket_opens_one_with_rendered_summary() -> None:
    action = d.decide(OPEN, None, ROUTED, NOW)
    assert isinstance(action, d.OpenTicket)
    assert action.summary == "Threat detected on WS-01 (Contoso)"
    assert "Trojan found" in action.description


def test_unmapped_and_unruled_problems_are_unroutable_not_dropped() -> None:
    assert d.decide(OPEN, None, d.Routing(company_id=None, rule=RULE), NOW) == d.Unroutable("unmapped")
    assert d.decide(OPEN, None, d.Routing(company_id="250", rule=None), NOW) == d.Unroutable("no_rule")


def test_pending_link_resumes_by_marker_instead_of_creating() -> None:
    action = d.decide(OPEN, d.LinkView("pending", None), ROUTED, NOW)
    assert isinstance(action, d.ResumeCreate) and action.create_if_missing is True
    cleared = replace(OPEN, state="cleared")
    action = d.decide(cleared, d.LinkView("pending", None), ROUTED, NOW)
    assert isinstance(action, d.ResumeCreate) and action.create_if_missing is False


def test_repeats_inside_the_interval_wait_for_one_collapsed_note() -> None:
    repeated = replace(OPEN, occurrences=5)
    link = d.LinkView("open", last_note_at=NOW - timedelta(minutes=10))
    assert d.decide(repeated, link, ROUTED, NOW) == d.NoteLater(NOW + timedelta(minutes=50))

    later = d.decide(repeated, link, ROUTED, NOW + timedelta(minutes=50))
    assert isinstance(later, d.AddNote)
    assert later.covers_occurrences == 4
    assert "4 more times" in later.text


def test_nothing_new_means_nothing_to_do() -> None:
    assert d.decide(OPEN, d.LinkView("open", NOW), ROUTED, NOW) == d.Nothing()


def test_cleared_problem_closes_its_open_ticket_with_a_resolution() -> None:
    cleared = replace(OPEN, state="cleared", clear_message="quarantined")
    action = d.decide(cleared, d.LinkView("open", NOW), ROUTED, NOW)
    assert isinstance(action, d.CloseTicket)
    assert "quarantined" in action.resolution


def test_ticket_closed_by_a_technician_is_never_reopened_while_the_problem_lasts() -> None:
    repeated = replace(OPEN, occurrences=3)
    assert d.decide(repeated, d.LinkView("closed", NOW), ROUTED, NOW) == d.Nothing()
    assert d.decide(replace(OPEN, state="cleared"), d.LinkView("closed", NOW), ROUTED, NOW) == d.Nothing()


def test_cleared_problem_close_carries_the_rules_close_policy() -> None:
    cleared = replace(OPEN, state="cleared")
    link = d.LinkView("open", NOW)
    assert d.decide(cleared, link, ROUTED, NOW).policy == ClosePolicy.CLOSE_IF_UNTOUCHED  # type: ignore[union-attr]
    note_only = d.Routing("250", replace(RULE, close_policy=ClosePolicy.NOTE_ONLY))
    assert d.decide(cleared, link, note_only, NOW) == d.CloseTicket(
        d.resolution_note(cleared), ClosePolicy.NOTE_ONLY
    )
    assert d.decide(cleared, d.LinkView("left_open", NOW), ROUTED, NOW) == d.Nothing()


def test_acknowledged_problem_waits_for_the_reraise_interval_or_forever() -> None:
    repeated = replace(OPEN, occurrences=9)
    acknowledged = d.LinkView("acknowledged", NOW - timedelta(hours=3), closed_at=NOW - timedelta(hours=2))
    assert d.decide(repeated, acknowledged, ROUTED, NOW) == d.Nothing()
    reraising = d.Routing("250", replace(RULE, reraise_after=timedelta(hours=4)))
    assert d.decide(repeated, acknowledged, reraising, NOW) == d.NoteLater(NOW + timedelta(hours=2))
    assert d.decide(repeated, acknowledged, reraising, NOW + timedelta(hours=2)) == d.Reraise()
    assert d.decide(replace(repeated, state="cleared"), acknowledged, reraising, NOW) == d.Nothing()


def test_left_open_note_says_why() -> None:
    assert "a technician has worked on this ticket (note)" in d.left_open_note(
        "Resolved.", ClosePolicy.CLOSE_IF_UNTOUCHED, "note"
    )
    assert "leaves closing to a technician" in d.left_open_note("Resolved.", ClosePolicy.NOTE_ONLY, "")
