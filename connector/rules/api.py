"""`/api/v1/client-mappings`, `/api/v1/ticket-rules`, `/api/v1/billing-rules`: the same CRUD shape
for each, over `connector.rules.service`."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Body, Query, Response
from pydantic import BaseModel

from connector.api.deps import Engineer, ServicesDep, Session, Viewer
from connector.api.schemas import Offset
from connector.rules import service as rules
from connector.rules.schemas import BillingRuleOut, ClientMappingOut, SuggestionOut, TicketRuleOut

router = APIRouter(prefix="/api/v1", tags=["mappings"])


def _register(path: str, kind: rules.RuleKind[Any], out: type[BaseModel]) -> None:
    async def list_items(
        session: Session,
        who: Viewer,
        limit: int = Query(500, ge=1, le=5000),
        offset: Offset = 0,
    ) -> list[Any]:
        rows = await rules.list_rows(kind, session, who.tenant_id, limit=limit, offset=offset)
        return [out.model_validate(row, from_attributes=True) for row in rows]

    async def create_item(
        services: ServicesDep, session: Session, who: Engineer, body: dict[str, Any] = Body(...)
    ) -> Any:
        row = await rules.create(kind, session, who.tenant_id, body, services)
        await rules.reroute_after_change(session, who.tenant_id, row)
        return out.model_validate(row, from_attributes=True)

    async def get_item(item_id: str, session: Session, who: Viewer) -> Any:
        return out.model_validate(
            await rules.get(kind, session, who.tenant_id, item_id), from_attributes=True
        )

    async def patch_item(
        item_id: str, services: ServicesDep, session: Session, who: Engineer, body: dict[str, Any] = Body(...)
    ) -> Any:
        row = await rules.update(kind, session, who.tenant_id, item_id, body, services)
        await rules.reroute_after_change(session, who.tenant_id, row)
        return out.model_validate(row, from_attributes=True)

    async def delete_item(item_id: str, session: Session, who: Engineer) -> Response:
        await rules.delete(kind, session, who.tenant_id, item_id)
        return Response(status_code=204)

    schema_body = {
        "requestBody": {"content": {"application/json": {"schema": kind.schema.model_json_schema()}}}
    }
    router.add_api_route(path, list_items, methods=["GET"], response_model=list[out])  # type: ignore[valid-type]
    router.add_api_route(
        path, create_item, methods=["POST"], response_model=out, status_code=201, openapi_extra=schema_body
    )
    router.add_api_route(path + "/{item_id}", get_item, methods=["GET"], response_model=out)
    router.add_api_route(
        path + "/{item_id}", patch_item, methods=["PATCH"], response_model=out, openapi_extra=schema_body
    )
    router.add_api_route(path + "/{item_id}", delete_item, methods=["DELETE"], status_code=204)


@router.get("/client-mappings/suggestions", response_model=list[SuggestionOut])
async def mapping_suggestions(
    services: ServicesDep,
    session: Session,
    who: Viewer,
    rmm_connection_id: str,
    psa_connection_id: str,
    threshold: float = Query(0.75, ge=0.0, le=1.0),
) -> list[SuggestionOut]:
    """Unmapped RMM clients paired with PSA companies by name similarity, read live from both."""
    suggestions = await rules.suggest_mappings(
        services, session, who.tenant_id, rmm_connection_id, psa_connection_id, threshold=threshold
    )
    return [SuggestionOut.of(s) for s in suggestions]


_register("/client-mappings", rules.CLIENT_MAPPINGS, ClientMappingOut)
_register("/ticket-rules", rules.TICKET_RULES, TicketRuleOut)
_register("/billing-rules", rules.BILLING_RULES, BillingRuleOut)
