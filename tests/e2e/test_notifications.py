"""Notifications end to end: a channel configured over the API, the test button, the job worker,
and real receivers — an HTTP server on a port (first answering 500, then 200) that verifies the
Standard Webhooks signature, and an SMTP server — on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from email import message_from_bytes
from typing import Any

import httpx
import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session
from sqlalchemy import select
from standardwebhooks.webhooks import Webhook
from starlette.applications import Starlette
from starlette.routing import Route

from connector.infra.context import Services
from connector.models import Job
from tests.api.world import canonical_alert
from tests.e2e.stack import Stack, build_stack
from tests.support.processes import ServedApp, free_port
from tests.support.receivers import Receiver
from tests.support.vendors import VendorRouter

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


@pytest.fixture
def receiver() -> Iterator[tuple[Receiver, str]]:
    state = Receiver()
    app = Starlette(routes=[Route("/hooks/connector", state.hook, methods=["POST"])])
    with ServedApp(app) as served:
        yield state, served.url + "/hooks/connector"


@pytest.fixture
async def stack(
    client: httpx.AsyncClient,
    services: Services,
    vendors: VendorRouter,
    make_key: Callable[..., Awaitable[dict[str, str]]],
) -> Stack:
    return await build_stack(client, services, vendors, await make_key("engineer"))


async def _notifications(stack: Stack) -> list[dict[str, Any]]:
    response = await stack.client.get("/api/v1/notifications", headers=stack.headers)
    assert response.status_code == 200, response.text
    result: list[dict[str, Any]] = response.json()
    return result


async def test_webhook_is_signed_retried_after_a_500_and_recorded(
    stack: Stack, receiver: tuple[Receiver, str]
) -> None:
    state, url = receiver
    state.statuses = [500]
    created = await stack.client.post(
        "/api/v1/notification-channels",
        json={"name": "on-call", "kind": "webhook", "url": url, "secret": SECRET},
        headers=stack.headers,
    )
    assert created.status_code == 201, created.text
    channel = created.json()
    assert SECRET not in created.text and "/hooks/connector" not in created.text
    assert channel["has_secret"] is True

    tested = await stack.client.post(
        f"/api/v1/notification-channels/{channel['id']}/test", headers=stack.headers
    )
    assert tested.status_code == 202, tested.text
    notification_id = tested.json()["id"]

    await stack.work()
    assert len(state.received) == 1
    [failed] = await _notifications(stack)
    assert failed["status"] == "failed"
    assert "500" in (failed["error"] or "")
    async with stack.services.sessions() as session:
        [job] = await session.scalars(select(Job).where(Job.kind == "notify"))
    assert job.status == "queued" and job.attempts == 1  # retried later, with backoff

    await stack.pass_time(3600)
    await stack.work()
    assert len(state.received) == 2
    [delivered] = await _notifications(stack)
    assert delivered["status"] == "delivered"
    assert delivered["attempts"] == 2

    # both attempts carry the same id, and each verifies against the channel's secret
    for headers, body in state.received:
        assert headers["webhook-id"] == notification_id
        payload = Webhook(SECRET).verify(body, headers)
        assert payload["type"] == "test"
        assert payload["data"]["id"] == notification_id
    # recorded like every outbound call
    exposition = stack.services.metrics.render().decode()
    for outcome in ("server_error", "ok"):
        labels = f'kind="notify_webhook",operation="notify",outcome="{outcome}"'
        line = f"connector_vendor_requests_total{{{labels}}} 1.0"
        assert line in exposition, exposition
    with pytest.raises(Exception, match="signature"):
        Webhook("whsec_" + "QUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFB").verify(
            state.received[-1][1], state.received[-1][0]
        )


async def test_slack_and_teams_payloads_reach_the_receiver(
    stack: Stack, receiver: tuple[Receiver, str]
) -> None:
    state, url = receiver
    for kind in ("slack", "teams"):
        created = await stack.client.post(
            "/api/v1/notification-channels",
            json={"name": kind, "kind": kind, "url": url + "?sig=abc"},
            headers=stack.headers,
        )
        assert created.status_code == 201, created.text
        assert "sig=abc" not in created.text
        await stack.client.post(
            f"/api/v1/notification-channels/{created.json()['id']}/test", headers=stack.headers
        )
    await stack.work()
    bodies = [json.loads(body) for _headers, body in state.received]
    assert any("blocks" in b for b in bodies)
    assert any(b.get("type") == "message" and b["attachments"] for b in bodies)


class Mailbox:
    def __init__(self) -> None:
        self.messages: list[Envelope] = []

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        self.messages.append(envelope)
        return "250 OK"


@pytest.fixture
async def smtp() -> AsyncIterator[tuple[Mailbox, int]]:
    mailbox = Mailbox()
    port = free_port()
    controller = Controller(mailbox, hostname="127.0.0.1", port=port)
    await asyncio.to_thread(controller.start)
    try:
        yield mailbox, port
    finally:
        await asyncio.to_thread(controller.stop)


async def test_email_reaches_a_real_smtp_server(stack: Stack, smtp: tuple[Mailbox, int]) -> None:
    mailbox, port = smtp
    created = await stack.client.post(
        "/api/v1/notification-channels",
        json={
            "name": "desk",
            "kind": "email",
            "smtp_host": "127.0.0.1",
            "smtp_port": port,
            "smtp_security": "none",
            "sender": "connector@example.com",
            "recipients": ["desk@example.com"],
        },
        headers=stack.headers,
    )
    assert created.status_code == 201, created.text
    await stack.client.post(
        f"/api/v1/notification-channels/{created.json()['id']}/test", headers=stack.headers
    )
    await stack.work()
    [envelope] = mailbox.messages
    assert envelope.rcpt_tos == ["desk@example.com"]
    assert isinstance(envelope.content, bytes)
    message = message_from_bytes(envelope.content)
    assert message["Subject"] == "[connector] Test notification for desk"
    [notification] = await _notifications(stack)
    assert notification["status"] == "delivered"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"kind": "webhook", "url": "https://hooks.example.com/x"}, "secret"),
        ({"kind": "webhook", "url": "https://hooks.example.com/x", "secret": "not-base64!"}, "secret"),
        ({"kind": "webhook", "url": "http://10.0.0.5/x", "secret": SECRET}, "url"),
        ({"kind": "slack", "url": "https://169.254.169.254/latest"}, "url"),
        ({"kind": "slack"}, "url"),
        ({"kind": "email", "sender": "a@example.com", "recipients": ["b@example.com"]}, "smtp_host"),
        ({"kind": "email", "smtp_host": "smtp.example.com", "recipients": ["b@example.com"]}, "sender"),
        ({"kind": "email", "smtp_host": "smtp.example.com", "sender": "a@example.com"}, "recipients"),
        ({"kind": "webhook", "url": "https://h.example.com", "secret": SECRET, "events": ["nope"]}, "events"),
        ({"kind": "pager"}, "kind"),
    ],
)
async def test_bad_channels_are_422_naming_the_field(stack: Stack, body: dict[str, Any], field: str) -> None:
    response = await stack.client.post(
        "/api/v1/notification-channels", json={"name": "x", **body}, headers=stack.headers
    )
    assert response.status_code == 422, response.text
    assert field in response.text


async def test_a_dead_lettered_delivery_is_notified_once(
    stack: Stack, receiver: tuple[Receiver, str]
) -> None:
    state, url = receiver
    created = await stack.client.post(
        "/api/v1/notification-channels",
        json={"name": "ops", "kind": "webhook", "url": url, "secret": SECRET, "events": ["delivery.dead"]},
        headers=stack.headers,
    )
    assert created.status_code == 201, created.text
    stack.manage.fail_path("/service/tickets", 400, method="POST")
    received = await stack.post_alert(canonical_alert("evt-1"))
    for _ in range(10):
        await stack.work()
        await stack.pass_time(3600)
    [(headers, body)] = state.received
    payload = Webhook(SECRET).verify(body, headers)
    assert payload["type"] == "delivery.dead"
    assert payload["data"]["delivery_id"] == received.json()["delivery_id"]
