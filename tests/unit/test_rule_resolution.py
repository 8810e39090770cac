"""Which rule applies, decided without a database (`mappings.resolution`)."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from mappings.resolution import billing_rule_matches, configuration_rule, ticket_rule_for


@dataclass(frozen=True)
class Rule:
    name: str
    problem: str | None
    enabled: bool = True


@dataclass(frozen=True)
class Billing:
    product: str


CATCH_ALL = Rule("catch-all", None)
THREATS = Rule("threats", "threat_detected")
OFFLINE = Rule("offline", "agent_offline")


def test_a_problem_specific_rule_beats_the_catch_all_in_any_order() -> None:
    assert ticket_rule_for([CATCH_ALL, THREATS, OFFLINE], "threat_detected") is THREATS
    assert ticket_rule_for([OFFLINE, THREATS, CATCH_ALL], "threat_detected") is THREATS


def test_a_problem_without_a_rule_of_its_own_follows_the_catch_all() -> None:
    assert ticket_rule_for([THREATS, CATCH_ALL], "scan_overdue") is CATCH_ALL


def test_no_ticket_rule_when_neither_a_specific_rule_nor_a_catch_all_exists() -> None:
    assert ticket_rule_for([THREATS, OFFLINE], "scan_overdue") is None
    assert ticket_rule_for([], "scan_overdue") is None


def test_a_disabled_rule_counts_as_absent() -> None:
    disabled_threats = Rule("threats", "threat_detected", enabled=False)
    assert ticket_rule_for([disabled_threats, CATCH_ALL], "threat_detected") is CATCH_ALL
    assert ticket_rule_for([disabled_threats, Rule("off", None, enabled=False)], "threat_detected") is None


def test_configuration_pushes_follow_the_catch_all_alone() -> None:
    assert configuration_rule([THREATS, CATCH_ALL, OFFLINE]) is CATCH_ALL
    assert configuration_rule([THREATS, OFFLINE]) is None
    assert configuration_rule([Rule("off", None, enabled=False), THREATS]) is None


@pytest.mark.parametrize(
    ("product", "reported", "matches"),
    [
        ("Defender", "Microsoft Defender Antivirus", True),
        ("defender", "MICROSOFT DEFENDER", True),
        ("Microsoft Defender Antivirus", "Microsoft Defender Antivirus", True),
        ("SentinelOne", "Microsoft Defender Antivirus", False),
        ("Defender Antivirus Plus", "Defender Antivirus", False),
    ],
)
def test_a_billing_rule_bills_products_whose_name_contains_its_own(
    product: str, reported: str, matches: bool
) -> None:
    assert billing_rule_matches(Billing(product), reported) is matches
