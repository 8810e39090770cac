"""How free job slots are shared out between tenants (`connector.infra.jobs.fairness.shares`)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from connector.infra.jobs.fairness import DueTenant, shares

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def test_the_tenant_with_the_fewest_jobs_running_gets_the_next_slot() -> None:
    backfill = DueTenant("a", running=4, waiting_since=T0)
    alert = DueTenant("b", running=0, waiting_since=T0 + timedelta(hours=1))
    assert shares([backfill, alert], 1) == {"b": 1}


def test_slots_are_filled_evenly_and_none_is_left_idle() -> None:
    tenants = [
        DueTenant("a", running=0, waiting_since=T0),
        DueTenant("b", running=0, waiting_since=T0 + timedelta(seconds=1)),
        DueTenant("c", running=2, waiting_since=T0),
    ]
    assert shares(tenants, 7) == {"a": 3, "b": 3, "c": 1}  # every tenant ends with 3 running
    assert shares(tenants[:1], 5) == {"a": 5}  # alone in the queue: every slot


def test_ties_go_to_the_tenant_served_longest_ago_then_the_longest_waiting() -> None:
    a = DueTenant("a", running=0, waiting_since=T0, last_served=7)
    b = DueTenant("b", running=0, waiting_since=T0 + timedelta(hours=1), last_served=3)
    assert shares([a, b], 1) == {"b": 1}
    never = DueTenant("c", running=0, waiting_since=T0 + timedelta(hours=2))
    assert shares([a, b, never], 1) == {"c": 1}
    assert shares([DueTenant("x", 0, T0 + timedelta(seconds=1)), DueTenant("y", 0, T0)], 1) == {"y": 1}


def test_slots_already_given_in_this_claim_count_as_running() -> None:
    tenants = [DueTenant("a", 0, T0), DueTenant("b", 0, T0)]
    assert shares(tenants, 2, taken={"a": 2}) == {"b": 2}
    assert shares(tenants, 0) == {} and shares([], 3) == {}
