"""Job kinds, declared once each: the name stored in `jobs.kind`, a typed payload, the unique key
that coalesces queued twins, the attempts allowed, and what a failed attempt does to the records
the job stands for. An enqueue site names the kind object and its handler is registered against the
same object, so a reader (or go-to-definition) follows enqueue → kind → handler without a string.

Features declare their kinds in their `jobs.py` (declarations only, importable from anywhere in the
feature) and pair them with handlers in their `handlers.py`; the composition root assembles the
worker's table from every feature's handlers.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ConfigDict
from sqlalchemy.ext.asyncio import AsyncSession

from connector.infra.context import Services
from connector.infra.jobs import queue
from connector.infra.jobs.queue import ClaimedJob
from connector.statuses import JobStatus


class JobPayload(BaseModel):
    """A job's payload: small, frozen, JSON-able. Unknown fields of stored payloads are ignored,
    so a payload can gain an optional field without breaking queued jobs."""

    model_config = ConfigDict(frozen=True, extra="ignore")


P = TypeVar("P", bound=JobPayload)

FailureHook = Callable[[AsyncSession, ClaimedJob, str, bool], Awaitable[None]]
"""Runs in the transaction that records a failed attempt: (session, job, error, dead)."""


@dataclass(frozen=True, eq=False)
class JobKind(Generic[P]):
    name: str
    payload: type[P]
    unique_key: Callable[[P], str] | None = None
    """Jobs queued under the same key are one job (the earlier run time wins)."""
    max_attempts: int = 8
    on_failure: FailureHook | None = None
    priority: int = queue.URGENT
    """Its jobs' priority unless the enqueuer says otherwise (`queue.BULK` for sweeps)."""

    def parse(self, raw: dict[str, Any]) -> P:
        return self.payload.model_validate(raw)

    def row(
        self,
        payload: P,
        *,
        tenant_id: str,
        run_after: datetime | None = None,
        delivery_id: str | None = None,
        priority: int | None = None,
    ) -> dict[str, Any]:
        """The `jobs` row for this kind and payload (for bulk inserts that bypass `enqueue`)."""
        now = datetime.now(UTC)
        return {
            "tenant_id": tenant_id,
            "kind": self.name,
            "payload": payload.model_dump(mode="json"),
            "status": JobStatus.QUEUED,
            "unique_key": self.unique_key(payload) if self.unique_key is not None else None,
            "delivery_id": delivery_id,
            "attempts": 0,
            "max_attempts": self.max_attempts,
            "priority": self.priority if priority is None else priority,
            "run_after": run_after or now,
            "created_at": now,
        }


async def enqueue(
    session: AsyncSession,
    kind: JobKind[P],
    payload: P,
    *,
    tenant_id: str,
    run_after: datetime | None = None,
    delivery_id: str | None = None,
    priority: int | None = None,
) -> None:
    """Add a job in the caller's transaction (a queued twin under the same unique key absorbs it)."""
    await queue.insert(
        session,
        kind.row(
            payload, tenant_id=tenant_id, run_after=run_after, delivery_id=delivery_id, priority=priority
        ),
    )


class RetryLater(Exception):
    """Raised by a handler that cannot start now (e.g. its problem is locked): requeue, no attempt."""

    def __init__(self, at: datetime) -> None:
        super().__init__(at.isoformat())
        self.at = at


@dataclass
class JobContext:
    services: Services
    job: ClaimedJob
    completed: bool = False

    async def complete(self, session: AsyncSession) -> None:
        """Mark the job done inside the handler's own transaction (atomic with its writes)."""
        await queue.complete(session, self.job)
        self.completed = True


@dataclass(frozen=True)
class Registration(Generic[P]):
    """A kind and the handler that runs it, paired so their payload types agree."""

    kind: JobKind[P]
    handler: Callable[[JobContext, P], Awaitable[None]]

    async def run(self, context: JobContext) -> None:
        await self.handler(context, self.kind.parse(context.job.payload))


def handles(kind: JobKind[P], handler: Callable[[JobContext, P], Awaitable[None]]) -> Registration[P]:
    return Registration(kind, handler)


@dataclass(frozen=True)
class HandlerTable:
    """What a worker runs: registrations by kind name (the column value)."""

    registrations: dict[str, Registration[Any]] = field(default_factory=dict)

    @classmethod
    def of(cls, registrations: Iterable[Registration[Any]]) -> HandlerTable:
        table: dict[str, Registration[Any]] = {}
        for registration in registrations:
            if registration.kind.name in table:
                raise ValueError(f"two handlers for job kind {registration.kind.name!r}")
            table[registration.kind.name] = registration
        return cls(table)

    def only(self, *kinds: JobKind[Any]) -> HandlerTable:
        """The part of the table that runs these kinds (e.g. `connector sync` runs ticket work only)."""
        wanted = {kind.name for kind in kinds}
        return HandlerTable({name: r for name, r in self.registrations.items() if name in wanted})

    def names(self) -> list[str]:
        return list(self.registrations)

    def get(self, name: str) -> Registration[Any] | None:
        return self.registrations.get(name)
