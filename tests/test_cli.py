"""The command line as an operator uses it: real subprocesses on a temporary data directory."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from adapters.registry import discover
from adapters.testing.harness import installed_harnesses
from tests.support.processes import free_port

KEY = re.compile(r"ck_[0-9a-f]{12}_[A-Za-z0-9_-]+")


def _env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONNECTOR_")}
    env["CONNECTOR_DATA_DIR"] = str(tmp_path / "data")
    return env


def _cli(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "connector.cli", *args],
        env=_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def _serve(tmp_path: Path, port: int) -> tuple[str, int]:
    """Starts `connector serve`, waits until ready, stops it; returns its output and readiness status."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "connector.cli", "serve", "--port", str(port)],
        env=_env(tmp_path),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    status = 0
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                status = httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code
                break
            except httpx.TransportError:
                time.sleep(0.2)
    finally:
        proc.terminate()
        output, _ = proc.communicate(timeout=20)
    return output, status


def test_first_serve_writes_an_admin_key_once_to_a_private_file_and_it_works(tmp_path: Path) -> None:
    port = free_port()
    first, status = _serve(tmp_path, port)
    assert status == 200, first
    key_file = tmp_path / "data" / "initial-admin.key"
    key = key_file.read_text().strip()
    assert KEY.fullmatch(key)
    assert oct(key_file.stat().st_mode)[-3:] == "600"
    assert KEY.findall(first) == []  # output is not a terminal here: the log stream never has it
    assert str(key_file) in first  # the log says where it is
    assert (tmp_path / "data" / "connector.db").exists()
    assert oct((tmp_path / "data" / "secret.key").stat().st_mode)[-3:] == "600"
    with httpx.Client(base_url=f"http://127.0.0.1:{port}") as client:
        proc = subprocess.Popen(
            [sys.executable, "-m", "connector.cli", "serve", "--port", str(port)],
            env=_env(tmp_path),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            deadline = time.monotonic() + 30
            while True:
                try:
                    answer = client.get("/api/v1/connections", headers={"Authorization": f"Bearer {key}"})
                    break
                except httpx.TransportError:
                    assert time.monotonic() < deadline
                    time.sleep(0.2)
        finally:
            proc.terminate()
            proc.wait(timeout=20)
    assert answer.status_code == 200
    key_file.unlink()  # as the operator is told to, once read

    second, status = _serve(tmp_path, port)
    assert status == 200
    assert KEY.findall(second) == []  # never shown again
    assert not key_file.exists()  # nor written again: an admin key exists

    created = _cli(tmp_path, "apikey", "create", "--role", "viewer", "--tenant", "acme")
    assert created.returncode == 0, created.stderr
    viewer_key = created.stdout.strip()
    assert KEY.fullmatch(viewer_key)
    assert "shown once" in created.stderr


def test_the_first_admin_key_is_shown_on_an_interactive_terminal(tmp_path: Path) -> None:
    import pty

    port = free_port()
    controller, terminal = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "connector.cli", "serve", "--port", str(port)],
        env=_env(tmp_path),
        stdout=terminal,
        stderr=subprocess.DEVNULL,
    )
    os.close(terminal)
    shown = b""
    try:
        deadline = time.monotonic() + 30
        while not KEY.search(shown.decode(errors="replace")) and time.monotonic() < deadline:
            try:
                shown += os.read(controller, 4096)
            except OSError:
                break
    finally:
        proc.terminate()
        proc.wait(timeout=20)
        os.close(controller)
    keys = KEY.findall(shown.decode(errors="replace"))
    assert keys == [(tmp_path / "data" / "initial-admin.key").read_text().strip()]


def test_a_bad_setting_is_one_line_naming_it_and_a_documented_exit_code(tmp_path: Path) -> None:
    from connector.cli import Exit

    env = _env(tmp_path) | {"CONNECTOR_PORT": "eighty"}
    done = subprocess.run(
        [sys.executable, "-m", "connector.cli", "migrate"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == Exit.CONFIGURATION == 8
    assert done.stdout == ""
    [line] = done.stderr.splitlines()
    assert line.startswith("connector: configuration error: CONNECTOR_PORT: ")
    assert "Traceback" not in done.stderr

    env = _env(tmp_path) | {"CONNECTOR_SECRET_KEY": "not-a-fernet-key"}
    done = subprocess.run(
        [sys.executable, "-m", "connector.cli", "migrate"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    # migrate needs no key; a command that builds the services reads it
    assert done.returncode == 0, done.stderr
    done = subprocess.run(
        [sys.executable, "-m", "connector.cli", "sync"], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == Exit.CONFIGURATION, done.stderr
    [line] = done.stderr.splitlines()
    assert line.startswith("connector: configuration error: CONNECTOR_SECRET_KEY: ")

    env = _env(tmp_path) | {"CONNECTOR_DATABASE_URL": "postgresql+asyncpg://nobody@127.0.0.1:9/none"}
    done = subprocess.run(
        [sys.executable, "-m", "connector.cli", "migrate"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == Exit.DATABASE_UNAVAILABLE == 7, done.stderr
    [line] = done.stderr.splitlines()
    assert line.startswith("connector: database unavailable: ")


def test_version(tmp_path: Path) -> None:
    from importlib.metadata import version

    done = _cli(tmp_path, "--version")
    assert done.returncode == 0
    assert done.stdout.strip() == f"connector {version('connector')}"


def test_exit_codes_are_distinct() -> None:
    from connector.cli import Exit

    assert len({int(code) for code in Exit}) == len(Exit)


def test_migrate_up_and_down(tmp_path: Path) -> None:
    assert _cli(tmp_path, "migrate").returncode == 0
    down = _cli(tmp_path, "migrate", "base", "--downgrade")
    assert down.returncode == 0, down.stderr
    assert _cli(tmp_path, "migrate").returncode == 0


def test_secrets_generate_key_prints_a_fernet_key(tmp_path: Path) -> None:
    result = _cli(tmp_path, "secrets", "generate-key")
    assert result.returncode == 0
    assert len(result.stdout.strip()) == 44


def test_secret_key_rotation_reencrypts_every_connection(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import asyncio

    from cryptography.fernet import Fernet
    from sqlalchemy import select

    from connector import cli
    from connector.infra import db
    from connector.infra.security.crypto import CredentialCipher
    from connector.models import Connection, Tenant

    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    url = f"sqlite+aiosqlite:///{tmp_path / 'rot.db'}"
    monkeypatch.setenv("CONNECTOR_DATABASE_URL", url)

    async def seed() -> None:
        await db.migrate(url)
        engine = db.create_engine(url)
        cipher = CredentialCipher([old])
        async with db.transaction(db.session_factory(engine)) as session:
            tenant = Tenant(name="t", settings={})
            session.add(tenant)
            await session.flush()
            session.add(
                Connection(
                    tenant_id=tenant.id,
                    name="c",
                    kind="dummy_psa",
                    role="psa",
                    base_url="https://x.example",
                    credentials_encrypted=cipher.encrypt_json({"api_secret": "s3cr3t"}),
                    webhook_secret_encrypted=cipher.encrypt_text("hook"),
                    options={},
                )
            )
        await engine.dispose()

    async def read() -> tuple[bytes, bytes]:
        engine = db.create_engine(url)
        async with db.session_factory(engine)() as session:
            row = (await session.scalars(select(Connection))).one()
        await engine.dispose()
        return row.credentials_encrypted, row.webhook_secret_encrypted or b""

    asyncio.run(seed())
    monkeypatch.setenv("CONNECTOR_SECRET_KEY", f"{new},{old}")
    assert cli.main(["secrets", "rotate"]) == 0
    credentials, hook = asyncio.run(read())
    only_new = CredentialCipher([new])
    assert only_new.decrypt_json(credentials) == {"api_secret": "s3cr3t"}
    assert only_new.decrypt_text(hook) == "hook"


def test_worker_once_runs_what_is_runnable_and_exits(tmp_path: Path) -> None:
    done = _cli(tmp_path, "worker", "--once")
    assert done.returncode == 0, done.stderr
    assert "ran 0 job(s)" in done.stdout


def test_worker_stops_cleanly_on_sigterm(tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "connector.cli", "worker", "--poll-interval", "0.2"],
        env=_env(tmp_path),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert proc.stdout is not None
    seen = []
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        seen.append(line)
        if "worker started" in line or not line:
            break
    proc.terminate()
    output, _ = proc.communicate(timeout=20)
    assert any("worker started" in line for line in seen), "".join(seen) + output
    assert proc.returncode == 0, output
    assert "worker stopping" in output


def test_demo_starts_a_seeded_msp_and_prints_how_to_sign_in(tmp_path: Path) -> None:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "connector.cli", "demo", "--port", str(port)],
        env=_env(tmp_path),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert proc.stdout is not None
    lines: list[str] = []
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            lines.append(line)
            if "Admin API key" in line:
                break
        output = "".join(lines)
        [key] = KEY.findall(output.split("Admin API key", 1)[1])
        assert f"Dashboard: http://127.0.0.1:{port}/" in output
        assert "Maintenance window: " in output and "Alert storm: " in output, output
        api = httpx.Client(
            base_url=f"http://127.0.0.1:{port}/api/v1", headers={"Authorization": f"Bearer {key}"}, timeout=10
        )
        assert api.get("/fleet/summary").json()["overall"]["total"] >= 1000
        assert any(p["ticket_id"] for p in api.get("/problems").json())
        assert len(api.get("/client-mappings").json()) >= 20
        # Every installed kind whose harness is in the demo has a connection there.
        rmms, psas = installed_harnesses(discover().all())
        kinds = {c["kind"] for c in api.get("/connections").json()}
        assert {h.spec.kind for h in [*rmms, *psas] if h.in_demo} <= kinds, kinds
    finally:
        proc.terminate()
        proc.communicate(timeout=20)


def test_demo_empty_prints_the_systems_and_configures_nothing(tmp_path: Path) -> None:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "connector.cli", "demo", "--empty", "--per-client", "3", "--port", str(port)],
        env=_env(tmp_path),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert proc.stdout is not None
    lines: list[str] = []
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            lines.append(line)
            if "Stop with Ctrl+C" in line:
                break
        output = "".join(lines)
        assert "no connections yet" in output, output
        [key] = KEY.findall(output.split("Admin API key", 1)[1])
        systems = output.split("simulated systems answer at:", 1)[1]
        rmms, psas = installed_harnesses(discover().all())
        for harness in (h for h in [*rmms, *psas] if h.in_demo):
            assert f"({harness.spec.kind}): https://" in systems, harness.spec.kind
        # the options an action needs are printed with the credentials (Datto's script components)
        assert re.search(
            r"\(datto_rmm\): \S+  api_key=\S+ api_secret=\S+  options: scan_component_uid=", systems
        )
        api = httpx.Client(
            base_url=f"http://127.0.0.1:{port}/api/v1", headers={"Authorization": f"Bearer {key}"}, timeout=10
        )
        for path in ("/connections", "/client-mappings", "/ticket-rules", "/billing-rules", "/sync-runs"):
            assert api.get(path).json() == [], path
        assert api.get("/fleet/summary").json()["overall"]["total"] == 0
    finally:
        proc.terminate()
        proc.communicate(timeout=20)
