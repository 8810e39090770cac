"""Every long-running `connector` process runs on uvloop: `connector worker`, `connector serve` and
each process of `connector serve --workers 2` say which loop they run on when they start (JSON log
lines), and that loop is uvloop. SQLite (the loop does not depend on the database)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.support.processes import Deployment, Proc, wait_until

pytestmark = pytest.mark.processes


def _events(proc: Proc, event: str) -> list[dict[str, Any]]:
    found = []
    for line in proc.output().splitlines():
        if not line.startswith("{"):
            continue  # uvicorn's own lines are not structured
        record = json.loads(line)
        if record.get("event") == event:
            found.append(record)
    return found


@pytest.mark.parametrize(
    ("command", "event", "processes"),
    [
        (["worker", "--poll-interval", "0.2"], "worker started", 1),
        (["serve"], "service started", 1),
        (["serve", "--workers", "2"], "service started", 2),
    ],
)
def test_a_started_process_runs_on_uvloop(
    tmp_path: Path, command: list[str], event: str, processes: int
) -> None:
    deployment = Deployment.create("sqlite", tmp_path)
    deployment.migrate()
    try:
        proc = deployment.start(
            *command,
            env=deployment.env(CONNECTOR_LOG_LEVEL="INFO", CONNECTOR_LOG_FORMAT="json"),
            ready=False,  # the start-up line is what is waited for (a busy machine starts slowly)
        )
        started = wait_until(
            lambda: len(found := _events(proc, event)) >= processes and found,
            timeout=180,
            what=f"{processes} '{event}' line(s) from {command}",
        )
        assert [record["loop"] for record in started] == ["uvloop"] * processes, proc.output()
        assert proc.alive(), proc.output()
    finally:
        deployment.close()
