"""Request and response bodies of `/api/v1/billing`."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from connector.billing.domain import PERIOD_PATTERN


class PushRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    period: str = Field(pattern=PERIOD_PATTERN, description="YYYY-MM")
    # Strict: `"dry_run": "no"` or `0` must not turn a planned dry run into a real push.
    dry_run: bool = Field(default=False, strict=True)
    override: bool = Field(default=False, strict=True, description="push a closed period anyway")
