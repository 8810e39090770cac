"""The shortcut for plain canonical alerts (`plain_canonical`) makes exactly the event that
`CanonicalAlert` validation makes, and steps aside (None) for everything it would not keep as it
is, so a refused alert is still refused by pydantic, naming the field."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from connector.alerts.canonical import CanonicalAlert, parse_canonical, plain_canonical

BASE: dict[str, Any] = {
    "event_id": "a-1001",
    "client_id": "c-3",
    "endpoint_id": "ep-17",
    "hostname": "FRONTDESK-01",
    "problem": "threat_detected",
    "state": "active",
    "message": "Trojan quarantined",
    "occurred_at": "2026-01-05T09:30:00Z",
}


def _validated(item: dict[str, Any]) -> dict[str, Any] | None:
    try:
        alert = CanonicalAlert.model_validate(item)
    except ValidationError:
        return None
    return alert.model_dump()


PLAIN = [
    BASE,
    {k: v for k, v in BASE.items() if k not in ("hostname", "message")},
    {**BASE, "hostname": None},
    {**BASE, "hostname": ""},
    {**BASE, "message": ""},
    {**BASE, "state": "cleared", "problem": "agent_offline"},
    {**BASE, "occurred_at": "2026-01-05T09:30:00"},  # naive: taken as UTC
    {**BASE, "occurred_at": "2026-01-05T11:30:00.123456+02:00"},
    {**BASE, "occurred_at": "2026-01-05T09:30:00.5-05:30"},
    {**BASE, "event_id": "é" * 200, "client_id": "x" * 100, "message": "ü" * 4000},
    {**BASE, "extra": {"ignored": True}},
]

NOT_PLAIN = [
    {**BASE, "event_id": " a-1001 "},  # stripped by pydantic
    {**BASE, "hostname": "PC-1\n"},
    {**BASE, "event_id": 1001},  # an integer id, made text by pydantic
    {**BASE, "event_id": ""},
    {**BASE, "event_id": "x" * 201},
    {**BASE, "client_id": "c\x00"},
    {**BASE, "message": "\ud800"},
    {**BASE, "message": None},
    {**BASE, "problem": "no_such_problem"},
    {**BASE, "problem": ["threat_detected"]},
    {**BASE, "state": "open"},
    {**BASE, "occurred_at": "2026-13-05T09:30:00Z"},
    {**BASE, "occurred_at": "05/01/2026"},
    {**BASE, "occurred_at": 1767605400},
    {**BASE, "occurred_at": "2026-01-05"},
    {k: v for k, v in BASE.items() if k != "endpoint_id"},
    ["not", "an", "object"],
]


@pytest.mark.parametrize("item", PLAIN)
def test_a_plain_alert_gives_the_event_pydantic_gives(item: dict[str, Any]) -> None:
    event = plain_canonical(item)
    assert event is not None
    expected = _validated(item)
    assert expected is not None
    got = event.model_dump()
    for name, value in expected.items():
        assert got[name] == value, name
        assert type(got[name]) is type(value), name
    assert got["occurred_at"].utcoffset().total_seconds() == 0


@pytest.mark.parametrize("item", NOT_PLAIN)
def test_anything_else_is_left_to_pydantic(item: Any) -> None:
    assert plain_canonical(item) is None


def test_a_refused_alert_still_names_its_field() -> None:
    from adapters.errors import WebhookParseError

    with pytest.raises(WebhookParseError) as refused:
        parse_canonical([BASE, {**BASE, "state": "open"}])
    assert refused.value.field == "alerts[1].state"
