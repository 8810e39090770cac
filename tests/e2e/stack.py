"""A whole tenant wired through the HTTP API against stateful vendor fakes: an RMM connection, the
ConnectWise Manage fake as the PSA, a client mapping and a ticket rule, for the end-to-end tests of
the core (the benchmarks and the vendor matrix stand up every installed PSA through its harness)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import select, update

from adapters.connectwise_manage.fake import DemoSeed, ManageFake
from connector import runtime
from connector.infra import db
from connector.infra.context import Services
from connector.models import Job, Problem, TicketLink
from tests.support.vendors import VendorRouter

MANAGE_SITE = "https://na.myconnectwise.net"


@dataclass
class Stack:
    client: httpx.AsyncClient
    services: Services
    headers: dict[str, str]
    manage: ManageFake
    seed: DemoSeed
    rmm: dict[str, Any]
    psa: dict[str, Any]
    rule: dict[str, Any]
    mappings: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def company_id(self) -> int:
        return self.seed.company_ids[0]

    async def post_alert(self, alert: dict[str, Any], **kwargs: Any) -> httpx.Response:
        params = kwargs.pop("params", {"token": self.rmm["webhook_secret"]})
        return await self.client.post(f"/webhooks/{self.rmm['id']}", json=alert, params=params, **kwargs)

    async def map_client(self, client_id: str, company_id: int) -> dict[str, Any]:
        body = {
            "rmm_connection_id": self.rmm["id"],
            "rmm_client_id": client_id,
            "rmm_client_name": f"RMM {client_id}",
            "psa_connection_id": self.psa["id"],
            "psa_company_id": str(company_id),
            "psa_company_name": f"Company {company_id}",
        }
        response = await self.client.post("/api/v1/client-mappings", json=body, headers=self.headers)
        assert response.status_code == 201, response.text
        self.mappings[client_id] = response.json()
        return self.mappings[client_id]

    async def work(self, *, concurrency: int = 4) -> int:
        """Run every job that is runnable now, as `connector worker` would."""
        return await runtime.worker(self.services, concurrency=concurrency).run_until_idle()

    async def pass_time(self, seconds: float) -> None:
        """Make everything scheduled within `seconds` runnable now, and expire leases and locks as
        if that much time had gone by (the queue reads the database clock, not a mock)."""
        shift = timedelta(seconds=seconds)
        async with db.transaction(self.services.sessions) as session:
            now = datetime.now(UTC)
            await session.execute(
                update(Job).where(Job.status == "queued", Job.run_after <= now + shift).values(run_after=now)
            )
            await session.execute(
                update(Job)
                .where(Job.status == "running", Job.lease_expires_at <= now + shift)
                .values(lease_expires_at=now - timedelta(seconds=1))
            )
            links = await session.execute(select(TicketLink).where(TicketLink.last_note_at.is_not(None)))
            for link in links.scalars():
                assert link.last_note_at is not None
                link.last_note_at -= shift
                if link.closed_at is not None:
                    link.closed_at -= shift
            await session.execute(
                update(Problem)
                .where(Problem.lock_expires_at <= now + shift)
                .values(lock_expires_at=now - timedelta(seconds=1))
            )

    async def problems(self, **params: str) -> list[dict[str, Any]]:
        response = await self.client.get("/api/v1/problems", params=params, headers=self.headers)
        assert response.status_code == 200, response.text
        result: list[dict[str, Any]] = response.json()
        return result

    def tickets(self, company_id: int | None = None) -> list[dict[str, Any]]:
        return self.manage.tickets_for(company_id if company_id is not None else self.company_id)


async def build_stack(
    client: httpx.AsyncClient,
    services: Services,
    vendors: VendorRouter,
    headers: dict[str, str],
    *,
    rmm_kind: str = "dummy_rmm",
    rmm_credentials: dict[str, Any] | None = None,
    rmm_base_url: str = "https://rmm.example.com",
    note_interval_minutes: int = 60,
    map_clients: tuple[str, ...] = ("c-1",),
    manage: ManageFake | None = None,
) -> Stack:
    fake = manage or ManageFake(is_cloud=True)
    seed = fake.seed_demo(companies=3)
    vendors.add("na.myconnectwise.net", fake.transport())
    vendors.add("api-na.myconnectwise.net", fake.transport())

    async def post(path: str, body: dict[str, Any]) -> dict[str, Any]:
        response = await client.post(path, json=body, headers=headers)
        assert response.status_code == 201, response.text
        created: dict[str, Any] = response.json()
        return created

    rmm = await post(
        "/api/v1/connections",
        {
            "name": "RMM",
            "kind": rmm_kind,
            "base_url": rmm_base_url,
            "credentials": rmm_credentials or {"username": "svc", "api_secret": "rmm-secret"},
        },
    )
    psa = await post(
        "/api/v1/connections",
        {
            "name": "Manage",
            "kind": "connectwise_manage",
            "base_url": MANAGE_SITE,
            "credentials": fake.credentials(),
        },
    )
    rule = await post(
        "/api/v1/ticket-rules",
        {
            "psa_connection_id": psa["id"],
            "problem": None,
            "board_id": str(seed.board_id),
            "priority_id": str(seed.priority_ids["Priority 2 - High"]),
            "type_id": str(seed.type_ids["Security Alert"]),
            "status_new_id": str(seed.new_status_id),
            "status_closed_id": str(seed.closed_status_id),
            "note_interval_minutes": note_interval_minutes,
            "summary_template": "{problem_title} on {hostname} ({client})",
        },
    )
    stack = Stack(client, services, headers, fake, seed, rmm, psa, rule)
    for client_id in map_clients:
        await stack.map_client(client_id, seed.company_ids[0])
    return stack
