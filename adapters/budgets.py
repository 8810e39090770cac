"""Request budgets: how many calls to one connection may be in flight at once, and optionally how many
may start per minute.

A vendor counts parallel requests (and requests per minute) per integration, not per process: when
several processes of one deployment talk to the same connection, the budget has to be shared by
them. `VendorHttpClient` therefore takes a `RequestBudget` object and asks it for a slot around every
request; the core hands adapters one bound to the connection and backed by the deployment's store
(the database, or Redis). Without one, `LocalBudget` limits this process alone (the fakes, tests,
and adapters used outside the service).
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Protocol, runtime_checkable


@dataclass(frozen=True)
class Limits:
    """A connection's limits: `concurrency` calls in flight at once, and at most `per_minute` calls
    started in any minute (None: no rate limit)."""

    concurrency: int
    per_minute: int | None = None

    def __post_init__(self) -> None:
        if self.concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        if self.per_minute is not None and self.per_minute < 1:
            raise ValueError("per_minute must be at least 1 (or None)")


@runtime_checkable
class RequestBudget(Protocol):
    """Slots for one connection's calls. `acquire` waits until a slot is free (and the rate allows
    another call) and returns a token; `release` gives the slot back. A holder that dies without
    releasing must not keep its slot forever (shared stores lease slots)."""

    async def acquire(self, limits: Limits) -> object: ...

    async def release(self, token: object) -> None: ...


@asynccontextmanager
async def slot(budget: RequestBudget, limits: Limits) -> AsyncIterator[None]:
    """Hold one of the budget's slots for the block."""
    token = await budget.acquire(limits)
    try:
        yield
    finally:
        await budget.release(token)


class RateWindow:
    """At most `per_minute` starts in any sliding 60 s, in this process (a log of start times)."""

    def __init__(self) -> None:
        self._starts: deque[float] = deque()
        self._lock = asyncio.Lock()

    async def wait(self, per_minute: int) -> None:
        async with self._lock:
            while True:
                now = time.monotonic()
                while self._starts and self._starts[0] <= now - 60.0:
                    self._starts.popleft()
                if len(self._starts) < per_minute:
                    self._starts.append(now)
                    return
                await asyncio.sleep(self._starts[0] + 60.0 - now)


class LocalBudget:
    """The budget of this process alone: an asyncio semaphore of the connection's concurrency (made
    on first use: one budget serves one connection, whose limits change only with a new adapter)."""

    def __init__(self) -> None:
        self._semaphore: asyncio.Semaphore | None = None
        self._limit = 0
        self._rate = RateWindow()

    async def acquire(self, limits: Limits) -> object:
        if self._semaphore is None or self._limit != limits.concurrency:
            self._semaphore, self._limit = asyncio.Semaphore(limits.concurrency), limits.concurrency
        semaphore = self._semaphore
        await semaphore.acquire()
        try:
            if limits.per_minute is not None:
                await self._rate.wait(limits.per_minute)
        except BaseException:
            semaphore.release()
            raise
        return semaphore

    async def release(self, token: object) -> None:
        assert isinstance(token, asyncio.Semaphore)
        token.release()


__all__ = ["Limits", "LocalBudget", "RateWindow", "RequestBudget", "slot"]
