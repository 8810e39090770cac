"""The job worker: claims jobs, runs their handlers, renews leases while they run, and applies the
retry policy (backoff, vendor `Retry-After`, dead-letter after the last attempt)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from adapters.errors import AdapterError, RateLimitedError
from connector.infra.context import Services
from connector.infra.db import is_unavailable
from connector.infra.jobs import queue
from connector.infra.jobs.kinds import HandlerTable, JobContext, Registration, RetryLater
from connector.infra.jobs.queue import ClaimedJob, LeaseLost
from connector.infra.logs import get_logger

log = get_logger("connector.infra.jobs")


CLAIM_RETRY_CAP_SECONDS = 30.0


def claim_retry_delay(failures: int, poll_interval: float, cap: float = CLAIM_RETRY_CAP_SECONDS) -> float:
    """The wait before the next claim: the poll interval, doubled per consecutive failed claim
    up to `cap` (never below the poll interval)."""
    if failures <= 0:
        return poll_interval
    return max(poll_interval, min(cap, poll_interval * 2.0 ** min(failures, 16)))


def worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


class Worker:
    """Runs the jobs of the kinds in its handler table (assembled by the composition root)."""

    def __init__(
        self,
        services: Services,
        *,
        concurrency: int = 4,
        lease: timedelta = timedelta(seconds=60),
        poll_interval: float = 1.0,
        handlers: HandlerTable,
        fair: bool = True,
    ) -> None:
        """`fair=False` claims the oldest runnable jobs whoever they belong to (see `queue.claim`)."""
        self.services = services
        self.fair = fair
        self._claims = 0
        self._served: dict[str, int] = {}
        self.concurrency = concurrency
        self.lease = lease
        self.poll_interval = poll_interval
        self.handlers = handlers
        self.owner = worker_id()
        self._wake = asyncio.Event()
        self._stopping = asyncio.Event()
        self._slots = asyncio.Semaphore(concurrency)
        self._running: set[asyncio.Task[None]] = set()
        self._claim_failures = 0

    def wake(self) -> None:
        self._wake.set()

    async def run(self) -> None:
        """Until `stop()`: claim whatever is runnable, sleep until woken or the poll interval —
        longer after failed claims (the database is away), so an outage is not polled every
        second; a wake-up (new work was committed, so the database is back) retries at once."""
        while not self._stopping.is_set():
            started = await self._claim_and_start()
            if not started:
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(
                        self._wake.wait(), claim_retry_delay(self._claim_failures, self.poll_interval)
                    )

    async def stop(self) -> None:
        self._stopping.set()
        self._wake.set()
        if self._running:
            await asyncio.gather(*self._running, return_exceptions=True)

    async def run_until_idle(self, *, max_jobs: int = 1_000_000) -> int:
        """Run jobs until none is runnable now and none is running (for `connector sync`, `worker
        --once` and tests); returns the number of jobs run. Pipelined like `run()`: a free slot is
        refilled as soon as a job ends, not after a whole batch."""
        total = 0
        running: set[asyncio.Task[None]] = set()
        try:
            while total < max_jobs:
                free = self.concurrency - len(running)
                jobs = []
                if free > 0:
                    jobs = await self._claim(min(free, max_jobs - total))
                for job in jobs:
                    running.add(asyncio.create_task(self._execute(job)))
                total += len(jobs)
                if not running:
                    break
                if not jobs or len(running) >= self.concurrency:
                    done, running = await asyncio.wait(running, return_when=asyncio.FIRST_COMPLETED)
                    for task in done:
                        task.result()  # re-raise what escaped a job (a crash stands for process death)
        finally:
            if running:
                await asyncio.gather(*running, return_exceptions=True)
        return total

    async def _claim(self, limit: int) -> list[ClaimedJob]:
        """Claims up to `limit` jobs, remembering which tenants this worker served last: among
        tenants with as many jobs running, the one served longest ago goes first."""
        jobs = await queue.claim(
            self.services.sessions,
            self.owner,
            limit=limit,
            lease=self.lease,
            kinds=self.handlers.names(),
            fair=self.fair,
            served=self._served,
        )
        for job in jobs:
            self._claims += 1
            self._served[job.tenant_id] = self._claims
        return jobs

    async def _claim_and_start(self) -> bool:
        free = self.concurrency - len(self._running)
        if free <= 0:
            await asyncio.wait(self._running, return_when=asyncio.FIRST_COMPLETED)
            return True
        try:
            jobs = await self._claim(free)
        except Exception as exc:  # database briefly unavailable: keep the worker alive
            self._claim_failures += 1
            log.warning(
                "job claim failed",
                error=str(exc) or type(exc).__name__,
                failures=self._claim_failures,
                retry_in=claim_retry_delay(self._claim_failures, self.poll_interval),
            )
            return False
        if self._claim_failures:
            log.info("job claims work again", after_failures=self._claim_failures)
            self._claim_failures = 0
        for job in jobs:
            task = asyncio.create_task(self._execute(job))
            self._running.add(task)
            task.add_done_callback(self._running.discard)
        return bool(jobs)

    async def _execute(self, job: ClaimedJob) -> None:
        try:
            await self._execute_and_record(job)
        except Exception as exc:
            if not is_unavailable(exc):
                raise
            # The outcome could not be written: the lease expires and the job runs again (its
            # handlers are idempotent), rather than the error escaping an unwatched task.
            log.warning("job outcome not recorded: database unavailable", job=job.id, kind=job.kind)

    async def _execute_and_record(self, job: ClaimedJob) -> None:
        context = JobContext(self.services, job)
        registration = self.handlers.get(job.kind)
        renewer = asyncio.create_task(self._renew(job))
        try:
            if registration is None:  # claims are limited to the table's kinds
                raise LookupError(f"no handler for job kind {job.kind!r}")
            await registration.run(context)
            if not context.completed:
                async with self.services.sessions() as session, session.begin():
                    await queue.complete(session, job)
        except LeaseLost:
            log.warning("job lease lost; outcome discarded", job=job.id, kind=job.kind)
        except RetryLater as later:
            await queue.postpone(self.services.sessions, job, later.at)
        except Exception as exc:
            await self._failed(job, exc, registration)
        finally:
            renewer.cancel()

    async def _failed(self, job: ClaimedJob, exc: Exception, registration: Registration[Any] | None) -> None:
        retry_at = None
        if isinstance(exc, RateLimitedError) and exc.retry_after is not None:
            retry_at = datetime.now(UTC) + timedelta(seconds=max(exc.retry_after, 1.0))
        message = f"{type(exc).__name__}: {exc}"
        if not isinstance(exc, AdapterError):  # a vendor's answer is expected; anything else is a bug
            log.exception("job failed", job=job.id, kind=job.kind)
        on_failure = registration.kind.on_failure if registration is not None else None
        status = await queue.fail(
            self.services.sessions, job, message, retry_at=retry_at, on_failure=on_failure
        )
        log.warning(
            "job attempt failed",
            job=job.id,
            kind=job.kind,
            attempt=job.attempt,
            outcome=status,
            error=message,
        )
        if status == "dead":
            self.services.metrics.dead_lettered.labels(job.kind).inc()
            log.info(
                "job dead-lettered",
                job=job.id,
                kind=job.kind,
                tenant_id=job.tenant_id,
                attempts=job.attempt,
                delivery_id=job.delivery_id,
                error=message,
            )

    async def _renew(self, job: ClaimedJob) -> None:
        interval = self.lease.total_seconds() / 3
        while True:
            await asyncio.sleep(interval)
            try:
                if not await queue.renew(self.services.sessions, job, self.lease):
                    return
            except Exception as exc:  # the database is away: try again at the next interval
                if not is_unavailable(exc):
                    raise
                log.warning("job lease renewal failed: database unavailable", job=job.id)
