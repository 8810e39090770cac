"""Managed Antivirus (MAV) answers → the antivirus part of an endpoint's status. Pure.

Sources (N-able docs, https://documentation.n-able.com/remote-management/userguide/Content/ and
developer.n-able.com/n-sight/docs/): api_list_mav_scans.htm (`list_mav_scans&deviceid=&details=`,
scan `type` QUICK/DEEP/ACTIVE/CUSTOM — Bitdefender "Quick"/"Deep"/"Active Protection"/"Custom" —,
`status` NONE/PENDING/PENDING_AGENT/FINISHED/CANCELED/ERROR/PAUSED/RUNNING, UTC `start`/`end`);
list-managed-antivirus (`list_mav_threats&deviceid=`: the most recent occurrence of each threat,
`last_status` VIPRE QUARANTINED/RELEASE_PENDING/RELEASED/DELETE_PENDING/DELETED/REPORTED/
FAILED_TO_QUARANTINE/FAILED_TO_RELEASE/FAILED_TO_DELETE, Bitdefender Ignored/Detected/Deleted/
Blocked/Quarantined/Cleaned/QuarantineRestored/QuarantineDeleted). `v=1` VIPRE, `v=2` Bitdefender.

Reading:
- Managed Antivirus is on the device when it reports any scan or threat (an installed engine runs
  scheduled and active-protection scans); no scan and no threat = no Managed Antivirus.
- Last scan: the latest finished scan that is not active protection (end time, else start).
- Active threats: threats whose last status leaves them on the device (detected, reported, ignored,
  restored or released from quarantine, failed to quarantine or delete). An unrecognised status is
  counted as active: it is never read as "fine".
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from adapters.nsight.models import MavScan, MavThreat

ENGINES = {1: "VIPRE", 2: "Bitdefender"}

RESOLVED_THREAT_STATUSES = frozenset(
    {
        "QUARANTINED",
        "DELETE_PENDING",
        "DELETED",
        "FAILED_TO_RELEASE",
        "BLOCKED",
        "CLEANED",
        "QUARANTINEDELETED",
    }
)
ACTIVE_THREAT_STATUSES = frozenset(
    {
        "DETECTED",
        "IGNORED",
        "REPORTED",
        "RELEASED",
        "RELEASE_PENDING",
        "QUARANTINERESTORED",
        "FAILED_TO_QUARANTINE",
        "FAILED_TO_DELETE",
    }
)
_NOT_SCANS = frozenset({"ACTIVE", "ACTIVE_PROTECTION"})


def product_name(engine: int) -> str:
    return f"Managed Antivirus ({ENGINES.get(engine, f'engine {engine}')})"


@dataclass(frozen=True)
class MavState:
    installed: bool
    last_scan_at: datetime | None
    active_threats: int
    unknown_statuses: tuple[str, ...] = ()


def threat_is_active(threat: MavThreat) -> bool:
    return threat.status not in RESOLVED_THREAT_STATUSES


def last_scan(scans: Sequence[MavScan]) -> datetime | None:
    finished = [
        s.ended_at or s.started_at
        for s in scans
        if s.status == "FINISHED" and s.type not in _NOT_SCANS and (s.ended_at or s.started_at)
    ]
    return max((t for t in finished if t is not None), default=None)


def mav_state(scans: Sequence[MavScan], threats: Sequence[MavThreat]) -> MavState:
    unknown = tuple(
        sorted(
            {
                t.status or "(empty)"
                for t in threats
                if t.status not in RESOLVED_THREAT_STATUSES | ACTIVE_THREAT_STATUSES
            }
        )
    )
    return MavState(
        installed=bool(scans or threats),
        last_scan_at=last_scan(scans),
        active_threats=sum(1 for t in threats if threat_is_active(t)),
        unknown_statuses=unknown,
    )
