"""The access log: every refused or failed request has its own line (redacted), successes are
sampled (the first of each route per interval) and counted into one summary line per interval."""

from __future__ import annotations

import asyncio
import io
import json
import logging

import pytest

from connector.infra.access import AccessLog
from connector.infra.logs import configure_logging

TOKEN = "tok-5b1e9c0f2a7d4e83"
CLIENT = ("198.51.100.7", 40112)


@pytest.fixture
def lines():  # type: ignore[no-untyped-def]
    """The JSON lines the logging pipeline wrote since the last call."""
    configure_logging("INFO", "json")
    stream = io.StringIO()
    handler = logging.getLogger().handlers[0]
    assert isinstance(handler, logging.StreamHandler)
    handler.setStream(stream)

    def read() -> list[dict[str, object]]:
        text = stream.getvalue()
        stream.seek(0)
        stream.truncate()
        assert "Logging error" not in text, text
        return [json.loads(line) for line in text.splitlines() if line.strip()]

    yield read
    logging.getLogger().handlers[:] = []


def _webhook(access: AccessLog, status: int, ms: float) -> None:
    access.record(
        method="POST",
        route="/webhooks/{connection_id}",
        target=f"/webhooks/c1?token={TOKEN}",
        status=status,
        seconds=ms / 1000,
        client=CLIENT,
    )


def test_failures_in_full_successes_sampled_and_summarised(lines) -> None:  # type: ignore[no-untyped-def]
    access = AccessLog(interval_seconds=3600)
    for n in range(1, 101):
        _webhook(access, 202, float(n))
    _webhook(access, 401, 2.0)
    _webhook(access, 413, 1.0)
    _webhook(access, 503, 30.0)
    access.record(method="GET", route="/healthz", target="/healthz", status=200, seconds=0.001, client=None)
    written = lines()
    access_lines = [r for r in written if r["logger"] == "connector.access"]
    # one sample per route, and each refusal and failure
    assert [(r["status"], r.get("sample")) for r in access_lines] == [
        (202, True),
        (401, None),
        (413, None),
        (503, None),
        (200, True),
    ]
    assert access_lines[0]["event"] == (
        '198.51.100.7:40112 - "POST /webhooks/c1?token=[redacted] HTTP/1.1" 202'
    )
    assert access_lines[3]["level"] == "warning"  # a 5xx
    assert TOKEN not in json.dumps(written)

    access.flush()
    summary = lines()
    assert len(summary) == 1 and summary[0]["event"] == "requests served"
    assert summary[0]["requests"] == 101
    routes = {r["route"]: r for r in summary[0]["routes"]}
    webhook = routes["/webhooks/{connection_id}"]
    assert webhook["count"] == 100 and webhook["statuses"] == {"202": 100}  # refusals are not in it
    assert webhook["p50_ms"] == 51.0 and webhook["p99_ms"] == 100.0 and webhook["max_ms"] == 100.0
    assert routes["/healthz"]["count"] == 1

    access.flush()  # nothing since: no line
    assert lines() == []
    _webhook(access, 202, 1.0)  # a new interval samples again
    assert [r.get("sample") for r in lines()] == [True]


def test_the_summary_is_written_each_interval_without_a_request_id(lines) -> None:  # type: ignore[no-untyped-def]
    import structlog

    async def scenario() -> None:
        access = AccessLog(interval_seconds=0.05)
        with structlog.contextvars.bound_contextvars(request_id="req-1"):
            _webhook(access, 202, 1.0)
            _webhook(access, 202, 3.0)
        await asyncio.sleep(0.2)

    asyncio.run(scenario())
    written = lines()
    sample, summary = written
    assert sample["request_id"] == "req-1"
    assert summary["event"] == "requests served" and "request_id" not in summary
    assert summary["routes"][0]["count"] == 2


def test_nothing_is_kept_below_info(lines) -> None:  # type: ignore[no-untyped-def]
    logging.getLogger().setLevel(logging.WARNING)
    access = AccessLog(interval_seconds=3600)
    _webhook(access, 202, 1.0)
    _webhook(access, 404, 1.0)
    access.flush()
    assert lines() == []
