"""Webhook ingest throughput and latency: `connector serve` (durable: each 202 only after its own
delivery row is committed) next to a bare FastAPI endpoint that parses the same body and stores
nothing, measured in the same run, on SQLite and on PostgreSQL.

    .venv/bin/python -m benchmarks.webhook_ingest [--requests 20000] [--concurrency 32]
        [--backends sqlite,postgresql] [--with-worker]

Both servers are single uvicorn processes on 127.0.0.1; the load comes from one client process with
`--concurrency` keep-alive connections sending ~1 KB canonical alerts with distinct event ids.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import uuid
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
    proc = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()


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


def connector_env(backend: str, data_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONNECTOR_")}
    env.update(
        CONNECTOR_DATA_DIR=str(data_dir),
        CONNECTOR_SECRET_KEY=Fernet.generate_key().decode(),
        CONNECTOR_LOG_LEVEL="WARNING",
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
    results: list[Result] = field(default_factory=list)


@contextmanager
def connector_server(backend: str, args: argparse.Namespace) -> Iterator[Target]:
    with tempfile.TemporaryDirectory() as tmp:
        env = connector_env(backend, Path(tmp))
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
            with process(serve, env):
                base = f"http://{HOST}:{port}"
                wait_ready(f"{base}/readyz")
                connection_id, secret = create_rmm_connection(base, {"Authorization": f"Bearer {key}"})
                yield Target(
                    f"connector serve on {backend}", port, f"/webhooks/{connection_id}?token={secret}"
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
    with process(command, dict(os.environ)):
        wait_ready(f"http://{HOST}:{port}/docs")
        yield Target("bare FastAPI (parse, no storage)", port, "/webhooks/bare")


def load(target: Target, total: int, concurrency: int) -> Result:
    run = uuid.uuid4().hex[:8]
    headers = {"Content-Type": "application/json"}

    def request(n: int) -> bytes:
        return build_request(HOST, target.port, target.path, alert_body(n, run), headers)

    return asyncio.run(run_load(HOST, target.port, request, total=total, concurrency=concurrency))


def median_result(results: list[Result]) -> Result:
    """The round with the median throughput (its latencies are that round's)."""
    return sorted(results, key=lambda r: r.rps)[len(results) // 2]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--requests", type=int, default=20_000, help="per target, over all rounds")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=1_000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument("--with-worker", action="store_true", help="run the job worker inside serve too")
    args = parser.parse_args()

    print(
        f"{args.requests} requests of ~1 KB per target in {args.rounds} interleaved rounds, "
        f"{args.concurrency} concurrent keep-alive clients, 1 server process each; median round shown"
    )
    with ExitStack() as stack:
        targets = [stack.enter_context(bare_server())]
        for backend in args.backends.split(","):
            try:
                targets.append(stack.enter_context(connector_server(backend, args)))
            except Exception as exc:  # e.g. PostgreSQL unreachable: say so, keep the other figures
                print(f"connector serve on {backend:<10}  skipped: {type(exc).__name__}: {exc}")
        for target in targets:
            load(target, args.warmup, args.concurrency)
        # Interleaved rounds: whatever else the machine does hits every target alike.
        for _ in range(args.rounds):
            for target in targets:
                target.results.append(load(target, args.requests // args.rounds, args.concurrency))
    bare = median_result(targets[0].results)
    print(bare.line(targets[0].label))
    for target in targets[1:]:
        result = median_result(target.results)
        print(result.line(target.label))
        ratios = sorted(r.rps / b.rps for r, b in zip(target.results, targets[0].results, strict=True))
        print(
            f"{'':34} = {result.rps / bare.rps:.0%} of the bare endpoint's throughput "
            f"(per-round ratios {ratios[0]:.0%}-{ratios[-1]:.0%})"
        )


if __name__ == "__main__":
    main()
