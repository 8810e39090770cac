"""Staying well under Autotask's hourly request budget.

Autotask allows 10,000 requests an hour per database, shared by every integration on the tenant; over
it, every integration gets errors until the rolling hour clears, and from half the budget Autotask
itself adds latency to each call (vendor-notes/psa.md §2.6). `GET /V1.0/ThresholdInformation` reports
`{externalRequestThreshold, requestThresholdTimeframe, currentTimeframeRequestCount}`. The guard reads
it before the first call and every `check_every` calls, spaces calls above `slow_share` of the budget,
and refuses work (RateLimitedError) above `refuse_share`, so the connector never starves the MSP's
other integrations.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from adapters.autotask.models import ThresholdInfo
from adapters.errors import RateLimitedError

log = logging.getLogger("adapters.autotask")


@dataclass(frozen=True)
class ThresholdPolicy:
    check_every: int = 100
    slow_share: float = 0.5
    slow_delay: float = 1.0
    refuse_share: float = 0.8
    retry_after: float = 300.0


class ThresholdGuard:
    """Per-connection budget keeper; `before_request` runs ahead of every counted API call."""

    def __init__(
        self,
        read: Callable[[], Awaitable[ThresholdInfo]],
        policy: ThresholdPolicy,
        *,
        sleep: Callable[[float], Awaitable[None]],
        clock: Callable[[], float],
    ) -> None:
        self._read = read
        self.policy = policy
        self._sleep = sleep
        self._clock = clock
        self._since_check: int | None = None
        self._refused_until = 0.0
        self.usage: float | None = None
        self.last: ThresholdInfo | None = None
        self._lock = asyncio.Lock()

    def force_check(self) -> None:
        """Read the threshold again before the next call (after a 429, say)."""
        self._since_check = None

    async def check(self) -> float:
        info = await self._read()
        self.last = info
        self._since_check = 0
        limit = info.externalRequestThreshold or 0
        used = info.currentTimeframeRequestCount or 0
        self.usage = used / limit if limit > 0 else 0.0
        return self.usage

    def _refuse_if_blocked(self, now: float) -> None:
        if now < self._refused_until:
            raise RateLimitedError(
                f"Autotask request budget above {self.policy.refuse_share:.0%}; waiting for it to clear",
                retry_after=self._refused_until - now,
            )

    async def before_request(self) -> None:
        now = self._clock()
        self._refuse_if_blocked(now)
        async with self._lock:  # concurrent callers share one threshold read
            self._refuse_if_blocked(now)
            if self._since_check is None or self._since_check >= self.policy.check_every:
                usage = await self.check()
                if usage >= self.policy.refuse_share:
                    self._refused_until = now + self.policy.retry_after
                    self._since_check = None
                    log.warning(
                        "Autotask threshold usage %.0f%%: refusing calls for %.0fs",
                        usage * 100,
                        self.policy.retry_after,
                    )
                    raise RateLimitedError(
                        f"Autotask request budget is {usage:.0%} used (refusing above "
                        f"{self.policy.refuse_share:.0%}; it is shared with other integrations)",
                        retry_after=self.policy.retry_after,
                    )
            self._since_check = (self._since_check or 0) + 1
        if self.usage is not None and self.usage >= self.policy.slow_share and self.policy.slow_delay > 0:
            await self._sleep(self.policy.slow_delay)
