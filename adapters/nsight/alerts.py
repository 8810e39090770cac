"""Failing checks → alert events, and the canonical alert JSON accepted on the webhook.

Which checks matter: N-sight has no alert feed, only the list of currently failing checks. A check is
security-relevant when its `check_type` is in the connection's `security_check_types` (default: the
Managed Antivirus types 1026/1034 counted by a public community dashboard; vendor-notes/rmm.md §3 marks
them unverified) or when its description names antivirus/malware protection (the Antivirus Update Check,
"Managed Antivirus", Defender, Bitdefender, VIPRE, ...). The problem kind is read from the description.

Identity: one event id per failing check, `nsight:{device id}:{check id}`, reused for the `cleared`
event, so the core keys on (event_id, state).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError

from adapters.base import AlertEvent, ProblemKind, WebhookRequest
from adapters.errors import WebhookParseError
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


def cleared_event(previous: AlertEvent, now: datetime) -> AlertEvent:
    return previous.model_copy(
        update={"state": "cleared", "occurred_at": now, "message": "check no longer failing"}
    )


# ---------------------------------------------------------------------------------------------
# Canonical alert JSON (DESIGN.md, "Public contract")
# ---------------------------------------------------------------------------------------------

CANONICAL_FIELDS = ("event_id", "client_id", "endpoint_id", "problem", "state", "occurred_at")
_ID_FIELDS = frozenset({"event_id", "client_id", "endpoint_id"})


def parse_canonical(request: WebhookRequest) -> list[AlertEvent]:
    """One canonical alert object, or a JSON array of them → events."""
    try:
        body: Any = json.loads(request.body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise WebhookParseError(f"body is not JSON: {exc}", field="body") from None
    except RecursionError:
        raise WebhookParseError("body is not JSON: nested too deeply", field="body") from None
    items = body if isinstance(body, list) else [body]
    events: list[AlertEvent] = []
    for index, item in enumerate(items):
        prefix = f"[{index}]." if isinstance(body, list) else ""
        if not isinstance(item, dict):
            raise WebhookParseError("expected a JSON object", field=prefix.rstrip(".") or "body")
        for name in CANONICAL_FIELDS:
            if item.get(name) in (None, ""):
                raise WebhookParseError("required field is missing", field=f"{prefix}{name}")
        item = {k: str(v) if k in _ID_FIELDS and isinstance(v, int) else v for k, v in item.items()}
        try:
            event = AlertEvent.model_validate(item)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(part) for part in first["loc"]) or "body"
            raise WebhookParseError(first["msg"], field=f"{prefix}{where}") from None
        if event.occurred_at.tzinfo is None:
            event = event.model_copy(update={"occurred_at": event.occurred_at.replace(tzinfo=UTC)})
        events.append(event)
    return events
