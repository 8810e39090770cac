"""The pure storm, exclusion, minimum-age and priority rules of `connector.alerts.storms.domain`."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from adapters.base import ProblemKind
from connector.alerts.storms import domain

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)


def members(count: int, *, age: timedelta = timedelta(minutes=5)) -> list[domain.Member]:
    return [domain.Member(f"ep-{n}", f"PC-{n:02d}", NOW - age) for n in range(count)]


def test_a_storm_starts_at_the_endpoint_threshold() -> None:
    rule = domain.StormRule(min_endpoints=10, min_percent=None, window=HOUR)
    assert not domain.storm_active(rule, members(9), 100, NOW, storm_open=False)
    assert domain.storm_active(rule, members(10), 100, NOW, storm_open=False)


def test_a_storm_starts_at_the_share_of_the_clients_endpoints() -> None:
    rule = domain.StormRule(min_endpoints=None, min_percent=25, window=HOUR)
    assert not domain.storm_active(rule, members(4), 20, NOW, storm_open=False)
    assert domain.storm_active(rule, members(5), 20, NOW, storm_open=False)


def test_a_share_alone_never_makes_a_storm_of_one_endpoint() -> None:
    rule = domain.StormRule(min_endpoints=None, min_percent=50, window=HOUR)
    assert not domain.storm_active(rule, members(1), 2, NOW, storm_open=False)


def test_only_problems_first_seen_within_the_window_start_a_storm() -> None:
    rule = domain.StormRule(min_endpoints=3, min_percent=None, window=HOUR)
    old = members(3, age=2 * HOUR)
    assert not domain.storm_active(rule, old, 10, NOW, storm_open=False)
    # ... but an open storm lasts while enough are open, whatever their age.
    assert domain.storm_active(rule, old, 10, NOW, storm_open=True)
    assert not domain.storm_active(rule, old[:2], 10, NOW, storm_open=True)


def test_no_threshold_no_storm() -> None:
    rule = domain.StormRule(min_endpoints=None, min_percent=None, window=HOUR)
    assert not rule.enabled
    assert not domain.storm_active(rule, members(500), 500, NOW, storm_open=True)


def test_membership_change_and_its_note() -> None:
    change = domain.membership_change({"a": "PC-A", "b": "PC-B"}, {"b": "PC-B", "c": "PC-C"})
    assert change == domain.Membership(joined=["PC-C"], left=["PC-A"])
    note = domain.membership_note(change, 2)
    assert note is not None and "Joined (1): PC-C" in note and "Recovered (1): PC-A" in note
    assert domain.membership_note(domain.membership_change({"a": "A"}, {"a": "A"}), 1) is None


def test_storm_description_lists_every_endpoint() -> None:
    text = domain.storm_description(ProblemKind.DEFINITIONS_OUTDATED, "Acme", members(30), 40)
    assert "30 of 40 endpoints of Acme" in text
    assert all(f"PC-{n:02d} (RMM id ep-{n})" in text for n in range(30))


SUBJECT = domain.Subject(
    kind=ProblemKind.AGENT_OFFLINE,
    endpoint_id="ep-7",
    hostname="KIOSK-07",
    client_id="c-1",
    client_name="Acme Labs",
    device_type="Windows Server 2022",
)


@pytest.mark.parametrize(
    ("exclusion", "excluded"),
    [
        (domain.Exclusion("endpoint", "kiosk-*"), True),
        (domain.Exclusion("endpoint", "ep-7"), True),
        (domain.Exclusion("endpoint", "PC-*"), False),
        (domain.Exclusion("client", "acme*"), True),
        (domain.Exclusion("client", "Other"), False),
        (domain.Exclusion("device_type", "*server*"), True),
        (domain.Exclusion("device_type", "macOS*"), False),
    ],
)
def test_exclusions_by_name_pattern(exclusion: domain.Exclusion, excluded: bool) -> None:
    assert (domain.exclusion_reason(SUBJECT, [], [exclusion]) is not None) is excluded


def test_a_problem_switched_off_in_the_rule_is_excluded() -> None:
    assert domain.exclusion_reason(SUBJECT, ["agent_offline"], []) is not None
    assert domain.exclusion_reason(SUBJECT, ["scan_overdue"], []) is None


def test_minimum_age_holds_back_status_findings_only() -> None:
    seen = NOW - timedelta(minutes=10)
    assert domain.ticket_not_before("status", seen, timedelta(minutes=30), NOW) == seen + timedelta(
        minutes=30
    )
    assert domain.ticket_not_before("status", seen, timedelta(minutes=5), NOW) is None
    assert domain.ticket_not_before("alert", seen, timedelta(minutes=30), NOW) is None
    assert domain.ticket_not_before("status", seen, timedelta(0), NOW) is None


def test_priority_follows_the_severity_map_else_the_rules_priority() -> None:
    mapping = {"critical": "1", "low": "4"}
    assert domain.priority_for(ProblemKind.THREAT_DETECTED, mapping, "3") == "1"
    assert domain.priority_for(ProblemKind.SCAN_OVERDUE, mapping, "3") == "4"
    assert domain.priority_for(ProblemKind.AGENT_OFFLINE, mapping, "3") == "3"
