"""Endpoint security status onto the PSA's configuration records, one job per mapped RMM client.

Pushes run as jobs rather than inside the sync run: a slow or failing PSA neither holds the RMM sync
nor loses work (the job retries with backoff), and only fields that changed since the last write
are sent (`endpoints.pushed_fields_fingerprint`)."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Iterable
from datetime import UTC, datetime

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from adapters.base import ConfigurationUpdate
from adapters.errors import AdapterError
from connector.fleet import domain
from connector.infra import db
from connector.infra.context import Services
from connector.infra.jobs import queue
from connector.models import ClientMapping, Connection, Endpoint, SyncRun, Tenant, TicketRule
from mappings.resolution import configuration_rule

PSA_CONCURRENCY = 8


async def enqueue_configuration_pushes(session: AsyncSession, run: SyncRun, dirty: Iterable[str]) -> None:
    """A push job for every mapped client that changed in the run, that has endpoints never pushed,
    or — on a full pass — every mapped client (which repairs drift at the cost of a database read)."""
    mapped = set(
        await session.scalars(
            select(ClientMapping.rmm_client_id).where(ClientMapping.rmm_connection_id == run.connection_id)
        )
    )
    if not mapped:
        return
    wanted = mapped if run.full else mapped & set(dirty)
    never = await session.scalars(
        select(Endpoint.client_id)
        .where(
            Endpoint.rmm_connection_id == run.connection_id,
            Endpoint.retired_at.is_(None),
            Endpoint.pushed_fields_fingerprint.is_(None),
            Endpoint.client_id.in_(mapped),
        )
        .distinct()
    )
    for client_id in sorted(wanted | set(never)):
        await queue.enqueue(
            session,
            tenant_id=run.tenant_id,
            kind="configurations",
            payload={"connection_id": run.connection_id, "client_id": client_id, "run_id": run.id},
            unique_key=f"configurations:{run.connection_id}:{client_id}",
        )


async def push_client(services: Services, connection_id: str, client_id: str, run_id: str | None) -> int:
    """Write the client's changed endpoint statuses; returns PSA calls made. Transient PSA failures
    propagate after the successful writes are recorded, so the job's retry sends only the rest."""
    now = datetime.now(UTC)
    async with services.sessions() as session:
        mapping = await session.scalar(
            select(ClientMapping).where(
                ClientMapping.rmm_connection_id == connection_id, ClientMapping.rmm_client_id == client_id
            )
        )
        if mapping is None:
            return 0
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
            return 0
        rows = list(
            await session.scalars(
                select(Endpoint).where(
                    Endpoint.rmm_connection_id == connection_id,
                    Endpoint.client_id == client_id,
                    Endpoint.retired_at.is_(None),
                )
            )
        )
    from connector.sync.run import thresholds_of, to_status

    limits = thresholds_of(tenant)
    work = []
    for row in rows:
        status = to_status(row)
        fields = domain.configuration_fields(status, domain.health(status, limits, now))
        fingerprint = domain.fields_fingerprint(fields)
        if fingerprint != row.pushed_fields_fingerprint:
            update_ = ConfigurationUpdate(
                company_id=mapping.psa_company_id,
                device_name=row.hostname,
                serial_number=row.serial_number,
                create_if_missing=bool(rule and rule.create_configurations),
                fields=fields,
            )
            work.append((row.id, update_, fingerprint))
    if not work:
        return 0
    adapter = await services.adapters.psa(psa)
    slots = asyncio.Semaphore(PSA_CONCURRENCY)
    pushed: list[tuple[str, str]] = []
    errors: list[dict[str, str]] = []
    transient: list[AdapterError] = []

    async def push(row_id: str, update_: ConfigurationUpdate, fingerprint: str) -> None:
        async with slots:
            try:
                await adapter.upsert_configuration(update_)
            except AdapterError as exc:
                if exc.retryable:
                    transient.append(exc)
                else:
                    errors.append(
                        {"stage": "psa_configuration", "endpoint": update_.device_name, "message": str(exc)}
                    )
                return
        pushed.append((row_id, fingerprint))

    await asyncio.gather(*(push(*item) for item in work))
    by_fingerprint: dict[str, list[str]] = defaultdict(list)
    for row_id, fingerprint in pushed:
        by_fingerprint[fingerprint].append(row_id)
    async with db.transaction(services.sessions) as session:
        for fingerprint, ids in by_fingerprint.items():
            await session.execute(
                update(Endpoint).where(Endpoint.id.in_(ids)).values(pushed_fields_fingerprint=fingerprint)
            )
        if run_id is not None:
            run = await session.get(SyncRun, run_id, with_for_update=True)  # concurrent jobs add up
            if run is not None:
                run.psa_calls += len(work)
                if errors:
                    run.errors = [*run.errors, *errors[: max(0, 50 - len(run.errors))]]
    if transient:
        raise transient[0]
    return len(work)
