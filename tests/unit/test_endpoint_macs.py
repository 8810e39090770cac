"""MAC addresses on an endpoint status: one spelling whatever the vendor's, and a fingerprint that
does not move for endpoints whose RMM reports none (so an upgrade rewrites nothing)."""

from __future__ import annotations

from adapters.base import EndpointStatus, normal_macs
from connector.fleet import domain
from connector.fleet.domain import fingerprint


def test_every_vendor_spelling_becomes_one_and_junk_is_dropped() -> None:
    assert normal_macs(["aa-bb-cc-dd-ee-ff", "AABB.CCDD.EEFF", "aabbccddeeff", "00:11:22:33:44:55"]) == (
        "00:11:22:33:44:55",
        "AA:BB:CC:DD:EE:FF",
    )
    assert normal_macs(["00:00:00:00:00:00", "not a mac", "AA:BB:CC", ""]) == ()
    status = EndpointStatus(endpoint_id="1", client_id="c", hostname="h", mac_addresses=["a0:b1:c2:d3:e4:f5"])
    assert status.mac_addresses == ("A0:B1:C2:D3:E4:F5",)


def test_fingerprint_is_unchanged_without_macs_and_moves_with_them() -> None:
    plain = EndpointStatus(endpoint_id="1", client_id="c", hostname="h", product="AV")
    with_macs = plain.model_copy(update={"mac_addresses": ("A0:B1:C2:D3:E4:F5",)})
    # the digest of a status without MACs, as computed before the field existed
    before = fingerprint(plain)
    fields = plain.model_dump(mode="json", exclude={"last_seen_at", "online", "mac_addresses"})
    assert before == domain._digest({**fields, "offline_day": None})
    assert fingerprint(with_macs) != before
