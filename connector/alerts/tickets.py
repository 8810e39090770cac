"""Ticket reconciliation for one problem: decide (pure, `domain.tickets`), apply through the PSA
adapter, record — one step at a time, each recorded before the next.

Exactly-once tickets rest on three things: a per-problem lock (two workers never reconcile the same
problem at once), a `pending` ticket link carrying the marker written *before* the PSA create, and
the adapter's `find_ticket(marker)` on the way back in after a crash or an ambiguous failure.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from sqlalchemy import Table, and_, bindparam, func, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from adapters.base import (
    ActionKind,
    ClearsAlerts,
    ProblemKind,
    PsaAdapter,
    TicketReadback,
    TicketRef,
    TicketSpec,
)
from adapters.errors import AdapterError
from connector.actions.service import accepted_action_for, request_action
from connector.alerts import domain, endpoint_links
from connector.alerts.problems import enqueue_reconciles
from connector.alerts.storms import service as storms
from connector.audit import service as audit
from connector.audit.domain import WORKER
from connector.infra import db
from connector.infra.context import Services
from connector.infra.jobs.kinds import RetryLater
from connector.infra.logs import get_logger
from connector.maintenance.service import held_until
from connector.models import (
    ClientMapping,
    Connection,
    DeployRule,
    Endpoint,
    EndpointAction,
    EndpointConfiguration,
    MaintenanceWindow,
    Problem,
    TicketLink,
    TicketRule,
    new_id,
    utcnow,
)
from connector.statuses import ProblemStatus, Routing, TicketState
from mappings.resolution import ticket_rule_for
from mappings.rules import ClosePolicy

log = get_logger("connector.alerts.tickets")

LOCK_TTL = timedelta(minutes=5)
MAX_STEPS = 6
DISABLED_PSA_RETRY = timedelta(minutes=5)
"""How often a problem whose ticket lives in a disabled PSA connection looks again: nothing is
written to a disabled connection, and the work resumes once it is enabled."""


PROBLEMS = cast(Table, Problem.__table__)
LINKS = cast(Table, TicketLink.__table__)
"""The hot path's writes go to the tables (Core statements): no ORM unit of work, no session
synchronisation of loaded objects for an UPDATE that names its row by id."""


@dataclass
class Loaded:
    problem: Problem
    link: TicketLink | None
    mapping: ClientMapping | None
    rule: TicketRule | None
    psa: Connection | None
    rmm: Connection | None = None
    """The RMM connection that reported the problem."""
    endpoint: Endpoint | None = None
    """The problem's endpoint as the last status sync saw it (None: never synced)."""
    configuration_id: str | None = None
    """The PSA configuration record the status sync wrote for the endpoint on this PSA connection."""
    windows: bool = True
    """Whether a maintenance window of the problem's client or tenant exists (open now or not)."""
    rmm_url: str | None = None
    """The endpoint's page in the RMM's console (`AdapterSpec.endpoint_url`), when known."""


def marker_for(problem_id: str) -> str:
    return f"CN-{problem_id[:12]}"


_PSA = aliased(Connection, name="psa_connection")
_RMM = aliased(Connection, name="rmm_connection")
_PSA_ID = func.coalesce(TicketLink.psa_connection_id, ClientMapping.psa_connection_id)
"""The PSA connection of the problem's ticket: its link's, else its client mapping's."""

_WINDOWS = (
    select(MaintenanceWindow.id)
    .where(
        MaintenanceWindow.enabled.is_(True),
        or_(
            MaintenanceWindow.client_id.is_(None),
            and_(
                MaintenanceWindow.rmm_connection_id == Problem.rmm_connection_id,
                MaintenanceWindow.client_id == Problem.client_id,
            ),
        ),
        db.same_tenant(MaintenanceWindow, Problem),
    )
    .exists()
)
"""Whether any maintenance window could hold the problem (most tenants have none: then a new
ticket costs no read of the windows)."""

LOAD = (
    select(
        Problem,
        TicketLink,
        ClientMapping,
        _PSA,
        TicketRule,
        _RMM,
        Endpoint,
        EndpointConfiguration,
        _WINDOWS,
    )
    .select_from(Problem)
    .outerjoin(TicketLink, TicketLink.problem_id == Problem.id)
    .outerjoin(
        ClientMapping,
        and_(
            ClientMapping.rmm_connection_id == Problem.rmm_connection_id,
            ClientMapping.rmm_client_id == Problem.client_id,
            db.same_tenant(ClientMapping, Problem),
        ),
    )
    .outerjoin(_PSA, _PSA.id == _PSA_ID)
    .outerjoin(
        TicketRule,
        and_(
            TicketRule.psa_connection_id == _PSA_ID,
            TicketRule.enabled.is_(True),
            or_(TicketRule.problem == Problem.kind, TicketRule.problem.is_(None)),
            db.same_tenant(TicketRule, Problem),
        ),
    )
    .outerjoin(_RMM, _RMM.id == Problem.rmm_connection_id)
    .outerjoin(
        Endpoint,
        and_(
            Endpoint.rmm_connection_id == Problem.rmm_connection_id,
            Endpoint.endpoint_id == Problem.endpoint_id,
        ),
    )
    .outerjoin(
        EndpointConfiguration,
        and_(
            EndpointConfiguration.endpoint_ref == Endpoint.id,
            EndpointConfiguration.psa_connection_id == _PSA_ID,
        ),
    )
    .where(Problem.id == bindparam("problem_id"))
    .execution_options(populate_existing=True)
)
"""Everything one reconciliation step reads, in one round trip: the problem, its ticket link, its
client's mapping, the PSA connection and its candidate rules (one row each: a rule for the
problem's kind and the catch-all), the RMM connection, the endpoint and its configuration record.
Built once: each step only binds the problem's id."""

_LOCK = (
    update(PROBLEMS)
    .where(
        PROBLEMS.c.id == bindparam("problem_id"),
        or_(
            PROBLEMS.c.lock_owner.is_(None),
            PROBLEMS.c.lock_owner == bindparam("owner"),
            PROBLEMS.c.lock_expires_at < bindparam("now"),
        ),
    )
    .values(lock_owner=bindparam("owner"), lock_expires_at=bindparam("until"))
)
_UNLOCK = (
    update(PROBLEMS)
    .where(PROBLEMS.c.id == bindparam("problem_id"), PROBLEMS.c.lock_owner == bindparam("owner"))
    .values(lock_owner=None, lock_expires_at=None)
)


async def _lock_and_load(services: Services, problem_id: str, owner: str) -> Loaded | None:
    """Take the problem's lock and read what the first step needs in the same transaction; raises
    RetryLater when another run holds the lock."""
    now = datetime.now(UTC)
    async with db.autocommit(services.sessions) as session:  # the lock is taken by its statement
        result = await session.execute(
            _LOCK, {"problem_id": problem_id, "owner": owner, "now": now, "until": now + LOCK_TTL}
        )
        if db.affected(result) != 1:
            raise RetryLater(now + timedelta(seconds=2))
        return await _load(session, problem_id)


async def _unlock(session: AsyncSession, problem_id: str, owner: str) -> None:
    await session.execute(_UNLOCK, {"problem_id": problem_id, "owner": owner})


async def _load(session: AsyncSession, problem_id: str) -> Loaded | None:
    rows = (await session.execute(LOAD, {"problem_id": problem_id})).all()
    if not rows:
        return None
    problem, link, mapping, psa, _, rmm, endpoint, configuration, windows = rows[0]
    rules = {row[4].id: row[4] for row in rows if row[4] is not None}
    rule = ticket_rule_for(rules.values(), problem.kind)
    return Loaded(
        problem,
        link,
        mapping,
        rule,
        psa,
        rmm=rmm,
        endpoint=endpoint,
        configuration_id=configuration.configuration_id if configuration is not None else None,
        windows=bool(windows),
    )


def _views(loaded: Loaded) -> tuple[domain.ProblemView, domain.LinkView | None, domain.Routing]:
    p = loaded.problem
    problem = domain.ProblemView(
        kind=ProblemKind(p.kind),
        state=p.state,
        hostname=p.hostname or p.endpoint_id,
        endpoint_id=p.endpoint_id,
        client=(loaded.mapping.psa_company_name or loaded.mapping.rmm_client_name or p.client_id)
        if loaded.mapping
        else p.client_id,
        message=p.message,
        occurrences=p.occurrences,
        noted_occurrences=p.noted_occurrences,
        first_seen_at=p.first_seen_at,
        last_seen_at=p.last_seen_at,
        clear_message=p.clear_message,
        rmm_url=loaded.rmm_url,
    )
    link = None
    if loaded.link is not None:
        link = domain.LinkView(
            state=loaded.link.state, last_note_at=loaded.link.last_note_at, closed_at=loaded.link.closed_at
        )
    rule = None
    if loaded.rule is not None:
        rule = domain.RuleView(
            note_interval=timedelta(minutes=loaded.rule.note_interval_minutes),
            summary_template=loaded.rule.summary_template,
            close_policy=ClosePolicy(loaded.rule.close_policy or ClosePolicy.CLOSE_IF_UNTOUCHED),
            reraise_after=timedelta(minutes=loaded.rule.reraise_minutes)
            if loaded.rule.reraise_minutes
            else None,
        )
    usable_psa = loaded.psa is not None and loaded.psa.enabled
    company = loaded.mapping.psa_company_id if loaded.mapping and usable_psa else None
    if loaded.link is not None:
        company = loaded.link.company_id
    return problem, link, domain.Routing(company_id=company, rule=rule)


_LEAVES_LOADED_CURRENT = frozenset({"created"})
"""Steps after which `loaded` is what a reload would read (`_record_open` mirrors its writes into
it), so the next step decides without one: a change anyone else made meanwhile queued a
reconciliation of its own, which runs once this run's lock is released."""

Finish = Callable[[AsyncSession], Awaitable[None]]
"""What the caller records when every step succeeded, in the transaction that releases the lock
(the job's completion): one commit ends the reconciliation."""


async def reconcile_problem(
    services: Services, problem_id: str, *, owner: str, finish: Finish | None = None
) -> list[str]:
    """Bring the problem's ticket in line with the problem. Returns the steps taken (for logs/tests)."""
    loaded = await _lock_and_load(services, problem_id, owner)
    steps: list[str] = []
    finished = False
    try:
        for n in range(MAX_STEPS):
            if n and steps[-1] not in _LEAVES_LOADED_CURRENT:
                async with services.sessions() as session:
                    loaded = await _load(session, problem_id)
            step = await _step(services, problem_id, loaded)
            if step is None:
                break
            steps.append(step)
        if finish is not None:  # a failure here (the lease was lost) rolls the release back too
            async with db.transaction(services.sessions) as session:
                await _unlock(session, problem_id, owner)
                await finish(session)
            finished = True
    finally:
        if not finished:
            async with db.transaction(services.sessions) as session:
                await _unlock(session, problem_id, owner)
    return steps


async def _step(services: Services, problem_id: str, loaded: Loaded | None) -> str | None:
    now = datetime.now(UTC)
    if loaded is None:
        return None
    handled = await storms.route(services, loaded, now)
    if handled is not None:
        return handled.step
    if loaded.link is None or loaded.link.state == TicketState.PENDING:
        loaded.rmm_url = endpoint_links.link_for(services, loaded.rmm)(loaded.problem.endpoint_id)
    problem_view, link_view, routing = _views(loaded)
    action = domain.decide(problem_view, link_view, routing, now)
    writes = (domain.ResumeCreate, domain.AddNote, domain.CloseTicket, domain.Reraise)
    if isinstance(action, writes) and loaded.psa is not None and not loaded.psa.enabled:
        raise RetryLater(now + DISABLED_PSA_RETRY)  # the lock is released by the caller
    match action:
        case domain.Nothing():
            return None
        case domain.Unroutable(reason=reason):
            await _set_routing(services, problem_id, reason)
            return None
        case domain.NoteLater(at=at):
            async with db.transaction(services.sessions) as session:
                await enqueue_reconciles(session, loaded.problem.tenant_id, [problem_id], run_after=at)
            return None
        case domain.OpenTicket(summary=summary, description=description):
            description += storms.evidence(services, loaded.problem, loaded.endpoint)
            if not await _open(services, loaded, summary, description, now):
                return None  # held in a maintenance window
            await _auto_action(services, loaded)
            return _done(services, loaded, "created")
        case domain.ResumeCreate(summary=summary, description=description, create_if_missing=create):
            return _done(services, loaded, await _resume(services, loaded, summary, description, create))
        case domain.AddNote(text=text, covers_occurrences=covered):
            assert loaded.link is not None and loaded.link.ticket_id is not None and loaded.psa is not None
            psa = await services.adapters.psa(loaded.psa)
            found, _ = await _read_back(services, loaded, psa)
            if found is not None:
                return _done(services, loaded, found)
            await psa.add_note(loaded.link.ticket_id, text)
            async with db.transaction(services.sessions) as session:
                _audit(session, loaded, "ticket.noted", f"note added ({covered} more occurrence(s))", text)
                await session.execute(
                    update(LINKS)
                    .where(LINKS.c.id == loaded.link.id)
                    .values(last_note_at=now, notes_added=LINKS.c.notes_added + 1)
                )
                await session.execute(
                    update(PROBLEMS)
                    .where(PROBLEMS.c.id == problem_id)
                    .values(noted_occurrences=PROBLEMS.c.noted_occurrences + covered)
                )
            return _done(services, loaded, "noted")
        case domain.Reraise():
            return _done(services, loaded, await _reopen(services, loaded, "reraised"))
        case domain.CloseTicket(resolution=resolution, policy=policy):
            assert loaded.link is not None and loaded.link.ticket_id is not None and loaded.psa is not None
            psa = await services.adapters.psa(loaded.psa)
            found, back = await _read_back(services, loaded, psa)
            if found is not None:
                return _done(services, loaded, found)
            assert back is not None
            if policy == ClosePolicy.NOTE_ONLY or (policy == ClosePolicy.CLOSE_IF_UNTOUCHED and back.touched):
                return _done(
                    services, loaded, await _leave_open(services, loaded, psa, back, resolution, policy)
                )
            status = loaded.rule.status_closed_id if loaded.rule else None
            async with services.sessions() as session:
                ran = await accepted_action_for(session, problem_id)
            if ran is not None:
                resolution += (
                    f" Closed after the '{ran.action}' action requested "
                    f"{ran.requested_at.isoformat(timespec='minutes')}"
                    + (f" (RMM reference {ran.vendor_reference})." if ran.vendor_reference else ".")
                )
            await psa.close_ticket(loaded.link.ticket_id, status, resolution)
            async with db.transaction(services.sessions) as session:
                _audit(session, loaded, "ticket.closed", "closed: the problem cleared", resolution, status)
                await session.execute(
                    update(LINKS)
                    .where(LINKS.c.id == loaded.link.id)
                    .values(state=TicketState.CLOSED, closed_at=now)
                )
            return _done(services, loaded, "closed")
    return None  # pragma: no cover - the match is exhaustive


async def _read_back(
    services: Services, loaded: Loaded, psa: PsaAdapter
) -> tuple[str | None, TicketReadback | None]:
    """Read the ticket back before writing to it. Returns the step taken when the PSA had changed
    it under the connector — merged (relinked to the ticket it went into), deleted (a new ticket,
    once), closed by a person (the problem is acknowledged) — else (None, what was read)."""
    link = loaded.link
    assert link is not None and link.ticket_id is not None
    back = await psa.read_ticket(link.ticket_id)
    now = datetime.now(UTC)
    if back is not None and back.merged_into and back.merged_into != link.ticket_id:
        async with db.transaction(services.sessions) as session:
            _audit(session, loaded, "ticket.relinked", f"merged into ticket {back.merged_into}; following it")
            await session.execute(
                update(LINKS)
                .where(LINKS.c.id == link.id)
                .values(ticket_id=back.merged_into, ticket_number=back.merged_into, ticket_url=None)
            )
        return "relinked", back
    if back is None:
        if loaded.problem.state == ProblemStatus.OPEN and link.reopened == 0:
            return await _reopen(services, loaded, "reopened"), None
        async with db.transaction(services.sessions) as session:
            _audit(session, loaded, "ticket.gone", "deleted in the PSA; not replaced")
            await session.execute(
                update(LINKS).where(LINKS.c.id == link.id).values(state=TicketState.CLOSED, closed_at=now)
            )
        return "gone", None
    if back.closed:
        active = loaded.problem.state == ProblemStatus.OPEN
        state = TicketState.ACKNOWLEDGED if active else TicketState.CLOSED
        what = "closed in the PSA while the problem lasts: acknowledged" if active else "closed in the PSA"
        async with db.transaction(services.sessions) as session:
            _audit(session, loaded, "ticket.acknowledged" if active else "ticket.closed", what)
            await session.execute(
                update(LINKS).where(LINKS.c.id == link.id).values(state=state, closed_at=now)
            )
        if active:
            await _clear_rmm_alert(services, loaded)
        return ("acknowledged" if active else "closed_in_psa"), back
    return None, back


async def _reopen(services: Services, loaded: Loaded, why: str) -> str:
    """Open a new ticket on the link (the old one was deleted, or its technician's close outlasted
    the re-raise interval): back to pending with a fresh marker; the next step creates."""
    link = loaded.link
    assert link is not None
    count = link.reopened + 1
    marker = f"{marker_for(loaded.problem.id)}-{count}"
    async with db.transaction(services.sessions) as session:
        _audit(
            session,
            loaded,
            f"ticket.{why}",
            f"a new ticket follows ticket {link.ticket_number or link.ticket_id}",
        )
        await session.execute(
            update(LINKS)
            .where(LINKS.c.id == link.id)
            .values(
                state=TicketState.PENDING,
                marker=marker,
                ticket_id=None,
                ticket_number=None,
                ticket_url=None,
                closed_at=None,
                reopened=count,
            )
        )
        await session.execute(
            update(PROBLEMS)
            .where(PROBLEMS.c.id == loaded.problem.id)
            .values(noted_occurrences=PROBLEMS.c.occurrences)
        )
    return why


async def _leave_open(
    services: Services,
    loaded: Loaded,
    psa: PsaAdapter,
    back: TicketReadback,
    resolution: str,
    policy: ClosePolicy,
) -> str:
    link = loaded.link
    assert link is not None and link.ticket_id is not None
    work = ", ".join(sorted({a.kind.replace("_", " ") for a in back.human_activity})) or "status"
    text = domain.left_open_note(resolution, policy, work)
    await psa.add_note(link.ticket_id, text)
    async with db.transaction(services.sessions) as session:
        _audit(session, loaded, "ticket.left_open", f"resolved; left open ({work})", text)
        await session.execute(
            update(LINKS)
            .where(LINKS.c.id == link.id)
            .values(
                state=TicketState.LEFT_OPEN,
                last_note_at=datetime.now(UTC),
                notes_added=LINKS.c.notes_added + 1,
            )
        )
    return "left_open"


async def _clear_rmm_alert(services: Services, loaded: Loaded) -> None:
    """The rule's switch: a technician closed the ticket, so resolve the alert in the RMM where
    its adapter can (`ClearsAlerts`); any other RMM is left as it is."""
    if loaded.rule is None or not loaded.rule.clear_rmm_alert:
        return
    async with services.sessions() as session:
        connection = await session.get(Connection, loaded.problem.rmm_connection_id)
    if connection is None or not connection.enabled or connection.role != "rmm":
        return
    rmm = await services.adapters.rmm(connection)
    if not isinstance(rmm, ClearsAlerts):
        return
    try:
        cleared = await rmm.clear_alert(
            loaded.problem.endpoint_id, ProblemKind(loaded.problem.kind), loaded.problem.vendor_alert_id
        )
    except AdapterError as exc:  # the acknowledgement is recorded; the RMM keeps its alert
        log.warning(
            "rmm alert not cleared",
            problem_id=loaded.problem.id,
            rmm_connection_id=connection.id,
            error=f"{type(exc).__name__}: {exc}",
        )
        return
    if not cleared:
        return
    problem = loaded.problem
    async with db.transaction(services.sessions) as session:
        audit.record(
            session,
            problem.tenant_id,
            "rmm_alert.cleared",
            WORKER,
            target_type="problem",
            target_id=problem.id,
            connection_id=connection.id,
            client_id=problem.client_id,
            summary=f"resolved alert {problem.vendor_alert_id} in the RMM: the ticket was closed by a "
            f"technician ({problem.kind} on {problem.hostname})",
            after={"alert_id": problem.vendor_alert_id, "endpoint_id": problem.endpoint_id},
        )
    log.info("rmm alert cleared", problem_id=problem.id, rmm_connection_id=connection.id)


async def _held(session: AsyncSession, problem: Problem, now: datetime) -> bool:
    """No ticket opens while a maintenance window of the problem's client or tenant is open: the
    problem is held and reconciled again (a queued job, so a restart loses nothing) when it ends."""
    until = await held_until(session, problem.tenant_id, problem.rmm_connection_id, problem.client_id, now)
    if until is None:
        return False
    await session.execute(
        update(PROBLEMS).where(PROBLEMS.c.id == problem.id).values(routing=Routing.MAINTENANCE)
    )
    await enqueue_reconciles(session, problem.tenant_id, [problem.id], run_after=until)
    return True


def _done(services: Services, loaded: Loaded, action: str) -> str:
    """One INFO event and one count per ticket action taken in the PSA (created, recovered — found
    by its marker after an interrupted create —, noted, closed, abandoned)."""
    psa_kind = loaded.psa.kind if loaded.psa is not None else "unknown"
    services.metrics.tickets.labels(psa_kind, action).inc()
    link, problem = loaded.link, loaded.problem
    log.info(
        "ticket " + action,
        action=action,
        tenant_id=problem.tenant_id,
        problem_id=problem.id,
        problem=problem.kind,
        endpoint_id=problem.endpoint_id,
        psa_connection_id=loaded.psa.id if loaded.psa is not None else None,
        psa_kind=psa_kind,
        company_id=link.company_id if link is not None else None,
        ticket_id=link.ticket_id if link is not None else None,
        ticket_number=link.ticket_number if link is not None else None,
    )
    return action


async def _auto_action(services: Services, loaded: Loaded) -> None:
    """The rule's automatic action for a newly opened problem, at most once per problem. An agent
    deployment is left to the connection's deploy rule when it has one (its interval guard is what
    keeps deployments to one per endpoint; a second automatic path would deploy twice)."""
    rule, problem = loaded.rule, loaded.problem
    if rule is None or rule.auto_action is None:
        return
    async with db.transaction(services.sessions) as session:
        if await session.scalar(select(EndpointAction.id).where(EndpointAction.problem_id == problem.id)):
            return
        if rule.auto_action == ActionKind.DEPLOY_AGENT and await session.scalar(
            db.scoped(select(DeployRule.id), DeployRule, problem.tenant_id).where(
                DeployRule.rmm_connection_id == problem.rmm_connection_id, DeployRule.enabled.is_(True)
            )
        ):
            return
        endpoint = await session.scalar(
            select(Endpoint).where(
                Endpoint.rmm_connection_id == problem.rmm_connection_id,
                Endpoint.endpoint_id == problem.endpoint_id,
            )
        )
        if endpoint is None:
            return
        await request_action(
            session, endpoint, ActionKind(rule.auto_action), requested_by="rule", problem_id=problem.id
        )
    services.wake_workers()


async def _set_routing(services: Services, problem_id: str, routing: str) -> None:
    async with db.transaction(services.sessions) as session:
        await session.execute(update(PROBLEMS).where(PROBLEMS.c.id == problem_id).values(routing=routing))


def _spec(
    loaded: Loaded, marker: str, summary: str, description: str, configuration_id: str | None = None
) -> TicketSpec:
    assert loaded.rule is not None and loaded.link is not None
    rule = loaded.rule
    return TicketSpec(
        marker=marker,
        company_id=loaded.link.company_id,
        board_id=rule.board_id,
        summary=summary,
        description=description,
        priority_id=storms.priority_of(rule, loaded.problem.kind),
        type_id=rule.type_id,
        status_id=rule.status_new_id,
        configuration_id=configuration_id,
    )


async def _open(services: Services, loaded: Loaded, summary: str, description: str, now: datetime) -> bool:
    """Record the intent (pending link with marker) first, then create, then record the ticket;
    False (nothing written to the PSA) when a maintenance window holds the problem."""
    assert loaded.mapping is not None and loaded.psa is not None
    problem = loaded.problem
    link = TicketLink(
        id=new_id(),
        tenant_id=problem.tenant_id,
        problem_id=problem.id,
        psa_connection_id=loaded.psa.id,
        company_id=loaded.mapping.psa_company_id,
        marker=marker_for(problem.id),
        state=TicketState.PENDING,
        created_at=utcnow(),
        notes_added=0,
        reopened=0,
    )
    # Without maintenance windows to check, the link's intent is one INSERT committing on its own.
    opening = db.transaction if loaded.windows else db.autocommit
    async with opening(services.sessions) as session:
        if loaded.windows and await _held(session, problem, now):
            return False
        await session.execute(
            _INSERT_LINK,
            {
                "id": link.id,
                "tenant_id": link.tenant_id,
                "problem_id": link.problem_id,
                "psa_connection_id": link.psa_connection_id,
                "company_id": link.company_id,
                "marker": link.marker,
                "state": link.state,
                "created_at": link.created_at,
                "notes_added": 0,
                "reopened": 0,
            },
        )
    loaded.link = link
    psa = await services.adapters.psa(loaded.psa)
    ref = await psa.create_ticket(_spec(loaded, link.marker, summary, description, loaded.configuration_id))
    await _record_open(services, loaded, ref)
    return True


async def _resume(services: Services, loaded: Loaded, summary: str, description: str, create: bool) -> str:
    assert loaded.link is not None and loaded.psa is not None
    psa = await services.adapters.psa(loaded.psa)
    ref = await psa.find_ticket(loaded.link.marker, loaded.link.company_id)
    if ref is not None:
        await _record_open(services, loaded, ref, found=True)
        return "recovered"
    if not create or loaded.rule is None:
        async with db.transaction(services.sessions) as session:
            await session.execute(
                update(LINKS)
                .where(LINKS.c.id == loaded.link.id)
                .values(state=TicketState.CLOSED, closed_at=datetime.now(UTC))
            )
        return "abandoned"
    ref = await psa.create_ticket(
        _spec(loaded, loaded.link.marker, summary, description, loaded.configuration_id)
    )
    await _record_open(services, loaded, ref)
    return "created"


async def _record_open(services: Services, loaded: Loaded, ref: TicketRef, *, found: bool = False) -> None:
    assert loaded.link is not None
    now = datetime.now(UTC)
    link, problem = loaded.link, loaded.problem
    link.ticket_id, link.ticket_number = ref.id, ref.number
    state = TicketState.CLOSED if ref.closed else TicketState.OPEN
    async with db.transaction(services.sessions) as session:
        how = "found by its marker after an interrupted create" if found else "created"
        await _audit_now(session, loaded, "ticket.created", f"{how} for {problem.kind} on {problem.hostname}")
        await session.execute(
            _LINK_OPENED,
            {
                "b_link": link.id,
                "b_state": state,
                "b_ticket_id": ref.id,
                "b_ticket_number": ref.number,
                "b_ticket_url": ref.url,
                "b_at": now,
            },
        )
        await session.execute(_PROBLEM_TICKETED, {"b_problem": problem.id})
    link.state, link.ticket_url, link.last_note_at = state, ref.url, now  # as a reload would read them
    problem.routing = Routing.TICKETED


# Built once, bound per call (every ticket opened runs them); binds are not named after columns.
_INSERT_LINK = insert(LINKS)
_LINK_OPENED = (
    update(LINKS)
    .where(LINKS.c.id == bindparam("b_link"))
    .values(
        state=bindparam("b_state", type_=LINKS.c.state.type),
        ticket_id=bindparam("b_ticket_id"),
        ticket_number=bindparam("b_ticket_number"),
        ticket_url=bindparam("b_ticket_url"),
        last_note_at=bindparam("b_at", type_=LINKS.c.last_note_at.type),
    )
)
_PROBLEM_TICKETED = (
    update(PROBLEMS).where(PROBLEMS.c.id == bindparam("b_problem")).values(routing=Routing.TICKETED)
)


def _audit(
    session: AsyncSession,
    loaded: Loaded,
    kind: str,
    what: str,
    text: str | None = None,
    status_id: str | None = None,
) -> None:
    """The PSA write just made, in the transaction that records it."""
    audit.record(session, **_audit_entry(loaded, kind, what, text, status_id))


async def _audit_now(session: AsyncSession, loaded: Loaded, kind: str, what: str) -> None:
    """`_audit` as a statement run at once: every ticket created writes one, and an ORM object
    costs a flush."""
    await audit.insert(session, **_audit_entry(loaded, kind, what))


def _audit_entry(
    loaded: Loaded, kind: str, what: str, text: str | None = None, status_id: str | None = None
) -> dict[str, Any]:
    link, problem = loaded.link, loaded.problem
    assert link is not None
    after: dict[str, str | None] = {"problem_id": problem.id, "company_id": link.company_id}
    if text is not None:
        after["text"] = text
    if status_id is not None:
        after["status_id"] = status_id
    return dict(
        tenant_id=problem.tenant_id,
        kind=kind,
        actor=WORKER,
        target_type="ticket",
        target_id=link.ticket_id,
        connection_id=link.psa_connection_id,
        client_id=problem.client_id,
        summary=f"ticket {link.ticket_number or link.ticket_id}: {what}",
        after=after,
    )
