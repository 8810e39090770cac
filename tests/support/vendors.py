"""Routes adapters' outbound HTTP to in-process fakes by host, so no test touches the network."""

from __future__ import annotations

from collections.abc import Callable

import httpx

Handler = Callable[[httpx.Request], httpx.Response]


class VendorRouter(httpx.AsyncBaseTransport):
    """A transport that dispatches each request by host to a registered transport (e.g. an
    `httpx.ASGITransport` over a stateful fake) or handler; unknown hosts answer 200 `{}`."""

    def __init__(self) -> None:
        self._hosts: dict[str, httpx.AsyncBaseTransport] = {}
        self.requests: list[httpx.Request] = []

    def add(self, host: str, transport: httpx.AsyncBaseTransport | Handler) -> None:
        if not isinstance(transport, httpx.AsyncBaseTransport):
            transport = httpx.MockTransport(transport)
        self._hosts[host] = transport

    def factory(self, _base_url: str) -> httpx.AsyncBaseTransport:
        return self

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        transport = self._hosts.get(request.url.host)
        if transport is None:
            return httpx.Response(200, json={})
        return await transport.handle_async_request(request)

    async def aclose(self) -> None:
        """Shared across adapters; each adapter closing its client must not close the fakes."""
