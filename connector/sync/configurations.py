"""Endpoint security status onto the PSA's configuration records, one job per mapped RMM client.

Pushes run as jobs rather than inside the sync run: a slow or failing PSA neither holds the RMM sync
nor loses work (the job retries with backoff), and only fields that changed since the last write
are sent (`endpoints.pushed_fields_fingerprint`)."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from adapters.base import ConfigurationUpdate, PsaAdapter
from adapters.errors import AdapterError
from connector.audit import service as audit
from connector.audit.domain import WORKER
from connector.fleet import domain
from connector.fleet.consoles import console_views
from connector.fleet.coverage import ConsoleView, effective_status
from connector.fleet.domain import Thresholds
from connector.fleet.endpoints import thresholds_of, to_status
from connector.infra import db
from connector.infra.context import Services
from connector.infra.jobs.kinds import enqueue
from connector.models import (
    ClientMapping,
    Connection,
    Endpoint,
    EndpointConfiguration,
    SyncRun,
    Tenant,
    TicketRule,
)
from connector.sync.jobs import CONFIGURATIONS, ConfigurationsJob
from mappings.resolution import configuration_rule

PSA_CONCURRENCY = 8


async def enqueue_configuration_pushes(
    session: AsyncSession, run: SyncRun, connection_id: str, dirty: Iterable[str]
) -> None:
    """A push job for every mapped client of the RMM connection that changed in the run, that has
    endpoints never pushed, or — on a full pass of that connection — every mapped client (which
    repairs drift at the cost of a database read). A console run passes the RMM connections whose
    endpoints its agents changed; its own connection has no endpoints, so it queues nothing."""
    mapped = set(
        await session.scalars(
            select(ClientMapping.rmm_client_id).where(ClientMapping.rmm_connection_id == connection_id)
        )
    )
    if not mapped:
        return
    owns = await session.get(Connection, connection_id)
    if owns is None or owns.role != "rmm":
        return
    wanted = mapped if run.full and connection_id == run.connection_id else mapped & set(dirty)
    never = await session.scalars(
        select(Endpoint.client_id)
        .where(
            Endpoint.rmm_connection_id == connection_id,
            Endpoint.retired_at.is_(None),
            Endpoint.pushed_fields_fingerprint.is_(None),
            Endpoint.client_id.in_(mapped),
        )
        .distinct()
    )
    for client_id in sorted(wanted | set(never)):
        await enqueue(
            session,
            CONFIGURATIONS,
            ConfigurationsJob(connection_id=connection_id, client_id=client_id, run_id=run.id),
            tenant_id=run.tenant_id,
        )


@dataclass(frozen=True)
class ClientTarget:
    """Where and how a client's endpoints are written, read in one short transaction."""

    company_id: str
    psa: Connection
    limits: Thresholds
    create_missing: bool
    """Whether the PSA may create a configuration record it does not have (the catch-all rule)."""
    endpoints: list[Endpoint]
    views: Mapping[str, ConsoleView] = field(default_factory=dict)
    """Endpoint row id → what the console covering it says: the record shows the effective status."""


@dataclass(frozen=True)
class PendingWrite:
    endpoint_row_id: str
    update: ConfigurationUpdate
    fingerprint: str
    """Of the fields written: recorded once the write succeeded, so an unchanged endpoint is skipped."""


@dataclass
class Outcome:
    written: list[PendingWrite] = field(default_factory=list)
    record_ids: dict[str, str | None] = field(default_factory=dict)
    """endpoint row id → the PSA configuration record written (None: missing and not created)."""
    errors: list[dict[str, str]] = field(default_factory=list)
    """Refusals the run reports (a retry would be refused again)."""
    transient: list[AdapterError] = field(default_factory=list)
    """Failures a retry may cure: the job raises the first after recording the rest."""


async def push_client(services: Services, connection_id: str, client_id: str, run_id: str | None) -> int:
    """Write the client's changed endpoint statuses; returns PSA calls made. Transient PSA failures
    propagate after the successful writes are recorded, so the job's retry sends only the rest."""
    now = datetime.now(UTC)
    target = await _load_client(services, connection_id, client_id)
    if target is None:
        return 0
    work = configuration_writes(target, now)
    if not work:
        return 0
    outcome = await _send(await services.adapters.psa(target.psa), work)
    await _record(services, run_id, outcome, calls=len(work), target=target, client_id=client_id)
    if outcome.transient:
        raise outcome.transient[0]
    return len(work)


async def _load_client(services: Services, connection_id: str, client_id: str) -> ClientTarget | None:
    """None when nothing is to be written: the client is unmapped, its PSA connection is gone or
    disabled, or the catch-all ticket rule turns configuration updates off."""
    async with services.sessions() as session:
        mapping = await session.scalar(
            select(ClientMapping).where(
                ClientMapping.rmm_connection_id == connection_id, ClientMapping.rmm_client_id == client_id
            )
        )
        if mapping is None:
            return None
        psa = await session.get(Connection, mapping.psa_connection_id)
        tenant = await session.get(Tenant, mapping.tenant_id)
        rule = configuration_rule(
            await session.scalars(
                db.tenant_rows(TicketRule, mapping.tenant_id).where(
                    TicketRule.psa_connection_id == mapping.psa_connection_id
                )
            )
        )
        if (
            psa is None
            or not psa.enabled
            or tenant is None
            or (rule is not None and not rule.update_configurations)
        ):
            return None
        endpoints = await session.scalars(
            select(Endpoint).where(
                Endpoint.rmm_connection_id == connection_id,
                Endpoint.client_id == client_id,
                Endpoint.retired_at.is_(None),
            )
        )
        rows = list(endpoints)
        return ClientTarget(
            company_id=mapping.psa_company_id,
            psa=psa,
            limits=thresholds_of(tenant),
            create_missing=bool(rule and rule.create_configurations),
            endpoints=rows,
            views=await console_views(session, connection_id, mapping.tenant_id, rows),
        )


def configuration_writes(target: ClientTarget, now: datetime) -> list[PendingWrite]:
    """The endpoints whose configuration fields differ from what was last written. Pure."""
    work = []
    for row in target.endpoints:
        status, _ = effective_status(to_status(row), target.views.get(row.id))
        fields = domain.configuration_fields(status, domain.health(status, target.limits, now))
        fingerprint = domain.fields_fingerprint(fields)
        if fingerprint != row.pushed_fields_fingerprint:
            update_ = ConfigurationUpdate(
                company_id=target.company_id,
                device_name=row.hostname,
                serial_number=row.serial_number,
                create_if_missing=target.create_missing,
                fields=fields,
            )
            work.append(PendingWrite(row.id, update_, fingerprint))
    return work


async def _send(adapter: PsaAdapter, work: list[PendingWrite]) -> Outcome:
    """Every write, PSA_CONCURRENCY at a time; a failure stops only its own endpoint."""
    slots = asyncio.Semaphore(PSA_CONCURRENCY)
    outcome = Outcome()

    async def send(write: PendingWrite) -> None:
        async with slots:
            try:
                record_id = await adapter.upsert_configuration(write.update)
            except AdapterError as exc:
                if exc.retryable:
                    outcome.transient.append(exc)
                else:
                    outcome.errors.append(
                        {
                            "stage": "psa_configuration",
                            "endpoint": write.update.device_name,
                            "message": str(exc),
                        }
                    )
                return
        outcome.written.append(write)
        outcome.record_ids[write.endpoint_row_id] = record_id

    await asyncio.gather(*(send(write) for write in work))
    return outcome


async def _record(
    services: Services,
    run_id: str | None,
    outcome: Outcome,
    *,
    calls: int,
    target: ClientTarget,
    client_id: str,
) -> None:
    """The written fingerprints (one statement per distinct one), an audit entry per write, and the
    calls and refusals on the sync run, whose row lock makes concurrent jobs add up."""
    by_fingerprint: dict[str, list[str]] = defaultdict(list)
    for write in outcome.written:
        by_fingerprint[write.fingerprint].append(write.endpoint_row_id)
    async with db.transaction(services.sessions) as session:
        for fingerprint, ids in by_fingerprint.items():
            await session.execute(
                update(Endpoint).where(Endpoint.id.in_(ids)).values(pushed_fields_fingerprint=fingerprint)
            )
        await _remember_records(session, target, outcome)
        for write in outcome.written:
            record_id = outcome.record_ids.get(write.endpoint_row_id)
            if record_id is None:  # the PSA has no such record and may not create it: nothing written
                continue
            audit.record(
                session,
                target.psa.tenant_id,
                "configuration.updated",
                WORKER,
                target_type="configuration",
                target_id=record_id,
                connection_id=target.psa.id,
                client_id=client_id,
                summary=f"configuration {record_id} of {write.update.device_name} written",
                after={"company_id": write.update.company_id, "fields": dict(write.update.fields)},
            )
        if run_id is not None:
            run = await session.get(SyncRun, run_id, with_for_update=True)
            if run is not None:
                run.psa_calls += calls
                if outcome.errors:
                    run.errors = [*run.errors, *outcome.errors[: max(0, 50 - len(run.errors))]]


async def _remember_records(session: AsyncSession, target: ClientTarget, outcome: Outcome) -> None:
    """Each written endpoint's configuration record on this PSA connection, kept for the tickets of
    its problems (`connector.alerts.tickets` attaches it); a record the PSA no longer has is
    forgotten."""
    if not outcome.written:
        return
    rows = [write.endpoint_row_id for write in outcome.written]
    known = {
        row.endpoint_ref: row
        for row in await session.scalars(
            select(EndpointConfiguration).where(
                EndpointConfiguration.psa_connection_id == target.psa.id,
                EndpointConfiguration.endpoint_ref.in_(rows),
            )
        )
    }
    gone = [ref for ref in rows if outcome.record_ids.get(ref) is None and ref in known]
    if gone:
        await session.execute(
            delete(EndpointConfiguration).where(
                EndpointConfiguration.psa_connection_id == target.psa.id,
                EndpointConfiguration.endpoint_ref.in_(gone),
            )
        )
    now = datetime.now(UTC)
    for ref in rows:
        record_id = outcome.record_ids.get(ref)
        if record_id is None:
            continue
        row = known.get(ref)
        if row is None:
            session.add(
                EndpointConfiguration(
                    tenant_id=target.psa.tenant_id,
                    endpoint_ref=ref,
                    psa_connection_id=target.psa.id,
                    configuration_id=record_id,
                    updated_at=now,
                )
            )
        elif row.configuration_id != record_id:
            row.configuration_id, row.updated_at = record_id, now
