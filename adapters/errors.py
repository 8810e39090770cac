"""The adapter error policy as one table.

Adapters raise these; the core decides from the class alone whether to retry, back off, or fail and
show the message to an engineer. `http.py` maps HTTP outcomes onto them (see `classify_status`).
"""

from __future__ import annotations


class AdapterError(Exception):
    """Base class. `field` names the offending input where the vendor said which one."""

    retryable = False

    def __init__(self, message: str, *, field: str | None = None, status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field
        self.status = status

    def __str__(self) -> str:
        return f"{self.field}: {self.message}" if self.field else self.message


class CredentialsError(AdapterError):
    """401/403: the stored credentials are wrong, expired or lack permission."""


class ConfigurationError(AdapterError):
    """The connection's settings cannot work (unknown site, missing mapping target, ...)."""


class VendorRequestError(AdapterError):
    """The vendor refused a request as invalid (400/409/422): a bug or a mapping problem, never retried."""


class NotFoundError(AdapterError):
    """404 on a specific record."""


class TransientVendorError(AdapterError):
    """5xx, timeouts, connection failures: retried with backoff, then reported.

    `maybe_applied` is False only when the vendor certainly never saw the request (no connection),
    so even a create may be resent; otherwise a create must be looked up by its marker first.
    """

    retryable = True

    def __init__(
        self,
        message: str,
        *,
        field: str | None = None,
        status: int | None = None,
        maybe_applied: bool = True,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message, field=field, status=status)
        self.maybe_applied = maybe_applied
        self.retry_after = retry_after
        """Seconds the vendor asked to wait (`Retry-After` on a 503 or 429), if it said."""


class RateLimitedError(TransientVendorError):
    """429 or a vendor threshold response; `retry_after` is the vendor's requested wait in seconds."""

    def __init__(self, message: str, *, retry_after: float | None = None, status: int | None = 429) -> None:
        super().__init__(message, status=status, maybe_applied=False, retry_after=retry_after)


class WebhookParseError(AdapterError):
    """A delivery body that cannot be understood; `field` names what is missing or malformed."""


class UnsupportedActionError(AdapterError):
    """The vendor's API offers no way to run this action."""


def classify_status(status: int) -> type[AdapterError] | None:
    """HTTP status → error class (None = success). One place, used by every adapter."""
    if status < 400:
        return None
    if status in (401, 403):
        return CredentialsError
    if status == 404:
        return NotFoundError
    if status == 429:
        return RateLimitedError
    if status >= 500 or status == 408:
        return TransientVendorError
    return VendorRequestError
