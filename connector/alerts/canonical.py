"""The canonical alert every RMM connection accepts, so any tool that can POST JSON feeds tickets:

    {"event_id", "client_id", "endpoint_id", "hostname", "problem", "state": "active"|"cleared",
     "message", "occurred_at"}

A body may also be a JSON array of such objects, or `{"alerts": [...]}`.
"""

from __future__ import annotations

import hashlib
import json
import sys
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from adapters.base import AlertEvent, ProblemKind
from adapters.common import unstorable
from adapters.errors import WebhookParseError


class CanonicalAlert(BaseModel):
    model_config = ConfigDict(extra="ignore", str_strip_whitespace=True)

    event_id: str = Field(min_length=1, max_length=200)
    client_id: str = Field(min_length=1, max_length=100)
    endpoint_id: str = Field(min_length=1, max_length=100)
    hostname: str | None = Field(default=None, max_length=255)
    problem: ProblemKind
    state: str = Field(pattern="^(active|cleared)$")
    message: str = Field(default="", max_length=4000)
    occurred_at: datetime

    @field_validator("event_id", "client_id", "endpoint_id", mode="before")
    @classmethod
    def _ids_as_text(cls, value: Any) -> Any:
        return str(value) if isinstance(value, int) else value

    @field_validator("event_id", "client_id", "endpoint_id", "hostname", "message")
    @classmethod
    def _storable(cls, value: str | None) -> str | None:
        problem = None if value is None else unstorable(value)
        if problem is not None:
            raise ValueError(problem)
        return value

    @field_validator("occurred_at")
    @classmethod
    def _aware(cls, value: datetime) -> datetime:
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


CANONICAL_FIELDS = frozenset(CanonicalAlert.model_fields)


def looks_canonical(document: Any) -> bool:
    """Meant as canonical alerts: every item is an object carrying `problem` and at least one other
    canonical field, so a canonical alert with a field missing is refused naming that field rather
    than handed to the vendor parser."""
    items = _items(document)
    return bool(items) and all(
        isinstance(i, dict) and "problem" in i and len(CANONICAL_FIELDS.intersection(i)) >= 2 for i in items
    )


def _items(document: Any) -> list[Any]:
    if isinstance(document, dict) and isinstance(document.get("alerts"), list):
        return list(document["alerts"])
    if isinstance(document, list):
        return document
    return [document]


def parse_canonical(document: Any) -> list[AlertEvent]:
    events = []
    items = _items(document)
    if not items:
        raise WebhookParseError("no alerts in body", field="alerts")
    for index, item in enumerate(items):
        prefix = f"alerts[{index}]." if len(items) > 1 else ""
        try:
            alert = CanonicalAlert.model_validate(item)
        except ValidationError as exc:
            first = exc.errors(include_input=False, include_url=False)[0]
            field = prefix + ".".join(str(p) for p in first["loc"])
            raise WebhookParseError(first["msg"], field=field or "body") from exc
        events.append(
            # Every field was validated just above by `CanonicalAlert`: construct without a second pass.
            AlertEvent.model_construct(
                event_id=alert.event_id,
                client_id=alert.client_id,
                endpoint_id=alert.endpoint_id,
                hostname=alert.hostname,
                problem=alert.problem,
                state="active" if alert.state == "active" else "cleared",
                message=alert.message,
                occurred_at=alert.occurred_at,
            )
        )
    return events


def load_json(body: bytes) -> Any:
    """The body's JSON; anything json.loads refuses (including nesting deeper than the interpreter's
    recursion limit and integers beyond its digit limit) is a `WebhookParseError` naming the body."""
    try:
        return json.loads(body)
    except UnicodeDecodeError as exc:
        raise WebhookParseError("body is not UTF-8", field="body") from exc
    except json.JSONDecodeError as exc:
        raise WebhookParseError(
            f"body is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}", field="body"
        ) from exc
    except RecursionError:
        raise WebhookParseError("body is not valid JSON: nested too deeply", field="body") from None
    except ValueError:  # an integer of more digits than int() converts
        limit = sys.get_int_max_str_digits()
        raise WebhookParseError(f"body has a number of more than {limit} digits", field="body") from None


def fitted_key(text: str, limit: int) -> str:
    """`text` itself when it fits a column of `limit` characters, else its start and a SHA-256 of
    the whole: distinct long ids stay distinct (never cut into one), the same id always gives the
    same key, and the stored key still reads like the id."""
    if len(text) <= limit:
        return text
    digest = hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()
    return f"{text[: limit - len(digest) - 1]}#{digest}"
