"""`/api/v1/endpoints/{id}/actions`: ask the RMM to scan, update definitions or deploy an agent."""

from __future__ import annotations

from fastapi import APIRouter

from connector.actions import service
from connector.actions.schemas import ActionRequest
from connector.api.deps import Engineer, ServicesDep, Session
from connector.fleet.schemas import ActionOut

router = APIRouter(prefix="/api/v1", tags=["actions"])


@router.post("/endpoints/{endpoint_id}/actions", status_code=202, response_model=ActionOut)
async def post_action(
    endpoint_id: str, body: ActionRequest, session: Session, services: ServicesDep, who: Engineer
) -> ActionOut:
    row, connection = await service.actionable_endpoint(session, who.tenant_id, endpoint_id)
    service.check_supported(services.registry.get(connection.kind), body.action)
    if body.problem_id is not None:
        await service.check_problem_on_endpoint(session, row, body.problem_id)
    action = await service.request_action(
        session, row, body.action, requested_by="api", problem_id=body.problem_id
    )
    return ActionOut.model_validate(action, from_attributes=True)
