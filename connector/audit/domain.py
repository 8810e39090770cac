"""What an audit entry says: who acted, the kinds of entries, and values with secrets redacted.
Pure: the service writes entries, this module only shapes them."""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any


class Category(enum.StrEnum):
    CONFIG = "config"
    """A configuration change made through the API, the dashboard or the CLI."""
    PSA = "psa"
    """A write made to a PSA (tickets, configurations, billing lines)."""
    RMM = "rmm"
    """A write made to an RMM (an action sent)."""


KINDS: dict[str, Category] = {
    **{
        f"{entity}.{verb}": Category.CONFIG
        for entity in (
            "connection",
            "client_mapping",
            "ticket_rule",
            "billing_rule",
            "billing_price_override",
            "deploy_rule",
            "maintenance_window",
            "notification_channel",
        )
        for verb in ("created", "updated", "deleted")
    },
    "connection.webhook_secret_rotated": Category.CONFIG,
    "api_key.created": Category.CONFIG,
    "api_key.revoked": Category.CONFIG,
    "thresholds.updated": Category.CONFIG,
    "agent_match.set": Category.CONFIG,
    "agent_match.cleared": Category.CONFIG,
    "billing_period.closed": Category.CONFIG,
    "billing_review.updated": Category.CONFIG,
    "currency.updated": Category.CONFIG,
    "mapping_suggestion.rejected": Category.CONFIG,
    "mapping_suggestion.restored": Category.CONFIG,
    "billing_decision.recorded": Category.CONFIG,
    **{f"usage_profile.{verb}": Category.CONFIG for verb in ("created", "updated", "deleted")},
    "usage_upload.created": Category.CONFIG,
    "usage_upload.deleted": Category.CONFIG,
    "ticket.created": Category.PSA,
    "ticket.noted": Category.PSA,
    "ticket.closed": Category.PSA,
    "ticket.handed_over": Category.PSA,
    "ticket.left_open": Category.PSA,
    "ticket.acknowledged": Category.PSA,
    "ticket.relinked": Category.PSA,
    "ticket.reopened": Category.PSA,
    "ticket.reraised": Category.PSA,
    "ticket.gone": Category.PSA,
    "configuration.updated": Category.PSA,
    "billing_line.written": Category.PSA,
    "action.sent": Category.RMM,
    "rmm_alert.cleared": Category.RMM,
}
"""Every kind of entry and its category. A `kind` filter matches a kind exactly, or every kind of
an entity (`ticket` → `ticket.created`, `ticket.noted`, …)."""


@dataclass(frozen=True)
class Actor:
    """Who made a change: an API key (through the API or the dashboard), the CLI or the worker."""

    via: str
    """`api_key`, `dashboard`, `cli` or `worker`"""
    api_key_id: str | None = None

    @classmethod
    def key(cls, api_key_id: str, *, dashboard: bool = False) -> Actor:
        return cls("dashboard" if dashboard else "api_key", api_key_id)


WORKER = Actor("worker")
CLI = Actor("cli")

REDACTED = "[redacted]"
_SECRET_NAME = re.compile(r"secret|passw|token|api_?key|private|credential|signing|auth", re.IGNORECASE)
_NOT_SECRET = re.compile(r"(_id|_ids|_set|_url|_name|_type)$", re.IGNORECASE)


def is_secret_name(name: str) -> bool:
    return bool(_SECRET_NAME.search(name)) and not _NOT_SECRET.search(name)


def redact(value: Any, *, hide: bool = False) -> Any:
    """A JSON-able copy in which every value under a secret-looking key (recursively, and all of a
    secret-named object such as `credentials`) is replaced by REDACTED. Flags and empty values stay:
    whether a secret is set is not the secret."""
    if isinstance(value, dict):
        return {str(k): redact(v, hide=hide or is_secret_name(str(k))) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [redact(v, hide=hide) for v in value]
    if value is None or isinstance(value, bool) or value == "":
        return value
    if hide:
        return REDACTED
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, str | int | float):
        return value
    return str(value)


def changed(before: dict[str, Any], after: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Only the keys whose value differs, from each side."""
    keys = [k for k in {**before, **after} if before.get(k) != after.get(k)]
    return {k: before.get(k) for k in keys}, {k: after.get(k) for k in keys}
