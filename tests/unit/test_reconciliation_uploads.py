"""The reconciliation's console count from vendors' uploaded usage reports (`reconcile` given the
uploaded seats as data): where it applies, what a mapped console overrides, and the causes."""

from __future__ import annotations

from collections.abc import Sequence

from connector.billing.reconciliation import CauseCode, Recorded, Row, Uploaded, reconcile
from tests.unit.test_billing_reconciliation import MAPPINGS, Mapping, Rule, devices, usage

RMM_ONLY = {("rmm", "c-1", "psa"): Mapping("1", "Company 1")}


def report(company: str | None, seats: int, product: str = "Acme EDR Complete", **kw: str) -> Uploaded:
    return Uploaded(
        kw.get("upload_id", "up-1"),
        kw.get("psa", "psa"),
        company,
        kw.get("name", "Company 1" if company == "1" else None),
        kw.get("customer", "Customer One"),
        product,
        seats,
    )


def run(uploaded: Sequence[Uploaded], **kw: object) -> list[Row]:
    return reconcile(
        kw.get("rules", [Rule()]),  # type: ignore[arg-type]
        kw.get("usage", [usage("rmm", "c-1", 3)]),  # type: ignore[arg-type]
        kw.get("licences", []),  # type: ignore[arg-type]
        kw.get("mappings", RMM_ONLY),  # type: ignore[arg-type]
        kw.get("recorded", {("rule-1", "1"): Recorded(3, "2026-09", "L1")}),  # type: ignore[arg-type]
        devices("c-1", 3),
        [],
        {"console"},
        uploaded=uploaded,
    )


def test_a_company_without_a_console_takes_the_uploaded_count() -> None:
    [row] = run([report("1", 3)])
    assert (row.rmm_count, row.console_count, row.console_source, row.psa_quantity) == (3, 3, "upload", 3)
    assert row.causes == ()
    assert row.differences == {"rmm_minus_psa": 0, "console_minus_psa": 0, "console_minus_rmm": 0}


def test_without_an_upload_there_is_no_console_count() -> None:
    [row] = run([])
    assert (row.console_count, row.console_source) == (None, None)


def test_uploaded_seats_beyond_the_rmm_are_a_cause_naming_the_upload() -> None:
    [row] = run([report("1", 4), report("1", 1, upload_id="up-2", product="ACME EDR add-on")])
    assert (row.console_count, row.console_source) == (5, "upload")
    [cause] = row.causes
    assert (cause.code, cause.count, cause.ids) == (
        CauseCode.UPLOADED_SEATS_WITHOUT_RMM_DEVICE,
        2,
        ("up-1", "up-2"),
    )
    assert row.differences["console_minus_psa"] == 2


def test_only_products_the_rule_bills_and_uploads_of_its_psa_count() -> None:
    [row] = run([report("1", 3), report("1", 9, product="Backup Pro"), report("1", 9, psa="other")])
    assert row.console_count == 3


def test_a_mapped_console_wins_over_an_upload() -> None:
    [row] = run(
        [report("1", 9)],
        mappings=MAPPINGS,
        licences=[usage("console", "cust-1", 3)],
    )
    assert (row.console_count, row.console_source) == (3, "console")
    assert row.causes == ()


def test_a_company_only_the_upload_knows_gets_a_row() -> None:
    rows = run([report("2", 4, name="Company 2")])
    second = next(r for r in rows if r.company_id == "2")
    assert (second.company_name, second.rmm_count, second.console_count, second.psa_quantity) == (
        "Company 2",
        0,
        4,
        None,
    )
    assert [c.code for c in second.causes] == [CauseCode.UPLOADED_SEATS_WITHOUT_RMM_DEVICE]


def test_unmatched_customers_are_a_row_of_their_own() -> None:
    rows = run([report(None, 2, customer="Zephyr Ltd"), report(None, 1, customer="Yonder")])
    unmatched = rows[-1]
    assert (unmatched.company_id, unmatched.console_count, unmatched.console_source) == (None, 3, "upload")
    [cause] = unmatched.causes
    assert (cause.code, cause.ids) == (CauseCode.UPLOAD_CUSTOMER_UNMATCHED, ("Yonder", "Zephyr Ltd"))


def test_a_console_counted_rule_does_not_bill_from_an_upload() -> None:
    [row] = run(
        [report("1", 5)],
        rules=[Rule(count_scope="console_seats")],
        recorded={},
    )
    assert (row.console_count, row.console_source, row.billed_count) == (5, "upload", 0)
    assert [c.code for c in row.causes] == [CauseCode.UPLOADED_SEATS_WITHOUT_RMM_DEVICE]
