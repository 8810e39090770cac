"""`POST /webhooks/{connection_id}`: authenticated by the connection's webhook secret, not an API key."""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from adapters.base import WebhookRequest
from adapters.errors import WebhookParseError
from connector.api.deps import ServicesDep
from connector.webhooks import delivery_values, parse_delivery, verify

router = APIRouter(tags=["webhooks"])


@router.post("/webhooks/{connection_id}", status_code=202)
async def receive_webhook(connection_id: str, request: Request, services: ServicesDep) -> JSONResponse:
    target = await services.webhook_targets.get(connection_id)
    if target is None:
        return JSONResponse(
            {"error": "not_found", "message": "no RMM connection with this id"}, status_code=404
        )
    incoming = WebhookRequest(
        body=await request.body(),
        headers={k.lower(): v for k, v in request.headers.items()},
        query=dict(request.query_params),
        received_at=datetime.now(UTC),
    )
    source_ip = request.client.host if request.client else None
    owner = (target.connection_id, target.tenant_id)
    ok, reason = verify(target, incoming)
    if not ok:
        await services.delivery_writer.submit(
            delivery_values(
                owner, incoming, status="rejected", source_ip=source_ip, rejection=f"401 {reason}"
            )
        )
        return JSONResponse({"error": "unauthorized", "message": reason}, status_code=401)
    try:
        events = parse_delivery(target.adapter, incoming)
    except WebhookParseError as exc:
        message = str(exc)
        await services.delivery_writer.submit(
            delivery_values(
                owner, incoming, status="rejected", source_ip=source_ip, rejection=f"400 {message}"
            )
        )
        return JSONResponse(
            {
                "error": "bad_request",
                "message": message,
                "errors": [{"field": exc.field or "body", "message": exc.message}],
            },
            status_code=400,
        )
    delivery_id, duplicate = await services.delivery_writer.submit(
        delivery_values(owner, incoming, status="queued", source_ip=source_ip, events=events)
    )
    return JSONResponse({"delivery_id": delivery_id, "duplicate": duplicate}, status_code=202)
