"""Response bodies of `/api/v1/deliveries` and `/api/v1/problems`."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel

from connector.models import Problem, TicketLink
from connector.statuses import DeliveryStatus

DELIVERY_STATUSES = tuple(DeliveryStatus)


class DeliveryOut(BaseModel):
    id: str
    connection_id: str
    received_at: datetime
    status: str
    event_count: int
    size: int
    content_type: str | None
    source_ip: str | None
    user_agent: str | None
    rejection: str | None
    error: str | None
    attempts: int
    processed_at: datetime | None


class ProblemOut(BaseModel):
    id: str
    rmm_connection_id: str
    endpoint_id: str
    client_id: str
    hostname: str | None
    kind: str
    source: str
    state: str
    routing: str
    message: str
    occurrences: int
    first_seen_at: datetime
    last_seen_at: datetime
    cleared_at: datetime | None
    ticket_id: str | None = None
    ticket_number: str | None = None
    ticket_url: str | None = None
    ticket_state: str | None = None

    @classmethod
    def of(cls, problem: Problem, link: TicketLink | None) -> ProblemOut:
        item = cls.model_validate(problem, from_attributes=True)
        if link is not None:
            item.ticket_id, item.ticket_number = link.ticket_id, link.ticket_number
            item.ticket_url, item.ticket_state = link.ticket_url, link.state
        return item
