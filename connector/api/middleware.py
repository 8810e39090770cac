"""ASGI middleware: request ids, request-body size limits, refusal of NUL characters, and request
metrics."""

from __future__ import annotations

import json
import re
import time
from typing import Any
from urllib.parse import parse_qsl

import structlog
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from connector.api.errors import validation_body
from connector.infra.access import AccessLog
from connector.infra.metrics import Metrics
from connector.models import new_id

NUL = "\x00"
REQUEST_ID_HEADER = b"x-request-id"
REQUEST_ID = re.compile(rb"^[A-Za-z0-9._:@/+=-]{1,128}$")
"""An `X-Request-ID` a caller (or a proxy) sends is kept when it is this shape; anything else (too
long, spaces, control characters that could forge log lines) is replaced by a generated one."""


def request_id_of(scope: Scope) -> str:
    """The caller's `X-Request-ID` when usable, else a new random one."""
    given = next((v for k, v in scope.get("headers", []) if k == REQUEST_ID_HEADER), b"")
    return given.decode("ascii") if REQUEST_ID.match(given) else new_id()


class RequestIdMiddleware:
    """Every HTTP request gets an id: the caller's `X-Request-ID` if usable, else a new one. It is
    bound to every log line written while the request is handled (uvicorn's access line included)
    and returned in the `X-Request-ID` response header."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = request_id_of(scope)
        scope.setdefault("state", {})["request_id"] = request_id
        header = (REQUEST_ID_HEADER, request_id.encode("ascii"))

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message.get("headers", []) if k.lower() != REQUEST_ID_HEADER]
                message = {**message, "headers": [*headers, header]}
            await send(message)

        before = set(structlog.contextvars.get_contextvars())
        tokens = structlog.contextvars.bind_contextvars(request_id=request_id)
        try:
            await self.app(scope, receive, send_with_id)
        finally:  # what the request bound (its API key, …) ends with it
            added = set(structlog.contextvars.get_contextvars()) - before - {"request_id"}
            structlog.contextvars.unbind_contextvars(*added)
            structlog.contextvars.reset_contextvars(**tokens)


class BodyTooLarge(Exception):
    pass


class BodyLimitMiddleware:
    """Refuses bodies over the limit with 413, by Content-Length up front or while streaming.
    Webhook routes get their own (smaller) limit, and the paths in `path_max_bytes` theirs (file
    uploads)."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        max_bytes: int,
        webhook_max_bytes: int,
        path_max_bytes: dict[str, int] | None = None,
    ) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.webhook_max_bytes = webhook_max_bytes
        self.path_max_bytes = dict(path_max_bytes or {})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope["path"]
        limit = self.webhook_max_bytes if path.startswith("/webhooks/") else self.max_bytes
        limit = self.path_max_bytes.get(path.rstrip("/"), limit)
        for name, value in scope.get("headers", []):
            if name == b"content-length":
                try:
                    if int(value) > limit:
                        await self._reject(send, limit)
                        return
                except ValueError:
                    pass
        received = 0
        exceeded = False
        replaced = False

        async def limited_receive() -> Message:
            nonlocal received, exceeded
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    exceeded = True
                    raise BodyTooLarge
            return message

        async def replacing_send(message: Message) -> None:
            # The app may turn the aborted read into its own error; answer 413 instead.
            nonlocal replaced
            if not exceeded:
                await send(message)
            elif not replaced:
                replaced = True
                await self._reject(send, limit)

        try:
            await self.app(scope, limited_receive, replacing_send)
        except BodyTooLarge:
            if not replaced:
                await self._reject(send, limit)

    @staticmethod
    async def _reject(send: Send, limit: int) -> None:
        body = json.dumps(
            {"error": "payload_too_large", "message": f"request body exceeds {limit} bytes"}
        ).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


def nul_fields(value: Any, path: str = "") -> list[str]:
    """Dotted paths (`credentials.username`, `cost_tiers.0.unit_cost`) of the strings in a parsed
    JSON value that contain a NUL character; a key holding one is reported as its parent."""
    if isinstance(value, str):
        return [path or "body"] if NUL in value else []
    found: list[str] = []
    if isinstance(value, dict):
        for key, item in value.items():
            if NUL in str(key):
                found.append(path or "body")
                continue
            found += nul_fields(item, f"{path}.{key}" if path else str(key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found += nul_fields(item, f"{path}.{index}" if path else str(index))
    return found


def _query_nul_fields(query: str) -> list[str]:
    pairs = parse_qsl(query, keep_blank_values=True, errors="replace")
    return [("query" if NUL in name else name) for name, value in pairs if NUL in name + value]


class NulRefusalMiddleware:
    """Refuses NUL characters in the path, the query and JSON or form bodies with a 422 naming the
    field. PostgreSQL text cannot hold them (the driver fails, which would be a 500), no vendor
    system or PSA field accepts them either, and SQLite must not store what PostgreSQL refuses.
    Webhooks are left to their own route, which stores bodies as bytes."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith("/webhooks/"):
            await self.app(scope, receive, send)
            return
        fields = ["path"] if NUL in scope["path"] else []
        fields += _query_nul_fields(scope.get("query_string", b"").decode("latin-1"))
        content_type = next((v for k, v in scope.get("headers", []) if k == b"content-type"), b"")
        kind = content_type.split(b";")[0].strip().lower()
        if kind not in (b"application/json", b"application/x-www-form-urlencoded") or fields:
            if fields:
                await _refuse(send, fields)
            else:
                await self.app(scope, receive, send)
            return
        chunks = []
        while True:
            message = await receive()
            if message["type"] != "http.request":
                await self.app(scope, _replay(b"", message, receive), send)
                return
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        if kind == b"application/json":
            try:
                fields = nul_fields(json.loads(body))
            except ValueError:
                fields = []  # not JSON: the route answers that itself
        else:
            fields = _query_nul_fields(body.decode("latin-1"))
        if fields:
            await _refuse(send, fields)
            return
        await self.app(scope, _replay(body, None, receive), send)


def _replay(body: bytes, first: Message | None, receive: Receive) -> Receive:
    """A receive that hands the app the already-read body once, then the client's later messages."""
    pending: list[Message] = [first] if first is not None else [{"type": "http.request", "body": body}]

    async def replayed() -> Message:
        if pending:
            return pending.pop()
        return await receive()

    return replayed


async def _refuse(send: Send, fields: list[str]) -> None:
    errors = [{"field": field, "message": "must not contain NUL characters"} for field in fields]
    body = json.dumps(validation_body(errors)).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 422,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})


class MetricsMiddleware:
    """Counts requests and latency by route template (never by raw path, which holds ids), and
    writes the access log (`AccessLog`: failures in full, successes summarised)."""

    def __init__(self, app: ASGIApp, *, metrics: Metrics, access: AccessLog | None = None) -> None:
        self.app = app
        self.metrics = metrics
        self.access = access

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500
        start = time.perf_counter()

        async def recording_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, recording_send)
        finally:
            elapsed = time.perf_counter() - start
            route = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            method = scope["method"]
            self.metrics.requests.labels(method, template, str(status)).inc()
            self.metrics.latency.labels(method, template).observe(elapsed)
            if self.access is not None:
                self.access.record(
                    method=method,
                    route=template,
                    target=request_target(scope),
                    status=status,
                    seconds=elapsed,
                    client=scope.get("client"),
                    http_version=scope.get("http_version", "1.1"),
                )


def request_target(scope: Scope) -> str:
    """The path and query string as the client sent them (for the access log, which redacts)."""
    query: bytes = scope.get("query_string", b"")
    path: str = scope.get("root_path", "") + scope["path"]
    return f"{path}?{query.decode('latin-1')}" if query else path
