"""Worker scaling on PostgreSQL: a backlog of alerts (each a new problem, so each makes one ticket)
drained by 1 and by 2 real `connector worker` processes, in interleaved rounds, with the PSA (the
ConnectWise Manage fake) answering at once on a real port, so the workers' CPU is the bottleneck.

Each round posts its alerts to a `connector serve --no-worker`, holds the queued jobs back, starts
the workers and waits until each has logged its start, then releases the backlog and times it
until no job is runnable or running. The workers' CPU time (user + system, from /proc) over the
drain, divided by the tickets created, is the CPU per ticket: delivery parsing, problem updates,
job claims and reconciliations with their PSA calls and log lines, everything a worker does.

    .venv/bin/python -m benchmarks.worker_scaling [--alerts 2000] [--pairs 3] [--concurrency 4]
        [--baseline origin/main]

With `--baseline REF`, each cycle also drains with one worker of that git revision (a worktree),
so the CPU per ticket is compared side by side in one run.

The machine's load average is printed with each round: other work on the same cores slows the
rounds down and flattens the speed-up.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import text

from adapters.connectwise_manage.fake.harness import ManageHarness, ManageWorld
from benchmarks.tenant import SUMMARY_TEMPLATE
from connector.infra import db
from tests.api.world import canonical_alert
from tests.support.processes import Deployment, Proc, ServedApp, query, wait_until

KINDS = ("threat_detected", "protection_disabled", "definitions_outdated")
CLIENTS = [f"c-{n}" for n in range(10)]
TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def database_cpu() -> dict[int, float]:
    """CPU seconds so far of every PostgreSQL server process (one per connection) on the machine."""
    used: dict[int, float] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            head, _, tail = stat.read_text().rpartition(")")
        except OSError:
            continue  # gone meanwhile
        if head.endswith("(postgres"):
            fields = tail.split()
            used[int(stat.parent.name)] = (int(fields[11]) + int(fields[12])) / TICKS
    return used


def database_cpu_since(before: dict[int, float]) -> float:
    """CPU seconds the PostgreSQL processes used since `before` (new processes count from zero)."""
    return sum(now - before.get(pid, 0.0) for pid, now in database_cpu().items())


class LazyApp:
    """The PSA fake's ASGI app, looked up per request: the server needs its port before the fake
    (whose connection body names that port) exists."""

    world: ManageWorld | None = None

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        assert self.world is not None
        await self.world.fake.app(scope, receive, send)


def execute(deployment: Deployment, sql: str) -> None:
    """Run one writing statement against the deployment's database and commit it."""

    async def run() -> None:
        engine = db.create_engine(deployment.database_url, schema=deployment.schema)
        try:
            async with engine.begin() as conn:
                await conn.execute(text(sql))
        finally:
            await engine.dispose()

    asyncio.run(run())


def tickets(world: ManageWorld) -> int:
    return sum(len(world.tickets(company)) for company in world.companies)


def setup(deployment: Deployment, world: ManageWorld, http: httpx.Client) -> tuple[Proc, dict[str, Any]]:
    serve = deployment.start("serve", "--no-worker")
    headers = deployment.api_key("engineer")

    def post(path: str, body: dict[str, Any]) -> dict[str, Any]:
        response = http.post(f"{serve.url}{path}", json=body, headers=headers)
        assert response.status_code == 201, response.text
        created: dict[str, Any] = response.json()
        return created

    rmm = post(
        "/api/v1/connections",
        {
            "name": "Automate",
            "kind": "connectwise_automate",
            "base_url": "https://automate.example.com",
            "credentials": {"username": "svc", "password": "pw", "client_id": "cid"},
        },
    )
    psa = post("/api/v1/connections", world.connection.as_json())
    post(
        "/api/v1/ticket-rules",
        {
            "psa_connection_id": psa["id"],
            "summary_template": SUMMARY_TEMPLATE,
            **world.ticket_ids.rule_fields(),
        },
    )
    for client, company in zip(CLIENTS, world.companies, strict=True):
        post(
            "/api/v1/client-mappings",
            {
                "rmm_connection_id": rmm["id"],
                "rmm_client_id": client,
                "rmm_client_name": f"RMM {client}",
                "psa_connection_id": psa["id"],
                "psa_company_id": company,
                "psa_company_name": world.companies[company],
            },
        )
    return serve, rmm


def ingest(
    deployment: Deployment, serve: Proc, rmm: dict[str, Any], http: httpx.Client, round_: int, n: int
) -> None:
    for i in range(n):
        body = canonical_alert(
            f"r{round_}-evt-{i}",
            endpoint_id=f"r{round_}-ep-{i}",
            client_id=CLIENTS[i % len(CLIENTS)],
            problem=KINDS[i % len(KINDS)],
        )
        response = http.post(
            f"{serve.url}/webhooks/{rmm['id']}", json=body, params={"token": rmm["webhook_secret"]}
        )
        assert response.status_code == 202, response.text
    stored = f"SELECT count(*) FROM deliveries WHERE connection_id = '{rmm['id']}'"
    wait_until(lambda: query(deployment, stored)[0][0] >= (round_ + 1) * n, timeout=120, what="deliveries")


RUNNABLE = "SELECT count(*) FROM jobs WHERE status = 'running' OR (status = 'queued' AND run_after <= now())"


def start_worker(deployment: Deployment, concurrency: int, source: Path | None) -> Proc:
    """A `connector worker` of this source tree, or of `source` (the baseline's checkout: `-m`
    imports from the working directory first)."""
    argv = ["worker", "--concurrency", str(concurrency), "--poll-interval", "0.1"]
    log_path = deployment.folder / f"proc-{len(deployment.processes)}-worker.log"
    with log_path.open("wb") as handle:
        popen = subprocess.Popen(
            deployment.command(*argv),
            env=deployment.env(CONNECTOR_LOG_LEVEL="INFO", CONNECTOR_LOG_FORMAT="json"),
            stdout=handle,
            stderr=subprocess.STDOUT,
            cwd=source,
        )
    proc = Proc(argv, popen, log_path)
    deployment.processes.append(proc)
    return proc


def drain(
    deployment: Deployment, workers: int, concurrency: int, source: Path | None
) -> tuple[float, float, float]:
    """Start `workers` processes with the backlog held back, release it, wait until it is gone.
    Returns (seconds, CPU seconds of the workers over the drain, of PostgreSQL over the drain)."""
    execute(deployment, "UPDATE jobs SET run_after = run_after + interval '1 day' WHERE status = 'queued'")
    procs = [start_worker(deployment, concurrency, source) for _ in range(workers)]
    try:
        for proc in procs:
            wait_until(lambda p=proc: "worker started" in p.output(), timeout=180, what="a worker to start")
        cpu = [cpu_seconds(p.popen.pid) for p in procs]
        database = database_cpu()
        started = time.perf_counter()
        execute(deployment, "UPDATE jobs SET run_after = now() WHERE status = 'queued'")
        wait_until(lambda: query(deployment, RUNNABLE)[0][0] == 0, timeout=1800, interval=0.1, what="drain")
        elapsed = time.perf_counter() - started
        used = sum(cpu_seconds(p.popen.pid) - before for p, before in zip(procs, cpu, strict=True))
        database_used = database_cpu_since(database)
    finally:
        for proc in procs:
            proc.terminate()
    dead = query(deployment, "SELECT count(*) FROM jobs WHERE status = 'dead'")[0][0]
    assert dead == 0, f"{dead} dead job(s): {procs[0].output()[-3000:]}"
    return elapsed, used, database_used


def checkout(ref: str, folder: Path) -> Path:
    """A worktree of `ref` (e.g. `origin/main`) whose workers are the baseline."""
    path = folder / "baseline"
    subprocess.run(["git", "worktree", "add", "--detach", str(path), ref], check=True, capture_output=True)
    return path


def main(args: argparse.Namespace) -> None:
    lazy = LazyApp()
    with (
        tempfile.TemporaryDirectory() as tmp,
        ServedApp(lazy) as served,
        httpx.Client(timeout=60) as http,
    ):
        world = ManageHarness().start(
            companies=[f"Client {c}" for c in CLIENTS], devices_per_company=0, base_url=served.url
        )
        lazy.world = world
        baseline = checkout(args.baseline, Path(tmp)) if args.baseline else None
        deployment = Deployment.create("postgresql", Path(tmp) / "deployment")
        deployment.migrate()
        try:
            serve, rmm = setup(deployment, world, http)
            print(
                f"{args.alerts} alerts (each a new problem) per round, PSA fake at 0 ms, PostgreSQL, "
                f"worker concurrency {args.concurrency}, {os.cpu_count()} CPUs"
            )
            runs: list[tuple[str, int, Path | None]] = [("current", 1, None), ("current", 2, None)]
            if baseline is not None:
                runs.insert(0, (f"baseline {args.baseline}", 1, baseline))
            results: dict[tuple[str, int], list[tuple[float, float]]] = {(n, w): [] for n, w, _ in runs}
            database_per_ticket: dict[tuple[str, int], list[float]] = {(n, w): [] for n, w, _ in runs}
            order = [run for _ in range(args.pairs) for run in runs]
            for round_, (name, workers, source) in enumerate(order):
                ingest(deployment, serve, rmm, http, round_, args.alerts)
                before = tickets(world)
                elapsed, cpu, database = drain(deployment, workers, args.concurrency, source)
                made = tickets(world) - before
                results[name, workers].append((elapsed, cpu / max(made, 1)))
                database_per_ticket[name, workers].append(database / max(made, 1))
                load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
                check = "OK" if made == args.alerts else "MISMATCH"
                print(
                    f"round {round_ + 1}: {name}, {workers} worker(s) drained {made} tickets ({check}) in "
                    f"{elapsed:6.2f} s, {made / elapsed:6.1f} tickets/s, worker CPU "
                    f"{cpu * 1000 / max(made, 1):5.1f} ms/ticket, PostgreSQL CPU "
                    f"{database * 1000 / max(made, 1):5.1f} ms/ticket; load average {load}",
                    flush=True,
                )
        finally:
            deployment.close()
            if baseline is not None:
                subprocess.run(["git", "worktree", "remove", "--force", str(baseline)], check=False)
    one, two = results["current", 1], results["current", 2]
    ratios = [a[0] / b[0] for a, b in zip(one, two, strict=True)]
    print(
        f"speed-up of 2 workers over 1: {statistics.median(ratios):.2f}x "
        f"(range {min(ratios):.2f}-{max(ratios):.2f} over {len(ratios)} interleaved pairs)"
    )
    for (name, workers), measured in results.items():
        cpu = [per * 1000 for _, per in measured]
        print(
            f"worker CPU per ticket, {name}, {workers} worker(s): median {statistics.median(cpu):.1f} ms "
            f"(range {min(cpu):.1f}-{max(cpu):.1f} over {len(cpu)} rounds)"
        )
    for (name, workers), measured_db in database_per_ticket.items():
        cpu = [per * 1000 for per in measured_db]
        print(
            f"PostgreSQL CPU per ticket, {name}, {workers} worker(s): median {statistics.median(cpu):.1f} ms "
            f"(range {min(cpu):.1f}-{max(cpu):.1f})"
        )
    # However many workers run, the machine's cores bound the rate at cores / (CPU per ticket of
    # the workers and the database), not counting the PSA fake and this script.
    cores = os.cpu_count() or 1
    ceilings = [
        cores / (per + database) / (args.alerts / elapsed)
        for (elapsed, per), database in zip(one, database_per_ticket["current", 1], strict=True)
    ]
    print(
        f"CPU ceiling: {cores} cores allow at most {statistics.median(ceilings):.2f}x the 1-worker rate "
        f"(range {min(ceilings):.2f}-{max(ceilings):.2f}) at the measured worker + PostgreSQL CPU per ticket"
    )
    if args.baseline:
        old = results[f"baseline {args.baseline}", 1]
        cpu_ratios = [b[1] / c[1] for b, c in zip(old, one, strict=True)]
        print(
            f"CPU per ticket, baseline over current (1 worker): {statistics.median(cpu_ratios):.2f}x "
            f"(range {min(cpu_ratios):.2f}-{max(cpu_ratios):.2f})"
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--alerts", type=int, default=2000)
    parser.add_argument("--pairs", type=int, default=3, help="interleaved rounds of 1 and of 2 workers")
    parser.add_argument("--concurrency", type=int, default=4, help="jobs run at once in each worker")
    parser.add_argument(
        "--baseline",
        metavar="REF",
        help="also drain with one worker of this git revision (e.g. origin/main), interleaved",
    )
    main(parser.parse_args())
