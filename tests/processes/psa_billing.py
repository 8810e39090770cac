"""A billing world for real `connector` processes on any PSA kind with a harness: the kind's stateful
fake served on a real port behind `HeldWrites`, which can hold the answer of the kind's billing write
so a kill lands between the write reaching the PSA and connector recording it. Every seeded company is
mapped to an RMM client with stored usage, and one billing rule bills them through the kind's real
adapter."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest

from adapters.registry import discover
from adapters.testing.harness import PsaHarness, PsaWorld, installed_harnesses
from tests.conftest import PG_URL, _postgres_reachable
from tests.processes.test_billing_push import LEASE_SECONDS, PERIOD, execute
from tests.support.processes import Deployment, Proc, ServedApp, query

BillingWrite = Callable[[str, str], bool]
"""(HTTP method, path) → whether the request writes a billed line."""

BILLING_WRITES: dict[str, BillingWrite] = {
    # An addition is created with POST and its quantity changed with PATCH.
    "connectwise_manage": lambda method, path: (
        method in {"POST", "PATCH"} and "/finance/agreements/" in path and "/additions" in path
    ),
    # Seats are changed by posting an adjustment; a price change patches the contract's service.
    "autotask": lambda method, path: (
        (method == "POST" and path.endswith("/ContractServiceAdjustments"))
        or (method == "PATCH" and "/Contracts/" in path and path.endswith("/Services"))
    ),
    # Lines are written by posting the whole recurring invoice back.
    "halopsa": lambda method, path: method == "POST" and path.endswith("/RecurringInvoice"),
}
"""The requests that write billing, per PSA kind; reads (the read-back before a write) are GETs, or
for Autotask POSTs to `…/query`, and never match."""

API_ROOTS = {"autotask": "/ATServicesRest"}
"""Where a kind's API lives under its served host, when not at the root (the base URL is that)."""

_, PSAS = installed_harnesses(discover().all())
BILLED_PSAS = [h for h in PSAS if h.spec.kind in BILLING_WRITES]


class HeldWrites:
    """ASGI wrapper around a fake: a billing write takes effect at once, but while `delay` is set its
    answer is held that many seconds. Every other request (reads included) passes straight through."""

    def __init__(self, is_write: BillingWrite) -> None:
        self.app: Any = None
        self.is_write = is_write
        self.delay = 0.0
        self.held = 0
        """Billing writes whose answer was held so far."""

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        holding = (
            bool(self.delay) and scope["type"] == "http" and self.is_write(scope["method"], scope["path"])
        )
        if not holding:
            await self.app(scope, receive, send)
            return
        self.held += 1
        held: list[dict[str, Any]] = []

        async def hold(message: dict[str, Any]) -> None:
            held.append(message)

        await self.app(scope, receive, hold)
        await asyncio.sleep(self.delay)
        for message in held:
            await send(message)


@dataclass
class PsaBillingWorld:
    """One tenant billing every company of one PSA world's fake through real processes."""

    kind: str
    deployment: Deployment
    psa: PsaWorld
    headers: dict[str, str]
    serve: Proc
    writes: HeldWrites
    companies: list[str]
    """The PSA's company ids; the nth is mapped to RMM client `c-{n}` with 10 + n seats."""

    def quantities(self, company_id: str) -> list[Decimal]:
        """The quantities of the billed product's lines on the company's agreement, in the PSA."""
        return [line.quantity for line in self.psa.billing_lines(company_id)]

    def recorded(self, company_id: str) -> Decimal:
        """The quantity connector recorded as written for the company."""
        [(quantity,)] = query(
            self.deployment,
            "SELECT quantity FROM billing_line_states WHERE company_id = :c",
            c=company_id,
        )
        return Decimal(str(quantity))

    def push_cli(self) -> Proc:
        return self.deployment.start("sync", "--billing", "--period", PERIOD)

    def post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        response = httpx.post(f"{self.serve.url}{path}", json=body, headers=self.headers, timeout=120)
        assert response.status_code == 200, response.text
        answer: dict[str, Any] = response.json()
        return answer


def kind_of(harness: PsaHarness) -> str:
    return harness.spec.kind


@pytest.fixture(params=BILLED_PSAS, ids=kind_of)
def psa_world(request: pytest.FixtureRequest, backend: str, tmp_path: Path) -> Iterator[PsaBillingWorld]:
    if backend == "postgresql" and (reason := _postgres_reachable()) is not None:
        pytest.skip(f"PostgreSQL unreachable at {PG_URL}: {reason}")
    harness: PsaHarness = request.param
    kind = harness.spec.kind
    writes = HeldWrites(BILLING_WRITES[kind])
    served = ServedApp(writes)  # the port is chosen now, so the world can be seeded to answer on it
    psa = harness.start(base_url=served.url + API_ROOTS.get(kind, ""), devices_per_company=0)
    writes.app = psa.fake.app  # type: ignore[attr-defined]  # every harness world is a FakeWorld
    companies = list(psa.companies)
    deployment = Deployment.create(backend, tmp_path / "deployment")
    deployment.extra_env["CONNECTOR_BILLING_PUSH_LEASE_SECONDS"] = str(LEASE_SECONDS)
    try:
        with served:
            deployment.migrate()
            headers = deployment.api_key("engineer")
            serve = deployment.start("serve", "--no-worker")

            def post(path: str, body: dict[str, Any]) -> dict[str, Any]:
                response = httpx.post(f"{serve.url}{path}", json=body, headers=headers, timeout=30)
                assert response.status_code == 201, response.text
                created: dict[str, Any] = response.json()
                return created

            rmm = post(
                "/api/v1/connections",
                {
                    "name": "Automate",
                    "kind": "connectwise_automate",
                    "base_url": "http://127.0.0.1:9",  # never called: billing reads stored usage
                    "credentials": {"username": "svc", "password": "pw", "client_id": "automate-client"},
                },
            )
            connection = post("/api/v1/connections", psa.connection.as_json())
            for n, company_id in enumerate(companies):
                post(
                    "/api/v1/client-mappings",
                    {
                        "rmm_connection_id": rmm["id"],
                        "rmm_client_id": f"c-{n}",
                        "psa_connection_id": connection["id"],
                        "psa_company_id": company_id,
                    },
                )
            post(
                "/api/v1/billing-rules",
                {
                    "psa_connection_id": connection["id"],
                    "product": "acme edr",
                    "count_scope": "installed",
                    "count_method": "peak",
                    "unit_price": "4.50",
                    "cost_tiers": [{"min_seats": 1, "unit_cost": "2.10"}],
                    **psa.billing_ids.rule_fields(),
                },
            )
            [(tenant_id,)] = query(
                deployment, "SELECT tenant_id FROM connections WHERE id = :id", id=rmm["id"]
            )
            execute(
                deployment,
                "INSERT INTO usage_daily (tenant_id, rmm_connection_id, client_id, product, day,"
                " peak_installed, last_installed, peak_protected, last_protected)"
                " VALUES (:tenant, :rmm, :client, 'Acme EDR 12', :day, :seats, :seats, :seats, :seats)",
                [
                    {
                        "tenant": tenant_id,
                        "rmm": rmm["id"],
                        "client": f"c-{n}",
                        "day": f"{PERIOD}-01",
                        "seats": 10 + n,
                    }
                    for n in range(len(companies))
                ],
            )
            yield PsaBillingWorld(kind, deployment, psa, headers, serve, writes, companies)
    finally:
        deployment.close()
