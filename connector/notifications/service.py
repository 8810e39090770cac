"""Notification channels per tenant and the notifications sent through them. `notify` is what the
features call (in their own transaction) when something needs a person: it stores one notification
per interested channel and queues its delivery; `deliver` sends one, from the job queue, which
retries it with backoff and dead-letters it after the last try."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import aiosmtplib
import httpx
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from connector.audit import service as audit
from connector.audit.domain import Actor, changed
from connector.infra import db
from connector.infra.context import Services
from connector.infra.errors import FieldError, NotFound
from connector.infra.jobs.kinds import enqueue
from connector.infra.logs import get_logger
from connector.infra.metrics import MeteredTransport, vendor_operation
from connector.infra.security.urls import GuardedTransport, UrlPolicy, UrlPolicyError
from connector.models import Notification, NotificationChannel
from connector.notifications import domain
from connector.notifications.domain import ChannelKind, Event, EventKind
from connector.notifications.jobs import NOTIFY, NotifyJob
from connector.notifications.schemas import EVENTS, ChannelIn, ChannelOut, NotificationOut

log = get_logger("connector.notifications")

REPEAT_QUIET = timedelta(hours=1)
"""The same event with the same subject is sent to a channel at most once in this long."""


class DeliveryFailed(Exception):
    """The receiver did not accept the notification (retried by the queue)."""


# --- notify ---------------------------------------------------------------------------------


async def notify(session: AsyncSession, tenant_id: str, event: Event) -> int:
    """Queue `event` for every enabled channel of the tenant that wants it, in the caller's
    transaction. Returns how many notifications were queued."""
    channels = await session.scalars(
        db.tenant_rows(NotificationChannel, tenant_id).where(NotificationChannel.enabled.is_(True))
    )
    since = datetime.now(UTC) - REPEAT_QUIET
    queued = 0
    for channel in channels:
        if not domain.wanted(channel.events, event.kind):
            continue
        if event.kind != EventKind.TEST and await session.scalar(
            db.tenant_rows(Notification, tenant_id).where(
                Notification.channel_id == channel.id,
                Notification.event == event.kind.value,
                Notification.subject == event.subject[:500],
                Notification.created_at >= since,
            )
        ):
            continue
        await _queue(session, channel, event)
        queued += 1
    return queued


async def _queue(session: AsyncSession, channel: NotificationChannel, event: Event) -> Notification:
    row = Notification(
        tenant_id=channel.tenant_id,
        channel_id=channel.id,
        event=event.kind.value,
        subject=event.subject[:500],
        data={"text": event.text, "data": event.data},
        status="queued",
        attempts=0,
    )
    session.add(row)
    await session.flush()
    await enqueue(session, NOTIFY, NotifyJob(notification_id=row.id), tenant_id=channel.tenant_id)
    return row


async def send_test(session: AsyncSession, tenant_id: str, channel_id: str) -> Notification:
    channel = await get(session, tenant_id, channel_id)
    event = Event(
        EventKind.TEST, f"Test notification for {channel.name}", "Sent from connector's test button."
    )
    return await _queue(session, channel, event)


# --- deliver --------------------------------------------------------------------------------


def _event_of(row: Notification) -> Event:
    stored: dict[str, Any] = row.data or {}
    return Event(EventKind(row.event), row.subject, str(stored.get("text", "")), dict(stored.get("data", {})))


async def deliver(services: Services, notification_id: str) -> None:
    """Send one notification; raises (for the queue to retry) when the receiver did not take it."""
    async with services.sessions() as session:
        row = await session.get(Notification, notification_id)
        channel = await session.get(NotificationChannel, row.channel_id) if row is not None else None
    if row is None or channel is None or row.status == "delivered":
        return
    secrets = services.cipher.decrypt_json(channel.secret_encrypted) if channel.secret_encrypted else {}
    event = _event_of(row)
    kind = ChannelKind(channel.kind)
    timeout = services.settings.notification_timeout_seconds
    if kind in domain.HTTP_KINDS:
        await _post(services, kind, row.id, event, str(secrets["url"]), secrets.get("secret"), timeout)
    else:
        await _mail(services.url_policy, channel, event, secrets.get("password"), timeout)
    log.info(
        "notification delivered", notification_id=notification_id, channel_id=channel.id, kind=kind.value
    )


async def mark_delivered(session: AsyncSession, notification_id: str, attempt: int) -> None:
    stored = await session.get(Notification, notification_id)
    if stored is not None:
        stored.status, stored.attempts, stored.delivered_at = "delivered", attempt, datetime.now(UTC)
        stored.error = None


async def _post(
    services: Services,
    kind: ChannelKind,
    notification_id: str,
    event: Event,
    url: str,
    secret: Any,
    seconds: float,
) -> None:
    now = datetime.now(UTC)
    body = domain.http_body(kind, event, notification_id, now)
    headers = {"content-type": "application/json", "user-agent": "connector-notifications"}
    if secret:
        headers |= domain.signature_headers(str(secret), notification_id, now, body)
    transport = MeteredTransport(
        GuardedTransport(services.url_policy), services.metrics, f"notify_{kind.value}"
    )
    async with httpx.AsyncClient(transport=transport, timeout=seconds, follow_redirects=False) as client:
        with vendor_operation("notify"):
            try:
                response = await client.post(url, content=body, headers=headers)
            except httpx.HTTPError as exc:
                raise DeliveryFailed(f"{type(exc).__name__}: the receiver could not be reached") from exc
    if not 200 <= response.status_code < 300:
        raise DeliveryFailed(f"the receiver answered HTTP {response.status_code}")


async def _mail(
    policy: UrlPolicy, channel: NotificationChannel, event: Event, password: Any, seconds: float
) -> None:
    options = channel.options
    host = policy.check_host(str(options["smtp_host"]))  # again at send time: the policy may have changed
    security = options.get("smtp_security", "starttls")
    message = domain.email_message(
        event, sender=str(options["sender"]), recipients=list(options["recipients"])
    )
    try:
        await aiosmtplib.send(
            message,
            hostname=host.split(":")[0],
            port=int(options.get("smtp_port", 587)),
            username=options.get("username") or None,
            password=str(password) if password else None,
            use_tls=security == "tls",
            start_tls=True if security == "starttls" else False,
            timeout=seconds,
        )
    except (aiosmtplib.SMTPException, OSError) as exc:
        raise DeliveryFailed(f"SMTP: {type(exc).__name__}: {exc}") from exc


# --- channels -------------------------------------------------------------------------------


def _shown_url(url: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(
        (parts.scheme, parts.netloc, "/…" if parts.path.strip("/") or parts.query else "", "", "")
    )


def out(row: NotificationChannel) -> ChannelOut:
    options = row.options or {}
    return ChannelOut(
        id=row.id,
        name=row.name,
        kind=row.kind,
        events=list(row.events),
        enabled=row.enabled,
        url=row.url,
        has_secret=bool(options.get("has_secret")),
        smtp_host=options.get("smtp_host"),
        smtp_port=options.get("smtp_port"),
        smtp_security=options.get("smtp_security"),
        username=options.get("username"),
        sender=options.get("sender"),
        recipients=list(options.get("recipients", [])),
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def _check_url(policy: UrlPolicy, url: str) -> str:
    """The outbound URL policy, with a query kept (Teams workflow URLs carry their signature in it)."""
    parts = urlsplit(url)
    try:
        base = policy.check_url(urlunsplit((parts.scheme, parts.netloc, parts.path, "", "")))
    except UrlPolicyError as exc:
        raise FieldError("url", str(exc)) from exc
    if parts.fragment:
        raise FieldError("url", "must not contain a fragment")
    return base + (f"?{parts.query}" if parts.query else "")


def _apply(
    policy: UrlPolicy, cipher: Any, row: NotificationChannel, body: ChannelIn, keep: dict[str, Any]
) -> None:
    """Validate `body` and write it to `row`; `keep` holds the stored secrets a PATCH left out."""
    unknown = [e for e in body.events if e not in EVENTS]
    if unknown:
        raise FieldError("events", f"unknown event {unknown[0]!r}; known: {', '.join(EVENTS)}")
    kind = ChannelKind(body.kind)
    secrets: dict[str, Any] = {}
    options: dict[str, Any] = {}
    if kind in domain.HTTP_KINDS:
        url = body.url or keep.get("url")
        if not url:
            raise FieldError("url", f"a {kind.value} channel needs url")
        secrets["url"] = _check_url(policy, url)
        secret = body.secret or keep.get("secret")
        if kind == ChannelKind.WEBHOOK and not secret:
            raise FieldError("secret", "a webhook channel needs a signing secret (whsec_ and base64)")
        if secret:
            try:
                domain.signature_headers(secret, "msg_check", datetime.now(UTC), b"{}")
            except Exception as exc:
                raise FieldError("secret", "must be whsec_ followed by base64 (at least 24 bytes)") from exc
            secrets["secret"] = secret
            options["has_secret"] = True
        row.url = _shown_url(secrets["url"])
    else:
        if not body.smtp_host:
            raise FieldError("smtp_host", "an email channel needs smtp_host")
        try:
            host = policy.check_host(body.smtp_host)
        except UrlPolicyError as exc:
            raise FieldError("smtp_host", str(exc)) from exc
        if not body.sender:
            raise FieldError("sender", "an email channel needs sender")
        if not body.recipients or any("@" not in r or any(c in r for c in "\r\n,") for r in body.recipients):
            raise FieldError("recipients", "an email channel needs recipients, each one address")
        password = body.password or keep.get("password")
        if password:
            secrets["password"] = password
            options["has_secret"] = True
        options |= {
            "smtp_host": host,
            "smtp_port": body.smtp_port,
            "smtp_security": body.smtp_security,
            "username": body.username,
            "sender": body.sender,
            "recipients": body.recipients,
        }
        row.url = None
    row.name, row.kind, row.events, row.enabled = body.name, body.kind, list(body.events), body.enabled
    row.options = options
    row.secret_encrypted = cipher.encrypt_json(secrets) if secrets else None


def _values(row: NotificationChannel) -> dict[str, Any]:
    """What an audit entry keeps of a channel: its settings as the API shows them (the URL's host
    only, whether a secret is set), never a secret."""
    return out(row).model_dump(mode="json", exclude={"id", "created_at", "updated_at"})


def _audit(
    session: AsyncSession,
    row: NotificationChannel,
    verb: str,
    actor: Actor,
    before: dict[str, Any] | None,
    after: dict[str, Any] | None,
) -> None:
    audit.record_config(
        session,
        row.tenant_id,
        "notification_channel",
        verb,
        actor,
        target_id=row.id,
        label=f"notification channel {row.name!r}",
        before=before,
        after=after,
    )


async def create(
    services: Services, session: AsyncSession, tenant_id: str, body: ChannelIn, *, actor: Actor
) -> NotificationChannel:
    if await session.scalar(
        db.tenant_rows(NotificationChannel, tenant_id).where(NotificationChannel.name == body.name)
    ):
        raise FieldError("name", "a channel with this name exists")
    row = NotificationChannel(tenant_id=tenant_id)
    _apply(services.url_policy, services.cipher, row, body, {})
    session.add(row)
    await session.flush()
    _audit(session, row, "created", actor, None, _values(row))
    return row


async def get(session: AsyncSession, tenant_id: str, channel_id: str) -> NotificationChannel:
    row = await session.scalar(
        db.tenant_rows(NotificationChannel, tenant_id).where(NotificationChannel.id == channel_id)
    )
    if row is None:
        raise NotFound("notification channel")
    return row


async def update(
    services: Services,
    session: AsyncSession,
    tenant_id: str,
    channel_id: str,
    changes: dict[str, Any],
    *,
    actor: Actor,
) -> NotificationChannel:
    """Merge the given fields into the stored ones (secrets left out are kept), then validate."""
    row = await get(session, tenant_id, channel_id)
    before = _values(row)
    secrets_before = row.secret_encrypted
    current = out(row).model_dump(include=set(ChannelIn.model_fields) - {"url", "secret", "password"})
    current = {k: v for k, v in current.items() if v is not None}
    try:
        body = ChannelIn.model_validate({**current, **changes})
    except ValidationError as exc:
        errors = [
            {"field": ".".join(str(p) for p in e["loc"]) or "body", "message": e["msg"]} for e in exc.errors()
        ]
        raise FieldError.many(errors) from exc
    keep = services.cipher.decrypt_json(row.secret_encrypted) if row.secret_encrypted else {}
    if body.kind != row.kind:
        keep = {}
    _apply(services.url_policy, services.cipher, row, body, keep)
    await session.flush()
    old, new = changed(before, _values(row))
    if "secret" in changes or "password" in changes or "url" in changes:
        if row.secret_encrypted != secrets_before:  # which secret, never its value
            old["secrets"], new["secrets"] = "…", "changed"
    if new:
        _audit(session, row, "updated", actor, old, new)
    return row


async def delete(session: AsyncSession, tenant_id: str, channel_id: str, *, actor: Actor) -> None:
    row = await get(session, tenant_id, channel_id)
    _audit(session, row, "deleted", actor, _values(row), None)
    await session.delete(row)


async def list_channels(session: AsyncSession, tenant_id: str) -> list[NotificationChannel]:
    rows = await session.scalars(
        db.tenant_rows(NotificationChannel, tenant_id).order_by(NotificationChannel.name)
    )
    return list(rows)


async def list_notifications(
    session: AsyncSession, tenant_id: str, *, limit: int, offset: int, channel_id: str | None = None
) -> list[NotificationOut]:
    query = db.tenant_rows(Notification, tenant_id)
    if channel_id is not None:
        query = query.where(Notification.channel_id == channel_id)
    rows = await session.scalars(
        query.order_by(Notification.created_at.desc(), Notification.id).limit(limit).offset(offset)
    )
    return [NotificationOut.model_validate(row, from_attributes=True) for row in rows]
