"""Which problems open a ticket, and when many endpoints of one client share a problem, one
client-level "storm" ticket instead of one each. Pure: no I/O, no clock of its own."""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from fnmatch import fnmatchcase

from adapters.base import ProblemKind
from mappings.rules import PROBLEM_TITLES

MIN_STORM_MEMBERS = 2
"""A share alone never makes a storm of one endpoint (one of two endpoints is 50 %)."""


class Severity(enum.StrEnum):
    CRITICAL = "critical"
    HIGH = "high"
    MEDIUM = "medium"
    LOW = "low"


SEVERITY: Mapping[ProblemKind, Severity] = {
    ProblemKind.THREAT_DETECTED: Severity.CRITICAL,
    ProblemKind.NOT_PROTECTED: Severity.HIGH,
    ProblemKind.PROTECTION_DISABLED: Severity.HIGH,
    ProblemKind.DEFINITIONS_OUTDATED: Severity.MEDIUM,
    ProblemKind.AGENT_OFFLINE: Severity.MEDIUM,
    ProblemKind.UNMANAGED_AGENT: Severity.MEDIUM,
    ProblemKind.SCAN_OVERDUE: Severity.LOW,
}


def priority_for(kind: ProblemKind, priority_map: Mapping[str, str], default: str | None) -> str | None:
    """The PSA priority of a ticket for this problem: the rule's mapping of its severity, else the
    rule's priority."""
    return priority_map.get(SEVERITY[kind].value, default)


@dataclass(frozen=True)
class Exclusion:
    """`field` is `endpoint` (host name or RMM id), `client` (name or RMM id) or `device_type` (the
    endpoint's operating system name); `pattern` a shell-style pattern, case-insensitive."""

    field: str
    pattern: str


@dataclass(frozen=True)
class Subject:
    kind: ProblemKind
    endpoint_id: str
    hostname: str
    client_id: str
    client_name: str | None
    device_type: str | None


def _matches(pattern: str, *values: str | None) -> bool:
    return any(value is not None and fnmatchcase(value.casefold(), pattern.casefold()) for value in values)


def exclusion_reason(
    subject: Subject, disabled: Sequence[str], exclusions: Sequence[Exclusion]
) -> str | None:
    """Why this problem opens no ticket under the rule (None: it may)."""
    if subject.kind.value in disabled:
        return f"{subject.kind.value} is switched off in the ticket rule"
    for exclusion in exclusions:
        values: tuple[str | None, ...] = {
            "endpoint": (subject.hostname, subject.endpoint_id),
            "client": (subject.client_name, subject.client_id),
            "device_type": (subject.device_type,),
        }.get(exclusion.field, ())
        if _matches(exclusion.pattern, *values):
            return f"{exclusion.field} matches {exclusion.pattern!r}"
    return None


def ticket_not_before(
    source: str, first_seen_at: datetime, min_age: timedelta, now: datetime
) -> datetime | None:
    """A status-derived problem opens a ticket only once it is `min_age` old (a definitions update in
    progress rides it out); alerts are reported events and open at once. None: it may open now."""
    if source != "status" or min_age <= timedelta(0):
        return None
    due = first_seen_at + min_age
    return due if now < due else None


@dataclass(frozen=True)
class StormRule:
    min_endpoints: int | None
    min_percent: int | None
    window: timedelta

    @property
    def enabled(self) -> bool:
        return self.min_endpoints is not None or self.min_percent is not None


@dataclass(frozen=True)
class Member:
    endpoint_id: str
    hostname: str
    first_seen_at: datetime


def _meets(rule: StormRule, count: int, total: int) -> bool:
    if count < MIN_STORM_MEMBERS:
        return False
    if rule.min_endpoints is not None and count >= rule.min_endpoints:
        return True
    return rule.min_percent is not None and total > 0 and count * 100 >= rule.min_percent * total


def storm_active(
    rule: StormRule, open_members: Sequence[Member], client_endpoints: int, now: datetime, *, storm_open: bool
) -> bool:
    """Whether a client's open problems of one kind are a storm. A storm starts when enough of them
    were first seen within the window; an open storm lasts while enough of them are still open (of
    any age), and ends when their number or share falls back below the threshold."""
    if not rule.enabled:
        return False
    total = max(client_endpoints, len(open_members))
    if storm_open:
        return _meets(rule, len(open_members), total)
    recent = [m for m in open_members if m.first_seen_at >= now - rule.window]
    return _meets(rule, len(recent), total)


@dataclass(frozen=True)
class Membership:
    joined: list[str] = field(default_factory=list)
    left: list[str] = field(default_factory=list)


def membership_change(previous: Mapping[str, str], current: Mapping[str, str]) -> Membership:
    """Endpoints (id → host name) that joined and left since the ticket last listed them."""
    joined = sorted(current[e] for e in current.keys() - previous.keys())
    left = sorted(previous[e] for e in previous.keys() - current.keys())
    return Membership(joined, left)


def storm_summary(kind: ProblemKind, client: str, count: int) -> str:
    return f"{PROBLEM_TITLES[kind]} on {count} endpoints of {client}"


def storm_description(
    kind: ProblemKind,
    client: str,
    members: Sequence[Member],
    total: int,
    links: Mapping[str, str] | None = None,
) -> str:
    """The storm ticket's body; `links` (endpoint id → its page in the RMM) are shown where known."""
    share = f" of {total}" if total else ""
    lines = [
        f"{PROBLEM_TITLES[kind]} on {len(members)}{share} endpoints of {client}.",
        "",
        "One ticket for the whole client instead of one per endpoint; endpoints that join or",
        "recover are added as notes. Affected endpoints:",
        "",
    ]
    links = links or {}
    lines += [
        f"- {m.hostname} (RMM id {m.endpoint_id}), first seen {m.first_seen_at.isoformat(timespec='seconds')}"
        + (f": {links[m.endpoint_id]}" if m.endpoint_id in links else "")
        for m in sorted(members, key=lambda m: m.hostname)
    ]
    lines += ["", "This ticket is managed by connector and closes itself when the share falls back."]
    return "\n".join(lines)


def membership_note(change: Membership, still: int) -> str | None:
    if not change.joined and not change.left:
        return None
    parts = []
    if change.joined:
        parts.append(f"Joined ({len(change.joined)}): {', '.join(change.joined)}.")
    if change.left:
        parts.append(f"Recovered ({len(change.left)}): {', '.join(change.left)}.")
    parts.append(f"{still} endpoint(s) still affected.")
    return "\n".join(parts)


def storm_resolution(kind: ProblemKind, client: str, still: int) -> str:
    rest = f"; {still} endpoint(s) still affected get tickets of their own" if still else ""
    return f"Resolved: {PROBLEM_TITLES[kind].lower()} on {client} fell back below the storm threshold{rest}."


@dataclass(frozen=True)
class Evidence:
    """What the ticket body shows of the endpoint's last reported status."""

    product: str | None
    protection_enabled: bool | None
    definitions_date: datetime | None
    last_scan_at: datetime | None
    active_threats: int | None
    online: bool | None
    last_seen_at: datetime | None
    os_name: str | None
    dashboard_url: str | None


def _shown(value: object) -> str:
    if value is None:
        return "not reported"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, datetime):
        return value.isoformat(timespec="seconds")
    return str(value)


def evidence_text(evidence: Evidence) -> str:
    """The status fields and links appended to a new ticket's description."""
    rows = [
        ("Antivirus product", evidence.product),
        ("Real-time protection", evidence.protection_enabled),
        ("Definitions dated", evidence.definitions_date),
        ("Last full scan", evidence.last_scan_at),
        ("Active threats", evidence.active_threats),
        ("Online", evidence.online),
        ("Last seen by the RMM", evidence.last_seen_at),
        ("Operating system", evidence.os_name),
    ]
    lines = ["", "Status reported by the RMM:"] + [f"- {name}: {_shown(value)}" for name, value in rows]
    if evidence.dashboard_url:
        lines += ["", f"In connector: {evidence.dashboard_url}"]
    return "\n".join(lines)
