"""Which endpoints a configuration push writes, decided without a database
(`sync.configurations.configuration_writes`)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from connector.fleet.domain import Thresholds
from connector.models import Connection, Endpoint
from connector.sync.configurations import ClientTarget, configuration_writes

NOW = datetime(2026, 10, 15, 12, tzinfo=UTC)


def endpoint(endpoint_id: str, **status: Any) -> Endpoint:
    values: dict[str, Any] = {
        "client_id": "c-1",
        "client_name": "Client 1",
        "hostname": f"host-{endpoint_id}",
        "serial_number": f"SN-{endpoint_id}",
        "os_name": "Windows 11",
        "product": "Acme EDR",
        "protection_enabled": True,
        "definitions_date": NOW - timedelta(hours=6),
        "last_scan_at": NOW - timedelta(days=1),
        "active_threats": 0,
        "online": True,
        "last_seen_at": NOW - timedelta(minutes=5),
    }
    return Endpoint(id=f"row-{endpoint_id}", endpoint_id=endpoint_id, **(values | status))


def target(*endpoints: Endpoint, create_missing: bool = False) -> ClientTarget:
    return ClientTarget(
        company_id="42",
        psa=Connection(id="psa"),
        limits=Thresholds(),
        create_missing=create_missing,
        endpoints=list(endpoints),
    )


def test_every_endpoint_never_written_is_written_for_the_mapped_company() -> None:
    writes = configuration_writes(target(endpoint("a"), endpoint("b"), create_missing=True), NOW)

    assert [(w.endpoint_row_id, w.update.company_id, w.update.device_name) for w in writes] == [
        ("row-a", "42", "host-a"),
        ("row-b", "42", "host-b"),
    ]
    assert all(w.update.create_if_missing for w in writes)
    assert writes[0].update.serial_number == "SN-a"


def test_an_endpoint_whose_fields_were_written_already_is_skipped_until_they_change() -> None:
    first = configuration_writes(target(endpoint("a")), NOW)[0]
    written = endpoint("a", pushed_fields_fingerprint=first.fingerprint)

    assert configuration_writes(target(written), NOW) == []
    changed = endpoint("a", pushed_fields_fingerprint=first.fingerprint, protection_enabled=False)
    (again,) = configuration_writes(target(changed), NOW)
    assert again.fingerprint != first.fingerprint


def test_the_tenant_thresholds_decide_the_health_written() -> None:
    stale = endpoint("a", definitions_date=NOW - timedelta(days=5))
    strict = replace(target(stale), limits=Thresholds(definitions_max_age_days=3))
    lenient = replace(target(stale), limits=Thresholds(definitions_max_age_days=7))

    (at_risk,) = configuration_writes(strict, NOW)
    (protected,) = configuration_writes(lenient, NOW)
    assert at_risk.update.fields["Security status"] == "at_risk"
    assert protected.update.fields["Security status"] == "protected"
