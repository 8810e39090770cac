"""Shared fixtures. Every test that uses `services`, `app` or `client` runs once per database
backend: SQLite always, PostgreSQL (127.0.0.1:5432, database `test`, a schema of its own) when it is
reachable — otherwise those runs are skipped and the summary says so."""

from __future__ import annotations

import asyncio
import os
import shutil
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.fernet import Fernet
from sqlalchemy import text

from adapters.registry import AdapterRegistry, discover
from connector.app import create_app
from connector.infra import db
from connector.infra.context import Services
from connector.infra.security.apikeys import ApiRole
from connector.models import Base
from connector.runtime import build_services
from connector.settings import Settings
from connector.tenants.service import create_api_key, get_or_create_tenant
from tests.support.dummy_adapters import DUMMY_PSA, DUMMY_RMM
from tests.support.fleet_rmm import FLEET_RMM
from tests.support.vendors import VendorRouter

PG_URL = os.environ.get("CONNECTOR_TEST_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test")
BACKENDS = os.environ.get("CONNECTOR_TEST_BACKENDS", "sqlite,postgresql").split(",")
_RAN: dict[str, int] = {"sqlite": 0, "postgresql": 0}
_PG_STATE: dict[str, Any] = {}


def _postgres_reachable() -> str | None:
    """None when reachable, else the reason."""
    if "checked" not in _PG_STATE:

        async def probe() -> None:
            engine = db.create_engine(PG_URL)
            try:
                async with engine.connect() as conn:
                    await conn.execute(text("SELECT 1"))
            finally:
                await engine.dispose()

        try:
            asyncio.run(asyncio.wait_for(probe(), 5))
            _PG_STATE["checked"] = None
        except Exception as exc:
            _PG_STATE["checked"] = f"{type(exc).__name__}: {exc}"[:200]
    reason: str | None = _PG_STATE["checked"]
    return reason


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One migrated SQLite file; each test gets a copy (much faster than migrating per test)."""
    path = tmp_path_factory.mktemp("sqlite") / "template.db"
    asyncio.run(db.migrate(f"sqlite+aiosqlite:///{path}"))
    return path


@pytest.fixture(scope="session")
def pg_schema() -> Iterator[str]:
    reason = _postgres_reachable()
    if reason is not None:
        pytest.skip(f"PostgreSQL unreachable at {PG_URL}: {reason}")
    schema = f"connector_test_{uuid.uuid4().hex[:10]}"
    asyncio.run(db.migrate(PG_URL, schema=schema))
    yield schema

    async def drop() -> None:
        engine = db.create_engine(PG_URL)
        async with engine.begin() as conn:
            await conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        await engine.dispose()

    asyncio.run(drop())


@pytest.fixture(params=[b for b in ("sqlite", "postgresql") if b in BACKENDS])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def settings(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> Settings:
    """Settings for one test on one backend, with a fresh, already-migrated database."""
    common: dict[str, Any] = {
        "data_dir": tmp_path,
        "secret_key": Fernet.generate_key().decode(),
        "allow_insecure_loopback": True,
        "public_url": "https://connector.example.test",
        "run_worker": False,
        "run_scheduler": False,
        # A loaded CI machine can take seconds for one SQLite commit; the 5 s request deadline is
        # a production figure, and the tests about deadlines set their own.
        "db_command_timeout_seconds": 30.0,
    }
    if backend == "sqlite":
        path = tmp_path / "connector.db"
        shutil.copy(request.getfixturevalue("sqlite_template"), path)
        _RAN["sqlite"] += 1
        return Settings(database_url=f"sqlite+aiosqlite:///{path}", **common)
    schema = request.getfixturevalue("pg_schema")
    _RAN["postgresql"] += 1
    return Settings(database_url=PG_URL, database_schema=schema, **common)


def test_registry() -> AdapterRegistry:
    registry = discover()
    registry.add(DUMMY_RMM)
    registry.add(DUMMY_PSA)
    registry.add(FLEET_RMM)
    return registry


test_registry.__test__ = False  # type: ignore[attr-defined]


@pytest.fixture
def vendors() -> VendorRouter:
    return VendorRouter()


async def no_wait(_seconds: float) -> None:
    return None


@pytest.fixture
async def services(settings: Settings, vendors: VendorRouter) -> AsyncIterator[Services]:
    built = build_services(settings, registry=test_registry(), transport_factory=vendors.factory)
    built.adapter_sleep = no_wait
    if settings.database_schema:
        async with built.engine.begin() as conn:
            tables = ", ".join(f'"{t.name}"' for t in Base.metadata.sorted_tables)
            await conn.execute(text(f"TRUNCATE {tables} CASCADE"))
    yield built
    await built.aclose()


@pytest.fixture
async def app(services: Services) -> AsyncIterator[Any]:
    application = create_app(services=services, migrate=False)
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture
async def client(app: Any) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver") as c:
        yield c


KeyMaker = Callable[..., Awaitable[dict[str, str]]]


@pytest.fixture
def make_key(services: Services) -> KeyMaker:
    """`await make_key("engineer", tenant="acme")` → Authorization headers for a new key."""

    async def make(role: str = "admin", tenant: str = "default") -> dict[str, str]:
        async with db.transaction(services.sessions) as session:
            row = await get_or_create_tenant(session, tenant)
            _, plaintext = await create_api_key(session, row, ApiRole(role), f"{role} test key")
        return {"Authorization": f"Bearer {plaintext}"}

    return make


def pytest_sessionfinish(session: pytest.Session) -> None:
    """Under pytest-xdist each worker hands its counts to the controller, which prints the summary."""
    workeroutput = getattr(session.config, "workeroutput", None)
    if workeroutput is not None:
        workeroutput["connector_ran"] = dict(_RAN)
        workeroutput["connector_postgres"] = _PG_STATE.get("checked")


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: Any) -> None:
    output = getattr(node, "workeroutput", {})
    for name, count in output.get("connector_ran", {}).items():
        _RAN[name] += count
    if output.get("connector_postgres"):
        _PG_STATE.setdefault("checked", output["connector_postgres"])


def pytest_terminal_summary(terminalreporter: Any) -> None:
    lines = []
    for name in ("sqlite", "postgresql"):
        if name not in BACKENDS:
            lines.append(f"{name}: not selected (CONNECTOR_TEST_BACKENDS)")
        elif _RAN[name]:
            lines.append(f"{name}: ran {_RAN[name]} database tests")
        elif name == "postgresql" and _PG_STATE.get("checked"):
            lines.append(f"postgresql: SKIPPED, unreachable ({_PG_STATE['checked']})")
        else:
            lines.append(f"{name}: no database tests selected")
    terminalreporter.write_sep("=", "database backends")
    for line in lines:
        terminalreporter.write_line(line)
