"""The HTTP access log, at a cost nothing measures: refused and failed requests (status >= 400)
are each logged in full, as uvicorn would; successful ones are counted per route and summarised
once per interval (count, statuses, p50 / p99 / max latency), with the first success of each route
in each interval logged in full as a sample. A quiet service therefore still logs every request;
a busy one writes one line per route per interval instead of one per request, which at webhook
rates was the largest single cost of a request.

Lines go through the normal logging pipeline (logger `connector.access`), so `?token=` and other
secrets in the path are redacted like every other line, and a request's line carries its
`request_id` (bound by `RequestIdMiddleware` while the request runs).
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from contextvars import Context
from dataclasses import dataclass, field
from time import monotonic
from typing import Any

from connector.infra.logs import get_logger

log = get_logger("connector.access")
_stdlib = logging.getLogger("connector.access")
DEFAULT_INTERVAL_SECONDS = 10.0


@dataclass
class _Route:
    statuses: Counter[int] = field(default_factory=Counter)
    latencies_ms: list[float] = field(default_factory=list)


def _percentile(ordered: list[float], p: float) -> float:
    return ordered[min(len(ordered) - 1, int(len(ordered) * p / 100))]


class AccessLog:
    """One per process (the app builds it). `record` is called once per HTTP request."""

    def __init__(self, interval_seconds: float = DEFAULT_INTERVAL_SECONDS) -> None:
        self.interval_seconds = interval_seconds
        self._routes: dict[tuple[str, str], _Route] = {}
        self._started = monotonic()
        self._flush_handle: asyncio.TimerHandle | None = None

    def record(
        self,
        *,
        method: str,
        route: str,
        target: str,
        status: int,
        seconds: float,
        client: tuple[str, int] | list[Any] | None,
        http_version: str = "1.1",
    ) -> None:
        """`route` is the template (`/webhooks/{connection_id}`), `target` the path and query as sent."""
        if not _stdlib.isEnabledFor(logging.INFO):
            return
        key = (method, route)
        entry = self._routes.get(key)
        if status < 400 and entry is not None:  # the common case: one count, one number
            entry.statuses[status] += 1
            entry.latencies_ms.append(seconds * 1000)
            return
        self._line(method, target, status, seconds, client, http_version, sampled=status < 400)
        if status < 400:
            entry = self._routes[key] = _Route()
            entry.statuses[status] += 1
            entry.latencies_ms.append(seconds * 1000)
            self._schedule()

    def _line(
        self,
        method: str,
        target: str,
        status: int,
        seconds: float,
        client: tuple[str, int] | list[Any] | None,
        http_version: str,
        *,
        sampled: bool,
    ) -> None:
        peer = f"{client[0]}:{client[1]}" if client else "-"
        fields: dict[str, Any] = {"status": status, "duration_ms": round(seconds * 1000, 2)}
        if sampled:
            fields["sample"] = True  # this route's other successes this interval are in the summary
        line = f'{peer} - "{method} {target} HTTP/{http_version}" {status}'
        if status >= 500:
            log.warning(line, **fields)
        else:
            log.info(line, **fields)

    def _schedule(self) -> None:
        if self._flush_handle is not None:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return  # no loop (a synchronous caller): the summary is written by the next flush
        # In an empty context: the summary belongs to no request (and carries no request id).
        self._flush_handle = loop.call_later(self.interval_seconds, self.flush, context=Context())

    def flush(self) -> None:
        """Writes the summary of the interval so far (if there was a success) and starts a new one."""
        if self._flush_handle is not None:
            self._flush_handle.cancel()
            self._flush_handle = None
        routes, self._routes = self._routes, {}
        started, self._started = self._started, monotonic()
        if not routes:
            return
        summary: list[dict[str, Any]] = []
        for (method, route), entry in sorted(routes.items()):
            ordered = sorted(entry.latencies_ms)
            summary.append(
                {
                    "method": method,
                    "route": route,
                    "count": len(ordered),
                    "statuses": {str(status): n for status, n in sorted(entry.statuses.items())},
                    "p50_ms": round(_percentile(ordered, 50), 2),
                    "p99_ms": round(_percentile(ordered, 99), 2),
                    "max_ms": round(ordered[-1], 2),
                }
            )
        log.info(
            "requests served",
            seconds=round(monotonic() - started, 1),
            requests=sum(route["count"] for route in summary),
            routes=summary,
        )
