"""The alert pipeline's job kinds: stored deliveries become problem updates (`DELIVERIES` for a
group committed together by the webhook writer, `DELIVERY` for one delivery retried or replayed on
its own), and problems become ticket actions (`RECONCILE`)."""

from __future__ import annotations

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from connector.infra.jobs.kinds import JobKind, JobPayload
from connector.infra.jobs.queue import ClaimedJob
from connector.models import Delivery
from connector.notifications.domain import Event, EventKind
from connector.notifications.service import notify
from connector.statuses import DeliveryStatus


class DeliveryJob(JobPayload):
    delivery_id: str


class DeliveriesJob(JobPayload):
    delivery_ids: list[str]


class ReconcileJob(JobPayload):
    problem_id: str


async def mark_delivery_failed(session: AsyncSession, job: ClaimedJob, error: str, dead: bool) -> None:
    """A failed attempt shows on the delivery it stands for: `failed`, or `dead` (replayable) after
    the last attempt."""
    if job.delivery_id is not None:
        await session.execute(
            update(Delivery)
            .where(Delivery.id == job.delivery_id)
            .values(status=DeliveryStatus.DEAD if dead else DeliveryStatus.FAILED, error=error[:4000])
        )
        if dead:
            data = {"delivery_id": job.delivery_id, "job": job.kind, "error": error[:500]}
            event = Event(
                EventKind.DELIVERY_DEAD, f"Delivery {job.delivery_id} dead-lettered", error[:500], data
            )
            await notify(session, job.tenant_id, event)


DELIVERY = JobKind(
    "delivery",
    DeliveryJob,
    unique_key=lambda p: f"delivery:{p.delivery_id}",
    on_failure=mark_delivery_failed,
)
DELIVERIES = JobKind("deliveries", DeliveriesJob)
RECONCILE = JobKind(
    "reconcile",
    ReconcileJob,
    unique_key=lambda p: f"reconcile:{p.problem_id}",
    on_failure=mark_delivery_failed,
)
