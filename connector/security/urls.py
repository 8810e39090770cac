"""Outbound address policy: base URLs set over the API must not reach internal services (SSRF).

Checked twice: when a connection is configured (scheme, literal addresses, names that resolve to
forbidden addresses) and at connect time by `GuardedTransport`, which resolves the host again so a
name re-pointed after configuration is still refused.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit

import httpx

from adapters.errors import ConfigurationError

METADATA_HOSTS = frozenset({"metadata.google.internal", "metadata", "instance-data"})


class UrlPolicyError(ValueError):
    pass


@dataclass(frozen=True)
class UrlPolicy:
    allow_private_networks: bool = False
    allow_insecure_loopback: bool = False

    def check_address(self, address: str) -> None:
        ip = ipaddress.ip_address(address)
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
            ip = ip.ipv4_mapped
        if ip.is_loopback:
            if self.allow_insecure_loopback or self.allow_private_networks:
                return
            raise UrlPolicyError(f"address {address} is loopback")
        if ip.is_link_local or ip.is_multicast or ip.is_reserved or ip.is_unspecified:
            raise UrlPolicyError(f"address {address} is link-local, reserved or metadata")
        if not ip.is_global and not self.allow_private_networks:
            # Private ranges, and also shared address space (100.64.0.0/10, where some clouds serve
            # instance metadata) and other special-purpose ranges that are not `is_private`.
            raise UrlPolicyError(
                f"address {address} is private; set CONNECTOR_ALLOW_PRIVATE_NETWORKS for on-premises systems"
            )

    def check_url(self, url: str, *, resolve: bool = False) -> str:
        """Validate syntax and policy; return the normalized URL (no trailing slash)."""
        parts = urlsplit(url)
        if parts.scheme not in ("https", "http") or not parts.hostname:
            raise UrlPolicyError("must be an absolute https:// URL")
        if parts.username or parts.password:
            raise UrlPolicyError("must not contain credentials")
        if parts.query or parts.fragment:
            raise UrlPolicyError("must not contain a query or fragment")
        host = parts.hostname.lower()
        if host in METADATA_HOSTS:
            raise UrlPolicyError(f"host {host} is a metadata service")
        literal = _literal_ip(host)
        if parts.scheme == "http":
            loopback = host == "localhost" or (literal is not None and literal.is_loopback)
            if not (self.allow_insecure_loopback and loopback):
                raise UrlPolicyError("must use https (plain http is only allowed for loopback in tests)")
        if literal is not None:
            self.check_address(str(literal))
        elif host == "localhost":
            self.check_address("127.0.0.1")
        elif resolve:
            for address in resolve_host(host, parts.port or 443):
                self.check_address(address)
        return url.rstrip("/")


def _literal_ip(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None


def resolve_host(host: str, port: int) -> list[str]:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror:
        return []
    return sorted({str(info[4][0]) for info in infos})


class GuardedTransport(httpx.AsyncBaseTransport):
    """Refuses requests whose host resolves to a forbidden address, then sends normally."""

    def __init__(self, policy: UrlPolicy, inner: httpx.AsyncBaseTransport | None = None) -> None:
        self._policy = policy
        self._inner = inner or httpx.AsyncHTTPTransport()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        host = request.url.host
        literal = _literal_ip(host)
        addresses = (
            [str(literal)]
            if literal
            else await asyncio.to_thread(resolve_host, host, request.url.port or 443)
        )
        for address in addresses:
            try:
                self._policy.check_address(address)
            except UrlPolicyError as exc:
                raise ConfigurationError(f"refused by the outbound address policy: {exc}") from exc
        return await self._inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self._inner.aclose()
