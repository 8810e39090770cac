"""Job handlers for alerts: a delivery becomes problem updates; a problem becomes ticket actions."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from adapters.base import WebhookRequest
from connector.alerts.ingest import parse_delivery
from connector.alerts.problems import apply_events, enqueue_reconciles
from connector.alerts.tickets import reconcile_problem
from connector.infra.context import Services
from connector.infra.jobs import queue
from connector.infra.jobs.worker import JobContext, handler
from connector.infra.logs import get_logger
from connector.models import Connection, Delivery

log = get_logger("connector.infra.jobs")


@handler("delivery")
async def process_delivery(context: JobContext) -> None:
    """One delivery (a retry, or a replay): parse and apply its events and queue reconciliations in
    one transaction with the job's completion, so a retry after a failure part-way repeats nothing."""
    async with context.services.sessions() as session, session.begin():
        delivery_id = context.job.payload["delivery_id"]
        await _apply_delivery(context.services, session, delivery_id, context.job.attempt)
        await context.complete(session)
    context.services.wake_workers()


@handler("deliveries")
async def process_deliveries(context: JobContext) -> None:
    """A group of deliveries committed together by the webhook writer (one job per group keeps the
    hot path to one job row). Each delivery is applied in its own transaction; one that fails gets a
    job of its own, with backoff, retries and dead-lettering, and does not hold up the others. A rerun
    after a crash skips the deliveries already processed."""
    services = context.services
    delivery_ids = context.job.payload["delivery_ids"]
    for index, delivery_id in enumerate(delivery_ids):
        try:
            async with services.sessions() as session, session.begin():
                await _apply_delivery(services, session, delivery_id, 1)
                if index == len(delivery_ids) - 1:
                    await context.complete(session)  # one commit for the last delivery and the job
        except Exception as exc:
            log.warning("delivery failed; retried on its own", delivery=delivery_id, error=str(exc))
            async with services.sessions() as session, session.begin():
                await session.execute(
                    update(Delivery)
                    .where(Delivery.id == delivery_id)
                    .values(status="failed", error=f"{type(exc).__name__}: {exc}"[:2000], attempts=1)
                )
                await queue.enqueue(
                    session,
                    tenant_id=context.job.tenant_id,
                    kind="delivery",
                    payload={"delivery_id": delivery_id},
                    unique_key=f"delivery:{delivery_id}",
                    delivery_id=delivery_id,
                    run_after=datetime.now(UTC) + timedelta(seconds=queue.backoff_delay(1)),
                )
    services.wake_workers()


async def _apply_delivery(services: Services, session: AsyncSession, delivery_id: str, attempt: int) -> None:
    delivery = await session.get(Delivery, delivery_id)
    if delivery is None or delivery.body is None or delivery.status == "processed":
        return
    connection = await session.get(Connection, delivery.connection_id)
    if connection is None:
        return
    adapter = await services.adapters.rmm(connection)
    request = WebhookRequest(
        body=delivery.body,
        headers={"content-type": delivery.content_type or ""},
        received_at=delivery.received_at,
    )
    events = parse_delivery(adapter, request)
    problem_ids = await apply_events(session, connection, events)
    await enqueue_reconciles(session, delivery.tenant_id, problem_ids, delivery_id=delivery.id)
    delivery.status = "processed"
    delivery.processed_at = datetime.now(UTC)
    delivery.attempts = attempt
    delivery.error = None


@handler("reconcile")
async def reconcile(context: JobContext) -> None:
    # The lock owner is this job run, not the worker: two runs for one problem in one worker must
    # exclude each other too.
    owner = f"job:{context.job.id}:{context.job.attempt}"
    await reconcile_problem(context.services, context.job.payload["problem_id"], owner=owner)
    if context.job.delivery_id is not None:
        async with context.services.sessions() as session, session.begin():
            await session.execute(
                update(Delivery)
                .where(Delivery.id == context.job.delivery_id, Delivery.status.in_(("failed", "dead")))
                .values(status="processed", error=None)
            )


@handler("sync")
async def run_sync(context: JobContext) -> None:
    """Execute a sync run that is still the connection's running one (a replaced run is skipped)."""
    from connector.models import SyncRun
    from connector.sync.run import execute_run

    run_id = context.job.payload["run_id"]
    async with context.services.sessions() as session:
        run = await session.get(SyncRun, run_id)
    if run is None or run.status != "running":
        return
    await execute_run(context.services, run_id)


@handler("action")
async def run_endpoint_action(context: JobContext) -> None:
    from connector.actions.service import run_action

    await run_action(context.services, context.job.payload["action_id"])


@handler("configurations")
async def push_configurations(context: JobContext) -> None:
    from connector.sync.configurations import push_client

    payload = context.job.payload
    await push_client(context.services, payload["connection_id"], payload["client_id"], payload.get("run_id"))
