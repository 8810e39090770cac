"""`/api/v1/client-mappings`, `/api/v1/ticket-rules`, `/api/v1/billing-rules`,
`/api/v1/deploy-rules`: the same CRUD shape for each, over `connector.rules.service`."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import APIRouter, Body, Query, Response
from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncSession

from adapters.registry import AdapterRegistry
from connector.api.deps import Engineer, ServicesDep, Session, Viewer, after_commit, configuration_changed
from connector.api.schemas import Offset
from connector.audit.domain import Actor
from connector.rules import deploy, price_overrides, rejections, removal
from connector.rules import service as rules
from connector.rules.schemas import (
    BillingRuleOut,
    ClientMappingOut,
    DependentOut,
    DeployRuleOut,
    PriceOverrideOut,
    RejectionOut,
    RejectionsIn,
    RemovalOut,
    SuggestionOut,
    TicketOutcomeOut,
    TicketRuleOut,
)

router = APIRouter(prefix="/api/v1", tags=["mappings"])

FORCE = Query(
    False,
    description="delete even though records depend on it: they are removed too and open tickets are "
    "handed over or kept, as the answer lists (without it: 409 naming the dependents)",
)
DEPENDENTS: dict[int | str, dict[str, Any]] = {
    409: {"description": "records depend on it: `dependents` lists them by kind and id, `counts` by kind"},
    200: {
        "model": RemovalOut,
        "description": "forced: what was removed with it and what became of its tickets",
    },
}
ALLOW_UNCHECKED = Query(
    False,
    description="The PSA ids are checked against the PSA (422 naming a field whose id it does not "
    "have). When the PSA cannot be read the answer is 502 and nothing is saved, unless this is true: "
    "then the row is saved with `psa_check: unchecked`.",
)


def removal_answer(done: removal.Removal) -> RemovalOut:
    return RemovalOut(
        deleted=DependentOut(kind=done.kind, id=done.id, label=""),
        removed=[DependentOut(kind=d.kind, id=d.id, label=d.label) for d in done.removed],
        tickets=[
            TicketOutcomeOut(
                problem_id=t.problem_id,
                ticket_id=t.ticket_id,
                ticket_number=t.ticket_number,
                action=t.action,
                noted=t.noted,
                error=t.error,
            )
            for t in done.tickets
        ],
    )


def answer(done: removal.Removal, force: bool) -> Response:
    """204 for a plain delete; a forced one answers 200 with what it did."""
    if not force:
        return Response(status_code=204)
    return Response(removal_answer(done).model_dump_json(), status_code=200, media_type="application/json")


@router.delete("/connections/{connection_id}", status_code=204, tags=["connections"], responses=DEPENDENTS)
async def delete_connection(
    connection_id: str, services: ServicesDep, session: Session, who: Engineer, force: bool = FORCE
) -> Response:
    """Refused with 409 while mappings, rules, billing lines or open tickets depend on the connection
    (disable it with `PATCH {"enabled": false}` to stop it without deleting anything)."""
    done = await removal.remove_connection(
        services, session, who.tenant_id, connection_id, force=force, actor=Actor.key(who.api_key_id)
    )
    after_commit(session, lambda: services.connection_changed(connection_id))
    configuration_changed(session, who, "connection", "delete", connection_id)
    return answer(done, force)


SavedCheck = Callable[[AdapterRegistry, AsyncSession, str, Any], Awaitable[None]]
"""A check of a saved row that needs the installed kinds (it runs before the commit: a refusal
rolls the write back)."""


async def _no_check(_registry: AdapterRegistry, _session: AsyncSession, _tenant: str, _row: Any) -> None:
    return None


def _register(
    path: str, kind: rules.RuleKind[Any], out: type[BaseModel], check: SavedCheck = _no_check
) -> None:
    async def list_items(
        session: Session,
        who: Viewer,
        limit: int = Query(500, ge=1, le=5000),
        offset: Offset = 0,
    ) -> list[Any]:
        rows = await rules.list_rows(kind, session, who.tenant_id, limit=limit, offset=offset)
        return [out.model_validate(row, from_attributes=True) for row in rows]

    async def create_item(
        services: ServicesDep,
        session: Session,
        who: Engineer,
        body: dict[str, Any] = Body(...),
        allow_unchecked: bool = ALLOW_UNCHECKED,
    ) -> Any:
        checking = rules.PsaChecking(services, allow_unchecked=allow_unchecked)
        actor = Actor.key(who.api_key_id)
        row = await rules.create(kind, session, who.tenant_id, body, checking, actor=actor)
        await check(services.registry, session, who.tenant_id, row)
        await rules.reroute_after_change(session, who.tenant_id, row)
        configuration_changed(session, who, kind.entity, "create", row.id, body)
        return out.model_validate(row, from_attributes=True)

    async def get_item(item_id: str, session: Session, who: Viewer) -> Any:
        return out.model_validate(
            await rules.get(kind, session, who.tenant_id, item_id), from_attributes=True
        )

    async def patch_item(
        item_id: str,
        services: ServicesDep,
        session: Session,
        who: Engineer,
        body: dict[str, Any] = Body(...),
        allow_unchecked: bool = ALLOW_UNCHECKED,
    ) -> Any:
        checking = rules.PsaChecking(services, allow_unchecked=allow_unchecked)
        actor = Actor.key(who.api_key_id)
        row = await rules.update(kind, session, who.tenant_id, item_id, body, checking, actor=actor)
        await check(services.registry, session, who.tenant_id, row)
        await rules.reroute_after_change(session, who.tenant_id, row)
        configuration_changed(session, who, kind.entity, "update", item_id, body)
        return out.model_validate(row, from_attributes=True)

    async def delete_item(item_id: str, session: Session, who: Engineer, force: bool = FORCE) -> Response:
        done = await removal.remove_rule(
            kind, session, who.tenant_id, item_id, force=force, actor=Actor.key(who.api_key_id)
        )
        configuration_changed(session, who, kind.entity, "delete", item_id)
        return answer(done, force)

    full = kind.schema.model_json_schema()
    # A PATCH merges the given fields into the stored ones (then validates the whole): none required.
    partial = {key: value for key, value in full.items() if key != "required"}
    schema_body = {"requestBody": {"required": True, "content": {"application/json": {"schema": full}}}}
    patch_body = {"requestBody": {"required": True, "content": {"application/json": {"schema": partial}}}}
    router.add_api_route(path, list_items, methods=["GET"], response_model=list[out])  # type: ignore[valid-type]
    router.add_api_route(
        path, create_item, methods=["POST"], response_model=out, status_code=201, openapi_extra=schema_body
    )
    router.add_api_route(path + "/{item_id}", get_item, methods=["GET"], response_model=out)
    router.add_api_route(
        path + "/{item_id}", patch_item, methods=["PATCH"], response_model=out, openapi_extra=patch_body
    )
    router.add_api_route(
        path + "/{item_id}", delete_item, methods=["DELETE"], status_code=204, responses=DEPENDENTS
    )


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


# -- rejected suggestions -------------------------------------------------------------------------


def rejection_out(row: Any, created: bool = False) -> RejectionOut:
    return RejectionOut.model_validate(
        {
            **{name: getattr(row, name) for name in RejectionOut.model_fields if name != "created"},
            "created": created,
        }
    )


@router.post("/mapping-suggestions/rejections", response_model=list[RejectionOut])
async def reject_suggestions(body: RejectionsIn, session: Session, who: Engineer) -> list[RejectionOut]:
    """Reject suggestions (one or many): the pair is not suggested again; a mapping to that company
    made by hand is still accepted. Rejecting again changes nothing (`created: false`)."""
    items = [rejections.Rejection(**item.model_dump()) for item in body.rejections]
    stored = await rejections.reject(session, who.tenant_id, items, actor=Actor.key(who.api_key_id))
    for row, created in stored:
        if created:
            configuration_changed(session, who, "mapping_suggestion", "reject", row.id)
    return [rejection_out(row, created) for row, created in stored]


@router.get("/mapping-suggestions/rejections", response_model=list[RejectionOut])
async def list_rejections(
    session: Session,
    who: Viewer,
    offset: Offset = 0,
    rmm_connection_id: str | None = Query(None, max_length=32),
    psa_connection_id: str | None = Query(None, max_length=32),
    limit: int = Query(500, ge=1, le=5000),
) -> list[RejectionOut]:
    """Rejected suggestions, newest first."""
    rows = await rejections.list_rejections(
        session,
        who.tenant_id,
        rmm_connection_id=rmm_connection_id,
        psa_connection_id=psa_connection_id,
        limit=limit,
        offset=offset,
    )
    return [rejection_out(row) for row in rows]


@router.delete("/mapping-suggestions/rejections/{rejection_id}", status_code=204)
async def undo_rejection(rejection_id: str, session: Session, who: Engineer) -> Response:
    """Undo a rejection: the pair may be suggested again."""
    await rejections.undo(session, who.tenant_id, rejection_id, actor=Actor.key(who.api_key_id))
    configuration_changed(session, who, "mapping_suggestion", "restore", rejection_id)
    return Response(status_code=204)


@router.get(
    "/billing-rules/{rule_id}/price-overrides", response_model=list[PriceOverrideOut], tags=["billing"]
)
async def list_price_overrides(rule_id: str, session: Session, who: Viewer) -> list[PriceOverrideOut]:
    """The companies that pay their own unit price for the rule's product."""
    rows = await price_overrides.list_overrides(session, who.tenant_id, rule_id)
    return [PriceOverrideOut.model_validate(row, from_attributes=True) for row in rows]


@router.put(
    "/billing-rules/{rule_id}/price-overrides/{company_id}",
    response_model=PriceOverrideOut,
    tags=["billing"],
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": price_overrides.PriceOverrideIn.model_json_schema()}},
        }
    },
)
async def put_price_override(
    rule_id: str, company_id: str, session: Session, who: Engineer, body: Any = Body(...)
) -> PriceOverrideOut:
    """Set the PSA company's own unit price for the rule (its lines use it from the next preview)."""
    row = await price_overrides.put_override(
        session, who.tenant_id, rule_id, company_id, body, actor=Actor.key(who.api_key_id)
    )
    configuration_changed(session, who, "billing price override", "put", row.id, ["unit_price"])
    return PriceOverrideOut.model_validate(row, from_attributes=True)


@router.delete("/billing-rules/{rule_id}/price-overrides/{company_id}", status_code=204, tags=["billing"])
async def delete_price_override(rule_id: str, company_id: str, session: Session, who: Engineer) -> Response:
    """The company pays the rule's price again."""
    await price_overrides.delete_override(
        session, who.tenant_id, rule_id, company_id, actor=Actor.key(who.api_key_id)
    )
    configuration_changed(session, who, "billing price override", "delete", f"{rule_id}/{company_id}")
    return Response(status_code=204)


_register("/client-mappings", rules.CLIENT_MAPPINGS, ClientMappingOut)
_register("/ticket-rules", rules.TICKET_RULES, TicketRuleOut)
_register("/billing-rules", rules.BILLING_RULES, BillingRuleOut)
_register("/deploy-rules", rules.DEPLOY_RULES, DeployRuleOut, deploy.check_rule_supported)
