"""Automate alerts → alert events: the `GET /Alerts` rows the adapter polls, and the alert-template
body its webhook accepts.

Automate has no outbound webhook of its own (vendor-notes/rmm.md §1.5); a monitor's alert template can
run a script that POSTs to the connection's webhook URL (with the secret as `X-Connector-Token` or
`?token=`). Besides the canonical alert (parsed by the core before the adapter sees a body), the
script can post an Automate alert-template payload, as one JSON object or an array of them: the
fields of a `GET /Alerts` row, flat or nested as the script finds easier, plus the monitor's outcome::

    {"AlertId": 9001,                           # optional; same event id as the polled alert
     "ComputerId": 42, "ClientId": 7,           # or "Computer": {"Id", "Name"}, "Client": {"Id"}
     "ComputerName": "ACME-WS01",               # optional
     "MonitorName": "AV - Definitions",         # or "Monitor": {"Id", "Name"}
     "FieldName": "AntivirusDefinitionDate",    # optional
     "Message": "Definitions are 9 days old",   # optional
     "Status": "Failed",                        # Failed|Failure|Active → active;
                                                # Success|Succeeded|Cleared|Resolved|OK → cleared
     "AlertDate": "2026-11-20T12:00:00",        # optional; offset-less = the server's zone
     "Problem": "definitions_outdated"}         # optional; otherwise read from the texts

A template whose variables were not substituted (`"ComputerId": "%computerid%"`) is refused with the
field named.

Problem kinds are read from the monitor name, field name and message (`classify`): alerts about
anything other than endpoint protection or an agent being offline are not security alerts and are
skipped when polling (a webhook body that cannot be classified and has no `Problem` is an error).
Event ids: `cwa:alert:{AlertId}` when there is an alert id, so a polled alert and a posted copy of it
deduplicate.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from adapters.base import AlertEvent, ProblemKind, WebhookRequest
from adapters.common import unstorable
from adapters.connectwise_automate.models import AlertRead
from adapters.errors import WebhookParseError

TimeParser = Callable[[str | None], datetime | None]
MAX_ID_DIGITS = 18
"""Automate ids are database integers; a longer run of digits is not one (and would not fit the
core's id columns)."""

_AV_CONTEXT = re.compile(
    r"anti-?virus|\bav\b|virus|malware|defender|endpoint (security|protection)|threat|quarantin|"
    r"kaspersky|bitdefender|sophos|webroot|sentinel ?one|crowdstrike|\beset\b|symantec|mcafee|"
    r"trend ?micro|vipre|\bdefinitions?\b|real-?time protection",
    re.I,
)
_THREAT = re.compile(
    r"threats?\b(?! ?(definitions?|database))|infect|malware (found|detected)|virus(es)? (found|detected)|"
    r"quarantin",
    re.I,
)
_OFFLINE = re.compile(
    r"\boffline\b|not (checked|checking) in|no (check-?in|heartbeat)|agent (is )?(down|not responding)|"
    r"heartbeat (lost|failed|missing)",
    re.I,
)
_NOT_INSTALLED = re.compile(
    r"not installed|no (anti-?virus|av|virus scanner|endpoint protection)\b|(anti-?virus|av) (is )?missing|"
    r"missing (anti-?virus|av)|not protected|unprotected",
    re.I,
)
_DEFINITIONS = re.compile(r"definition|signature|out of date|outdated|(av|virus) database", re.I)
_SCAN = re.compile(r"\bscan", re.I)

_ACTIVE = frozenset({"failed", "failure", "fail", "active", "alert", "error", "critical", "warning", "open"})
_CLEARED = frozenset({"success", "succeeded", "cleared", "clear", "resolved", "ok", "normal", "closed"})
_TEMPLATE_KEYS = frozenset(
    {"alertid", "computerid", "computer", "clientid", "client", "monitorname", "monitor", "status"}
)


def classify(*texts: str | None) -> ProblemKind | None:
    """The problem an alert reports, or None when it is not about protection or an offline agent."""
    words = " ".join(t for t in texts if t)
    if not words.strip():
        return None
    av = bool(_AV_CONTEXT.search(words))
    if av and _THREAT.search(words):
        return ProblemKind.THREAT_DETECTED
    if not av:
        return ProblemKind.AGENT_OFFLINE if _OFFLINE.search(words) else None
    if _NOT_INSTALLED.search(words):
        return ProblemKind.NOT_PROTECTED
    if _DEFINITIONS.search(words):
        return ProblemKind.DEFINITIONS_OUTDATED
    if _SCAN.search(words):
        return ProblemKind.SCAN_OVERDUE
    return ProblemKind.PROTECTION_DISABLED


def event_id(alert_id: str) -> str:
    return f"cwa:alert:{alert_id}"


def polled_event(alert: AlertRead, parse_time: TimeParser, now: datetime) -> AlertEvent | None:
    """A `GET /Alerts` row → an active event; None for rows that are not security alerts of a computer."""
    computer = alert.Computer
    if alert.AlertId is None or computer is None or computer.Id is None or computer.Id == "0":
        return None
    if alert.Client is None or alert.Client.Id is None:
        return None
    monitor = alert.Monitor.Name if alert.Monitor else None
    problem = classify(monitor, alert.FieldName, alert.Message, alert.Source)
    if problem is None:
        return None
    message = " - ".join(t for t in (monitor, alert.Message) if t) or problem.value
    return AlertEvent(
        event_id=event_id(alert.AlertId),
        client_id=alert.Client.Id,
        endpoint_id=computer.Id,
        hostname=computer.Name,
        problem=problem,
        state="active",
        message=message[:1000],
        occurred_at=parse_time(alert.AlertDate) or now,
    )


# ---------------------------------------------------------------------------------------------
# Webhook bodies
# ---------------------------------------------------------------------------------------------


def parse_body(request: WebhookRequest, parse_time: TimeParser) -> list[AlertEvent]:
    try:
        body: Any = json.loads(request.body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise WebhookParseError(f"body is not JSON: {exc}", field="body") from None
    except RecursionError:
        raise WebhookParseError("body is not JSON: nested too deeply", field="body") from None
    items = body if isinstance(body, list) else [body]
    if not items:
        raise WebhookParseError("empty array", field="body")
    events: list[AlertEvent] = []
    for index, item in enumerate(items):
        prefix = f"[{index}]." if isinstance(body, list) else ""
        if not isinstance(item, dict):
            raise WebhookParseError("expected a JSON object", field=prefix.rstrip(".") or "body")
        if not _TEMPLATE_KEYS & {k.lower() for k in item}:
            raise WebhookParseError(
                "neither a canonical alert (event_id, endpoint_id, problem, ...) nor an Automate alert "
                "(ComputerId, ClientId, Status, ...)",
                field=prefix.rstrip(".") or "body",
            )
        events.append(_template(item, prefix, parse_time, request.received_at))
    return events


def _lookup(item: Mapping[str, Any], *names: str) -> tuple[str, Any]:
    """First present key among `names` (case-insensitive; `A.B` reads a nested object)."""
    lowered = {k.lower(): v for k, v in item.items()}
    for name in names:
        head, _, tail = name.partition(".")
        value = lowered.get(head.lower())
        if tail:
            value = _lookup(value, tail)[1] if isinstance(value, dict) else None
        if value not in (None, ""):
            return name, value
    return names[0], None


def _id(item: Mapping[str, Any], prefix: str, *names: str, required: bool = True) -> str | None:
    name, value = _lookup(item, *names)
    if value is None:
        if required:
            raise WebhookParseError("required field is missing", field=f"{prefix}{name}")
        return None
    text = str(value).strip()
    if isinstance(value, bool) or not (text.isascii() and text.isdigit()):
        raise WebhookParseError(
            f"must be an Automate id (a number), got {text[:40]!r}; was the template variable substituted?",
            field=f"{prefix}{name}",
        )
    if len(text.lstrip("0")) > MAX_ID_DIGITS:
        raise WebhookParseError(
            f"must be an Automate id (a number of at most {MAX_ID_DIGITS} digits), got {len(text)} digits",
            field=f"{prefix}{name}",
        )
    return str(int(text))


def _text(item: Mapping[str, Any], prefix: str, *names: str) -> str | None:
    name, value = _lookup(item, *names)
    if value is None:
        return None
    text = str(value).strip()
    if (problem := unstorable(text)) is not None:
        raise WebhookParseError(problem, field=f"{prefix}{name}")
    return text or None


def _template(
    item: Mapping[str, Any], prefix: str, parse_time: TimeParser, received_at: datetime
) -> AlertEvent:
    computer = _id(item, prefix, "ComputerId", "Computer.Id")
    client = _id(item, prefix, "ClientId", "Client.Id")
    alert_id = _id(item, prefix, "AlertId", required=False)
    assert computer is not None and client is not None
    monitor = _text(item, prefix, "MonitorName", "Monitor.Name")
    field_name = _text(item, prefix, "FieldName")
    message = _text(item, prefix, "Message") or ""

    status_name, status = _lookup(item, "Status", "State")
    if status is None:
        raise WebhookParseError("required field is missing", field=f"{prefix}{status_name}")
    if str(status).strip().lower() in _CLEARED:
        state = "cleared"
    elif str(status).strip().lower() in _ACTIVE:
        state = "active"
    else:
        raise WebhookParseError(
            f"unknown status {str(status)[:40]!r}; use Failed or Success", field=f"{prefix}{status_name}"
        )

    explicit = _text(item, prefix, "Problem")
    if explicit is not None:
        try:
            problem = ProblemKind(explicit.lower())
        except ValueError:
            allowed = ", ".join(k.value for k in ProblemKind)
            raise WebhookParseError(
                f"unknown problem {explicit!r}; one of {allowed}", field=f"{prefix}Problem"
            ) from None
    else:
        found = classify(monitor, field_name, message)
        if found is None:
            raise WebhookParseError(
                "cannot tell which problem this alert reports from MonitorName/FieldName/Message; "
                "add a Problem field",
                field=f"{prefix}Problem",
            )
        problem = found

    raw_date = _text(item, prefix, "AlertDate", "OccurredAt")
    occurred = parse_time(raw_date) if raw_date else received_at
    if occurred is None:
        raise WebhookParseError(f"not a date: {raw_date!r}", field=f"{prefix}AlertDate")
    if occurred.tzinfo is None:
        occurred = occurred.replace(tzinfo=UTC)
    key = (
        event_id(alert_id)
        if alert_id and state == "active"
        else (f"cwa:{computer}:{monitor or problem.value}:{state}:{occurred.isoformat()}")
    )
    text = " - ".join(t for t in (monitor, message) if t) or problem.value
    return AlertEvent(
        event_id=key,
        client_id=client,
        endpoint_id=computer,
        hostname=_text(item, prefix, "ComputerName", "Computer.Name"),
        problem=problem,
        state=state,
        message=text[:1000],
        occurred_at=occurred,
    )
