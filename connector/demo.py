"""`connector demo`: the whole product on a fresh SQLite file, against in-process stateful fakes of
the vendor APIs, seeded like a small MSP — without any vendor credentials.

The fakes answer on reserved `.invalid` host names; the demo's transport factory routes those names
to the fakes, so the adapters speak their real wire protocols end to end. Everything is created
through the public HTTP API, exactly as an engineer would.
"""

from __future__ import annotations

import asyncio
import random
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from adapters.connectwise_manage.fake import ManageFake
from connector.app import create_app
from connector.infra import db
from connector.infra.security.apikeys import ApiRole
from connector.runtime import background_components, build_services
from connector.settings import Settings
from connector.tenants.service import create_api_key, get_or_create_tenant

CLIENT_NAMES = [
    "Acme Dental", "Blue Harbor Logistics", "Cedar Law Group", "Delta Machining", "Evergreen Clinic",
    "Fairview Schools", "Granite Accounting", "Harbor Marine", "Iris Architects", "Juniper Foods",
    "Keystone Realty", "Lakeside Vets", "Maple Insurance", "Northwind Traders", "Oakridge Pharmacy",
    "Pinecrest Hotel", "Quarry Construction", "Riverside Church", "Summit Fitness", "Tidewater Brewing",
    "Union Street Bakery", "Valley Orthopedics", "Westgate Motors", "Yellowstone Travel", "Zenith Print",
]  # fmt: skip
MANAGE_SITE = "https://psa.demo.invalid"


class Router(httpx.AsyncBaseTransport):
    """Routes by host name to the fakes' ASGI apps."""

    def __init__(self) -> None:
        self.hosts: dict[str, httpx.AsyncBaseTransport] = {}

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        transport = self.hosts.get(request.url.host)
        if transport is None:
            return httpx.Response(502, json={"error": f"no demo system answers for {request.url.host}"})
        return await transport.handle_async_request(request)

    async def aclose(self) -> None:
        """Shared by every adapter: closing one must not close the fakes."""


@dataclass
class DemoRmm:
    kind: str
    name: str
    base_url: str
    credentials: dict[str, Any]
    transport: httpx.AsyncBaseTransport
    hosts: list[str]
    endpoints: int = 0
    in_trouble: int = 0


Seeder = Callable[[list[str], int, random.Random], DemoRmm]


def seed_nsight(clients: list[str], per_client: int, rng: random.Random) -> DemoRmm:
    from adapters.nsight.fake import NsightFake

    fake = NsightFake(now=datetime.now(UTC))
    demo = DemoRmm(
        "nsight",
        "N-sight",
        "https://nsight.demo.invalid",
        fake.credentials(),
        fake.transport(),
        ["nsight.demo.invalid"],
    )
    for name in clients:
        client = fake.add_client(name)
        site = fake.add_site(client.id, "Head Office")
        for n in range(per_client):
            device = fake.add_device(site.id, f"{name.split()[0].upper()[:6]}-NS{n + 1:03d}")
            demo.endpoints += 1
            roll = rng.random()
            if roll < 0.03:
                fake.set_av_state(device.id, threats=1)
                demo.in_trouble += 1
            elif roll < 0.06:
                fake.set_av_state(device.id, definitions_current=False)
                demo.in_trouble += 1
    return demo


def seed_automate(clients: list[str], per_client: int, rng: random.Random) -> DemoRmm:
    from datetime import timedelta

    from adapters.connectwise_automate.fake import AutomateFake

    fake = AutomateFake(now=datetime.now(UTC))
    demo = DemoRmm(
        "connectwise_automate",
        "ConnectWise Automate",
        "https://automate.demo.invalid",
        fake.credentials(),
        fake.transport(),
        ["automate.demo.invalid"],
    )
    products = ["Microsoft Defender Antivirus", "SentinelOne Agent", "Sophos Endpoint"]
    for name in clients:
        client = fake.add_client(name)
        location = fake.add_location(client.id)
        product = products[rng.randrange(len(products))]
        for n in range(per_client):
            roll = rng.random()
            demo.endpoints += 1
            if roll < 0.02:
                fake.add_computer(location.id, f"{name.split()[0].upper()[:6]}-AU{n + 1:03d}", product=None)
                demo.in_trouble += 1
            elif roll < 0.05:
                fake.add_computer(
                    location.id,
                    f"{name.split()[0].upper()[:6]}-AU{n + 1:03d}",
                    product=product,
                    definitions_age=timedelta(days=rng.randint(5, 20)),
                )
                demo.in_trouble += 1
            else:
                fake.add_computer(
                    location.id, f"{name.split()[0].upper()[:6]}-AU{n + 1:03d}", product=product
                )
    return demo


def seed_ncentral(clients: list[str], per_client: int, rng: random.Random) -> DemoRmm:
    from adapters.ncentral.fake import THREAT_SERVICE, NcentralFake

    fake = NcentralFake(now=datetime.now(UTC))
    demo = DemoRmm(
        "ncentral", "N-central", "https://ncentral.demo.invalid", fake.credentials(), fake.transport(),
        ["ncentral.demo.invalid"],
    )  # fmt: skip
    for name in clients:
        customer = fake.add_customer(name)
        site = fake.add_site(customer.id)
        for n in range(per_client):
            device = fake.add_device(
                customer.id, f"{name.split()[0].upper()[:6]}-NC{n + 1:03d}", site_id=site.id
            )
            demo.endpoints += 1
            roll = rng.random()
            if roll < 0.02:
                fake.set_service(device.id, THREAT_SERVICE, "Failed")
                demo.in_trouble += 1
            elif roll < 0.04:
                fake.set_service(device.id, "AV Defender Status", "Failed")
                demo.in_trouble += 1
    return demo


SEEDERS: dict[str, Seeder] = {
    "connectwise_automate": seed_automate,
    "ncentral": seed_ncentral,
    "nsight": seed_nsight,
}
"""Demo RMMs by kind; each seeds its own fake with a share of the clients."""


@dataclass
class DemoWorld:
    settings: Settings
    api_key: str
    rmms: list[DemoRmm] = field(default_factory=list)
    manage: ManageFake | None = None


async def seed(
    client: httpx.AsyncClient, headers: dict[str, str], router: Router, *, per_client: int
) -> DemoWorld:
    """Create the demo MSP through the HTTP API; returns what was built."""
    rng = random.Random(20261122)  # noqa: S311 - reproducible demo data
    manage = ManageFake(is_cloud=False)
    seeded = manage.seed_demo(companies=len(CLIENT_NAMES))
    for company_id, name in zip(seeded.company_ids, CLIENT_NAMES, strict=True):
        manage.companies.rows[company_id]["name"] = name
    router.hosts["psa.demo.invalid"] = manage.transport()

    async def post(path: str, body: dict[str, Any]) -> dict[str, Any]:
        response = await client.post(path, json=body, headers=headers)
        if response.status_code >= 300:
            raise RuntimeError(f"demo setup: POST {path} answered {response.status_code}: {response.text}")
        result: dict[str, Any] = response.json()
        return result

    psa = await post(
        "/api/v1/connections",
        {
            "name": "ConnectWise Manage",
            "kind": "connectwise_manage",
            "base_url": MANAGE_SITE,
            "credentials": manage.credentials(),
            "options": {"codebase": "v2025_1/"},
        },
    )
    await post(
        "/api/v1/ticket-rules",
        {
            "psa_connection_id": psa["id"],
            "board_id": str(seeded.board_id),
            "priority_id": str(seeded.priority_ids["Priority 2 - High"]),
            "type_id": str(seeded.type_ids["Security Alert"]),
            "status_new_id": str(seeded.new_status_id),
            "status_closed_id": str(seeded.closed_status_id),
            "summary_template": "{problem_title} on {hostname} ({client})",
        },
    )
    for product, psa_product, price, tiers in (
        ("SentinelOne", "EDR-SEAT", "6.00", [("1", "2.50"), ("500", "2.10")]),
        ("Defender", "AV-SEAT", "3.00", [("1", "1.10")]),
        ("Sophos", "AV-SEAT", "3.50", [("1", "1.40"), ("250", "1.20")]),
    ):
        await post(
            "/api/v1/billing-rules",
            {
                "psa_connection_id": psa["id"],
                "product": product,
                "count_scope": "installed",
                "count_method": "peak",
                "agreement_type": "Managed Services",
                "psa_product_id": psa_product,
                "description": f"{product} endpoint security (per endpoint)",
                "unit_price": price,
                "cost_tiers": [{"min_seats": int(m), "unit_cost": c} for m, c in tiers],
            },
        )
    kinds = [
        k
        for k in SEEDERS
        if k in {a["kind"] for a in (await client.get("/api/v1/adapters", headers=headers)).json()}
    ]
    world_rmms: list[DemoRmm] = []
    share = max(1, -(-len(CLIENT_NAMES) // max(1, len(kinds))))
    for index, kind in enumerate(kinds):
        clients = CLIENT_NAMES[index * share : (index + 1) * share]
        if not clients:
            continue
        rmm = SEEDERS[kind](clients, per_client, rng)
        for host in rmm.hosts:
            router.hosts[host] = rmm.transport
        created = await post(
            "/api/v1/connections",
            {"name": rmm.name, "kind": rmm.kind, "base_url": rmm.base_url, "credentials": rmm.credentials},
        )
        suggestions = (
            await client.get(
                "/api/v1/client-mappings/suggestions",
                params={"rmm_connection_id": created["id"], "psa_connection_id": psa["id"]},
                headers=headers,
            )
        ).json()
        for suggestion in suggestions:
            if float(suggestion["score"]) < 0.8:
                continue
            await post(
                "/api/v1/client-mappings",
                {
                    "rmm_connection_id": created["id"],
                    "rmm_client_id": suggestion["rmm_client_id"],
                    "rmm_client_name": suggestion.get("rmm_client_name"),
                    "psa_connection_id": psa["id"],
                    "psa_company_id": suggestion["psa_company_id"],
                    "psa_company_name": suggestion.get("psa_company_name"),
                },
            )
        await post("/api/v1/sync-runs", {"connection_id": created["id"]})
        world_rmms.append(rmm)
    return DemoWorld(settings=Settings(), api_key="", rmms=world_rmms, manage=manage)


def run(
    settings: Settings, *, host: str, port: int, per_client: int = 60, out: Callable[[str], Any] = print
) -> int:
    import uvicorn

    data_dir = Path(settings.data_dir) / "demo"
    if data_dir.exists():
        shutil.rmtree(data_dir)
    data_dir.mkdir(parents=True)
    demo_settings = settings.model_copy(
        update={
            "data_dir": data_dir,
            "database_url": f"sqlite+aiosqlite:///{data_dir / 'demo.db'}",
            "database_schema": "",
            "host": host,
            "port": port,
            "public_url": f"http://{host}:{port}",
        }
    )
    router = Router()

    def transport_factory(_base_url: str) -> httpx.AsyncBaseTransport:
        return router

    services = build_services(demo_settings, transport_factory=transport_factory)
    app = create_app(
        demo_settings,
        services=services,
        migrate=False,
        background=background_components(demo_settings, worker=True, scheduler=True),
    )

    async def main() -> None:
        await db.migrate(demo_settings.resolved_database_url())
        async with db.transaction(services.sessions) as session:
            tenant = await get_or_create_tenant(session, "default")
            _, key = await create_api_key(session, tenant, ApiRole.ADMIN, "demo admin")
        server = uvicorn.Server(
            uvicorn.Config(app, host=host, port=port, log_config=None, server_header=False)
        )
        serving = asyncio.create_task(server.serve())
        while not server.started:
            if serving.done():
                await serving
                return
            await asyncio.sleep(0.05)
        headers = {"Authorization": f"Bearer {key}"}
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://demo"
        ) as client:
            world = await seed(client, headers, router, per_client=per_client)
            await _wait_for_syncs(client, headers)
            await _replay_alerts(client, headers)
        await _sample_history(services)
        endpoints = sum(r.endpoints for r in world.rmms)
        out(
            "\n  connector demo is running with simulated vendor systems:\n"
            f"    RMMs: {', '.join(r.name for r in world.rmms) or 'none installed'} "
            f"({endpoints} endpoints, {sum(r.in_trouble for r in world.rmms)} in trouble), "
            f"PSA: ConnectWise Manage ({len(CLIENT_NAMES)} companies)\n\n"
            f"    Dashboard: http://{host}:{port}/\n"
            f"    API docs:  http://{host}:{port}/docs\n"
            f"    Admin API key (sign in with it): {key}\n\n"
            "  Stop with Ctrl+C. The demo database is rebuilt on every start.\n"
        )
        await serving

    asyncio.run(main())
    return 0


async def _wait_for_syncs(client: httpx.AsyncClient, headers: dict[str, str], limit: float = 120) -> None:
    deadline = asyncio.get_running_loop().time() + limit
    while asyncio.get_running_loop().time() < deadline:
        runs = (await client.get("/api/v1/sync-runs", headers=headers)).json()
        if runs and all(r["status"] != "running" for r in runs):
            return
        await asyncio.sleep(0.5)


async def _sample_history(services: Any, days: int = 29) -> None:
    """Sample daily health for the past `days` days, drifting toward today's real counts, so the
    dashboard's trend has a shape on first start (demo data only)."""
    from datetime import timedelta

    from sqlalchemy import select

    from connector.models import HealthDaily

    rng = random.Random(7)  # noqa: S311 - reproducible demo data
    today = datetime.now(UTC).date()
    async with db.transaction(services.sessions) as session:
        rows = list(await session.scalars(select(HealthDaily).where(HealthDaily.day == today.isoformat())))
        for row in rows:
            for back in range(1, days + 1):
                slipped = min(row.protected, int(row.protected * rng.uniform(0, 0.004 * back)))
                session.add(
                    HealthDaily(
                        tenant_id=row.tenant_id,
                        rmm_connection_id=row.rmm_connection_id,
                        client_id=row.client_id,
                        day=(today - timedelta(days=back)).isoformat(),
                        protected=row.protected - slipped,
                        at_risk=row.at_risk + slipped,
                        unprotected=row.unprotected,
                        offline=row.offline,
                        unknown=row.unknown,
                    )
                )


async def _replay_alerts(client: httpx.AsyncClient, headers: dict[str, str]) -> None:
    """A few alerts through the webhook, as an RMM alert template would post them."""
    connections = (await client.get("/api/v1/connections", headers=headers)).json()
    endpoints = (await client.get("/api/v1/endpoints", params={"limit": "5"}, headers=headers)).json()
    for connection in connections:
        if connection["role"] != "rmm":
            continue
        for n, endpoint in enumerate(e for e in endpoints if e["rmm_connection_id"] == connection["id"]):
            secret_response = await client.post(
                f"/api/v1/connections/{connection['id']}/webhook-secret", headers=headers
            )
            secret = secret_response.json().get("webhook_secret", "")
            await client.post(
                f"/webhooks/{connection['id']}",
                params={"token": secret},
                json={
                    "event_id": f"demo-{connection['id'][:6]}-{n}",
                    "client_id": endpoint["client_id"],
                    "endpoint_id": endpoint["endpoint_id"],
                    "hostname": endpoint["hostname"],
                    "problem": "threat_detected",
                    "state": "active",
                    "message": "EICAR-Test-File detected by real-time protection (demo alert)",
                    "occurred_at": datetime.now(UTC).isoformat(),
                },
            )
            if n >= 1:
                break
