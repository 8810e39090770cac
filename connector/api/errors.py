"""JSON error bodies. Validation errors name the field and never echo the submitted input
(FastAPI's default 422 body would return posted passwords). A database that is down or too slow
answers 503 with `Retry-After`; any other database fault 500 — both JSON, and the connection stays
open (an unhandled exception would make the server drop a keep-alive connection)."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import SQLAlchemyError
from starlette.exceptions import HTTPException as StarletteHTTPException

from connector.infra.db import DatabaseUnavailable, is_unavailable
from connector.infra.errors import Conflict, FieldError, NotFound, VendorUnavailable
from connector.infra.logs import get_logger

log = get_logger("connector.api")

RETRY_AFTER_SECONDS = 5
"""What a 503 for an unavailable database asks clients to wait before retrying."""

DATABASE_ERRORS: tuple[type[Exception], ...] = (SQLAlchemyError, DatabaseUnavailable, TimeoutError, OSError)
"""Exception classes that reach the database error handler (it tells unavailable from faulty)."""

_STRIP = {"body", "query", "path", "header"}


def _field(loc: tuple[object, ...]) -> str:
    parts = [str(p) for p in loc]
    if parts and parts[0] in _STRIP:
        parts = parts[1:] if parts[0] == "body" or len(parts) > 1 else parts
    return ".".join(parts) or "body"


def validation_body(errors: list[dict[str, str]]) -> dict[str, object]:
    summary = "; ".join(f"{e['field']}: {e['message']}" for e in errors)
    return {"error": "validation_error", "message": summary, "errors": errors}


def database_error(exc: BaseException, where: str) -> tuple[int, dict[str, Any], dict[str, str]]:
    """Status, JSON body and headers for an error raised while using the database."""
    if is_unavailable(exc):
        log.warning("database unavailable", where=where, error=type(exc).__name__)
        body = {
            "error": "database_unavailable",
            "message": "the database is unavailable or did not answer in time; retry later",
        }
        return 503, body, {"Retry-After": str(RETRY_AFTER_SECONDS)}
    log.error("request failed", where=where, exc_info=exc)
    return 500, {"error": "internal_error", "message": "internal error"}, {}


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def _request_validation(_request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = []
        for err in exc.errors():
            message = str(err.get("msg", "invalid"))
            if err.get("type") == "json_invalid":
                message = "body is not valid JSON"
            errors.append({"field": _field(tuple(err.get("loc", ()))), "message": message})
        return JSONResponse(validation_body(errors), status_code=422)

    @app.exception_handler(FieldError)
    async def _field_error(_request: Request, exc: FieldError) -> JSONResponse:
        return JSONResponse(validation_body(exc.errors), status_code=422)

    @app.exception_handler(NotFound)
    async def _not_found(_request: Request, exc: NotFound) -> JSONResponse:
        return JSONResponse({"error": "not_found", "message": str(exc)}, status_code=404)

    @app.exception_handler(VendorUnavailable)
    async def _vendor_unavailable(_request: Request, exc: VendorUnavailable) -> JSONResponse:
        body: dict[str, Any] = {"error": "psa_unavailable", "message": str(exc)}
        if exc.field is not None:
            body["field"] = exc.field
        return JSONResponse(body, status_code=502)

    @app.exception_handler(Conflict)
    async def _conflict(_request: Request, exc: Conflict) -> JSONResponse:
        return JSONResponse({"error": "conflict", "message": str(exc), **exc.details}, status_code=409)

    async def _database(request: Request, exc: Exception) -> JSONResponse:
        status, body, headers = database_error(exc, request.url.path)
        return JSONResponse(body, status_code=status, headers=headers)

    for error_class in DATABASE_ERRORS:
        app.add_exception_handler(error_class, _database)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        codes = {
            401: "unauthorized",
            403: "forbidden",
            404: "not_found",
            405: "method_not_allowed",
            409: "conflict",
            413: "payload_too_large",
        }
        return JSONResponse(
            {"error": codes.get(exc.status_code, "http_error"), "message": str(exc.detail)},
            status_code=exc.status_code,
            headers=getattr(exc, "headers", None),
        )
