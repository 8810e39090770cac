"""`connector sync`: runs once in the foreground, prints a summary, exit code says what happened."""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import select, text, update

from adapters.errors import CredentialsError
from connector import cli
from connector.app import create_app
from connector.infra import db
from connector.infra.context import Services
from connector.infra.security.apikeys import ApiRole
from connector.models import Base, SyncRun
from connector.runtime import build_services
from connector.settings import Settings
from connector.tenants.service import create_api_key, get_or_create_tenant
from tests.conftest import no_wait, test_registry
from tests.support.fleet_rmm import FLEETS, FleetFake


@pytest.fixture
def fleet() -> Iterator[tuple[str, FleetFake]]:
    fake = FleetFake(page_size=25)
    fake.seed(2, 30)
    host = f"fleet-{uuid.uuid4().hex[:8]}.example.com"
    FLEETS[host] = fake
    yield host, fake
    FLEETS.pop(host, None)


def _services(settings: Settings) -> Services:
    built = build_services(settings, registry=test_registry())
    built.adapter_sleep = no_wait
    return built


def _connection(settings: Settings, host: str) -> str:
    async def create() -> str:
        services = _services(settings)
        app = create_app(services=services, migrate=False)
        if settings.database_schema:  # the PostgreSQL schema is shared by the session's tests
            async with services.engine.begin() as conn:
                tables = ", ".join(f'"{t.name}"' for t in Base.metadata.sorted_tables)
                await conn.execute(text(f"TRUNCATE {tables} CASCADE"))
        try:
            async with db.transaction(services.sessions) as session:
                tenant = await get_or_create_tenant(session, "default")
                _, key = await create_api_key(session, tenant, ApiRole.ENGINEER, "t")
            async with httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app), base_url="http://t"
            ) as client:
                response = await client.post(
                    "/api/v1/connections",
                    headers={"Authorization": f"Bearer {key}"},
                    json={
                        "name": "Fleet",
                        "kind": "fleet_rmm",
                        "base_url": f"https://{host}",
                        "credentials": {"token": "t"},
                    },
                )
                assert response.status_code == 201, response.text
                return str(response.json()["id"])
        finally:
            await services.aclose()

    return asyncio.run(create())


def run_sync(settings: Settings, monkeypatch: pytest.MonkeyPatch, *args: str) -> int:
    if getattr(cli.build_services, "__module__", "") == "connector.runtime":
        monkeypatch.setattr(cli, "build_services", lambda s, **_: _services(s))
    parsed = cli.build_parser().parse_args(["sync", *args])
    return int(parsed.func(settings, parsed))


def test_sync_succeeds_and_prints_a_summary(
    settings: Settings, fleet: tuple[str, FleetFake], monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    _connection(settings, fleet[0])
    assert run_sync(settings, monkeypatch) == 0
    out = capsys.readouterr().out
    assert "Fleet: succeeded - full pass, 3 page(s), 60 seen, 60 changed" in out
    assert "Fleet: 1 page(s), 25 endpoint(s)" in out  # plain progress lines when not a terminal


def test_sync_exits_1_and_names_the_error_when_a_connection_fails(
    settings: Settings, fleet: tuple[str, FleetFake], monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    _connection(settings, fleet[0])
    fleet[1].fail_on_page, fleet[1].failure = 1, CredentialsError("API key revoked", status=401)
    assert run_sync(settings, monkeypatch) == 1
    captured = capsys.readouterr()
    assert "Fleet: failed" in captured.out
    assert "API key revoked" in captured.err


def test_sync_exits_4_when_the_connection_is_already_syncing(
    settings: Settings, fleet: tuple[str, FleetFake], monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    connection_id = _connection(settings, fleet[0])
    assert run_sync(settings, monkeypatch, "--connection", connection_id) == 0

    async def pretend_running() -> None:
        services = _services(settings)
        try:
            async with db.transaction(services.sessions) as session:
                await session.execute(
                    update(SyncRun).values(
                        status="running", heartbeat_at=datetime.now(UTC) - timedelta(seconds=5)
                    )
                )
        finally:
            await services.aclose()

    asyncio.run(pretend_running())
    assert run_sync(settings, monkeypatch, "--connection", connection_id) == cli.Exit.SYNC_RUNNING
    assert "already running" in capsys.readouterr().out
    assert run_sync(settings, monkeypatch, "--connection", "nope") == cli.Exit.NOT_FOUND


def test_billing_push_from_the_command_line(
    settings: Settings, fleet: tuple[str, FleetFake], monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    from adapters.connectwise_manage.fake import ManageFake
    from tests.support.vendors import VendorRouter

    host, _ = fleet
    manage = ManageFake(is_cloud=True)
    seed = manage.seed_demo(companies=2)
    router = VendorRouter()
    for name in ("na.myconnectwise.net", "api-na.myconnectwise.net"):
        router.add(name, manage.transport())

    def services_with_fakes(s: Settings, **_: Any) -> Services:
        built = build_services(s, registry=test_registry(), transport_factory=router.factory)
        built.adapter_sleep = no_wait
        return built

    rmm_id = _connection(settings, host)
    monkeypatch.setattr(cli, "build_services", services_with_fakes)

    async def configure() -> None:
        services = services_with_fakes(settings)
        app = create_app(services=services, migrate=False)
        try:
            async with db.transaction(services.sessions) as session:
                tenant = await get_or_create_tenant(session, "default")
                _, key = await create_api_key(session, tenant, ApiRole.ENGINEER, "billing")
            headers = {"Authorization": f"Bearer {key}"}
            async with httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app), base_url="http://t"
            ) as client:

                async def post(path: str, body: dict[str, Any]) -> dict[str, Any]:
                    response = await client.post(path, json=body, headers=headers)
                    assert response.status_code == 201, response.text
                    result: dict[str, Any] = response.json()
                    return result

                psa = await post(
                    "/api/v1/connections",
                    {
                        "name": "Manage",
                        "kind": "connectwise_manage",
                        "base_url": "https://na.myconnectwise.net",
                        "credentials": manage.credentials(),
                    },
                )
                for n, company_id in enumerate(seed.company_ids):
                    await post(
                        "/api/v1/client-mappings",
                        {
                            "rmm_connection_id": rmm_id,
                            "rmm_client_id": f"c-{n}",
                            "psa_connection_id": psa["id"],
                            "psa_company_id": str(company_id),
                        },
                    )
                await post(
                    "/api/v1/billing-rules",
                    {
                        "psa_connection_id": psa["id"],
                        "product": "acme edr",
                        "count_scope": "installed",
                        "agreement_type": "Managed Services",
                        "psa_product_id": "EDR-SEAT",
                        "unit_price": "5.00",
                    },
                )
        finally:
            await services.aclose()

    asyncio.run(configure())
    capsys.readouterr()
    assert run_sync(settings, monkeypatch) == 0  # the status sync records today's usage
    # the summary counts the PSA calls the run recorded, its configuration writes included
    [shown] = re.findall(r"(\d+) PSA call\(s\)", capsys.readouterr().out)

    async def recorded() -> int:
        services = services_with_fakes(settings)
        try:
            async with services.sessions() as session:
                return int(await session.scalar(select(SyncRun.psa_calls)) or 0)
        finally:
            await services.aclose()

    assert int(shown) == asyncio.run(recorded()) > 0
    monkeypatch.setattr(cli, "build_services", services_with_fakes)
    period = datetime.now(UTC).strftime("%Y-%m")

    assert run_sync(settings, monkeypatch, "--billing", "--period", period, "--dry-run") == 0
    out = capsys.readouterr().out
    assert out.count(": would_create") == 2 and "dry run: nothing written" in out
    assert all(not manage.additions_for(a) for a in seed.agreement_ids.values())

    assert run_sync(settings, monkeypatch, "--billing", "--period", period) == 0
    out = capsys.readouterr().out
    assert "x30: created" in out
    header, rule, row = out.strip().splitlines()[-3:]  # the summary: a table, not a Python dict
    assert header.split() == ["tenant", "created", "lines"]
    assert set(rule) <= {"-", " "}
    assert row.split() == ["default", "2", "2"]
    assert "{" not in out
    assert [len(manage.additions_for(a)) for a in seed.agreement_ids.values()] == [1, 1]

    assert run_sync(settings, monkeypatch, "--billing", "--period", "2026-13") == cli.Exit.USAGE
