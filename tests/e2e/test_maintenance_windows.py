"""Maintenance windows end to end: an alert while the client is in maintenance opens no ticket; a
problem still active when the window ends gets its ticket then, one that cleared inside never does."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import httpx
import pytest
from sqlalchemy import select

from connector.infra.context import Services
from connector.models import Job
from tests.api.world import canonical_alert
from tests.e2e.stack import Stack, build_stack
from tests.support.vendors import VendorRouter


@pytest.fixture
async def stack(
    client: httpx.AsyncClient,
    services: Services,
    vendors: VendorRouter,
    make_key: Callable[..., Awaitable[dict[str, str]]],
) -> Stack:
    return await build_stack(client, services, vendors, await make_key("engineer"))


def _local(moment: datetime, tz: str = "Europe/Berlin") -> str:
    return moment.astimezone(ZoneInfo(tz)).replace(tzinfo=None, second=0, microsecond=0).isoformat()


async def test_alert_in_a_window_waits_for_its_end_and_cleared_ones_never_ticket(stack: Stack) -> None:
    now = datetime.now(UTC)
    created = await stack.client.post(
        "/api/v1/maintenance-windows",
        json={
            "name": "patch night",
            "rmm_connection_id": stack.rmm["id"],
            "client_id": "c-1",
            "timezone": "Europe/Berlin",
            "kind": "once",
            "start_local": _local(now - timedelta(hours=1)),
            "end_local": _local(now + timedelta(hours=1)),
        },
        headers=stack.headers,
    )
    assert created.status_code == 201, created.text
    window = created.json()
    assert window["open_until"] is not None

    await stack.post_alert(canonical_alert("evt-1", endpoint_id="ep-1"))
    await stack.post_alert(canonical_alert("evt-2", endpoint_id="ep-2"))
    await stack.work()
    assert stack.tickets() == []
    problems = {p["endpoint_id"]: p for p in await stack.problems()}
    assert {p["routing"] for p in problems.values()} == {"maintenance"}

    # the hold is a queued job in the database, due when the window ends: a restart keeps it
    async with stack.services.sessions() as session:
        held = list(await session.scalars(select(Job).where(Job.kind == "reconcile", Job.status == "queued")))
    assert len(held) == 2
    assert all(job.run_after > now + timedelta(minutes=55) for job in held)

    # ep-2 recovers inside the window
    await stack.post_alert(
        canonical_alert("evt-3", endpoint_id="ep-2", state="cleared", occurred_at="2026-11-20T10:05:00Z")
    )
    await stack.work()
    assert stack.tickets() == []

    # the window ends (shortened to now, and the held job's time reached)
    ended = await stack.client.patch(
        f"/api/v1/maintenance-windows/{window['id']}",
        json={"end_local": _local(now - timedelta(minutes=1))},
        headers=stack.headers,
    )
    assert ended.status_code == 200, ended.text
    assert ended.json()["open_until"] is None
    await stack.pass_time(2 * 3600)
    await stack.work()

    [ticket] = stack.tickets()
    assert ticket["summary"].startswith("Threat detected on EP-1-PC")
    problems = {p["endpoint_id"]: p for p in await stack.problems()}
    assert problems["ep-1"]["routing"] == "ticketed"
    assert problems["ep-2"]["ticket_id"] is None


async def test_a_window_of_another_client_holds_nothing(stack: Stack) -> None:
    created = await stack.client.post(
        "/api/v1/maintenance-windows",
        json={
            "name": "other client, every day",
            "rmm_connection_id": stack.rmm["id"],
            "client_id": "c-9",
            "timezone": "UTC",
            "kind": "weekly",
            "weekdays": [0, 1, 2, 3, 4, 5, 6],
            "start_time": "00:00",
            "duration_minutes": 10080,
        },
        headers=stack.headers,
    )
    assert created.status_code == 201, created.text
    await stack.post_alert(canonical_alert("evt-1"))
    await stack.work()
    assert len(stack.tickets()) == 1


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"kind": "once", "start_local": "2026-12-01T10:00:00"}, "end_local"),
        (
            {"kind": "once", "start_local": "2026-12-01T10:00:00", "end_local": "2026-12-01T09:00:00"},
            "end_local",
        ),
        (
            {
                "kind": "once",
                "timezone": "Nowhere/Land",
                "start_local": "2026-12-01T10:00",
                "end_local": "2026-12-01T11:00",
            },
            "timezone",
        ),
        (
            {"kind": "once", "start_local": "2026-12-01T10:00:00+01:00", "end_local": "2026-12-01T11:00"},
            "start_local",
        ),
        ({"kind": "weekly", "weekdays": [8], "start_time": "01:00", "duration_minutes": 60}, "weekdays"),
        ({"kind": "weekly", "weekdays": [1], "start_time": "25:00", "duration_minutes": 60}, "start_time"),
        ({"kind": "weekly", "weekdays": [1], "start_time": "01:00"}, "duration_minutes"),
        ({"kind": "hourly"}, "kind"),
        (
            {
                "kind": "once",
                "client_id": "c-1",
                "start_local": "2026-12-01T10:00",
                "end_local": "2026-12-01T11:00",
            },
            "rmm_connection_id",
        ),
    ],
)
async def test_bad_windows_are_422_naming_the_field(
    stack: Stack, body: dict[str, object], field: str
) -> None:
    response = await stack.client.post(
        "/api/v1/maintenance-windows",
        json={"name": "w", "timezone": "UTC", **body},
        headers=stack.headers,
    )
    assert response.status_code == 422, response.text
    assert field in response.text


@pytest.mark.parametrize("change", ["shortened", "deleted", "disabled"])
async def test_a_window_shortened_or_removed_releases_its_held_problems_at_once(
    stack: Stack, change: str
) -> None:
    """The held job was due at the window's old end, hours away: changing the window brings it
    forward, without waiting for that time."""
    now = datetime.now(UTC)
    created = await stack.client.post(
        "/api/v1/maintenance-windows",
        json={
            "name": "patch night",
            "rmm_connection_id": stack.rmm["id"],
            "client_id": "c-1",
            "timezone": "Europe/Berlin",
            "kind": "once",
            "start_local": _local(now - timedelta(hours=1)),
            "end_local": _local(now + timedelta(hours=3)),
        },
        headers=stack.headers,
    )
    assert created.status_code == 201, created.text
    window = created.json()
    await stack.post_alert(canonical_alert("evt-1", endpoint_id="ep-1"))
    await stack.work()
    assert stack.tickets() == []

    path = f"/api/v1/maintenance-windows/{window['id']}"
    if change == "deleted":
        answer = await stack.client.delete(path, headers=stack.headers)
        assert answer.status_code == 204, answer.text
    else:
        body = (
            {"end_local": _local(now - timedelta(minutes=1))} if change == "shortened" else {"enabled": False}
        )
        answer = await stack.client.patch(path, json=body, headers=stack.headers)
        assert answer.status_code == 200, answer.text
    await stack.work()  # no time passes

    [ticket] = stack.tickets()
    assert ticket["summary"].startswith("Threat detected on EP-1-PC")
    [problem] = await stack.problems()
    assert problem["routing"] == "ticketed"


async def test_a_window_changed_but_still_open_holds_its_problems_until_its_new_end(stack: Stack) -> None:
    now = datetime.now(UTC)
    created = await stack.client.post(
        "/api/v1/maintenance-windows",
        json={
            "name": "patch night",
            "timezone": "UTC",
            "kind": "once",
            "start_local": _local(now - timedelta(hours=1), "UTC"),
            "end_local": _local(now + timedelta(hours=3), "UTC"),
        },
        headers=stack.headers,
    )
    assert created.status_code == 201, created.text
    await stack.post_alert(canonical_alert("evt-1", endpoint_id="ep-1"))
    await stack.work()
    later = _local(now + timedelta(hours=1), "UTC")
    answer = await stack.client.patch(
        f"/api/v1/maintenance-windows/{created.json()['id']}",
        json={"end_local": later},
        headers=stack.headers,
    )
    assert answer.status_code == 200, answer.text
    await stack.work()
    assert stack.tickets() == []  # still in maintenance: held again, now until the new end
    async with stack.services.sessions() as session:
        [held] = list(
            await session.scalars(select(Job).where(Job.kind == "reconcile", Job.status == "queued"))
        )
    assert now + timedelta(minutes=50) < held.run_after < now + timedelta(minutes=70)
