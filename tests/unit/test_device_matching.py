"""Console agent ↔ RMM endpoint matching: serial, then MAC, then hostname, within the mapped client."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from connector.fleet.matching import Device, MatchRule, match_devices, serial_key

NOW = datetime(2026, 12, 1, tzinfo=UTC)


def endpoint(
    ref: str, host: str, serial: str | None = None, macs: tuple[str, ...] = (), scope: str = "acme"
) -> Device:
    return Device(ref=ref, scope=scope, hostname=host, serial_number=serial, mac_addresses=macs)


def agent(
    ref: str,
    host: str,
    serial: str | None = None,
    macs: tuple[str, ...] = (),
    scope: str | None = "acme",
    seen: datetime | None = NOW,
) -> Device:
    return Device(
        ref=ref, scope=scope, hostname=host, serial_number=serial, mac_addresses=macs, last_seen_at=seen
    )


MAC_A, MAC_B = "02:00:00:00:00:0A", "02:00:00:00:00:0B"


def test_serial_wins_over_a_hostname_that_points_elsewhere() -> None:
    endpoints = [endpoint("e1", "PC-01", "SN1234"), endpoint("e2", "PC-02", "SN9999")]
    result = match_devices(endpoints, [agent("a1", "PC-02", "sn1234")])
    assert (result["a1"].endpoint, result["a1"].rule) == ("e1", MatchRule.SERIAL)


def test_mac_when_the_console_has_no_serial_then_hostname() -> None:
    endpoints = [endpoint("e1", "PC-01", macs=(MAC_A,)), endpoint("e2", "Laptop-7.corp.example")]
    result = match_devices(endpoints, [agent("a1", "renamed", macs=(MAC_A,)), agent("a2", "laptop-7")])
    assert (result["a1"].endpoint, result["a1"].rule) == ("e1", MatchRule.MAC)
    assert (result["a2"].endpoint, result["a2"].rule) == ("e2", MatchRule.HOSTNAME)


def test_never_across_clients() -> None:
    result = match_devices(
        [endpoint("e1", "PC-01", "SN1234", scope="globex")], [agent("a1", "PC-01", "SN1234")]
    )
    assert result["a1"].endpoint is None and result["a1"].note is None


def test_an_unmapped_customer_is_not_matched_and_says_why() -> None:
    result = match_devices([endpoint("e1", "PC-01")], [agent("a1", "PC-01", scope=None)])
    assert result["a1"].endpoint is None
    assert result["a1"].note is not None and "not mapped" in result["a1"].note


def test_placeholder_serials_are_no_identity() -> None:
    for filler in (
        "To Be Filled By O.E.M.",
        "Default string",
        "0000000",
        "",
        "N/A",
        " system serial number ",
    ):
        assert serial_key(filler) is None, filler
    endpoints = [
        endpoint("e1", "PC-01", "To Be Filled By O.E.M."),
        endpoint("e2", "PC-02", "To Be Filled By O.E.M."),
    ]
    result = match_devices(endpoints, [agent("a1", "PC-02", "To Be Filled By O.E.M.")])
    assert (result["a1"].endpoint, result["a1"].rule) == ("e2", MatchRule.HOSTNAME)


def test_ambiguity_is_narrowed_by_weaker_identifiers_or_reported() -> None:
    # Two endpoints share a serial (a cloned VM): the MAC tells them apart.
    endpoints = [endpoint("e1", "VM-1", "SN1234", (MAC_A,)), endpoint("e2", "VM-2", "SN1234", (MAC_B,))]
    result = match_devices(endpoints, [agent("a1", "other", "SN1234", (MAC_B,))])
    assert (result["a1"].endpoint, result["a1"].rule) == ("e2", MatchRule.SERIAL)
    # Nothing tells two same-named endpoints apart: no match, both candidates named.
    twins = [endpoint("e1", "PC-01"), endpoint("e2", "pc-01")]
    ambiguous = match_devices(twins, [agent("a1", "PC-01")])["a1"]
    assert ambiguous.endpoint is None and ambiguous.candidates == ("e1", "e2")
    assert ambiguous.note is not None and ambiguous.note.startswith("ambiguous: 2 endpoints share hostname")


def test_a_stale_twin_agent_is_a_duplicate_not_a_second_match() -> None:
    endpoints = [endpoint("e1", "PC-01", "SN1234")]
    fresh = agent("a-new", "PC-01", "SN1234", seen=NOW)
    stale = agent("a-old", "PC-01", "SN1234", seen=NOW - timedelta(days=40))
    result = match_devices(endpoints, [stale, fresh])
    assert result["a-new"].endpoint == "e1"
    assert result["a-old"].endpoint is None
    assert result["a-old"].note is not None and "already matched to agent a-new" in result["a-old"].note


def test_an_override_wins_and_takes_its_endpoint_out_of_the_rules() -> None:
    endpoints = [endpoint("e1", "PC-01", "SN1234"), endpoint("e2", "PC-02")]
    result = match_devices(
        endpoints, [agent("a1", "PC-01", "SN1234"), agent("a2", "whatever")], overrides={"a2": "e1"}
    )
    assert (result["a2"].endpoint, result["a2"].rule) == ("e1", MatchRule.MANUAL)
    assert result["a1"].endpoint is None  # its serial's endpoint is the override's


def test_agents_with_no_identity_in_common_are_unmatched() -> None:
    result = match_devices(
        [endpoint("e1", "PC-01", "SN1234", (MAC_A,))], [agent("a1", "PC-99", "SN5678", (MAC_B,))]
    )
    assert result["a1"] == result["a1"].__class__("a1", None, None)
