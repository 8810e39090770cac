"""The OpenAPI document as the API really behaves: every error status a route can answer with the
error body the handlers in `connector.api.errors` really write (`ErrorOut`, not FastAPI's
`HTTPValidationError`), JSON Schema `$defs` nested in hand-written request schemas moved to
`components/schemas` (so every `$ref` resolves), and `/docs` served with the Swagger UI assets of the
installed `fastapi-offline` package instead of a CDN."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from connector.api.schemas import ErrorOut

ERROR_REF = {"$ref": "#/components/schemas/ErrorOut"}
FASTAPI_ERRORS = ("HTTPValidationError", "ValidationError")
METHODS = {"get", "put", "post", "delete", "patch"}

ANSWERS: dict[str, str] = {
    "400": "the body cannot be read; `errors` names the problem",
    "401": "missing or invalid API key (`WWW-Authenticate: Bearer`)",
    "403": "the API key's role does not allow this",
    "404": "no such record for this tenant",
    "413": "the request body is over the size limit",
    "422": "invalid input; `errors` names each offending field (submitted values are never echoed)",
    "503": "the database is unavailable or did not answer in time (`Retry-After` says when to retry)",
}


def _error(status: str) -> dict[str, Any]:
    answer: dict[str, Any] = {
        "description": ANSWERS[status],
        "content": {"application/json": {"schema": ERROR_REF}},
    }
    if status == "503":
        answer["headers"] = {"Retry-After": {"schema": {"type": "integer"}, "description": "seconds"}}
    return answer


def _hoist_defs(node: Any, found: dict[str, Any]) -> Any:
    """Moves every nested `$defs` into `found` and points its `$ref`s at `components/schemas`."""
    if isinstance(node, dict):
        for name, schema in node.pop("$defs", {}).items():
            found[name] = _hoist_defs(schema, found)
        return {
            key: (
                value.replace("#/$defs/", "#/components/schemas/")
                if key == "$ref" and isinstance(value, str)
                else _hoist_defs(value, found)
            )
            for key, value in node.items()
        }
    if isinstance(node, list):
        return [_hoist_defs(item, found) for item in node]
    return node


def describe(document: dict[str, Any]) -> dict[str, Any]:
    """Completes FastAPI's document (see the module docstring); returns it."""
    nested: dict[str, Any] = {}
    document["paths"] = _hoist_defs(document["paths"], nested)
    components = document.setdefault("components", {})
    schemas: dict[str, Any] = components.setdefault("schemas", {})
    for name, schema in nested.items():
        schemas.setdefault(name, schema)
    error_schema = ErrorOut.model_json_schema(ref_template="#/components/schemas/{model}")
    for name, schema in error_schema.pop("$defs", {}).items():
        schemas.setdefault(name, schema)
    schemas["ErrorOut"] = error_schema
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            if method not in METHODS:
                continue
            responses: dict[str, Any] = operation.setdefault("responses", {})
            statuses = {"422"} if "422" in responses else set()
            if "{" in path:
                statuses.add("404")
            if operation.get("security"):
                statuses |= {"401", "403", "503"}
            if "requestBody" in operation:
                statuses.add("413")
            for status in sorted(statuses):
                if status == "422" or status not in responses:
                    responses[status] = _error(status)
                else:  # a route's own description stays; the body is the real one
                    responses[status].setdefault("content", {})["application/json"] = {"schema": ERROR_REF}
            for status, answer in responses.items():
                if status.startswith(("4", "5")) and "content" not in answer:
                    answer["content"] = {"application/json": {"schema": ERROR_REF}}
    for name in FASTAPI_ERRORS:
        schemas.pop(name, None)
    return document


def install_openapi(app: FastAPI) -> None:
    """Replaces `app.openapi` with the completed document (built once, on first use)."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = describe(
                get_openapi(
                    title=app.title,
                    version=app.version,
                    description=app.description,
                    routes=app.routes,
                    tags=app.openapi_tags,
                )
            )
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
