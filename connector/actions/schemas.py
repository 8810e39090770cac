"""The request body of `POST /api/v1/endpoints/{id}/actions` (its answer, `ActionOut`, is part of the
endpoint's own view in `fleet.schemas`)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from adapters.base import ActionKind


class ActionRequest(BaseModel):
    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"action": "scan", "problem_id": "p_0123abcd"}]}
    )
    action: ActionKind
    problem_id: str | None = None
