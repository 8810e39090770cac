"""What a new ticket carries of its endpoint: the link to it in the RMM's console in the body
(pure `describe`, the storm ticket's member list, and the RMM kinds' URL builders). No I/O, no
mocks."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import pytest

from adapters.base import ProblemKind
from adapters.datto_rmm.adapter import device_page_url
from adapters.datto_rmm.models import DattoOptions
from adapters.ninjaone import SPEC as NINJAONE
from adapters.ninjaone.adapter import device_dashboard_url
from adapters.ninjaone.models import NinjaOneOptions
from adapters.registry import discover
from connector.alerts import domain as d
from connector.alerts.storms.domain import Member, storm_description

SEEN = datetime(2026, 11, 20, 9, 14, tzinfo=UTC)
PROBLEM = d.ProblemView(
    kind=ProblemKind.PROTECTION_DISABLED,
    state="open",
    hostname="WS-01",
    endpoint_id="1042",
    client="Contoso",
    message="",
    occurrences=1,
    noted_occurrences=1,
    first_seen_at=SEEN,
    last_seen_at=SEEN,
)


def test_the_body_links_to_the_endpoint_in_the_rmm_when_known() -> None:
    url = "https://eu.ninjarmm.com/#/deviceDashboard/1042/overview"
    lines = d.describe(replace(PROBLEM, rmm_url=url)).splitlines()
    endpoint = lines.index("Endpoint: WS-01 (RMM id 1042)")
    assert lines[endpoint + 1] == f"In the RMM: {url}"


def test_the_body_says_nothing_of_the_rmm_without_a_link() -> None:
    text = d.describe(PROBLEM)
    assert "In the RMM" not in text
    assert "Endpoint: WS-01 (RMM id 1042)\nProblem: protection_disabled" in text


@pytest.mark.parametrize(
    ("base_url", "region", "expected"),
    [
        ("https://app.ninjarmm.com", None, "https://app.ninjarmm.com/#/deviceDashboard/7/overview"),
        ("https://app.ninjarmm.com/v2/", None, "https://app.ninjarmm.com/#/deviceDashboard/7/overview"),
        ("https://app.ninjarmm.com", "eu", "https://eu.ninjarmm.com/#/deviceDashboard/7/overview"),
        ("ninja.example.com/ws", None, "https://ninja.example.com/#/deviceDashboard/7/overview"),
    ],
)
def test_ninjaone_device_page_is_built_from_the_instance(
    base_url: str, region: str | None, expected: str
) -> None:
    assert device_dashboard_url(base_url, NinjaOneOptions(region=region), "7") == expected


def test_ninjaone_gives_no_link_for_what_is_not_a_device_id() -> None:
    assert device_dashboard_url("https://app.ninjarmm.com", NinjaOneOptions(), "ep-1") is None
    assert device_dashboard_url("", NinjaOneOptions(), "7") is None


def test_only_rmm_kinds_declare_endpoint_links_and_ninjaone_does() -> None:
    assert NINJAONE.endpoint_url is device_dashboard_url
    for spec in discover().all():
        if spec.endpoint_url is not None:
            assert spec.role.value == "rmm", spec.kind


def test_a_storm_ticket_links_the_members_its_rmm_can_link() -> None:
    seen = [Member("7", "PC-07", SEEN), Member("8", "PC-08", SEEN), Member("x", "PC-09", SEEN)]
    links = {"7": "https://app.ninjarmm.com/#/deviceDashboard/7/overview"}
    text = storm_description(ProblemKind.DEFINITIONS_OUTDATED, "Acme", seen, 10, links)
    lines = text.splitlines()
    [seven] = [line for line in lines if line.startswith("- PC-07")]
    assert seven.endswith(": https://app.ninjarmm.com/#/deviceDashboard/7/overview")
    [eight] = [line for line in lines if line.startswith("- PC-08")]
    assert "http" not in eight
    assert storm_description(ProblemKind.DEFINITIONS_OUTDATED, "Acme", seen, 10).count("http") == 0


@pytest.mark.parametrize(
    ("base_url", "expected"),
    [
        ("https://concord-api.centrastage.net", "https://concord.centrastage.net/csm/search?qs=uid%3Aab-12"),
        (
            "https://merlot-api.centrastage.net/api/v2",
            "https://merlot.centrastage.net/csm/search?qs=uid%3Aab-12",
        ),
        ("https://rmm.example.com", None),
    ],
)
def test_datto_rmm_device_page_is_built_from_the_platform(base_url: str, expected: str | None) -> None:
    assert device_page_url(base_url, DattoOptions(), "ab-12") == expected


def test_datto_rmm_device_uid_is_quoted() -> None:
    url = device_page_url("https://concord-api.centrastage.net", DattoOptions(), "a b&c")
    assert url == "https://concord.centrastage.net/csm/search?qs=uid%3Aa%20b%26c"
