"""Job handlers of the alert pipeline: a stored delivery becomes problem updates; a problem becomes
ticket actions. `HANDLERS` is what the composition root gives the worker."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import cast

from sqlalchemy import Table, bindparam, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from adapters.base import WebhookRequest
from adapters.errors import WebhookParseError
from connector.alerts.ingest import parse_delivery, webhook_adapter
from connector.alerts.jobs import DELIVERIES, DELIVERY, RECONCILE, DeliveriesJob, DeliveryJob, ReconcileJob
from connector.alerts.problems import apply_events, enqueue_reconciles
from connector.alerts.tickets import reconcile_problem
from connector.infra import db
from connector.infra.context import Services
from connector.infra.jobs import queue
from connector.infra.jobs.kinds import JobContext, enqueue, handles
from connector.infra.logs import get_logger
from connector.maintenance.jobs import WINDOW_CHANGED, WindowChangedJob
from connector.models import Connection, Delivery, Problem
from connector.statuses import DeliveryStatus, ProblemStatus, Routing

log = get_logger("connector.alerts.jobs")


async def process_delivery(context: JobContext, job: DeliveryJob) -> None:
    """One delivery (a retry, or a replay): parse and apply its events and queue reconciliations in
    one transaction with the job's completion, so a retry after a failure part-way repeats nothing.
    A body that no longer parses is dead at once: retrying cannot change it."""
    try:
        async with context.services.sessions() as session, session.begin():
            await _apply_delivery(context.services, session, job.delivery_id, context.job.attempt)
            await context.complete(session)
    except WebhookParseError as exc:
        async with context.services.sessions() as session, session.begin():
            await _mark_unparseable(session, job.delivery_id, exc, context.job.attempt)
            await context.complete(session)
        return
    context.services.wake_workers()


async def process_deliveries(context: JobContext, job: DeliveriesJob) -> None:
    """A group of deliveries committed together by the webhook writer (one job per group keeps the
    hot path to one job row). Each delivery is applied in its own transaction; one that fails gets a
    job of its own, with backoff, retries and dead-lettering, and does not hold up the others. A rerun
    after a crash skips the deliveries already processed."""
    services = context.services
    last = len(job.delivery_ids) - 1
    for index, delivery_id in enumerate(job.delivery_ids):
        try:
            async with services.sessions() as session, session.begin():
                await _apply_delivery(services, session, delivery_id, 1)
                if index == last:
                    await context.complete(session)  # one commit for the last delivery and the job
        except Exception as exc:
            async with services.sessions() as session, session.begin():
                if isinstance(exc, WebhookParseError):
                    await _mark_unparseable(session, delivery_id, exc, 1)
                else:
                    log.warning("delivery failed; retried on its own", delivery=delivery_id, error=str(exc))
                    await _retry_alone(session, context.job.tenant_id, delivery_id, exc)
                if index == last:
                    await context.complete(session)
    services.wake_workers()


async def _retry_alone(session: AsyncSession, tenant_id: str, delivery_id: str, exc: Exception) -> None:
    await session.execute(
        update(Delivery)
        .where(Delivery.id == delivery_id)
        .values(status=DeliveryStatus.FAILED, error=f"{type(exc).__name__}: {exc}"[:2000], attempts=1)
    )
    await enqueue(
        session,
        DELIVERY,
        DeliveryJob(delivery_id=delivery_id),
        tenant_id=tenant_id,
        delivery_id=delivery_id,
        run_after=datetime.now(UTC) + timedelta(seconds=queue.backoff_delay(1)),
    )


async def _mark_unparseable(
    session: AsyncSession, delivery_id: str, exc: WebhookParseError, attempt: int
) -> None:
    log.warning("stored delivery no longer parses; dead-lettered", delivery=delivery_id, error=str(exc))
    await session.execute(
        update(Delivery)
        .where(Delivery.id == delivery_id)
        .values(status=DeliveryStatus.DEAD, error=f"unparseable: {exc}"[:2000], attempts=attempt)
    )


DELIVERIES_TABLE = cast(Table, Delivery.__table__)
_DELIVERY = (
    select(Delivery, Connection)
    .join(Connection, Connection.id == Delivery.connection_id)
    .where(Delivery.id == bindparam("delivery_id"))
)
"""A stored delivery with the connection it came in on, in one round trip."""


async def _apply_delivery(services: Services, session: AsyncSession, delivery_id: str, attempt: int) -> None:
    found = (await session.execute(_DELIVERY, {"delivery_id": delivery_id})).first()
    if found is None:
        return
    delivery, connection = found
    if delivery.body is None or delivery.status == DeliveryStatus.PROCESSED:
        return
    adapter = await webhook_adapter(services, connection)
    request = WebhookRequest(
        body=delivery.body,
        headers={"content-type": delivery.content_type or ""},
        received_at=delivery.received_at,
    )
    events = parse_delivery(adapter, request)
    problem_ids = await apply_events(session, connection, events)
    await enqueue_reconciles(session, delivery.tenant_id, problem_ids, delivery_id=delivery.id)
    await session.execute(
        _PROCESSED, {"b_delivery": delivery.id, "b_at": datetime.now(UTC), "b_attempts": attempt}
    )


# Built once, bound per call (every delivery and reconciliation runs them).
_PROCESSED = (
    update(DELIVERIES_TABLE)
    .where(DELIVERIES_TABLE.c.id == bindparam("b_delivery"))
    .values(
        status=DeliveryStatus.PROCESSED,
        processed_at=bindparam("b_at", type_=DELIVERIES_TABLE.c.processed_at.type),
        attempts=bindparam("b_attempts"),
        error=None,
    )
)
_NO_LONGER_FAILED = (
    update(DELIVERIES_TABLE)
    .where(
        DELIVERIES_TABLE.c.id == bindparam("b_delivery"),
        DELIVERIES_TABLE.c.status.in_((DeliveryStatus.FAILED, DeliveryStatus.DEAD)),
    )
    .values(status=DeliveryStatus.PROCESSED, error=None)
)
"""A delivery that failed and was retried no longer shows the failure once its problem is reconciled."""


async def reconcile(context: JobContext, job: ReconcileJob) -> None:
    # The lock owner is this job run, not the worker: two runs for one problem in one worker must
    # exclude each other too.
    owner = f"job:{context.job.id}:{context.job.attempt}"
    delivery_id = context.job.delivery_id

    async def finish(session: AsyncSession) -> None:
        """With the lock's release: the delivery that queued this job no longer shows a failure,
        and the job is done."""
        if delivery_id is not None:
            await session.execute(_NO_LONGER_FAILED, {"b_delivery": delivery_id})
        await context.complete(session)

    await reconcile_problem(context.services, job.problem_id, owner=owner, finish=finish)


async def release_held(context: JobContext, job: WindowChangedJob) -> None:
    """A window changed or went away: the problems held in maintenance in its scope are reconciled
    now (their queued job moves forward: a job's earlier run time wins); one still inside a window
    is held again until that window's end."""
    tenant_id = context.job.tenant_id
    async with context.services.sessions() as session, session.begin():
        query = db.scoped(select(Problem.id), Problem, tenant_id).where(
            Problem.state == ProblemStatus.OPEN, Problem.routing == Routing.MAINTENANCE
        )
        if job.rmm_connection_id is not None and job.client_id is not None:
            query = query.where(
                Problem.rmm_connection_id == job.rmm_connection_id, Problem.client_id == job.client_id
            )
        held = list(await session.scalars(query))
        await enqueue_reconciles(session, tenant_id, held)
        await context.complete(session)
    if held:
        log.info(
            "maintenance window changed: held problems reconciled", tenant_id=tenant_id, problems=len(held)
        )
        context.services.wake_workers()


HANDLERS = (
    handles(DELIVERY, process_delivery),
    handles(DELIVERIES, process_deliveries),
    handles(RECONCILE, reconcile),
    handles(WINDOW_CHANGED, release_held),
)
