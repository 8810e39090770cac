"""Remote actions on endpoints (scan, update definitions, deploy agent): requested over the API or
by a ticket rule when a problem opens, run by the RMM adapter in a job, the vendor's answer recorded.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from adapters.base import ActionKind, AdapterSpec, ProblemKind
from adapters.errors import AdapterError, TransientVendorError, UnsupportedActionError
from connector.actions.jobs import ACTION, ActionJob
from connector.audit import service as audit
from connector.audit.domain import WORKER
from connector.connections.service import get_connection
from connector.fleet.service import get_endpoint
from connector.infra import db
from connector.infra.context import Services
from connector.infra.errors import FieldError
from connector.infra.jobs.kinds import enqueue
from connector.models import Connection, Endpoint, EndpointAction, Problem
from connector.statuses import ActionStatus, ProblemStatus

ADDRESSES: dict[ActionKind, tuple[ProblemKind, ...]] = {
    ActionKind.SCAN: (ProblemKind.THREAT_DETECTED, ProblemKind.SCAN_OVERDUE),
    ActionKind.UPDATE_DEFINITIONS: (ProblemKind.DEFINITIONS_OUTDATED,),
    ActionKind.DEPLOY_AGENT: (ProblemKind.NOT_PROTECTED,),
}
"""Which problems an action is meant to clear (the ticket's closing note names the action)."""


async def actionable_endpoint(
    session: AsyncSession, tenant_id: str, endpoint_row_id: str
) -> tuple[Endpoint, Connection]:
    """The endpoint an action is asked for, with its RMM connection; a retired endpoint is refused."""
    endpoint = await get_endpoint(session, tenant_id, endpoint_row_id)
    if endpoint.retired_at is not None:
        raise FieldError("endpoint_id", "the endpoint is retired (no longer in the RMM)")
    return endpoint, await get_connection(session, tenant_id, endpoint.rmm_connection_id)


async def check_problem_on_endpoint(session: AsyncSession, endpoint: Endpoint, problem_id: str) -> None:
    """An action asked for on behalf of a problem must name one of the endpoint's problems."""
    owned = await session.scalar(
        db.scoped(select(func.count()).select_from(Problem), Problem, endpoint.tenant_id).where(
            Problem.id == problem_id, Problem.endpoint_id == endpoint.endpoint_id
        )
    )
    if not owned:
        raise FieldError("problem_id", "no such problem on this endpoint")


def check_supported(spec: AdapterSpec | None, action: ActionKind) -> None:
    """Refuse, before anything is queued, an action the connection's kind does not declare
    (`AdapterSpec.actions`; None: the kind is no longer installed). Read from the declaration, so
    no adapter is built and nothing is asked of the RMM."""
    if spec is None:
        raise FieldError("kind", "the connection's adapter kind is no longer installed")
    if action not in spec.actions:
        offered = ", ".join(sorted(a.value for a in spec.actions))
        reason = spec.refusals.get(action)
        raise FieldError(
            "action",
            f"{spec.kind} cannot run '{action.value}' through its API"
            + (f" ({reason})" if reason else "")
            + (f"; it supports: {offered}" if offered else ""),
        )


async def target_problem(session: AsyncSession, endpoint: Endpoint, action: ActionKind) -> Problem | None:
    return await session.scalar(
        select(Problem)
        .where(
            Problem.rmm_connection_id == endpoint.rmm_connection_id,
            Problem.endpoint_id == endpoint.endpoint_id,
            Problem.state == ProblemStatus.OPEN,
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
        status=ActionStatus.QUEUED,
    )
    session.add(row)
    await session.flush()
    await enqueue(session, ACTION, ActionJob(action_id=row.id), tenant_id=endpoint.tenant_id)
    session.info["wake_workers"] = True
    return row


async def run_action(services: Services, action_id: str) -> None:
    """Ask the RMM at most once. The action is marked `sending` before the call, so a retry after a
    crash never sends it again blindly; a vendor refusal is an outcome to record; a failure that
    certainly never reached the RMM (429, no connection) is retried by the job."""
    async with db.transaction(services.sessions) as session:
        row = await session.get(EndpointAction, action_id, with_for_update=True)
        if row is None or row.status not in (ActionStatus.QUEUED, ActionStatus.SENDING):
            return
        if row.status == ActionStatus.SENDING:
            message = "interrupted while the RMM was being asked; not sent again (check the RMM)"
            _finish(row, ActionStatus.FAILED, None, message)
            endpoint = await session.get(Endpoint, row.endpoint_row_id)
            if endpoint is not None:  # it may have reached the RMM: the trail says so
                _audit(session, row, endpoint, endpoint.rmm_connection_id, ActionKind(row.action), message)
            return
        row.status = ActionStatus.SENDING
        endpoint = await session.get(Endpoint, row.endpoint_row_id)
        connection = await session.get(Connection, endpoint.rmm_connection_id) if endpoint else None
        action = ActionKind(row.action)
    if endpoint is None or connection is None:
        return
    adapter = await services.adapters.rmm(connection)
    status, reference, message = ActionStatus.FAILED, None, ""
    sent = True
    try:
        result = await adapter.run_action(endpoint.endpoint_id, action)
        status = ActionStatus.ACCEPTED if result.accepted else ActionStatus.FAILED
        reference, message = result.vendor_reference, result.message
    except UnsupportedActionError as exc:
        message, sent = str(exc), False
    except TransientVendorError as exc:
        if not exc.maybe_applied:  # the RMM never saw it: safe to send again
            async with db.transaction(services.sessions) as session:
                await session.execute(
                    update(EndpointAction)
                    .where(EndpointAction.id == action_id)
                    .values(status=ActionStatus.QUEUED)
                )
            raise
        message = f"the RMM did not confirm the request ({exc}); not sent again (check the RMM)"
    except AdapterError as exc:
        message = str(exc)
    async with db.transaction(services.sessions) as session:
        stored = await session.get(EndpointAction, action_id)
        assert stored is not None
        _finish(stored, status, reference, message)
        if sent:
            _audit(session, stored, endpoint, connection.id, action, message)


def _audit(
    session: AsyncSession,
    row: EndpointAction,
    endpoint: Endpoint,
    connection_id: str,
    action: ActionKind,
    message: str,
) -> None:
    """The action sent to the RMM (or perhaps sent: interrupted mid-call), with its recorded outcome."""
    audit.record(
        session,
        row.tenant_id,
        "action.sent",
        WORKER,
        target_type="endpoint",
        target_id=endpoint.endpoint_id,
        connection_id=connection_id,
        client_id=endpoint.client_id,
        summary=f"'{action.value}' sent to {endpoint.hostname}: {row.status.value}"
        + (f" ({message})" if message else ""),
        after={
            "action": action.value,
            "requested_by": row.requested_by,
            "problem_id": row.problem_id,
            "status": row.status.value,
            "vendor_reference": row.vendor_reference,
        },
    )


def _finish(row: EndpointAction, status: ActionStatus, reference: str | None, message: str) -> None:
    row.status, row.vendor_reference, row.message = status, reference, message
    row.finished_at = datetime.now(UTC)


async def accepted_action_for(session: AsyncSession, problem_id: str) -> EndpointAction | None:
    return await session.scalar(
        select(EndpointAction)
        .where(EndpointAction.problem_id == problem_id, EndpointAction.status == ActionStatus.ACCEPTED)
        .order_by(EndpointAction.requested_at.desc())
        .limit(1)
    )
