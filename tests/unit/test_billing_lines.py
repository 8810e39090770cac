"""A billing rule's lines from daily usage, without a database (`billing.domain.lines_for_rule`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Any

from connector.billing import domain as b


@dataclass(frozen=True)
class Rule:
    product: str = "acme edr"
    count_scope: str = "installed"
    count_method: str = "peak"
    id: str = "rule-1"
    psa_connection_id: str = "psa"
    unit_price: Decimal = Decimal("4.50")
    cost_tiers: list[dict[str, Any]] = field(
        default_factory=lambda: [
            {"min_seats": 1, "unit_cost": "2.10"},
            {"min_seats": 101, "unit_cost": "1.85"},
        ]
    )


@dataclass(frozen=True)
class Mapping:
    psa_company_id: str
    psa_company_name: str | None = None


def usage(
    client: str, counts: list[int], product: str = "Acme EDR 12", protected: int | None = None
) -> list[b.UsageRow]:
    return [
        b.UsageRow(
            "rmm", client, product, date(2026, 10, day), n, n, n if protected is None else protected, n
        )
        for day, n in enumerate(counts, start=1)
    ]


MAPPINGS = {
    ("rmm", "c-0", "psa"): Mapping("1", "Company 1"),
    ("rmm", "c-1", "psa"): Mapping("2", "Company 2"),
    ("rmm", "c-1b", "psa"): Mapping("2", "Company 2"),
}


def test_clients_of_one_company_share_its_line_and_the_total_reaches_a_tier() -> None:
    rows = usage("c-0", [40, 60, 55]) + usage("c-1", [30, 30, 30]) + usage("c-1b", [5, 12, 3])

    billed = b.lines_for_rule(Rule(), rows, MAPPINGS)

    assert [(line.company_id, line.quantity, line.unit_cost) for line in billed.lines] == [
        ("1", 60, Decimal("1.85")),
        ("2", 42, Decimal("1.85")),  # peak of c-1 (30) + peak of c-1b (12); 102 seats reach the second tier
    ]
    assert billed.clients == {"1": ["c-0"], "2": ["c-1", "c-1b"]}
    assert billed.unmapped == []


def test_every_product_name_the_rule_matches_adds_to_the_same_days() -> None:
    rows = usage("c-0", [40, 60]) + usage("c-0", [3, 4], product="ACME EDR lite") + usage("c-0", [9], "Other")

    (line,) = b.lines_for_rule(Rule(), rows, MAPPINGS).lines

    assert line.quantity == 64  # day 2: 60 + 4


def test_the_count_scope_and_method_choose_the_figures() -> None:
    rows = usage("c-0", [10, 20, 30], protected=5)

    (line,) = b.lines_for_rule(Rule(count_scope="protected", count_method="average"), rows, MAPPINGS).lines

    assert line.quantity == 5


def test_unmapped_clients_with_seats_are_reported_not_billed() -> None:
    rows = usage("c-0", [10]) + usage("c-lost", [7]) + usage("c-empty", [0])

    billed = b.lines_for_rule(Rule(), rows, MAPPINGS)

    assert [line.company_id for line in billed.lines] == ["1"]
    assert billed.unmapped == [b.UnmappedClient("rmm", "c-lost", 7, "acme edr")]


def test_a_mapping_to_another_psa_does_not_bill_under_this_rule() -> None:
    billed = b.lines_for_rule(Rule(psa_connection_id="other-psa"), usage("c-0", [10]), MAPPINGS)

    assert billed.lines == []
    assert billed.unmapped == [b.UnmappedClient("rmm", "c-0", 10, "acme edr")]
