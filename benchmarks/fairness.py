"""Fairness between tenants in the job queue: tenant A has a 100,000-job backfill queued (cheap
jobs of a benchmark-only kind) and the job worker is busy with it; then tenant B's RMM sends an
alert through `POST /webhooks/…` and the benchmark measures how long until B's delivery is
processed and until B's ticket exists in the PSA fake (answering at once). Rounds rotate between
the fair claim order, the order before it (the oldest runnable jobs, whoever they belong to) and
no backlog at all (what an alert takes on this machine when nothing else waits), each round at
least `--round-seconds` long; B sends one alert after another for the whole round. An alert not
handled by the end of its round is shown with the number of A's jobs still queued ahead of it and
the time the worker would need for them at the throughput it showed.

    .venv/bin/python -m benchmarks.fairness [--backend sqlite|postgresql ...] [--backlog 100000]
        [--rounds 3] [--round-seconds 10] [--concurrency 4] [--claims 20] [--psa connectwise_manage]

Before the rounds, `--claims` claims of one job are timed in each order with the backlog queued
(`--rounds 0`: only those).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
from cryptography.fernet import Fernet
from sqlalchemy import delete, func, insert, select, text

from adapters.base import ProblemKind
from adapters.registry import discover
from adapters.testing.harness import PsaHarness, PsaWorld
from benchmarks.tenant import Tenant, build_tenant, psa_harnesses
from connector.app import create_app
from connector.infra import db
from connector.infra.context import Services
from connector.infra.jobs import queue
from connector.infra.jobs.kinds import HandlerTable, JobContext, JobKind, JobPayload, handles
from connector.infra.jobs.worker import Worker
from connector.infra.logs import configure_logging
from connector.infra.security.apikeys import ApiRole
from connector.models import Delivery, Job
from connector.runtime import JOB_HANDLERS, build_services
from connector.settings import Settings
from connector.statuses import JobStatus
from connector.tenants.service import create_api_key, get_or_create_tenant
from tests.support.dummy_adapters import DUMMY_RMM
from tests.support.vendors import VendorRouter

PG_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
WARM_UP_SECONDS = 1.0
POLL_SECONDS = 0.01
BETWEEN_ALERTS_SECONDS = 0.25


class BackfillJob(JobPayload):
    n: int


BACKFILL = JobKind("benchmark_backfill", BackfillJob)
"""One step of tenant A's backfill: does nothing, so the queue itself is what is measured."""


async def backfill_step(_context: JobContext, _job: BackfillJob) -> None:
    return None


@dataclass
class Alert:
    sent_at: float
    processed_after: float | None = None
    ticket_after: float | None = None


FAIR, OLDEST, IDLE = "fair", "oldest first", "no backlog"
ORDERS = (FAIR, OLDEST, IDLE)


@dataclass
class Round:
    order: str
    seconds: float
    backfill_done: int
    alerts: list[Alert] = field(default_factory=list)
    ahead: int = 0
    """A's jobs still queued ahead of B's first unhandled alert at the round's end."""

    @property
    def throughput(self) -> float:
        return self.backfill_done / self.seconds

    @property
    def unhandled(self) -> list[Alert]:
        return [a for a in self.alerts if a.ticket_after is None]


class Bench:
    def __init__(self, services: Services, stack: Tenant, psa: PsaWorld, company: str, backfill_tenant: str):
        self.services = services
        self.stack = stack
        self.psa = psa
        self.company = company
        self.backfill_tenant = backfill_tenant
        self.sent = 0
        self.base = datetime.now(UTC) - timedelta(hours=1)
        self.next_step = 0

    async def top_up(self, backlog: int) -> None:
        """Tenant A has `backlog` queued backfill jobs again, each due before anything B sends."""
        async with db.transaction(self.services.sessions) as session:
            finished = [JobStatus.DONE] if backlog else [JobStatus.DONE, JobStatus.QUEUED]
            await session.execute(delete(Job).where(Job.kind == BACKFILL.name, Job.status.in_(finished)))
        async with self.services.sessions() as session:
            queued = await session.scalar(
                select(func.count()).where(Job.kind == BACKFILL.name, Job.status == JobStatus.QUEUED)
            )
        missing = backlog - int(queued or 0)
        for start in range(0, missing, 10_000):
            rows = [
                BACKFILL.row(
                    BackfillJob(n=self.next_step + i),
                    tenant_id=self.backfill_tenant,
                    run_after=self.base + timedelta(microseconds=self.next_step + i),
                )
                for i in range(start, min(missing, start + 10_000))
            ]
            async with db.transaction(self.services.sessions) as session:
                await session.execute(insert(Job), rows)
        self.next_step += max(missing, 0)
        if db.backend(self.services.engine) == "postgresql":
            async with self.services.engine.connect() as conn:
                await (await conn.execution_options(isolation_level="AUTOCOMMIT")).execute(
                    text("VACUUM ANALYZE jobs")
                )

    async def backfill_done(self) -> int:
        async with self.services.sessions() as session:
            done = await session.scalar(
                select(func.count()).where(Job.kind == BACKFILL.name, Job.status == JobStatus.DONE)
            )
        return int(done or 0)

    async def send_alert(self) -> tuple[Alert, str]:
        n = self.sent
        self.sent += 1
        sent_at = time.perf_counter()
        response = await self.stack.post_alert(
            {
                "event_id": f"fair-{uuid.uuid4().hex}",
                "client_id": "c-0",
                "endpoint_id": f"ep-{n}",
                "hostname": f"WS-{n:04d}",
                "problem": ProblemKind.THREAT_DETECTED.value,
                "state": "active",
                "message": "reported by the benchmark",
                "occurred_at": datetime.now(UTC).isoformat(),
            }
        )
        assert response.status_code == 202, response.text
        return Alert(sent_at), str(response.json()["delivery_id"])

    async def follow(self, alert: Alert, delivery_id: str, tickets_before: int, deadline: float) -> None:
        while time.perf_counter() < deadline:
            if alert.processed_after is None:
                async with self.services.sessions() as session:
                    status = await session.scalar(select(Delivery.status).where(Delivery.id == delivery_id))
                if status == "processed":
                    alert.processed_after = time.perf_counter() - alert.sent_at
            if len(self.psa.tickets(self.company)) > tickets_before:
                alert.ticket_after = time.perf_counter() - alert.sent_at
                alert.processed_after = alert.processed_after or alert.ticket_after
                return
            await asyncio.sleep(POLL_SECONDS)

    async def claim_costs(self, backlog: int, samples: int) -> dict[str, list[float]]:
        """The time one claim of one job takes (its commit included) with `backlog` jobs queued,
        in each order, alternating."""
        await self.top_up(backlog)
        kinds = [*JOB_HANDLERS.names(), BACKFILL.name]
        costs: dict[str, list[float]] = {FAIR: [], OLDEST: []}
        for n in range(samples):
            for order in (FAIR, OLDEST) if n % 2 == 0 else (OLDEST, FAIR):
                started = time.perf_counter()
                [job] = await queue.claim(
                    self.services.sessions,
                    "bench",
                    limit=1,
                    lease=timedelta(minutes=5),
                    kinds=kinds,
                    fair=order == FAIR,
                )
                costs[order].append(time.perf_counter() - started)
                async with db.transaction(self.services.sessions) as session:
                    await queue.complete(session, job)
        return costs

    async def one_round(self, order: str, args: argparse.Namespace) -> Round:
        """A round of one claim order; `IDLE`: the fair order with no backlog at all (what an alert
        takes on this machine when nothing else waits)."""
        await self.top_up(0 if order == IDLE else args.backlog)
        done_before = await self.backfill_done()
        worker = Worker(
            self.services,
            handlers=HandlerTable.of(
                [*JOB_HANDLERS.registrations.values(), handles(BACKFILL, backfill_step)]
            ),
            concurrency=args.concurrency,
            poll_interval=1.0,
            fair=order != OLDEST,
        )
        self.services.wake_listeners.append(worker.wake)
        task = asyncio.create_task(worker.run())
        started = time.perf_counter()
        deadline = started + args.round_seconds
        await asyncio.sleep(WARM_UP_SECONDS)
        alerts = []
        while time.perf_counter() < deadline:
            tickets_before = len(self.psa.tickets(self.company))
            alert, delivery_id = await self.send_alert()
            alerts.append(alert)
            # Followed past the round's end if need be, so a fair round's last alert is not cut short.
            await self.follow(alert, delivery_id, tickets_before, max(deadline, alert.sent_at + 5.0))
            if alert.ticket_after is None:
                break
            await asyncio.sleep(BETWEEN_ALERTS_SECONDS)
        self.services.wake_listeners.remove(worker.wake)
        await worker.stop()
        await asyncio.wait_for(task, 60)  # its claim in flight ends, then the loop sees the stop
        seconds = time.perf_counter() - started
        result = Round(order, seconds, await self.backfill_done() - done_before, alerts)
        async with self.services.sessions() as session:
            result.ahead = int(
                await session.scalar(
                    select(func.count()).where(Job.kind == BACKFILL.name, Job.status == JobStatus.QUEUED)
                )
                or 0
            )
        async with db.transaction(self.services.sessions) as session:
            # B's unhandled alert does not carry over into the next round.
            await session.execute(
                delete(Job).where(
                    Job.kind != BACKFILL.name, Job.status.in_([JobStatus.QUEUED, JobStatus.RUNNING])
                )
            )
        return result


def _figure(values: list[float]) -> str:
    if not values:
        return "—"
    return f"{statistics.median(values) * 1000:7.0f} ms (max {max(values) * 1000:.0f} ms, n={len(values)})"


def report(
    backend: str, args: argparse.Namespace, rounds: list[Round], costs: dict[str, list[float]]
) -> None:
    print(
        f"\n{backend}: tenant A's backfill of {args.backlog:,} queued jobs, tenant B's alerts through the "
        f"webhook, worker concurrency {args.concurrency}, PSA answering at once"
    )
    for order, times in costs.items():
        print(
            f"claim of one job with {args.backlog:,} queued, {order:<12}: median "
            f"{statistics.median(times) * 1000:6.1f} ms ({min(times) * 1000:.1f}–{max(times) * 1000:.1f} ms, "
            f"n={len(times)}, commit included)"
        )
    if not rounds:
        return
    print(
        f"{'round':>5}  {'claim order':<12} {'B: delivery processed':<36} {'B: ticket exists':<36} A jobs/s"
    )
    for n, r in enumerate(rounds, 1):
        processed = [a.processed_after for a in r.alerts if a.processed_after is not None]
        tickets = [a.ticket_after for a in r.alerts if a.ticket_after is not None]
        rate = f"{r.throughput:8.0f}" if r.order != IDLE else f"{'—':>8}"
        line = f"{n:>5}  {r.order:<12} {_figure(processed):<36} {_figure(tickets):<36} {rate}"
        if r.unhandled:
            estimate = r.ahead / r.throughput if r.throughput else float("inf")
            line += (
                f"\n{'':>19}alert not handled after {r.seconds - WARM_UP_SECONDS:.1f} s: {r.ahead:,} of A's "
                f"jobs still ahead of it (~{estimate:,.0f} s more at {r.throughput:,.0f} jobs/s)"
            )
        print(line)
    print("over all rounds:")
    for order in ORDERS:
        same = [r for r in rounds if r.order == order]
        tickets = [a.ticket_after for r in same for a in r.alerts if a.ticket_after is not None]
        unhandled = sum(len(r.unhandled) for r in same)
        line = (
            f"{order:>12}: B's ticket after {_figure(tickets)}; {unhandled} alert(s) unhandled at round end"
        )
        if order != IDLE:
            rates = [r.throughput for r in same]
            line += (
                f"; A's backfill {statistics.median(rates):,.0f} jobs/s ({min(rates):,.0f}–{max(rates):,.0f})"
            )
        print(line)
    fair_rates = [r.throughput for r in rounds if r.order == FAIR]
    old_rates = [r.throughput for r in rounds if r.order == OLDEST]
    ratios = [f / o for f, o in zip(fair_rates, old_rates, strict=False) if o]
    if ratios:
        print(
            f"A's backfill throughput, fair / oldest first (rounds paired in order): "
            f"{statistics.median(ratios):.2f} ({min(ratios):.2f}–{max(ratios):.2f})"
        )


async def one_backend(backend: str, harness: PsaHarness, args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        common = {
            "data_dir": Path(tmp),
            "secret_key": Fernet.generate_key().decode(),
            "run_worker": False,
            "run_scheduler": False,
        }
        schema = f"bench_{uuid.uuid4().hex[:8]}"
        if backend == "postgresql":
            settings = Settings(database_url=PG_URL, database_schema=schema, **common)
        else:
            settings = Settings(database_url=f"sqlite+aiosqlite:///{tmp}/bench.db", **common)
        await db.migrate(settings.resolved_database_url(), schema=settings.database_schema)
        vendors = VendorRouter()
        registry = discover()
        registry.add(DUMMY_RMM)
        services = build_services(settings, registry=registry, transport_factory=vendors.factory)
        app = create_app(services=services, migrate=False)
        try:
            async with (
                app.router.lifespan_context(app),
                httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://bench") as client,
            ):
                async with db.transaction(services.sessions) as session:
                    tenant_a = await get_or_create_tenant(session, "backfill")
                    tenant_b = await get_or_create_tenant(session, "alerting")
                    _, key = await create_api_key(session, tenant_b, ApiRole.ENGINEER, "bench")
                    backfill_tenant = tenant_a.id
                psa = harness.start(companies=["Client 0"], devices_per_company=0)
                stack = await build_tenant(client, {"Authorization": f"Bearer {key}"}, vendors, psa)
                company = next(iter(psa.companies))
                await stack.map_client("c-0", company)
                psa.set_latency(0.0)
                bench = Bench(services, stack, psa, company, backfill_tenant)
                costs = await bench.claim_costs(args.backlog, args.claims)
                rounds = []
                for n in range(args.rounds):
                    for k in range(len(ORDERS)):  # rotated, so no order always runs first
                        rounds.append(await bench.one_round(ORDERS[(n + k) % len(ORDERS)], args))
                report(backend, args, rounds, costs)
        finally:
            await services.aclose()
            if backend == "postgresql":
                engine = db.create_engine(PG_URL)
                async with engine.begin() as conn:
                    await conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
                await engine.dispose()


async def main(args: argparse.Namespace) -> None:
    configure_logging("WARNING")
    [harness] = psa_harnesses(args.psa or ["connectwise_manage"])
    for backend in args.backend or ["sqlite", "postgresql"]:
        await one_backend(backend, harness, args)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--backend", action="append", choices=["sqlite", "postgresql"])
    parser.add_argument("--backlog", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=3, help="rounds of each claim order")
    parser.add_argument("--round-seconds", type=float, default=10.0)
    parser.add_argument("--claims", type=int, default=20, help="claims timed in each order before the rounds")
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument(
        "--psa", action="append", metavar="KIND", help="the PSA kind (default connectwise_manage)"
    )
    asyncio.run(main(parser.parse_args()))
