"""Request and response bodies of `/api/v1/notification-channels` and `/api/v1/notifications`."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from connector.notifications.domain import EventKind

EVENTS = [kind.value for kind in EventKind if kind != EventKind.TEST]


class ChannelIn(BaseModel):
    """A notification channel. `webhook`, `slack` and `teams` POST to `url` (a secret: stored
    encrypted, shown only as its host); `secret` (Standard Webhooks `whsec_…`) signs each request and
    is required for `webhook`. `email` sends over SMTP to `recipients`. Secrets are never returned."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "name": "On-call webhook",
                    "kind": "webhook",
                    "url": "https://hooks.example.com/connector",
                    "secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
                    "events": ["sync.failed", "connection.credentials_failed"],
                },
                {
                    "name": "Service desk mail",
                    "kind": "email",
                    "smtp_host": "smtp.example.com",
                    "smtp_port": 587,
                    "smtp_security": "starttls",
                    "username": "connector",
                    "password": "app-password",
                    "sender": "connector@example.com",
                    "recipients": ["servicedesk@example.com"],
                },
            ]
        },
    )

    name: str = Field(min_length=1, max_length=200)
    kind: Literal["webhook", "slack", "teams", "email"]
    events: list[str] = Field(default_factory=list, description=f"empty: all of {', '.join(EVENTS)}")
    enabled: bool = True
    url: str | None = Field(None, max_length=2000)
    secret: str | None = Field(None, max_length=200)
    smtp_host: str | None = Field(None, max_length=253)
    smtp_port: int = Field(587, ge=1, le=65535)
    smtp_security: Literal["starttls", "tls", "none"] = "starttls"
    username: str | None = Field(None, max_length=200)
    password: str | None = Field(None, max_length=500)
    sender: str | None = Field(None, max_length=320, pattern=r"^[^@\s]+@[^@\s]+$")
    recipients: list[str] = Field(default_factory=list, max_length=50)


class ChannelOut(BaseModel):
    id: str
    name: str
    kind: str
    events: list[str]
    enabled: bool
    url: str | None = Field(None, description="only the scheme and host: the full URL is a secret")
    has_secret: bool
    smtp_host: str | None = None
    smtp_port: int | None = None
    smtp_security: str | None = None
    username: str | None = None
    sender: str | None = None
    recipients: list[str] = Field(default_factory=list)
    created_at: datetime
    updated_at: datetime


class NotificationOut(BaseModel):
    id: str
    channel_id: str
    event: str
    subject: str
    status: str
    attempts: int
    error: str | None
    created_at: datetime
    delivered_at: datetime | None
