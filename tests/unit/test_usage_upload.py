"""Vendors' usage reports read with saved column profiles, and their customers matched to PSA
companies: real CSV text, no mocks."""

from __future__ import annotations

import pytest

from connector.billing.usage_upload import (
    Columns,
    Company,
    Rejection,
    ReportError,
    ReportRow,
    decode,
    detect_delimiter,
    match,
    multipart_file,
    read_report,
)

COMPANIES = [
    Company("100", "Acme Dental"),
    Company("200", "Blue Harbor Logistics"),
    Company("300", "Cedar Law"),
]


def test_profiles_name_the_columns_each_vendor_uses() -> None:
    first = "Customer,SKU,Seats\nAcme Dental,EDR Complete,5\n"
    second = "Tenant Name,Product Name,Licensed Devices,Region\nAcme Dental,Endpoint EDR,7,EU\n"
    one = read_report(first, Columns("customer", "sku", "seats"))
    two = read_report(second, Columns("Tenant Name", "product name", "LICENSED DEVICES"))
    assert one.rows == [ReportRow(2, "Acme Dental", "EDR Complete", 5)]
    assert two.rows == [ReportRow(2, "Acme Dental", "Endpoint EDR", 7)]
    assert one.rejected == two.rejected == []


def test_semicolons_are_detected_or_set() -> None:
    text = "Kunde;Artikel;Anzahl\nAcme Dental;EDR;3\n"
    assert detect_delimiter("Kunde;Artikel;Anzahl") == ";"
    assert detect_delimiter("a\tb\tc") == "\t"
    assert detect_delimiter("single") == ","
    assert read_report(text, Columns("Kunde", "Artikel", "Anzahl")).rows == [
        ReportRow(2, "Acme Dental", "EDR", 3)
    ]
    assert read_report(text, Columns("Kunde", "Artikel", "Anzahl", delimiter=";")).rows[0].quantity == 3


def test_a_byte_order_mark_is_dropped() -> None:
    data = "\ufeffCustomer,SKU,Seats\r\nAcme Dental,EDR,2\r\n".encode()
    text = decode(data)
    assert read_report(text, Columns("Customer", "SKU", "Seats")).rows == [
        ReportRow(2, "Acme Dental", "EDR", 2)
    ]
    assert decode("Café,EDR,1".encode("cp1252")) == "Café,EDR,1"


def test_quoted_fields_keep_their_commas_and_lines_are_counted_from_the_file() -> None:
    text = (
        "Usage report, November\n"
        "generated 2026-12-01\n"
        'Customer,SKU,Seats\n"Acme Dental, Inc.","EDR, Complete",4\n"Blue ""Harbor""",EDR,"6"\n'
    )
    report = read_report(text, Columns("Customer", "SKU", "Seats", header_row=2))
    assert report.rows == [
        ReportRow(4, "Acme Dental, Inc.", "EDR, Complete", 4),
        ReportRow(5, 'Blue "Harbor"', "EDR", 6),
    ]


def test_bad_rows_are_rejected_naming_line_and_column() -> None:
    text = (
        "Customer,SKU,Seats\nAcme,EDR,1,234\nBlue,EDR,2.5\nCedar,EDR,-1\nDelta,EDR,\nEcho,EDR\n"
        ",EDR,3\nFox,EDR,9\n"
    )
    report = read_report(text, Columns("Customer", "SKU", "Seats"))
    assert report.rows == [ReportRow(8, "Fox", "EDR", 9)]
    assert report.rejected == [
        Rejection(2, "column 4", "1 more cell than the header has (an unquoted delimiter?)"),
        Rejection(3, "Seats", "not a whole number: '2.5'"),
        Rejection(4, "Seats", "negative: '-1'"),
        Rejection(5, "Seats", "empty"),
        Rejection(6, "Seats", "missing"),
        Rejection(7, "Customer", "empty"),
    ]


def test_empty_trailing_cells_are_not_extra() -> None:
    report = read_report("Customer,SKU,Seats\nAcme,EDR,2,,\n", Columns("Customer", "SKU", "Seats"))
    assert report.rows == [ReportRow(2, "Acme", "EDR", 2)]


def test_a_thousands_separator_in_a_quoted_quantity_is_rejected() -> None:
    report = read_report('Customer,SKU,Seats\nAcme,EDR,"1,234"\n', Columns("Customer", "SKU", "Seats"))
    assert report.rows == []
    assert report.rejected == [Rejection(2, "Seats", "not a whole number: '1,234'")]


def test_blank_lines_are_not_rows() -> None:
    report = read_report("Customer,SKU,Seats\n\nAcme,EDR,1\n,,\n", Columns("Customer", "SKU", "Seats"))
    assert report.rows == [ReportRow(3, "Acme", "EDR", 1)]
    assert report.rejected == []


def test_a_column_missing_from_the_header_names_the_profile_field() -> None:
    with pytest.raises(ReportError) as error:
        read_report("Customer,SKU,Count\nAcme,EDR,1\n", Columns("Customer", "SKU", "Seats"))
    assert error.value.field == "quantity_column"
    assert "'Seats'" in error.value.message and "'Count'" in error.value.message
    with pytest.raises(ReportError) as short:
        read_report("title only\n", Columns("Customer", "SKU", "Seats", header_row=3))
    assert short.value.field == "header_row"
    with pytest.raises(ReportError) as nul:
        read_report("Customer,SKU,Seats\nA\0,EDR,1\n", Columns("Customer", "SKU", "Seats"))
    assert nul.value.field == "body"


def rows(*items: tuple[str, str, int]) -> list[ReportRow]:
    return [ReportRow(n + 2, customer, product, seats) for n, (customer, product, seats) in enumerate(items)]


def test_customer_names_match_ignoring_case_and_spaces_and_unmatched_are_reported() -> None:
    found = match(
        rows(("ACME  dental", "EDR", 3), ("acme dental", "EDR", 2), ("Zephyr Ltd", "EDR", 4)),
        "customer_name",
        COMPANIES,
        {},
    )
    acme, zephyr = found
    assert (acme.company, acme.quantity, acme.lines) == (Company("100", "Acme Dental"), 5, [2, 3])
    assert (zephyr.company, zephyr.quantity, zephyr.customer) == (None, 4, "Zephyr Ltd")
    assert zephyr.reason == "no PSA company has this name"


def test_an_alias_maps_a_name_that_differs() -> None:
    [usage] = match(
        rows(("Blue Harbour Log. GmbH", "EDR", 6)),
        "customer_name",
        COMPANIES,
        {"blue harbour log. gmbh": "200"},
    )
    assert usage.company == Company("200", "Blue Harbor Logistics")
    [unknown] = match(rows(("X", "EDR", 1)), "customer_name", COMPANIES, {"X": "999"})
    assert unknown.company == Company("999", None)  # the PSA id as given; its name is not known


def test_company_ids_and_exact_company_names() -> None:
    by_id = match(rows(("300", "EDR", 2), ("301", "EDR", 1)), "psa_company_id", COMPANIES, {})
    assert [(u.company, u.reason) for u in by_id] == [
        (Company("300", "Cedar Law"), None),
        (None, "no PSA company has this id"),
    ]
    exact = match(rows(("Cedar Law", "EDR", 2), ("cedar law", "EDR", 1)), "psa_company_name", COMPANIES, {})
    assert [u.company for u in exact] == [Company("300", "Cedar Law"), None]


def test_two_companies_of_one_name_are_not_guessed_between() -> None:
    twins = [*COMPANIES, Company("101", "ACME DENTAL")]
    [usage] = match(rows(("Acme Dental", "EDR", 1)), "customer_name", twins, {})
    assert usage.company is None and usage.reason is not None and "2 PSA companies" in usage.reason


def test_products_of_one_customer_stay_apart() -> None:
    found = match(rows(("Acme Dental", "EDR", 1), ("Acme Dental", "MDR", 2)), "customer_name", COMPANIES, {})
    assert [(u.product, u.quantity) for u in found] == [("EDR", 1), ("MDR", 2)]


def test_the_file_of_a_multipart_form() -> None:
    boundary = "XyZ"
    body = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="note"\r\n\r\nhello\r\n'
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="nov.csv"\r\n'
        "Content-Type: text/csv\r\n\r\nCustomer,SKU,Seats\r\nAcme,EDR,1\r\n"
        f"--{boundary}--\r\n"
    ).encode()
    name, data = multipart_file(f"multipart/form-data; boundary={boundary}", body)
    assert name == "nov.csv"
    assert data == b"Customer,SKU,Seats\r\nAcme,EDR,1"
    with pytest.raises(ValueError):
        multipart_file(f"multipart/form-data; boundary={boundary}", f"--{boundary}--\r\n".encode())


def test_a_company_listed_under_a_second_name_matches_either() -> None:
    listed = [*COMPANIES, Company("200", "Blue Harbor")]  # a client mapping's name for it
    found = match(
        rows(("blue harbor", "EDR", 1), ("Blue Harbor Logistics", "EDR", 2)), "customer_name", listed, {}
    )
    assert [(u.company, u.quantity) for u in found] == [(Company("200", "Blue Harbor Logistics"), 3)]


def test_an_implausible_seat_count_is_rejected() -> None:
    report = read_report(
        "Customer,SKU,Seats\nAcme,EDR,1000001\nAcme,EDR,1000000\n", Columns("Customer", "SKU", "Seats")
    )
    assert report.rejected == [Rejection(2, "Seats", "more than 1000000 seats: '1000001'")]
    assert [r.quantity for r in report.rows] == [1_000_000]
