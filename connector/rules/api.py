"""`/api/v1/client-mappings`, `/api/v1/ticket-rules`, `/api/v1/billing-rules`: the same CRUD shape
for each, over `connector.rules.service`."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Body, Query, Response
from pydantic import BaseModel
from sqlalchemy import select

from adapters.base import Role
from connector.alerts.problems import reroute_unmapped, reroute_waiting
from connector.api.deps import Engineer, ServicesDep, Session, Viewer
from connector.api.schemas import Offset
from connector.connections.service import build_psa, build_rmm, connection_of_role
from connector.models import ClientMapping, TicketRule
from connector.rules import service as rules
from connector.rules.schemas import BillingRuleOut, ClientMappingOut, SuggestionOut, TicketRuleOut
from mappings.matching import suggest

router = APIRouter(prefix="/api/v1", tags=["mappings"])


async def _after_change(session: Any, tenant_id: str, row: Any) -> None:
    """A new or changed mapping or ticket rule may route problems that were waiting for one."""
    if isinstance(row, ClientMapping):
        queued = await reroute_unmapped(session, tenant_id, row.rmm_connection_id, row.rmm_client_id)
    elif isinstance(row, TicketRule):
        queued = await reroute_waiting(session, tenant_id)
    else:
        return
    if queued:
        session.info["wake_workers"] = True


def _register(path: str, kind: rules.RuleKind[Any], out: type[BaseModel]) -> None:
    async def list_items(
        session: Session,
        who: Viewer,
        limit: int = Query(500, ge=1, le=5000),
        offset: Offset = 0,
    ) -> list[Any]:
        rows = await rules.list_rows(kind, session, who.tenant_id, limit=limit, offset=offset)
        return [out.model_validate(row, from_attributes=True) for row in rows]

    async def create_item(session: Session, who: Engineer, body: dict[str, Any] = Body(...)) -> Any:
        row = await rules.create(kind, session, who.tenant_id, body)
        await _after_change(session, who.tenant_id, row)
        await session.refresh(row)
        return out.model_validate(row, from_attributes=True)

    async def get_item(item_id: str, session: Session, who: Viewer) -> Any:
        return out.model_validate(
            await rules.get(kind, session, who.tenant_id, item_id), from_attributes=True
        )

    async def patch_item(
        item_id: str, session: Session, who: Engineer, body: dict[str, Any] = Body(...)
    ) -> Any:
        row = await rules.update(kind, session, who.tenant_id, item_id, body)
        await _after_change(session, who.tenant_id, row)
        await session.refresh(row)
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
    rmm_row = await connection_of_role(
        session, who.tenant_id, rmm_connection_id, Role.RMM, "rmm_connection_id"
    )
    psa_row = await connection_of_role(
        session, who.tenant_id, psa_connection_id, Role.PSA, "psa_connection_id"
    )
    mapped = set(
        await session.scalars(
            select(ClientMapping.rmm_client_id).where(
                ClientMapping.tenant_id == who.tenant_id, ClientMapping.rmm_connection_id == rmm_row.id
            )
        )
    )
    rmm, psa = build_rmm(services, rmm_row), build_psa(services, psa_row)
    try:
        clients = [(c.id, c.name) async for c in rmm.list_clients() if c.id not in mapped]
        companies = [(c.id, c.name) async for c in psa.list_companies()]
    finally:
        await rmm.aclose()
        await psa.aclose()
    return [
        SuggestionOut(
            rmm_client_id=s.client_id,
            rmm_client_name=s.client_name,
            psa_company_id=s.company_id,
            psa_company_name=s.company_name,
            score=s.score,
        )
        for s in suggest(clients, companies, threshold=threshold)
    ]


_register("/client-mappings", rules.CLIENT_MAPPINGS, ClientMappingOut)
_register("/ticket-rules", rules.TICKET_RULES, TicketRuleOut)
_register("/billing-rules", rules.BILLING_RULES, BillingRuleOut)
