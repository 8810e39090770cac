"""Response bodies of `/api/v1/endpoints`."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel

from connector.actions.schemas import ActionOut


class EndpointOut(BaseModel):
    id: str
    rmm_connection_id: str
    endpoint_id: str
    client_id: str
    client_name: str | None
    hostname: str
    serial_number: str | None
    os_name: str | None
    product: str | None
    protection_enabled: bool | None
    definitions_date: datetime | None
    last_scan_at: datetime | None
    active_threats: int | None
    online: bool | None
    last_seen_at: datetime | None
    health: str
    first_seen_at: datetime
    updated_at: datetime
    retired_at: datetime | None


class EndpointProblemOut(BaseModel):
    id: str
    kind: str
    state: str
    source: str
    message: str
    first_seen_at: datetime
    cleared_at: datetime | None
    ticket_id: str | None = None
    ticket_number: str | None = None
    ticket_state: str | None = None


class EndpointDetail(EndpointOut):
    problems: list[EndpointProblemOut]
    actions: list[ActionOut]
