"""Client mappings, ticket rules, billing rules and deploy rules: one tenant-scoped CRUD with per-kind
reference checks, so all of them validate, deduplicate and isolate tenants the same way."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ValidationError
from sqlalchemy import JSON, ColumnElement, and_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from adapters.base import (
    TICKET_RULE_FIELDS,
    CatalogKind,
    PsaOption,
    RequiresTicketFields,
    RmmAdapter,
    RmmClient,
    Role,
    SecurityAdapter,
    SecurityCustomer,
)
from adapters.errors import AdapterError
from connector.alerts.problems import reroute_unmapped, reroute_waiting
from connector.audit import service as audit
from connector.audit.domain import Actor, changed
from connector.connections.catalog import read_catalog
from connector.connections.service import build_adapter, build_psa, connection_of_role, validation_errors
from connector.infra.context import Services
from connector.infra.db import scoped, tenant_rows
from connector.infra.errors import FieldError, NotFound, VendorUnavailable
from connector.models import BillingRule, ClientMapping, Connection, DeployRule, TicketRule
from connector.rules.rejections import rejected_pairs
from connector.statuses import PsaCheck
from mappings.matching import Suggestion, suggest
from mappings.rules import BillingRuleIn, ClientMappingIn, DeployRuleIn, TicketRuleIn

RowT = TypeVar("RowT", ClientMapping, TicketRule, BillingRule, DeployRule)

ReferenceCheck = Callable[[AsyncSession, str, BaseModel, Services | None], Awaitable[None]]
"""Checks a rule's references (session, tenant, rule, and the services to ask a vendor with, when
the caller has them)."""

REQUIREMENTS_CHECK_SECONDS = 30.0
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PsaRef:
    """One id a mapping or rule names in its PSA, and the look-up it must be found in."""

    field: str
    kind: CatalogKind
    value: str
    by_name: bool = False
    """Matched against the names, case-insensitively (agreement types), not the ids."""
    board: str | None = None
    """For statuses and ticket types: the board they must belong to where the PSA keeps them per
    board (options without a parent belong to every board)."""

    def found_in(self, options: Sequence[PsaOption]) -> bool:
        wanted = self.value.casefold()
        for option in options:
            if (option.name if self.by_name else option.id).casefold() != wanted:
                continue
            if self.board is None or option.parent_id is None or option.parent_id == self.board:
                return True
        return False


def _mapping_refs(data: BaseModel) -> list[PsaRef]:
    assert isinstance(data, ClientMappingIn)
    return [PsaRef("psa_company_id", CatalogKind.COMPANIES, data.psa_company_id)]


def _ticket_rule_refs(data: BaseModel) -> list[PsaRef]:
    assert isinstance(data, TicketRuleIn)
    board = data.board_id
    refs = [PsaRef("board_id", CatalogKind.BOARDS, board)]
    optional = [
        ("type_id", CatalogKind.TICKET_TYPES, data.type_id, board),
        ("priority_id", CatalogKind.PRIORITIES, data.priority_id, None),
        ("status_new_id", CatalogKind.STATUSES, data.status_new_id, board),
        ("status_closed_id", CatalogKind.STATUSES, data.status_closed_id, board),
    ]
    refs += [PsaRef(f, kind, value, board=parent) for f, kind, value, parent in optional if value]
    return refs


def _billing_rule_refs(data: BaseModel) -> list[PsaRef]:
    assert isinstance(data, BillingRuleIn)
    refs = [PsaRef("psa_product_id", CatalogKind.PRODUCTS, data.psa_product_id)]
    if data.agreement_type:
        refs.append(PsaRef("agreement_type", CatalogKind.AGREEMENT_TYPES, data.agreement_type, by_name=True))
    return refs


async def check_psa_ids(services: Services, row: Connection, refs: Sequence[PsaRef]) -> None:
    """Every id must exist in the PSA (422 naming each field that does not); `VendorUnavailable`
    when the PSA cannot be read. A look-up is taken from the brief cache, and read again when an
    id is missing from it (it may have been added in the PSA just now)."""
    missing: list[dict[str, str]] = []
    for kind in dict.fromkeys(ref.kind for ref in refs):
        wanted = [ref for ref in refs if ref.kind is kind]
        if any(m["field"] == "board_id" for m in missing):  # nothing belongs to a missing board
            wanted = [ref for ref in wanted if ref.board is None]
        if not wanted:
            continue
        catalog = await read_catalog(services, row, kind)
        if catalog.cached and not all(ref.found_in(catalog.items) for ref in wanted):
            catalog = await read_catalog(services, row, kind, refresh=True)
        what = "name" if wanted[0].by_name else "id"
        missing += [
            {
                "field": ref.field,
                "message": f"no {kind.value.replace('-', ' ')} with this {what} in PSA connection "
                f"{row.name!r}"
                + (" for this board" if ref.board is not None else "")
                + f" (GET /api/v1/connections/{row.id}/catalog/{kind.value} lists them)",
            }
            for ref in wanted
            if not ref.found_in(catalog.items)
        ]
    if missing:
        raise FieldError.many(missing)


@dataclass(frozen=True)
class RuleKind(Generic[RowT]):
    entity: str
    model: type[RowT]
    schema: type[BaseModel]
    unique_fields: tuple[str, ...]
    """The fields (besides tenant) that must be unique together; the last one is named in errors."""
    check_references: ReferenceCheck
    psa_refs: Callable[[BaseModel], list[PsaRef]] | None
    """The ids the row names in its PSA connection (`psa_connection_id`), checked on every save
    that is given a `PsaChecking`; None for a kind without a PSA side (deploy rules)."""

    @property
    def name(self) -> str:
        """As audit kinds and dependents name it: `client_mapping`, `ticket_rule`, `billing_rule`."""
        return self.entity.replace(" ", "_")

    def duplicate_clause(self, data: BaseModel) -> ColumnElement[bool]:
        """Rows with the same unique fields as `data` (within a tenant: scope the query)."""
        clauses = []
        for name in self.unique_fields:
            column = getattr(self.model, name)
            value = getattr(data, name)
            clauses.append(column.is_(None) if value is None else column == value)
        return and_(*clauses)


SOURCE_ROLES = frozenset({Role.RMM, Role.SECURITY})
"""What a client mapping maps to a PSA company: an RMM's client or a security console's customer."""


async def _check_mapping(
    session: AsyncSession, tenant_id: str, data: BaseModel, _services: Services | None
) -> None:
    assert isinstance(data, ClientMappingIn)
    await connection_of_role(session, tenant_id, data.rmm_connection_id, SOURCE_ROLES, "rmm_connection_id")
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
    "client mapping",
    ClientMapping,
    ClientMappingIn,
    ("rmm_connection_id", "rmm_client_id"),
    _check_mapping,
    _mapping_refs,
)
TICKET_RULES = RuleKind(
    "ticket rule",
    TicketRule,
    TicketRuleIn,
    ("psa_connection_id", "problem"),
    _check_ticket_rule,
    _ticket_rule_refs,
)
BILLING_RULES = RuleKind(
    "billing rule",
    BillingRule,
    BillingRuleIn,
    ("psa_connection_id", "device_category", "product"),
    _check_psa_rule,
    _billing_rule_refs,
)


async def _check_rmm_rule(
    session: AsyncSession, tenant_id: str, data: BaseModel, _services: Services | None
) -> None:
    await connection_of_role(session, tenant_id, data.rmm_connection_id, Role.RMM, "rmm_connection_id")  # type: ignore[attr-defined]


DEPLOY_RULES = RuleKind(
    "deploy rule", DeployRule, DeployRuleIn, ("rmm_connection_id",), _check_rmm_rule, None
)


@dataclass(frozen=True)
class PsaChecking:
    """How a save checks the PSA ids: `services` reads the PSA; `allow_unchecked` stores the row
    marked `unchecked` when the PSA cannot be read (instead of answering 502)."""

    services: Services
    allow_unchecked: bool = False


async def _psa_check(
    kind: RuleKind[Any], session: AsyncSession, tenant_id: str, data: BaseModel, checking: PsaChecking
) -> PsaCheck:
    connection_id: str = data.psa_connection_id  # type: ignore[attr-defined]
    row = await connection_of_role(session, tenant_id, connection_id, Role.PSA, "psa_connection_id")
    try:
        await check_psa_ids(checking.services, row, kind.psa_refs(data) if kind.psa_refs else [])
    except VendorUnavailable as exc:
        if not checking.allow_unchecked:
            raise VendorUnavailable(
                f"{exc}; nothing was saved. Retry, or pass allow_unchecked=true to save the "
                f"{kind.entity} marked psa_check=unchecked",
                field="psa_connection_id",
            ) from exc
        return PsaCheck.UNCHECKED
    return PsaCheck.CHECKED


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
    checking: PsaChecking | None,
) -> RowT:
    await kind.check_references(session, tenant_id, data, checking.services if checking else None)
    clash = await session.scalar(
        scoped(select(kind.model.id), kind.model, tenant_id).where(
            kind.duplicate_clause(data), kind.model.id != row.id
        )
    )
    if clash is not None:
        raise FieldError(
            kind.unique_fields[-1], f"a {kind.entity} for this {kind.unique_fields[-1]} already exists"
        )
    if checking is not None and isinstance(row, (ClientMapping, TicketRule, BillingRule)):
        row.psa_check = await _psa_check(kind, session, tenant_id, data, checking)
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
    checking: PsaChecking | None = None,
    *,
    actor: Actor,
) -> RowT:
    """A new rule; with `checking`, the ids it names in its PSA and the fields the PSA requires are
    checked with the PSA too."""
    data = _validate(kind, payload)
    row = await _save(kind, session, tenant_id, kind.model(tenant_id=tenant_id), data, checking)
    await session.refresh(row)
    _audit(kind, session, row, "created", actor, None, _row_values(kind, row))
    return row


async def update(
    kind: RuleKind[RowT],
    session: AsyncSession,
    tenant_id: str,
    row_id: str,
    changes: dict[str, Any],
    checking: PsaChecking | None = None,
    *,
    actor: Actor,
) -> RowT:
    row = await get(kind, session, tenant_id, row_id)
    before = _row_values(kind, row)
    data = _validate(kind, before | changes)
    row = await _save(kind, session, tenant_id, row, data, checking)
    await session.refresh(row)
    old, new = changed(before, _row_values(kind, row))
    if new:
        _audit(kind, session, row, "updated", actor, old, new)
    return row


def _audit(
    kind: RuleKind[Any],
    session: AsyncSession,
    row: Any,
    verb: str,
    actor: Actor,
    before: dict[str, Any] | None,
    after: dict[str, Any] | None,
) -> None:
    audit.record_config(
        session,
        row.tenant_id,
        kind.name,
        verb,
        actor,
        target_id=row.id,
        label=kind.entity,
        before=before,
        after=after,
        connection_id=getattr(row, "psa_connection_id", None),
        client_id=getattr(row, "rmm_client_id", None),
    )


def snapshot(kind: RuleKind[Any], row: Any) -> dict[str, Any]:
    return _row_values(kind, row)


async def get(kind: RuleKind[RowT], session: AsyncSession, tenant_id: str, row_id: str) -> RowT:
    row = await session.scalar(tenant_rows(kind.model, tenant_id).where(kind.model.id == row_id))
    if row is None:
        raise NotFound(kind.entity)
    return row


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
    """Unmapped RMM clients paired with PSA companies (the RMM's own links first, then by name
    similarity), read live from both; pairs an engineer rejected are left out."""
    rmm_row = await connection_of_role(
        session, tenant_id, rmm_connection_id, SOURCE_ROLES, "rmm_connection_id"
    )
    psa_row = await connection_of_role(session, tenant_id, psa_connection_id, Role.PSA, "psa_connection_id")
    mapped = set(
        await session.scalars(
            scoped(select(ClientMapping.rmm_client_id), ClientMapping, tenant_id).where(
                ClientMapping.rmm_connection_id == rmm_row.id
            )
        )
    )
    source, psa = build_adapter(services, rmm_row), build_psa(services, psa_row)
    try:
        assert isinstance(source, RmmAdapter | SecurityAdapter), rmm_row.kind
        listed = source.list_customers() if isinstance(source, SecurityAdapter) else source.list_clients()
        unmapped: list[RmmClient | SecurityCustomer] = [c async for c in listed if c.id not in mapped]
        companies = [(c.id, c.name) async for c in psa.list_companies()]
    finally:
        await source.aclose()
        await psa.aclose()
    clients = [(c.id, c.name) for c in unmapped]
    linked = {c.id: c.psa_company_ids[psa_row.kind] for c in unmapped if psa_row.kind in c.psa_company_ids}
    rejected = await rejected_pairs(session, tenant_id, rmm_row.id, psa_row.id)
    return await run_suggest(clients, companies, threshold=threshold, linked=linked, rejected=rejected)


async def run_suggest(
    clients: list[tuple[str, str]],
    companies: list[tuple[str, str]],
    *,
    threshold: float,
    linked: Mapping[str, str] | None = None,
    rejected: Collection[tuple[str, str]] = (),
) -> list[Suggestion]:
    """`suggest` in a worker thread: CPU-bound (a million name comparisons for 1,000 × 1,000), so
    it runs off the event loop, and webhooks, the API and the worker of this process go on."""
    return await asyncio.to_thread(
        suggest, clients, companies, threshold=threshold, linked=linked, rejected=rejected
    )
