"""The canonical alert every RMM connection accepts, so any tool that can POST JSON feeds tickets:

    {"event_id", "client_id", "endpoint_id", "hostname", "problem", "state": "active"|"cleared",
     "message", "occurred_at"}

A body may also be a JSON array of such objects, or `{"alerts": [...]}`.
"""

from __future__ import annotations

import hashlib
import json
import re
import sys
from datetime import UTC, datetime
from typing import Any

import orjson
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
        event = plain_canonical(item)
        if event is not None:
            events.append(event)
            continue
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


_PROBLEMS = {kind.value: kind for kind in ProblemKind}
_TIMESTAMP = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?(Z|[+-]\d{2}:\d{2})?")
_TEXT_LIMITS = (("event_id", 200, True), ("client_id", 100, True), ("endpoint_id", 100, True))


def _plain_text(value: Any, limit: int, required: bool) -> bool:
    """A string `CanonicalAlert` would keep exactly as it is: no surrounding whitespace to strip,
    within its length, storable."""
    if not isinstance(value, str):
        return False
    if not value:
        return not required
    return (
        len(value) <= limit
        and not value[0].isspace()
        and not value[-1].isspace()
        and unstorable(value) is None
    )


def plain_canonical(item: Any) -> AlertEvent | None:
    """The event `CanonicalAlert` makes of `item`, for the alerts senders actually send (string
    fields with nothing to strip, a known problem, an ISO 8601 timestamp), in a fraction of its
    time; None for anything else, which `CanonicalAlert` then validates (and names what is wrong).
    tests/unit/test_canonical_plain.py checks that both give the same event."""
    if not isinstance(item, dict):
        return None
    for name, limit, required in _TEXT_LIMITS:
        if not _plain_text(item.get(name), limit, required):
            return None
    hostname = item.get("hostname")
    message = item.get("message", "")
    if hostname is not None and not _plain_text(hostname, 255, False):
        return None
    if not _plain_text(message, 4000, False):
        return None
    problem = item.get("problem")
    kind = _PROBLEMS.get(problem) if isinstance(problem, str) else None
    state = item.get("state")
    occurred = item.get("occurred_at")
    if kind is None or state not in ("active", "cleared") or not isinstance(occurred, str):
        return None
    if _TIMESTAMP.fullmatch(occurred) is None:
        return None
    try:
        when = datetime.fromisoformat(occurred)
    except ValueError:
        return None
    return AlertEvent.model_construct(
        event_id=item["event_id"],
        client_id=item["client_id"],
        endpoint_id=item["endpoint_id"],
        hostname=hostname,
        problem=kind,
        state=state,
        message=message,
        occurred_at=when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC),
    )


def load_json(body: bytes) -> Any:
    """The body's JSON; anything json.loads refuses (including nesting deeper than the interpreter's
    recursion limit and integers beyond its digit limit) is a `WebhookParseError` naming the body.
    orjson parses it first (several times faster); what orjson refuses (NaN, integers past 64 bits,
    lone surrogates, deep nesting) goes to json.loads, whose answer — a value or the error — stands."""
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        pass
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
