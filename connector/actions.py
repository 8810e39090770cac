"""Remote actions on endpoints (scan, update definitions, deploy agent): requested over the API or
by a ticket rule when a problem opens, run by the RMM adapter in a job, the vendor's answer recorded.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from adapters.base import ActionKind, ProblemKind
from adapters.errors import AdapterError, UnsupportedActionError
from connector import db
from connector.jobs import queue
from connector.models import Connection, Endpoint, EndpointAction, Problem
from connector.services import Services

ADDRESSES: dict[ActionKind, tuple[ProblemKind, ...]] = {
    ActionKind.SCAN: (ProblemKind.THREAT_DETECTED, ProblemKind.SCAN_OVERDUE),
    ActionKind.UPDATE_DEFINITIONS: (ProblemKind.DEFINITIONS_OUTDATED,),
    ActionKind.DEPLOY_AGENT: (ProblemKind.NOT_PROTECTED,),
}
"""Which problems an action is meant to clear (the ticket's closing note names the action)."""


async def target_problem(session: AsyncSession, endpoint: Endpoint, action: ActionKind) -> Problem | None:
    return await session.scalar(
        select(Problem)
        .where(
            Problem.rmm_connection_id == endpoint.rmm_connection_id,
            Problem.endpoint_id == endpoint.endpoint_id,
            Problem.state == "open",
            Problem.kind.in_([k.value for k in ADDRESSES[action]]),
        )
        .order_by(Problem.first_seen_at)
        .limit(1)
    )


async def request_action(
    session: AsyncSession,
    endpoint: Endpoint,
    action: ActionKind,
    *,
    requested_by: str,
    problem_id: str | None = None,
) -> EndpointAction:
    """Record the request and queue its job in the caller's transaction."""
    if problem_id is None:
        problem = await target_problem(session, endpoint, action)
        problem_id = problem.id if problem is not None else None
    row = EndpointAction(
        tenant_id=endpoint.tenant_id,
        endpoint_row_id=endpoint.id,
        action=action.value,
        problem_id=problem_id,
        requested_by=requested_by,
        status="queued",
    )
    session.add(row)
    await session.flush()
    await queue.enqueue(
        session,
        tenant_id=endpoint.tenant_id,
        kind="action",
        payload={"action_id": row.id},
        unique_key=f"action:{row.id}",
        max_attempts=3,
    )
    session.info["wake_workers"] = True
    return row


async def run_action(services: Services, action_id: str) -> None:
    """Ask the RMM once. A vendor refusal is an outcome to record, not a reason to retry; a
    transient failure propagates and the job retries."""
    async with services.sessions() as session:
        row = await session.get(EndpointAction, action_id)
        if row is None or row.status != "queued":
            return
        endpoint = await session.get(Endpoint, row.endpoint_row_id)
        connection = await session.get(Connection, endpoint.rmm_connection_id) if endpoint else None
    if endpoint is None or connection is None:
        return
    adapter = await services.adapters.rmm(connection)
    status, reference, message = "failed", None, ""
    try:
        result = await adapter.run_action(endpoint.endpoint_id, ActionKind(row.action))
        status = "accepted" if result.accepted else "failed"
        reference, message = result.vendor_reference, result.message
    except UnsupportedActionError as exc:
        message = str(exc)
    except AdapterError as exc:
        if exc.retryable:
            raise
        message = str(exc)
    async with db.transaction(services.sessions) as session:
        stored = await session.get(EndpointAction, action_id)
        assert stored is not None
        stored.status, stored.vendor_reference, stored.message = status, reference, message
        stored.finished_at = datetime.now(UTC)


async def accepted_action_for(session: AsyncSession, problem_id: str) -> EndpointAction | None:
    return await session.scalar(
        select(EndpointAction)
        .where(EndpointAction.problem_id == problem_id, EndpointAction.status == "accepted")
        .order_by(EndpointAction.requested_at.desc())
        .limit(1)
    )
