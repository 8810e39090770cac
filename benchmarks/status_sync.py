"""Status sync at fleet scale: N endpoints in N/100 clients against an RMM answering each page after
50 ms and a PSA fake answering each call after 50 ms, for every installed PSA kind with a harness (or
those named with `--psa`). For each fleet size, prints wall time, peak RSS, RMM and PSA requests
for: the first full sync, a second sync with nothing changed, and a sync with 1 % of the endpoints
changed.

    .venv/bin/python -m benchmarks.status_sync [--sizes 5000,50000] [--latency 0.05] [--map-share 0.1]
        [--backend sqlite|postgresql] [--psa KIND ...] [--rmm KIND]

`--rmm KIND` syncs from that installed RMM kind's own fake (its harness) instead of the generic
fleet RMM, so its paging and request budget are what is measured.

`--map-share` is the share of clients mapped to a PSA company (their endpoints' configurations are
written to the PSA); the rest are synced and evaluated but have no PSA side.
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from cryptography.fernet import Fernet
from sqlalchemy import text

from adapters.registry import discover
from adapters.testing.harness import PsaHarness, RmmOperation, device_name, installed_harnesses
from benchmarks.tenant import (
    CONFIGURATION_FIELDS,
    add_psa_argument,
    build_tenant,
    calls_by_method,
    psa_harnesses,
)
from connector import runtime
from connector.app import create_app
from connector.infra import db
from connector.infra.security.apikeys import ApiRole
from connector.models import Connection
from connector.runtime import build_services
from connector.settings import Settings
from connector.sync.run import execute_run, start_run
from connector.tenants.service import create_api_key, get_or_create_tenant
from tests.support.fleet_rmm import FLEET_RMM, FLEETS, FleetFake

PG_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"


def rss_mb() -> float:
    """Current resident set size (the fakes' data lives in this process too: see `baseline`)."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class PeakRss:
    """Samples RSS every 50 ms while a run goes on (ru_maxrss is process-lifetime, not per run)."""

    def __init__(self) -> None:
        self.peak = rss_mb()
        self._task: asyncio.Task[None] | None = None

    async def _sample(self) -> None:
        while True:
            self.peak = max(self.peak, rss_mb())
            await asyncio.sleep(0.05)

    def __enter__(self) -> PeakRss:
        self._task = asyncio.get_running_loop().create_task(self._sample())
        return self

    def __exit__(self, *_: object) -> None:
        assert self._task is not None
        self._task.cancel()
        self.peak = max(self.peak, rss_mb())


async def one_size(harness: PsaHarness, size: int, args: argparse.Namespace) -> None:
    clients = max(1, size // 100)
    per_client = size // clients
    mapped = max(1, int(clients * args.map_share))
    if args.rmm:
        await one_size_vendor(harness, size, args)
        return
    fleet = FleetFake(page_size=1000, latency=args.latency)
    fleet.seed(clients, per_client)
    # The mapped clients' PSA companies hold a configuration record per endpoint, by hostname.
    psa = harness.start(
        companies=[f"Bench client {c}" for c in range(mapped)],
        devices_per_company=per_client,
        configuration_fields=CONFIGURATION_FIELDS,
    )
    for c, name in enumerate(psa.companies.values()):
        for e in range(per_client):
            status = fleet.endpoints[f"ep-{c}-{e}"]
            fleet.put(
                status.model_copy(update={"hostname": device_name(name, e)}),
                fleet.modified[status.endpoint_id],
            )
    host = f"fleet-{uuid.uuid4().hex[:8]}.example.com"
    FLEETS[host] = fleet
    with tempfile.TemporaryDirectory() as tmp:
        schema = f"bench_{uuid.uuid4().hex[:8]}"
        common = {"data_dir": Path(tmp), "secret_key": Fernet.generate_key().decode(), "run_worker": False}
        settings = (
            Settings(database_url=PG_URL, database_schema=schema, **common)
            if args.backend == "postgresql"
            else Settings(database_url=f"sqlite+aiosqlite:///{tmp}/bench.db", **common)
        )
        await db.migrate(settings.resolved_database_url(), schema=settings.database_schema)
        from tests.support.vendors import VendorRouter

        vendors = VendorRouter()
        registry = discover()
        registry.add(FLEET_RMM)
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
                stack = await build_tenant(
                    client, {"Authorization": f"Bearer {key}"}, vendors, psa, rmm_kind="fleet_rmm",
                    rmm_credentials={"token": "t"}, rmm_base_url=f"https://{host}",
                )  # fmt: skip
                for c, (company, name) in enumerate(psa.companies.items()):
                    await stack.map_client(f"c-{c}", company, name)
                psa.set_latency(args.latency)
                async with services.sessions() as session:
                    connection = await session.get(Connection, stack.rmm["id"])
                assert connection is not None

                import gc

                gc.collect()
                baseline = rss_mb()
                kind = harness.spec.kind
                print(f"{kind}, {size} endpoints: RSS with the fakes seeded (baseline) {baseline:.0f} MB")

                async def run(label: str) -> None:
                    psa.reset_calls()
                    fleet.page_requests = 0
                    started = time.perf_counter()
                    with PeakRss() as peak:
                        async with db.transaction(services.sessions) as session:
                            row = await start_run(session, connection, "cli")
                        done = await execute_run(services, row.id)
                        synced = time.perf_counter() - started
                        jobs = await runtime.worker(services, concurrency=8).run_until_idle()
                        elapsed = time.perf_counter() - started
                    print(
                        f"{size:>7} {label:<22} {synced:7.1f} s sync {elapsed:7.1f} s incl. PSA jobs   "
                        f"peak RSS {peak.peak:5.0f} MB (+{peak.peak - baseline:4.0f} over baseline)   "
                        f"RMM requests {fleet.page_requests:5d}   "
                        f"PSA requests {psa.request_count():6d} ({calls_by_method(psa) or 'none'})   "
                        f"changed {done.endpoints_changed:6d}   "
                        f"problems +{done.problems_opened} ({jobs} jobs)"
                    )

                await run("first full sync")
                await run("nothing changed")
                ids = sorted(fleet.endpoints)
                for endpoint_id in ids[::100]:
                    fleet.change(endpoint_id, last_scan_at=datetime.now(UTC))
                await run("1% changed")
        finally:
            await services.aclose()
            FLEETS.pop(host, None)
            if args.backend == "postgresql":
                engine = db.create_engine(PG_URL)
                async with engine.begin() as conn:
                    await conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
                await engine.dispose()


async def one_size_vendor(harness: PsaHarness, size: int, args: argparse.Namespace) -> None:
    """The same three syncs against an installed RMM kind's own fake (`--rmm`)."""
    clients = max(1, size // 100)
    per_client = size // clients
    mapped = max(1, int(clients * args.map_share))
    [rmm_harness] = [h for h in installed_harnesses(discover().all())[0] if h.spec.kind == args.rmm]
    host = f"{args.rmm.replace('_', '-')}-{uuid.uuid4().hex[:8]}.example.com"
    names = [f"Bench client {c}" for c in range(clients)]
    rmm = rmm_harness.start(clients=names, endpoints_per_client=per_client, base_url=f"https://{host}")
    fake: Any = getattr(rmm, "fake", None)
    psa = harness.start(
        companies=names[:mapped], devices_per_company=per_client, configuration_fields=CONFIGURATION_FIELDS
    )
    with tempfile.TemporaryDirectory() as tmp:
        common = {"data_dir": Path(tmp), "secret_key": Fernet.generate_key().decode(), "run_worker": False}
        settings = Settings(database_url=f"sqlite+aiosqlite:///{tmp}/bench.db", **common)
        await db.migrate(settings.resolved_database_url(), schema=settings.database_schema)
        from tests.support.vendors import VendorRouter

        vendors = VendorRouter()
        for rmm_host in rmm.hosts:
            vendors.add(rmm_host, rmm.transport())
        services = build_services(settings, registry=discover(), transport_factory=vendors.factory)
        app = create_app(services=services, migrate=False)
        try:
            async with (
                app.router.lifespan_context(app),
                httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://bench") as client,
            ):
                async with db.transaction(services.sessions) as session:
                    tenant = await get_or_create_tenant(session, "default")
                    _, key = await create_api_key(session, tenant, ApiRole.ENGINEER, "bench")
                stack = await build_tenant(
                    client, {"Authorization": f"Bearer {key}"}, vendors, psa, rmm_kind=args.rmm,
                    rmm_credentials=dict(rmm.connection.credentials), rmm_base_url=rmm.connection.base_url,
                )  # fmt: skip
                by_name = {name: client_id for client_id, name in rmm.clients.items()}
                for company, name in psa.companies.items():
                    await stack.map_client(by_name[name], company, name)
                psa.set_latency(args.latency)
                if fake is not None and hasattr(fake, "latency"):
                    fake.latency = args.latency
                async with services.sessions() as session:
                    connection = await session.get(Connection, stack.rmm["id"])
                assert connection is not None
                import gc

                gc.collect()
                baseline = rss_mb()
                print(f"{args.rmm} → {harness.spec.kind}, {size} endpoints: seeded RSS {baseline:.0f} MB")

                async def run(label: str) -> None:
                    psa.reset_calls()
                    rmm.reset_calls()
                    started = time.perf_counter()
                    with PeakRss() as peak:
                        async with db.transaction(services.sessions) as session:
                            row = await start_run(session, connection, "cli")
                        done = await execute_run(services, row.id)
                        synced = time.perf_counter() - started
                        jobs = await runtime.worker(services, concurrency=8).run_until_idle()
                        elapsed = time.perf_counter() - started
                    listed = rmm.calls(RmmOperation.LIST_ENDPOINTS)
                    minimum = len(rmm.endpoint_page_sizes())
                    total = fake.call_count() if fake is not None and hasattr(fake, "call_count") else listed
                    print(
                        f"{size:>7} {label:<18} {synced:7.1f} s sync {elapsed:7.1f} s incl. PSA jobs   "
                        f"peak RSS {peak.peak:5.0f} MB (+{peak.peak - baseline:4.0f})   "
                        f"RMM requests {total:5d} (device pages {listed}, minimum {minimum})   "
                        f"PSA requests {psa.request_count():6d}   changed {done.endpoints_changed:6d}   "
                        f"problems +{done.problems_opened} ({jobs} jobs)"
                    )

                await run("first full sync")
                await run("nothing changed")
                for endpoint_id in list(rmm.endpoints)[::100]:
                    rmm.put_in_trouble(endpoint_id)
                await run("1% changed")
        finally:
            await services.aclose()


async def main(args: argparse.Namespace) -> None:
    rmm = f"the {args.rmm} fake (its own paging; sqlite)" if args.rmm else "RMM page size 1000"
    print(f"{rmm}, {args.latency * 1000:.0f} ms per RMM page and per PSA call, "
          f"{args.map_share:.0%} of clients mapped to the PSA, {args.backend}")  # fmt: skip
    for harness in psa_harnesses(args.psa):
        for size in (int(s) for s in args.sizes.split(",")):
            await one_size(harness, size, args)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", default="5000,50000")
    parser.add_argument("--latency", type=float, default=0.05)
    parser.add_argument("--map-share", type=float, default=0.1)
    parser.add_argument("--backend", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--rmm", default=None, help="an installed RMM kind whose own fake to sync from")
    add_psa_argument(parser)
    asyncio.run(main(parser.parse_args()))
