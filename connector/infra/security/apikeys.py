"""API keys: `ck_<prefix>_<secret>`. The prefix finds the row; only SHA-256 of the whole key is
stored and compared in constant time. Roles are ordered: viewer < engineer < admin."""

from __future__ import annotations

import enum
import hashlib
import hmac
import secrets
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from connector.models import ApiKey


class ApiRole(enum.StrEnum):
    VIEWER = "viewer"
    ENGINEER = "engineer"
    ADMIN = "admin"

    @property
    def rank(self) -> int:
        return _RANK[self]

    def allows(self, required: ApiRole) -> bool:
        return self.rank >= required.rank


_RANK = {ApiRole.VIEWER: 0, ApiRole.ENGINEER: 1, ApiRole.ADMIN: 2}
KEY_PREFIX = "ck"


@dataclass(frozen=True)
class NewApiKey:
    plaintext: str
    prefix: str
    key_hash: str


def hash_key(plaintext: str) -> str:
    return hashlib.sha256(plaintext.encode()).hexdigest()


def generate_api_key() -> NewApiKey:
    prefix = secrets.token_hex(6)
    plaintext = f"{KEY_PREFIX}_{prefix}_{secrets.token_urlsafe(32)}"
    return NewApiKey(plaintext=plaintext, prefix=prefix, key_hash=hash_key(plaintext))


def parse_prefix(plaintext: str) -> str | None:
    parts = plaintext.split("_", 2)
    if len(parts) != 3 or parts[0] != KEY_PREFIX or len(parts[1]) != 12:
        return None
    if not (parts[1].isascii() and parts[1].isalnum()):  # e.g. a NUL, which PostgreSQL cannot compare
        return None
    return parts[1]


def matches(plaintext: str, key_hash: str) -> bool:
    return hmac.compare_digest(hash_key(plaintext), key_hash)


async def authenticate(session: AsyncSession, plaintext: str) -> ApiKey | None:
    """The active key row the plaintext belongs to, or None (unknown, revoked, wrong secret)."""
    prefix = parse_prefix(plaintext)
    if prefix is None:
        return None
    row = await session.scalar(select(ApiKey).where(ApiKey.prefix == prefix))
    if row is None or row.revoked_at is not None or not matches(plaintext, row.key_hash):
        return None
    return row
