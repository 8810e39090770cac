"""N-central HTTP-XML notifications → alert events.

The format (vendor-notes/rmm.md §2.2; N-able docs "Notification acknowledgment using XML",
…/API_Integration_NotifReg.html, and "XML notifications schema", …/API_Integration_XMLNotifSchema.html):
an N-central *HTTP-XML notification method* POSTs one `<notification>` document per notification, whose
children are the notification keywords of the template (all optional; only keywords listed in the
template are filled), e.g. `ActiveNotificationTriggerID, DeviceID, DeviceName, CustomerName,
AffectedService, TaskIdent, QualitativeOldState, QualitativeNewState (Normal/Warning/Failed/...),
QuantitativeNewState, TimeOfStateChange ("2025-05-29 22:05:10", server-local, no offset)`. Samples in
public code: an alert-router's default sample XML and synthetic generators (no licence; not copied).
N-central signs nothing: the core's `?token=` / `X-Connector-Token` check applies (put the token in
the notification method's URL).

What the template must contain (and what happens otherwise, each a `WebhookParseError` naming the
keyword): `ActiveNotificationTriggerID`, `AffectedService`, `QualitativeNewState`, and the device:
`DeviceID`, or what N-central's default template carries instead (`DeviceName`, `DeviceURI`,
`CustomerName`; the default template has no `DeviceID`). The schema has no customer-id keyword, and
`CustomerName` is the org-unit path (`Parent > Site`, e.g. "Jasons Deli > Morrisville"), so device
and client come from `resolve_device`: the adapter answers from the devices and customers it has
listed (device id first; else the device name, narrowed by the path and the URI); an unknown device
is reported until a sync has listed it, and a name shared by several devices asks for `DeviceID`.

Mapping: `QualitativeNewState` Failed/Warning → `active`, Normal → `cleared`; other states (Stale,
No Data, Disconnected, Misconfigured) are not problems and are refused with a clear message. The
problem kind is read from `AffectedService`: agent status → agent_offline; threat words → threat_detected;
definitions/signatures/update → definitions_outdated; scan → scan_overdue; other antivirus/security
services → protection_disabled; non-security services are refused (narrow the notification profile).
Active and cleared notifications share `ActiveNotificationTriggerID`, so the event id adds the new
state and the time of the change: `ncentral:{trigger}:{state}:{time}`.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from xml.etree.ElementTree import Element

import defusedxml.ElementTree as SafeET
from defusedxml import DefusedXmlException

from adapters.base import AlertEvent, ProblemKind, WebhookRequest
from adapters.errors import WebhookParseError


@dataclass(frozen=True)
class NotifiedDevice:
    """What a notification says about its device."""

    device_id: str | None
    device_name: str | None
    device_uri: str | None
    customer_path: tuple[str, ...]
    """`CustomerName` split into org units, outermost first ("Parent > Site" → (Parent, Site))."""


DeviceResolver = Callable[[NotifiedDevice], "tuple[str, str] | None"]
"""What a notification names → (device id, customer id); None when unknown. Raises
`WebhookParseError` when it names several devices."""


def customer_path(value: str | None) -> tuple[str, ...]:
    """`CustomerName` as org units: "Jasons Deli > Morrisville" → ("Jasons Deli", "Morrisville")."""
    return tuple(part.strip() for part in re.split(r"\s+>\s+", (value or "").strip()) if part.strip())


MAX_ID_DIGITS = 18
"""N-central device ids are database integers; a longer run of digits is not one."""
ACTIVE_STATES = frozenset({"failed", "warning"})
CLEARED_STATES = frozenset({"normal"})

_AGENT = re.compile(r"agent (status|check-?in)", re.I)
_THREAT = re.compile(r"threat|infect|quarantin|malware (found|detected)|virus(es)? (found|detected)", re.I)
_DEFINITIONS = re.compile(r"definition|signature|\bupdate", re.I)
_SCAN = re.compile(r"\bscan", re.I)
_SECURITY = re.compile(
    r"\bav\b|anti-?virus|anti-?malware|defender|security manager|endpoint (security|protection)|"
    r"\bedr\b|bitdefender|sentinel|webroot|sophos|malware|virus",
    re.I,
)


def problem_for(service: str, detail: str = "") -> ProblemKind | None:
    """The problem an N-central monitored service reports, or None for a non-security service."""
    if _AGENT.search(service):
        return ProblemKind.AGENT_OFFLINE
    if not _SECURITY.search(service) and not _THREAT.search(service):
        return None
    if _THREAT.search(service) or _THREAT.search(detail):
        return ProblemKind.THREAT_DETECTED
    if _DEFINITIONS.search(service):
        return ProblemKind.DEFINITIONS_OUTDATED
    if _SCAN.search(service):
        return ProblemKind.SCAN_OVERDUE
    return ProblemKind.PROTECTION_DISABLED


def parse_local_time(value: str | None, tz: tzinfo) -> datetime | None:
    """N-central timestamps → aware UTC. Accepts ISO-8601, `2024-02-28 15:25:05.939 -0500`,
    a trailing `[Zone/Name]`, and offset-less server-local times (read in `tz`)."""
    if value is None:
        return None
    text = str(value).strip()
    if not text:
        return None
    text = re.sub(r"\[[^\]]*\]$", "", text)
    text = re.sub(r"\s+([+-]\d{2}):?(\d{2})$", r"\1:\2", text)
    text = re.sub(r"([+-]\d{2})(\d{2})$", r"\1:\2", text) if re.search(r"T.*[+-]\d{4}$", text) else text
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        return None
    if when.year < 1971:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=tz)
    return when.astimezone(UTC)


# ---------------------------------------------------------------------------------------------
# XML notifications
# ---------------------------------------------------------------------------------------------


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _fields(node: Element) -> dict[str, str]:
    """Keyword → text; case-insensitive lookup keys, first occurrence wins."""
    out: dict[str, str] = {}
    for child in node:
        name = _local(str(child.tag)).lower()
        if name not in out:
            out[name] = (child.text or "").strip()
    return out


def load_notifications(body: bytes) -> list[Element]:
    """`<notification>` elements of a delivery: the document root, or its children when a wrapper
    holds several. XML with a DTD or entity declarations is refused."""
    try:
        root = SafeET.fromstring(body, forbid_dtd=True)
    except DefusedXmlException as exc:
        raise WebhookParseError(f"XML refused: {type(exc).__name__}", field="body") from None
    except SafeET.ParseError as exc:
        raise WebhookParseError(f"not well-formed XML: {exc}", field="body") from None
    if _local(str(root.tag)).lower() == "notification":
        return [root]
    items = [child for child in root if _local(str(child.tag)).lower() == "notification"]
    if not items:
        raise WebhookParseError(
            f"expected a <notification> document, got <{_local(str(root.tag))}>", field="notification"
        )
    return items


def notification_event(
    node: Element,
    *,
    tz: tzinfo,
    received_at: datetime,
    resolve_device: DeviceResolver,
    prefix: str = "",
) -> AlertEvent:
    fields = _fields(node)

    def required(name: str, hint: str) -> str:
        value = fields.get(name.lower(), "")
        if not value:
            raise WebhookParseError(f"missing; {hint}", field=f"{prefix}{name}")
        return value

    template_hint = "add this keyword to the HTTP-XML notification template"
    trigger = required("ActiveNotificationTriggerID", template_hint)
    device_id = fields.get("deviceid") or None
    if device_id is not None and (
        not (device_id.isascii() and device_id.isdigit()) or len(device_id.lstrip("0")) > MAX_ID_DIGITS
    ):
        raise WebhookParseError(f"not an N-central device id: {device_id[:40]!r}", field=f"{prefix}DeviceID")
    device_name = fields.get("devicename") or None
    if device_id is None and device_name is None:
        raise WebhookParseError(
            "missing, and no DeviceName either; add DeviceID (or DeviceName) to the HTTP-XML "
            "notification template",
            field=f"{prefix}DeviceID",
        )
    service = required("AffectedService", template_hint)
    new_state = required("QualitativeNewState", template_hint)
    state_key = new_state.lower()
    if state_key in ACTIVE_STATES:
        state = "active"
    elif state_key in CLEARED_STATES:
        state = "cleared"
    else:
        raise WebhookParseError(
            f"state {new_state!r} is neither a problem (Failed, Warning) nor a recovery (Normal)",
            field=f"{prefix}QualitativeNewState",
        )
    detail = fields.get("quantitativenewstate", "")
    problem = problem_for(service, detail if state == "active" else "")
    if problem is None:
        raise WebhookParseError(
            f"{service!r} is not an antivirus, security or agent service; limit the notification "
            "profile to those services",
            field=f"{prefix}AffectedService",
        )
    customer_name = fields.get("customername") or None
    notified = NotifiedDevice(
        device_id=device_id,
        device_name=device_name,
        device_uri=fields.get("deviceuri") or fields.get("deviceip") or None,
        customer_path=customer_path(customer_name),
    )
    try:
        resolved = resolve_device(notified)
    except WebhookParseError as exc:
        raise WebhookParseError(exc.message, field=f"{prefix}{exc.field or 'DeviceName'}") from None
    if resolved is None:
        named = f"device {device_id}" if device_id else f"device {device_name!r}"
        raise WebhookParseError(
            f"{named} ({customer_name or 'no CustomerName'}) is not known yet: N-central "
            "notifications carry no customer id, so it is taken from the listed devices; run a sync",
            field=f"{prefix}{'CustomerName' if device_id else 'DeviceName'}",
        )
    device, client = resolved
    raw_time = fields.get("timeofstatechange", "")
    occurred = parse_local_time(raw_time, tz) if raw_time else received_at
    if occurred is None:
        raise WebhookParseError(f"not a time: {raw_time!r}", field=f"{prefix}TimeOfStateChange")
    if occurred.tzinfo is None:
        occurred = occurred.replace(tzinfo=UTC)
    task = fields.get("taskident", "")
    old_state = fields.get("qualitativeoldstate", "")
    what = f"{service} ({task})" if task else service
    change = f"{old_state} -> {new_state}" if old_state else new_state
    message = f"{what}: {change}" + (f". {detail}" if detail else "")
    return AlertEvent(
        event_id=f"ncentral:{trigger}:{state}:{occurred.strftime('%Y%m%dT%H%M%SZ')}",
        client_id=client,
        endpoint_id=device,
        hostname=fields.get("devicename") or None,
        problem=problem,
        state=state,
        message=message[:1000],
        occurred_at=occurred,
    )


def parse_notifications(
    body: bytes, *, tz: tzinfo, received_at: datetime, resolve_device: DeviceResolver
) -> list[AlertEvent]:
    nodes = load_notifications(body)
    several = len(nodes) > 1
    return [
        notification_event(
            node,
            tz=tz,
            received_at=received_at,
            resolve_device=resolve_device,
            prefix=f"notification[{i}]." if several else "",
        )
        for i, node in enumerate(nodes)
    ]


def parse_body(request: WebhookRequest, *, tz: tzinfo, resolve_device: DeviceResolver) -> list[AlertEvent]:
    """N-central's HTTP-XML notification (the canonical alert JSON is the core's to parse)."""
    text = request.body.lstrip(b"\xef\xbb\xbf \t\r\n")
    if not text:
        raise WebhookParseError("empty body", field="body")
    if not text.startswith(b"<"):
        raise WebhookParseError(
            "neither the canonical alert nor an N-central HTTP-XML notification (XML)", field="body"
        )
    return parse_notifications(text, tz=tz, received_at=request.received_at, resolve_device=resolve_device)


__all__ = [
    "DeviceResolver",
    "NotifiedDevice",
    "customer_path",
    "load_notifications",
    "notification_event",
    "parse_body",
    "parse_local_time",
    "parse_notifications",
    "problem_for",
]
