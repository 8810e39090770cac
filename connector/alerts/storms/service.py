"""The ticket rule's gates before a problem opens a ticket of its own — switched-off problems,
exclusions, the minimum age of status findings — and client-level storm tickets.

A storm ticket is one ticket per RMM connection × client × problem kind while enough of the
client's endpoints have that problem. Exactly one exists at a time: the storm row is inserted
against a partial unique index (concurrent workers that both see the storm insert one row), and
the row's lock lets one worker at a time write the ticket; the others retry shortly and find the
ticket written. The ticket is created with a marker recorded first, so a crash between create and
record is repaired by looking the marker up, as for per-problem tickets.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from sqlalchemy import func, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from adapters.base import ProblemKind, TicketSpec
from connector.alerts.endpoint_links import rmm_links
from connector.alerts.problems import enqueue_reconciles
from connector.alerts.storms import domain
from connector.audit import service as audit
from connector.audit.domain import WORKER
from connector.infra import db
from connector.infra.context import Services
from connector.infra.jobs.kinds import RetryLater
from connector.infra.logs import get_logger
from connector.models import (
    ClientMapping,
    Connection,
    Endpoint,
    Problem,
    Storm,
    TicketLink,
    TicketRule,
    new_id,
)
from connector.statuses import ProblemStatus, Routing

log = get_logger("connector.alerts.storms")

LOCK_TTL = timedelta(minutes=5)
CONTENDED_RETRY = timedelta(seconds=1)
OPEN, CLOSED = "open", "closed"


class Loaded(Protocol):
    """What `connector.alerts.tickets` loaded for one problem."""

    problem: Problem
    link: TicketLink | None
    mapping: ClientMapping | None
    rule: TicketRule | None
    psa: Connection | None
    endpoint: Endpoint | None


@dataclass(frozen=True)
class Handled:
    """The problem's ticket work is done here; `step` names what was done (None: nothing)."""

    step: str | None


def storm_rule(rule: TicketRule) -> domain.StormRule:
    return domain.StormRule(
        min_endpoints=rule.storm_min_endpoints,
        min_percent=rule.storm_min_percent,
        window=timedelta(minutes=rule.storm_window_minutes or 60),
    )


def priority_of(rule: TicketRule, kind: str) -> str | None:
    return domain.priority_for(ProblemKind(kind), rule.priority_map or {}, rule.priority_id)


def _marker(storm_id: str) -> str:
    return f"CS-{storm_id[:12]}"


async def route(services: Services, loaded: Loaded, now: datetime) -> Handled | None:
    """Before the per-problem decision: None lets it go on; `Handled` stops it."""
    problem, rule = loaded.problem, loaded.rule
    if loaded.link is not None or rule is None or loaded.mapping is None:
        return None
    if loaded.psa is None or not loaded.psa.enabled:
        return None
    if problem.state == ProblemStatus.OPEN:
        reason = await _excluded(services, loaded)
        if reason is not None:
            await _set_routing(services, problem.id, Routing.EXCLUDED)
            log.info("no ticket", problem_id=problem.id, reason=reason)
            return Handled(None)
        due = domain.ticket_not_before(
            str(problem.source), problem.first_seen_at, timedelta(minutes=rule.min_age_minutes or 0), now
        )
        if due is not None:
            async with db.transaction(services.sessions) as session:
                await session.execute(
                    update(Problem).where(Problem.id == problem.id).values(routing=Routing.WAITING)
                )
                await enqueue_reconciles(session, problem.tenant_id, [problem.id], run_after=due)
            return Handled(None)
    if not storm_rule(rule).enabled and problem.storm_id is None:
        return None
    handled = await _reconcile_storm(services, loaded, now)
    if handled is None and problem.storm_id is not None and problem.state != ProblemStatus.OPEN:
        return Handled(None)  # its storm closed: a cleared member has no ticket of its own to close
    return handled


async def _excluded(services: Services, loaded: Loaded) -> str | None:
    problem, rule = loaded.problem, loaded.rule
    assert rule is not None
    if not rule.disabled_problems and not rule.exclusions:
        return None
    os_name = loaded.endpoint.os_name if loaded.endpoint is not None else None
    subject = domain.Subject(
        kind=ProblemKind(problem.kind),
        endpoint_id=problem.endpoint_id,
        hostname=problem.hostname or problem.endpoint_id,
        client_id=problem.client_id,
        client_name=loaded.mapping.rmm_client_name if loaded.mapping else None,
        device_type=os_name,
    )
    exclusions = [domain.Exclusion(e["field"], e["pattern"]) for e in rule.exclusions or []]
    return domain.exclusion_reason(subject, list(rule.disabled_problems or []), exclusions)


async def _set_routing(services: Services, problem_id: str, routing: Routing) -> None:
    async with db.transaction(services.sessions) as session:
        await session.execute(update(Problem).where(Problem.id == problem_id).values(routing=routing))


@dataclass
class _Seen:
    storm: Storm | None
    members: list[tuple[str, domain.Member]]
    """(problem id, member) of every open problem of the client and kind without a ticket of its own."""
    total: int


async def _read(session: AsyncSession, problem: Problem) -> _Seen:
    storm = await session.scalar(
        select(Storm)
        .where(
            Storm.rmm_connection_id == problem.rmm_connection_id,
            Storm.client_id == problem.client_id,
            Storm.kind == problem.kind,
            Storm.state == OPEN,
        )
        .execution_options(populate_existing=True)
    )
    rows = await session.execute(
        select(Problem.id, Problem.endpoint_id, Problem.hostname, Problem.first_seen_at)
        .outerjoin(TicketLink, TicketLink.problem_id == Problem.id)
        .where(
            Problem.rmm_connection_id == problem.rmm_connection_id,
            Problem.client_id == problem.client_id,
            Problem.kind == problem.kind,
            Problem.state == ProblemStatus.OPEN,
            Problem.routing != Routing.EXCLUDED,
            TicketLink.id.is_(None),
        )
    )
    members = [(pid, domain.Member(eid, host or eid, seen)) for pid, eid, host, seen in rows]
    total = await session.scalar(
        select(func.count())
        .select_from(Endpoint)
        .where(
            Endpoint.rmm_connection_id == problem.rmm_connection_id,
            Endpoint.client_id == problem.client_id,
            Endpoint.retired_at.is_(None),
        )
    )
    return _Seen(storm, members, int(total or 0))


def _insert(session: AsyncSession) -> Any:
    dialect = session.bind.dialect.name if session.bind is not None else "sqlite"
    return postgresql.insert(Storm) if dialect == "postgresql" else sqlite.insert(Storm)


async def _reconcile_storm(services: Services, loaded: Loaded, now: datetime) -> Handled | None:
    """The client's storm ticket brought in line; None when there is no storm (the problem then
    gets a ticket of its own)."""
    problem, rule, mapping = loaded.problem, loaded.rule, loaded.mapping
    assert rule is not None and mapping is not None and loaded.psa is not None
    async with services.sessions() as session:
        seen = await _read(session, problem)
    members = [m for _, m in seen.members]
    if seen.storm is None:
        if not domain.storm_active(storm_rule(rule), members, seen.total, now, storm_open=False):
            return None
        async with db.transaction(services.sessions) as session:
            storm_id = new_id()
            await session.execute(
                _insert(session)
                .values(
                    id=storm_id,
                    tenant_id=problem.tenant_id,
                    rmm_connection_id=problem.rmm_connection_id,
                    psa_connection_id=loaded.psa.id,
                    client_id=problem.client_id,
                    kind=problem.kind,
                    state=OPEN,
                    company_id=mapping.psa_company_id,
                    marker=_marker(storm_id),
                    members={},
                    opened_at=now,
                )
                .on_conflict_do_nothing()
            )
        async with services.sessions() as session:
            seen = await _read(session, problem)
        if seen.storm is None:  # closed again in between
            return None
    storm_id = seen.storm.id
    owner = new_id()
    if not await _lock(services, storm_id, owner):
        raise RetryLater(datetime.now(UTC) + CONTENDED_RETRY)
    try:
        return await _write(services, loaded, storm_id, now)
    finally:
        await _unlock(services, storm_id, owner)


async def _lock(services: Services, storm_id: str, owner: str) -> bool:
    now = datetime.now(UTC)
    async with db.transaction(services.sessions) as session:
        result = await session.execute(
            update(Storm)
            .where(
                Storm.id == storm_id,
                or_(Storm.lock_owner.is_(None), Storm.lock_expires_at < now),
            )
            .values(lock_owner=owner, lock_expires_at=now + LOCK_TTL)
        )
        return bool(result.rowcount == 1)  # type: ignore[attr-defined]


async def _unlock(services: Services, storm_id: str, owner: str) -> None:
    async with db.transaction(services.sessions) as session:
        await session.execute(
            update(Storm)
            .where(Storm.id == storm_id, Storm.lock_owner == owner)
            .values(lock_owner=None, lock_expires_at=None)
        )


async def _write(services: Services, loaded: Loaded, storm_id: str, now: datetime) -> Handled | None:
    """Under the storm's lock: create, note or close its ticket from what is open now."""
    problem, rule, mapping = loaded.problem, loaded.rule, loaded.mapping
    assert rule is not None and mapping is not None and loaded.psa is not None
    async with services.sessions() as session:
        seen = await _read(session, problem)
    storm = seen.storm
    if storm is None or storm.id != storm_id:
        return None
    kind = ProblemKind(problem.kind)
    client = mapping.psa_company_name or mapping.rmm_client_name or problem.client_id
    members = [m for _, m in seen.members]
    current = {m.endpoint_id: m.hostname for m in members}
    active = domain.storm_active(storm_rule(rule), members, seen.total, now, storm_open=True)
    psa = await services.adapters.psa(loaded.psa)
    step: str | None = None
    values: dict[str, Any] = {}
    if storm.ticket_id is None:
        if not active and not storm.members:
            values = {"state": CLOSED, "closed_at": now}  # never written: nothing to close in the PSA
        else:
            ref = await psa.find_ticket(storm.marker, storm.company_id)
            step = "storm recovered"
            if ref is None:
                link = await rmm_links(services, problem.rmm_connection_id)
                links = {m.endpoint_id: url for m in members if (url := link(m.endpoint_id))}
                ref = await psa.create_ticket(
                    TicketSpec(
                        marker=storm.marker,
                        company_id=storm.company_id,
                        board_id=rule.board_id,
                        summary=domain.storm_summary(kind, client, len(members)),
                        description=domain.storm_description(kind, client, members, seen.total, links),
                        priority_id=priority_of(rule, problem.kind),
                        type_id=rule.type_id,
                        status_id=rule.status_new_id,
                    )
                )
                step = "storm created"
            values = {
                "ticket_id": ref.id,
                "ticket_number": ref.number,
                "ticket_url": ref.url,
                "members": current,
            }
    elif not active:
        resolution = domain.storm_resolution(kind, client, len(members))
        await psa.close_ticket(storm.ticket_id, rule.status_closed_id, resolution)
        values = {"state": CLOSED, "closed_at": now}
        step = "storm closed"
    else:
        text = domain.membership_note(domain.membership_change(storm.members or {}, current), len(current))
        if text is not None:
            await psa.add_note(storm.ticket_id, text)
            values = {"members": current}
            step = "storm noted"
    async with db.transaction(services.sessions) as session:
        if values:
            await session.execute(update(Storm).where(Storm.id == storm.id).values(**values))
        if values.get("state") == CLOSED:
            still = [pid for pid, _ in seen.members]
            await session.execute(
                update(Problem).where(Problem.id.in_(still)).values(routing=Routing.PENDING)
            )
            await enqueue_reconciles(session, problem.tenant_id, still)
        elif step is not None or storm.ticket_id is not None:
            await session.execute(
                update(Problem)
                .where(Problem.id.in_([pid for pid, _ in seen.members]))
                .values(storm_id=storm.id, routing=Routing.STORM)
            )
        if step is not None:
            audit.record(
                session,
                problem.tenant_id,
                "ticket." + step.split()[-1],
                WORKER,
                target_type="ticket",
                target_id=values.get("ticket_id") or storm.ticket_id,
                connection_id=loaded.psa.id,
                client_id=problem.client_id,
                summary=f"storm ticket for {kind.value} on {client}: {step} ({len(current)} endpoints)",
                after={"storm_id": storm.id, "members": sorted(current.values())},
            )
    if step is not None:
        services.metrics.tickets.labels(loaded.psa.kind, step.replace(" ", "_")).inc()
        log.info("ticket " + step, storm_id=storm.id, client_id=problem.client_id, members=len(current))
    return Handled(step)


def evidence(services: Services, problem: Problem, row: Endpoint | None) -> str:
    """The endpoint's reported status (`row`, as the last status sync saw it) and the problem's
    page in the dashboard, for a new ticket's description (empty when the endpoint was never
    synced and no public address is known)."""
    base = services.settings.resolved_public_url()
    if row is None:
        return f"\n\nIn connector: {base}/problems/{problem.id}" if base else ""
    return "\n" + domain.evidence_text(
        domain.Evidence(
            product=row.product,
            protection_enabled=row.protection_enabled,
            definitions_date=row.definitions_date,
            last_scan_at=row.last_scan_at,
            active_threats=row.active_threats,
            online=row.online,
            last_seen_at=row.last_seen_at,
            os_name=row.os_name,
            dashboard_url=f"{base}/problems/{problem.id}" if base else None,
        )
    )
