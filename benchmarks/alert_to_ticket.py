"""Alert-to-ticket: 1,000 alerts over 200 endpoints through `POST /webhooks/…`, the job worker and
a PSA adapter against its stateful fake answering every call after 50 ms, for every installed PSA
kind with a harness (or those named with `--psa`). Prints the time until the last ticket exists,
tickets created (must equal distinct problems) and the PSA calls made.

    .venv/bin/python -m benchmarks.alert_to_ticket [--alerts 1000] [--endpoints 200] [--latency 0.05]
        [--concurrency 8] [--backend sqlite|postgresql] [--psa KIND ...]
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import tempfile
import time
import uuid
from pathlib import Path

import httpx
from cryptography.fernet import Fernet
from sqlalchemy import text

from adapters.base import ProblemKind
from adapters.registry import discover
from adapters.testing.harness import PsaHarness
from benchmarks.tenant import add_psa_argument, build_tenant, calls_by_method, psa_harnesses
from connector import runtime
from connector.app import create_app
from connector.infra import db
from connector.infra.security.apikeys import ApiRole
from connector.runtime import build_services
from connector.settings import Settings
from connector.tenants.service import create_api_key, get_or_create_tenant
from tests.support.dummy_adapters import DUMMY_RMM
from tests.support.vendors import VendorRouter

PG_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
KINDS = [ProblemKind.THREAT_DETECTED, ProblemKind.PROTECTION_DISABLED, ProblemKind.DEFINITIONS_OUTDATED]


async def main(args: argparse.Namespace) -> None:
    for harness in psa_harnesses(args.psa):
        await one_psa(harness, args)


async def one_psa(harness: PsaHarness, args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        common = {"data_dir": Path(tmp), "secret_key": Fernet.generate_key().decode(), "run_worker": False}
        schema = f"bench_{uuid.uuid4().hex[:8]}"
        if args.backend == "postgresql":
            settings = Settings(database_url=PG_URL, database_schema=schema, **common)
        else:
            settings = Settings(database_url=f"sqlite+aiosqlite:///{tmp}/bench.db", **common)
        await db.migrate(settings.resolved_database_url(), schema=settings.database_schema)
        vendors = VendorRouter()
        registry = discover()
        registry.add(DUMMY_RMM)  # canonical alerts are parsed by the core: the RMM kind does not matter
        services = build_services(settings, registry=registry, transport_factory=vendors.factory)
        app = create_app(services=services, migrate=False)
        try:
            async with (
                app.router.lifespan_context(app),
                httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://bench") as client,
            ):
                async with db.transaction(services.sessions) as session:
                    tenant = await get_or_create_tenant(session, "default")
                    _, key = await create_api_key(session, tenant, ApiRole.ENGINEER, "bench")
                clients = [f"c-{n}" for n in range(10)]
                psa = harness.start(companies=[f"Client {n}" for n in clients], devices_per_company=0)
                stack = await build_tenant(client, {"Authorization": f"Bearer {key}"}, vendors, psa)
                for client_id, company in zip(clients, psa.companies, strict=True):
                    await stack.map_client(client_id, company)
                psa.set_latency(args.latency)
                psa.reset_calls()

                problems = set()
                started = time.perf_counter()
                for n in range(args.alerts):
                    endpoint = n % args.endpoints
                    kind = KINDS[(n // args.endpoints) % len(KINDS)] if n % 7 else KINDS[0]
                    problems.add((endpoint, kind))
                    alert = {
                        "event_id": f"evt-{n}",
                        "client_id": clients[endpoint % len(clients)],
                        "endpoint_id": f"ep-{endpoint}",
                        "hostname": f"WS-{endpoint:04d}",
                        "problem": kind.value,
                        "state": "active",
                        "message": "reported by the benchmark",
                        "occurred_at": "2026-11-20T10:00:00Z",
                    }
                    response = await stack.post_alert(alert)
                    assert response.status_code == 202, response.text
                ingested = time.perf_counter() - started
                profiler = cProfile.Profile(time.process_time) if args.profile else None
                cpu = time.process_time()
                if profiler is not None:
                    profiler.enable()
                jobs = await runtime.worker(services, concurrency=args.concurrency).run_until_idle()
                if profiler is not None:
                    profiler.disable()
                    profiler.dump_stats(args.profile)
                worker_cpu = time.process_time() - cpu
                elapsed = time.perf_counter() - started
        finally:
            await services.aclose()
            if args.backend == "postgresql":
                engine = db.create_engine(PG_URL)
                async with engine.begin() as conn:
                    await conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
                await engine.dispose()

    tickets = sum(len(psa.tickets(company)) for company in psa.companies)
    print(
        f"{harness.spec.kind}: {args.alerts} alerts over {args.endpoints} endpoints, PSA latency "
        f"{args.latency * 1000:.0f} ms, worker concurrency {args.concurrency}, {args.backend}"
    )
    print(f"alerts accepted (202) in          {ingested:7.2f} s")
    print(f"last ticket exists after          {elapsed:7.2f} s   ({jobs} jobs run)")
    print(f"distinct problems                 {len(problems):7d}")
    print(
        f"tickets created                   {tickets:7d}   {'OK' if tickets == len(problems) else 'MISMATCH'}"
    )
    print(
        f"worker CPU per ticket             {worker_cpu * 1000 / max(tickets, 1):7.1f} ms "
        f"({worker_cpu:.2f} s of process CPU for {jobs} jobs)"
    )
    print(f"PSA calls                         {psa.request_count():7d}   {calls_by_method(psa)}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--alerts", type=int, default=1000)
    parser.add_argument("--endpoints", type=int, default=200)
    parser.add_argument("--latency", type=float, default=0.05)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--backend", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--profile", metavar="FILE", help="write a cProfile of the worker phase to FILE")
    add_psa_argument(parser)
    asyncio.run(main(parser.parse_args()))
