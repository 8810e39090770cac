"""`/api/v1/endpoints/{id}/actions`: ask the RMM to scan, update definitions or deploy an agent."""

from __future__ import annotations

from fastapi import APIRouter
from sqlalchemy import func, select

from connector.actions.schemas import ActionOut, ActionRequest
from connector.actions.service import request_action
from connector.api.deps import Engineer, ServicesDep, Session
from connector.fleet.api import _endpoint
from connector.infra.errors import FieldError
from connector.models import Connection, Problem

router = APIRouter(prefix="/api/v1", tags=["actions"])


@router.post("/endpoints/{endpoint_id}/actions", status_code=202, response_model=ActionOut)
async def post_action(
    endpoint_id: str, body: ActionRequest, session: Session, services: ServicesDep, who: Engineer
) -> ActionOut:
    row = await _endpoint(session, endpoint_id, who.tenant_id)
    if row.retired_at is not None:
        raise FieldError("endpoint_id", "the endpoint is retired (no longer in the RMM)")
    connection = await session.get(Connection, row.rmm_connection_id)
    assert connection is not None
    adapter = await services.adapters.rmm(connection)
    supported = getattr(adapter, "supported_actions", None)
    if supported is not None and body.action not in supported:
        raise FieldError(
            "action",
            f"{connection.kind} cannot run '{body.action.value}' through its API"
            + (f"; it supports: {', '.join(sorted(a.value for a in supported))}" if supported else ""),
        )
    if body.problem_id is not None:
        owned = await session.scalar(
            select(func.count())
            .select_from(Problem)
            .where(
                Problem.id == body.problem_id,
                Problem.tenant_id == who.tenant_id,
                Problem.endpoint_id == row.endpoint_id,
            )
        )
        if not owned:
            raise FieldError("problem_id", "no such problem on this endpoint")
    action = await request_action(session, row, body.action, requested_by="api", problem_id=body.problem_id)
    return ActionOut.model_validate(action, from_attributes=True)
