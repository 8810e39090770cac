"""Static checks of Dockerfile, .dockerignore and compose.yaml, since no image is built in tests.

They pin what is easy to get silently wrong: running as root, a health check that cannot run on a
slim image, environment variable names the settings do not know (pydantic-settings ignores them),
an unbuildable context, and a compose file that starts without a secret key or before PostgreSQL.
"""

from __future__ import annotations

import http.server
import json
import os
import re
import subprocess
import sys
import threading
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from connector.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
SETTINGS_ENV = {f"CONNECTOR_{name.upper()}" for name in Settings.model_fields}


def instructions(dockerfile: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs with continuation lines joined and comments dropped."""
    logical: list[str] = []
    pending = ""
    for raw in dockerfile.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        logical.append(pending + line)
        pending = ""
    assert not pending, "the Dockerfile ends inside a continued line"
    result = []
    for line in logical:
        keyword, _, rest = line.partition(" ")
        result.append((keyword.upper(), rest.strip()))
    return result


@pytest.fixture(scope="module")
def final_stage() -> list[tuple[str, str]]:
    """Instructions of the last stage, the one that becomes the image."""
    steps = instructions((ROOT / "Dockerfile").read_text())
    last_from = max(i for i, (keyword, _) in enumerate(steps) if keyword == "FROM")
    return steps[last_from:]


def args_of(stage: list[tuple[str, str]], keyword: str) -> list[str]:
    return [rest for kw, rest in stage if kw == keyword]


def env_of(stage: list[tuple[str, str]]) -> dict[str, str]:
    env: dict[str, str] = {}
    for rest in args_of(stage, "ENV"):
        for name, value in re.findall(r"([A-Z_][A-Z0-9_]*)=(\S+)", rest):
            env[name] = value
    return env


def test_image_is_python_311_slim(final_stage: list[tuple[str, str]]) -> None:
    assert final_stage[0][1].split()[0] == "python:3.11-slim"
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["requires-python"] == ">=3.11"


def test_runs_as_the_non_root_user_it_creates(final_stage: list[tuple[str, str]]) -> None:
    users = args_of(final_stage, "USER")
    assert users, "no USER instruction: the container would run as root"
    user = users[-1].split(":")[0]
    assert user not in ("root", "0")
    run = " ".join(args_of(final_stage, "RUN"))
    created = re.search(r"useradd .*--uid (\d+) .*?(\S+)(?: &&|$)", run)
    assert created, "no useradd with a fixed --uid"
    assert user in created.groups()
    # the data directory must be writable by that user
    assert re.search(r"chown \S+ /data", run)


def test_entry_point_is_the_console_script_serving(final_stage: list[tuple[str, str]]) -> None:
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert json.loads(args_of(final_stage, "ENTRYPOINT")[-1]) == ["connector"]
    assert scripts["connector"] == "connector.cli:main"
    assert json.loads(args_of(final_stage, "CMD")[-1]) == ["serve"]


def test_environment_listens_publicly_and_keeps_data_in_the_volume(
    final_stage: list[tuple[str, str]],
) -> None:
    env = env_of(final_stage)
    assert env["CONNECTOR_HOST"] == "0.0.0.0"
    assert env["CONNECTOR_DATA_DIR"] == "/data"
    assert "/data" in json.loads(args_of(final_stage, "VOLUME")[-1])
    port = str(Settings.model_fields["port"].default)
    assert env.get("CONNECTOR_PORT", port) == port
    assert args_of(final_stage, "EXPOSE") == [port]
    unknown = {name for name in env if name.startswith("CONNECTOR_")} - SETTINGS_ENV
    assert not unknown, f"not settings: {unknown}"


def test_build_copies_what_the_package_needs() -> None:
    steps = instructions((ROOT / "Dockerfile").read_text())
    sources = {
        word.rstrip("/")
        for rest in args_of(steps, "COPY")
        if not rest.startswith("--from")
        for word in rest.split()[:-1]
    }
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    needed = [p.rstrip("*") for p in pyproject["tool"]["setuptools"]["packages"]["find"]["include"]]
    for name in ["pyproject.toml", pyproject["project"]["readme"], *needed]:
        assert name in sources, f"{name} is not copied"
        assert (ROOT / name).exists()
    assert any("pip" in rest and (" ." in rest or "/wheels" in rest) for rest in args_of(steps, "RUN"))


def test_dockerignore_keeps_local_state_out_but_not_the_sources() -> None:
    ignored = {
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    for entry in (".venv", ".git", "data", ".env", "**/__pycache__", ".mypy_cache", ".pytest_cache"):
        assert entry in ignored
    for needed in ("pyproject.toml", "README.md", "adapters", "connector", "mappings", "migrations"):
        assert needed not in ignored and f"{needed}/" not in ignored


class _Health(http.server.BaseHTTPRequestHandler):
    status = 200

    def do_GET(self) -> None:
        self.send_response(self.status if self.path == "/healthz" else 404)
        self.end_headers()
        self.wfile.write(b'{"status": "ok"}')

    def log_message(self, *args: Any) -> None:
        return None


@pytest.fixture
def health_server() -> Iterator[http.server.HTTPServer]:
    server = http.server.HTTPServer(("127.0.0.1", 0), _Health)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    _Health.status = 200


def test_healthcheck_command_works_without_curl(
    final_stage: list[tuple[str, str]], health_server: http.server.HTTPServer
) -> None:
    """Run the HEALTHCHECK's own command against a stand-in /healthz: 0 when up, non-zero when not."""
    healthcheck = args_of(final_stage, "HEALTHCHECK")[-1]
    command = json.loads(healthcheck[healthcheck.index("CMD") + 3 :].strip())
    assert command[0] == "python" and "curl" not in healthcheck
    assert "/healthz" in command[-1]

    def run() -> int:
        env = {**os.environ, "CONNECTOR_PORT": str(health_server.server_address[1])}
        return subprocess.run(
            [sys.executable, *command[1:]], env=env, capture_output=True, timeout=30
        ).returncode

    assert run() == 0
    _Health.status = 503
    assert run() != 0


# --- compose.yaml ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    yaml = pytest.importorskip("yaml")
    loaded: dict[str, Any] = yaml.safe_load((ROOT / "compose.yaml").read_text())
    return loaded


def interpolate(value: str, environ: dict[str, str]) -> str:
    """Compose's `${NAME}`, `${NAME:-default}` and `${NAME:?error}` forms."""

    def one(match: re.Match[str]) -> str:
        name, op, arg = match.group(1), match.group(2), match.group(3)
        if environ.get(name):
            return environ[name]
        if op == ":?":
            raise LookupError(arg)
        return arg if op == ":-" else ""

    return re.sub(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:-|:\?)([^}]*))?\}", one, value)


def test_postgres_is_healthchecked_and_waited_for(compose: dict[str, Any]) -> None:
    services = compose["services"]
    postgres = services["postgres"]
    assert postgres["image"] == "postgres:16"
    assert "pg_isready" in " ".join(postgres["healthcheck"]["test"])
    app = services["connector"]
    assert app["build"] == "."
    assert app["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert app["command"] == ["serve"]
    assert "8080:8080" in app["ports"]


def test_named_volumes_are_declared_and_used(compose: dict[str, Any]) -> None:
    declared = set(compose["volumes"])
    used = {
        mount.split(":")[0]
        for service in compose["services"].values()
        for mount in service.get("volumes", [])
        if not mount.startswith((".", "/"))
    }
    assert used == declared
    assert "postgres-data:/var/lib/postgresql/data" in compose["services"]["postgres"]["volumes"]
    assert "connector-data:/data" in compose["services"]["connector"]["volumes"]


def test_secret_key_is_required_with_a_clear_message(compose: dict[str, Any]) -> None:
    env = compose["services"]["connector"]["environment"]
    assert env["CONNECTOR_SECRET_KEY"].startswith("${CONNECTOR_SECRET_KEY:?")
    with pytest.raises(LookupError, match="CONNECTOR_SECRET_KEY"):
        interpolate(env["CONNECTOR_SECRET_KEY"], {})


def test_service_environment_is_understood_by_the_settings(
    compose: dict[str, Any], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from cryptography.fernet import Fernet

    from connector.infra.context import build_cipher

    postgres_env = compose["services"]["postgres"]["environment"]
    for name, service in compose["services"].items():
        if name == "postgres":
            continue
        environment: dict[str, str] = service["environment"]
        unknown = {key for key in environment if key.startswith("CONNECTOR_")} - SETTINGS_ENV
        assert not unknown, f"{name}: not settings: {unknown}"
        key = Fernet.generate_key().decode()
        monkeypatch.chdir(tmp_path)  # no stray .env
        for var, value in environment.items():
            monkeypatch.setenv(var, interpolate(value, {"CONNECTOR_SECRET_KEY": key}))
        settings = Settings()
        url = settings.resolved_database_url()
        user = interpolate(postgres_env["POSTGRES_USER"], {})
        password = interpolate(postgres_env["POSTGRES_PASSWORD"], {})
        database = interpolate(postgres_env["POSTGRES_DB"], {})
        assert url == f"postgresql+asyncpg://{user}:{password}@postgres:5432/{database}"
        build_cipher(settings)  # the key decodes


def test_cron_sync_service_is_opt_in(compose: dict[str, Any]) -> None:
    sync = compose["services"]["sync"]
    assert sync["command"] == ["sync"]
    assert sync["profiles"], "without a profile `docker compose up` would run it"
    assert sync["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert sync["image"] == compose["services"]["connector"]["image"]
