"""Encryption of stored credentials and webhook secrets (Fernet: AES-128-CBC + HMAC-SHA256).

`CONNECTOR_SECRET_KEY` holds one or more comma-separated Fernet keys. The first encrypts; every key
decrypts, so rotation is: prepend a new key, run `connector secrets rotate` (re-encrypts every row
with the new key), then drop the old key.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
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


def _private_temp_file(path: Path, text: str) -> Path:
    """`text` in a new 0600 file beside `path` (same filesystem, so it can be linked or renamed)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")  # mkstemp: mode 0600
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    return Path(name)


def load_or_create_key_file(path: Path) -> str:
    """The embedded default keeps its key in a 0600 file beside the SQLite database, created once.
    Processes starting at once agree on one key: the file appears whole (written aside, then
    hard-linked into place, which fails if another process linked its key first)."""
    if not path.exists():
        temp = _private_temp_file(path, generate_key() + "\n")
        try:
            with contextlib.suppress(FileExistsError):
                os.link(temp, path)
        finally:
            temp.unlink()
    return path.read_text().strip()


def write_private_file(path: Path, text: str) -> None:
    """Write `text` to `path` readable and writable by this user only (0600), replacing any older
    file atomically, so a reader never sees a partial file or one with wider permissions."""
    temp = _private_temp_file(path, text)
    try:
        os.replace(temp, path)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
