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


@dataclass(frozen=True)
class Verdict:
    ok: bool
    reason: str = ""


def sign(secret: str, body: bytes, timestamp: int | None = None) -> str:
    message = body if timestamp is None else f"{timestamp}.".encode() + body
    return "sha256=" + hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


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
            try:
                timestamp = int(timestamp_text)
            except ValueError:
                return Verdict(False, f"{TIMESTAMP_HEADER} is not a unix timestamp")
            if abs(now - timestamp) > max_skew:
                return Verdict(False, f"stale signature: timestamp is {int(now - timestamp)} s off")
        if hmac.compare_digest(signature.strip().lower(), sign(secret, body, timestamp)):
            return Verdict(True)
        return Verdict(False, "bad signature")
    token = headers.get(TOKEN_HEADER) or query.get("token")
    if token is not None:
        if hmac.compare_digest(token.encode(), secret.encode()):
            return Verdict(True)
        return Verdict(False, "bad token")
    return Verdict(False, f"missing {SIGNATURE_HEADER} or {TOKEN_HEADER}")
