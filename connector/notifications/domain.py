"""Notifications, pure: what happened (an `Event`), the bodies each channel kind sends for it, and
the Standard Webhooks signature over a body (https://www.standardwebhooks.com/: `webhook-id`,
`webhook-timestamp`, `webhook-signature: v1,<base64 HMAC-SHA256 of "id.timestamp.body">`)."""

from __future__ import annotations

import enum
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.message import EmailMessage
from typing import Any

from standardwebhooks.webhooks import Webhook


class EventKind(enum.StrEnum):
    SYNC_FAILED = "sync.failed"
    SYNC_STALE = "sync.stale"
    CREDENTIALS_FAILED = "connection.credentials_failed"
    DELIVERY_DEAD = "delivery.dead"
    BILLING_REVIEW = "billing.review"
    TEST = "test"


class ChannelKind(enum.StrEnum):
    WEBHOOK = "webhook"
    SLACK = "slack"
    TEAMS = "teams"
    EMAIL = "email"


HTTP_KINDS = frozenset({ChannelKind.WEBHOOK, ChannelKind.SLACK, ChannelKind.TEAMS})


@dataclass(frozen=True)
class Event:
    kind: EventKind
    subject: str
    """One line: what happened, naming the thing it happened to."""
    text: str = ""
    data: dict[str, Any] = field(default_factory=dict)
    """Machine-readable details (ids, counts); never secrets."""


def wanted(events: list[str], kind: EventKind) -> bool:
    """Whether a channel subscribed to `events` (empty: all) gets this kind; tests always do."""
    return kind == EventKind.TEST or not events or kind.value in events


def webhook_body(event: Event, notification_id: str, at: datetime) -> dict[str, Any]:
    """The generic webhook payload (Standard Webhooks' `type` / `timestamp` / `data` shape)."""
    return {
        "type": event.kind.value,
        "timestamp": at.astimezone(UTC).isoformat().replace("+00:00", "Z"),
        "data": {"id": notification_id, "subject": event.subject, "text": event.text, **event.data},
    }


def slack_body(event: Event) -> dict[str, Any]:
    """A Slack incoming-webhook message: plain `text` (the fallback) and Block Kit blocks."""
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": event.subject[:150]}}
    ]
    if event.text:
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": event.text[:3000]}})
    blocks.append(
        {"type": "context", "elements": [{"type": "mrkdwn", "text": f"connector · `{event.kind.value}`"}]}
    )
    return {"text": event.subject, "blocks": blocks}


def teams_body(event: Event) -> dict[str, Any]:
    """A Microsoft Teams workflow/incoming-webhook message carrying one Adaptive Card."""
    facts = [{"title": str(k), "value": str(v)} for k, v in event.data.items()]
    card: dict[str, Any] = {
        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
        "type": "AdaptiveCard",
        "version": "1.4",
        "body": [
            {"type": "TextBlock", "size": "Medium", "weight": "Bolder", "text": event.subject, "wrap": True},
            *([{"type": "TextBlock", "text": event.text, "wrap": True}] if event.text else []),
            *([{"type": "FactSet", "facts": facts}] if facts else []),
        ],
    }
    return {
        "type": "message",
        "attachments": [{"contentType": "application/vnd.microsoft.card.adaptive", "content": card}],
    }


def http_body(kind: ChannelKind, event: Event, notification_id: str, at: datetime) -> bytes:
    if kind == ChannelKind.SLACK:
        body = slack_body(event)
    elif kind == ChannelKind.TEAMS:
        body = teams_body(event)
    else:
        body = webhook_body(event, notification_id, at)
    return json.dumps(body, separators=(",", ":"), sort_keys=True).encode()


def signature_headers(secret: str, notification_id: str, at: datetime, body: bytes) -> dict[str, str]:
    """The three Standard Webhooks headers for `body` (`secret` as `whsec_<base64>`)."""
    signature = Webhook(secret).sign(notification_id, at, body.decode())
    return {
        "webhook-id": notification_id,
        "webhook-timestamp": str(int(at.timestamp())),
        "webhook-signature": signature,
    }


def email_message(event: Event, *, sender: str, recipients: list[str]) -> EmailMessage:
    message = EmailMessage()
    message["Subject"] = f"[connector] {event.subject}"
    message["From"] = sender
    message["To"] = ", ".join(recipients)
    details = "\n".join(f"{k}: {v}" for k, v in event.data.items())
    message.set_content("\n\n".join(part for part in (event.subject, event.text, details) if part) + "\n")
    return message
