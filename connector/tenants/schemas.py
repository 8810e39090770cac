"""Request and response bodies of `/api/v1/api-keys`."""

from __future__ import annotations

from datetime import datetime

from babel import Locale, UnknownLocaleError
from babel.numbers import list_currencies
from pydantic import BaseModel, ConfigDict, Field, field_validator

from connector.api.schemas import RequestBody


class ApiKeyIn(RequestBody):
    model_config = ConfigDict(json_schema_extra={"examples": [{"name": "ci pipeline", "role": "engineer"}]})

    name: str = Field(min_length=1, max_length=200)
    role: str = Field(pattern="^(admin|engineer|viewer)$")


class ApiKeyOut(BaseModel):
    id: str
    name: str
    role: str
    prefix: str
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None


class ApiKeyCreated(ApiKeyOut):
    key: str
    """The API key itself: shown once, only a hash is stored."""


class CurrencySettings(BaseModel):
    """How the dashboard shows money: an ISO 4217 currency code and a locale (kept in
    `tenant.settings["currency"]`). Amounts themselves are not converted."""

    model_config = ConfigDict(
        extra="forbid",
        str_strip_whitespace=True,
        json_schema_extra={"examples": [{"currency": "EUR", "locale": "en_IE"}]},
    )
    currency: str = Field(default="USD", min_length=3, max_length=3, description="ISO 4217 code, e.g. EUR")
    locale: str = Field(default="en_US", min_length=2, max_length=20, description="e.g. en_US, de_DE")

    @field_validator("currency")
    @classmethod
    def _iso_4217(cls, value: str) -> str:
        code = value.upper()
        if code not in list_currencies():
            raise ValueError("must be an ISO 4217 currency code such as USD or EUR")
        return code

    @field_validator("locale")
    @classmethod
    def _known_locale(cls, value: str) -> str:
        try:
            return str(Locale.parse(value.replace("-", "_")))
        except (ValueError, UnknownLocaleError):
            raise ValueError("must be a locale such as en_US or de_DE") from None
