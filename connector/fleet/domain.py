"""Endpoint security status → problems, health class and fingerprints. Pure: no I/O, the clock is an
argument.

Each check answers True (the problem is present), False (it is absent: an open problem may clear) or
None (the RMM does not report what the check needs: leave any open problem alone). An unknown is never
read as "fine", and never as "broken".
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, NamedTuple

from pydantic import BaseModel, ConfigDict, Field

from adapters.base import EndpointStatus, ProblemKind
from connector.statuses import Health

"""`unknown`: the RMM reports no antivirus state for the endpoint at all (e.g. an N-sight device
whose Managed Antivirus answers could not be read) — shown as such rather than guessed."""


class Thresholds(BaseModel):
    """Per-tenant limits for the time-based checks (settable over the API). Strict: `true` or
    `"14"` is refused rather than read as a number of days."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"definitions_max_age_days": 3, "scan_max_age_days": 14, "offline_after_days": 7}]
        },
    )

    definitions_max_age_days: int = Field(default=3, ge=1, le=365, strict=True)
    scan_max_age_days: int = Field(default=14, ge=1, le=365, strict=True)
    offline_after_days: int = Field(default=7, ge=1, le=365, strict=True)


@dataclass(frozen=True)
class Finding:
    kind: ProblemKind
    present: bool | None
    message: str = ""


def _age_days(moment: datetime | None, now: datetime) -> float | None:
    return None if moment is None else (now - moment) / timedelta(days=1)


def findings(status: EndpointStatus, limits: Thresholds, now: datetime) -> list[Finding]:
    installed = status.product is not None
    out = [
        Finding(
            ProblemKind.NOT_PROTECTED,
            not installed if status.product is not None or status.protection_enabled is not None else None,
            "no endpoint protection product reported",
        )
    ]
    if not installed:
        # Without a product, the product-level checks have nothing to say.
        out += [Finding(kind, None) for kind in _PRODUCT_CHECKS]
    else:
        defs_age = _age_days(status.definitions_date, now)
        scan_age = _age_days(status.last_scan_at, now)
        out += [
            Finding(
                ProblemKind.PROTECTION_DISABLED,
                None if status.protection_enabled is None else not status.protection_enabled,
                f"real-time protection of {status.product} is off",
            ),
            Finding(
                ProblemKind.DEFINITIONS_OUTDATED,
                None if defs_age is None else defs_age > limits.definitions_max_age_days,
                f"definitions are {defs_age:.0f} days old (limit {limits.definitions_max_age_days})"
                if defs_age is not None
                else "",
            ),
            Finding(
                ProblemKind.SCAN_OVERDUE,
                None if scan_age is None else scan_age > limits.scan_max_age_days,
                f"last full scan {scan_age:.0f} days ago (limit {limits.scan_max_age_days})"
                if scan_age is not None
                else "",
            ),
            Finding(
                ProblemKind.THREAT_DETECTED,
                None if status.active_threats is None else status.active_threats > 0,
                f"{status.active_threats} active threat(s) reported by {status.product}",
            ),
        ]
    seen_age = _age_days(status.last_seen_at, now)
    out.append(
        Finding(
            ProblemKind.AGENT_OFFLINE,
            None if seen_age is None else seen_age > limits.offline_after_days,
            f"agent not seen for {seen_age:.0f} days (limit {limits.offline_after_days})"
            if seen_age is not None
            else "",
        )
    )
    return out


_PRODUCT_CHECKS = (
    ProblemKind.PROTECTION_DISABLED,
    ProblemKind.DEFINITIONS_OUTDATED,
    ProblemKind.SCAN_OVERDUE,
    ProblemKind.THREAT_DETECTED,
)


def health(status: EndpointStatus, limits: Thresholds, now: datetime) -> Health:
    """The dashboard class: offline beats everything (its status is stale), then no product, then
    any present problem."""
    present = {f.kind for f in findings(status, limits, now) if f.present}
    if ProblemKind.AGENT_OFFLINE in present or status.online is False:
        return Health.OFFLINE
    if status.product is None and status.protection_enabled is None:
        return Health.UNKNOWN
    if status.product is None or ProblemKind.NOT_PROTECTED in present:
        return Health.UNPROTECTED
    return Health.AT_RISK if present else Health.PROTECTED


# ---------------------------------------------------------------------------------------------
# Incremental evaluation: which endpoints a sync must evaluate again
# ---------------------------------------------------------------------------------------------

EVALUATION_VERSION = 1
"""Bumped when `findings` or `health` change meaning: every endpoint is evaluated again once."""

STATUS_KINDS = (
    ProblemKind.NOT_PROTECTED,
    ProblemKind.PROTECTION_DISABLED,
    ProblemKind.DEFINITIONS_OUTDATED,
    ProblemKind.SCAN_OVERDUE,
    ProblemKind.THREAT_DETECTED,
    ProblemKind.AGENT_OFFLINE,
)
"""The problem kinds `findings` decides."""


def evaluation_key(limits: Thresholds) -> str:
    """What every endpoint's evaluation was made with besides its own data: the thresholds (and the
    rules' version). An endpoint evaluated under another key is evaluated again."""
    return _digest({"version": EVALUATION_VERSION, "thresholds": limits.model_dump()})


def checks_due_at(status: EndpointStatus, limits: Thresholds, now: datetime) -> datetime | None:
    """The earliest instant after which a time-based check of `status`, evaluated at `now`, can
    change its answer with nothing else changing (None: none can). An age check is present once the
    age is *more* than its limit, so it flips at the first moment after `moment + limit`; one already
    present at `now` stays present, and an unknown one stays unknown, as time goes on. Evaluating at
    any time from `now` up to and including the returned instant gives the same findings and health."""
    candidates: list[datetime | None] = [_flips_at(status.last_seen_at, limits.offline_after_days)]
    if status.product is not None:
        candidates += [
            _flips_at(status.definitions_date, limits.definitions_max_age_days),
            _flips_at(status.last_scan_at, limits.scan_max_age_days),
        ]
    return min((moment for moment in candidates if moment is not None and moment >= now), default=None)


def _flips_at(moment: datetime | None, limit_days: int) -> datetime | None:
    return None if moment is None else moment + timedelta(days=limit_days)


@dataclass(frozen=True)
class Evaluation:
    """What the last evaluation of an endpoint settled, stored with the endpoint: the key it was made
    with, when its time-based checks are next due, and the problem kinds it found present (they
    should be open) and absent (they should not be). Kinds it could not decide are in neither: their
    open problems are not its business."""

    key: str
    due_at: datetime | None
    present: frozenset[str]
    absent: frozenset[str]


def evaluation(findings_: list[Finding], key: str, due_at: datetime | None) -> Evaluation:
    return Evaluation(
        key,
        due_at,
        frozenset(f.kind.value for f in findings_ if f.present is True),
        frozenset(f.kind.value for f in findings_ if f.present is False),
    )


def needs_evaluation(
    stored: Evaluation | None, key: str, now: datetime, open_kinds: frozenset[str], *, console: bool = False
) -> bool:
    """Whether evaluating the endpoint now could change anything a full evaluation would: it was
    never evaluated (or its data changed since: `stored` None), under another key, its checks are
    due, its open problems are not what the evaluation left (an alert opened or cleared one of the
    kinds it decided, or an observation of it was refused as older than a recorded event), or a
    security console speaks for it (the console's view is evaluated every time). The sync's SQL
    (`connector.sync.run`) asks exactly this."""
    if console or stored is None or stored.key != key:
        return True
    if stored.due_at is not None and stored.due_at <= now:
        return True
    return bool(stored.absent & open_kinds) or not stored.present <= open_kinds


class CheckIn(NamedTuple):
    """The status fields the fingerprint leaves out: they move on every check-in."""

    online: bool | None
    last_seen_at: datetime | None


def check_in_keeps_evaluation(before: CheckIn, after: CheckIn, absent: frozenset[str]) -> bool:
    """An endpoint whose fingerprint did not change may still have checked in. Its stored
    evaluation (which found the kinds `absent` absent) still holds when `online` is the same and
    `last_seen_at` is the same or later while the offline check was absent: the device is then no
    closer to its offline limit than when it was evaluated, so the stored due time is, if anything,
    early. Anything else (online flips, an earlier or missing check-in, an offline device checking
    in) calls for an evaluation."""
    if before.online != after.online:
        return False
    if before.last_seen_at == after.last_seen_at:
        return True
    return (
        before.last_seen_at is not None
        and after.last_seen_at is not None
        and after.last_seen_at > before.last_seen_at
        and ProblemKind.AGENT_OFFLINE.value in absent
    )


def kinds_text(kinds: frozenset[str]) -> str:
    """Kinds as stored for the sync's SQL to match with `LIKE '%,kind,%'`."""
    return "," + "".join(f"{kind}," for kind in sorted(kinds))


def kinds_of(text: str | None) -> frozenset[str]:
    return frozenset(part for part in (text or "").split(",") if part)


def fingerprint(status: EndpointStatus) -> str:
    """Changes exactly when something the service stores or pushes changes (not `last_seen_at`, which
    moves on every check-in and would make every sync rewrite every endpoint)."""
    data = status.model_dump(mode="json", exclude={"last_seen_at", "online"})
    if data.get("mac_addresses") is None:  # as before MACs were read: an upgrade rewrites nothing
        del data["mac_addresses"]
    data["offline_day"] = status.last_seen_at.date().isoformat() if status.last_seen_at else None
    return _digest(data)


def configuration_fields(status: EndpointStatus, health_class: Health) -> dict[str, str]:
    """What goes onto the PSA configuration record: short, human-readable values."""

    def when(moment: datetime | None) -> str:
        return moment.strftime("%Y-%m-%d") if moment else "unknown"

    return {
        "Security status": health_class,
        "AV product": status.product or "none",
        "Real-time protection": {True: "on", False: "off", None: "unknown"}[status.protection_enabled],
        "Definitions date": when(status.definitions_date),
        "Last scan": when(status.last_scan_at),
        "Active threats": "unknown" if status.active_threats is None else str(status.active_threats),
    }


def fields_fingerprint(fields: dict[str, str]) -> str:
    return _digest(fields)


def billable(status: EndpointStatus) -> bool:
    """Counts for usage: a protection product is installed (the seat exists whether or not it is on)."""
    return status.product is not None


def digest(data: Any) -> str:
    """A short stable hash of JSON-able data, for fingerprints."""
    return _digest(data)


def _digest(data: Any) -> str:
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()[:32]
