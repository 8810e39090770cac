"""Datto RMM's request budget, kept on our side of the wire.

Datto counts requests over a rolling 60 seconds for the whole account: 600 requests, and from 90 %
of that it slows every answer by a second; beyond it the answer is 429, and clients that keep trying
are blocked for a while with 403 (sources in `adapter.py`). Writes have their own budget of 100.
So every request one connection sends — token requests, retries and re-authentications included —
passes through one `RequestBudget` first, which waits until the request fits in the window instead
of letting the vendor refuse it. `BudgetTransport` applies it below the HTTP client, so nothing that
goes on the wire bypasses it.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Awaitable, Callable

import httpx

WINDOW_SECONDS = 60.0
MARGIN_SECONDS = 1.0
"""A request counts for this much longer here than at Datto: it reaches the vendor a little after it
left, so the vendor's window frees its place a little later than ours would."""
WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


class _Window:
    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.sent: deque[float] = deque()

    def wait_for(self, now: float) -> float:
        """Seconds until one more request fits (0 when it fits now)."""
        span = WINDOW_SECONDS + MARGIN_SECONDS
        while self.sent and self.sent[0] <= now - span:
            self.sent.popleft()
        if len(self.sent) < self.limit:
            return 0.0
        return self.sent[0] + span - now


class RequestBudget:
    """Rolling-window budgets of one connection: every request counts against `reads`, writes
    also against `writes`. `acquire` waits (with the injected sleep) until the request fits."""

    def __init__(
        self,
        reads: int,
        writes: int,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._all = _Window(reads)
        self._writes = _Window(writes)
        self._clock = clock
        self._sleep = sleep
        self._lock = asyncio.Lock()
        self.waited = 0.0
        """Seconds spent waiting for the budget so far (reported by benchmarks and tests)."""

    def used(self) -> tuple[int, int]:
        """Requests and writes counted in the current window."""
        now = self._clock()
        self._all.wait_for(now)
        self._writes.wait_for(now)
        return len(self._all.sent), len(self._writes.sent)

    async def acquire(self, *, write: bool) -> None:
        async with self._lock:
            while True:
                now = self._clock()
                wait = max(self._all.wait_for(now), self._writes.wait_for(now) if write else 0.0)
                if wait <= 0:
                    self._all.sent.append(now)
                    if write:
                        self._writes.sent.append(now)
                    return
                self.waited += wait
                await self._sleep(wait)


class BudgetTransport(httpx.AsyncBaseTransport):
    """Every request through `inner` first takes its place in the connection's budget."""

    def __init__(self, inner: httpx.AsyncBaseTransport, budget: RequestBudget) -> None:
        self._inner = inner
        self._budget = budget

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        await self._budget.acquire(
            write=request.method.upper() in WRITE_METHODS and "/api/" in request.url.path
        )
        return await self._inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self._inner.aclose()
