"""Request and response bodies of `/api/v1/api-keys`."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

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
