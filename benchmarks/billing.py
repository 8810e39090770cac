"""Billing preview and push at scale: 100,000 endpoints over 2,000 clients, a 31-day month of daily
usage, every client mapped to a company (with an agreement to bill on) of a PSA fake, for every
installed PSA kind with a harness (or those named with `--psa`). Prints preview time (direct and
over HTTP, JSON and CSV), then the PSA calls of a first push, of a second push with nothing
changed, and of a push after 1 % of the clients' usage changed.

    .venv/bin/python -m benchmarks.billing [--clients 2000] [--endpoints 100000] [--backend sqlite|postgresql]
        [--psa KIND ...]
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
import uuid
from pathlib import Path

import httpx
from cryptography.fernet import Fernet
from sqlalchemy import insert, select, text, update

from adapters.registry import discover
from adapters.testing.harness import PsaHarness
from benchmarks.tenant import add_psa_argument, build_tenant, calls_by_method, psa_harnesses
from connector.app import create_app
from connector.billing.service import build_preview, push
from connector.infra import db
from connector.infra.security.apikeys import ApiRole
from connector.models import ClientMapping, Connection, UsageDaily
from connector.runtime import build_services
from connector.settings import Settings
from connector.tenants.service import create_api_key, get_or_create_tenant
from tests.support.dummy_adapters import DUMMY_RMM
from tests.support.vendors import VendorRouter

PG_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
PERIOD = "2026-10"


async def main(args: argparse.Namespace) -> None:
    for harness in psa_harnesses(args.psa):
        await one_psa(harness, args)


async def one_psa(harness: PsaHarness, args: argparse.Namespace) -> None:
    per_client = args.endpoints // args.clients
    with tempfile.TemporaryDirectory() as tmp:
        schema = f"bench_{uuid.uuid4().hex[:8]}"
        common = {"data_dir": Path(tmp), "secret_key": Fernet.generate_key().decode(), "run_worker": False}
        settings = (
            Settings(database_url=PG_URL, database_schema=schema, **common)
            if args.backend == "postgresql"
            else Settings(database_url=f"sqlite+aiosqlite:///{tmp}/bench.db", **common)
        )
        await db.migrate(settings.resolved_database_url(), schema=settings.database_schema)
        vendors = VendorRouter()
        registry = discover()
        registry.add(DUMMY_RMM)
        services = build_services(settings, registry=registry, transport_factory=vendors.factory)
        app = create_app(services=services, migrate=False)
        psa = harness.start(companies=[f"Client {c}" for c in range(args.clients)], devices_per_company=0)
        try:
            async with (
                app.router.lifespan_context(app),
                httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://bench") as client,
            ):
                async with db.transaction(services.sessions) as session:
                    tenant = await get_or_create_tenant(session, "default")
                    _, key = await create_api_key(session, tenant, ApiRole.ENGINEER, "bench")
                    tenant_id = tenant.id
                headers = {"Authorization": f"Bearer {key}"}
                stack = await build_tenant(client, headers, vendors, psa)
                await stack.post(
                    "/api/v1/billing-rules",
                    {
                        "psa_connection_id": stack.psa["id"], "product": "acme edr",
                        "count_method": "average", "count_scope": "installed",
                        "unit_price": "4.50",
                        "cost_tiers": [
                            {"min_seats": 1, "unit_cost": "2.10"}, {"min_seats": 50001, "unit_cost": "1.60"}
                        ],
                        **psa.billing_ids.rule_fields(),
                    },
                )  # fmt: skip
                mappings, usage = [], []
                for c, company in enumerate(psa.companies):
                    mappings.append(
                        {"id": uuid.uuid4().hex, "tenant_id": tenant_id, "rmm_connection_id": stack.rmm["id"],
                         "rmm_client_id": f"c-{c}", "psa_connection_id": stack.psa["id"],
                         "psa_company_id": str(company), "psa_company_name": f"Client {c}"}
                    )  # fmt: skip
                    for day in range(1, 32):
                        seats = per_client - (day + c) % 3
                        usage.append(
                            {"tenant_id": tenant_id, "rmm_connection_id": stack.rmm["id"],
                             "client_id": f"c-{c}", "product": "Acme EDR 12", "day": f"{PERIOD}-{day:02d}",
                             "peak_installed": seats, "last_installed": seats, "peak_protected": seats,
                             "last_protected": seats}
                        )  # fmt: skip
                async with db.transaction(services.sessions) as session:
                    await session.execute(insert(ClientMapping), mappings)
                    await session.execute(insert(UsageDaily), usage)
                print(
                    f"{harness.spec.kind}: {args.endpoints} endpoints, {args.clients} clients, 31 days "
                    f"({len(usage)} usage rows), {args.backend}"
                )
                started = time.perf_counter()
                async with services.sessions() as session:
                    preview = await build_preview(session, tenant_id, PERIOD)
                took = time.perf_counter() - started
                print(f"preview (direct)                   {took:6.2f} s   {len(preview.lines)} lines")
                for accept in ("application/json", "text/csv"):
                    started = time.perf_counter()
                    response = await client.get(
                        "/api/v1/billing/preview",
                        params={"period": PERIOD},
                        headers={**headers, "Accept": accept},
                    )
                    assert response.status_code == 200
                    took = time.perf_counter() - started
                    print(f"preview over HTTP, {accept:<16} {took:6.2f} s   {len(response.content)} bytes")

                async def measured_push(label: str) -> None:
                    psa.reset_calls()
                    started = time.perf_counter()
                    _, results = await push(services, tenant_id, PERIOD)
                    actions: dict[str, int] = {}
                    for r in results:
                        actions[r.action] = actions.get(r.action, 0) + 1
                    took = time.perf_counter() - started
                    print(
                        f"{label:<34} {took:6.2f} s   PSA calls {psa.request_count():5d} "
                        f"({calls_by_method(psa) or 'none'})   {actions}"
                    )

                await measured_push("push #1 (every line new)")
                await measured_push("push #2 (nothing changed)")
                async with db.transaction(services.sessions) as session:
                    changed = [f"c-{c}" for c in range(0, args.clients, 100)]
                    await session.execute(
                        update(UsageDaily)
                        .where(UsageDaily.client_id.in_(changed))
                        .values(peak_installed=UsageDaily.peak_installed + 5)
                    )
                await measured_push(f"push #3 ({len(changed)} lines changed)")
                async with services.sessions() as session:
                    count = len(list(await session.scalars(select(Connection.id))))
                assert count >= 2
        finally:
            await services.aclose()
            if args.backend == "postgresql":
                engine = db.create_engine(PG_URL)
                async with engine.begin() as conn:
                    await conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
                await engine.dispose()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--clients", type=int, default=2000)
    parser.add_argument("--endpoints", type=int, default=100_000)
    parser.add_argument("--backend", choices=["sqlite", "postgresql"], default="sqlite")
    add_psa_argument(parser)
    asyncio.run(main(parser.parse_args()))
