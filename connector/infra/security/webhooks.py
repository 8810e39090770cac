"""Generic webhook authentication for senders without a signature scheme of their own.

In order of preference:
1. `X-Connector-Signature: sha256=<hex>` — HMAC-SHA256 with the connection's webhook secret over the
   raw body, or, when `X-Connector-Timestamp: <unix seconds>` is sent too, over `"{timestamp}.{body}"`;
   a timestamp more than `max_skew` away from now is rejected as stale (replay protection).
2. `X-Connector-Token: <secret>` header, or `?token=<secret>` for RMM alert templates that can only
   set a URL.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass

SIGNATURE_HEADER = "x-connector-signature"
TIMESTAMP_HEADER = "x-connector-timestamp"
TOKEN_HEADER = "x-connector-token"
DEFAULT_MAX_SKEW_SECONDS = 300
MAX_TIMESTAMP_DIGITS = 12


@dataclass(frozen=True)
class Verdict:
    ok: bool
    reason: str = ""


def sign(secret: str, body: bytes, timestamp: int | None = None) -> str:
    message = body if timestamp is None else f"{timestamp}.".encode() + body
    return "sha256=" + hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def _raw(text: str) -> bytes:
    """Header and query values compared as bytes: `hmac.compare_digest` refuses `str` with non-ASCII
    characters (a TypeError, not a mismatch), and a sender controls every character."""
    return text.encode("utf-8", "surrogatepass")


def _unix_seconds(text: str) -> int | None:
    """ASCII digits only (`int()` would also take other scripts' digits, `_` and a sign), and few
    enough of them to compare with the clock as a float."""
    text = text.strip()
    if not (text.isascii() and text.isdigit()) or len(text) > MAX_TIMESTAMP_DIGITS:
        return None
    return int(text)


def verify_generic(
    secret: str,
    body: bytes,
    headers: Mapping[str, str],
    query: Mapping[str, str],
    *,
    now: float,
    max_skew: int = DEFAULT_MAX_SKEW_SECONDS,
) -> Verdict:
    signature = headers.get(SIGNATURE_HEADER)
    if signature is not None:
        timestamp_text = headers.get(TIMESTAMP_HEADER)
        timestamp: int | None = None
        if timestamp_text is not None:
            timestamp = _unix_seconds(timestamp_text)
            if timestamp is None:
                return Verdict(False, f"{TIMESTAMP_HEADER} is not a unix timestamp")
            if abs(now - timestamp) > max_skew:
                return Verdict(False, f"stale signature: timestamp is {int(now - timestamp)} s off")
        if hmac.compare_digest(_raw(signature.strip().lower()), _raw(sign(secret, body, timestamp))):
            return Verdict(True)
        return Verdict(False, "bad signature")
    token = headers.get(TOKEN_HEADER) or query.get("token")
    if token is not None:
        if hmac.compare_digest(_raw(token), _raw(secret)):
            return Verdict(True)
        return Verdict(False, "bad token")
    return Verdict(False, f"missing {SIGNATURE_HEADER} or {TOKEN_HEADER}")
