"""A small HTTP/1.1 keep-alive load generator on raw asyncio streams.

A general-purpose client (httpx) spends more CPU per request than the server under test on a 2-core
machine, which would cap both sides at the client's speed and hide the difference being measured;
this one only writes a prepared request and reads `Content-Length` bytes back.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class Result:
    requests: int
    seconds: float
    latencies_ms: list[float] = field(default_factory=list)
    statuses: Counter[int] = field(default_factory=Counter)
    p50_ms: float | None = None
    p99_ms: float | None = None
    mean_ms: float | None = None
    """Percentiles measured elsewhere (wrk's histogram) when there are no `latencies_ms`."""

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    def percentile(self, p: float) -> float:
        given = {50: self.p50_ms, 99: self.p99_ms}.get(int(p))
        if given is not None and not self.latencies_ms:
            return given
        if not self.latencies_ms:
            return 0.0
        ordered = sorted(self.latencies_ms)
        return ordered[min(len(ordered) - 1, int(len(ordered) * p / 100))]

    def mean(self) -> float:
        if self.mean_ms is not None and not self.latencies_ms:
            return self.mean_ms
        return statistics.fmean(self.latencies_ms or [0])

    def line(self, label: str) -> str:
        return (
            f"{label:<34} {self.rps:8.0f} req/s   p50 {self.percentile(50):6.1f} ms   "
            f"p99 {self.percentile(99):6.1f} ms   "
            f"mean {self.mean():6.1f} ms   "
            f"statuses {dict(self.statuses)}"
        )


def build_request(host: str, port: int, path: str, body: bytes, headers: dict[str, str]) -> bytes:
    lines = [f"POST {path} HTTP/1.1", f"Host: {host}:{port}", f"Content-Length: {len(body)}"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


async def _one_client(
    host: str,
    port: int,
    make_request: Callable[[int], bytes],
    counter: list[int],
    total: int,
    until: float,
    result: Result,
) -> None:
    reader, writer = await asyncio.open_connection(host, port)
    try:
        while True:
            n = counter[0]
            if n >= total or time.perf_counter() >= until:
                return
            counter[0] += 1
            started = time.perf_counter()
            writer.write(make_request(n))
            status_line = await reader.readline()
            length = 0
            while True:
                header = await reader.readline()
                if header in (b"\r\n", b""):
                    break
                name, _, value = header.decode("latin-1").partition(":")
                if name.lower() == "content-length":
                    length = int(value.strip())
            if length:
                await reader.readexactly(length)
            result.latencies_ms.append((time.perf_counter() - started) * 1000)
            result.statuses[int(status_line.split()[1])] += 1
    finally:
        writer.close()


async def run_load(
    host: str,
    port: int,
    make_request: Callable[[int], bytes],
    *,
    concurrency: int,
    total: int | None = None,
    seconds: float | None = None,
) -> Result:
    """`total` requests, or as many as `seconds` allow, from `concurrency` keep-alive connections;
    request n is `make_request(n)`."""
    result = Result(requests=0, seconds=0.0)
    counter = [0]
    started = time.perf_counter()
    until = started + seconds if seconds is not None else float("inf")
    limit = total if total is not None else 2**62
    await asyncio.gather(
        *(_one_client(host, port, make_request, counter, limit, until, result) for _ in range(concurrency))
    )
    result.seconds = time.perf_counter() - started
    result.requests = len(result.latencies_ms)
    return result
