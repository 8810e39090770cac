"""`/api/v1/connections` and `/api/v1/adapters`. Deleting a connection is routed in `rules.api`: it
must know what depends on a connection (mappings, rules, billing lines, open tickets)."""

from __future__ import annotations

from fastapi import APIRouter, Query

from adapters.base import CatalogKind, Role
from connector.api.deps import Engineer, ServicesDep, Session, Viewer, after_commit, configuration_changed
from connector.audit.domain import Actor
from connector.connections import service as svc
from connector.connections.catalog import read_catalog
from connector.connections.schemas import (
    AdapterOut,
    CatalogItemOut,
    CatalogOut,
    ConnectionCreated,
    ConnectionIn,
    ConnectionOut,
    ConnectionPatch,
    ConnectionTestOut,
    WebhookSecretOut,
)
from connector.infra.context import Services
from connector.infra.errors import FieldError
from connector.models import Connection

router = APIRouter(prefix="/api/v1", tags=["connections"])


def webhook_url(services: Services, row: Connection) -> str | None:
    if row.role not in ("rmm", "security"):
        return None
    return f"{services.settings.resolved_public_url()}/webhooks/{row.id}"


def to_out(services: Services, row: Connection) -> ConnectionOut:
    return ConnectionOut(
        id=row.id,
        name=row.name,
        kind=row.kind,
        role=row.role,
        base_url=row.base_url,
        options=row.options,
        enabled=row.enabled,
        credentials_set=svc.credentials_set(services, row),
        webhook_url=webhook_url(services, row),
        webhook_secret_set=row.webhook_secret_encrypted is not None,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


@router.get("/adapters", response_model=list[AdapterOut])
async def list_adapters(services: ServicesDep, _: Viewer) -> list[AdapterOut]:
    return [
        AdapterOut(
            kind=spec.kind,
            role=spec.role.value,
            title=spec.title,
            webhook_scheme=spec.webhook_scheme,
            default_base_url=spec.default_base_url,
            credentials_schema=spec.credentials_schema(),
            options_schema=spec.options_schema(),
            actions=sorted(spec.actions),
        )
        for spec in services.registry.all()
    ]


@router.get("/connections", response_model=list[ConnectionOut])
async def list_connections(services: ServicesDep, session: Session, who: Viewer) -> list[ConnectionOut]:
    return [to_out(services, row) for row in await svc.list_connections(session, who.tenant_id)]


@router.post("/connections", response_model=ConnectionCreated, status_code=201)
async def create_connection(
    body: ConnectionIn, services: ServicesDep, session: Session, who: Engineer
) -> ConnectionCreated:
    row, secret = await svc.create_connection(
        services,
        session,
        who.tenant_id,
        name=body.name,
        kind=body.kind,
        base_url=body.base_url,
        credentials=body.credentials,
        options=body.options,
        enabled=body.enabled,
        actor=Actor.key(who.api_key_id),
        vendor_secret=body.webhook_secret.get_secret_value() if body.webhook_secret else None,
    )
    configuration_changed(session, who, "connection", "create", row.id, body.model_fields_set)
    return ConnectionCreated(**to_out(services, row).model_dump(), webhook_secret=secret)


@router.get("/connections/{connection_id}", response_model=ConnectionOut)
async def get_connection(
    connection_id: str, services: ServicesDep, session: Session, who: Viewer
) -> ConnectionOut:
    return to_out(services, await svc.get_connection(session, who.tenant_id, connection_id))


@router.patch("/connections/{connection_id}", response_model=ConnectionOut)
async def patch_connection(
    connection_id: str, body: ConnectionPatch, services: ServicesDep, session: Session, who: Engineer
) -> ConnectionOut:
    row = await svc.get_connection(session, who.tenant_id, connection_id)
    changes = body.model_dump(exclude_unset=True, exclude_none=True)
    if body.webhook_secret is not None:
        changes["webhook_secret"] = body.webhook_secret.get_secret_value()
    await svc.update_connection(services, session, row, changes, Actor.key(who.api_key_id))
    after_commit(session, lambda: services.connection_changed(connection_id))
    configuration_changed(session, who, "connection", "update", connection_id, changes)
    return to_out(services, row)


@router.post("/connections/{connection_id}/webhook-secret", response_model=WebhookSecretOut)
async def rotate_webhook_secret(
    connection_id: str, services: ServicesDep, session: Session, who: Engineer
) -> WebhookSecretOut:
    row = await svc.get_connection(session, who.tenant_id, connection_id)
    secret = await svc.rotate_webhook_secret(services, session, row, Actor.key(who.api_key_id))
    after_commit(session, lambda: services.connection_changed(connection_id))
    configuration_changed(session, who, "connection", "rotate_webhook_secret", connection_id)
    return WebhookSecretOut(webhook_url=webhook_url(services, row) or "", webhook_secret=secret)


@router.post("/connections/{connection_id}/register-webhook", response_model=ConnectionTestOut)
async def register_webhook(
    connection_id: str, services: ServicesDep, session: Session, who: Engineer
) -> ConnectionTestOut:
    """Registers the connection's webhook URL and secret with the vendor (RMM kinds whose API
    can, such as NinjaOne); a kind that cannot is a 422 naming `kind`."""
    row = await svc.get_connection(session, who.tenant_id, connection_id)
    url = webhook_url(services, row)
    if url is None:
        raise FieldError("id", "only RMM connections receive webhooks")
    check = await svc.register_webhook(services, row, url)
    return ConnectionTestOut(ok=check.ok, error_kind=check.error_kind, message=check.message)


@router.post("/connections/{connection_id}/test", response_model=ConnectionTestOut)
async def test_connection(
    connection_id: str, services: ServicesDep, session: Session, who: Engineer
) -> ConnectionTestOut:
    """Checks the stored credentials live against the vendor; the answer says what is wrong."""
    row = await svc.get_connection(session, who.tenant_id, connection_id)
    check = await svc.check_live(services, row)
    return ConnectionTestOut(ok=check.ok, error_kind=check.error_kind, message=check.message)


@router.get("/connections/{connection_id}/catalog/{kind}", response_model=CatalogOut)
async def connection_catalog(
    connection_id: str,
    kind: CatalogKind,
    services: ServicesDep,
    session: Session,
    who: Viewer,
    refresh: bool = Query(False, description="read the PSA again instead of the copy kept briefly"),
) -> CatalogOut:
    """The ids a PSA connection offers for rules and mappings, read from the PSA (kept up to a
    minute per process); 502 `psa_unavailable` when the PSA cannot be read."""
    row = await svc.get_connection(session, who.tenant_id, connection_id)
    if row.role != Role.PSA.value:
        raise FieldError("connection_id", f"connection {row.name!r} is a {row.role} connection; expected psa")
    catalog = await read_catalog(services, row, kind, refresh=refresh)
    return CatalogOut(
        connection_id=row.id,
        kind=kind.value,
        fetched_at=catalog.fetched_at,
        cached=catalog.cached,
        items=[CatalogItemOut(**item.model_dump()) for item in catalog.items],
    )
