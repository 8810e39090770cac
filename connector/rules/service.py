"""Client mappings, ticket rules and billing rules: one tenant-scoped CRUD with per-kind reference
checks, so all three validate, deduplicate and isolate tenants the same way."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ValidationError
from sqlalchemy import JSON, ColumnElement, and_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from adapters.base import TICKET_RULE_FIELDS, RequiresTicketFields, Role
from adapters.errors import AdapterError
from connector.alerts.problems import reroute_unmapped, reroute_waiting
from connector.connections.service import build_psa, build_rmm, connection_of_role, validation_errors
from connector.infra.context import Services
from connector.infra.db import scoped, tenant_rows
from connector.infra.errors import FieldError, NotFound
from connector.models import BillingRule, ClientMapping, TicketRule
from mappings.matching import Suggestion, suggest
from mappings.rules import BillingRuleIn, ClientMappingIn, TicketRuleIn

RowT = TypeVar("RowT", ClientMapping, TicketRule, BillingRule)

ReferenceCheck = Callable[[AsyncSession, str, BaseModel, Services | None], Awaitable[None]]
"""Checks a rule's references (session, tenant, rule, and the services to ask a vendor with, when
the caller has them)."""

REQUIREMENTS_CHECK_SECONDS = 30.0
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RuleKind(Generic[RowT]):
    entity: str
    model: type[RowT]
    schema: type[BaseModel]
    unique_fields: tuple[str, ...]
    """The fields (besides tenant) that must be unique together; the last one is named in errors."""
    check_references: ReferenceCheck

    def duplicate_clause(self, data: BaseModel) -> ColumnElement[bool]:
        """Rows with the same unique fields as `data` (within a tenant: scope the query)."""
        clauses = []
        for name in self.unique_fields:
            column = getattr(self.model, name)
            value = getattr(data, name)
            clauses.append(column.is_(None) if value is None else column == value)
        return and_(*clauses)


async def _check_mapping(
    session: AsyncSession, tenant_id: str, data: BaseModel, _services: Services | None
) -> None:
    assert isinstance(data, ClientMappingIn)
    await connection_of_role(session, tenant_id, data.rmm_connection_id, Role.RMM, "rmm_connection_id")
    await connection_of_role(session, tenant_id, data.psa_connection_id, Role.PSA, "psa_connection_id")


async def _check_psa_rule(
    session: AsyncSession, tenant_id: str, data: BaseModel, _services: Services | None
) -> None:
    await connection_of_role(session, tenant_id, data.psa_connection_id, Role.PSA, "psa_connection_id")  # type: ignore[attr-defined]


async def _check_ticket_rule(
    session: AsyncSession, tenant_id: str, data: BaseModel, services: Services | None
) -> None:
    """The connection, and, where the PSA's tenant decides which ticket fields are required
    (`RequiresTicketFields`), that an enabled rule sets each of them. When the PSA cannot be asked
    (unreachable, refusing), the rule is saved: tickets then fail with the PSA's own error."""
    assert isinstance(data, TicketRuleIn)
    row = await connection_of_role(session, tenant_id, data.psa_connection_id, Role.PSA, "psa_connection_id")
    if services is None or not data.enabled:
        return
    try:
        adapter = await services.adapters.psa(row)
        if not isinstance(adapter, RequiresTicketFields):
            return
        required = await asyncio.wait_for(adapter.required_ticket_fields(), REQUIREMENTS_CHECK_SECONDS)
    except (AdapterError, TimeoutError) as exc:
        log.warning("required ticket fields of connection %s not read: %s", row.id, type(exc).__name__)
        return
    missing = sorted(name for name in required & TICKET_RULE_FIELDS if not getattr(data, name))
    if missing:
        raise FieldError.many(
            [
                {"field": name, "message": f"{row.name!r} requires this on every new ticket; set it"}
                for name in missing
            ]
        )


CLIENT_MAPPINGS = RuleKind(
    "client mapping", ClientMapping, ClientMappingIn, ("rmm_connection_id", "rmm_client_id"), _check_mapping
)
TICKET_RULES = RuleKind(
    "ticket rule", TicketRule, TicketRuleIn, ("psa_connection_id", "problem"), _check_ticket_rule
)
BILLING_RULES = RuleKind(
    "billing rule", BillingRule, BillingRuleIn, ("psa_connection_id", "product"), _check_psa_rule
)


def _validate(kind: RuleKind[Any], values: dict[str, Any]) -> BaseModel:
    try:
        return kind.schema.model_validate(values)
    except ValidationError as exc:
        raise FieldError.many(validation_errors("", exc)) from exc


def _row_values(kind: RuleKind[Any], row: Any) -> dict[str, Any]:
    return {name: getattr(row, name) for name in kind.schema.model_fields}


async def _save(
    kind: RuleKind[RowT],
    session: AsyncSession,
    tenant_id: str,
    row: RowT,
    data: BaseModel,
    services: Services | None,
) -> RowT:
    await kind.check_references(session, tenant_id, data, services)
    clash = await session.scalar(
        scoped(select(kind.model.id), kind.model, tenant_id).where(
            kind.duplicate_clause(data), kind.model.id != row.id
        )
    )
    if clash is not None:
        raise FieldError(
            kind.unique_fields[-1], f"a {kind.entity} for this {kind.unique_fields[-1]} already exists"
        )
    python_values, json_values = data.model_dump(), data.model_dump(mode="json")
    for name, value in python_values.items():
        is_json = isinstance(kind.model.__table__.c[name].type, JSON)
        setattr(row, name, json_values[name] if is_json else value)
    session.add(row)
    try:
        await session.flush()
    except IntegrityError as exc:  # a concurrent insert won the race
        raise FieldError(
            kind.unique_fields[-1], f"a {kind.entity} for this {kind.unique_fields[-1]} already exists"
        ) from exc
    return row


async def create(
    kind: RuleKind[RowT],
    session: AsyncSession,
    tenant_id: str,
    payload: dict[str, Any],
    services: Services | None = None,
) -> RowT:
    """A new rule; with `services`, references the vendor decides on are checked with it too."""
    data = _validate(kind, payload)
    row = await _save(kind, session, tenant_id, kind.model(tenant_id=tenant_id), data, services)
    await session.refresh(row)
    return row


async def update(
    kind: RuleKind[RowT],
    session: AsyncSession,
    tenant_id: str,
    row_id: str,
    changes: dict[str, Any],
    services: Services | None = None,
) -> RowT:
    row = await get(kind, session, tenant_id, row_id)
    data = _validate(kind, _row_values(kind, row) | changes)
    row = await _save(kind, session, tenant_id, row, data, services)
    await session.refresh(row)
    return row


async def get(kind: RuleKind[RowT], session: AsyncSession, tenant_id: str, row_id: str) -> RowT:
    row = await session.scalar(tenant_rows(kind.model, tenant_id).where(kind.model.id == row_id))
    if row is None:
        raise NotFound(kind.entity)
    return row


async def delete(kind: RuleKind[RowT], session: AsyncSession, tenant_id: str, row_id: str) -> None:
    await session.delete(await get(kind, session, tenant_id, row_id))


async def list_rows(
    kind: RuleKind[RowT],
    session: AsyncSession,
    tenant_id: str,
    *,
    filters: Sequence[ColumnElement[bool]] = (),
    limit: int = 500,
    offset: int = 0,
) -> list[RowT]:
    query = (
        tenant_rows(kind.model, tenant_id)
        .where(*filters)
        .order_by(kind.model.created_at, kind.model.id)
        .limit(limit)
        .offset(offset)
    )
    return list((await session.scalars(query)).all())


async def reroute_after_change(session: AsyncSession, tenant_id: str, row: RowT) -> None:
    """A new or changed mapping or ticket rule may route problems that were waiting for one."""
    if isinstance(row, ClientMapping):
        queued = await reroute_unmapped(session, tenant_id, row.rmm_connection_id, row.rmm_client_id)
    elif isinstance(row, TicketRule):
        queued = await reroute_waiting(session, tenant_id)
    else:
        return
    if queued:
        session.info["wake_workers"] = True


async def suggest_mappings(
    services: Services,
    session: AsyncSession,
    tenant_id: str,
    rmm_connection_id: str,
    psa_connection_id: str,
    *,
    threshold: float = 0.75,
) -> list[Suggestion]:
    """Unmapped RMM clients paired with PSA companies by name similarity, read live from both."""
    rmm_row = await connection_of_role(session, tenant_id, rmm_connection_id, Role.RMM, "rmm_connection_id")
    psa_row = await connection_of_role(session, tenant_id, psa_connection_id, Role.PSA, "psa_connection_id")
    mapped = set(
        await session.scalars(
            scoped(select(ClientMapping.rmm_client_id), ClientMapping, tenant_id).where(
                ClientMapping.rmm_connection_id == rmm_row.id
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
    return suggest(clients, companies, threshold=threshold)
