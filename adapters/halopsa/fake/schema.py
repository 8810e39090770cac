"""How the fake Halo refuses (its error body, scripted faults) and the value checks its handlers share."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from starlette.responses import JSONResponse, Response

from adapters.testing.faults import ScriptedFault

Row = dict[str, Any]

DEFAULT_PAGE_SIZE = 50


class HaloApiError(Exception):
    """Raised inside handlers; rendered as Halo renders validation failures."""

    def __init__(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        super().__init__(str(body))
        self.status = status
        self.body = body
        self.headers = headers or {}

    def response(self) -> Response:
        if self.body is None:
            return Response(status_code=self.status, headers=self.headers)
        return JSONResponse(self.body, status_code=self.status, headers=self.headers)


def invalid(message: str) -> HaloApiError:
    return HaloApiError(400, message)


@dataclass
class Fault(ScriptedFault):
    """A scripted failure on requests matching `method` and API path template (e.g.
    `/Tickets/{id}`; None = any), answered with Halo's error body."""

    def fire(self) -> Response:
        self.claim()
        headers = self.retry_headers()
        if self.status == 429:
            return JSONResponse("Too many requests, please retry later.", status_code=429, headers=headers)
        message = "An error has occurred." if self.status >= 500 else f"injected {self.status}"
        return JSONResponse(
            {"ClassName": "System.Exception", "Message": message}, self.status, headers=headers
        )


def now_text() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3]


def as_int(value: Any, message: str) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        raise invalid(message) from None


def as_number(value: Any, message: str) -> float:
    if isinstance(value, bool):
        raise invalid(message)
    try:
        return float(Decimal(str(value)))
    except (ArithmeticError, ValueError):
        raise invalid(message) from None


def truthy(value: str | None) -> bool:
    return (value or "").lower() in ("true", "1", "yes")
