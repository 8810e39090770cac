"""Which endpoints a sync evaluates again (`fleet.domain`: `checks_due_at`, `needs_evaluation`,
`check_in_keeps_evaluation`), pure. The last test runs random sequences of syncs, vendor changes,
check-ins, time passing, threshold changes and problems opened or cleared by alerts through two
fleets — one evaluated in full at every sync, one evaluated incrementally as the sync does — and
requires the same problems and health after every sync."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pytest

from adapters.base import EndpointStatus, ProblemKind
from connector.fleet import domain
from connector.fleet.domain import CheckIn, Evaluation, Thresholds
from connector.statuses import Health

NOW = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
LIMITS = Thresholds(definitions_max_age_days=3, scan_max_age_days=14, offline_after_days=7)


def status(**values: object) -> EndpointStatus:
    base: dict[str, object] = {
        "endpoint_id": "ep-1",
        "client_id": "c-1",
        "hostname": "WS-1",
        "product": "Acme EDR",
        "protection_enabled": True,
        "definitions_date": NOW - timedelta(days=1),
        "last_scan_at": NOW - timedelta(days=2),
        "active_threats": 0,
        "online": True,
        "last_seen_at": NOW - timedelta(hours=1),
    }
    return EndpointStatus.model_validate({**base, **values})


def present(s: EndpointStatus, at: datetime, limits: Thresholds = LIMITS) -> set[str]:
    return {f.kind.value for f in domain.findings(s, limits, at) if f.present}


# ---------------------------------------------------------------------------------------------
# checks_due_at
# ---------------------------------------------------------------------------------------------


def test_the_earliest_age_limit_is_due_first() -> None:
    # definitions at 1 day of 3 (due in 2 days), scan at 2 of 14, seen 1 hour ago of 7 days
    assert domain.checks_due_at(status(), LIMITS, NOW) == NOW - timedelta(days=1) + timedelta(days=3)


def test_a_check_flips_just_after_its_due_time_and_not_at_it() -> None:
    s = status()
    due = domain.checks_due_at(s, LIMITS, NOW)
    assert due is not None
    assert present(s, due) == set()
    assert present(s, due + timedelta(microseconds=1)) == {"definitions_outdated"}
    assert domain.health(s, LIMITS, due) is Health.PROTECTED
    assert domain.health(s, LIMITS, due + timedelta(microseconds=1)) is Health.AT_RISK


def test_findings_and_health_hold_at_any_time_up_to_the_due_time() -> None:
    s = status(last_scan_at=NOW - timedelta(days=13, hours=23), definitions_date=None)
    due = domain.checks_due_at(s, LIMITS, NOW)
    assert due == NOW + timedelta(hours=1)
    for minutes in (0, 1, 30, 59, 60):
        at = NOW + timedelta(minutes=minutes)
        assert present(s, at) == present(s, NOW) == set()
        assert domain.health(s, LIMITS, at) is domain.health(s, LIMITS, NOW)


def test_a_present_check_has_no_due_time_of_its_own() -> None:
    # definitions already outdated stay outdated; the scan and offline limits are still ahead
    s = status(definitions_date=NOW - timedelta(days=10))
    assert "definitions_outdated" in present(s, NOW)
    assert domain.checks_due_at(s, LIMITS, NOW) == NOW - timedelta(hours=1) + timedelta(days=7)


def test_a_check_due_exactly_now_is_still_ahead() -> None:
    s = status(definitions_date=NOW - timedelta(days=3), last_scan_at=None, last_seen_at=None)
    assert "definitions_outdated" not in present(s, NOW)
    assert domain.checks_due_at(s, LIMITS, NOW) == NOW
    assert domain.checks_due_at(s, LIMITS, NOW + timedelta(microseconds=1)) is None


def test_unknown_dates_and_a_missing_product_are_never_due() -> None:
    assert (
        domain.checks_due_at(status(definitions_date=None, last_scan_at=None, last_seen_at=None), LIMITS, NOW)
        is None
    )
    # without a product only the offline check is time-based
    no_product = status(product=None, definitions_date=NOW - timedelta(days=1), last_seen_at=None)
    assert domain.checks_due_at(no_product, LIMITS, NOW) is None


def test_future_dates_are_due_at_their_limit() -> None:
    ahead = NOW + timedelta(days=2)
    s = status(definitions_date=ahead, last_scan_at=None, last_seen_at=None)
    assert domain.checks_due_at(s, LIMITS, NOW) == ahead + timedelta(days=3)


def test_thresholds_move_the_due_time() -> None:
    s = status()
    tighter = Thresholds(definitions_max_age_days=2, scan_max_age_days=14, offline_after_days=7)
    assert domain.checks_due_at(s, tighter, NOW) == NOW + timedelta(days=1)


# ---------------------------------------------------------------------------------------------
# needs_evaluation
# ---------------------------------------------------------------------------------------------

KEY = domain.evaluation_key(LIMITS)


def settled(s: EndpointStatus, at: datetime = NOW, limits: Thresholds = LIMITS) -> Evaluation:
    return domain.evaluation(
        domain.findings(s, limits, at), domain.evaluation_key(limits), domain.checks_due_at(s, limits, at)
    )


def test_a_settled_endpoint_needs_nothing_until_its_checks_are_due() -> None:
    stored = settled(status())
    assert stored.due_at is not None
    assert not domain.needs_evaluation(stored, KEY, NOW, frozenset())
    assert not domain.needs_evaluation(stored, KEY, stored.due_at - timedelta(microseconds=1), frozenset())
    assert domain.needs_evaluation(stored, KEY, stored.due_at, frozenset())


def test_never_evaluated_or_changed_data_needs_an_evaluation() -> None:
    assert domain.needs_evaluation(None, KEY, NOW, frozenset())


def test_other_thresholds_need_an_evaluation() -> None:
    stored = settled(status())
    other = domain.evaluation_key(Thresholds(definitions_max_age_days=5))
    assert other != KEY
    assert domain.evaluation_key(Thresholds()) == domain.evaluation_key(Thresholds())
    assert domain.needs_evaluation(stored, other, NOW, frozenset())


def test_problems_not_as_the_evaluation_left_them_need_an_evaluation() -> None:
    broken = settled(status(protection_enabled=False))
    assert broken.present == {"protection_disabled"}
    assert not domain.needs_evaluation(broken, KEY, NOW, frozenset({"protection_disabled"}))
    # an alert cleared it although the status still says so
    assert domain.needs_evaluation(broken, KEY, NOW, frozenset())
    # an alert opened a kind the status says is absent
    assert domain.needs_evaluation(broken, KEY, NOW, frozenset({"protection_disabled", "threat_detected"}))
    # a kind the evaluation could not decide is not its business
    unknown = settled(status(active_threats=None))
    assert "threat_detected" not in unknown.present | unknown.absent
    assert not domain.needs_evaluation(unknown, KEY, NOW, frozenset({"threat_detected"}))
    # a kind the findings never decide (a console's) neither
    assert not domain.needs_evaluation(unknown, KEY, NOW, frozenset({ProblemKind.UNMANAGED_AGENT.value}))


def test_an_endpoint_a_console_speaks_for_is_always_evaluated() -> None:
    assert domain.needs_evaluation(settled(status()), KEY, NOW, frozenset(), console=True)


def test_kinds_text_round_trips_and_matches_like_patterns() -> None:
    kinds = frozenset({"scan_overdue", "agent_offline"})
    text = domain.kinds_text(kinds)
    assert text == ",agent_offline,scan_overdue,"
    assert domain.kinds_of(text) == kinds
    assert domain.kinds_of(domain.kinds_text(frozenset())) == frozenset()
    assert domain.kinds_of(None) == frozenset()
    # no kind is a part of another between the commas
    assert ",offline," not in text


# ---------------------------------------------------------------------------------------------
# check_in_keeps_evaluation
# ---------------------------------------------------------------------------------------------


def test_a_later_check_in_of_an_online_device_keeps_the_evaluation() -> None:
    before = CheckIn(True, NOW - timedelta(hours=1))
    assert domain.check_in_keeps_evaluation(before, CheckIn(True, NOW), frozenset({"agent_offline"}))
    assert domain.check_in_keeps_evaluation(before, before, frozenset())


@pytest.mark.parametrize(
    ("after", "absent"),
    [
        (CheckIn(False, NOW), frozenset({"agent_offline"})),  # online flipped
        (CheckIn(True, NOW - timedelta(days=1)), frozenset({"agent_offline"})),  # an earlier check-in
        (CheckIn(True, None), frozenset({"agent_offline"})),  # no longer reported
        (CheckIn(True, NOW), frozenset()),  # the device was offline (or unknown) and checked in
    ],
)
def test_other_check_ins_need_an_evaluation(after: CheckIn, absent: frozenset[str]) -> None:
    assert not domain.check_in_keeps_evaluation(CheckIn(True, NOW - timedelta(hours=1)), after, absent)


def test_a_check_in_within_the_same_day_can_end_an_offline_problem() -> None:
    # why an offline device's check-in is never kept: the fingerprint (offline *day*) is unchanged
    limits = Thresholds(offline_after_days=7)
    old = status(last_seen_at=datetime(2026, 3, 1, 0, 1, tzinfo=UTC))
    new = old.model_copy(update={"last_seen_at": datetime(2026, 3, 1, 0, 3, tzinfo=UTC)})
    at = datetime(2026, 3, 8, 0, 2, tzinfo=UTC)
    assert domain.fingerprint(old) == domain.fingerprint(new)
    assert "agent_offline" in present(old, at, limits) and "agent_offline" not in present(new, at, limits)
    stored = settled(old, at, limits)
    assert not domain.check_in_keeps_evaluation(
        CheckIn(old.online, old.last_seen_at), CheckIn(new.online, new.last_seen_at), stored.absent
    )


# ---------------------------------------------------------------------------------------------
# Incremental = full, over random sequences
# ---------------------------------------------------------------------------------------------


@dataclass
class Row:
    """One endpoint as the store keeps it: its status, fingerprint, health and stored evaluation."""

    status: EndpointStatus
    fingerprint: str
    health: Health | None = None
    stored: Evaluation | None = None


@dataclass
class Fleet:
    rows: dict[str, Row] = field(default_factory=dict)
    open: set[tuple[str, str]] = field(default_factory=set)
    evaluated: int = 0

    def store(self, s: EndpointStatus) -> None:
        """What the sync's page store does (`sync.run._store_page`)."""
        row = self.rows.get(s.endpoint_id)
        fingerprint = domain.fingerprint(s)
        if row is None or row.fingerprint != fingerprint:
            self.rows[s.endpoint_id] = Row(s, fingerprint, row.health if row else None, None)
            return
        if row.stored is not None and not domain.check_in_keeps_evaluation(
            CheckIn(row.status.online, row.status.last_seen_at),
            CheckIn(s.online, s.last_seen_at),
            row.stored.absent,
        ):
            row.stored = None
        row.status = s

    def sync(self, limits: Thresholds, now: datetime, *, everything: bool) -> None:
        key = domain.evaluation_key(limits)
        for endpoint_id, row in self.rows.items():
            open_kinds = frozenset(kind for (e, kind) in self.open if e == endpoint_id)
            if not everything and not domain.needs_evaluation(row.stored, key, now, open_kinds):
                continue
            self.evaluated += 1
            found = domain.findings(row.status, limits, now)
            row.health = domain.health(row.status, limits, now)
            row.stored = domain.evaluation(found, key, domain.checks_due_at(row.status, limits, now))
            for finding in found:
                if finding.present:
                    self.open.add((endpoint_id, finding.kind.value))
                elif finding.present is False:
                    self.open.discard((endpoint_id, finding.kind.value))

    def outcome(self) -> tuple[set[tuple[str, str]], dict[str, Health | None]]:
        return set(self.open), {e: r.health for e, r in self.rows.items()}


def _random_status(rng: random.Random, endpoint_id: str, now: datetime) -> EndpointStatus:
    def moment() -> datetime | None:
        if rng.random() < 0.1:
            return None
        return now - timedelta(hours=rng.uniform(-24, 24 * 20))

    return EndpointStatus(
        endpoint_id=endpoint_id,
        client_id="c-1",
        hostname=endpoint_id.upper(),
        product=rng.choice(["Acme EDR", "Acme EDR", "Acme EDR", None]),
        protection_enabled=rng.choice([True, True, False, None]),
        definitions_date=moment(),
        last_scan_at=moment(),
        active_threats=rng.choice([0, 0, 0, 1, None]),
        online=rng.choice([True, True, False, None]),
        last_seen_at=moment(),
    )


@pytest.mark.parametrize("seed", range(40))
def test_incremental_evaluation_ends_as_a_full_one(seed: int) -> None:
    rng = random.Random(seed)
    now = NOW
    limits = LIMITS
    ids = [f"ep-{i}" for i in range(25)]
    full, incremental = Fleet(), Fleet()
    for endpoint_id in ids:
        s = _random_status(rng, endpoint_id, now)
        full.store(s)
        incremental.store(s)
    for step in range(60):
        action = rng.random()
        if action < 0.35:  # time passes: from a few minutes to several days
            now += timedelta(minutes=rng.choice([1, 7, 60, 6 * 60, 24 * 60, 3 * 24 * 60]))
        elif action < 0.55:  # the vendor reports changed data
            for endpoint_id in rng.sample(ids, 3):
                s = _random_status(rng, endpoint_id, now)
                full.store(s)
                incremental.store(s)
        elif action < 0.75:  # check-ins: last seen moves (later, mostly), online may flip
            for endpoint_id in rng.sample(ids, 5):
                current = incremental.rows[endpoint_id].status
                seen = current.last_seen_at
                update: dict[str, object] = {
                    "last_seen_at": rng.choice(
                        [
                            now,
                            now - timedelta(minutes=rng.randint(0, 30)),
                            None,
                            (seen or now) + timedelta(seconds=5),
                        ]
                    )
                }
                if rng.random() < 0.2:
                    update["online"] = rng.choice([True, False, None])
                s = current.model_copy(update=update)
                full.store(s)
                incremental.store(s)
        elif action < 0.8:  # an engineer changes the thresholds
            limits = Thresholds(
                definitions_max_age_days=rng.randint(1, 5),
                scan_max_age_days=rng.randint(5, 20),
                offline_after_days=rng.randint(1, 10),
            )
        else:  # webhook alerts open or clear problems of any kind, in both fleets alike
            for _ in range(2):
                problem, opens = (rng.choice(ids), rng.choice(domain.STATUS_KINDS).value), rng.random() < 0.5
                for fleet in (full, incremental):
                    (fleet.open.add if opens else fleet.open.discard)(problem)
        full.sync(limits, now, everything=True)
        incremental.sync(limits, now, everything=False)
        assert incremental.outcome() == full.outcome(), f"seed {seed}, step {step}"
    # and the incremental fleet skipped endpoints (this mix changes thresholds and moves days often)
    assert incremental.evaluated < full.evaluated * 0.95


def test_a_quiet_fleet_is_evaluated_only_where_a_check_falls_due() -> None:
    rng = random.Random(7)
    fleet = Fleet()
    for i in range(200):
        fleet.store(_random_status(rng, f"ep-{i}", NOW))
    fleet.sync(LIMITS, NOW, everything=False)
    assert fleet.evaluated == 200
    due = sorted(
        r.stored.due_at for r in fleet.rows.values() if r.stored and r.stored.due_at and r.stored.due_at > NOW
    )
    later = NOW + timedelta(minutes=30)
    fleet.evaluated = 0
    fleet.sync(LIMITS, later, everything=False)
    assert fleet.evaluated == sum(1 for d in due if d <= later)
    assert fleet.evaluated < 20
