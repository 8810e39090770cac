"""One bad webhook must not cost other senders their deliveries: a real `connector serve` process
takes 1,600 valid canonical alerts from several concurrent senders while another client streams
requests the database could not store or the parsers could not survive (a NUL or a lone surrogate
in an id, Content-Length beyond 32 and 64 bits without any credential, nesting, endless numbers,
non-ASCII signatures). Every valid alert must be answered 202 and be stored, every poison request
refused with a 4xx — on SQLite and on PostgreSQL, whose text columns refuse NUL characters."""

from __future__ import annotations

import asyncio
import itertools
import json
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.processes.helpers import webhook_receiver
from tests.support.processes import HOST, Deployment, migrated, query

pytestmark = pytest.mark.processes

SENDERS = 4
ALERTS_PER_SENDER = 400
IN_FLIGHT_PER_SENDER = 8
POISON_CLIENTS = 2


@pytest.fixture(params=["sqlite", "postgresql"])
def deployment(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Deployment]:
    with migrated(request.param, tmp_path) as deployment:
        yield deployment


@dataclass(frozen=True)
class Target:
    url: str
    port: int
    connection_id: str
    secret: str

    @property
    def path(self) -> str:
        return f"/webhooks/{self.connection_id}"


def alert(event_id: str, sender: int) -> dict[str, Any]:
    return {
        "event_id": event_id,
        "client_id": f"client-{sender}",
        "endpoint_id": f"ep-{sender}",
        "hostname": f"PC-{sender}",
        "problem": "threat_detected",
        "state": "active",
        "message": "Trojan found",
        "occurred_at": "2026-11-20T10:00:00Z",
    }


def with_raw(field: str, raw: bytes) -> bytes:
    item = alert("poison", 99)
    item[field] = "@@"
    return json.dumps(item).encode().replace(b'"@@"', raw)


def raw_request(target: Target, body: bytes, *headers: bytes, token: bool = True) -> bytes:
    """A request as bytes on the wire, so nothing normalizes the headers on the way."""
    path = target.path + (f"?token={target.secret}" if token else "")
    lines = [f"POST {path} HTTP/1.1".encode(), f"Host: {HOST}".encode(), b"Connection: close", *headers]
    if not any(h.lower().startswith(b"content-length:") for h in headers):
        lines.append(b"Content-Length: %d" % len(body))
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


def poison_requests(target: Target) -> list[tuple[str, bytes]]:
    ctype = b"Content-Type: application/json"
    automate = {"ComputerId": "12", "ClientId": "3", "Status": "Failed", "Problem": "threat_detected"}
    return [
        ("NUL in event_id", raw_request(target, with_raw("event_id", b'"evt\\u0000x"'), ctype)),
        ("only NUL as event_id", raw_request(target, with_raw("event_id", b'"\\u0000"'), ctype)),
        ("lone surrogate in event_id", raw_request(target, with_raw("event_id", b'"e\\ud800"'), ctype)),
        ("NUL in message", raw_request(target, with_raw("message", b'"a\\u0000b"'), ctype)),
        (
            "Content-Length 2**31, no credential",
            raw_request(target, b"", ctype, b"Content-Length: 3000000000", token=False),
        ),
        (
            "Content-Length 2**63, no credential",
            raw_request(target, b"", ctype, b"Content-Length: 9223372036854775808", token=False),
        ),
        ("deep nesting", raw_request(target, b"[" * 50_000 + b"]" * 50_000, ctype)),
        ("10,000-digit number", raw_request(target, with_raw("event_id", b"7" * 10_000), ctype)),
        (
            "non-ASCII signature, no credential",
            raw_request(
                target,
                json.dumps(alert("sig", 99)).encode(),
                ctype,
                b"X-Connector-Signature: sha256=\xe9",
                token=False,
            ),
        ),
        (
            "400-digit timestamp, no credential",
            raw_request(
                target,
                json.dumps(alert("ts", 99)).encode(),
                ctype,
                b"X-Connector-Signature: sha256=00",
                b"X-Connector-Timestamp: " + b"9" * 400,
                token=False,
            ),
        ),
        (
            "Automate alert, NUL in MonitorName",
            raw_request(target, json.dumps({**automate, "MonitorName": "AV\x00"}).encode(), ctype),
        ),
        (
            "Automate alert, 5,000-digit ComputerId",
            raw_request(target, json.dumps({**automate, "ComputerId": "1" * 5_000}).encode(), ctype),
        ),
    ]


async def send_raw(target: Target, request: bytes) -> int:
    """The answer's status, 0 when the connection ended without one."""
    reader, writer = await asyncio.open_connection(HOST, target.port)
    try:
        writer.write(request)
        await writer.drain()
        status_line = await asyncio.wait_for(reader.readline(), timeout=60)
        return int(status_line.split()[1]) if status_line else 0
    except (OSError, IndexError, ValueError):
        return 0
    finally:
        writer.close()


async def storm(target: Target) -> tuple[Counter[int], Counter[tuple[str, int]], int]:
    """Valid senders and poison clients at once; returns the valid answers by status, the poison
    answers by (kind, status), and how many poison requests were sent (status 0: no answer)."""
    valid: Counter[int] = Counter()
    poison: Counter[tuple[str, int]] = Counter()
    done = asyncio.Event()

    async def sender(number: int) -> None:
        gate = asyncio.Semaphore(IN_FLIGHT_PER_SENDER)
        async with httpx.AsyncClient(base_url=target.url, timeout=60) as client:

            async def post(n: int) -> None:
                async with gate:
                    try:
                        response = await client.post(
                            target.path,
                            json=alert(f"sender-{number}-alert-{n}", number),
                            headers={"X-Connector-Token": target.secret},
                        )
                    except httpx.TransportError:
                        valid[0] += 1  # no answer: the server dropped the connection
                    else:
                        valid[response.status_code] += 1

            await asyncio.gather(*(post(n) for n in range(ALERTS_PER_SENDER)))

    async def poisoner(offset: int) -> int:
        sent = 0
        kinds = poison_requests(target)
        for name, request in itertools.islice(itertools.cycle(kinds), offset, None):
            if done.is_set() and sent >= len(kinds):
                break
            poison[(name, await send_raw(target, request))] += 1
            sent += 1
        return sent

    poisoners = [asyncio.create_task(poisoner(n * 5)) for n in range(POISON_CLIENTS)]
    try:
        await asyncio.gather(*(sender(n) for n in range(SENDERS)))
    finally:
        done.set()
    sent = sum(await asyncio.gather(*poisoners))
    return valid, poison, sent


def test_poison_requests_beside_valid_senders_cost_no_valid_delivery(deployment: Deployment) -> None:
    engineer = deployment.api_key("engineer")
    serve = deployment.start("serve", env=deployment.env(CONNECTOR_RUN_WORKER="false"))
    assert serve.port is not None
    target = Target(serve.url, serve.port, *webhook_receiver(serve.url, engineer))

    valid, poison, sent = asyncio.run(storm(target))

    total = SENDERS * ALERTS_PER_SENDER
    refused_wrongly = {key: count for key, count in poison.items() if not 400 <= key[1] < 500}
    assert valid == Counter({202: total}), f"valid alerts by status: {dict(valid)}; poison: {dict(poison)}"
    assert refused_wrongly == {}, f"poison answered outside 4xx: {refused_wrongly}"
    assert sent >= len(poison_requests(target)) and sum(poison.values()) == sent
    [(stored, keys)] = query(
        deployment, "SELECT count(*), count(DISTINCT dedupe_key) FROM deliveries WHERE status = 'queued'"
    )
    assert (stored, keys) == (total, total)
    assert serve.alive(), serve.output()[-2000:]
