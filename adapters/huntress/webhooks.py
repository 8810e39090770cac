"""Huntress webhook deliveries: the Svix signature and the incident report events.

Signature (Huntress support, "How to use Webhooks Integration": "Huntress uses Svix to sign Webhook
payloads"; Svix, "Verifying Webhooks Manually"): every delivery carries `svix-id`, `svix-timestamp`
(Unix seconds) and `svix-signature`, a space-separated list of `v1,<base64 HMAC-SHA256>` over
`"{svix-id}.{svix-timestamp}.{raw body}"`, keyed with the base64 part of the endpoint's signing
secret (`whsec_…`, shown under the endpoint's "View Signing Secret"). White-labelled senders use
`webhook-` instead of `svix-`; both are read. A timestamp more than five minutes from the moment the
delivery was received is refused (replay). The HMAC is the Standard Webhooks one (`standardwebhooks`,
already a dependency, signs; the comparison is constant-time here).

Events (huntress-webhooks.openapi.json): `incident_report.created` → a `threat_detected` problem
active on the incident's agent, `incident_report.closed` → cleared. Other events (comments,
escalations, platform actions, account notices) and incident reports without an agent (identity or
cloud incidents) concern no endpoint and give no event.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
import re
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta

from pydantic import ValidationError
from standardwebhooks.webhooks import Webhook

from adapters.base import AlertEvent, ProblemKind, WebhookRequest
from adapters.common import unstorable
from adapters.errors import WebhookParseError
from adapters.huntress.models import IncidentReportEventRead

TOLERANCE = timedelta(minutes=5)
HEADER_PREFIXES = ("svix-", "webhook-")
ACTIVE_EVENTS = frozenset({"incident_report.created"})
CLEARED_EVENTS = frozenset({"incident_report.closed"})
HOSTNAME_IN_SUBJECT = re.compile(r"\bIncident on (\S+)", re.IGNORECASE)


def signing_key(secret: str) -> bytes | None:
    """The HMAC key of a `whsec_<base64>` secret (the prefix optional); None when not base64."""
    raw = secret.strip().removeprefix("whsec_")
    if not raw:
        return None
    try:
        return base64.b64decode(raw + "=" * (-len(raw) % 4), validate=True)
    except (binascii.Error, ValueError):
        return None


def signature_headers(headers: Mapping[str, str]) -> tuple[str, str, str] | None:
    """(id, timestamp, signature) from the `svix-` or `webhook-` headers; None when absent."""
    lowered = {k.lower(): v for k, v in headers.items()}
    for prefix in HEADER_PREFIXES:
        found = [lowered.get(prefix + name) for name in ("id", "timestamp", "signature")]
        if any(found):
            return (found[0] or "", found[1] or "", found[2] or "")
    return None


def sign(secret: str, message_id: str, timestamp: datetime, body: bytes) -> str:
    """The `svix-signature` value Huntress sends for this delivery (one `v1,` signature)."""
    return Webhook(secret).sign(message_id, timestamp, body.decode())


def verify(request: WebhookRequest, secret: str) -> bool | None:
    """True when one `v1` signature matches and the timestamp is within five minutes of receipt;
    None when the delivery carries no Svix headers at all (the core's generic check applies)."""
    found = signature_headers(request.headers)
    if found is None:
        return None
    message_id, stamp, signatures = found
    key = signing_key(secret or "")
    if not (message_id and stamp and signatures) or key is None:
        return False
    try:
        sent_at = datetime.fromtimestamp(int(stamp), UTC)
    except (ValueError, OverflowError, OSError):
        return False
    received = request.received_at if request.received_at.tzinfo else request.received_at.replace(tzinfo=UTC)
    if abs(received - sent_at) > TOLERANCE:
        return False
    expected = hmac.new(key, f"{message_id}.{stamp}.".encode() + request.body, "sha256").digest()
    for entry in signatures.split():
        version, _, value = entry.partition(",")
        if version != "v1":
            continue
        try:
            given = base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            continue
        if hmac.compare_digest(expected, given):
            return True
    return False


def hostname_from_subject(subject: str | None) -> str | None:
    """`LOW - Incident on laptop01 (Test)` → `laptop01`."""
    found = HOSTNAME_IN_SUBJECT.search(subject or "")
    return found.group(1) if found else None


def parse(request: WebhookRequest) -> list[AlertEvent]:
    try:
        data = json.loads(request.body)
    except ValueError:
        raise WebhookParseError("the delivery is not JSON", field="body") from None
    if not isinstance(data, dict):
        raise WebhookParseError("the delivery is not a JSON object", field="body")
    event_type = data.get("event_type")
    if not isinstance(event_type, str) or not event_type:
        raise WebhookParseError("the delivery names no event_type", field="event_type")
    if event_type not in ACTIVE_EVENTS | CLEARED_EVENTS:
        return []
    try:
        report = IncidentReportEventRead.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "body"
        raise WebhookParseError(f"unreadable incident report: {first['msg']}", field=where) from None
    if not report.id:
        raise WebhookParseError("the incident report has no id", field="id")
    organization = (report.organization.id if report.organization else None) or report.organization_id
    if not organization:
        raise WebhookParseError("the incident report names no organization", field="organization.id")
    if not report.agent_id:
        return []
    for name, value in (("subject", report.subject), ("summary", report.summary)):
        problem = unstorable(value or "")
        if problem:
            raise WebhookParseError(f"{name} {problem}", field=name)
    active = event_type in ACTIVE_EVENTS
    occurred = (
        (report.sent_at or report.created_at or report.updated_at)
        if active
        else (report.closed_at or report.status_updated_at or report.updated_at)
    ) or request.received_at
    return [
        AlertEvent(
            event_id=f"huntress:{event_type}:{report.id}",
            client_id=organization,
            endpoint_id=report.agent_id,
            hostname=hostname_from_subject(report.subject),
            problem=ProblemKind.THREAT_DETECTED,
            state="active" if active else "cleared",
            message=(report.subject or f"Huntress incident report {report.id}")[:500],
            occurred_at=occurred,
        )
    ]
