"""The console steps of a sync: read a security console's agents (stored beside the RMM's
endpoints, never over them), its threats and its licence use; match agents to endpoints
(`connector.fleet.matching`) per console within the mapped PSA company; and derive the coverage
problems of agents (`unmanaged_agent`, a silent agent) — the endpoint side (not protected, the
console's status fields) is merged in by the RMM evaluation through `fleet.consoles.console_views`.

Like the RMM steps, every write compares before it writes, so a re-run after a crash repeats reads,
not changes; the run's cursor moves only when the run succeeded.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from adapters.base import (
    AgentPage,
    AgentStatus,
    AlertEvent,
    PolledAlerts,
    ProblemKind,
    SecurityAdapter,
    SkippedEndpoint,
    ThreatSnapshot,
)
from adapters.errors import AdapterError
from connector.alerts.problems import apply_polled, clear_retired, observe_active, observe_cleared
from connector.billing.licences import record_licence_use
from connector.fleet import coverage, domain
from connector.fleet.consoles import AGENT_FIELDS, company_scopes, consoles_of, to_agent_status
from connector.fleet.matching import Device, match_devices
from connector.infra import db
from connector.infra.context import Services
from connector.models import (
    AgentMatchOverride,
    Connection,
    ConsoleAgent,
    Endpoint,
    Problem,
    SyncCursor,
    SyncRun,
)
from connector.statuses import ProblemSource, ProblemStatus, SyncStatus
from connector.sync.counters import Counters

RETIRE_GUARD_SHARE = 0.5
SKIPPED_REPORTED = 50
COVERAGE_KINDS = (ProblemKind.UNMANAGED_AGENT.value, ProblemKind.AGENT_OFFLINE.value)

Heartbeat = Callable[[], Awaitable[None]]


async def read_console(
    services: Services,
    run: SyncRun,
    connection: Connection,
    adapter: SecurityAdapter,
    c: Counters,
    heartbeat: Heartbeat,
) -> None:
    async for page in adapter.iter_agent_pages(run.changed_since):
        await _store_page(services, run, connection, page, c)
        await heartbeat()
    await _read_threats(services, run, connection, adapter, c)
    if run.full:
        await _retire_missing(services, run, connection, c)
    try:
        uses = await adapter.licence_use()
    except AdapterError as exc:
        c.errors.append({"stage": "licences", "type": type(exc).__name__, "message": str(exc)})
        return
    async with db.transaction(services.sessions) as session:
        await record_licence_use(
            session,
            tenant_id=connection.tenant_id,
            connection_id=connection.id,
            uses=uses,
            day=datetime.now(UTC).date(),
        )


async def _store_page(
    services: Services, run: SyncRun, connection: Connection, page: AgentPage, c: Counters
) -> None:
    c.pages += 1
    now = datetime.now(UTC)
    async with db.transaction(services.sessions) as session:
        existing = {
            row.agent_id: row
            for row in await session.scalars(
                select(ConsoleAgent).where(
                    ConsoleAgent.connection_id == connection.id,
                    ConsoleAgent.agent_id.in_(
                        {a.agent_id for a in page.agents} | {s.endpoint_id for s in page.skipped}
                    ),
                )
            )
        }
        for agent in sorted(page.agents, key=lambda a: a.agent_id):  # the agents' lock order
            c.seen += 1
            fingerprint = _fingerprint(agent)
            row = existing.get(agent.agent_id)
            if row is None:
                row = ConsoleAgent(
                    tenant_id=connection.tenant_id,
                    connection_id=connection.id,
                    agent_id=agent.agent_id,
                    first_seen_at=now,
                )
                session.add(row)
                existing[agent.agent_id] = row
            elif row.fingerprint == fingerprint and row.retired_at is None:
                row.seen_in_run_id = run.id
                row.online, row.last_seen_at = agent.online, agent.last_seen_at
                continue
            c.changed += 1
            for name in AGENT_FIELDS:
                setattr(row, name, getattr(agent, name))
            row.fingerprint, row.retired_at, row.updated_at, row.seen_in_run_id = (
                fingerprint,
                None,
                now,
                run.id,
            )
        _note_skipped(page.skipped, existing, run, c)


def _note_skipped(
    skipped: Sequence[SkippedEndpoint], existing: dict[str, ConsoleAgent], run: SyncRun, c: Counters
) -> None:
    """Agents the adapter could not read: reported (the first `SKIPPED_REPORTED`), and kept from
    retirement (an unreadable agent is not an uninstalled one)."""
    for item in skipped:
        if c.skipped < SKIPPED_REPORTED:
            c.errors.append(
                {"stage": "agent", "agent": item.endpoint_id, "field": item.field, "message": item.message}
            )
        c.skipped += 1
        row = existing.get(item.endpoint_id)
        if row is not None:
            row.seen_in_run_id = run.id


def _fingerprint(agent: AgentStatus) -> str:
    data = agent.model_dump(mode="json", exclude={"last_seen_at", "online"})
    data["offline_day"] = agent.last_seen_at.date().isoformat() if agent.last_seen_at else None
    return domain.digest(data)


async def _read_threats(
    services: Services, run: SyncRun, connection: Connection, adapter: SecurityAdapter, c: Counters
) -> None:
    """The console's threats as `threat_detected` problems of their agents: one per agent while any
    of its threats is open (naming each with the vendor's classification and mitigation state),
    cleared when the vendor resolved them all or no longer lists any for a customer read completely."""
    read_at = datetime.now(UTC)
    try:
        snapshot = await adapter.list_threats(run.changed_since)
    except AdapterError as exc:
        c.errors.append({"stage": "threats", "type": type(exc).__name__, "message": str(exc)})
        return
    polled = threat_events(snapshot)
    if not polled.events and not polled.complete_for:
        return
    async with db.transaction(services.sessions) as session:
        touched, opened, closed = await apply_polled(session, connection, polled, at=read_at)
    c.touched.update(dict.fromkeys(touched))
    c.opened, c.closed = c.opened + opened, c.closed + closed


def threat_events(snapshot: ThreatSnapshot) -> PolledAlerts:
    per_agent: dict[tuple[str, str], list[Any]] = defaultdict(list)
    for threat in snapshot.threats:
        per_agent[(threat.customer_id, threat.agent_id or f"threat:{threat.threat_id}")].append(threat)
    events = []
    for (customer_id, agent_id), threats in sorted(per_agent.items()):
        open_ = [t for t in threats if not t.resolved]
        latest = max((t.updated_at or t.detected_at) for t in threats)
        if open_:
            described = "; ".join(
                f"{t.name} ({', '.join(x for x in (t.classification, t.severity, t.mitigation_state) if x)})"
                for t in sorted(open_, key=lambda t: t.detected_at)
            )
            events.append(
                AlertEvent(
                    event_id=f"threats:{agent_id}:{latest.isoformat()}",
                    client_id=customer_id,
                    endpoint_id=agent_id,
                    hostname=open_[0].hostname,
                    problem=ProblemKind.THREAT_DETECTED,
                    state="active",
                    message=f"{len(open_)} open threat(s): {described}"[:2000],
                    occurred_at=latest,
                )
            )
        else:
            events.append(
                AlertEvent(
                    event_id=f"threats:{agent_id}:{latest.isoformat()}:resolved",
                    client_id=customer_id,
                    endpoint_id=agent_id,
                    hostname=threats[0].hostname,
                    problem=ProblemKind.THREAT_DETECTED,
                    state="cleared",
                    message="the console resolved every threat of this agent",
                    occurred_at=latest,
                )
            )
    return PolledAlerts(events=events, complete_for=snapshot.complete_for)


async def _retire_missing(services: Services, run: SyncRun, connection: Connection, c: Counters) -> None:
    now = datetime.now(UTC)
    async with db.transaction(services.sessions) as session:
        active = ConsoleAgent.connection_id == connection.id, ConsoleAgent.retired_at.is_(None)
        known = int(await session.scalar(select(func.count()).select_from(ConsoleAgent).where(*active)) or 0)
        missing = list(
            await session.scalars(
                select(ConsoleAgent).where(
                    *active,
                    (ConsoleAgent.seen_in_run_id != run.id) | ConsoleAgent.seen_in_run_id.is_(None),
                )
            )
        )
        if not missing:
            return
        if known > 20 and len(missing) > known * RETIRE_GUARD_SHARE:
            c.errors.append(
                {
                    "stage": "retire",
                    "type": "RetireGuard",
                    "message": f"the console listed {known - len(missing)} of {known} known agents; "
                    f"refusing to retire {len(missing)} at once",
                }
            )
            return
        for row in sorted(missing, key=lambda r: r.agent_id):
            row.retired_at, row.endpoint_ref, row.match_rule = now, None, None
            c.retired += 1
            for problem in await clear_retired(
                session, connection, row.agent_id, message="the agent is no longer in the console", at=now
            ):
                c.closed += 1
                c.touched[problem.id] = None


# ---------------------------------------------------------------------------------------------
# Matching and coverage
# ---------------------------------------------------------------------------------------------


async def rematch(services: Services, tenant_id: str) -> None:
    """Match every console's agents of the tenant to the RMM endpoints, storing only changes."""
    async with db.transaction(services.sessions) as session:
        consoles = await consoles_of(session, tenant_id)
        if not consoles:
            return
        scopes = await company_scopes(session, tenant_id)
        endpoint_rows = (
            await session.execute(
                db.scoped(
                    select(
                        Endpoint.id,
                        Endpoint.rmm_connection_id,
                        Endpoint.client_id,
                        Endpoint.hostname,
                        Endpoint.serial_number,
                        Endpoint.mac_addresses,
                    ).where(Endpoint.retired_at.is_(None)),
                    Endpoint,
                    tenant_id,
                )
            )
        ).all()
        endpoints = [
            Device(ref, scopes.get((conn, client)), host, serial, tuple(macs or ()))
            for ref, conn, client, host, serial, macs in endpoint_rows
        ]
        live = {ref for ref, *_ in endpoint_rows}
        for console in consoles:
            overrides = {
                agent_id: ref
                for agent_id, ref in await session.execute(
                    select(AgentMatchOverride.agent_id, AgentMatchOverride.endpoint_ref).where(
                        AgentMatchOverride.connection_id == console.id
                    )
                )
                if ref in live
            }
            agents = list(
                await session.scalars(
                    select(ConsoleAgent).where(
                        ConsoleAgent.connection_id == console.id, ConsoleAgent.retired_at.is_(None)
                    )
                )
            )
            by_ref = {row.agent_id: row for row in agents}
            result = match_devices(
                endpoints,
                [
                    Device(
                        row.agent_id,
                        scopes.get((console.id, row.customer_id)),
                        row.hostname,
                        row.serial_number,
                        tuple(row.mac_addresses or ()),
                        row.last_seen_at,
                    )
                    for row in agents
                ],
                overrides,
            )
            for agent_id, found in sorted(result.items()):  # the agents' lock order, as a page stores them
                row = by_ref[agent_id]
                rule = found.rule.value if found.rule is not None else None
                note = found.note[:500] if found.note else None
                if (row.endpoint_ref, row.match_rule, row.match_note) != (found.endpoint, rule, note):
                    row.endpoint_ref, row.match_rule, row.match_note = found.endpoint, rule, note


async def _companies_not_read_completely(
    session: AsyncSession, tenant_id: str, scopes: dict[tuple[str, str], str]
) -> set[str]:
    """The PSA companies with an RMM client whose connection never finished a full pass: an agent
    there may be on a device the RMM has simply not listed yet."""
    rmms = set(
        await session.scalars(
            db.scoped(select(Connection.id), Connection, tenant_id).where(Connection.role == "rmm")
        )
    )
    read = set(
        await session.scalars(
            select(SyncCursor.connection_id).where(
                SyncCursor.connection_id.in_(rmms), SyncCursor.last_full_at.is_not(None)
            )
        )
    )
    return {company for (source, _), company in scopes.items() if source in rmms and source not in read}


async def evaluate_agents(
    services: Services,
    tenant_id: str,
    limits: domain.Thresholds,
    c: Counters,
    *,
    syncing: str | None = None,
) -> None:
    """The coverage problems of every console agent of the tenant (after `rematch`). `syncing`: the
    console whose sync this is; another console that is syncing right now may have stored agents
    its own `rematch` has not seen yet, so none of its agents is called unmanaged here (its own
    evaluation, at the end of its sync, decides)."""
    now = datetime.now(UTC)
    async with db.transaction(services.sessions) as session:
        consoles = await consoles_of(session, tenant_id)
        if not consoles:
            return
        scopes = await company_scopes(session, tenant_id)
        unread = await _companies_not_read_completely(session, tenant_id, scopes)
        busy = set(
            await session.scalars(
                select(SyncRun.connection_id).where(
                    SyncRun.connection_id.in_([console.id for console in consoles if console.id != syncing]),
                    SyncRun.status == SyncStatus.RUNNING,
                )
            )
        )
        for console in consoles:
            agents = list(
                await session.scalars(
                    select(ConsoleAgent).where(
                        ConsoleAgent.connection_id == console.id, ConsoleAgent.retired_at.is_(None)
                    )
                )
            )
            offline = await _offline_endpoints(
                session, [a.endpoint_ref for a in agents if a.endpoint_ref], limits, now
            )
            open_problems = {
                (p.endpoint_id, p.kind)
                for p in await session.scalars(
                    select(Problem).where(
                        Problem.rmm_connection_id == console.id,
                        Problem.state == ProblemStatus.OPEN,
                        Problem.kind.in_(COVERAGE_KINDS),
                    )
                )
            }
            changes: list[tuple[ConsoleAgent, domain.Finding]] = []
            for row in agents:
                for finding in coverage.agent_findings(
                    to_agent_status(row),
                    mapped=(console.id, row.customer_id) in scopes,
                    matched=row.endpoint_ref is not None,
                    endpoint_offline=offline.get(row.endpoint_ref) if row.endpoint_ref else None,
                    limits=limits,
                    now=now,
                ):
                    is_open = (row.agent_id, finding.kind.value) in open_problems
                    if (
                        finding.kind == ProblemKind.UNMANAGED_AGENT
                        and finding.present
                        and (console.id in busy or scopes.get((console.id, row.customer_id)) in unread)
                    ):
                        continue  # "no RMM endpoint matches" means nothing until the RMM was read
                    if (finding.present and not is_open) or (finding.present is False and is_open):
                        changes.append((row, finding))
            changes.sort(key=lambda change: (change[0].agent_id, change[1].kind.value))
            for row, finding in changes:
                if finding.present:
                    problem = await observe_active(
                        session,
                        console,
                        endpoint_id=row.agent_id,
                        client_id=row.customer_id,
                        hostname=row.hostname,
                        kind=finding.kind,
                        message=finding.message,
                        at=now,
                        source=ProblemSource.CONSOLE,
                    )
                    if problem is not None:
                        c.opened += 1
                        c.touched[problem.id] = None
                else:
                    cleared = await observe_cleared(
                        session,
                        console,
                        endpoint_id=row.agent_id,
                        kind=finding.kind,
                        message="an RMM endpoint matches the agent now"
                        if finding.kind is ProblemKind.UNMANAGED_AGENT
                        else "the security agent checked in",
                        at=now,
                    )
                    if cleared is not None:
                        c.closed += 1
                        c.touched[cleared.id] = None


async def _offline_endpoints(
    session: AsyncSession, refs: Sequence[str], limits: domain.Thresholds, now: datetime
) -> dict[str, bool]:
    out: dict[str, bool] = {}
    limit = timedelta(days=limits.offline_after_days)
    for start in range(0, len(refs), 1000):
        for ref, online, seen in await session.execute(
            select(Endpoint.id, Endpoint.online, Endpoint.last_seen_at).where(
                Endpoint.id.in_(refs[start : start + 1000])
            )
        ):
            out[ref] = online is False or (seen is not None and now - seen > limit)
    return out
