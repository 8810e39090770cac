"""Routes adapters' outbound HTTP to in-process fakes by host, so no test touches the network."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import httpx

from adapters.base import AdapterSpec
from adapters.testing.harness import installed_security_harnesses

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


def route_demo(vendors: VendorRouter, router: httpx.AsyncBaseTransport, specs: Sequence[AdapterSpec]) -> None:
    """Every host `connector demo` serves, to its router: each kind's `.demo.invalid` host, and the
    vendors' own hosts for the consoles, which the demo seeds at their real addresses (token and
    regional hosts included)."""
    from connector.demo import demo_url

    for spec in specs:
        vendors.add(httpx.URL(demo_url(spec)).host, router)
    for harness in installed_security_harnesses(specs):
        for host in harness.start(customers=["Any"], agents_per_customer=0).hosts:
            vendors.add(host, router)
