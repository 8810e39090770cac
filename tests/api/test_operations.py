"""Health, readiness, metrics, and request-body limits."""

from __future__ import annotations

from typing import Any

from sqlalchemy import text

from tests.api.world import rmm_body


async def test_healthz_and_readyz(client: Any) -> None:
    assert (await client.get("/healthz")).json() == {"status": "ok"}
    ready = await client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["status"] == "ready"


async def test_readyz_fails_when_schema_is_behind(client: Any, services: Any) -> None:
    async with services.engine.begin() as conn:
        head = (await conn.execute(text("SELECT version_num FROM alembic_version"))).scalar_one()
        await conn.execute(text("UPDATE alembic_version SET version_num = 'old'"))
    try:
        response = await client.get("/readyz")
        assert response.status_code == 503
        assert response.json()["schema"] == ["old"]
    finally:  # the PostgreSQL schema is shared by the session's tests
        async with services.engine.begin() as conn:
            await conn.execute(text("UPDATE alembic_version SET version_num = :head"), {"head": head})


async def test_metrics_count_requests_by_route_template(client: Any, make_key: Any) -> None:
    headers = await make_key("viewer")
    for _ in range(3):
        await client.get("/api/v1/connections/abc", headers=headers)
    body = (await client.get("/metrics")).text
    labels = 'method="GET",route="/api/v1/connections/{connection_id}",status="404"'
    assert f"connector_http_requests_total{{{labels}}} 3.0" in body
    assert "connector_http_request_seconds_bucket" in body
    assert "/api/v1/connections/abc" not in body


async def test_oversized_bodies_get_413(client: Any, make_key: Any, services: Any) -> None:
    headers = await make_key("engineer")
    big = rmm_body() | {"name": "x" * (services.settings.max_body_bytes + 10)}
    response = await client.post("/api/v1/connections", json=big, headers=headers)
    assert response.status_code == 413
    assert response.json()["error"] == "payload_too_large"


async def test_streamed_oversized_body_without_length_gets_413(
    client: Any, make_key: Any, services: Any
) -> None:
    headers = await make_key("engineer")
    limit = services.settings.max_body_bytes

    async def chunks() -> Any:
        for _ in range(limit // 65536 + 2):
            yield b"x" * 65536

    response = await client.post("/api/v1/connections", content=chunks(), headers=headers)
    assert response.status_code == 413


async def test_openapi_docs_are_served(client: Any) -> None:
    assert (await client.get("/docs")).status_code == 200
    paths = (await client.get("/openapi.json")).json()["paths"]
    assert "/api/v1/connections" in paths


async def test_billing_answers_are_described_in_openapi(client: Any) -> None:
    """The preview, the push and the close declare their bodies, so clients can be generated."""
    document = (await client.get("/openapi.json")).json()
    paths, models = document["paths"], document["components"]["schemas"]

    def answer(path: str, method: str) -> dict[str, Any]:
        content: dict[str, Any] = paths[path][method]["responses"]["200"]["content"]
        return content

    preview = answer("/api/v1/billing/preview", "get")
    assert preview["application/json"]["schema"] == {"$ref": "#/components/schemas/PreviewOut"}
    assert "text/csv" in preview
    assert set(models["PreviewOut"]["properties"]) == {
        "period", "closed", "lines", "products", "clients", "total", "cost", "margin", "unmapped_clients"
    }  # fmt: skip
    assert "rmm_clients" in models["PreviewLineOut"]["properties"]
    push = answer("/api/v1/billing/push", "post")
    assert push["application/json"]["schema"] == {"$ref": "#/components/schemas/PushOut"}
    assert "409" in paths["/api/v1/billing/push"]["post"]["responses"]
    closed = answer("/api/v1/billing/periods/{period}/close", "post")
    assert closed["application/json"]["schema"] == {"$ref": "#/components/schemas/ClosedPeriodOut"}
