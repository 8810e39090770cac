"""Database errors are answered truthfully: unreachable or too slow (503, retry later) is told apart
from faulty (500)."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import exc as sa_exc

from adapters.base import WebhookRequest
from connector.db import DatabaseUnavailable, is_unavailable
from connector.webhooks import delivery_values


def _rejected(connection: dict[str, Any], tenant_id: str) -> dict[str, Any]:
    request = WebhookRequest(body=b"{}", headers={}, received_at=datetime.now(UTC))
    return delivery_values(
        (connection["id"], tenant_id), request, status="rejected", source_ip=None, rejection="401 test"
    )


class _Orig(Exception):
    def __init__(self, sqlstate: str) -> None:
        super().__init__(sqlstate)
        self.sqlstate = sqlstate


def _dbapi(orig: BaseException, *, invalidated: bool = False) -> sa_exc.DBAPIError:
    return sa_exc.OperationalError("SELECT 1", {}, orig, connection_invalidated=invalidated)


def _sqlite(message: str, code: int) -> sqlite3.OperationalError:
    error = sqlite3.OperationalError(message)
    error.sqlite_errorcode = code
    return error


@pytest.mark.parametrize(
    ("error", "unavailable"),
    [
        (TimeoutError(), True),
        (ConnectionRefusedError(111, "refused"), True),
        (OSError("Multiple exceptions: [Errno 111] Connect call failed"), True),
        (sa_exc.TimeoutError("QueuePool limit reached"), True),
        (_dbapi(Exception("connection is closed"), invalidated=True), True),
        (_dbapi(_Orig("57P03")), True),  # cannot connect now (starting up, shutting down)
        (_dbapi(_Orig("53300")), True),  # too many connections
        (_dbapi(_sqlite("database is locked", 5)), True),
        (DatabaseUnavailable("batch too slow"), True),
        (_dbapi(_Orig("23505")), False),  # unique violation: a fault, not an outage
        (_dbapi(_sqlite("no such table: x", 1)), False),
        (FileNotFoundError("template"), False),
        (ValueError("bad"), False),
    ],
)
def test_unavailable_is_told_apart_from_faulty(error: BaseException, unavailable: bool) -> None:
    assert is_unavailable(error) is unavailable


def test_a_wrapped_timeout_is_unavailable() -> None:
    try:
        try:
            raise TimeoutError
        except TimeoutError as inner:
            raise RuntimeError("while committing") from inner
    except RuntimeError as outer:
        assert is_unavailable(outer)
