"""The security primitives on their own: outbound URL policy (SSRF), credential encryption with key
rotation, API key format and hashing, and generic webhook authentication."""

from __future__ import annotations

import stat
from pathlib import Path

import httpx
import pytest
from cryptography.fernet import Fernet

from adapters.errors import ConfigurationError
from connector.security import apikeys, urls
from connector.security.crypto import CredentialCipher, SecretKeyError, load_or_create_key_file
from connector.security.urls import GuardedTransport, UrlPolicy, UrlPolicyError
from connector.security.webhooks import sign, verify_generic

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


async def test_guarded_transport_checks_the_address_at_connect_time(monkeypatch: pytest.MonkeyPatch) -> None:
    sent: list[str] = []

    def inner(request: httpx.Request) -> httpx.Response:
        sent.append(str(request.url))
        return httpx.Response(200)

    resolved = {"api.vendor.example": ["93.184.216.34"], "rebound.example": ["169.254.169.254"]}
    monkeypatch.setattr(urls, "resolve_host", lambda host, port: resolved[host])
    async with httpx.AsyncClient(transport=GuardedTransport(STRICT, httpx.MockTransport(inner))) as http:
        assert (await http.get("https://api.vendor.example/ping")).status_code == 200
        with pytest.raises(ConfigurationError, match="outbound address policy"):
            await http.get("https://rebound.example/ping")
        with pytest.raises(ConfigurationError):
            await http.get("https://10.0.0.1/ping")
    assert sent == ["https://api.vendor.example/ping"]


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
