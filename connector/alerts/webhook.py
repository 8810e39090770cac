"""`POST /webhooks/{connection_id}`: authenticated by the connection's webhook secret, not an API key.

The handling lives in `receive()`; `WebhookFastPath` serves it straight from the ASGI layer (no
routing over every API route, no dependency resolution), which is the hot path under alert storms,
and the FastAPI route below documents the same handler in the OpenAPI description.
"""

from __future__ import annotations

import logging
import re
import time
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl

import orjson
import structlog
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.types import Message, Receive, Scope, Send

from adapters.base import WebhookRequest
from adapters.errors import WebhookParseError
from connector.alerts.canonical import CanonicalAlert
from connector.alerts.ingest import Ingest, delivery_values, parse_delivery, verify
from connector.api.errors import database_error
from connector.api.middleware import REQUEST_ID_HEADER, request_id_of, request_target
from connector.infra.access import AccessLog
from connector.infra.logs import get_logger
from connector.infra.metrics import Metrics
from connector.statuses import DeliveryStatus

log = get_logger("connector.alerts.webhook")
_debug = logging.getLogger("connector.alerts.webhook")
router = APIRouter(tags=["webhooks"])

TEMPLATE = "/webhooks/{connection_id}"
PATH = re.compile(r"^/webhooks/([^/]{1,64})$")


async def receive(
    ingest: Ingest,
    connection_id: str,
    incoming: WebhookRequest,
    source_ip: str | None,
) -> tuple[int, dict[str, Any]]:
    """Verify, parse and durably store one delivery; returns the status and JSON body to answer."""
    target = await ingest.targets.get(connection_id)
    if target is None:
        return 404, {"error": "not_found", "message": "no RMM or security connection with this id"}
    owner = (target.connection_id, target.tenant_id)
    ok, reason = verify(target, incoming)
    if not ok:
        await ingest.writer.submit(
            delivery_values(
                owner,
                incoming,
                status=DeliveryStatus.REJECTED,
                source_ip=source_ip,
                rejection=f"401 {reason}",
            )
        )
        log.warning("webhook refused", connection_id=connection_id, status=401, reason=reason)
        return 401, {"error": "unauthorized", "message": reason}
    if not target.enabled:
        message = "this connection is disabled; enable it to receive alerts again"
        await ingest.writer.submit(
            delivery_values(
                owner,
                incoming,
                status=DeliveryStatus.REJECTED,
                source_ip=source_ip,
                rejection=f"403 {message}",
            )
        )
        return 403, {"error": "connection_disabled", "message": message}
    try:
        events = parse_delivery(target.adapter, incoming)
    except WebhookParseError as exc:
        message = str(exc)
        await ingest.writer.submit(
            delivery_values(
                owner,
                incoming,
                status=DeliveryStatus.REJECTED,
                source_ip=source_ip,
                rejection=f"400 {message}",
            )
        )
        log.warning("webhook refused", connection_id=connection_id, status=400, reason=message)
        return 400, {
            "error": "bad_request",
            "message": message,
            "errors": [{"field": exc.field or "body", "message": exc.message}],
        }
    delivery_id, duplicate = await ingest.writer.submit(
        delivery_values(owner, incoming, status=DeliveryStatus.QUEUED, source_ip=source_ip, events=events)
    )
    if _debug.isEnabledFor(logging.DEBUG):  # one line per delivery: the access log counts them
        log.debug(
            "webhook accepted",
            tenant_id=target.tenant_id,
            connection_id=connection_id,
            delivery_id=delivery_id,
            duplicate=duplicate,
            events=len(events),
        )
    return 202, {"delivery_id": delivery_id, "duplicate": duplicate}


class WebhookAccepted(BaseModel):
    delivery_id: str = Field(description="the stored delivery (`GET /api/v1/deliveries/{id}`)")
    duplicate: bool = Field(description="the same delivery was received before; stored once")


WEBHOOK_OPENAPI: dict[str, Any] = {
    "parameters": [
        {
            "name": "connection_id",
            "in": "path",
            "required": True,
            "schema": {"type": "string", "maxLength": 64},
            "description": "the RMM connection (its `webhook_url` holds it)",
        }
    ],
    "requestBody": {
        "required": True,
        "description": "The vendor's own alert format (JSON, XML or form, as the RMM sends it) or the "
        "canonical alert; authenticated by the connection's signature scheme or `?token=` secret.",
        "content": {
            "application/json": {
                "schema": CanonicalAlert.model_json_schema(),
                "example": {
                    "event_id": "a-1001",
                    "client_id": "c-3",
                    "endpoint_id": "ep-17",
                    "hostname": "FRONTDESK-01",
                    "problem": "threat_detected",
                    "state": "active",
                    "message": "Trojan quarantined",
                    "occurred_at": "2026-01-05T09:30:00Z",
                },
            },
            "*/*": {"schema": {"type": "string", "format": "binary"}},
        },
    },
    "responses": {
        "400": {"description": "unparseable body; `errors` names the problem"},
        "401": {"description": "bad or stale signature or token (the delivery is still recorded)"},
        "404": {"description": "no RMM or security connection with this id"},
        "413": {"description": "body over the webhook size limit (recorded, metadata only)"},
        "503": {"description": "the database is unavailable; retry later"},
    },
}


@router.post(
    "/webhooks/{connection_id}",
    status_code=202,
    response_model=WebhookAccepted,
    openapi_extra=WEBHOOK_OPENAPI,
)
async def receive_webhook(request: Request) -> JSONResponse:
    """Receive a vendor alert (or the canonical alert). `202 {"delivery_id", "duplicate"}` once stored;
    401 bad or stale signature/token; 403 the connection is disabled (recorded as refused, not
    processed); 400 unparseable body naming the problem; 413 too large.
    (Served by `WebhookFastPath`; this route documents it and answers in-process calls.)"""
    incoming = WebhookRequest(
        body=await request.body(),
        headers={k.lower(): v for k, v in request.headers.items()},
        query=dict(request.query_params),
        received_at=datetime.now(UTC),
    )
    connection_id = str(request.path_params["connection_id"])
    status, body = await receive(
        request.app.state.ingest, connection_id, incoming, request.client.host if request.client else None
    )
    return JSONResponse(body, status_code=status)


def declared_length(value: str | None) -> int | None:
    """A Content-Length header as a number of bytes (0 when absent), or None when it is not one
    (`1*DIGIT`: no sign, no underscores, ASCII digits only). A length of more digits than any body
    limit is returned as 10**18 rather than converted."""
    if value is None:
        return 0
    text = value.strip()
    if not (text.isascii() and text.isdigit()):
        return None
    digits = text.lstrip("0")
    return int(digits or "0") if len(digits) <= 18 else 10**18


class WebhookFastPath:
    """Serves `POST /webhooks/{id}` ahead of everything else in the app (`connector.app.WebhooksFirst`
    asks it first): no middleware stack, router or dependency resolution, its own body limit,
    metrics, request id and access-log record. Everything else goes to the API as usual."""

    def __init__(self, *, max_bytes: int, metrics: Metrics, access: AccessLog | None = None) -> None:
        self.max_bytes = max_bytes
        self.metrics = metrics
        self.access = access
        # Labelled children looked up once, not per request.
        self._counters: dict[int, Any] = {}
        self._latency = metrics.latency.labels("POST", TEMPLATE)

    @staticmethod
    def connection_of(scope: Scope) -> str | None:
        """The connection id when the request is a webhook delivery, else None."""
        if scope["type"] != "http" or scope["method"] != "POST":
            return None
        match = PATH.match(scope["path"])
        return match.group(1) if match is not None else None

    async def serve(self, scope: Scope, receive_: Receive, send: Send, connection_id: str) -> None:
        started = time.perf_counter()
        request_id = request_id_of(scope)
        tokens = structlog.contextvars.bind_contextvars(request_id=request_id)
        try:
            extra: list[tuple[bytes, bytes]] = []
            try:
                status, body = await self._handle(scope, receive_, connection_id)
            except Exception as exc:  # a JSON answer (503 + Retry-After when the database is away),
                status, body, headers = database_error(exc, TEMPLATE)  # the connection stays open
                extra = [(name.lower().encode(), value.encode()) for name, value in headers.items()]
            payload = orjson.dumps(body)
            await send(
                {
                    "type": "http.response.start",
                    "status": status,
                    "headers": [
                        (b"content-type", b"application/json"),
                        (b"content-length", str(len(payload)).encode()),
                        (REQUEST_ID_HEADER, request_id.encode("ascii")),
                        *extra,
                    ],
                }
            )
            await send({"type": "http.response.body", "body": payload})
            counter = self._counters.get(status)
            if counter is None:
                counter = self._counters[status] = self.metrics.requests.labels("POST", TEMPLATE, str(status))
            counter.inc()
            elapsed = time.perf_counter() - started
            self._latency.observe(elapsed)
            if self.access is not None:
                self.access.record(
                    method="POST",
                    route=TEMPLATE,
                    target=request_target(scope),
                    status=status,
                    seconds=elapsed,
                    client=scope.get("client"),
                    http_version=scope.get("http_version", "1.1"),
                )
        finally:
            structlog.contextvars.reset_contextvars(**tokens)

    async def _handle(
        self, scope: Scope, receive_: Receive, connection_id: str
    ) -> tuple[int, dict[str, Any]]:
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        client = scope.get("client")
        source_ip = client[0] if client else None
        ingest: Ingest = scope["app"].state.ingest
        declared = declared_length(headers.get("content-length"))
        if declared is None:
            reason = "Content-Length must be a number of bytes"
            return 400, {
                "error": "bad_request",
                "message": reason,
                "errors": [{"field": "content-length", "message": reason}],
            }
        if declared > self.max_bytes:
            return await self._too_large(ingest, connection_id, headers, declared, source_ip)
        chunks: list[bytes] = []
        size = 0
        while True:
            message: Message = await receive_()
            if message["type"] == "http.disconnect":
                return 400, {"error": "bad_request", "message": "client disconnected"}
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                return await self._too_large(ingest, connection_id, headers, size, source_ip)
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        query: dict[str, str] = {}
        if scope.get("query_string"):
            query = dict(parse_qsl(scope["query_string"].decode("latin-1"), keep_blank_values=True))
        # Built from values this function made itself: construct without re-validating them.
        incoming = WebhookRequest.model_construct(
            body=b"".join(chunks), headers=headers, query=query, received_at=datetime.now(UTC)
        )
        return await receive(ingest, connection_id, incoming, source_ip)

    async def _too_large(
        self,
        ingest: Ingest,
        connection_id: str,
        headers: dict[str, str],
        size: int,
        source_ip: str | None,
    ) -> tuple[int, dict[str, Any]]:
        """413, and the refusal is listed with the connection's deliveries (metadata only)."""
        message = f"request body exceeds {self.max_bytes} bytes"
        target = await ingest.targets.get(connection_id)
        if target is not None:
            incoming = WebhookRequest.model_construct(
                body=b"", headers=headers, query={}, received_at=datetime.now(UTC)
            )
            values = delivery_values(
                (target.connection_id, target.tenant_id),
                incoming,
                status=DeliveryStatus.REJECTED,
                source_ip=source_ip,
                rejection=f"413 {message}",
                size=size,
            )
            await ingest.writer.submit(values)
        return 413, {"error": "payload_too_large", "message": message}
