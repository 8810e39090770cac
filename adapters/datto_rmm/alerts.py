"""Datto RMM alerts → alert events: the open alerts the adapter polls, and the webhook body the
MSP pastes into Datto's webhook settings (docs/datto-rmm-webhooks.md).

Polled alerts (`GET /v2/account/alerts/open`) carry a polymorphic `alertContext` whose `@class`
names its kind (values such as `antivirus_ctx` in public samples; the description only names the
schemas, `AntivirusContext`, ...), so the kind is read from the normalized `@class` and, failing
that, from the context's own fields:

- antivirus (`status`): NOTDETECTED → not_protected, NOTRUNNING → protection_disabled,
  RUNNINGNOTUPTODATE → definitions_outdated;
- security center (`alertType`): DISABLED → protection_disabled, NOT_UPTODATE → definitions_outdated;
- endpoint security threat, Windows Defender, ransomware → threat_detected;
- online/offline status OFFLINE → agent_offline.
Every other alert (disk, performance, patches, …) is no security alert and is skipped.

Webhook bodies: Datto sends whatever body template the MSP wrote, with bracketed variables
substituted, and signs nothing (the core's token check applies). The template connector documents::

    {"source": "datto-rmm", "state": "active", "alertUid": "[alert_uid]",
     "deviceUid": "[device_uid]", "siteUid": "[site_uid]", "hostname": "[device_hostname]",
     "alertType": "[alert_type]", "priority": "[alert_priority]",
     "message": "[alert_message_en]", "timestamp": "[timestamp]"}

and the same with `"state": "resolved"` as the resolution payload. A variable left unsubstituted
(`"[device_uid]"`) or a missing id is refused naming the field. The problem is read from
`alertType` and `message` (or an explicit `"problem"`); a delivery about anything else is
answered with no events. Event ids are `datto:{alertUid}:{state}`, so a polled alert and the
webhook delivery of it deduplicate.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any, Literal

from adapters.base import AlertEvent, ProblemKind, WebhookRequest
from adapters.common import unstorable
from adapters.datto_rmm.models import AlertRead
from adapters.errors import WebhookParseError

TimeParser = Callable[[Any], datetime | None]
MAX_ID_LENGTH = 100

_AV_STATUS = {
    "NOTDETECTED": ProblemKind.NOT_PROTECTED,
    "NOTRUNNING": ProblemKind.PROTECTION_DISABLED,
    "RUNNINGNOTUPTODATE": ProblemKind.DEFINITIONS_OUTDATED,
}
_SEC_CENTER = {"DISABLED": ProblemKind.PROTECTION_DISABLED, "NOT_UPTODATE": ProblemKind.DEFINITIONS_OUTDATED}


def _norm(text: Any) -> str:
    return re.sub(r"[^a-z]", "", str(text or "").lower())


def context_problem(context: Mapping[str, Any] | None) -> ProblemKind | None:
    """The problem an open alert's `alertContext` reports, None for a non-security alert."""
    if not isinstance(context, Mapping):
        return None
    kind = _norm(context.get("@class"))
    status = str(context.get("status") or "").upper()
    if "antivirus" in kind or (not kind and status in _AV_STATUS):
        return _AV_STATUS.get(status)
    if "seccenter" in kind or (not kind and "alertType" in context):
        return _SEC_CENTER.get(str(context.get("alertType") or "").upper())
    if any(k in kind for k in ("endpointsecurity", "ransomware", "windowsdefender")) or (
        not kind and ("esAlertId" in context or "rwextension" in context)
    ):
        return ProblemKind.THREAT_DETECTED
    if "onlineoffline" in kind or (not kind and status in ("ONLINE", "OFFLINE")):
        return ProblemKind.AGENT_OFFLINE if status == "OFFLINE" else None
    return None


def polled_event(alert: AlertRead, parse_time: TimeParser, now: datetime) -> AlertEvent | None:
    """An open alert → an active event, None when it is no security alert or lacks its device."""
    problem = context_problem(alert.alertContext)
    source = alert.alertSourceInfo
    if problem is None or not alert.alertUid or source is None or not source.deviceUid or not source.siteUid:
        return None
    return AlertEvent(
        event_id=f"datto:{alert.alertUid}:active",
        client_id=source.siteUid,
        endpoint_id=source.deviceUid,
        hostname=source.deviceName,
        problem=problem,
        state="active",
        message=(alert.diagnostics or "").strip()[:500],
        occurred_at=parse_time(alert.timestamp) or now,
        vendor_alert_id=alert.alertUid,
    )


_TEXT_RULES: tuple[tuple[re.Pattern[str], ProblemKind], ...] = (
    (re.compile(r"offline|not responding|stopped responding", re.I), ProblemKind.AGENT_OFFLINE),
    (re.compile(r"threat|ransomware|malware|infect|quarantin", re.I), ProblemKind.THREAT_DETECTED),
    (
        re.compile(r"not (up ?to ?date|updated)|out ?of ?date|outdated|definitions", re.I),
        ProblemKind.DEFINITIONS_OUTDATED,
    ),
    (re.compile(r"not running|disabled|turned off|stopped", re.I), ProblemKind.PROTECTION_DISABLED),
    (re.compile(r"not detected|not installed|no anti-?virus|missing", re.I), ProblemKind.NOT_PROTECTED),
)
_SECURITY = re.compile(r"anti-?virus|\bav\b|security|defender|threat|ransomware|malware|offline", re.I)


def text_problem(alert_type: str, message: str) -> ProblemKind | None:
    """The problem named by a delivery's alert type and message, None for a non-security alert."""
    text = f"{alert_type} {message}"
    if not _SECURITY.search(text):
        return None
    for pattern, problem in _TEXT_RULES:
        if pattern.search(text):
            return problem
    return None


_STATES: dict[str, Literal["active", "cleared"]] = {
    "active": "active",
    "alert": "active",
    "triggered": "active",
    "open": "active",
    "resolved": "cleared",
    "resolution": "cleared",
    "cleared": "cleared",
}


def _text(body: Mapping[str, Any], name: str, *, required: bool) -> str | None:
    value = body.get(name)
    if value is None or (isinstance(value, str) and not value.strip()):
        if required:
            raise WebhookParseError(f"the delivery has no {name}", field=name)
        return None
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise WebhookParseError(f"{name} must be text", field=name)
    text = str(value).strip()
    if re.fullmatch(r"\[[a-z_]+\]", text):
        raise WebhookParseError(
            f"{name} is the unsubstituted variable {text}: check the name in Datto's webhook editor",
            field=name,
        )
    problem = unstorable(text)
    if problem:
        raise WebhookParseError(f"{name} {problem}", field=name)
    return text


def parse_body(request: WebhookRequest, parse_time: TimeParser) -> list[AlertEvent]:
    try:
        body = json.loads(request.body)
    except (ValueError, UnicodeDecodeError):
        raise WebhookParseError("the delivery is not JSON", field="body") from None
    if not isinstance(body, dict):
        raise WebhookParseError("the delivery is not a JSON object", field="body")
    state_text = (_text(body, "state", required=True) or "").lower()
    state = _STATES.get(state_text)
    if state is None:
        raise WebhookParseError(f"state {state_text!r} is neither active nor resolved", field="state")
    alert_uid = _text(body, "alertUid", required=True) or ""
    device = _text(body, "deviceUid", required=True) or ""
    site = _text(body, "siteUid", required=True) or ""
    for name, value in (("alertUid", alert_uid), ("deviceUid", device), ("siteUid", site)):
        if len(value) > MAX_ID_LENGTH:
            raise WebhookParseError(f"{name} is longer than {MAX_ID_LENGTH} characters", field=name)
    explicit = _text(body, "problem", required=False)
    if explicit is not None:
        try:
            problem: ProblemKind | None = ProblemKind(explicit.lower())
        except ValueError:
            raise WebhookParseError(f"unknown problem {explicit!r}", field="problem") from None
    else:
        problem = text_problem(
            _text(body, "alertType", required=False) or "", _text(body, "message", required=False) or ""
        )
    if problem is None:
        return []
    return [
        AlertEvent(
            event_id=f"datto:{alert_uid}:{state}",
            client_id=site,
            endpoint_id=device,
            hostname=_text(body, "hostname", required=False),
            problem=problem,
            state=state,
            message=(_text(body, "message", required=False) or "")[:500],
            occurred_at=parse_time(body.get("timestamp")) or request.received_at,
            vendor_alert_id=alert_uid,
        )
    ]
