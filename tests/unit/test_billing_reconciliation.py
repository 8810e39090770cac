"""Three-way reconciliation without a database (`billing.reconciliation.reconcile`): each cause from
the device lists it is derived from."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Any

from connector.billing import domain as b
from connector.billing.readback import PsaView
from connector.billing.reconciliation import (
    ID_CAP,
    AgentFact,
    CauseCode,
    EndpointFact,
    Recorded,
    Row,
    reconcile,
)


@dataclass(frozen=True)
class Rule:
    product: str = "acme edr"
    count_scope: str = "installed"
    count_method: str = "end_of_period"
    id: str = "rule-1"
    psa_connection_id: str = "psa"
    unit_price: Decimal = Decimal("4.50")
    cost_tiers: list[dict[str, Any]] = field(default_factory=list)


@dataclass(frozen=True)
class Mapping:
    psa_company_id: str
    psa_company_name: str | None = None


def usage(connection: str, client: str, seats: int, product: str = "Acme EDR 12") -> b.UsageRow:
    return b.UsageRow(connection, client, product, date(2026, 10, 1), seats, seats, seats, seats)


def devices(client: str, n: int, product: str | None = "Acme EDR 12", start: int = 0) -> list[EndpointFact]:
    return [EndpointFact(f"ep-{client}-{i}", "rmm", client, product) for i in range(start, start + n)]


MAPPINGS = {
    ("rmm", "c-1", "psa"): Mapping("1", "Company 1"),
    ("console", "cust-1", "psa"): Mapping("1", "Company 1"),
}


def run(
    *,
    usage_rows: Sequence[b.UsageRow] = (),
    licences: Sequence[b.UsageRow] = (),
    recorded: dict[tuple[str, str], Recorded] | None = None,
    endpoints: Sequence[EndpointFact] = (),
    agents: Sequence[AgentFact] = (),
    rules: Sequence[Rule] = (Rule(),),
    mappings: dict[b.MappingKey, Mapping] | None = None,
    reads: dict[tuple[str, str], PsaView] | None = None,
) -> list[Row]:
    return reconcile(
        rules,
        usage_rows,
        licences,
        MAPPINGS if mappings is None else mappings,
        recorded or {},
        endpoints,
        agents,
        {"console"},
        psa_views=reads,
    )


def codes(row: Row) -> list[str]:
    return [cause.code.value for cause in row.causes]


def test_matching_numbers_have_no_cause_and_no_difference() -> None:
    [row] = run(
        usage_rows=[usage("rmm", "c-1", 3)],
        licences=[usage("console", "cust-1", 3)],
        recorded={("rule-1", "1"): Recorded(3, "2026-09", "L1")},
        endpoints=devices("c-1", 3),
    )
    assert (row.company_id, row.rmm_count, row.console_count, row.psa_quantity) == ("1", 3, 3, 3)
    assert row.causes == ()
    assert row.differences == {"rmm_minus_psa": 0, "console_minus_psa": 0, "console_minus_rmm": 0}


def test_rmm_devices_without_any_billed_product_are_listed() -> None:
    [row] = run(
        usage_rows=[usage("rmm", "c-1", 2)],
        recorded={("rule-1", "1"): Recorded(2, "2026-09", "L1")},
        endpoints=devices("c-1", 2) + devices("c-1", 1, product=None, start=2),
        mappings={("rmm", "c-1", "psa"): Mapping("1", "Company 1")},
    )
    [cause] = row.causes
    assert (cause.code, cause.count, cause.ids) == (CauseCode.RMM_DEVICE_WITHOUT_PRODUCT, 1, ("ep-c-1-2",))
    assert row.console_count is None  # no console is mapped to the company
    assert row.differences["console_minus_rmm"] is None


def test_a_device_billed_under_another_rule_is_not_missing_this_product() -> None:
    backup = Rule(product="backup", id="rule-2")
    rows = run(
        rules=[Rule(), backup],
        usage_rows=[usage("rmm", "c-1", 1), usage("rmm", "c-1", 1, "Backup Pro")],
        recorded={("rule-1", "1"): Recorded(1, None, "L1"), ("rule-2", "1"): Recorded(1, None, "L2")},
        endpoints=devices("c-1", 1) + devices("c-1", 1, product="Backup Pro", start=1),
    )
    assert [codes(row) for row in rows] == [[], []]


def test_console_agents_no_rmm_device_matches_are_listed_under_the_product_they_license() -> None:
    [row] = run(
        usage_rows=[usage("rmm", "c-1", 2)],
        licences=[usage("console", "cust-1", 3, "Acme EDR Complete")],
        recorded={("rule-1", "1"): Recorded(2, None, "L1")},
        endpoints=devices("c-1", 2),
        agents=[AgentFact("ag-9", "console", "cust-1", None)],
    )
    assert (row.rmm_count, row.console_count, row.psa_quantity) == (2, 3, 2)
    [cause] = row.causes
    assert (cause.code, cause.ids) == (CauseCode.CONSOLE_AGENT_WITHOUT_RMM_DEVICE, ("ag-9",))
    assert row.differences["console_minus_rmm"] == 1


def test_unmapped_clients_form_one_row_without_a_company() -> None:
    rows = run(
        usage_rows=[usage("rmm", "c-1", 1), usage("rmm", "c-2", 4)],
        licences=[usage("console", "cust-7", 2)],
        recorded={("rule-1", "1"): Recorded(1, None, "L1")},
        endpoints=devices("c-1", 1),
    )
    assert [codes(row) for row in rows] == [[], ["unmapped_client"]]
    unmapped = rows[1]
    assert (unmapped.company_id, unmapped.rmm_count, unmapped.console_count) == (None, 4, 2)
    assert unmapped.causes[0].ids == ("console:cust-7", "rmm:c-2")


def test_seats_without_a_recorded_line_are_new_revenue() -> None:
    [row] = run(usage_rows=[usage("rmm", "c-1", 5)], endpoints=devices("c-1", 5))
    [cause] = row.causes
    assert (cause.code, cause.count, cause.ids, row.psa_quantity) == (
        CauseCode.AGREEMENT_LINE_MISSING,
        5,
        ("1",),
        None,
    )


def test_a_recorded_quantity_different_from_the_count_is_a_change_since_the_last_push() -> None:
    [row] = run(
        usage_rows=[usage("rmm", "c-1", 7)],
        recorded={("rule-1", "1"): Recorded(5, "2026-09", "L1")},
        endpoints=devices("c-1", 7),
    )
    [cause] = row.causes
    assert (cause.code, cause.count, cause.ids) == (CauseCode.COUNT_CHANGED_SINCE_PUSH, 2, ("L1",))
    assert row.differences["rmm_minus_psa"] == 2


def test_a_console_counted_rule_compares_the_line_with_the_consoles_seats() -> None:
    [row] = run(
        rules=[Rule(count_scope="console_seats")],
        usage_rows=[usage("rmm", "c-1", 4)],
        licences=[usage("console", "cust-1", 4)],
        recorded={("rule-1", "1"): Recorded(3, None, "L1")},
        endpoints=devices("c-1", 4),
    )
    assert (row.rmm_count, row.console_count, row.billed_count) == (4, 4, 4)
    assert codes(row) == ["count_changed_since_push"]


def test_a_line_still_recorded_for_a_client_with_no_devices_is_a_retired_client_billed() -> None:
    [row] = run(recorded={("rule-1", "1"): Recorded(6, "2026-09", "L1")})
    [cause] = row.causes
    assert (cause.code, cause.count, cause.ids) == (CauseCode.RETIRED_CLIENT_BILLED, 6, ("L1",))
    assert (row.rmm_count, row.psa_quantity, row.company_name) == (0, 6, "Company 1")


def test_ids_are_capped_but_the_total_counts_them_all() -> None:
    [row] = run(
        usage_rows=[usage("rmm", "c-1", 1)],
        recorded={("rule-1", "1"): Recorded(1, None, "L1")},
        endpoints=devices("c-1", 1) + devices("c-1", ID_CAP + 5, product=None, start=1),
    )
    [cause] = row.causes
    assert (len(cause.ids), cause.total, cause.count) == (ID_CAP, ID_CAP + 5, ID_CAP + 5)


def test_a_line_changed_in_the_psa_is_read_back_and_named() -> None:
    [row] = run(
        usage_rows=[usage("rmm", "c-1", 5)],
        recorded={("rule-1", "1"): Recorded(5, "2026-09", "L1")},
        endpoints=devices("c-1", 5),
        reads={("rule-1", "1"): PsaView("L1", Decimal(8), True)},
    )
    [cause] = row.causes
    assert (row.psa_quantity, cause.code, cause.count, cause.ids) == (
        8,
        CauseCode.PSA_QUANTITY_CHANGED,
        3,
        ("L1",),
    )


def test_a_line_removed_in_the_psa_reads_zero_and_is_a_change_outside() -> None:
    [row] = run(
        usage_rows=[usage("rmm", "c-1", 5)],
        recorded={("rule-1", "1"): Recorded(5, "2026-09", "L1")},
        endpoints=devices("c-1", 5),
        reads={("rule-1", "1"): PsaView(None, None, None)},
    )
    assert (row.psa_quantity, codes(row)) == (0, ["psa_quantity_changed"])


def test_a_line_someone_else_made_is_unlinked_not_missing() -> None:
    [row] = run(
        usage_rows=[usage("rmm", "c-1", 5)],
        endpoints=devices("c-1", 5),
        reads={("rule-1", "1"): PsaView("X9", Decimal(7), False)},
    )
    [cause] = row.causes
    assert (row.psa_quantity, cause.code, cause.ids) == (7, CauseCode.UNLINKED_AGREEMENT_LINE, ("X9",))


def test_a_failed_read_falls_back_to_what_connector_wrote() -> None:
    [row] = run(
        usage_rows=[usage("rmm", "c-1", 5)],
        recorded={("rule-1", "1"): Recorded(5, "2026-09", "L1")},
        endpoints=devices("c-1", 5),
        reads={("rule-1", "1"): PsaView("L1", Decimal(9), True, error="timed out")},
    )
    assert (row.psa_quantity, row.causes) == (5, ())
