"""The notification job's handler: `HANDLERS` is what the composition root gives the worker."""

from __future__ import annotations

from connector.infra.jobs.kinds import JobContext, handles
from connector.notifications.jobs import NOTIFY, NotifyJob
from connector.notifications.service import deliver, mark_delivered


async def send_notification(context: JobContext, job: NotifyJob) -> None:
    """Send, then record the delivery and complete the job in one transaction. A crash between the
    two sends again: receivers de-duplicate on `webhook-id`, which stays the notification's id."""
    await deliver(context.services, job.notification_id)
    async with context.services.sessions() as session, session.begin():
        await mark_delivered(session, job.notification_id, context.job.attempt)
        await context.complete(session)


HANDLERS = [handles(NOTIFY, send_notification)]
