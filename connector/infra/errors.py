"""Errors the service layer raises and the API turns into JSON bodies naming the field."""

from __future__ import annotations

from typing import Any


class FieldError(Exception):
    """Input that cannot be accepted (HTTP 422), naming the offending field."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.errors = [{"field": field, "message": message}]

    @classmethod
    def many(cls, errors: list[dict[str, str]]) -> FieldError:
        error = cls(errors[0]["field"], errors[0]["message"])
        error.errors = errors
        return error


class NotFound(Exception):
    """The id does not exist for this tenant (another tenant's ids look exactly like missing ones)."""

    def __init__(self, entity: str) -> None:
        super().__init__(f"{entity} not found")
        self.entity = entity


class Conflict(Exception):
    """The request conflicts with work in progress or with records that depend on what it would
    remove (HTTP 409). `details` are added to the JSON body (e.g. the dependents, by kind and id)."""

    def __init__(self, message: str, *, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.details: dict[str, Any] = details or {}


class VendorUnavailable(Exception):
    """A vendor system that had to be read could not be (HTTP 502, `psa_unavailable`): the answer
    depends on it, so nothing was stored."""

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field
