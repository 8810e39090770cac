"""Encryption of stored credentials and webhook secrets (Fernet: AES-128-CBC + HMAC-SHA256).

`CONNECTOR_SECRET_KEY` holds one or more comma-separated Fernet keys. The first encrypts; every key
decrypts, so rotation is: prepend a new key, run `connector secrets rotate` (re-encrypts every row
with the new key), then drop the old key.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet


class SecretKeyError(RuntimeError):
    pass


class CredentialCipher:
    def __init__(self, keys: list[str]) -> None:
        if not keys:
            raise SecretKeyError("no secret key configured")
        try:
            self._fernets = [Fernet(k.strip().encode()) for k in keys]
        except (ValueError, TypeError) as exc:
            raise SecretKeyError(
                "CONNECTOR_SECRET_KEY must be Fernet keys (urlsafe base64 of 32 bytes), comma-separated"
            ) from exc
        self._multi = MultiFernet(self._fernets)

    @classmethod
    def from_setting(cls, value: str) -> CredentialCipher:
        return cls([k for k in value.split(",") if k.strip()])

    def encrypt(self, plaintext: bytes) -> bytes:
        return self._multi.encrypt(plaintext)

    def decrypt(self, token: bytes) -> bytes:
        try:
            return self._multi.decrypt(token)
        except InvalidToken as exc:
            raise SecretKeyError("stored secret cannot be decrypted with the configured keys") from exc

    def rotate(self, token: bytes) -> bytes:
        """Re-encrypt under the primary key (no-op in effect if it already is)."""
        try:
            return self._multi.rotate(token)
        except InvalidToken as exc:
            raise SecretKeyError("stored secret cannot be decrypted with the configured keys") from exc

    def encrypt_json(self, value: dict[str, Any]) -> bytes:
        return self.encrypt(json.dumps(value, separators=(",", ":")).encode())

    def decrypt_json(self, token: bytes) -> dict[str, Any]:
        loaded = json.loads(self.decrypt(token))
        if not isinstance(loaded, dict):
            raise SecretKeyError("stored credentials are not an object")
        return loaded

    def encrypt_text(self, value: str) -> bytes:
        return self.encrypt(value.encode())

    def decrypt_text(self, token: bytes) -> str:
        return self.decrypt(token).decode()


def generate_key() -> str:
    return Fernet.generate_key().decode()


def load_or_create_key_file(path: Path) -> str:
    """The embedded default keeps its key in a 0600 file beside the SQLite database, created once."""
    if path.exists():
        return path.read_text().strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    key = generate_key()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(key + "\n")
    return key
