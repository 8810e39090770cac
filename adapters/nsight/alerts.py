"""Failing checks → alert events.

Which checks matter: N-sight has no alert feed, only the list of currently failing checks. A check is
security-relevant when its `check_type` is in the connection's `security_check_types` (default: the
Managed Antivirus types 1026/1034 counted by a public community dashboard; vendor-notes/rmm.md §3 marks
them unverified) or when its description names antivirus/malware protection (the Antivirus Update Check,
"Managed Antivirus", Defender, Bitdefender, VIPRE, ...). The problem kind is read from the description.

Identity: one event id per failing check, `nsight:{device id}:{check id}`, the same on every poll that
lists it. A check that stops failing is absent from the next poll, which the core reads as cleared.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import datetime

from adapters.base import AlertEvent, ProblemKind
from adapters.nsight.models import FailingCheck

_SECURITY = re.compile(
    r"anti-?virus|anti-?malware|malware|\bvirus|managed antivirus|\bmav\b|defender|bitdefender|vipre|"
    r"endpoint (security|protection)|threat|quarantin",
    re.I,
)
_THREAT = re.compile(r"threat|malware (found|detected)|infect|virus(es)? (found|detected)|quarantin", re.I)
_DEFINITIONS = re.compile(r"definition|signature|update check|out of date|outdated", re.I)
_SCAN = re.compile(r"\bscan", re.I)


def event_id(device_id: str, check_id: str) -> str:
    return f"nsight:{device_id}:{check_id}"


def is_security_check(check: FailingCheck, security_types: Iterable[int]) -> bool:
    if check.check_type is not None and check.check_type in set(security_types):
        return True
    return bool(_SECURITY.search(check.description))


def problem_for(check: FailingCheck) -> ProblemKind:
    words = f"{check.description} {check.output}"
    if _THREAT.search(words):
        return ProblemKind.THREAT_DETECTED
    if _DEFINITIONS.search(check.description):
        return ProblemKind.DEFINITIONS_OUTDATED
    if _SCAN.search(check.description):
        return ProblemKind.SCAN_OVERDUE
    return ProblemKind.PROTECTION_DISABLED


def active_event(check: FailingCheck, now: datetime) -> AlertEvent:
    message = check.description if not check.output else f"{check.description}: {check.output}"
    return AlertEvent(
        event_id=event_id(check.device_id, check.check_id),
        client_id=check.client_id,
        endpoint_id=check.device_id,
        hostname=check.device_name,
        problem=problem_for(check),
        state="active",
        message=message[:1000],
        occurred_at=check.last_run_at or now,
    )
