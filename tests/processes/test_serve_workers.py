"""Every way of running the HTTP service redacts `?token=` in its access log, and `connector serve
--workers 2` really runs two server processes on one port: `connector serve` (one process),
`connector serve --workers 2`, and uvicorn's own command over the app factory
(`uvicorn connector.app:app_from_environment --factory`), each a real process. SQLite."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.support.processes import HOST, Deployment, Proc, free_port

pytestmark = pytest.mark.processes
SECRET = "tok-3f9c2a7e51d04b8a"


def _uvicorn(deployment: Deployment, workers: int) -> Proc:
    """uvicorn's command line over the factory, the way a container image might run it."""
    port = free_port()
    args = [
        "-m",
        "uvicorn",
        "connector.app:app_from_environment",
        "--factory",
        "--host",
        HOST,
        "--port",
        str(port),
        "--workers",
        str(workers),
    ]
    log_path = deployment.folder / "proc-uvicorn.log"
    with log_path.open("wb") as handle:
        popen = subprocess.Popen(
            [sys.executable, *args],
            env=deployment.env(CONNECTOR_LOG_LEVEL="INFO", CONNECTOR_RUN_WORKER="false"),
            stdout=handle,
            stderr=subprocess.STDOUT,
        )
    proc = Proc(args, popen, log_path, port)
    deployment.processes.append(proc)
    proc.wait_ready()
    return proc


@pytest.mark.parametrize("way", ["serve", "serve --workers 2", "uvicorn --factory --workers 2"])
def test_the_access_log_redacts_the_webhook_token(tmp_path: Path, way: str) -> None:
    deployment = Deployment.create("sqlite", tmp_path)
    deployment.migrate()
    try:
        if way.startswith("uvicorn"):
            proc = _uvicorn(deployment, workers=2)
        else:
            proc = deployment.start(
                *way.split(), "--no-worker", env=deployment.env(CONNECTOR_LOG_LEVEL="INFO")
            )
        with httpx.Client(base_url=proc.url, timeout=30) as client:
            for n in range(20):  # spread over the processes
                answer = client.post(f"/webhooks/no-such-connection?token={SECRET}&n={n}", content=b"{}")
                assert answer.status_code in (401, 403, 404), answer.text
            assert client.get(f"/healthz?token={SECRET}").status_code == 200
        proc.terminate()
        output = proc.output()
        assert SECRET not in output, output
        assert "token=[redacted]" in output, output
        servers = output.count("Started server process")
        assert servers == (1 if way == "serve" else 2), output
    finally:
        deployment.close()
