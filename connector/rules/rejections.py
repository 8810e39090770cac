"""Rejected client-mapping suggestions: an engineer said this RMM client is not this PSA company.

A rejection is keyed by tenant × RMM connection × RMM client × PSA connection × PSA company (a
company id is unique only within one PSA). It only takes the pair out of the suggestions: a
mapping made by hand to that company is still accepted. Rejecting is idempotent, also under
concurrent identical requests: the row is inserted with `ON CONFLICT DO NOTHING` against the unique
constraint, and only the insert that wrote it adds the audit entry."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from adapters.base import Role
from connector.audit import service as audit
from connector.audit.domain import Actor
from connector.connections.service import connection_of_role
from connector.infra import db
from connector.infra.db import scoped, tenant_rows
from connector.infra.errors import NotFound
from connector.models import MappingRejection, new_id, utcnow

SOURCE_ROLES = frozenset({Role.RMM, Role.SECURITY})


@dataclass(frozen=True)
class Rejection:
    """One suggestion to reject (the names are kept for the list of rejections)."""

    rmm_connection_id: str
    rmm_client_id: str
    psa_connection_id: str
    psa_company_id: str
    rmm_client_name: str | None = None
    psa_company_name: str | None = None


async def reject(
    session: AsyncSession, tenant_id: str, items: Sequence[Rejection], *, actor: Actor
) -> list[tuple[MappingRejection, bool]]:
    """Store each rejection (once); returns each item's row and whether this call stored it."""
    checked: set[str] = set()
    for n, item in enumerate(items):
        prefix = f"rejections.{n}." if len(items) > 1 else ""
        if item.rmm_connection_id not in checked:
            await connection_of_role(
                session, tenant_id, item.rmm_connection_id, SOURCE_ROLES, f"{prefix}rmm_connection_id"
            )
            checked.add(item.rmm_connection_id)
        if item.psa_connection_id not in checked:
            await connection_of_role(
                session, tenant_id, item.psa_connection_id, Role.PSA, f"{prefix}psa_connection_id"
            )
            checked.add(item.psa_connection_id)
    out: list[tuple[MappingRejection, bool]] = []
    for item in items:
        statement = (
            db.dialect_insert(session, MappingRejection)
            .values(
                id=new_id(),
                tenant_id=tenant_id,
                rmm_connection_id=item.rmm_connection_id,
                rmm_client_id=item.rmm_client_id,
                rmm_client_name=item.rmm_client_name,
                psa_connection_id=item.psa_connection_id,
                psa_company_id=item.psa_company_id,
                psa_company_name=item.psa_company_name,
                rejected_by=actor.api_key_id,
                created_at=utcnow(),
            )
            .on_conflict_do_nothing(
                index_elements=[
                    "tenant_id",
                    "rmm_connection_id",
                    "rmm_client_id",
                    "psa_connection_id",
                    "psa_company_id",
                ]
            )
        )
        stored = db.affected(await session.execute(statement)) == 1
        row = await _find(session, tenant_id, item)
        if stored:
            audit.record(
                session,
                tenant_id,
                "mapping_suggestion.rejected",
                actor,
                target_type="mapping_suggestion",
                target_id=row.id,
                summary=f"suggestion rejected: {_label(row)}",
                connection_id=row.rmm_connection_id,
                client_id=row.rmm_client_id,
                after=_values(row),
            )
        out.append((row, stored))
    return out


async def _find(session: AsyncSession, tenant_id: str, item: Rejection) -> MappingRejection:
    row = await session.scalar(
        tenant_rows(MappingRejection, tenant_id).where(
            MappingRejection.rmm_connection_id == item.rmm_connection_id,
            MappingRejection.rmm_client_id == item.rmm_client_id,
            MappingRejection.psa_connection_id == item.psa_connection_id,
            MappingRejection.psa_company_id == item.psa_company_id,
        )
    )
    if row is None:  # removed again by a concurrent undo between the insert and this read
        raise NotFound("mapping suggestion rejection")
    return row


def _label(row: MappingRejection) -> str:
    client = row.rmm_client_name or row.rmm_client_id
    company = row.psa_company_name or row.psa_company_id
    return f"RMM client {client!r} is not PSA company {company!r}"


def _values(row: MappingRejection) -> dict[str, str | None]:
    return {
        "rmm_client_id": row.rmm_client_id,
        "rmm_client_name": row.rmm_client_name,
        "psa_connection_id": row.psa_connection_id,
        "psa_company_id": row.psa_company_id,
        "psa_company_name": row.psa_company_name,
    }


async def list_rejections(
    session: AsyncSession,
    tenant_id: str,
    *,
    rmm_connection_id: str | None = None,
    psa_connection_id: str | None = None,
    limit: int = 500,
    offset: int = 0,
) -> list[MappingRejection]:
    query = tenant_rows(MappingRejection, tenant_id)
    if rmm_connection_id is not None:
        query = query.where(MappingRejection.rmm_connection_id == rmm_connection_id)
    if psa_connection_id is not None:
        query = query.where(MappingRejection.psa_connection_id == psa_connection_id)
    query = (
        query.order_by(MappingRejection.created_at.desc(), MappingRejection.id).limit(limit).offset(offset)
    )
    return list((await session.scalars(query)).all())


async def rejected_pairs(
    session: AsyncSession, tenant_id: str, rmm_connection_id: str, psa_connection_id: str
) -> set[tuple[str, str]]:
    """(RMM client id, PSA company id) of the rejections between two connections."""
    rows = await session.execute(
        scoped(
            select(MappingRejection.rmm_client_id, MappingRejection.psa_company_id),
            MappingRejection,
            tenant_id,
        ).where(
            MappingRejection.rmm_connection_id == rmm_connection_id,
            MappingRejection.psa_connection_id == psa_connection_id,
        )
    )
    return {(client_id, company_id) for client_id, company_id in rows}


async def undo(session: AsyncSession, tenant_id: str, rejection_id: str, *, actor: Actor) -> MappingRejection:
    """Remove a rejection: the pair may be suggested again."""
    row = await session.scalar(
        tenant_rows(MappingRejection, tenant_id).where(MappingRejection.id == rejection_id)
    )
    if row is None:
        raise NotFound("mapping suggestion rejection")
    audit.record(
        session,
        tenant_id,
        "mapping_suggestion.restored",
        actor,
        target_type="mapping_suggestion",
        target_id=row.id,
        summary=f"rejection undone: {_label(row)} may be suggested again",
        connection_id=row.rmm_connection_id,
        client_id=row.rmm_client_id,
        before=_values(row),
    )
    await session.delete(row)
    await session.flush()
    return row
