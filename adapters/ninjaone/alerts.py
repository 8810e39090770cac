"""NinjaOne webhook deliveries (`Activity` JSON) → alert events.

NinjaOne posts one `Activity` per delivery to the URL registered with `PUT /v2/webhook`, with the
custom headers of that registration and, with `expand: ["device"]`, the device (its
`organizationId`) inside. What becomes an event:

- `activityType` ANTIVIRUS or SECURITY: the `statusCode` names the product event —
  `*_THREAT_DETECTED`, `*_THREAT_PRESENT` → threat_detected (active); `*_THREAT_QUARANTINED`,
  `*_THREAT_DELETED`, `*_THREAT_CLEANED`, `*_THREAT_BLOCKED`, `*_QUARANTINE_SUCCEEDED` →
  threat_detected (cleared: the product dealt with it); `*_DISABLED` → protection_disabled
  (active); `*_UNINSTALLED` → not_protected (active), `*_INSTALLED` → not_protected (cleared);
  anything else (scans started, downloads, …) is not an event.
- `activityType` CONDITION (a policy condition): `statusCode` TRIGGERED → active, RESET → cleared;
  the problem is read from the condition's name and texts (`sourceName`, `subject`, `message`):
  threat, definitions, offline, antivirus/protection off, antivirus missing. A condition naming
  none of them is not a security condition and is not an event.

Event ids are `seriesUid` (which ties a condition's TRIGGERED and RESET, and repeats across
redeliveries) plus the state, so a redelivery or a repeated trigger of one series is one event and
its reset another; without a `seriesUid` the activity `id` stands in.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from datetime import datetime

from pydantic import ValidationError

from adapters.base import AlertEvent, ProblemKind, WebhookRequest
from adapters.errors import WebhookParseError
from adapters.ninjaone.models import ActivityRead

SECURITY_TYPES = frozenset({"ANTIVIRUS", "SECURITY"})

_THREAT_ACTIVE = re.compile(r"THREAT_(DETECTED|PRESENT)$")
_THREAT_HANDLED = re.compile(r"(THREAT_(QUARANTINED|DELETED|CLEANED|BLOCKED)|QUARANTINE_SUCCEEDED)$")

_CONDITION_WORDS: tuple[tuple[re.Pattern[str], ProblemKind], ...] = (
    (re.compile(r"threat|malware|virus detected|infect", re.I), ProblemKind.THREAT_DETECTED),
    (re.compile(r"definition|signature", re.I), ProblemKind.DEFINITIONS_OUTDATED),
    (re.compile(r"offline|not seen|unreachable", re.I), ProblemKind.AGENT_OFFLINE),
    (
        re.compile(r"(antivirus|anti-virus|protection|defender).*(disabled|off|snoozed|expired)", re.I),
        ProblemKind.PROTECTION_DISABLED,
    ),
    (
        re.compile(r"(antivirus|anti-virus|protection).*(missing|not installed|absent|none)", re.I),
        ProblemKind.NOT_PROTECTED,
    ),
)


def product_event(status_code: str) -> tuple[ProblemKind, str] | None:
    """An ANTIVIRUS/SECURITY status code → (problem, state), or None when it is not an event."""
    code = status_code.upper()
    if _THREAT_ACTIVE.search(code):
        return ProblemKind.THREAT_DETECTED, "active"
    if _THREAT_HANDLED.search(code):
        return ProblemKind.THREAT_DETECTED, "cleared"
    if code.endswith("_DISABLED"):
        return ProblemKind.PROTECTION_DISABLED, "active"
    if code.endswith("_UNINSTALLED"):
        return ProblemKind.NOT_PROTECTED, "active"
    if code.endswith("_INSTALLED"):
        return ProblemKind.NOT_PROTECTED, "cleared"
    return None


def condition_problem(*texts: str | None) -> ProblemKind | None:
    joined = " ".join(t for t in texts if t)
    for pattern, kind in _CONDITION_WORDS:
        if pattern.search(joined):
            return kind
    return None


def parse_activity(
    request: WebhookRequest, parse_time: Callable[[float | None], datetime | None]
) -> list[AlertEvent]:
    try:
        data = json.loads(request.body)
    except ValueError:
        raise WebhookParseError("the body is not JSON", field="body") from None
    if not isinstance(data, dict):
        raise WebhookParseError("the body is not an Activity object", field="body")
    try:
        activity = ActivityRead.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        raise WebhookParseError(
            f"not a NinjaOne activity: {first['msg']}", field=".".join(str(p) for p in first["loc"]) or "body"
        ) from None
    kind = (activity.activityType or "").upper()
    code = (activity.statusCode or "").upper()
    if not kind:
        raise WebhookParseError("the activity has no activityType", field="activityType")
    found: tuple[ProblemKind, str] | None = None
    if kind in SECURITY_TYPES:
        found = product_event(code)
    elif kind.startswith("CONDITION") and code in ("TRIGGERED", "RESET"):
        problem = condition_problem(activity.sourceName, activity.subject, activity.message)
        if problem is not None:
            found = problem, "active" if code == "TRIGGERED" else "cleared"
    if found is None:
        return []
    problem, state = found
    device = activity.device
    endpoint_id = activity.deviceId or (device.id if device else None)
    if not endpoint_id:
        raise WebhookParseError("the activity names no device", field="deviceId")
    client_id = device.organizationId if device else None
    if not client_id:
        raise WebhookParseError(
            "the activity carries no device.organizationId (register the webhook with expand: device)",
            field="device.organizationId",
        )
    occurred = parse_time(activity.activityTime) or request.received_at
    series = activity.seriesUid or (f"activity-{activity.id}" if activity.id else None)
    if not series:
        raise WebhookParseError("the activity has neither seriesUid nor id", field="seriesUid")
    text = activity.message or activity.subject or activity.sourceName or code
    return [
        AlertEvent(
            event_id=f"ninjaone:{series}:{state}",
            client_id=client_id,
            endpoint_id=endpoint_id,
            hostname=(device.systemName or device.displayName) if device else None,
            problem=problem,
            state="active" if state == "active" else "cleared",
            message=text[:500],
            occurred_at=occurred,
        )
    ]
