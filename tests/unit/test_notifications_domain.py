"""Notification bodies and their Standard Webhooks signature."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from standardwebhooks.webhooks import Webhook

from connector.notifications.domain import (
    ChannelKind,
    Event,
    EventKind,
    email_message,
    http_body,
    signature_headers,
    wanted,
)

EVENT = Event(EventKind.SYNC_FAILED, "Sync of Automate failed", "401 from the RMM", {"connection_id": "c1"})


def test_signature_matches_the_specifications_test_vector() -> None:
    # The reference vector of the Standard Webhooks specification and its libraries.
    at = datetime.fromtimestamp(1614265330, UTC)
    headers = signature_headers(
        "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "msg_p5jXN8AQM9LWM0D4loKWxJek", at, b'{"test": 2432232314}'
    )
    assert headers == {
        "webhook-id": "msg_p5jXN8AQM9LWM0D4loKWxJek",
        "webhook-timestamp": "1614265330",
        "webhook-signature": "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
    }


def test_a_signed_webhook_body_verifies_and_a_changed_one_does_not() -> None:
    at = datetime.now(UTC)
    body = http_body(ChannelKind.WEBHOOK, EVENT, "ntf_1", at)
    headers = signature_headers("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "ntf_1", at, body)
    receiver = Webhook("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
    payload = receiver.verify(body, headers)
    assert payload["type"] == "sync.failed"
    assert payload["data"]["subject"] == "Sync of Automate failed"
    assert payload["data"]["connection_id"] == "c1"
    tampered = body.replace(b"Automate", b"Autotask")
    try:
        receiver.verify(tampered, headers)
    except Exception as exc:
        assert "signature" in str(exc).lower()
    else:
        raise AssertionError("a changed body verified")


def test_slack_and_teams_shapes() -> None:
    at = datetime.now(UTC)
    slack = json.loads(http_body(ChannelKind.SLACK, EVENT, "n", at))
    assert slack["text"] == EVENT.subject
    assert slack["blocks"][0]["type"] == "header"
    teams = json.loads(http_body(ChannelKind.TEAMS, EVENT, "n", at))
    [attachment] = teams["attachments"]
    assert attachment["contentType"] == "application/vnd.microsoft.card.adaptive"
    card = attachment["content"]
    assert card["type"] == "AdaptiveCard"
    assert card["body"][0]["text"] == EVENT.subject
    assert {"title": "connection_id", "value": "c1"} in card["body"][-1]["facts"]


def test_subscriptions_and_mail() -> None:
    assert wanted([], EventKind.DELIVERY_DEAD)
    assert not wanted(["sync.failed"], EventKind.DELIVERY_DEAD)
    assert wanted(["sync.failed"], EventKind.TEST)
    message = email_message(EVENT, sender="c@example.com", recipients=["a@example.com", "b@example.com"])
    assert message["Subject"] == "[connector] Sync of Automate failed"
    assert message["To"] == "a@example.com, b@example.com"
    assert "401 from the RMM" in message.get_content()
