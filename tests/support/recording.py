"""A transport that records every request an adapter sends (method, path, query, JSON body) before
handing it to the real in-process transport, for tests that validate requests against a vendor's
API description."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import httpx


@dataclass(frozen=True)
class Sent:
    method: str
    path: str
    params: dict[str, str]
    body: Any


@dataclass
class RecordingTransport(httpx.AsyncBaseTransport):
    inner: httpx.AsyncBaseTransport
    sent: list[Sent] = field(default_factory=list)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        content = await request.aread()
        body = json.loads(content) if content and "json" in request.headers.get("content-type", "") else None
        self.sent.append(Sent(request.method, request.url.path, dict(request.url.params), body))
        return await self.inner.handle_async_request(request)

    def factory(self, _base_url: str) -> httpx.AsyncBaseTransport:
        return self
