"""Connections: validated against their adapter's declared models, credentials encrypted at rest,
and turned into adapter objects (built here; kept one per connection until it changes by
`connections.adapters.AdapterCache`, see `adapters.base.Adapter`)."""

from __future__ import annotations

import asyncio
import json
import secrets
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

import httpx
from pydantic import BaseModel, SecretStr, ValidationError
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from adapters.base import (
    Adapter,
    AdapterSpec,
    ConnectionContext,
    PsaAdapter,
    RegistersWebhook,
    RmmAdapter,
    Role,
    outbound_fields,
)
from adapters.errors import AdapterError, ConfigurationError, CredentialsError, TransientVendorError
from connector.audit import service as audit
from connector.audit.domain import Actor, changed
from connector.infra.context import Services
from connector.infra.db import tenant_rows
from connector.infra.errors import FieldError, NotFound
from connector.infra.metrics import instrument_adapter, metered
from connector.infra.security.urls import UrlPolicyError
from connector.models import Connection


def validation_errors(prefix: str, exc: ValidationError) -> list[dict[str, str]]:
    """Pydantic errors → [{field, message}] without echoing the submitted values."""
    out = []
    for err in exc.errors(include_input=False, include_url=False):
        loc = ".".join(str(part) for part in err["loc"])
        field = f"{prefix}.{loc}" if prefix and loc else (loc or prefix or "body")
        out.append({"field": field, "message": err["msg"]})
    return out


def plain_values(model: BaseModel) -> dict[str, Any]:
    """A credentials model as JSON-able plain values (SecretStr unwrapped) for encryption."""
    out: dict[str, Any] = {}
    for name in type(model).model_fields:
        value = getattr(model, name)
        out[name] = value.get_secret_value() if isinstance(value, SecretStr) else value
    return out


def spec_for(services: Services, kind: str) -> AdapterSpec:
    spec = services.registry.get(kind)
    if spec is None:
        installed = ", ".join(services.registry.kinds()) or "none"
        raise FieldError("kind", f"unknown adapter kind; installed: {installed}")  # never echo input
    return spec


def check_base_url(services: Services, url: str) -> str:
    try:
        return services.url_policy.check_url(url)
    except UrlPolicyError as exc:
        raise FieldError("base_url", str(exc)) from exc


def _validate_json(model: type[BaseModel], prefix: str, values: Mapping[str, Any]) -> BaseModel:
    """Validate API input as the JSON it arrived as, strictly: a flag must be `true`/`false` and a
    count a number (lax validation would read `1` as true, `true` as 1 and `"5"` as 5)."""
    try:
        return model.model_validate_json(json.dumps(dict(values)), strict=True)
    except ValidationError as exc:
        raise FieldError.many(validation_errors(prefix, exc)) from exc


def check_outbound_fields(services: Services, model: BaseModel, prefix: str) -> BaseModel:
    """URL- and host-valued settings (marked by the adapter) under the base URL's address policy;
    returns the model with their normalized values."""
    changes: dict[str, str] = {}
    for name, kind in outbound_fields(type(model)).items():
        value = getattr(model, name)
        if not isinstance(value, str):
            continue
        try:
            if kind == "host":
                changes[name] = services.url_policy.check_host(value)
            else:
                normalized = services.url_policy.check_url(value)
                changes[name] = normalized + "/" if value.endswith("/") else normalized
        except UrlPolicyError as exc:
            raise FieldError(f"{prefix}.{name}", str(exc)) from exc
    return model.model_copy(update=changes) if changes else model


def validate_credentials(services: Services, spec: AdapterSpec, values: Mapping[str, Any]) -> BaseModel:
    model = _validate_json(spec.credentials_model, "credentials", values)
    return check_outbound_fields(services, model, "credentials")


def validate_options(services: Services, spec: AdapterSpec, values: Mapping[str, Any]) -> BaseModel:
    model = _validate_json(spec.options_model, "options", values)
    return check_outbound_fields(services, model, "options")


def credentials_set(services: Services, connection: Connection) -> dict[str, bool]:
    """Which credential fields hold a value — never the values."""
    spec = services.registry.get(connection.kind)
    stored = services.cipher.decrypt_json(connection.credentials_encrypted)
    names = list(spec.credentials_model.model_fields) if spec else list(stored)
    return {name: stored.get(name) not in (None, "") for name in names}


def new_webhook_secret() -> str:
    return secrets.token_urlsafe(32)


async def list_connections(session: AsyncSession, tenant_id: str) -> list[Connection]:
    """By name."""
    return list(await session.scalars(tenant_rows(Connection, tenant_id).order_by(Connection.name)))


async def get_connection(session: AsyncSession, tenant_id: str, connection_id: str) -> Connection:
    row = await session.scalar(tenant_rows(Connection, tenant_id).where(Connection.id == connection_id))
    if row is None:
        raise NotFound("connection")
    return row


PUSH_ROLES = frozenset({Role.RMM, Role.SECURITY})
"""Roles whose connections get a webhook secret and URL (vendors that push)."""


async def connection_of_role(
    session: AsyncSession, tenant_id: str, connection_id: str, role: Role | frozenset[Role], field: str
) -> Connection:
    """A referenced connection must exist in this tenant and have the expected role (else 422)."""
    row = await session.scalar(tenant_rows(Connection, tenant_id).where(Connection.id == connection_id))
    if row is None:
        raise FieldError(field, "no such connection")
    roles = frozenset({role}) if isinstance(role, Role) else role
    if row.role not in {r.value for r in roles}:
        expected = " or ".join(sorted(r.value for r in roles))
        raise FieldError(field, f"connection {row.name!r} is a {row.role} connection; expected {expected}")
    return row


async def create_connection(
    services: Services,
    session: AsyncSession,
    tenant_id: str,
    *,
    name: str,
    kind: str,
    base_url: str | None,
    credentials: Mapping[str, Any],
    options: Mapping[str, Any],
    enabled: bool,
    actor: Actor,
    vendor_secret: str | None = None,
) -> tuple[Connection, str | None]:
    """Returns the row and, for connections that receive webhooks, the generated webhook secret in
    plain text (shown once; None when the vendor issued it: `vendor_secret`)."""
    spec = spec_for(services, kind)
    url = base_url or spec.default_base_url
    if not url:
        raise FieldError("base_url", "required for this kind")
    url = check_base_url(services, url)
    creds = validate_credentials(services, spec, credentials)
    opts = validate_options(services, spec, options)
    if vendor_secret is not None and spec.role not in PUSH_ROLES:
        raise FieldError("webhook_secret", "only RMM and security connections receive webhooks")
    secret = new_webhook_secret() if spec.role in PUSH_ROLES and vendor_secret is None else None
    stored = vendor_secret or secret
    row = Connection(
        tenant_id=tenant_id,
        name=name,
        kind=kind,
        role=spec.role.value,
        base_url=url,
        credentials_encrypted=services.cipher.encrypt_json(plain_values(creds)),
        options=opts.model_dump(mode="json"),
        webhook_secret_encrypted=services.cipher.encrypt_text(stored) if stored else None,
        enabled=enabled,
    )
    session.add(row)
    await _flush_unique_name(session)
    await session.refresh(row)
    audit.record(
        session,
        tenant_id,
        "connection.created",
        actor,
        target_type="connection",
        target_id=row.id,
        connection_id=row.id,
        summary=f"{row.role} connection {row.name!r} ({row.kind}) created",
        after=snapshot(services, row),
    )
    return row, secret


async def update_connection(
    services: Services,
    session: AsyncSession,
    row: Connection,
    changes: Mapping[str, Any],
    actor: Actor,
) -> Connection:
    spec = spec_for(services, row.kind)
    before = snapshot(services, row)
    if "name" in changes:
        row.name = changes["name"]
    if "base_url" in changes:
        row.base_url = check_base_url(services, changes["base_url"])
    if "credentials" in changes:
        merged = services.cipher.decrypt_json(row.credentials_encrypted) | dict(changes["credentials"])
        creds = validate_credentials(services, spec, merged)
        row.credentials_encrypted = services.cipher.encrypt_json(plain_values(creds))
    if "options" in changes:
        row.options = validate_options(services, spec, changes["options"]).model_dump(mode="json")
    if "enabled" in changes:
        row.enabled = bool(changes["enabled"])
    if "webhook_secret" in changes:
        if Role(row.role) not in PUSH_ROLES:
            raise FieldError("webhook_secret", "only RMM and security connections receive webhooks")
        row.webhook_secret_encrypted = services.cipher.encrypt_text(str(changes["webhook_secret"]))
        audit.record(
            session,
            row.tenant_id,
            "connection.webhook_secret_rotated",
            actor,
            target_type="connection",
            target_id=row.id,
            connection_id=row.id,
            summary=f"webhook secret of {row.name!r} replaced by the one the vendor issued",
        )
    await _flush_unique_name(session)
    await session.refresh(row)
    old, new = changed(before, snapshot(services, row))
    if new:
        verb = {False: "disabled", True: "enabled"}.get(new["enabled"]) if list(new) == ["enabled"] else None
        audit.record(
            session,
            row.tenant_id,
            "connection.updated",
            actor,
            target_type="connection",
            target_id=row.id,
            connection_id=row.id,
            summary=f"connection {row.name!r} {verb or 'changed: ' + ', '.join(sorted(new))}",
            before=old,
            after=new,
        )
    return row


def snapshot(services: Services, row: Connection) -> dict[str, Any]:
    """The connection's settings as an audit entry shows them: credentials are redacted when the
    entry is written (kept here so a changed secret still shows up as a change)."""
    return {
        "name": row.name,
        "kind": row.kind,
        "base_url": row.base_url,
        "options": dict(row.options),
        "enabled": row.enabled,
        "credentials": services.cipher.decrypt_json(row.credentials_encrypted),
    }


async def rotate_webhook_secret(
    services: Services, session: AsyncSession, row: Connection, actor: Actor
) -> str:
    if Role(row.role) not in PUSH_ROLES:
        raise FieldError("id", "only RMM and security connections receive webhooks")
    secret = new_webhook_secret()
    row.webhook_secret_encrypted = services.cipher.encrypt_text(secret)
    audit.record(
        session,
        row.tenant_id,
        "connection.webhook_secret_rotated",
        actor,
        target_type="connection",
        target_id=row.id,
        connection_id=row.id,
        summary=f"webhook secret of {row.name!r} rotated (the old one no longer verifies)",
    )
    return secret


async def _flush_unique_name(session: AsyncSession) -> None:
    try:
        await session.flush()
    except IntegrityError as exc:
        raise FieldError("name", "a connection with this name already exists") from exc


def build_adapter(services: Services, row: Connection) -> Adapter:
    """A new adapter object for this connection, with decrypted credentials (callers that use the
    connection repeatedly go through `AdapterCache`, which keeps one per connection)."""
    spec = services.registry.get(row.kind)
    if spec is None:
        raise FieldError("kind", f"adapter kind {row.kind!r} is no longer installed")
    context = ConnectionContext(
        connection_id=row.id,
        base_url=row.base_url,
        credentials=spec.credentials_model.model_validate(
            services.cipher.decrypt_json(row.credentials_encrypted)
        ),
        options=spec.options_model.model_validate(row.options),
        transport_factory=metered(services.transport_factory, services.metrics, row.kind),
        sleep=services.adapter_sleep,
        budget=services.budgets.for_connection(row.id),
    )
    try:
        adapter = spec.factory(context)
    except httpx.InvalidURL as exc:  # stored before the address policy normalized hosts
        raise ConfigurationError("the stored URL is not valid; set it again", field="base_url") from exc
    instrument_adapter(adapter)
    return adapter


LIVE_CHECK_SECONDS = 30.0


@dataclass(frozen=True)
class LiveCheck:
    """The answer of a live credentials check: what is wrong, in the vendor's words."""

    ok: bool
    error_kind: Literal["credentials", "configuration", "vendor", "unreachable"] | None = None
    message: str | None = None


async def check_live(services: Services, row: Connection) -> LiveCheck:
    """Check the stored credentials against the vendor, within LIVE_CHECK_SECONDS."""
    return await _live(services, row, lambda adapter: adapter.test_connection())


async def register_webhook(services: Services, row: Connection, url: str) -> LiveCheck:
    """Ask the vendor to post to this connection's webhook URL with its secret (kinds whose
    adapter `RegistersWebhook`); the answer says what the vendor refused."""
    if Role(row.role) not in PUSH_ROLES:
        raise FieldError("id", "only RMM and security connections receive webhooks")
    if row.webhook_secret_encrypted is None:
        raise FieldError("id", "the connection has no webhook secret: rotate one first")
    secret = services.cipher.decrypt_text(row.webhook_secret_encrypted)

    async def register(adapter: Adapter) -> None:
        if not isinstance(adapter, RegistersWebhook):
            raise FieldError(
                "kind",
                f"{row.kind} cannot register its webhook through its API: enter the webhook URL "
                "and secret in the vendor's settings",
            )
        await adapter.register_webhook(url, secret)

    return await _live(services, row, register)


async def _live(services: Services, row: Connection, call: Callable[[Adapter], Awaitable[None]]) -> LiveCheck:
    """One vendor call on a fresh adapter within LIVE_CHECK_SECONDS, its failure as a LiveCheck."""
    try:
        adapter = build_adapter(services, row)
    except AdapterError as exc:  # e.g. a URL stored before the address policy normalized hosts
        return LiveCheck(False, "configuration", str(exc))
    try:
        await asyncio.wait_for(call(adapter), LIVE_CHECK_SECONDS)
    except CredentialsError as exc:
        return LiveCheck(False, "credentials", str(exc))
    except ConfigurationError as exc:
        return LiveCheck(False, "configuration", str(exc))
    except (TransientVendorError, TimeoutError) as exc:
        return LiveCheck(False, "unreachable", str(exc) or "timed out")
    except AdapterError as exc:
        return LiveCheck(False, "vendor", str(exc))
    finally:
        await adapter.aclose()
    return LiveCheck(True)


def build_rmm(services: Services, row: Connection) -> RmmAdapter:
    adapter = build_adapter(services, row)
    if not isinstance(adapter, RmmAdapter):
        raise FieldError("kind", f"{row.kind} is not an RMM adapter")
    return adapter


def build_psa(services: Services, row: Connection) -> PsaAdapter:
    adapter = build_adapter(services, row)
    if not isinstance(adapter, PsaAdapter):
        raise FieldError("kind", f"{row.kind} is not a PSA adapter")
    return adapter
