"""Keeping under Huntress's request limit before the API has to say so.

Huntress allows 60 requests per account in any 60 second window ("sliding window": request 61 may
go one minute after request 1). `RollingWindow` remembers when the last `limit` requests left and,
when the window is full, waits until the oldest of them is a window old. `PacedTransport` puts that
wait in front of every request on the wire, retries and re-sends included, so whatever path a
request takes through the shared HTTP client it counts once. A 429 that comes anyway (another tool
using the same key) is still honoured by the shared client's `Retry-After` handling.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Awaitable, Callable

import httpx


class RollingWindow:
    """At most `limit` acquisitions in any `window` seconds.

    The clock is monotonic seconds; `sleep` is awaited for the wait. Time is taken as at least the
    moment the wait ended, so a sleep that returns early (a test's recording sleep) does not spin."""

    def __init__(
        self,
        limit: int,
        window: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        if limit < 1 or window <= 0:
            raise ValueError("a rolling window needs a positive limit and length")
        self.limit = limit
        self.window = window
        self._clock = clock
        self._sleep = sleep
        self._sent: deque[float] = deque()
        self._lock = asyncio.Lock()
        self._floor = float("-inf")
        self.waits: list[float] = []
        """Every wait this window imposed, in seconds (for logs and tests)."""

    def _now(self) -> float:
        return max(self._clock(), self._floor)

    async def acquire(self) -> None:
        async with self._lock:
            now = self._now()
            while self._sent and self._sent[0] <= now - self.window:
                self._sent.popleft()
            if len(self._sent) >= self.limit:
                ready = self._sent[0] + self.window
                wait = ready - now
                if wait > 0:
                    self.waits.append(wait)
                    await self._sleep(wait)
                self._floor = max(self._floor, ready)
                now = self._now()
                while self._sent and self._sent[0] <= now - self.window:
                    self._sent.popleft()
            self._sent.append(now)

    @property
    def in_window(self) -> int:
        now = self._now()
        return sum(1 for sent in self._sent if sent > now - self.window)


class PacedTransport(httpx.AsyncBaseTransport):
    """Every request waits for a place in `window` before it goes to `inner`."""

    def __init__(self, inner: httpx.AsyncBaseTransport, window: RollingWindow) -> None:
        self.inner = inner
        self.window = window

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        await self.window.acquire()
        return await self.inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self.inner.aclose()
