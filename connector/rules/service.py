"""Client mappings, ticket rules and billing rules: one tenant-scoped CRUD with per-kind reference
checks, so all three validate, deduplicate and isolate tenants the same way."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ValidationError
from sqlalchemy import JSON, ColumnElement, and_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from adapters.base import Role
from connector.connections.service import connection_of_role, validation_errors
from connector.infra.errors import FieldError, NotFound
from connector.models import BillingRule, ClientMapping, TicketRule
from mappings.rules import BillingRuleIn, ClientMappingIn, TicketRuleIn

RowT = TypeVar("RowT", ClientMapping, TicketRule, BillingRule)

ReferenceCheck = Callable[[AsyncSession, str, BaseModel], Awaitable[None]]


@dataclass(frozen=True)
class RuleKind(Generic[RowT]):
    entity: str
    model: type[RowT]
    schema: type[BaseModel]
    unique_fields: tuple[str, ...]
    """The fields (besides tenant) that must be unique together; the last one is named in errors."""
    check_references: ReferenceCheck

    def duplicate_clause(self, tenant_id: str, data: BaseModel) -> ColumnElement[bool]:
        clauses = [self.model.tenant_id == tenant_id]
        for name in self.unique_fields:
            column = getattr(self.model, name)
            value = getattr(data, name)
            clauses.append(column.is_(None) if value is None else column == value)
        return and_(*clauses)


async def _check_mapping(session: AsyncSession, tenant_id: str, data: BaseModel) -> None:
    assert isinstance(data, ClientMappingIn)
    await connection_of_role(session, tenant_id, data.rmm_connection_id, Role.RMM, "rmm_connection_id")
    await connection_of_role(session, tenant_id, data.psa_connection_id, Role.PSA, "psa_connection_id")


async def _check_psa_rule(session: AsyncSession, tenant_id: str, data: BaseModel) -> None:
    await connection_of_role(session, tenant_id, data.psa_connection_id, Role.PSA, "psa_connection_id")  # type: ignore[attr-defined]


CLIENT_MAPPINGS = RuleKind(
    "client mapping", ClientMapping, ClientMappingIn, ("rmm_connection_id", "rmm_client_id"), _check_mapping
)
TICKET_RULES = RuleKind(
    "ticket rule", TicketRule, TicketRuleIn, ("psa_connection_id", "problem"), _check_psa_rule
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
    kind: RuleKind[RowT], session: AsyncSession, tenant_id: str, row: RowT, data: BaseModel
) -> RowT:
    await kind.check_references(session, tenant_id, data)
    clash = await session.scalar(
        select(kind.model.id).where(kind.duplicate_clause(tenant_id, data), kind.model.id != row.id)
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
    kind: RuleKind[RowT], session: AsyncSession, tenant_id: str, payload: dict[str, Any]
) -> RowT:
    data = _validate(kind, payload)
    return await _save(kind, session, tenant_id, kind.model(tenant_id=tenant_id), data)


async def update(
    kind: RuleKind[RowT], session: AsyncSession, tenant_id: str, row_id: str, changes: dict[str, Any]
) -> RowT:
    row = await get(kind, session, tenant_id, row_id)
    data = _validate(kind, _row_values(kind, row) | changes)
    return await _save(kind, session, tenant_id, row, data)


async def get(kind: RuleKind[RowT], session: AsyncSession, tenant_id: str, row_id: str) -> RowT:
    row = await session.scalar(
        select(kind.model).where(kind.model.id == row_id, kind.model.tenant_id == tenant_id)
    )
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
        select(kind.model)
        .where(kind.model.tenant_id == tenant_id, *filters)
        .order_by(kind.model.created_at, kind.model.id)
        .limit(limit)
        .offset(offset)
    )
    return list((await session.scalars(query)).all())
