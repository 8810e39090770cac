"""One device identity across sources: which RMM endpoint a security console's agent is. Pure: the
caller loads both sides and stores the answer.

Rules, strongest first, each only within the agent's scope (the PSA company its console customer
and the endpoint's RMM client are both mapped to, so two clients' `PC-01` never meet): the serial
number, then a MAC address, then the hostname (short name, case-folded). A rule that finds several
endpoints is narrowed by the weaker identifiers; if that leaves more than one, the agent is left
unmatched and the candidates are reported — a weaker rule is never tried after a stronger one was
ambiguous, since it cannot be more certain. One endpoint is one device: agents are taken most
recently seen first, and a later agent whose only candidate is already taken is reported as a
duplicate (a reinstalled agent's stale twin still using a seat). An engineer's override wins over
every rule and takes its endpoint out of the automatic matching.
"""

from __future__ import annotations

import enum
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

PLACEHOLDER_SERIALS = frozenset(
    {
        "",
        "0",
        "NONE",
        "NULL",
        "N/A",
        "NA",
        "UNKNOWN",
        "DEFAULT STRING",
        "TO BE FILLED BY O.E.M.",
        "SYSTEM SERIAL NUMBER",
        "CHASSIS SERIAL NUMBER",
        "NOT SPECIFIED",
        "NOT APPLICABLE",
        "INVALID",
        "OEM",
        "123456789",
    }
)
"""Serials firmware ships blank or as filler (shared by many boards): never an identity."""


class MatchRule(enum.StrEnum):
    SERIAL = "serial"
    MAC = "mac"
    HOSTNAME = "hostname"
    MANUAL = "manual"


@dataclass(frozen=True, slots=True)
class Device:
    """What either side knows about a device's identity. `ref` is the caller's row id."""

    ref: str
    scope: str | None
    """The PSA company both sides are mapped to (None: unmapped, never matched automatically)."""
    hostname: str
    serial_number: str | None = None
    mac_addresses: Sequence[str] = ()
    last_seen_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class Match:
    agent: str
    endpoint: str | None
    rule: MatchRule | None
    note: str | None = None
    """Why there is no match although there were candidates (ambiguous, duplicate, unmapped)."""
    candidates: tuple[str, ...] = ()


def serial_key(value: str | None) -> str | None:
    if value is None:
        return None
    key = " ".join(value.split()).upper()
    if key in PLACEHOLDER_SERIALS or len(key) < 4 or len(set(key)) == 1:
        return None
    return key


def hostname_key(value: str) -> str | None:
    """`PC-01.corp.example` and `pc-01` are one name; an empty name is none."""
    key = value.strip().split(".", 1)[0].casefold()
    return key or None


@dataclass
class _Index:
    serial: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    mac: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    hostname: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))


@dataclass(frozen=True, slots=True)
class _Keys:
    serial: str | None
    macs: frozenset[str]
    hostname: str | None


def _keys(device: Device) -> _Keys:
    return _Keys(
        serial_key(device.serial_number),
        frozenset(device.mac_addresses),
        hostname_key(device.hostname),
    )


def match_devices(
    endpoints: Iterable[Device], agents: Iterable[Device], overrides: Mapping[str, str] | None = None
) -> dict[str, Match]:
    """Agent ref → its match. `overrides` maps agent ref → endpoint ref (the engineer's word)."""
    overrides = overrides or {}
    keys: dict[str, _Keys] = {}
    indexes: dict[str, _Index] = defaultdict(_Index)
    taken: dict[str, str] = {}  # endpoint ref → agent ref
    for agent_ref, endpoint_ref in overrides.items():
        taken[endpoint_ref] = agent_ref
    for endpoint in endpoints:
        if endpoint.scope is None or endpoint.ref in taken:
            continue
        found = keys[endpoint.ref] = _keys(endpoint)
        index = indexes[endpoint.scope]
        if found.serial is not None:
            index.serial[found.serial].append(endpoint.ref)
        for mac in found.macs:
            index.mac[mac].append(endpoint.ref)
        if found.hostname is not None:
            index.hostname[found.hostname].append(endpoint.ref)

    out: dict[str, Match] = {}
    ordered = sorted(
        agents, key=lambda a: (a.last_seen_at is None, -(a.last_seen_at or _EPOCH).timestamp(), a.ref)
    )
    for agent in ordered:
        if agent.ref in overrides:
            out[agent.ref] = Match(agent.ref, overrides[agent.ref], MatchRule.MANUAL)
            continue
        if agent.scope is None:
            out[agent.ref] = Match(
                agent.ref, None, None, "the console customer is not mapped to a PSA company"
            )
            continue
        out[agent.ref] = _match_one(agent, _keys(agent), indexes.get(agent.scope), keys, taken)
    return out


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _match_one(
    agent: Device, mine: _Keys, index: _Index | None, keys: Mapping[str, _Keys], taken: dict[str, str]
) -> Match:
    if index is None:
        return Match(agent.ref, None, None)
    rules: list[tuple[MatchRule, set[str], str]] = []
    if mine.serial is not None:
        rules.append((MatchRule.SERIAL, set(index.serial.get(mine.serial, ())), f"serial {mine.serial}"))
    if mine.macs:
        found = {ref for mac in mine.macs for ref in index.mac.get(mac, ())}
        rules.append((MatchRule.MAC, found, "MAC " + ", ".join(sorted(mine.macs))))
    if mine.hostname is not None:
        rules.append(
            (MatchRule.HOSTNAME, set(index.hostname.get(mine.hostname, ())), f"hostname {mine.hostname}")
        )
    for rule, candidates, what in rules:
        if not candidates:
            continue
        if len(candidates) > 1:
            candidates = _narrow(candidates, mine, keys, after=rule)
        free = sorted(c for c in candidates if c not in taken)
        if len(candidates) == 1 and not free:
            (endpoint,) = candidates
            return Match(
                agent.ref,
                None,
                None,
                f"duplicate: the endpoint with this {what} is already matched to agent {taken[endpoint]}",
                (endpoint,),
            )
        if len(free) == 1 and len(candidates) == 1:
            taken[free[0]] = agent.ref
            return Match(agent.ref, free[0], rule)
        ordered = tuple(sorted(candidates))
        return Match(agent.ref, None, None, f"ambiguous: {len(ordered)} endpoints share {what}", ordered)
    return Match(agent.ref, None, None)


def _narrow(candidates: set[str], mine: _Keys, keys: Mapping[str, _Keys], *, after: MatchRule) -> set[str]:
    """The candidates of an ambiguous rule that also agree on the weaker identifiers the agent has."""
    if after is MatchRule.SERIAL and mine.macs:
        by_mac = {c for c in candidates if keys[c].macs & mine.macs}
        if by_mac:
            candidates = by_mac
    if len(candidates) > 1 and after is not MatchRule.HOSTNAME and mine.hostname is not None:
        by_name = {c for c in candidates if keys[c].hostname == mine.hostname}
        if by_name:
            candidates = by_name
    return candidates
