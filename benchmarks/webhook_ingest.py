"""Webhook ingest throughput and latency: `connector serve` (durable: each 202 only after its own
delivery row is committed) next to a bare FastAPI endpoint that parses the same body and stores
nothing, measured in the same run, on SQLite and on PostgreSQL.

    .venv/bin/python -m benchmarks.webhook_ingest [--rounds 3] [--seconds 10] [--connections 32]
        [--backends sqlite,postgresql] [--with-worker] [--loadgen auto|wrk|python]

Every server is a single uvicorn process on 127.0.0.1. The load comes from wrk (one thread,
`--connections` keep-alive connections, `benchmarks/webhook_ingest.lua`: ~1 KB canonical alerts,
each with its own event id) or, where wrk is not installed, from `benchmarks/loadgen.py`. Rounds of
`--seconds` each are interleaved (bare, SQLite, PostgreSQL, bare, ...), so whatever else the machine
does hits every target alike; each round's ratio is to the bare round just before it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from cryptography.fernet import Fernet

from benchmarks.loadgen import Result, build_request, run_load

PG_URL = os.environ.get("CONNECTOR_BENCH_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test")
HOST = "127.0.0.1"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def wait_ready(url: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=1).status_code < 500:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{url} did not become ready")


@contextmanager
def process(args: list[str], env: dict[str, str]) -> Iterator[subprocess.Popen[bytes]]:
    """The server with its log written to a file (a pipe nobody reads would block it once full)."""
    log = tempfile.TemporaryFile()
    proc = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=log)
    try:
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


def alert_body(n: int, run: str) -> bytes:
    alert: dict[str, Any] = {
        "event_id": f"{run}-{n}",
        "client_id": f"client-{n % 40}",
        "endpoint_id": f"endpoint-{n % 2500}",
        "hostname": f"WS-{n % 2500:05d}",
        "problem": "threat_detected",
        "state": "active",
        "occurred_at": "2026-11-20T10:00:00Z",
        "message": "",
    }
    filler = 1024 - len(json.dumps(alert))
    alert["message"] = ("Trojan.Win32.Generic detected and quarantined. " * 30)[: max(filler, 0)]
    return json.dumps(alert).encode()


def connector_env(backend: str, data_dir: Path, log_level: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONNECTOR_")}
    env.update(
        CONNECTOR_DATA_DIR=str(data_dir),
        CONNECTOR_SECRET_KEY=Fernet.generate_key().decode(),
        CONNECTOR_LOG_LEVEL=log_level,
        CONNECTOR_RUN_SCHEDULER="false",
    )
    if backend == "postgresql":
        env["CONNECTOR_DATABASE_URL"] = PG_URL
        env["CONNECTOR_DATABASE_SCHEMA"] = f"bench_{uuid.uuid4().hex[:8]}"
    return env


def placeholder(schema: dict[str, Any], name: str) -> Any:
    prop = schema.get("properties", {}).get(name, {})
    kind = prop.get("type") or next((a.get("type") for a in prop.get("anyOf", []) if a.get("type")), "string")
    return {"integer": 1, "number": 1, "boolean": False}.get(kind, f"bench-{name}")


def create_rmm_connection(base: str, headers: dict[str, str]) -> tuple[str, str]:
    """An RMM connection of the first installed RMM kind, credentials filled with placeholders
    (ingest never calls the vendor: canonical alerts are parsed by the core)."""
    kinds = httpx.get(f"{base}/api/v1/adapters", headers=headers).json()
    rmm = next(k for k in kinds if k["role"] == "rmm")
    schema = rmm["credentials_schema"]
    credentials = {name: placeholder(schema, name) for name in schema.get("required", [])}
    created = httpx.post(
        f"{base}/api/v1/connections",
        headers=headers,
        json={
            "name": "bench",
            "kind": rmm["kind"],
            "base_url": "https://rmm.example.com",
            "credentials": credentials,
        },
    )
    created.raise_for_status()
    body = created.json()
    return body["id"], body["webhook_secret"]


def drop_schema(env: dict[str, str]) -> None:
    schema = env.get("CONNECTOR_DATABASE_SCHEMA")
    if not schema:
        return
    from sqlalchemy import text

    from connector.infra import db

    async def drop() -> None:
        engine = db.create_engine(PG_URL)
        async with engine.begin() as conn:
            await conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        await engine.dispose()

    asyncio.run(drop())


@dataclass
class Target:
    label: str
    port: int
    path: str
    pid: int
    results: list[Result] = field(default_factory=list)
    cpu_us: list[float] = field(default_factory=list)
    """Server CPU time (user + system) per request, each round: unlike req/s, barely moved by
    what else runs on a shared machine."""


def cpu_seconds(pid: int) -> float:
    """User + system CPU time the process has used so far (Linux `/proc/<pid>/stat`)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextmanager
def connector_server(backend: str, args: argparse.Namespace) -> Iterator[Target]:
    with tempfile.TemporaryDirectory() as tmp:
        env = connector_env(backend, Path(tmp), args.log_level)
        try:
            key = subprocess.run(
                [sys.executable, "-m", "connector.cli", "apikey", "create", "--role", "engineer"],
                env=env,
                capture_output=True,
                text=True,
                check=True,
            ).stdout.strip()
            port = free_port()
            serve = [sys.executable, "-m", "connector.cli", "serve", "--port", str(port), "--no-scheduler"]
            if not args.with_worker:
                serve.append("--no-worker")
            with process(serve, env) as server:
                base = f"http://{HOST}:{port}"
                wait_ready(f"{base}/readyz")
                connection_id, secret = create_rmm_connection(base, {"Authorization": f"Bearer {key}"})
                yield Target(
                    f"connector serve on {backend}",
                    port,
                    f"/webhooks/{connection_id}?token={secret}",
                    server.pid,
                )
        finally:
            drop_schema(env)


@contextmanager
def bare_server() -> Iterator[Target]:
    port = free_port()
    command = [
        sys.executable, "-m", "uvicorn", "benchmarks.bare_app:app", "--host", HOST, "--port", str(port),
        "--no-access-log", "--log-level", "warning", "--no-server-header",
    ]  # fmt: skip
    with process(command, dict(os.environ)) as server:
        wait_ready(f"http://{HOST}:{port}/docs")
        yield Target("bare FastAPI (parse, no storage)", port, "/webhooks/bare", server.pid)


LUA = Path(__file__).with_name("webhook_ingest.lua")


def load_wrk(target: Target, seconds: float, connections: int) -> Result:
    """One round of wrk against the target; its figures come from the Lua script's last line."""
    env = {**os.environ, "BENCH_RUN": uuid.uuid4().hex[:8], "BENCH_PATH": target.path}
    command = [
        "wrk", "-t1", f"-c{connections}", f"-d{max(1, round(seconds))}s", "--timeout", "10s",
        "-s", str(LUA), f"http://{HOST}:{target.port}",
    ]  # fmt: skip
    output = subprocess.run(command, env=env, capture_output=True, text=True, check=True).stdout
    line = next(line for line in output.splitlines() if line.startswith("BENCH "))
    figures = json.loads(line.removeprefix("BENCH "))
    statuses = Counter({int(k): int(v) for k, v in figures["statuses"].items()})
    if figures["socket_errors"]:
        statuses[0] += int(figures["socket_errors"])  # 0: connect/read/write errors and timeouts
    return Result(
        requests=int(figures["requests"]),
        seconds=float(figures["seconds"]),
        statuses=statuses,
        p50_ms=float(figures["p50_ms"]),
        p99_ms=float(figures["p99_ms"]),
        mean_ms=float(figures["mean_ms"]),
    )


def load_python(target: Target, seconds: float, connections: int) -> Result:
    run = uuid.uuid4().hex[:8]
    headers = {"Content-Type": "application/json"}

    def request(n: int) -> bytes:
        return build_request(HOST, target.port, target.path, alert_body(n, run), headers)

    return asyncio.run(run_load(HOST, target.port, request, seconds=seconds, concurrency=connections))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=10.0, help="length of one round per target")
    parser.add_argument("--warmup", type=float, default=3.0, help="seconds of load per target first")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument("--with-worker", action="store_true", help="run the job worker inside serve too")
    parser.add_argument("--log-level", default="INFO", help="connector's (INFO is its default)")
    parser.add_argument("--loadgen", choices=["auto", "wrk", "python"], default="auto")
    args = parser.parse_args()
    use_wrk = args.loadgen == "wrk" or (args.loadgen == "auto" and shutil.which("wrk") is not None)
    load = load_wrk if use_wrk else load_python
    generator = "wrk -t1" if use_wrk else "benchmarks/loadgen.py (wrk not installed)"

    print(
        f"~1 KB canonical alerts, {args.connections} keep-alive connections from {generator}, "
        f"{args.rounds} interleaved rounds of {args.seconds:g} s per target, 1 server process each"
    )
    with ExitStack() as stack:
        targets = [stack.enter_context(bare_server())]
        for backend in args.backends.split(","):
            try:
                targets.append(stack.enter_context(connector_server(backend, args)))
            except Exception as exc:  # e.g. PostgreSQL unreachable: say so, keep the other figures
                print(f"connector serve on {backend:<10}  skipped: {type(exc).__name__}: {exc}")
        for target in targets:
            load(target, args.warmup, args.connections)
        # Interleaved rounds: whatever else the machine does hits every target alike.
        for number in range(1, args.rounds + 1):
            for target in targets:
                before = cpu_seconds(target.pid)
                result = load(target, args.seconds, args.connections)
                target.cpu_us.append((cpu_seconds(target.pid) - before) / max(result.requests, 1) * 1e6)
                target.results.append(result)
                print(
                    f"round {number}  {result.line(target.label)}   "
                    f"server CPU {target.cpu_us[-1]:.0f} us/request",
                    flush=True,
                )
    print()
    bare = targets[0].results
    print(
        f"{targets[0].label:<34} {_range([r.rps for r in bare], '{:.0f}')} req/s   "
        f"server CPU {_range(targets[0].cpu_us, '{:.0f}')} us/request"
    )
    for target in targets[1:]:
        ratios = [r.rps / b.rps for r, b in zip(target.results, bare, strict=True)]
        p99s = [r.percentile(99) for r in target.results]
        print(
            f"{target.label:<34} {_range([r.rps for r in target.results], '{:.0f}')} req/s   "
            f"= {statistics.median(ratios):.0%} of bare "
            f"(per-round ratios {min(ratios):.0%}-{max(ratios):.0%})"
            f"   p99 {min(p99s):.1f}-{max(p99s):.1f} ms"
        )
        cpu = [c / b for c, b in zip(target.cpu_us, targets[0].cpu_us, strict=True)]
        print(
            f"{'':34} server CPU {_range(target.cpu_us, '{:.0f}')} us/request"
            f" = {statistics.median(cpu):.2f}x bare's (per round {min(cpu):.2f}-{max(cpu):.2f}x)"
        )


def _range(values: list[float], fmt: str) -> str:
    low, middle, high = (fmt.format(v) for v in (min(values), statistics.median(values), max(values)))
    return f"median {middle} ({low}-{high})"


if __name__ == "__main__":
    main()
