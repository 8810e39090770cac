"""Small pieces every adapter needs the same way: typed settings from a connection, JSON bodies with
exact decimals, and vendor records validated into models with an error that says what was read."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any, TypeVar

import httpx
from pydantic import BaseModel, ConfigDict, ValidationError

from adapters.errors import AdapterError, TransientVendorError

M = TypeVar("M", bound=BaseModel)


def settings_as(model: type[M], value: BaseModel) -> M:
    """The connection's credentials or options as this adapter's own model (the core may hand over
    an equivalent model instance, e.g. after a registry reload)."""
    return value if isinstance(value, model) else model.model_validate(value.model_dump())


def json_body(response: httpx.Response) -> Any:
    """The response's JSON with floats as `Decimal` (money and quantities stay exact); an unreadable
    body is transient (a proxy's error page, a cut-off answer)."""
    if not response.content:
        return None
    try:
        return json.loads(response.content, parse_float=Decimal)
    except ValueError as exc:
        raise TransientVendorError(
            f"unreadable response from {response.request.url.path}", status=response.status_code
        ) from exc


def parse_record(model: type[M], data: Any, what: str, vendor: str) -> M:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise AdapterError(f"unexpected {what} record from {vendor}: {exc.errors()[:1]}") from exc


class LenientRead(BaseModel):
    """Base for records read from a vendor: fields the adapter does not use are ignored (vendors add
    fields between versions), values are immutable."""

    model_config = ConfigDict(extra="ignore", frozen=True)


def id_text(value: Any) -> Any:
    """Vendor ids arrive as numbers or strings: normalize to trimmed text (empty → None)."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return value.strip() or None
    return value
