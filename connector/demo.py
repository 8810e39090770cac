"""`connector demo`: the whole product on a fresh SQLite file, against in-process stateful fakes of
the vendor APIs, seeded like a small MSP — without any vendor credentials.

Which vendors take part is the installed kinds' business: every kind whose test harness
(`AdapterSpec.harness`, see `adapters/testing/harness.py`) says it belongs in the demo (`in_demo`)
gets a share of the clients — the RMMs their endpoints, the PSAs their companies — so an installed
vendor joins the demo without a change here. The fakes answer on reserved `.invalid` host names;
the demo's transport factory routes those names to the fakes, so the adapters speak their real wire
protocols end to end. Everything is created through the public HTTP API, exactly as an engineer would.
"""

from __future__ import annotations

import asyncio
import random
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeVar

import httpx
from sqlalchemy import select

from adapters.base import AdapterSpec
from adapters.registry import AdapterRegistry
from adapters.testing.harness import (
    PsaWorld,
    RmmWorld,
    SecurityWorld,
    VendorWorld,
    installed_harnesses,
    installed_security_harnesses,
)
from connector.app import create_app
from connector.infra import db
from connector.infra import loop as aio
from connector.infra.security.apikeys import ApiRole
from connector.models import HealthDaily
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
TROUBLE_SHARE = 0.04
"""The share of endpoints seeded with a problem."""
PRICES = (("6.00", "2.50"), ("3.00", "1.10"), ("3.50", "1.40"))
"""Unit price and cost of the billing rule of each product the RMMs report, in turn."""

SUMMARY_TEMPLATE = "{problem_title} on {hostname} ({client})"

T = TypeVar("T")


class Router(httpx.AsyncBaseTransport):
    """Routes by host name to the fakes' ASGI apps."""

    def __init__(self) -> None:
        self.hosts: dict[str, httpx.AsyncBaseTransport] = {}

    def add(self, world: VendorWorld) -> None:
        transport = world.transport()
        for host in world.hosts:
            self.hosts[host] = transport

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        transport = self.hosts.get(request.url.host)
        if transport is None:
            return httpx.Response(502, json={"error": f"no demo system answers for {request.url.host}"})
        return await transport.handle_async_request(request)

    async def aclose(self) -> None:
        """Shared by every adapter: closing one must not close the fakes."""


@dataclass
class DemoRmm:
    name: str
    world: RmmWorld
    in_trouble: int = 0

    @property
    def endpoints(self) -> int:
        return len(self.world.endpoints)


@dataclass
class DemoConsole:
    name: str
    world: SecurityWorld
    connection_id: str
    """Empty when the demo was started without connections."""
    gaps: int = 0
    """Endpoints left without an agent, plus agents the RMM does not know."""


@dataclass
class DemoWorld:
    settings: Settings
    api_key: str
    rmms: list[DemoRmm] = field(default_factory=list)
    psas: list[PsaWorld] = field(default_factory=list)
    consoles: list[DemoConsole] = field(default_factory=list)


CONSOLE_GAPS = 2
"""Endpoints of each covered client the demo's console has no agent on."""


def demo_url(spec: AdapterSpec) -> str:
    return f"https://{spec.kind.replace('_', '-')}.demo.invalid"


def shares(items: Sequence[T], parts: int) -> list[list[T]]:
    """`items` in `parts` contiguous runs of (nearly) equal length; the last ones may be empty."""
    size = max(1, -(-len(items) // max(1, parts)))
    return [list(items[n * size : (n + 1) * size]) for n in range(parts)]


def put_some_in_trouble(world: RmmWorld, rng: random.Random) -> int:
    """About `TROUBLE_SHARE` of the world's endpoints (and at least one per kind) develop one of the
    problems its fake can cause, the kinds taken in turn so that every kind shows (at risk and
    unprotected alike), however many other vendors drew from `rng` before."""
    kinds = world.trouble_kinds
    endpoint_ids = list(world.endpoints)
    count = min(len(endpoint_ids), max(len(kinds), round(len(endpoint_ids) * TROUBLE_SHARE)))
    for n, endpoint_id in enumerate(rng.sample(endpoint_ids, count)):
        world.put_in_trouble(endpoint_id, kinds[n % len(kinds)])
    return count


async def seed(
    client: httpx.AsyncClient,
    headers: dict[str, str],
    router: Router,
    registry: AdapterRegistry,
    *,
    per_client: int,
    connect: bool = True,
) -> DemoWorld:
    """Create the demo MSP through the HTTP API; returns what was built. Without `connect` the
    simulated systems are stood up and seeded the same way, but nothing is created in connector:
    no connection, mapping, rule or sync (`connector demo --empty`, a first run by hand)."""
    rng = random.Random(20261122)  # noqa: S311 - reproducible demo data
    rmm_harnesses, psa_harnesses = installed_harnesses(registry.all())
    built = DemoWorld(settings=Settings(), api_key="")
    psa_ids: list[str] = []
    in_demo = [h for h in psa_harnesses if h.in_demo]
    for psa_harness, companies in zip(in_demo, shares(CLIENT_NAMES, len(in_demo)), strict=True):
        if not companies:
            continue
        url = demo_url(psa_harness.spec)
        psa = psa_harness.start(companies=companies, devices_per_company=0, base_url=url)
        router.add(psa)
        built.psas.append(psa)
        if not connect:
            continue
        created = await _post(client, headers, "/api/v1/connections", psa.connection.as_json())
        rule = {
            "summary_template": "{problem_title} on {hostname} ({client})",
            **psa.ticket_ids.rule_fields(),
        }
        await _post(client, headers, "/api/v1/ticket-rules", {"psa_connection_id": created["id"], **rule})
        psa_ids.append(created["id"])

    rmms_in_demo = [h for h in rmm_harnesses if h.in_demo]
    for rmm_harness, clients in zip(rmms_in_demo, shares(CLIENT_NAMES, len(rmms_in_demo)), strict=True):
        if not clients:
            continue
        url = demo_url(rmm_harness.spec)
        world = rmm_harness.start(clients=clients, endpoints_per_client=per_client, base_url=url)
        rmm = DemoRmm(name=rmm_harness.spec.title, world=world, in_trouble=put_some_in_trouble(world, rng))
        router.add(world)
        built.rmms.append(rmm)
        if not connect:
            continue
        created = await _post(client, headers, "/api/v1/connections", world.connection.as_json())
        for psa_id in psa_ids:
            await _map_by_name(client, headers, created["id"], psa_id)
        await _post(client, headers, "/api/v1/sync-runs", {"connection_id": created["id"]})

    # Security consoles cover one client each, counted from the end of the list (the clients of the
    # RMMs seeded last): a few endpoints without an agent, an agent the RMM does not know, a silent
    # agent and an open threat. They sync after the RMMs (`sync_consoles`).
    consoles_in_demo = [h for h in installed_security_harnesses(registry.all()) if h.in_demo]
    covered = [name for rmm in built.rmms for name in rmm.world.clients.values()][::-1]
    for console_harness, customer in zip(consoles_in_demo, covered, strict=False):
        # At the vendor's own address: the demo's transport routes every host to its fakes.
        console = console_harness.start(
            customers=[customer], agents_per_customer=max(0, per_client - CONSOLE_GAPS)
        )
        [customer_id] = console.customers
        agents = list(console.agents)
        console.add_agent(customer_id, f"{customer.split()[0].upper()[:6]}-BYOD-LAPTOP")
        if len(agents) >= 2:
            console.set_last_seen(agents[0], datetime.now(UTC) - timedelta(days=21))
            console.raise_threat(agents[1], "Trojan.Win32.Agent (demo)")
        console.set_licences(customer_id, len(console.agents), per_client)
        router.add(console)
        connection_id = ""
        if connect:
            created = await _post(client, headers, "/api/v1/connections", console.connection.as_json())
            connection_id = created["id"]
            for psa_id in psa_ids:
                await _map_by_name(client, headers, connection_id, psa_id)
        built.consoles.append(
            DemoConsole(
                console_harness.spec.title, console, connection_id, gaps=min(CONSOLE_GAPS, per_client) + 1
            )
        )
    return built


async def sync_consoles(client: httpx.AsyncClient, headers: dict[str, str], world: DemoWorld) -> None:
    """Start the consoles' first syncs (after the RMMs', so their agents meet the endpoints)."""
    for console in world.consoles:
        await _post(client, headers, "/api/v1/sync-runs", {"connection_id": console.connection_id})


async def _post(client: httpx.AsyncClient, headers: dict[str, str], path: str, body: dict[str, Any]) -> Any:
    """POST through the public API; the parsed answer (any 3xx/4xx/5xx stops the demo's setup)."""
    response = await client.post(path, json=body, headers=headers)
    if response.status_code >= 300:
        raise RuntimeError(f"demo setup: POST {path} answered {response.status_code}: {response.text}")
    return response.json()


async def _map_by_name(client: httpx.AsyncClient, headers: dict[str, str], rmm_id: str, psa_id: str) -> None:
    """Accept the mapping suggestions that match clients to companies by name."""
    suggestions = (
        await client.get(
            "/api/v1/client-mappings/suggestions",
            params={"rmm_connection_id": rmm_id, "psa_connection_id": psa_id},
            headers=headers,
        )
    ).json()
    for suggestion in suggestions:
        if float(suggestion["score"]) < 0.8:
            continue
        await _post(
            client,
            headers,
            "/api/v1/client-mappings",
            {
                "rmm_connection_id": rmm_id,
                "rmm_client_id": suggestion["rmm_client_id"],
                "rmm_client_name": suggestion.get("rmm_client_name"),
                "psa_connection_id": psa_id,
                "psa_company_id": suggestion["psa_company_id"],
                "psa_company_name": suggestion.get("psa_company_name"),
            },
        )


async def add_billing_rules(client: httpx.AsyncClient, headers: dict[str, str], world: DemoWorld) -> None:
    """A billing rule per product the RMMs report, on each PSA's billable product. Run after the
    syncs: the products are whatever the fakes' endpoints run."""
    endpoints = (await client.get("/api/v1/endpoints", params={"limit": "5000"}, headers=headers)).json()
    products = sorted({e["product"] for e in endpoints if e.get("product")})
    connections = (await client.get("/api/v1/connections", headers=headers)).json()
    for psa in world.psas:
        psa_id = next(c["id"] for c in connections if c["base_url"] == psa.connection.base_url)
        for n, product in enumerate(products):
            price, cost = PRICES[n % len(PRICES)]
            volume_cost = (Decimal(cost) * Decimal("0.85")).quantize(Decimal("0.01"))
            await _post(
                client,
                headers,
                "/api/v1/billing-rules",
                {
                    "psa_connection_id": psa_id,
                    "product": product,
                    "count_scope": "installed",
                    "count_method": "peak",
                    "description": f"{product} endpoint security (per endpoint)",
                    "unit_price": price,
                    "cost_tiers": [
                        {"min_seats": 1, "unit_cost": cost},
                        {"min_seats": 500, "unit_cost": str(volume_cost)},
                    ],
                    **psa.billing_ids.rule_fields(),
                },
            )


@dataclass
class DemoBilling:
    """What `seed_billing` did to the current period, by company name."""

    period: str
    merged: tuple[str, str] | None = None
    """(client, company): a client whose seats moved onto another company's line after the push."""
    unmapped: str | None = None
    late: str | None = None
    """The client mapped only after the first push (its line is not in the PSA yet)."""
    edited: tuple[str, int, int] | None = None
    """(company, quantity written, quantity set in the PSA by hand)."""
    foreign: str | None = None
    """The company whose agreement already had a line of the product, made by hand (not connector's)."""
    uploaded: str | None = None
    """The company a vendor's uploaded usage report counts two seats more for than the RMM."""


async def seed_billing(client: httpx.AsyncClient, headers: dict[str, str], world: DemoWorld) -> DemoBilling:
    """A billing month with something to reconcile and review, made the way it happens: one client
    is not yet mapped when the period is first pushed into the PSA; after the push one client moves
    onto another company's agreement (a merger: its old line still bills, the other line waits for
    review as beyond the tolerance), one client's mapping is removed (unmapped, its line still bills)
    and the late client is mapped (a new line, approved on its own). Then someone edits a pushed
    line's quantity by hand in the PSA. Each console's licensed seats are billed too, so the agent
    its RMM does not know shows. Devices reporting no product show as they are. Run after
    `add_billing_rules`; deterministic."""
    period = datetime.now(UTC).strftime("%Y-%m")
    done = DemoBilling(period)
    if not world.psas:
        return done
    psa = world.psas[0]
    connections = (await client.get("/api/v1/connections", headers=headers)).json()
    psa_id = next(c["id"] for c in connections if c["base_url"] == psa.connection.base_url)
    mappings = [
        m for m in await _get(client, headers, "/api/v1/client-mappings") if m["psa_connection_id"] == psa_id
    ]
    covered = {name for console in world.consoles for name in console.world.customers.values()}
    # the PSA's companies that one RMM client maps to, in seeding order, leaving the consoles' alone
    by_company: dict[str, list[dict[str, Any]]] = {}
    for mapping in mappings:
        by_company.setdefault(mapping["psa_company_id"], []).append(mapping)
    single = [
        by_company[company_id][0]
        for company_id, name in psa.companies.items()
        if len(by_company.get(company_id, [])) == 1 and name not in covered
    ]
    if len(single) < 4:
        return done
    target, merged, unmapped, late = single[:4]
    await _bill_console_seats(client, headers, world, connections)
    await _delete(client, headers, f"/api/v1/client-mappings/{late['id']}?force=true")
    if len(single) > 4 and not psa.billing_ids.one_line_per_product:
        # Someone had put the product on this client's agreement by hand: connector leaves it alone.
        psa.human_billing_line(single[4]["psa_company_id"], 3)
        done.foreign = single[4]["psa_company_name"]
    await _post(client, headers, "/api/v1/billing/push", {"period": period})

    await _delete(client, headers, f"/api/v1/client-mappings/{merged['id']}?force=true")
    await _post(client, headers, "/api/v1/client-mappings", {**_mapping_body(merged), **_company(target)})
    await _delete(client, headers, f"/api/v1/client-mappings/{unmapped['id']}?force=true")
    await _post(client, headers, "/api/v1/client-mappings", _mapping_body(late))
    done.merged = (merged["rmm_client_name"], target["psa_company_name"])
    done.unmapped, done.late = unmapped["rmm_client_name"], late["rmm_client_name"]
    if len(single) > 5:  # a client of its own, so the merged one still shows a plain review
        done.edited = await _edit_in_psa(client, headers, psa, period, single[5]["psa_company_id"])
    await _post(client, headers, "/api/v1/billing/read-back", {"period": period})
    if len(single) > 6:
        done.uploaded = await _upload_usage(client, headers, psa_id, period, single[6]["psa_company_id"])
    return done


async def _upload_usage(
    client: httpx.AsyncClient, headers: dict[str, str], psa_id: str, period: str, company_id: str
) -> str | None:
    """A vendor with no adapter sends its monthly usage report: two seats more than the RMM sees for
    one client, and a customer no PSA company is called."""
    preview = await _get(client, headers, "/api/v1/billing/preview", period=period)
    line = next((item for item in preview["lines"] if item["company_id"] == company_id), None)
    if line is None or not line["company_name"]:
        return None
    profile = await _post(
        client,
        headers,
        "/api/v1/billing/usage-profiles",
        {
            "name": "Vendor monthly usage",
            "psa_connection_id": psa_id,
            "customer_column": "Customer",
            "customer_kind": "psa_company_name",
            "product_column": "Edition",
            "quantity_column": "Seats",
        },
    )
    report = (
        "Customer,Edition,Seats\n"
        f"{line['company_name']},{line['product']} (vendor report),{line['quantity'] + 2}\n"
        f"Quillfeather Unlisted Ltd,{line['product']} (vendor report),3\n"
    )
    response = await client.post(
        "/api/v1/billing/usage-uploads",
        params={"period": period, "profile": profile["id"]},
        content=report.encode(),
        headers={**headers, "Content-Type": "text/csv"},
    )
    if response.status_code != 201:
        raise RuntimeError(f"demo usage upload: {response.status_code} {response.text}")
    return str(line["company_name"])


async def _bill_console_seats(
    client: httpx.AsyncClient, headers: dict[str, str], world: DemoWorld, connections: list[dict[str, Any]]
) -> None:
    """A rule per console billing its licensed seats, on the PSA its customer's company is in: the
    console's agent the RMM does not know is a seat of it."""
    mappings = await _get(client, headers, "/api/v1/client-mappings")
    for console in world.consoles:
        psa_ids = {
            m["psa_connection_id"] for m in mappings if m["rmm_connection_id"] == console.connection_id
        }
        for psa in world.psas:
            psa_id = next(c["id"] for c in connections if c["base_url"] == psa.connection.base_url)
            if psa_id not in psa_ids:
                continue
            product = console.world.licence_product
            catalog = await _get(client, headers, f"/api/v1/connections/{psa_id}/catalog/products")
            fields = psa.billing_ids.rule_fields()
            # its own PSA product: two rules on one product would share (and fight over) one line
            others = [item["id"] for item in catalog["items"] if item["id"] != fields["psa_product_id"]]
            if others:
                fields["psa_product_id"] = others[0]
            await _post(
                client,
                headers,
                "/api/v1/billing-rules",
                {
                    "psa_connection_id": psa_id,
                    "product": product,
                    "count_scope": "console_seats",
                    "count_method": "peak",
                    "description": f"{product} (per licensed seat)",
                    "unit_price": "5.00",
                    "cost_tiers": [{"min_seats": 1, "unit_cost": "3.20"}],
                    **fields,
                },
            )


def _mapping_body(mapping: dict[str, Any]) -> dict[str, Any]:
    fields = ("rmm_connection_id", "rmm_client_id", "rmm_client_name", "psa_connection_id")
    return {name: mapping[name] for name in fields} | _company(mapping)


def _company(mapping: dict[str, Any]) -> dict[str, Any]:
    return {"psa_company_id": mapping["psa_company_id"], "psa_company_name": mapping["psa_company_name"]}


async def _edit_in_psa(
    client: httpx.AsyncClient, headers: dict[str, str], psa: PsaWorld, period: str, company_id: str
) -> tuple[str, int, int] | None:
    """Someone lowers a line connector wrote, by hand in the PSA, behind connector's back."""
    preview = await _get(client, headers, "/api/v1/billing/preview", period=period)
    for line in preview["lines"]:
        pushed = line["pushed"]
        if line["company_id"] != company_id or not pushed or not pushed["line_id"] or pushed["quantity"] < 2:
            continue
        written = int(pushed["quantity"])
        edited = written - max(1, written // 10)
        psa.human_set_billing_quantity(company_id, pushed["line_id"], edited)
        return line["company_name"] or company_id, written, edited
    return None


async def _get(client: httpx.AsyncClient, headers: dict[str, str], path: str, **params: str) -> Any:
    response = await client.get(path, params=params, headers=headers)
    if response.status_code != 200:
        raise RuntimeError(f"demo setup: GET {path} answered {response.status_code}: {response.text}")
    return response.json()


async def _delete(client: httpx.AsyncClient, headers: dict[str, str], path: str) -> None:
    response = await client.delete(path, headers=headers)
    if response.status_code >= 300:
        raise RuntimeError(f"demo setup: DELETE {path} answered {response.status_code}: {response.text}")


def run(
    settings: Settings,
    *,
    host: str,
    port: int,
    per_client: int = 60,
    empty: bool = False,
    out: Callable[[str], Any] = print,
) -> int:
    """Serve the demo until stopped. `empty`: the simulated systems only, for adding the
    connections, mappings and rules by hand from the dashboard (their details are printed and
    shown on the set-up pages)."""
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
            uvicorn.Config(
                app,
                host=host,
                port=port,
                log_config=None,
                server_header=False,
                loop=aio.uvicorn_loop(),
            )
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
            world = await seed(
                client, headers, router, services.registry, per_client=per_client, connect=not empty
            )
            if empty:
                app.state.demo_systems = demo_systems(world)
                out(empty_summary(world, host=host, port=port, key=key))
                await serving
                return
            await _wait_for_syncs(client, headers)
            await sync_consoles(client, headers, world)
            await _wait_for_syncs(client, headers)
            await add_billing_rules(client, headers, world)
            billing = await seed_billing(client, headers, world)
            await _replay_alerts(client, headers)
            examples = await seed_examples(client, headers, world)
        await _sample_history(services)
        app.state.demo_systems = demo_systems(world)
        out(summary(world, billing, examples, host=host, port=port, key=key))
        await serving

    aio.run(main())
    return 0


def demo_systems(world: DemoWorld) -> list[dict[str, Any]]:
    """The simulated vendors with what it takes to add a connection to one by hand: kind, base URL,
    the fake's credentials (not a real vendor's secrets) and the options it needs (e.g. the ids of
    the RMM scripts the endpoint actions run)."""
    bodies = [
        *((psa.spec.title, psa.connection) for psa in world.psas),
        *((rmm.name, rmm.world.connection) for rmm in world.rmms),
        *((console.name, console.world.connection) for console in world.consoles),
    ]
    return [
        {
            "title": title,
            "kind": body.kind,
            "base_url": body.base_url,
            "credentials": {k: str(v) for k, v in body.credentials.items()},
            "options": {k: str(v) for k, v in body.options.items()},
        }
        for title, body in bodies
    ]


def _systems_lines(world: DemoWorld) -> str:
    lines = []
    for s in demo_systems(world):
        line = f"    {s['title']} ({s['kind']}): {s['base_url']}  " + " ".join(
            f"{k}={v}" for k, v in s["credentials"].items()
        )
        if s["options"]:
            line += "  options: " + " ".join(f"{k}={v}" for k, v in s["options"].items())
        lines.append(line + "\n")
    return "".join(lines)


def empty_summary(world: DemoWorld, *, host: str, port: int, key: str) -> str:
    """What `connector demo --empty` prints: the simulated systems to connect by hand, and the key."""
    base = f"http://{host}:{port}"
    return (
        "\n  connector demo is running with simulated vendor systems and no connections yet:\n"
        f"    RMMs: {', '.join(r.name for r in world.rmms) or 'none installed'} "
        f"({sum(r.endpoints for r in world.rmms)} endpoints), "
        f"PSA: {', '.join(p.spec.title for p in world.psas) or 'none installed'}\n\n"
        f"    Set-up:    {base}/setup\n"
        f"    API docs:  {base}/docs\n"
        f"    Admin API key (sign in with it): {key}\n\n"
        "  Add connections (Set-up → Connections); the simulated systems answer at:\n"
        + _systems_lines(world)
        + "\n  Stop with Ctrl+C. The demo database is rebuilt on every start.\n"
    )


def summary(
    world: DemoWorld,
    billing: DemoBilling,
    examples: DemoExamples | None = None,
    *,
    host: str,
    port: int,
    key: str,
) -> str:
    """What the demo prints once it is up: the simulated systems, the pages to open, the key."""
    examples = examples or DemoExamples()
    endpoints = sum(r.endpoints for r in world.rmms)
    psas = ", ".join(f"{p.spec.title} ({len(p.companies)} companies)" for p in world.psas)
    base = f"http://{host}:{port}"
    billing_lines = ""
    if billing.merged is not None:
        billing_lines = (
            f"    Billing {billing.period}: {billing.merged[0]} moved onto {billing.merged[1]}'s agreement "
            f"(waits for review), {billing.unmapped} unmapped, {billing.late} mapped after the push"
            + (f", {billing.edited[0]}'s line edited in the PSA" if billing.edited else "")
            + "\n"
        )
    return (
        "\n  connector demo is running with simulated vendor systems:\n"
        f"    RMMs: {', '.join(r.name for r in world.rmms) or 'none installed'} "
        f"({endpoints} endpoints, {sum(r.in_trouble for r in world.rmms)} in trouble), "
        f"PSA: {psas or 'none installed'}\n"
        f"    Security consoles: {', '.join(c.name for c in world.consoles) or 'none installed'}\n"
        f"{billing_lines}"
        + (
            f"    Maintenance window: {examples.window_client}, Fridays 22:00 UTC for 4 h\n"
            if examples.window_client
            else ""
        )
        + (
            f"    Alert storm: {examples.storm_client}, one client ticket for {STORM_ENDPOINTS} endpoints\n"
            if examples.storm_client
            else ""
        )
        + "\n"
        f"    Dashboard: {base}/\n"
        f"    Billing reconciliation: {base}/billing/reconciliation?period={billing.period}\n"
        f"    Billing review:         {base}/billing/review?period={billing.period}\n"
        f"    API docs:  {base}/docs\n"
        f"    Admin API key (sign in with it): {key}\n\n"
        "  To add a connection by hand (Set-up → Connections), the simulated systems answer at:\n"
        + _systems_lines(world)
        + "\n"
        "  Stop with Ctrl+C. The demo database is rebuilt on every start.\n"
    )


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


STORM_ENDPOINTS = 6
"""Endpoints of one client the demo's storm puts in trouble: above the storm threshold it sets (5)."""


@dataclass
class DemoExamples:
    """What `seed_examples` made: the client with a maintenance window and the one with a storm."""

    window_client: str = ""
    storm_client: str = ""


async def seed_examples(client: httpx.AsyncClient, headers: dict[str, str], world: DemoWorld) -> DemoExamples:
    """A weekly maintenance window on the first RMM's first client, and an alert storm on its last:
    the ticket rules group five or more endpoints of one client with one problem into one client
    ticket, and six of that client's protected endpoints develop the same problem before the RMM
    syncs again.
    Run after the first sync."""
    made = DemoExamples()
    if not world.rmms:
        return made
    rmm = world.rmms[0].world
    kind = rmm.connection.as_json()["kind"]
    connections = await _get(client, headers, "/api/v1/connections")
    connection = next((c for c in connections if c["kind"] == kind), None)
    clients = list(rmm.clients.items())
    if connection is None or not clients:
        return made
    first_id, first_name = clients[0]
    await _post(
        client,
        headers,
        "/api/v1/maintenance-windows",
        {
            "name": "Patch night (demo)",
            "rmm_connection_id": connection["id"],
            "client_id": first_id,
            "timezone": "UTC",
            "kind": "weekly",
            "weekdays": [5],
            "start_time": "22:00",
            "duration_minutes": 240,
        },
    )
    made.window_client = first_name
    last_id, last_name = clients[-1]
    healthy = await _get(
        client,
        headers,
        "/api/v1/endpoints",
        connection_id=connection["id"],
        client_id=last_id,
        status="protected",
    )
    stormy = [e["endpoint_id"] for e in healthy][:STORM_ENDPOINTS]
    if len(stormy) < STORM_ENDPOINTS or len(clients) < 2:
        return made
    for rule in await _get(client, headers, "/api/v1/ticket-rules"):
        await _patch(client, headers, f"/api/v1/ticket-rules/{rule['id']}", {"storm_min_endpoints": 5})
    for endpoint_id in stormy:
        rmm.put_in_trouble(endpoint_id, rmm.trouble_kinds[0])
    await _post(client, headers, "/api/v1/sync-runs", {"connection_id": connection["id"]})
    made.storm_client = last_name
    return made


async def _patch(client: httpx.AsyncClient, headers: dict[str, str], path: str, body: dict[str, Any]) -> Any:
    response = await client.patch(path, json=body, headers=headers)
    if response.status_code >= 400:
        raise RuntimeError(f"demo setup: PATCH {path} answered {response.status_code}: {response.text}")
    return response.json()


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
