"""Maintenance windows and notification channels are configuration like any other: each create,
change and delete has one audit entry (who, before, after), and a channel's secrets never appear in
it — only that one changed."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

import httpx

Headers = dict[str, str]
SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
URL_PATH = "/services/T000/B000/very-secret-token"


async def _entries(client: httpx.AsyncClient, headers: Headers, kind: str) -> list[dict[str, Any]]:
    response = await client.get("/api/v1/audit", params={"kind": kind}, headers=headers)
    assert response.status_code == 200, response.text
    return list(reversed(response.json()["events"]))  # oldest first


async def test_maintenance_window_changes_are_audited(
    client: httpx.AsyncClient, make_key: Callable[..., Awaitable[Headers]]
) -> None:
    headers = await make_key("engineer")
    window = {
        "name": "patch night",
        "timezone": "Europe/Berlin",
        "kind": "weekly",
        "weekdays": [2],
        "start_time": "22:00",
        "duration_minutes": 120,
    }
    created = await client.post("/api/v1/maintenance-windows", json=window, headers=headers)
    assert created.status_code == 201, created.text
    window_id = created.json()["id"]
    patched = await client.patch(
        f"/api/v1/maintenance-windows/{window_id}", json={"duration_minutes": 60}, headers=headers
    )
    assert patched.status_code == 200, patched.text
    unchanged = await client.patch(
        f"/api/v1/maintenance-windows/{window_id}", json={"duration_minutes": 60}, headers=headers
    )
    assert unchanged.status_code == 200
    assert (
        await client.delete(f"/api/v1/maintenance-windows/{window_id}", headers=headers)
    ).status_code == 204

    entries = await _entries(client, headers, "maintenance_window")
    assert [e["kind"] for e in entries] == [
        "maintenance_window.created",
        "maintenance_window.updated",
        "maintenance_window.deleted",
    ]
    assert all(e["target_id"] == window_id and e["api_key_id"] for e in entries)
    assert entries[0]["after"]["timezone"] == "Europe/Berlin"
    assert (entries[1]["before"], entries[1]["after"]) == (
        {"duration_minutes": 120},
        {"duration_minutes": 60},
    )
    assert entries[2]["before"]["name"] == "patch night" and entries[2]["after"] is None


async def test_notification_channel_changes_are_audited_without_their_secrets(
    client: httpx.AsyncClient, make_key: Callable[..., Awaitable[Headers]]
) -> None:
    headers = await make_key("engineer")
    created = await client.post(
        "/api/v1/notification-channels",
        json={
            "name": "ops",
            "kind": "webhook",
            "url": f"https://hooks.example.com{URL_PATH}",
            "secret": SECRET,
        },
        headers=headers,
    )
    assert created.status_code == 201, created.text
    channel_id = created.json()["id"]
    renamed = await client.patch(
        f"/api/v1/notification-channels/{channel_id}", json={"events": ["sync.failed"]}, headers=headers
    )
    assert renamed.status_code == 200, renamed.text
    rotated = await client.patch(
        f"/api/v1/notification-channels/{channel_id}",
        json={"secret": "whsec_" + "A" * 40},
        headers=headers,
    )
    assert rotated.status_code == 200, rotated.text
    assert (
        await client.delete(f"/api/v1/notification-channels/{channel_id}", headers=headers)
    ).status_code == 204

    entries = await _entries(client, headers, "notification_channel")
    assert [e["kind"] for e in entries] == [
        "notification_channel.created",
        "notification_channel.updated",
        "notification_channel.updated",
        "notification_channel.deleted",
    ]
    assert entries[1]["after"] == {"events": ["sync.failed"]}
    assert entries[2]["after"] == {"secrets": "[redacted]"}  # that they changed, never what to
    text = json.dumps(entries)
    assert SECRET not in text and "very-secret-token" not in text and "A" * 40 not in text
