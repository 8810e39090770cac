"""The OpenAPI document tells the truth: it validates (openapi-spec-validator, every `$ref`
resolving), declares the bearer scheme on exactly the routes that need a key, describes every answer
(error bodies as the handlers really write them — checked against real answers), carries a valid
example for every request body, and the API refuses query parameters it does not declare."""

from __future__ import annotations

from typing import Any

import jsonschema
import pytest
from openapi_spec_validator import validate

from connector.app import create_app
from connector.settings import Settings
from tests.api.world import build_world

METHODS = {"get", "put", "post", "delete", "patch"}


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    app = create_app(Settings(database_url="sqlite+aiosqlite:///:memory:"), migrate=False)
    return app.openapi()


def _operations(document: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (method, path, operation)
        for path, operations in document["paths"].items()
        for method, operation in operations.items()
        if method in METHODS
    ]


def _refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        return (
            [node["$ref"]]
            if isinstance(node.get("$ref"), str)
            else [r for v in node.values() for r in _refs(v)]
        )
    if isinstance(node, list):
        return [r for item in node for r in _refs(item)]
    return []


def _resolve(document: dict[str, Any], ref: str) -> Any:
    assert ref.startswith("#/"), ref
    node: Any = document
    for part in ref[2:].split("/"):
        node = node[part]
    return node


def _schema_validator(document: dict[str, Any], schema: dict[str, Any]) -> jsonschema.Draft202012Validator:
    """A validator for `schema` whose `#/components/...` references resolve in the document."""
    return jsonschema.Draft202012Validator({**schema, "components": document["components"]})


def test_document_validates_and_every_ref_resolves(document: dict[str, Any]) -> None:
    validate(document)  # raises on any structural error or unresolvable reference
    refs = set(_refs(document))
    assert refs, "the document uses components"
    for ref in refs:
        assert ref.startswith("#/components/schemas/"), ref
        assert _resolve(document, ref), ref
    assert "HTTPValidationError" not in document["components"]["schemas"]  # not what 422 answers


def test_bearer_scheme_on_every_api_route_and_nowhere_else(document: dict[str, Any]) -> None:
    schemes = document["components"]["securitySchemes"]
    assert schemes == {"ApiKey": schemes["ApiKey"]}
    assert schemes["ApiKey"]["type"] == "http"
    assert schemes["ApiKey"]["scheme"] == "bearer"
    for method, path, operation in _operations(document):
        expected = [{"ApiKey": []}] if path.startswith("/api/v1/") else None
        assert operation.get("security") == expected, (method, path)


def test_every_answer_has_a_body_schema(document: dict[str, Any]) -> None:
    for method, path, operation in _operations(document):
        responses = operation["responses"]
        successes = [status for status in responses if status.startswith("2")]
        assert successes, (method, path)
        for status, answer in responses.items():
            if status == "204":
                assert "content" not in answer
                continue
            content = answer.get("content")
            assert content, (method, path, status)
            for media, body in content.items():
                assert body.get("schema") not in (None, {}), (method, path, status, media)
            if status.startswith(("4", "5")) and path != "/readyz":
                assert content["application/json"]["schema"] == {"$ref": "#/components/schemas/ErrorOut"}
        if operation.get("security"):
            assert {"401", "403", "503"} <= set(responses), (method, path)


def test_every_request_body_has_an_example_that_validates(document: dict[str, Any]) -> None:
    bodies = [(m, p, op["requestBody"]) for m, p, op in _operations(document) if "requestBody" in op]
    assert len(bodies) >= 12
    for method, path, body in bodies:
        if "application/json" not in body["content"]:  # a file upload: CSV text or a form's file
            assert set(body["content"]) <= {"text/csv", "multipart/form-data"}, (method, path)
            assert body["content"].get("text/csv", {}).get("example"), (method, path)
            continue
        media = body["content"]["application/json"]
        schema = media["schema"]
        target = _resolve(document, schema["$ref"]) if "$ref" in schema else schema
        examples = [*target.get("examples", []), *([media["example"]] if "example" in media else [])]
        assert examples, (method, path)
        validator = _schema_validator(document, schema)
        for example in examples:
            errors = [e.message for e in validator.iter_errors(example)]
            assert not errors, (method, path, example, errors)


async def test_real_answers_match_their_documented_schemas(
    client: Any, make_key: Any, document: dict[str, Any]
) -> None:
    headers = await make_key("engineer")
    world = await build_world(client, headers)
    viewer = await make_key("viewer")
    cases: list[tuple[str, str, dict[str, Any], int]] = [
        ("post", "/api/v1/connections", {"json": {"kind": "nope"}, "headers": headers}, 422),
        ("get", "/api/v1/connections/{connection_id}", {"headers": headers, "rmm": False}, 404),
        ("get", "/api/v1/connections", {}, 401),
        ("post", "/api/v1/sync-runs", {"json": {}, "headers": viewer}, 403),
        ("get", "/api/v1/problems", {"params": {"stat": "open"}, "headers": headers}, 422),
        ("get", "/api/v1/billing/preview", {"params": {"period": "2026-01"}, "headers": headers}, 200),
        ("post", "/webhooks/{connection_id}", {"content": b"{}"}, 401),
        ("post", "/webhooks/{connection_id}", {"content": b"{}", "rmm": False}, 404),
        ("get", "/readyz", {}, 200),
    ]
    for method, template, kwargs, status in cases:
        url = template.replace("{connection_id}", world.rmm["id"] if kwargs.pop("rmm", True) else "nope")
        response = await client.request(method.upper(), url, **kwargs)
        assert response.status_code == status, (method, url, response.text)
        answer = document["paths"][template][method]["responses"][str(status)]
        schema = answer["content"]["application/json"]["schema"]
        errors = [e.message for e in _schema_validator(document, schema).iter_errors(response.json())]
        assert not errors, (method, url, status, response.json(), errors)


async def test_unknown_query_parameters_are_refused(client: Any, make_key: Any) -> None:
    headers = await make_key("viewer")
    for url in (
        "/api/v1/problems?stat=open",
        "/api/v1/endpoints?client=c-1",
        "/api/v1/sync-runs?connection=abc",
        "/api/v1/deliveries?status=dead&limt=5",
        "/api/v1/ticket-rules?psa_connection_id=x",
    ):
        response = await client.get(url, headers=headers)
        assert response.status_code == 422, (url, response.text)
        body = response.json()
        assert body["error"] == "validation_error"
        fields = [error["field"] for error in body["errors"]]
        assert len(fields) == 1 and fields[0] in url and fields[0] not in ("status", "limit"), fields
        assert "allowed:" in body["errors"][0]["message"]
    for url in (
        "/api/v1/problems?state=open&limit=5",
        "/api/v1/deliveries?status=dead",
        "/api/v1/ticket-rules",
    ):
        assert (await client.get(url, headers=headers)).status_code == 200, url
