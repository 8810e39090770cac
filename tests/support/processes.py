"""Real `connector` processes for tests that do real harm: SIGKILL mid-work, a database behind a TCP
proxy that the test cuts or stalls, concurrent callers, vendor fakes served over real sockets.

- `Deployment`: one database (a SQLite file, or a fresh PostgreSQL schema) and the environment every
  `connector` process of one test shares; `start("serve")`, `start("worker")`, `run("sync", ...)`.
- `TcpProxy`: forwards a local port to a target; `cut()` drops every connection and refuses new
  ones, `stall()` accepts and holds connections without forwarding a byte, `restore()` heals.
- `ServedApp`: an ASGI app (a vendor fake) served by uvicorn on a real port in a background thread,
  so its state stays inspectable from the test.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from cryptography.fernet import Fernet

HOST = "127.0.0.1"
PG_URL = os.environ.get("CONNECTOR_TEST_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test")


# Listening ports come from below the kernel's ephemeral range (32768+ by default), one block per
# xdist worker: a port the kernel hands out as "free" can be taken by any outgoing connection (a
# database client, an HTTP call) before the process under test binds it.
_PORT_BLOCK = 1000
_FIRST_PORT = 20000
_worker_index = int(os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw") or 0) % 12
_next_ports = itertools.cycle(
    range(_FIRST_PORT + _worker_index * _PORT_BLOCK, _FIRST_PORT + (_worker_index + 1) * _PORT_BLOCK)
)
for _ in range(random.randrange(_PORT_BLOCK)):
    next(_next_ports)


def free_port() -> int:
    """A port nothing listens on, that no outgoing connection can take before it is bound."""
    for _ in range(_PORT_BLOCK):
        port = next(_next_ports)
        with socket.socket() as sock:
            try:
                sock.bind((HOST, port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port in this worker's block")


def wait_until(
    predicate: Any, *, timeout: float = 30.0, interval: float = 0.1, what: str = "condition"
) -> Any:
    """Poll `predicate()` until it returns something truthy; return it (or fail after `timeout`)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


def with_port(url: str, port: int) -> str:
    """`postgresql+asyncpg://user@127.0.0.1:5432/db` with another port (to go through a proxy)."""
    scheme, rest = url.split("://", 1)
    auth, _, tail = rest.rpartition("@")
    hostport, _, path = tail.partition("/")
    host = hostport.rsplit(":", 1)[0]
    return f"{scheme}://{auth + '@' if auth else ''}{host}:{port}/{path}"


def pg_target(url: str = PG_URL) -> tuple[str, int]:
    tail = url.split("://", 1)[1].rpartition("@")[2].partition("/")[0]
    host, _, port = tail.partition(":")
    return host or HOST, int(port or 5432)


@dataclass
class Proc:
    """A running `connector` process; stdout and stderr go to files in the deployment's folder."""

    args: list[str]
    popen: subprocess.Popen[bytes]
    log_path: Path
    port: int | None = None

    @property
    def url(self) -> str:
        assert self.port is not None, "not a serving process"
        return f"http://{HOST}:{self.port}"

    def output(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def alive(self) -> bool:
        return self.popen.poll() is None

    def kill(self) -> None:
        """SIGKILL: no shutdown code runs, exactly like a crash or the OOM killer."""
        if self.alive():
            self.popen.send_signal(signal.SIGKILL)
        self.popen.wait(timeout=30)

    def terminate(self, timeout: float = 30.0) -> int:
        if self.alive():
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        return int(self.popen.returncode)

    def wait(self, timeout: float = 120.0) -> int:
        return int(self.popen.wait(timeout=timeout))

    def wait_ready(self, timeout: float = 60.0) -> None:
        def ready() -> bool:
            if not self.alive():
                raise AssertionError(f"{self.args} exited with {self.popen.returncode}:\n{self.output()}")
            try:
                return httpx.get(f"{self.url}/readyz", timeout=2).status_code == 200
            except httpx.TransportError:
                return False

        wait_until(ready, timeout=timeout, interval=0.2, what=f"{self.args} to be ready")


@dataclass
class Deployment:
    """The shared state of one test's `connector` processes: database, data folder, secret key."""

    backend: str
    folder: Path
    database_url: str = ""
    schema: str = ""
    extra_env: dict[str, str] = field(default_factory=dict)
    processes: list[Proc] = field(default_factory=list)
    secret_key: str = field(default_factory=lambda: Fernet.generate_key().decode())

    @classmethod
    def create(cls, backend: str, folder: Path) -> Deployment:
        folder.mkdir(parents=True, exist_ok=True)
        if backend == "sqlite":
            return cls(backend, folder, database_url=f"sqlite+aiosqlite:///{folder / 'connector.db'}")
        return cls(backend, folder, database_url=PG_URL, schema=f"proc_{uuid.uuid4().hex[:12]}")

    def env(self, **overrides: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("CONNECTOR_")}
        env.update(
            CONNECTOR_DATA_DIR=str(self.folder),
            CONNECTOR_DATABASE_URL=self.database_url,
            CONNECTOR_SECRET_KEY=self.secret_key,
            CONNECTOR_ALLOW_INSECURE_LOOPBACK="true",
            CONNECTOR_RUN_SCHEDULER="false",
            CONNECTOR_LOG_LEVEL="WARNING",
            PYTHONUNBUFFERED="1",
        )
        if self.schema:
            env["CONNECTOR_DATABASE_SCHEMA"] = self.schema
        env.update(self.extra_env)
        env.update(overrides)
        return env

    def command(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "connector.cli", *args]

    def start(self, *args: str, env: dict[str, str] | None = None, ready: bool = True) -> Proc:
        """Start a long-running process. `serve` gets a free port and is waited on until ready."""
        argv = list(args)
        port = None
        if argv and argv[0] == "serve":
            port = free_port()
            argv += ["--host", HOST, "--port", str(port)]
        log_path = self.folder / f"proc-{len(self.processes)}-{argv[0]}.log"
        handle = log_path.open("wb")
        popen = subprocess.Popen(
            self.command(*argv), env=env or self.env(), stdout=handle, stderr=subprocess.STDOUT
        )
        handle.close()
        proc = Proc(argv, popen, log_path, port)
        self.processes.append(proc)
        if port is not None and ready:
            proc.wait_ready()
        return proc

    def run(
        self, *args: str, env: dict[str, str] | None = None, timeout: float = 300.0
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            self.command(*args), env=env or self.env(), capture_output=True, text=True, timeout=timeout
        )

    def migrate(self) -> None:
        done = self.run("migrate")
        assert done.returncode == 0, done.stdout + done.stderr

    def api_key(self, role: str = "admin", tenant: str = "default") -> dict[str, str]:
        done = self.run("apikey", "create", "--role", role, "--tenant", tenant)
        assert done.returncode == 0, done.stdout + done.stderr
        return {"Authorization": f"Bearer {done.stdout.strip().splitlines()[-1]}"}

    def close(self) -> None:
        for proc in self.processes:
            with contextlib.suppress(Exception):
                proc.kill()
        if self.schema:
            asyncio.run(_drop_schema(self.schema))


@contextlib.contextmanager
def migrated(backend: str, folder: Path) -> Iterator[Deployment]:
    """A migrated deployment on `backend` (the test is skipped when PostgreSQL is unreachable),
    closed afterwards: the body of every real-process test's `deployment` fixture."""
    from tests.conftest import _postgres_reachable

    if backend == "postgresql" and (reason := _postgres_reachable()) is not None:
        import pytest

        pytest.skip(f"PostgreSQL unreachable at {PG_URL}: {reason}")
    deployment = Deployment.create(backend, folder)
    deployment.migrate()
    try:
        yield deployment
    finally:
        deployment.close()


async def _drop_schema(schema: str) -> None:
    from sqlalchemy import text

    from connector.infra import db

    engine = db.create_engine(PG_URL)
    try:
        async with engine.begin() as conn:
            await conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
    finally:
        await engine.dispose()


def query(deployment: Deployment, sql: str, *, url: str = "", **params: Any) -> list[tuple[Any, ...]]:
    """Run one SQL statement against the deployment's database (or another `url` in its schema, for
    assertions) and return the rows."""

    async def run() -> list[tuple[Any, ...]]:
        from sqlalchemy import text

        from connector.infra import db

        engine = db.create_engine(url or deployment.database_url, schema=deployment.schema)
        try:
            async with engine.connect() as conn:
                return [tuple(row) for row in await conn.execute(text(sql), params)]
        finally:
            await engine.dispose()

    return asyncio.run(run())


class TcpProxy:
    """A TCP forwarder in a background thread, with faults the test switches at will."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.port = free_port()
        self.mode = "pass"  # pass | cut | stall
        self._loop = asyncio.new_event_loop()
        self._writers: set[asyncio.StreamWriter] = set()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="tcp-proxy", daemon=True)
        self._server: asyncio.base_events.Server | None = None

    def __enter__(self) -> TcpProxy:
        self._thread.start()
        self._ready.wait(10)
        return self

    def __exit__(self, *exc: object) -> None:
        self.cut()  # close both sides: a socket left open keeps its PostgreSQL backend (and locks)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    def _serve(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._server = self._loop.run_until_complete(asyncio.start_server(self._accept, HOST, self.port))
        self._ready.set()
        self._loop.run_forever()

    def _call(self, fn: Any) -> None:
        done = threading.Event()

        def run() -> None:
            try:
                fn()
            finally:
                done.set()

        self._loop.call_soon_threadsafe(run)
        done.wait(10)

    def cut(self) -> None:
        """Drop every open connection and refuse new ones (closed as soon as they are accepted)."""

        def apply() -> None:
            self.mode = "cut"
            for writer in list(self._writers):
                writer.transport.abort()
            self._writers.clear()

        self._call(apply)

    def stall(self) -> None:
        """Stop forwarding: open connections and new ones get no byte, as a hung server would."""
        self._call(lambda: setattr(self, "mode", "stall"))

    def restore(self) -> None:
        def apply() -> None:
            self.mode = "pass"
            for writer in list(self._writers):  # stalled connections are unusable now: drop them
                writer.transport.abort()
            self._writers.clear()

        self._call(apply)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.mode == "cut":
            writer.transport.abort()
            return
        self._writers.add(writer)
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.transport.abort()
            return
        self._writers.add(upstream_writer)
        await asyncio.gather(
            self._pipe(reader, upstream_writer), self._pipe(upstream_reader, writer), return_exceptions=True
        )
        for w in (writer, upstream_writer):
            self._writers.discard(w)
            w.transport.abort()

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            data = await reader.read(65536)
            if not data:
                break
            while self.mode == "stall":
                await asyncio.sleep(0.05)
            if self.mode == "cut" or writer.transport.is_closing():
                break
            writer.write(data)
            await writer.drain()
        writer.transport.abort()


class ServedApp:
    """An ASGI app on a real port (uvicorn in a thread of the test process)."""

    def __init__(self, app: Any) -> None:
        self.port = free_port()
        self._server = uvicorn.Server(
            uvicorn.Config(app, host=HOST, port=self.port, log_level="warning", lifespan="off")
        )
        self._thread = threading.Thread(target=self._server.run, name="served-app", daemon=True)

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def __enter__(self) -> ServedApp:
        self._thread.start()
        wait_until(lambda: self._server.started, timeout=20, what="the served app to start")
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.should_exit = True
        self._thread.join(20)
