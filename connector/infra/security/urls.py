"""Outbound address policy: URLs set over the API must not reach internal services (SSRF).

Checked twice, with the same rules:

- When a connection is configured (`UrlPolicy.check_url`), for its base URL and for every option
  its adapter marks as an outbound URL or host (`adapters.base.OUTBOUND_URL`). The host is read the
  way resolvers and browsers read it — lower-cased, one trailing dot dropped, Unicode mapped to
  ASCII (UTS #46: full-width digits and dots become ASCII ones), and a host whose last label is a
  number parsed as IPv4 in any of the forms `inet_aton` accepts (`2130706433`, `0x7f.1`, `127.1`,
  `0177.0.0.1`). A numeric host must be written as a plain dotted quad; other forms are refused
  (after the address they mean is checked, so the error says what is wrong with it). The URL that
  is stored is the normalized one.
- Whenever the HTTP client opens a connection (`GuardedTransport`). The request URL is checked
  again, then the connection itself is made by `PinnedBackend`, an httpcore network backend: it
  resolves the name once, refuses when the lookup fails or any answer is a forbidden address, and
  connects to an address it has just checked. httpcore then runs TLS over that socket with the
  URL's host for SNI and certificate verification, and the Host header stays the request's. So no
  second lookup happens between check and connect (DNS rebinding: a name answering a public address
  to the check and a private one to the connect), and a redirect, should a client follow one, is a
  new request and a new connection checked the same way.

  The alternative — rewriting the request URL to the checked IP and passing the name in httpcore's
  `sni_hostname` extension — was not taken: the connection pool would then key connections by IP,
  so two names served from one address could share a TLS connection made for the other, and every
  error and log line would name the IP instead of the host. httpx does not take a network backend
  as an argument, so `GuardedTransport` gives its `AsyncHTTPTransport` a pool built with one (the
  one private attribute this relies on; the tests connect over real sockets through it).
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpcore
import httpx
import idna

from adapters.errors import ConfigurationError

METADATA_HOSTS = frozenset(
    {"metadata.google.internal", "metadata", "instance-data", "instance-data.ec2.internal"}
)

Resolver = Callable[[str, int], Awaitable[list[str]]]
"""(host, port) → the addresses to connect to; raises `OSError` when the name does not resolve."""


class UrlPolicyError(ValueError):
    pass


IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


@dataclass(frozen=True)
class CanonicalHost:
    """A host as resolvers and browsers read it."""

    name: str
    """Lower-case ASCII, no trailing dot; an IPv6 address without brackets."""
    address: IpAddress | None
    """The address when the host is numeric."""
    as_written: bool
    """False when a numeric host was not written as its canonical form (`127.1`, `0x7f.1`, …)."""


def canonical_host(host: str) -> CanonicalHost:
    """Normalize a URL's host (as `urlsplit(...).hostname` gives it); UrlPolicyError if invalid."""
    if ":" in host:
        try:
            ipv6 = ipaddress.IPv6Address(host.strip("[]"))
        except ValueError:
            raise UrlPolicyError("host is not a valid IPv6 address") from None
        return CanonicalHost(str(ipv6), ipv6, as_written=True)
    mapped = host
    if not host.isascii():
        try:
            mapped = idna.uts46_remap(host, std3_rules=False, transitional=False)
        except idna.IDNAError:
            raise UrlPolicyError("host is not a valid host name") from None
    mapped = mapped.lower()
    name = mapped[:-1] if mapped.endswith(".") else mapped
    if not name or "" in name.split("."):
        raise UrlPolicyError("host is not a valid host name")
    address = _numeric_ipv4(name)
    if address is not None:
        return CanonicalHost(str(address), address, as_written=host == str(address))
    if not name.isascii():
        try:
            name = idna.encode(name).decode("ascii")
        except idna.IDNAError:
            raise UrlPolicyError("host is not a valid host name") from None
    return CanonicalHost(name, None, as_written=True)


def _numeric_ipv4(name: str) -> ipaddress.IPv4Address | None:
    """The WHATWG URL standard's IPv4 parser (what browsers and `inet_aton` accept): None when the
    last label is not a number (a domain name), UrlPolicyError when it is but the host is no address."""
    parts = name.split(".")
    last = parts[-1]
    if not (last.isdecimal() and last.isascii()) and not _is_hex(last):
        return None
    if len(parts) > 4:
        raise UrlPolicyError("host ends in a number but is not an IPv4 address")
    numbers = [_ipv4_number(part) for part in parts]
    if any(n > 255 for n in numbers[:-1]) or numbers[-1] >= 256 ** (5 - len(numbers)):
        raise UrlPolicyError("host ends in a number but is not an IPv4 address")
    value = numbers[-1]
    for index, number in enumerate(numbers[:-1]):
        value += number * 256 ** (3 - index)
    return ipaddress.IPv4Address(value)


def _is_hex(part: str) -> bool:
    digits = part[2:]
    return part[:2] in ("0x", "0X") and all(c in "0123456789abcdefABCDEF" for c in digits)


def _ipv4_number(part: str) -> int:
    try:
        if _is_hex(part):
            return int(part[2:] or "0", 16)
        if not (part.isascii() and part.isdecimal()):
            raise ValueError(part)
        if len(part) > 1 and part.startswith("0"):
            return int(part[1:], 8)
        return int(part)
    except ValueError:
        raise UrlPolicyError("host ends in a number but is not an IPv4 address") from None


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
        """Validate syntax and policy; return the normalized URL (canonical host, no trailing slash).
        Messages never quote the URL: they say what is wrong with it."""
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError:
            raise UrlPolicyError("is not a valid URL (host or port)") from None
        if parts.scheme not in ("https", "http") or not parts.hostname:
            raise UrlPolicyError("must be an absolute https:// URL")
        if parts.username or parts.password:
            raise UrlPolicyError("must not contain credentials")
        if parts.query or parts.fragment:
            raise UrlPolicyError("must not contain a query or fragment")
        if port == 0:
            raise UrlPolicyError("port must be from 1 to 65535")
        host = canonical_host(parts.hostname)
        if host.name in METADATA_HOSTS:
            raise UrlPolicyError("host is a metadata service")
        if parts.scheme == "http":
            loopback = host.name == "localhost" or (host.address is not None and host.address.is_loopback)
            if not (self.allow_insecure_loopback and loopback):
                raise UrlPolicyError("must use https (plain http is only allowed for loopback in tests)")
        if host.address is not None:
            self._check(str(host.address), literal=True)
            if not host.as_written:
                raise UrlPolicyError("a numeric host must be written as a dotted-quad IPv4 address")
        elif host.name == "localhost":
            self._check("127.0.0.1", literal=True)
        elif resolve:
            for address in resolve_host(host.name, port or 443):
                self.check_address(address)
        netloc = f"[{host.name}]" if isinstance(host.address, ipaddress.IPv6Address) else host.name
        if port is not None:
            netloc += f":{port}"
        normalized = urlunsplit((parts.scheme, netloc, parts.path, "", "")).rstrip("/")
        try:
            httpx.URL(normalized)
        except httpx.InvalidURL:
            raise UrlPolicyError("is not a valid URL") from None
        return normalized

    def check_host(self, host: str) -> str:
        """An option naming a host (e.g. a site to use instead of the base URL's host): the same
        rules as a base URL's host; returns the canonical host."""
        return urlsplit(self.check_url(f"https://{host}")).netloc

    def _check(self, address: str, *, literal: bool) -> None:
        """`check_address` for an address taken from the URL itself: the message does not repeat it."""
        try:
            self.check_address(address)
        except UrlPolicyError as exc:
            if not literal:
                raise
            reason = str(exc).split(" is ", 1)[-1]
            raise UrlPolicyError(f"host is {reason}") from None


def resolve_host(host: str, port: int) -> list[str]:
    """Configuration-time lookup: a name that does not resolve (yet) gives no addresses."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError):
        return []
    return sorted({str(info[4][0]) for info in infos})


async def system_resolver(host: str, port: int) -> list[str]:
    """The connect-time lookup: the system resolver, in getaddrinfo's order (which honours RFC 6724
    address preference); raises `OSError` when the name does not resolve."""
    infos = await asyncio.to_thread(socket.getaddrinfo, host, port, type=socket.SOCK_STREAM)
    addresses: list[str] = []
    for info in infos:
        address = str(info[4][0])
        if address not in addresses:
            addresses.append(address)
    return addresses


def _refused(exc: UrlPolicyError) -> ConfigurationError:
    return ConfigurationError(f"refused by the outbound address policy: {exc}")


class PinnedBackend(httpcore.AsyncNetworkBackend):
    """Opens TCP connections only to addresses it has resolved and checked itself, once per
    connection; TLS and HTTP on top are httpcore's, with the URL's host name."""

    def __init__(self, policy: UrlPolicy, resolver: Resolver) -> None:
        self._policy = policy
        self._resolver = resolver
        self._network = httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore's interface
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        literal = _literal_ip(host)
        if literal is not None:
            addresses = [str(literal)]
        else:
            try:
                addresses = await asyncio.wait_for(self._resolver(host, port), timeout)
            except (OSError, UnicodeError, TimeoutError) as exc:
                raise httpcore.ConnectError(f"cannot resolve the host: {type(exc).__name__}") from exc
        if not addresses:
            raise httpcore.ConnectError("the host resolves to no address")
        for address in addresses:
            try:
                self._policy.check_address(address)
            except UrlPolicyError as exc:
                raise _refused(exc) from exc
        failure: Exception | None = None
        for address in addresses:
            try:
                return await self._network.connect_tcp(
                    address, port, timeout=timeout, local_address=local_address, socket_options=socket_options
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                failure = exc
        assert failure is not None
        raise failure

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore's interface
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise ConfigurationError("refused by the outbound address policy: unix sockets")

    async def sleep(self, seconds: float) -> None:
        await self._network.sleep(seconds)


def _literal_ip(host: str) -> IpAddress | None:
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None


class GuardedTransport(httpx.AsyncBaseTransport):
    """Checks each request's URL against the policy and connects only through `PinnedBackend`."""

    def __init__(self, policy: UrlPolicy, *, resolver: Resolver = system_resolver) -> None:
        self._policy = policy
        ssl_context = httpx.create_ssl_context()
        self._inner = httpx.AsyncHTTPTransport(verify=ssl_context)
        self._inner._pool = httpcore.AsyncConnectionPool(  # httpx takes no network backend argument
            ssl_context=ssl_context,
            max_connections=100,  # httpx's default limits
            max_keepalive_connections=20,
            keepalive_expiry=5.0,
            network_backend=PinnedBackend(policy, resolver),
        )

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        try:
            self._policy.check_url(str(request.url.copy_with(query=None, fragment=None)))
        except UrlPolicyError as exc:
            raise _refused(exc) from exc
        return await self._inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self._inner.aclose()
