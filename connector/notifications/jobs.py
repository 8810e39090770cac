"""The notification job kind: one job per notification row, retried with the queue's backoff and
dead after its last attempt (the row shows each failed try and the outcome)."""

from __future__ import annotations

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from connector.infra.jobs.kinds import JobKind, JobPayload
from connector.infra.jobs.queue import ClaimedJob
from connector.models import Notification


class NotifyJob(JobPayload):
    notification_id: str


async def mark_notification_failed(session: AsyncSession, job: ClaimedJob, error: str, dead: bool) -> None:
    notification_id = job.payload.get("notification_id")
    await session.execute(
        update(Notification)
        .where(Notification.id == notification_id)
        .values(status="dead" if dead else "failed", error=error[:4000], attempts=job.attempt)
    )


NOTIFY = JobKind(
    "notify",
    NotifyJob,
    unique_key=lambda p: f"notify:{p.notification_id}",
    max_attempts=8,
    on_failure=mark_notification_failed,
)
