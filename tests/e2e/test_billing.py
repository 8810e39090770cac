"""Billing end to end: daily usage → preview → push into ConnectWise Manage agreement additions (the
stateful fake), over HTTP, on SQLite and PostgreSQL."""

from __future__ import annotations

import csv
import io
from collections.abc import Awaitable, Callable
from datetime import timedelta
from decimal import Decimal
from typing import Any

import httpx
import pytest
from sqlalchemy import select, update

from connector.audit.domain import WORKER
from connector.billing import service as billing
from connector.infra import db
from connector.infra.context import Services
from connector.models import BillingPushLease, Connection, UsageDaily, utcnow
from tests.e2e.stack import Stack, build_stack
from tests.support.vendors import VendorRouter

PERIOD = "2026-10"


@pytest.fixture
async def stack(
    client: httpx.AsyncClient,
    services: Services,
    vendors: VendorRouter,
    make_key: Callable[..., Awaitable[dict[str, str]]],
) -> Stack:
    built = await build_stack(client, services, vendors, await make_key("engineer"), map_clients=())
    await built.map_client("c-0", built.seed.company_ids[0])
    await built.map_client("c-1", built.seed.company_ids[1])
    await built.map_client("c-1b", built.seed.company_ids[1])  # a second RMM client of the same company
    rule = await client.post(
        "/api/v1/billing-rules",
        json={
            "psa_connection_id": built.psa["id"],
            "product": "acme edr",
            "count_scope": "installed",
            "count_method": "peak",
            "agreement_type": "Managed Services",
            "psa_product_id": "EDR-SEAT",
            "unit_price": "4.50",
            "cost_tiers": [
                {"min_seats": 1, "unit_cost": "2.10"},
                {"min_seats": 101, "unit_cost": "1.85"},
            ],
        },
        headers=built.headers,
    )
    assert rule.status_code == 201, rule.text
    return built


async def record_usage(stack: Stack, client_id: str, counts: list[int], product: str = "Acme EDR 12") -> None:
    async with db.transaction(stack.services.sessions) as session:
        connection = await session.get(Connection, stack.rmm["id"])
        assert connection is not None
        tenant_id = connection.tenant_id
        for day, count in enumerate(counts, start=1):
            existing = await session.scalar(
                select(UsageDaily).where(
                    UsageDaily.rmm_connection_id == stack.rmm["id"],
                    UsageDaily.client_id == client_id,
                    UsageDaily.product == product,
                    UsageDaily.day == f"{PERIOD}-{day:02d}",
                )
            )
            if existing is not None:
                existing.peak_installed = existing.last_installed = count
                continue
            session.add(
                UsageDaily(
                    tenant_id=tenant_id,
                    rmm_connection_id=stack.rmm["id"],
                    client_id=client_id,
                    product=product,
                    day=f"{PERIOD}-{day:02d}",
                    peak_installed=count,
                    last_installed=count,
                    peak_protected=count,
                    last_protected=count,
                )
            )


async def preview(stack: Stack) -> dict[str, Any]:
    response = await stack.client.get(
        "/api/v1/billing/preview", params={"period": PERIOD}, headers=stack.headers
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def push(stack: Stack, **options: Any) -> tuple[int, dict[str, Any]]:
    response = await stack.client.post(
        "/api/v1/billing/push", json={"period": PERIOD, **options}, headers=stack.headers
    )
    body: dict[str, Any] = response.json()
    return response.status_code, body


def additions(stack: Stack, company_index: int) -> list[dict[str, Any]]:
    agreement_id = stack.seed.agreement_ids[stack.seed.company_ids[company_index]]
    return stack.manage.additions_for(agreement_id)


def psa_writes(stack: Stack) -> int:
    return stack.manage.call_count("POST", "/finance/agreements/{id}/additions") + stack.manage.call_count(
        "PATCH"
    )


async def test_preview_lines_totals_and_csv(stack: Stack) -> None:
    await record_usage(stack, "c-0", [40, 60, 55])
    await record_usage(stack, "c-1", [30, 30, 30])
    await record_usage(stack, "c-1b", [5, 12, 3])
    await record_usage(stack, "c-unmapped", [7])
    body = await preview(stack)
    lines = {line["company_id"]: line for line in body["lines"]}
    first, second = (str(stack.seed.company_ids[i]) for i in (0, 1))
    assert lines[first]["quantity"] == 60
    assert lines[second]["quantity"] == 42  # peak of c-1 (30) + peak of c-1b (12)
    # 102 seats in all reach the second tier: every seat costs 1.85.
    assert {line["unit_cost"] for line in body["lines"]} == {"1.85"}
    assert lines[first]["total"] == "270.00" and lines[first]["margin"] == "159.00"
    assert body["total"] == "459.00" and body["cost"] == "188.70" and body["margin"] == "270.30"
    assert body["products"] == [
        {"product": "acme edr", "quantity": 102, "total": "459.00", "cost": "188.70", "margin": "270.30"}
    ]
    assert body["unmapped_clients"][0]["client_id"] == "c-unmapped"
    assert {line["action"] for line in body["lines"]} == {"create"}

    as_csv = await stack.client.get(
        "/api/v1/billing/preview", params={"period": PERIOD}, headers={**stack.headers, "Accept": "text/csv"}
    )
    assert as_csv.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(as_csv.text)))
    assert rows[-1]["company_name"] == "TOTAL" and rows[-1]["total"] == "459.00"
    assert {r["quantity"] for r in rows[:-1]} == {"60", "42"}


async def test_push_twice_makes_one_addition_per_company_and_product(stack: Stack) -> None:
    await record_usage(stack, "c-0", [10, 12])
    await record_usage(stack, "c-1", [8])
    status, first = await push(stack)
    assert status == 200, first
    assert first["summary"] == {"created": 2}
    [addition] = additions(stack, 0)
    assert addition["quantity"] == 12 and Decimal(str(addition["unitPrice"])) == Decimal("4.50")
    assert Decimal(str(addition["unitCost"])) == Decimal("2.10")
    writes = psa_writes(stack)
    calls = stack.manage.call_count()

    status, second = await push(stack)
    assert second["summary"] == {"unchanged": 2}
    assert psa_writes(stack) == writes
    # Each line is read back from the PSA before the push (an edit made there would hold it for
    # review), and an unchanged one is not written.
    assert stack.manage.call_count() > calls
    assert len(additions(stack, 0)) == 1 and len(additions(stack, 1)) == 1
    assert (await preview(stack))["lines"][0]["pushed"]["quantity"] in (12, 8)


async def test_changed_usage_updates_the_quantity_in_place(stack: Stack) -> None:
    tolerance = {"tolerance_seats": 5}  # 10 → 15 is within it: written without review
    settings = await stack.client.put(
        "/api/v1/billing/review-settings", json=tolerance, headers=stack.headers
    )
    assert settings.status_code == 200, settings.text
    await record_usage(stack, "c-0", [10])
    await record_usage(stack, "c-1", [8])
    await push(stack)
    await record_usage(stack, "c-0", [10, 15])
    writes = psa_writes(stack)
    _status, body = await push(stack)
    assert body["summary"] == {"updated": 1, "unchanged": 1}
    [addition] = additions(stack, 0)
    assert addition["quantity"] == 15
    assert psa_writes(stack) - writes == 1


async def test_crash_after_the_psa_write_is_repaired_by_update_never_a_second_line(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    await record_usage(stack, "c-0", [10])
    real_record = billing._record
    crashes = {"left": 1}

    async def crash_once(*args: Any, **kwargs: Any) -> None:
        if crashes["left"]:
            crashes["left"] -= 1
            raise RuntimeError("process died after the PSA write")
        await real_record(*args, **kwargs)

    monkeypatch.setattr(billing, "_record", crash_once)
    with pytest.raises(RuntimeError):
        await billing.push(stack.services, await _tenant(stack), PERIOD)
    assert len(additions(stack, 0)) == 1
    assert await _audited_lines(stack) == []  # the write was never recorded: neither is its entry

    await record_usage(stack, "c-0", [10, 11])
    _, results = await billing.push(stack.services, await _tenant(stack), PERIOD)
    assert [r.action for r in results] == ["updated"]
    [addition] = additions(stack, 0)
    assert addition["quantity"] == 11
    [entry] = await _audited_lines(stack)  # recorded with the repair
    assert entry["after"]["quantity"] == 11 and entry["target_id"] == str(addition["id"])


async def _audited_lines(stack: Stack) -> list[dict[str, Any]]:
    response = await stack.client.get("/api/v1/audit", params={"kind": "billing_line"}, headers=stack.headers)
    assert response.status_code == 200
    events: list[dict[str, Any]] = response.json()["events"]
    return events


async def _tenant(stack: Stack) -> str:
    async with stack.services.sessions() as session:
        row = await session.get(Connection, stack.rmm["id"])
        assert row is not None
        return row.tenant_id


async def test_dry_run_writes_nothing(stack: Stack) -> None:
    await record_usage(stack, "c-0", [10])
    status, body = await push(stack, dry_run=True)
    assert status == 200
    assert body["summary"] == {"would_create": 1}
    assert psa_writes(stack) == 0  # it reads the line back, and writes nothing
    assert additions(stack, 0) == []


async def test_company_without_an_agreement_of_the_type_is_an_error_line(stack: Stack) -> None:
    await stack.map_client("c-2", stack.seed.company_ids[2])
    cancelled = stack.manage.agreements.get(stack.seed.agreement_ids[stack.seed.company_ids[2]])
    assert cancelled is not None
    cancelled["cancelledFlag"], cancelled["agreementStatus"] = True, "Cancelled"
    await record_usage(stack, "c-2", [5])
    await record_usage(stack, "c-0", [5])
    _, body = await push(stack)
    errors = [line for line in body["lines"] if line["action"] == "error"]
    assert [e["company_id"] for e in errors] == [str(stack.seed.company_ids[2])]
    assert "Managed Services" in errors[0]["error"]
    assert body["summary"] == {"created": 1, "error": 1}


async def test_closed_period_needs_an_override(stack: Stack) -> None:
    await record_usage(stack, "c-0", [10])
    closed = await stack.client.post(f"/api/v1/billing/periods/{PERIOD}/close", headers=stack.headers)
    assert closed.status_code == 200
    status, body = await push(stack)
    assert status == 409 and body["errors"][0]["field"] == "period"
    assert additions(stack, 0) == []
    status, body = await push(stack, override=True)
    assert status == 200 and body["summary"] == {"created": 1}


async def test_bad_period_is_a_422_naming_it(stack: Stack) -> None:
    response = await stack.client.get(
        "/api/v1/billing/preview", params={"period": "2026-13"}, headers=stack.headers
    )
    assert response.status_code == 422
    assert "period" in response.text
    status, _body = await push(stack, period="October")
    assert status == 422


async def test_a_held_push_lease_refuses_pushes_but_not_dry_runs(stack: Stack) -> None:
    await record_usage(stack, "c-0", [10])
    tenant = await _tenant(stack)
    async with billing.push_lease(stack.services, tenant, PERIOD, "cli"):
        with pytest.raises(billing.PushRunning):
            await billing.push(stack.services, tenant, PERIOD)
        status, body = await push(stack)
        assert status == 409 and body["error"] == "conflict", body
        assert body["running"]["trigger"] == "cli" and body["running"]["period"] == PERIOD
        assert f"period {PERIOD} is already running" in body["message"]
        status, body = await push(stack, dry_run=True)
        assert status == 200 and body["summary"] == {"would_create": 1}
    assert additions(stack, 0) == []
    status, body = await push(stack)
    assert status == 200 and body["summary"] == {"created": 1}
    async with stack.services.sessions() as session:
        assert list(await session.scalars(select(BillingPushLease))) == []  # released


async def test_an_expired_push_lease_is_taken_over_and_its_holder_stops_writing(stack: Stack) -> None:
    await record_usage(stack, "c-0", [10])
    tenant = await _tenant(stack)
    async with db.transaction(stack.services.sessions) as session:
        session.add(
            BillingPushLease(
                tenant_id=tenant,
                owner="a-process-that-died",
                period=PERIOD,
                trigger="cli",
                holder="process 1 on gone",
                expires_at=utcnow() - timedelta(seconds=1),
            )
        )
    async with billing.push_lease(stack.services, tenant, PERIOD, "api") as lease:
        assert lease.held()
        async with db.transaction(stack.services.sessions) as session:  # as if it expired, then was taken
            await session.execute(update(BillingPushLease).values(owner="another-push"))
        await lease.renew()
        assert not lease.held()
        preview, _held, connections = await billing._load(stack.services, tenant, PERIOD)
        results = await billing._write(stack.services, tenant, PERIOD, preview, connections, lease, WORKER)
    assert [r.action for r in results] == ["error"] and "lease" in (results[0].error or "")
    assert additions(stack, 0) == []


async def test_a_push_leaves_the_period_waiting_for_review_with_a_notification(stack: Stack) -> None:
    channel = await stack.client.post(
        "/api/v1/notification-channels",
        json={
            "name": "billing desk",
            "kind": "webhook",
            "url": "https://hooks.example.com/billing",
            "secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            "events": ["billing.review"],
        },
        headers=stack.headers,
    )
    assert channel.status_code == 201, channel.text
    await record_usage(stack, "c-0", [10])
    status, _ = await push(stack, dry_run=True)
    assert status == 200
    listed = (await stack.client.get("/api/v1/notifications", headers=stack.headers)).json()
    assert listed == []  # a dry run is no push
    status, _ = await push(stack)
    assert status == 200
    [notification] = (await stack.client.get("/api/v1/notifications", headers=stack.headers)).json()
    assert notification["event"] == "billing.review"
    assert notification["subject"] == f"Billing period {PERIOD} pushed: 1 line(s) written, ready for review"


async def test_every_product_of_a_client_goes_on_the_agreement_its_other_products_are_on(
    stack: Stack,
) -> None:
    """A client with two active agreements of the rule's type: a new product's line joins the
    agreement its other product is already billed on (one invoice), and the preview groups the
    client's products with their totals."""
    company = stack.seed.company_ids[0]
    second = stack.manage.add_agreement(company, "Security Bundle", type_name="Managed Services")
    rule = await stack.client.post(
        "/api/v1/billing-rules",
        json={
            "psa_connection_id": stack.psa["id"],
            "product": "acme av",
            "count_scope": "installed",
            "count_method": "peak",
            "agreement_id": str(second["id"]),
            "psa_product_id": "AV-SEAT",
            "unit_price": "3.00",
        },
        headers=stack.headers,
    )
    assert rule.status_code == 201, rule.text
    await record_usage(stack, "c-0", [4], product="Acme AV 3")
    status, first = await push(stack)
    assert (status, first["summary"]) == (200, {"created": 1}), first

    await record_usage(stack, "c-0", [6])  # EDR, under the rule of type "Managed Services"
    await record_usage(stack, "c-1", [2])
    status, second_push = await push(stack)
    assert (status, second_push["summary"]) == (200, {"created": 2, "unchanged": 1}), second_push
    on_second = stack.manage.additions_for(second["id"])
    assert sorted(a["product"]["identifier"] for a in on_second) == ["AV-SEAT", "EDR-SEAT"]
    assert additions(stack, 0) == []  # the client's first agreement got none of them
    assert [a["quantity"] for a in additions(stack, 1)] == [2]  # a client with one agreement: on it

    body = await preview(stack)
    clients = {c["company_id"]: c for c in body["clients"]}
    acme = clients[str(company)]
    assert acme["products"] == ["acme av", "acme edr"]
    assert acme["agreement_ids"] == [str(second["id"])]
    assert Decimal(acme["total"]) == Decimal("4") * Decimal("3.00") + Decimal("6") * Decimal("4.50")
    assert sum(Decimal(c["total"]) for c in body["clients"]) == Decimal(body["total"])
