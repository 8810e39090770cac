"""Status sync at fleet scale: N endpoints in N/100 clients against an RMM answering each page after
50 ms and a PSA fake answering each call after 50 ms, for every installed PSA kind with a harness (or
those named with `--psa`). For each fleet size, prints wall time, peak RSS, RMM and PSA requests
for: the first full sync, a second sync with nothing changed, and a sync with 1 % of the endpoints
changed.

    .venv/bin/python -m benchmarks.status_sync [--sizes 5000,50000] [--latency 0.05] [--map-share 0.1]
        [--backend sqlite|postgresql] [--psa KIND ...] [--rmm KIND ...]

The RMM is a synthetic one (one call per page of 1000, `tests/support/fleet_rmm.py`) unless `--rmm`
names installed RMM kinds with a harness: then each is measured through its real adapter against
its stateful fake (each request answered after `--latency`), and its requests are every vendor call
the adapter made (token, reports, lists).

`--map-share` is the share of clients mapped to a PSA company (their endpoints' configurations are
written to the PSA); the rest are synced and evaluated but have no PSA side.

`--compare` measures, after the first full sync, unchanged re-syncs that evaluate every endpoint (as
the sync did before endpoints kept their evaluation) against the incremental evaluation, in
`--rounds` interleaved rounds of at least `--round-seconds` each, and prints the median per round,
the ratio with its range, and the peak RSS over the fakes' baseline:

    .venv/bin/python -m benchmarks.status_sync --compare --sizes 50000,100000 --psa connectwise_manage \
        --map-share 0.01
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from cryptography.fernet import Fernet
from sqlalchemy import text

from adapters.registry import discover
from adapters.testing.harness import PsaHarness, PsaWorld, RmmHarness, device_name, installed_harnesses
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
from connector.sync.run import Evaluating, execute_run, start_run
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


class DelayedTransport(httpx.AsyncBaseTransport):
    """A harness world's transport answering each request after `latency` seconds, counted."""

    def __init__(self, inner: httpx.AsyncBaseTransport, latency: float) -> None:
        self.inner = inner
        self.latency = latency
        self.requests = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.requests += 1
        if self.latency:
            await asyncio.sleep(self.latency)
        return await self.inner.handle_async_request(request)

    async def aclose(self) -> None:
        return None  # shared by every adapter of the run


@dataclass
class RmmSide:
    """The RMM a size is measured against: the synthetic fleet RMM, or a vendor harness world."""

    kind: str
    base_url: str
    credentials: dict[str, Any]
    options: dict[str, Any]
    client_ids: list[str]
    requests: Callable[[], int]
    reset: Callable[[], None]
    change: Callable[[list[str]], None]
    endpoint_ids: list[str]
    cleanup: Callable[[], None]


def fleet_side(size: int, args: argparse.Namespace, psa: PsaWorld, clients: int, per_client: int) -> RmmSide:
    fleet = FleetFake(page_size=1000, latency=args.latency)
    fleet.seed(clients, per_client)
    # The mapped clients' PSA companies hold a configuration record per endpoint, by hostname.
    for c, name in enumerate(psa.companies.values()):
        for e in range(per_client):
            status = fleet.endpoints[f"ep-{c}-{e}"]
            fleet.put(
                status.model_copy(update={"hostname": device_name(name, e)}),
                fleet.modified[status.endpoint_id],
            )
    host = f"fleet-{uuid.uuid4().hex[:8]}.example.com"
    FLEETS[host] = fleet

    def reset() -> None:
        fleet.page_requests = 0

    def cleanup() -> None:
        FLEETS.pop(host, None)

    def change(ids: list[str]) -> None:
        for endpoint_id in ids:
            fleet.change(endpoint_id, last_scan_at=datetime.now(UTC))

    return RmmSide(
        kind="fleet_rmm",
        base_url=f"https://{host}",
        credentials={"token": "t"},
        options={},
        client_ids=[f"c-{c}" for c in range(clients)],
        requests=lambda: fleet.page_requests,
        reset=reset,
        change=change,
        endpoint_ids=sorted(fleet.endpoints),
        cleanup=cleanup,
    )


def world_side(
    rmm_harness: RmmHarness, args: argparse.Namespace, vendors: Any, clients: int, per_client: int
) -> RmmSide:
    # Client names as the PSA's companies, so the mapped clients' devices match their records.
    world = rmm_harness.start(
        clients=[f"Bench client {c}" for c in range(clients)], endpoints_per_client=per_client
    )
    delayed = DelayedTransport(world.transport(), args.latency)
    for host in world.hosts:
        vendors.add(host, delayed)

    def reset() -> None:
        delayed.requests = 0
        world.reset_calls()

    def change(ids: list[str]) -> None:
        # "Healthy again" on a healthy endpoint: the agent reports fresh antivirus status.
        for endpoint_id in ids:
            world.clear_trouble(endpoint_id)

    return RmmSide(
        kind=world.spec.kind,
        base_url=world.connection.base_url,
        credentials=dict(world.connection.credentials),
        options=dict(world.connection.options),
        client_ids=list(world.clients),
        requests=lambda: delayed.requests,
        reset=reset,
        change=change,
        endpoint_ids=list(world.endpoints),
        cleanup=lambda: None,
    )


def rmm_harnesses(kinds: list[str]) -> list[RmmHarness]:
    installed, _ = installed_harnesses(discover().all())
    known = {h.spec.kind: h for h in installed}
    unknown = sorted(set(kinds) - set(known))
    if unknown:
        raise SystemExit(f"no RMM harness for {', '.join(unknown)}; installed: {', '.join(sorted(known))}")
    return [known[kind] for kind in kinds]


async def one_size(
    harness: PsaHarness, size: int, args: argparse.Namespace, rmm_harness: RmmHarness | None = None
) -> None:
    clients = max(1, size // 100)
    per_client = size // clients
    mapped = max(1, int(clients * args.map_share))
    psa = harness.start(
        companies=[f"Bench client {c}" for c in range(mapped)],
        devices_per_company=per_client,
        configuration_fields=CONFIGURATION_FIELDS,
    )
    from tests.support.vendors import VendorRouter

    vendors = VendorRouter()
    side = (
        world_side(rmm_harness, args, vendors, clients, per_client)
        if rmm_harness is not None
        else fleet_side(size, args, psa, clients, per_client)
    )
    with tempfile.TemporaryDirectory() as tmp:
        schema = f"bench_{uuid.uuid4().hex[:8]}"
        common = {"data_dir": Path(tmp), "secret_key": Fernet.generate_key().decode(), "run_worker": False}
        settings = (
            Settings(database_url=PG_URL, database_schema=schema, **common)
            if args.backend == "postgresql"
            else Settings(database_url=f"sqlite+aiosqlite:///{tmp}/bench.db", **common)
        )
        await db.migrate(settings.resolved_database_url(), schema=settings.database_schema)
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
                    client, {"Authorization": f"Bearer {key}"}, vendors, psa, rmm_kind=side.kind,
                    rmm_credentials=side.credentials, rmm_base_url=side.base_url, rmm_options=side.options,
                )  # fmt: skip
                for client_id, (company, name) in zip(side.client_ids, psa.companies.items(), strict=False):
                    await stack.map_client(client_id, company, name)
                psa.set_latency(args.latency)
                async with services.sessions() as session:
                    connection = await session.get(Connection, stack.rmm["id"])
                assert connection is not None

                import gc

                gc.collect()
                baseline = rss_mb()
                kind = f"{side.kind} → {harness.spec.kind}"
                print(f"{kind}, {size} endpoints: RSS with the fakes seeded (baseline) {baseline:.0f} MB")

                async def run(label: str) -> None:
                    psa.reset_calls()
                    side.reset()
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
                        f"RMM requests {side.requests():5d}   "
                        f"PSA requests {psa.request_count():6d} ({calls_by_method(psa) or 'none'})   "
                        f"changed {done.endpoints_changed:6d}   "
                        f"problems +{done.problems_opened} ({jobs} jobs)"
                    )

                if args.compare:
                    await run("first full sync")
                    await compare(services, connection, size, baseline, args)
                    return
                await run("first full sync")
                await run("nothing changed")
                side.change(side.endpoint_ids[::100])
                await run("1% changed")
        finally:
            await services.aclose()
            side.cleanup()
            if args.backend == "postgresql":
                engine = db.create_engine(PG_URL)
                async with engine.begin() as conn:
                    await conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
                await engine.dispose()


async def compare(
    services: Any, connection: Connection, size: int, baseline: float, args: argparse.Namespace
) -> None:
    """Unchanged re-syncs evaluating every endpoint (as before evaluations were stored) against the
    incremental evaluation, in interleaved rounds of at least `--round-seconds` each."""
    variants = {"every endpoint": Evaluating(everything=True), "incremental": Evaluating()}
    times: dict[str, list[list[float]]] = {name: [] for name in variants}
    peaks: dict[str, float] = dict.fromkeys(variants, 0.0)
    evaluated: dict[str, int] = {}
    for _ in range(args.rounds):
        for name, how in variants.items():
            runs: list[float] = []
            round_started = time.perf_counter()
            while not runs or time.perf_counter() - round_started < args.round_seconds:
                started = time.perf_counter()
                with PeakRss() as peak:
                    async with db.transaction(services.sessions) as session:
                        row = await start_run(session, connection, "cli")
                    done = await execute_run(services, row.id, how=how)
                runs.append(time.perf_counter() - started)
                peaks[name] = max(peaks[name], peak.peak - baseline)
                evaluated[name] = done.endpoints_evaluated
                assert done.status == "succeeded" and done.endpoints_changed == 0, done.errors
            times[name].append(runs)
    medians = {name: [statistics.median(r) for r in rounds] for name, rounds in times.items()}
    for name in variants:
        per_round = ", ".join(f"{m:.2f}" for m in medians[name])
        print(
            f"{size:>7} unchanged re-sync, {name:<15} median per round {per_round} s "
            f"({sum(len(r) for r in times[name])} runs)   evaluated {evaluated[name]:6d}   "
            f"peak RSS +{peaks[name]:4.0f} MB over baseline"
        )
    ratios = [old / new for old, new in zip(medians["every endpoint"], medians["incremental"], strict=True)]
    print(
        f"{size:>7} ratio every endpoint / incremental: {statistics.median(ratios):.1f}x "
        f"(range {min(ratios):.1f}-{max(ratios):.1f}x over {len(ratios)} rounds)"
    )


async def main(args: argparse.Namespace) -> None:
    print(f"RMM page size 1000, {args.latency * 1000:.0f} ms per RMM page and per PSA call, "
          f"{args.map_share:.0%} of clients mapped to the PSA, {args.backend}")  # fmt: skip
    rmms: list[RmmHarness | None] = list(rmm_harnesses(args.rmm)) if args.rmm else [None]
    for harness in psa_harnesses(args.psa):
        for rmm in rmms:
            for size in (int(s) for s in args.sizes.split(",")):
                await one_size(harness, size, args, rmm)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", default="5000,50000")
    parser.add_argument("--latency", type=float, default=0.05)
    parser.add_argument("--map-share", type=float, default=0.1)
    parser.add_argument("--backend", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument(
        "--compare",
        action="store_true",
        help="after the first full sync, unchanged re-syncs evaluating every endpoint vs only those "
        "that can have changed, in interleaved rounds",
    )
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--round-seconds", type=float, default=10.0)
    add_psa_argument(parser)
    parser.add_argument(
        "--rmm",
        action="append",
        metavar="KIND",
        help="an RMM kind to measure through its harness (repeatable); default: the synthetic fleet RMM",
    )
    asyncio.run(main(parser.parse_args()))
