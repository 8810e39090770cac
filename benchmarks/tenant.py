"""What the benchmarks share: which PSA kinds to measure (every installed kind whose spec names a
harness, or those asked for with `--psa`), and a tenant wired through the HTTP API to a PSA world
and an RMM connection. The PSA is always a harness world, so a new vendor is measured without an
edit here."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import httpx

from adapters.base import EndpointStatus
from adapters.registry import discover
from adapters.testing.harness import PsaHarness, PsaWorld, installed_harnesses
from connector.fleet.domain import configuration_fields
from tests.support.vendors import VendorRouter

SUMMARY_TEMPLATE = "{problem_title} on {hostname} ({client})"
CONFIGURATION_FIELDS = tuple(
    configuration_fields(EndpointStatus(endpoint_id="-", client_id="-", hostname="-"), "protected")
)
"""The fields the core writes onto configuration records (vendors that need them declared get them)."""


def add_psa_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--psa",
        action="append",
        metavar="KIND",
        help="a PSA kind to measure (repeatable); default: every installed PSA kind with a harness",
    )


def psa_harnesses(kinds: Sequence[str] | None) -> list[PsaHarness]:
    _, installed = installed_harnesses(discover().all())
    if not kinds:
        return installed
    known = {h.spec.kind: h for h in installed}
    unknown = sorted(set(kinds) - set(known))
    if unknown:
        raise SystemExit(f"no PSA harness for {', '.join(unknown)}; installed: {', '.join(sorted(known))}")
    return [known[kind] for kind in kinds]


def calls_by_method(psa: PsaWorld) -> str:
    """The PSA requests since `reset_calls` by HTTP method (which of them write is the vendor's
    business: some query with POST)."""
    counts = {m: psa.request_count(m) for m in ("GET", "POST", "PATCH", "PUT", "DELETE")}
    return ", ".join(f"{m} {n}" for m, n in counts.items() if n)


@dataclass
class Tenant:
    client: httpx.AsyncClient
    headers: dict[str, str]
    rmm: dict[str, Any]
    psa: dict[str, Any]

    async def post(self, path: str, body: dict[str, Any]) -> Any:
        response = await self.client.post(path, json=body, headers=self.headers)
        assert response.status_code in (200, 201, 202), response.text
        return response.json()

    async def map_client(self, client_id: str, company_id: str, company_name: str | None = None) -> None:
        await self.post(
            "/api/v1/client-mappings",
            {
                "rmm_connection_id": self.rmm["id"],
                "rmm_client_id": client_id,
                "rmm_client_name": f"RMM {client_id}",
                "psa_connection_id": self.psa["id"],
                "psa_company_id": company_id,
                "psa_company_name": company_name or f"Company {company_id}",
            },
        )

    async def post_alert(self, alert: dict[str, Any]) -> httpx.Response:
        return await self.client.post(
            f"/webhooks/{self.rmm['id']}", json=alert, params={"token": self.rmm["webhook_secret"]}
        )


async def build_tenant(
    client: httpx.AsyncClient,
    headers: dict[str, str],
    vendors: VendorRouter,
    psa: PsaWorld,
    *,
    rmm_kind: str = "dummy_rmm",
    rmm_credentials: dict[str, Any] | None = None,
    rmm_base_url: str = "https://rmm.example.com",
    rmm_options: dict[str, Any] | None = None,
) -> Tenant:
    """An RMM connection, a connection to the PSA world (routed through `vendors`) and a ticket rule
    for it, created through the API."""
    for host in psa.hosts:
        vendors.add(host, psa.transport())
    tenant = Tenant(client, headers, rmm={}, psa={})
    tenant.rmm = await tenant.post(
        "/api/v1/connections",
        {
            "name": "RMM",
            "kind": rmm_kind,
            "base_url": rmm_base_url,
            "credentials": rmm_credentials or {"username": "svc", "api_secret": "rmm-secret"},
            **({"options": rmm_options} if rmm_options else {}),
        },
    )
    tenant.psa = await tenant.post("/api/v1/connections", psa.connection.as_json())
    await tenant.post(
        "/api/v1/ticket-rules",
        {
            "psa_connection_id": tenant.psa["id"],
            "summary_template": SUMMARY_TEMPLATE,
            **psa.ticket_ids.rule_fields(),
        },
    )
    return tenant
