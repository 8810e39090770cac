"""Any number of processes may start at once on a fresh database: migrations run under a lock
(a PostgreSQL advisory lock, a file lock next to the SQLite file), and the first admin key is
created exactly once, into a file only the service user can read, never into the output."""

from __future__ import annotations

import re
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import PG_URL, _postgres_reachable
from tests.support.processes import Deployment, query

pytestmark = pytest.mark.processes

KEY = re.compile(r"ck_[0-9a-f]{12}_[A-Za-z0-9_-]+")
PROCESSES = 3


@pytest.fixture(params=["sqlite", "postgresql"])
def fresh(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Deployment]:
    """A deployment whose database (SQLite file or PostgreSQL schema) does not exist yet."""
    if request.param == "postgresql" and (reason := _postgres_reachable()) is not None:
        pytest.skip(f"PostgreSQL unreachable at {PG_URL}: {reason}")
    deployment = Deployment.create(request.param, tmp_path)
    try:
        yield deployment
    finally:
        deployment.close()


def _start(deployment: Deployment, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        deployment.command(*args),
        env=deployment.env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _finish(proc: subprocess.Popen[str]) -> tuple[int, str]:
    output, _ = proc.communicate(timeout=180)
    return proc.returncode, output


def test_concurrent_migrates_on_a_fresh_database_all_succeed(fresh: Deployment) -> None:
    procs = [_start(fresh, "migrate") for _ in range(PROCESSES)]
    results = [_finish(proc) for proc in procs]
    assert [code for code, _ in results] == [0] * PROCESSES, "\n---\n".join(out for _, out in results)
    [(version,)] = query(fresh, "SELECT version_num FROM alembic_version")
    assert version  # one row: the head, written once


def test_serve_and_sync_starting_together_create_one_admin_key(fresh: Deployment) -> None:
    sync = _start(fresh, "sync")
    serve = fresh.start("serve", "--no-worker")
    code, sync_output = _finish(sync)
    assert code == 0, sync_output
    assert "no enabled RMM connections" in sync_output
    serve.terminate()

    assert query(fresh, "SELECT count(*) FROM api_keys") == [(1,)]
    key_file = fresh.folder / "initial-admin.key"
    key = key_file.read_text().strip()
    assert KEY.fullmatch(key)
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    # not on a terminal: the key is in the file only, never in the output (the log stream)
    assert KEY.findall(serve.output() + sync_output) == []
    assert str(key_file) in serve.output()
