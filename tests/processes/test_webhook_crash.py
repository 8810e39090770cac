"""A 202 from the webhook means the delivery is committed, with the job that processes it: a real
`connector serve` process takes concurrent alerts from several senders and is SIGKILLed in the
middle of the storm. Every delivery answered 202 must be in the database afterwards, stored once,
and named by exactly one `deliveries` job in the order it was received — on SQLite and on
PostgreSQL, whose writers go through the database driver directly."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.api.world import canonical_alert
from tests.processes.helpers import webhook_receiver
from tests.support.processes import Deployment, migrated, query

pytestmark = pytest.mark.processes

SENDERS = 6
KILL_AFTER = 600
"""Acknowledged deliveries before the kill: enough that batches are in flight when it lands."""


@pytest.fixture(params=["sqlite", "postgresql"])
def deployment(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Deployment]:
    with migrated(request.param, tmp_path) as deployment:
        yield deployment


async def storm(
    url: str, path: str, secret: str, acknowledged: dict[str, str], enough: threading.Event
) -> None:
    """Senders post until the server stops answering; each 202's delivery id is kept."""

    async def sender(number: int) -> None:
        async with httpx.AsyncClient(base_url=url, timeout=10) as client:
            for n in range(100_000):
                event_id = f"s{number}-{n}"
                try:
                    answer = await client.post(
                        path,
                        params={"token": secret},
                        json=canonical_alert(
                            event_id, endpoint_id=f"ep-{number}", client_id=f"client-{number}"
                        ),
                    )
                except httpx.TransportError:
                    return  # the server is gone
                if answer.status_code == 202:
                    acknowledged[answer.json()["delivery_id"]] = event_id
                    if len(acknowledged) >= KILL_AFTER:
                        enough.set()

    await asyncio.gather(*(sender(number) for number in range(SENDERS)))


def test_every_acknowledged_delivery_survives_a_sigkill_with_its_job(deployment: Deployment) -> None:
    engineer = deployment.api_key("engineer")
    serve = deployment.start("serve", env=deployment.env(CONNECTOR_RUN_WORKER="false"))
    connection_id, secret = webhook_receiver(serve.url, engineer)
    acknowledged: dict[str, str] = {}
    enough = threading.Event()
    senders = threading.Thread(
        target=lambda: asyncio.run(
            storm(serve.url, f"/webhooks/{connection_id}", secret, acknowledged, enough)
        )
    )
    senders.start()
    try:
        assert enough.wait(120), f"only {len(acknowledged)} deliveries acknowledged: {serve.output()[-2000:]}"
        serve.kill()
    finally:
        senders.join(60)
    answered = dict(acknowledged)
    assert len(answered) >= KILL_AFTER

    rows = query(deployment, "SELECT id, dedupe_key FROM deliveries WHERE status = 'queued'")
    stored = {delivery_id: key for delivery_id, key in rows}
    lost = [d for d in answered if d not in stored]
    assert lost == [], f"{len(lost)} of {len(answered)} deliveries answered 202 are not stored"
    assert all(stored[d] == f"e:{event_id}" for d, event_id in answered.items())
    assert len(set(stored.values())) == len(stored)  # stored once each

    jobs = query(deployment, "SELECT payload FROM jobs WHERE kind = 'deliveries'")
    job_ids = [(json.loads(p) if isinstance(p, str) else p)["delivery_ids"] for (p,) in jobs]
    named = [d for ids in job_ids for d in ids]
    assert sorted(named) == sorted(stored), "every stored delivery is named by exactly one job"
    for ids in job_ids:  # within a job, a sender's alerts keep the order they were received
        by_sender: dict[str, list[int]] = {}
        for delivery_id in ids:
            key = stored[delivery_id].removeprefix("e:")
            sender, n = key.split("-")
            by_sender.setdefault(sender, []).append(int(n))
        assert all(numbers == sorted(numbers) for numbers in by_sender.values()), by_sender
