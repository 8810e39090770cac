"""The security primitives on their own: outbound URL policy (SSRF), credential encryption with key
rotation, API key format and hashing, and generic webhook authentication."""

from __future__ import annotations

import asyncio
import socket
import stat
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from cryptography.fernet import Fernet

from adapters.errors import ConfigurationError
from connector.infra.security import apikeys, urls
from connector.infra.security.crypto import CredentialCipher, SecretKeyError, load_or_create_key_file
from connector.infra.security.urls import GuardedTransport, UrlPolicy, UrlPolicyError
from connector.infra.security.webhooks import sign, verify_generic

STRICT = UrlPolicy()
ON_PREMISES = UrlPolicy(allow_private_networks=True)
TESTS = UrlPolicy(allow_insecure_loopback=True)

# --- outbound URL policy ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "normalized"),
    [
        ("https://api.vendor.example/", "https://api.vendor.example"),
        ("https://93.184.216.34:8443/v4", "https://93.184.216.34:8443/v4"),
        ("https://[2606:2800:220:1:248:1893:25c8:1946]/", "https://[2606:2800:220:1:248:1893:25c8:1946]"),
    ],
)
def test_public_https_urls_are_accepted_and_normalized(url: str, normalized: str) -> None:
    assert STRICT.check_url(url) == normalized


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://api.vendor.example", "https"),
        ("ftp://api.vendor.example", "https"),
        ("api.vendor.example", "https"),
        ("https://user:pass@api.vendor.example", "credentials"),
        ("https://api.vendor.example/?key=1", "query"),
        ("https://api.vendor.example/#x", "fragment"),
        ("https://metadata.google.internal/", "metadata"),
        ("https://169.254.169.254/latest/meta-data", "link-local"),
        ("https://[fe80::1]/", "link-local"),
        ("https://0.0.0.0/", "reserved"),
        ("https://224.0.0.1/", "link-local"),
        ("https://10.1.2.3/", "private"),
        ("https://192.168.1.10/", "private"),
        ("https://[fd00::1]/", "private"),
        ("https://127.0.0.1/", "loopback"),
        ("https://localhost/", "loopback"),
        ("https://[::1]/", "loopback"),
        ("https://[::ffff:127.0.0.1]/", "loopback"),
        ("https://[::ffff:10.0.0.1]/", "private"),
    ],
)
def test_unsafe_urls_are_refused_by_default(url: str, reason: str) -> None:
    with pytest.raises(UrlPolicyError, match=reason):
        STRICT.check_url(url)


def test_private_networks_can_be_allowed_for_on_premises_systems() -> None:
    assert ON_PREMISES.check_url("https://10.1.2.3/cwa") == "https://10.1.2.3/cwa"
    # metadata and link-local stay forbidden even then
    with pytest.raises(UrlPolicyError):
        ON_PREMISES.check_url("https://169.254.169.254/")
    with pytest.raises(UrlPolicyError, match="https"):
        ON_PREMISES.check_url("http://10.1.2.3/")


def test_plain_http_only_for_loopback_when_allowed() -> None:
    assert TESTS.check_url("http://127.0.0.1:9000/") == "http://127.0.0.1:9000"
    assert TESTS.check_url("http://localhost:9000") == "http://localhost:9000"
    with pytest.raises(UrlPolicyError, match="https"):
        TESTS.check_url("http://api.vendor.example/")
    with pytest.raises(UrlPolicyError, match="private"):
        TESTS.check_url("https://10.0.0.1/")


def test_names_resolving_to_forbidden_addresses_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(urls, "resolve_host", lambda host, port: ["93.184.216.34", "10.0.0.7"])
    assert STRICT.check_url("https://rebound.example") == "https://rebound.example"  # no lookup asked
    with pytest.raises(UrlPolicyError, match=r"10\.0\.0\.7"):
        STRICT.check_url("https://rebound.example", resolve=True)


def test_shared_address_space_is_refused() -> None:
    with pytest.raises(UrlPolicyError):
        STRICT.check_url("https://100.100.100.200/latest/meta-data")


@pytest.mark.parametrize(
    "host",
    [
        "2130706433",  # one 32-bit number
        "0x7f.1",  # hex and a 24-bit tail
        "127.1",  # a 24-bit tail
        "0177.0.0.1",  # octal
        "0x7f000001",
        "017700000001",
        "１２７.０.０.１",  # full-width digits
        "１２７。０。０。１",  # and ideographic full stops
        "127.0.0.1.",  # a trailing dot
    ],
)
def test_numeric_host_forms_are_read_as_resolvers_read_them(host: str) -> None:
    with pytest.raises(UrlPolicyError, match="loopback"):
        STRICT.check_url(f"https://{host}/")
    # Even where loopback is allowed, only the dotted quad is accepted: other forms are refused.
    with pytest.raises(UrlPolicyError, match="dotted-quad"):
        TESTS.check_url(f"http://{host}:9000/")


@pytest.mark.parametrize("host", ["1572395042", "93.0xb8.0330.34", "９３.１８４.２１６.３４"])
def test_non_canonical_public_addresses_are_refused_too(host: str) -> None:
    with pytest.raises(UrlPolicyError, match="dotted-quad"):
        STRICT.check_url(f"https://{host}/")


@pytest.mark.parametrize(
    "url",
    [
        "https://256.1.1.1/",
        "https://1.2.3.4.5/",
        "https://vendor.123/",
        "https://a..b/",
        "https://[1::2::3]/",
    ],
)
def test_invalid_hosts_are_refused(url: str) -> None:
    with pytest.raises(UrlPolicyError, match=r"not a valid|IPv4"):
        STRICT.check_url(url)


@pytest.mark.parametrize("url", ["https://api.vendor.example:99999/", "https://api.vendor.example:x/"])
def test_invalid_ports_are_refused(url: str) -> None:
    with pytest.raises(UrlPolicyError, match="port"):
        STRICT.check_url(url)


@pytest.mark.parametrize(
    "host",
    [
        "metadata.google.internal.",
        "METADATA.Google.Internal.",
        "ｍｅｔａｄａｔａ.google.internal",
        "metadata.",
        "instance-data.ec2.internal.",
    ],
)
def test_metadata_hosts_are_refused_in_any_spelling(host: str) -> None:
    with pytest.raises(UrlPolicyError, match="metadata"):
        STRICT.check_url(f"https://{host}/")
    with pytest.raises(UrlPolicyError, match="metadata"):
        ON_PREMISES.check_host(host)


def test_hosts_are_stored_in_their_canonical_form() -> None:
    assert STRICT.check_url("https://API.Vendor.Example./v1/") == "https://api.vendor.example/v1"
    assert STRICT.check_url("https://bücher.example:8443/") == "https://xn--bcher-kva.example:8443"
    assert STRICT.check_url("https://ｖｅｎｄｏｒ.example") == "https://vendor.example"
    assert STRICT.check_host("NA.myconnectwise.net.") == "na.myconnectwise.net"
    assert TESTS.check_host("127.0.0.1:9000") == "127.0.0.1:9000"


def test_errors_do_not_quote_the_submitted_url() -> None:
    with pytest.raises(UrlPolicyError) as refused:
        STRICT.check_url("https://10.11.12.13/")
    assert "10.11.12.13" not in str(refused.value)


# --- connect-time guard, over real sockets --------------------------------------------------------


class Listener:
    """A one-response HTTP server on a loopback address, counting the connections it gets."""

    def __init__(self, name: str, *, status: int = 200, location: str | None = None) -> None:
        self.name = name
        self.status = status
        self.location = location
        self.connections = 0
        self.server: asyncio.Server | None = None

    async def start(self, host: str, port: int = 0) -> int:
        self.server = await asyncio.start_server(self._answer, host, port)
        return int(self.server.sockets[0].getsockname()[1])

    async def _answer(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        await reader.readuntil(b"\r\n\r\n")
        body = self.name.encode()
        head = f"HTTP/1.1 {self.status} X\r\ncontent-length: {len(body)}\r\nconnection: close\r\n"
        if self.location:
            head += f"location: {self.location}\r\n"
        writer.write(head.encode() + b"\r\n" + body)
        await writer.drain()
        writer.close()

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()


@dataclass(frozen=True)
class SecondLoopbackIsInternal(UrlPolicy):
    """Loopback allowed (the "vendor" listens on 127.0.0.1), but 127.0.0.2 stands for an internal
    service the policy must keep out of reach."""

    def check_address(self, address: str) -> None:
        if address == "127.0.0.2":
            raise UrlPolicyError(f"address {address} is private (internal in this test)")
        super().check_address(address)


class RebindingResolver:
    """Answers the allowed address first and the internal one afterwards (DNS rebinding)."""

    def __init__(self, *answers: list[str]) -> None:
        self.answers = list(answers)
        self.lookups: list[str] = []

    async def __call__(self, host: str, port: int) -> list[str]:
        self.lookups.append(host)
        return self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]


async def _listeners() -> tuple[Listener, Listener, int]:
    vendor, internal = Listener("vendor"), Listener("internal")
    port = await vendor.start("127.0.0.1")
    await internal.start("127.0.0.2", port)
    return vendor, internal, port


async def test_a_rebinding_name_cannot_reach_the_internal_address() -> None:
    vendor, internal, port = await _listeners()
    resolver = RebindingResolver(["127.0.0.1"], ["127.0.0.2"])
    policy = SecondLoopbackIsInternal(allow_insecure_loopback=True)
    try:
        async with httpx.AsyncClient(transport=GuardedTransport(policy, resolver=resolver)) as http:
            first = await http.get(f"http://localhost:{port}/ping")
            assert (first.status_code, first.text) == (200, "vendor")
            with pytest.raises(ConfigurationError, match=r"outbound address policy: address 127\.0\.0\.2"):
                await http.get(f"http://localhost:{port}/ping")  # a new connection, a new lookup
    finally:
        await vendor.stop()
        await internal.stop()
    assert internal.connections == 0
    assert vendor.connections == 1
    assert resolver.lookups == ["localhost", "localhost"]  # one lookup per connection, none by httpx


async def test_a_failed_lookup_is_refused() -> None:
    vendor, internal, port = await _listeners()

    async def failing(host: str, port: int) -> list[str]:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    try:
        async with httpx.AsyncClient(transport=GuardedTransport(TESTS, resolver=failing)) as http:
            with pytest.raises(httpx.ConnectError, match="cannot resolve"):
                await http.get(f"http://localhost:{port}/ping")
    finally:
        await vendor.stop()
        await internal.stop()
    assert vendor.connections == internal.connections == 0


async def test_followed_redirects_are_checked_at_every_hop() -> None:
    internal = Listener("internal")
    port = await internal.start("127.0.0.2")
    vendor = Listener("vendor", status=302, location=f"http://127.0.0.2:{port}/secret")
    vendor_port = await vendor.start("127.0.0.1")
    policy = SecondLoopbackIsInternal(allow_insecure_loopback=True)
    transport = GuardedTransport(policy, resolver=RebindingResolver(["127.0.0.1"]))
    try:
        async with httpx.AsyncClient(transport=transport, follow_redirects=True) as http:
            with pytest.raises(ConfigurationError, match="outbound address policy"):
                await http.get(f"http://localhost:{vendor_port}/")
    finally:
        await vendor.stop()
        await internal.stop()
    assert vendor.connections == 1 and internal.connections == 0


@pytest.mark.parametrize(
    "url",
    ["https://2130706433/", "https://169.254.169.254/", "http://api.vendor.example/", "https://metadata./"],
)
async def test_the_guard_applies_the_url_rules_before_connecting(url: str) -> None:
    resolver = RebindingResolver(["93.184.216.34"])
    async with httpx.AsyncClient(transport=GuardedTransport(STRICT, resolver=resolver)) as http:
        with pytest.raises(ConfigurationError, match="outbound address policy"):
            await http.get(url)
    assert resolver.lookups == []


# --- credential encryption --------------------------------------------------------------------


def test_key_rotation_prepend_rotate_drop() -> None:
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    token = CredentialCipher.from_setting(old).encrypt_json({"api_secret": "s3cret"})

    both = CredentialCipher.from_setting(f"{new}, {old}")
    assert both.decrypt_json(token) == {"api_secret": "s3cret"}
    rotated = both.rotate(token)

    only_new = CredentialCipher.from_setting(new)
    assert only_new.decrypt_json(rotated) == {"api_secret": "s3cret"}
    with pytest.raises(SecretKeyError, match="cannot be decrypted"):
        only_new.decrypt(token)


def test_ciphertext_does_not_contain_the_plaintext() -> None:
    cipher = CredentialCipher.from_setting(Fernet.generate_key().decode())
    token = cipher.encrypt_text("hunter2-very-secret")
    assert b"hunter2" not in token
    assert cipher.decrypt_text(token) == "hunter2-very-secret"


@pytest.mark.parametrize("setting", ["", " , ", "not-a-fernet-key", "c2hvcnQ="])
def test_unusable_secret_keys_are_refused(setting: str) -> None:
    with pytest.raises(SecretKeyError):
        CredentialCipher.from_setting(setting)


def test_decrypt_json_refuses_non_objects() -> None:
    cipher = CredentialCipher.from_setting(Fernet.generate_key().decode())
    with pytest.raises(SecretKeyError, match="not an object"):
        cipher.decrypt_json(cipher.encrypt(b"[1, 2]"))


def test_generated_key_file_is_private_and_stable(tmp_path: Path) -> None:
    path = tmp_path / "data" / "secret.key"
    key = load_or_create_key_file(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_or_create_key_file(path) == key
    CredentialCipher.from_setting(key)  # a valid Fernet key


# --- API keys ---------------------------------------------------------------------------------


def test_api_key_format_prefix_and_hash() -> None:
    key = apikeys.generate_api_key()
    assert key.plaintext.startswith(f"ck_{key.prefix}_")
    assert apikeys.parse_prefix(key.plaintext) == key.prefix
    assert key.plaintext not in key.key_hash and len(key.key_hash) == 64
    assert apikeys.matches(key.plaintext, key.key_hash)
    assert not apikeys.matches(key.plaintext + "x", key.key_hash)
    assert apikeys.generate_api_key().plaintext != key.plaintext


@pytest.mark.parametrize(
    "value",
    ["", "ck", "ck_short_secret", "xx_0123456789ab_secret", "Bearer ck_x", "ck_01234\x006789ab_secret"],
)
def test_malformed_api_keys_have_no_prefix(value: str) -> None:
    assert apikeys.parse_prefix(value) is None


def test_roles_are_ordered() -> None:
    viewer, engineer, admin = apikeys.ApiRole.VIEWER, apikeys.ApiRole.ENGINEER, apikeys.ApiRole.ADMIN
    assert admin.allows(engineer) and admin.allows(viewer) and engineer.allows(viewer)
    assert not viewer.allows(engineer) and not engineer.allows(admin)


# --- generic webhook authentication -----------------------------------------------------------

SECRET = "whsec-0123456789abcdef0123456789abcdef"
BODY = b'{"alert": "threat"}'
NOW = 1_790_000_000.0


def test_hmac_signature_over_the_raw_body() -> None:
    headers = {"x-connector-signature": sign(SECRET, BODY)}
    assert verify_generic(SECRET, BODY, headers, {}, now=NOW).ok
    upper = {"x-connector-signature": headers["x-connector-signature"].upper().replace("SHA256=", "sha256=")}
    assert verify_generic(SECRET, BODY, upper, {}, now=NOW).ok
    assert verify_generic(SECRET, BODY + b" ", headers, {}, now=NOW).reason == "bad signature"
    assert verify_generic("other-secret", BODY, headers, {}, now=NOW).reason == "bad signature"


def test_timestamped_signature_rejects_replays() -> None:
    stamp = int(NOW) - 60
    headers = {"x-connector-signature": sign(SECRET, BODY, stamp), "x-connector-timestamp": str(stamp)}
    assert verify_generic(SECRET, BODY, headers, {}, now=NOW).ok
    assert "stale" in verify_generic(SECRET, BODY, headers, {}, now=NOW + 600).reason
    # the timestamp is covered by the signature: changing it breaks the signature
    moved = {**headers, "x-connector-timestamp": str(stamp + 1)}
    assert verify_generic(SECRET, BODY, moved, {}, now=NOW).reason == "bad signature"
    garbled = {**headers, "x-connector-timestamp": "yesterday"}
    assert "not a unix timestamp" in verify_generic(SECRET, BODY, garbled, {}, now=NOW).reason


def test_token_in_header_or_query() -> None:
    assert verify_generic(SECRET, BODY, {"x-connector-token": SECRET}, {}, now=NOW).ok
    assert verify_generic(SECRET, BODY, {}, {"token": SECRET}, now=NOW).ok
    assert verify_generic(SECRET, BODY, {}, {"token": "guess"}, now=NOW).reason == "bad token"
    missing = verify_generic(SECRET, BODY, {}, {}, now=NOW)
    assert not missing.ok and "missing" in missing.reason


def test_a_signature_is_not_bypassed_by_also_sending_a_token() -> None:
    headers = {"x-connector-signature": "sha256=" + "0" * 64, "x-connector-token": SECRET}
    assert not verify_generic(SECRET, BODY, headers, {}, now=NOW).ok


@pytest.mark.parametrize(
    "headers",
    [
        {"x-connector-signature": "sha256=\u00e9\u00e9"},  # Latin-1 bytes as the server decodes them
        {"x-connector-signature": "sha256=\u4e2d\ud800"},
        {"x-connector-signature": "sha256=00", "x-connector-timestamp": "9" * 400},
        {"x-connector-signature": "sha256=00", "x-connector-timestamp": "\u0661\u0667"},  # Arabic digits
        {"x-connector-signature": "sha256=00", "x-connector-timestamp": "-5"},
        {"x-connector-token": "\u00e9\x00\ud800"},
    ],
)
def test_hostile_authentication_headers_are_a_mismatch_not_an_error(headers: dict[str, str]) -> None:
    verdict = verify_generic(SECRET, BODY, headers, {"token": "\udcff"}, now=NOW)
    assert not verdict.ok and verdict.reason


def test_a_secret_with_non_ascii_characters_still_verifies() -> None:
    secret = "s\u00e9cret-\u4e2d"
    assert verify_generic(secret, BODY, {"x-connector-token": secret}, {}, now=NOW).ok
    assert verify_generic(secret, BODY, {"x-connector-signature": sign(secret, BODY)}, {}, now=NOW).ok
