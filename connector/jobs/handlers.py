"""Job handlers for alerts: a delivery becomes problem updates; a problem becomes ticket actions."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import update

from adapters.base import WebhookRequest
from connector.jobs.worker import JobContext, handler
from connector.models import Connection, Delivery
from connector.problems import apply_events, enqueue_reconciles
from connector.tickets import reconcile_problem
from connector.webhooks import parse_delivery


@handler("delivery")
async def process_delivery(context: JobContext) -> None:
    """Parse and apply the delivery's events and queue reconciliations — one transaction, so a
    retry after a failure part-way repeats nothing."""
    services = context.services
    delivery_id = context.job.payload["delivery_id"]
    async with services.sessions() as session, session.begin():
        delivery = await session.get(Delivery, delivery_id)
        if delivery is None or delivery.body is None:
            await context.complete(session)
            return
        connection = await session.get(Connection, delivery.connection_id)
        if connection is None:
            await context.complete(session)
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
        delivery.attempts = context.job.attempt
        delivery.error = None
        await context.complete(session)
    services.wake_workers()


@handler("reconcile")
async def reconcile(context: JobContext) -> None:
    await reconcile_problem(context.services, context.job.payload["problem_id"], owner=context.job.owner)
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
    from connector.sync import execute_run

    run_id = context.job.payload["run_id"]
    async with context.services.sessions() as session:
        run = await session.get(SyncRun, run_id)
    if run is None or run.status != "running":
        return
    await execute_run(context.services, run_id)


@handler("action")
async def run_endpoint_action(context: JobContext) -> None:
    from connector.actions import run_action

    await run_action(context.services, context.job.payload["action_id"])


@handler("configurations")
async def push_configurations(context: JobContext) -> None:
    from connector.configurations import push_client

    payload = context.job.payload
    await push_client(context.services, payload["connection_id"], payload["client_id"], payload.get("run_id"))
