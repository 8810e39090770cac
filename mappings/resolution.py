"""Which configured rule applies. Pure: callers load the candidate rows (ORM rows or anything with
the same attributes) and these functions decide among them, so each precedence is stated once and
tested without a database."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol, TypeVar


class TicketRuleLike(Protocol):
    @property
    def problem(self) -> str | None:
        """The problem kind the rule is for; None for the catch-all rule."""

    @property
    def enabled(self) -> bool: ...


class BillingRuleLike(Protocol):
    @property
    def product(self) -> str: ...


TicketRuleT = TypeVar("TicketRuleT", bound=TicketRuleLike)


def ticket_rule_for(rules: Iterable[TicketRuleT], problem: str) -> TicketRuleT | None:
    """The rule a problem's ticket follows, among one PSA connection's rules: a rule for this
    problem kind beats the catch-all; a disabled rule counts as absent."""
    enabled = [rule for rule in rules if rule.enabled]
    specific = next((rule for rule in enabled if rule.problem == problem), None)
    return specific or next((rule for rule in enabled if rule.problem is None), None)


def configuration_rule(rules: Iterable[TicketRuleT]) -> TicketRuleT | None:
    """The rule whose flags govern configuration pushes to one PSA connection: the enabled
    catch-all alone. A configuration record carries an endpoint's whole status, not one problem,
    so problem-specific rules have no say; with no catch-all, the defaults apply."""
    return next((rule for rule in rules if rule.enabled and rule.problem is None), None)


def billing_rule_matches(rule: BillingRuleLike, product_name: str) -> bool:
    """Whether a billing rule bills an RMM's product: the rule's product is a case-insensitive
    substring of the product name the RMM reports ("Defender" bills "Microsoft Defender AV")."""
    return rule.product.lower() in product_name.lower()
