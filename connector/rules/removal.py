"""Removing configuration without losing work: what depends on a connection, mapping or rule, the
409 that names it, and what a forced removal does with the open tickets.

Deleting is refused while records depend on the row (`Dependents` → 409 listing them by kind and
id) unless the caller forces it. A forced removal of a connection hands its open tickets over: each
gets a note saying the connector no longer manages it (a PSA connection's tickets cannot be written
to after it is gone, an RMM connection's problems will never clear), and the problem keeps its
ticket link as `handed_over`. Tickets are not closed: the problem may still be real, and closing
a ticket tells the customer it is resolved. A mapping or ticket rule does not own tickets (a link
carries its own PSA connection and company), so a forced removal keeps managing them to closure.
Everything done is in the answer and the audit trail."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from adapters.errors import AdapterError
from connector.alerts.domain import handover_note
from connector.audit import service as audit
from connector.audit.domain import Actor
from connector.connections.service import get_connection, snapshot
from connector.infra.context import Services
from connector.infra.db import scoped, tenant_rows
from connector.infra.errors import Conflict
from connector.models import (
    BillingLineState,
    BillingRule,
    ClientMapping,
    Connection,
    DeployRule,
    Problem,
    TicketLink,
    TicketRule,
    UsageProfile,
)
from connector.rules.service import RuleKind, get
from connector.rules.service import snapshot as rule_snapshot
from connector.statuses import ProblemStatus, TicketState

LIVE = (TicketState.OPEN, TicketState.PENDING)
LISTED_PER_KIND = 200
"""Dependents named per kind in a 409 (the counts are always complete)."""


@dataclass(frozen=True)
class Dependent:
    kind: str
    """client_mapping | ticket_rule | billing_rule | billing_line | usage_profile | open_ticket"""
    id: str
    label: str


@dataclass(frozen=True)
class TicketOutcome:
    problem_id: str
    ticket_id: str | None
    ticket_number: str | None
    action: Literal["handed_over", "kept"]
    noted: bool = False
    error: str | None = None


@dataclass
class Removal:
    kind: str
    id: str
    removed: list[Dependent] = field(default_factory=list)
    tickets: list[TicketOutcome] = field(default_factory=list)


def _conflict(entity: str, dependents: Sequence[Dependent]) -> Conflict:
    counts: dict[str, int] = {}
    for dep in dependents:
        counts[dep.kind] = counts.get(dep.kind, 0) + 1
    listed: list[dict[str, str]] = []
    shown: dict[str, int] = {}
    for dep in dependents:
        shown[dep.kind] = shown.get(dep.kind, 0) + 1
        if shown[dep.kind] <= LISTED_PER_KIND:
            listed.append({"kind": dep.kind, "id": dep.id, "label": dep.label})
    summary = ", ".join(f"{n} {kind.replace('_', ' ')}(s)" for kind, n in counts.items())
    return Conflict(
        f"the {entity} has dependents ({summary}); remove them first, disable it instead, "
        "or delete with ?force=true (open tickets are handed over or kept, as the answer says)",
        details={"dependents": listed, "counts": counts},
    )


# -- what depends on what -----------------------------------------------------------------------


async def _live_links(session: AsyncSession, tenant_id: str, *where: Any) -> list[tuple[TicketLink, Problem]]:
    rows = await session.execute(
        scoped(select(TicketLink, Problem), TicketLink, tenant_id)
        .join(Problem, Problem.id == TicketLink.problem_id)
        .where(TicketLink.state.in_(LIVE), Problem.state == ProblemStatus.OPEN, *where)
        .order_by(TicketLink.created_at, TicketLink.id)
    )
    return [(link, problem) for link, problem in rows]


def _ticket(link: TicketLink, problem: Problem) -> Dependent:
    number = link.ticket_number or link.ticket_id or f"pending, marker {link.marker}"
    return Dependent(
        "open_ticket", problem.id, f"ticket {number}: {problem.kind} on {problem.hostname or ''}"
    )


async def connection_dependents(
    session: AsyncSession, row: Connection
) -> tuple[list[Dependent], list[tuple[TicketLink, Problem]]]:
    tenant_id = row.tenant_id
    out: list[Dependent] = []
    mapping_side = ClientMapping.psa_connection_id if row.role == "psa" else ClientMapping.rmm_connection_id
    for mapping in await session.scalars(
        tenant_rows(ClientMapping, tenant_id).where(mapping_side == row.id).order_by(ClientMapping.created_at)
    ):
        client = mapping.rmm_client_name or mapping.rmm_client_id
        label = f"{client} → {mapping.psa_company_name or mapping.psa_company_id}"
        out.append(Dependent("client_mapping", mapping.id, label))
    if row.role == "psa":
        for rule in await session.scalars(
            tenant_rows(TicketRule, tenant_id).where(TicketRule.psa_connection_id == row.id)
        ):
            out.append(Dependent("ticket_rule", rule.id, rule.problem or "default"))
        billing = list(
            await session.scalars(
                tenant_rows(BillingRule, tenant_id).where(BillingRule.psa_connection_id == row.id)
            )
        )
        out += [Dependent("billing_rule", rule.id, rule.product) for rule in billing]
        out += await _billing_lines(session, tenant_id, [rule.id for rule in billing])
        for profile in await session.scalars(  # removed with the connection, its uploads with it
            tenant_rows(UsageProfile, tenant_id).where(UsageProfile.psa_connection_id == row.id)
        ):
            out.append(Dependent("usage_profile", profile.id, profile.name))
        links = await _live_links(session, tenant_id, TicketLink.psa_connection_id == row.id)
    else:
        for deploy_rule in await session.scalars(
            tenant_rows(DeployRule, tenant_id).where(DeployRule.rmm_connection_id == row.id)
        ):
            out.append(Dependent("deploy_rule", deploy_rule.id, f"every {deploy_rule.interval_minutes} min"))
        links = await _live_links(session, tenant_id, Problem.rmm_connection_id == row.id)
    out += [_ticket(link, problem) for link, problem in links]
    return out, links


async def _billing_lines(session: AsyncSession, tenant_id: str, rule_ids: list[str]) -> list[Dependent]:
    if not rule_ids:
        return []
    states = await session.scalars(
        tenant_rows(BillingLineState, tenant_id).where(BillingLineState.rule_id.in_(rule_ids))
    )
    return [
        Dependent("billing_line", s.id, f"company {s.company_id}, line {s.line_id or '?'} ({s.quantity})")
        for s in states
    ]


async def rule_dependents(kind: RuleKind[Any], session: AsyncSession, row: Any) -> list[Dependent]:
    tenant_id = row.tenant_id
    if isinstance(row, ClientMapping):
        links = await _live_links(
            session,
            tenant_id,
            Problem.rmm_connection_id == row.rmm_connection_id,
            Problem.client_id == row.rmm_client_id,
            TicketLink.psa_connection_id == row.psa_connection_id,
        )
        return [_ticket(link, problem) for link, problem in links]
    if isinstance(row, TicketRule):
        covered = [Problem.kind == row.problem] if row.problem is not None else []
        if row.problem is None:  # the default rule: the kinds no specific rule of its PSA covers
            specific = select(TicketRule.problem).where(
                TicketRule.psa_connection_id == row.psa_connection_id, TicketRule.problem.is_not(None)
            )
            covered = [Problem.kind.not_in(specific)]
        links = await _live_links(
            session, tenant_id, TicketLink.psa_connection_id == row.psa_connection_id, *covered
        )
        return [_ticket(link, problem) for link, problem in links]
    if isinstance(row, BillingRule):
        return await _billing_lines(session, tenant_id, [row.id])
    return []  # a deploy rule: nothing depends on it (its deployments are history)


# -- removing -------------------------------------------------------------------------------------


async def remove_connection(
    services: Services,
    session: AsyncSession,
    tenant_id: str,
    connection_id: str,
    *,
    force: bool,
    actor: Actor,
) -> Removal:
    row = await get_connection(session, tenant_id, connection_id)
    dependents, links = await connection_dependents(session, row)
    if dependents and not force:
        raise _conflict(f"{row.role} connection {row.name!r}", dependents)
    removal = Removal("connection", row.id, removed=[d for d in dependents if d.kind != "open_ticket"])
    if links:
        reason = f"its {row.role.upper()} connection {row.name!r} was removed from connector"
        removal.tickets = await _hand_over(services, session, row, links, reason, actor)
    audit.record(
        session,
        tenant_id,
        "connection.deleted",
        actor,
        target_type="connection",
        target_id=row.id,
        connection_id=row.id,
        summary=f"{row.role} connection {row.name!r} deleted"
        + (f" with {len(dependents)} dependent(s) (forced)" if dependents else ""),
        before=snapshot(services, row),
        after={
            "removed": [{"kind": d.kind, "id": d.id} for d in removal.removed],
            "tickets_handed_over": [t.problem_id for t in removal.tickets],
        },
    )
    await session.delete(row)
    await session.flush()
    return removal


async def _hand_over(
    services: Services,
    session: AsyncSession,
    row: Connection,
    links: list[tuple[TicketLink, Problem]],
    reason: str,
    actor: Actor,
) -> list[TicketOutcome]:
    """Leave a note on every open ticket, then mark its link handed over (in this transaction, with
    its audit entry). A note the PSA refuses is reported; the hand-over happens all the same, since
    the connection is going away either way."""
    now = datetime.now(UTC)
    outcomes = []
    psa_rows = {link.psa_connection_id for link, _ in links} - {None}
    psas = {cid: await session.get(Connection, cid) for cid in psa_rows}
    for link, problem in links:
        noted, error = False, None
        psa_row = psas.get(link.psa_connection_id)
        try:
            if psa_row is None:
                raise AdapterError("the ticket's PSA connection is gone")
            if not psa_row.enabled:  # nothing is written to a disabled connection, not even this
                raise AdapterError("the PSA connection is disabled: no note written")
            psa = await services.adapters.psa(psa_row)
            if link.ticket_id is None:  # created or not: the marker tells
                ref = await psa.find_ticket(link.marker, link.company_id)
                if ref is not None:
                    link.ticket_id, link.ticket_number, link.ticket_url = ref.id, ref.number, ref.url
            if link.ticket_id is not None:
                await psa.add_note(link.ticket_id, handover_note(reason, now))
                noted = True
        except AdapterError as exc:
            error = str(exc)
        link.state = TicketState.HANDED_OVER
        link.closed_at = now
        audit.record(
            session,
            row.tenant_id,
            "ticket.handed_over",
            actor,
            target_type="ticket",
            target_id=link.ticket_id,
            connection_id=link.psa_connection_id,
            client_id=problem.client_id,
            summary=f"ticket {link.ticket_number or link.ticket_id or link.marker} handed over ({reason})"
            + ("" if noted else f"; no note written: {error or 'no ticket found for the marker'}"),
            before={"state": "open", "problem_id": problem.id},
            after={"state": TicketState.HANDED_OVER.value, "noted": noted},
        )
        outcomes.append(
            TicketOutcome(problem.id, link.ticket_id, link.ticket_number, "handed_over", noted, error)
        )
    await session.flush()
    return outcomes


async def remove_rule(
    kind: RuleKind[Any], session: AsyncSession, tenant_id: str, row_id: str, *, force: bool, actor: Actor
) -> Removal:
    row = await get(kind, session, tenant_id, row_id)
    dependents = await rule_dependents(kind, session, row)
    if dependents and not force:
        raise _conflict(kind.entity, dependents)
    removal = Removal(kind.name, row.id, removed=[d for d in dependents if d.kind != "open_ticket"])
    removal.tickets = [TicketOutcome(d.id, None, None, "kept") for d in dependents if d.kind == "open_ticket"]
    audit.record(
        session,
        tenant_id,
        f"{kind.name}.deleted",
        actor,
        target_type=kind.name,
        target_id=row.id,
        connection_id=getattr(row, "psa_connection_id", None),
        client_id=getattr(row, "rmm_client_id", None),
        summary=f"{kind.entity} deleted"
        + (f" with {len(dependents)} dependent(s) (forced)" if dependents else ""),
        before=rule_snapshot(kind, row),
        after={"removed": [{"kind": d.kind, "id": d.id} for d in removal.removed]},
    )
    await session.delete(row)
    await session.flush()
    return removal
