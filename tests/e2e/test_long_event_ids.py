"""Long event ids: two alerts whose ids share a long prefix are two deliveries and both are applied
(keys that do not fit their column are hashed, never cut into one), a redelivery of a long id is
still recognized, and a vendor event id longer than `applied_events.event_id` is applied rather
than failing in the worker — on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from connector.infra.context import Services
from connector.models import Delivery
from tests.api.world import canonical_alert
from tests.e2e.stack import Stack, build_stack
from tests.support.vendors import VendorRouter

PREFIX = "cw-automate:monitor:" + "x" * 160  # 180 characters in common: past any cut at 120 or 200


@pytest.fixture
async def stack(
    client: httpx.AsyncClient,
    services: Services,
    vendors: VendorRouter,
    make_key: Callable[..., Awaitable[dict[str, str]]],
) -> Stack:
    return await build_stack(client, services, vendors, await make_key("engineer"))


@pytest.fixture
async def automate(
    client: httpx.AsyncClient,
    services: Services,
    vendors: VendorRouter,
    make_key: Callable[..., Awaitable[dict[str, str]]],
) -> Stack:
    return await build_stack(
        client,
        services,
        vendors,
        await make_key("engineer"),
        rmm_kind="connectwise_automate",
        rmm_credentials={"username": "svc", "password": "pw", "client_id": "cid"},
        map_clients=("3",),
    )


async def _statuses(stack: Stack) -> list[str]:
    async with stack.services.sessions() as session:
        return list((await session.scalars(select(Delivery.status).order_by(Delivery.received_at))).all())


async def test_two_long_ids_sharing_a_prefix_are_two_deliveries_and_both_are_applied(stack: Stack) -> None:
    first_id, second_id = PREFIX + "-1", PREFIX + "-2"
    first = await stack.post_alert(canonical_alert(first_id, occurred_at="2026-11-20T10:00:00Z"))
    second = await stack.post_alert(canonical_alert(second_id, occurred_at="2026-11-20T10:01:00Z"))
    assert first.status_code == second.status_code == 202, (first.text, second.text)
    assert first.json()["duplicate"] is False
    assert second.json()["duplicate"] is False
    assert first.json()["delivery_id"] != second.json()["delivery_id"]

    again = await stack.post_alert(canonical_alert(first_id, occurred_at="2026-11-20T10:00:00Z"))
    assert again.json() == {"delivery_id": first.json()["delivery_id"], "duplicate": True}

    await stack.work()
    [problem] = await stack.problems()
    assert problem["occurrences"] == 2
    assert await _statuses(stack) == ["processed", "processed"]


def _automate_alert(monitor: str, **overrides: Any) -> dict[str, Any]:
    return {
        "ComputerId": "12",
        "ClientId": "3",
        "ComputerName": "PC-12",
        "MonitorName": monitor,
        "Status": "Failed",
        "Problem": "threat_detected",
        "AlertDate": "2026-11-20T10:00:00Z",
        **overrides,
    }


async def test_vendor_event_ids_longer_than_any_column_are_applied_not_cut(automate: Stack) -> None:
    """Automate's template alerts without an AlertId are identified by computer, monitor, state and
    time: a monitor named at length makes an event id of hundreds of characters."""
    long_monitor = "Antivirus - " + "very long monitor name " * 20  # ~470 characters
    posted = [
        await automate.post_alert(_automate_alert(long_monitor + "A")),
        await automate.post_alert(_automate_alert(long_monitor + "B", AlertDate="2026-11-20T10:05:00Z")),
    ]
    assert [r.status_code for r in posted] == [202, 202], [r.text for r in posted]
    assert [r.json()["duplicate"] for r in posted] == [False, False]

    await automate.work()
    assert await _statuses(automate) == ["processed", "processed"]
    [problem] = await automate.problems()
    assert problem["occurrences"] == 2
    assert len(automate.tickets()) == 1
