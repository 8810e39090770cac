"""Connections: validation errors name the field, credentials are encrypted at rest and never
returned, webhook secrets are shown once, and `/test` reports what is wrong."""

from __future__ import annotations

import logging
from typing import Any

import httpx
import pytest
from cryptography.fernet import Fernet
from sqlalchemy import select

from connector.infra.security.crypto import CredentialCipher
from connector.models import Connection
from tests.api.world import PSA_CREDENTIALS, RMM_CREDENTIALS, psa_body, rmm_body


@pytest.fixture
async def engineer(make_key: Any) -> dict[str, str]:
    return dict(await make_key("engineer"))


def _errors(response: httpx.Response) -> list[dict[str, str]]:
    assert response.status_code == 422, response.text
    errors: list[dict[str, str]] = response.json()["errors"]
    return errors


async def test_create_returns_webhook_secret_once_and_never_credentials(
    client: Any, engineer: dict[str, str]
) -> None:
    created = await client.post("/api/v1/connections", json=rmm_body(), headers=engineer)
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["role"] == "rmm"
    assert body["credentials_set"] == {"username": True, "api_secret": True}
    assert body["webhook_url"] == f"https://connector.example.test/webhooks/{body['id']}"
    assert len(body["webhook_secret"]) >= 32
    assert RMM_CREDENTIALS["api_secret"] not in created.text

    for response in (
        await client.get(f"/api/v1/connections/{body['id']}", headers=engineer),
        await client.get("/api/v1/connections", headers=engineer),
    ):
        assert RMM_CREDENTIALS["api_secret"] not in response.text
        assert body["webhook_secret"] not in response.text
        assert "credentials" not in response.text.replace("credentials_set", "")

    psa = (await client.post("/api/v1/connections", json=psa_body(), headers=engineer)).json()
    assert psa["role"] == "psa"
    assert psa["webhook_url"] is None and psa["webhook_secret"] is None


async def test_credentials_are_encrypted_at_rest(
    client: Any, engineer: dict[str, str], services: Any
) -> None:
    created = (await client.post("/api/v1/connections", json=rmm_body(), headers=engineer)).json()
    async with services.sessions() as session:
        row = await session.scalar(select(Connection).where(Connection.id == created["id"]))
    stored = bytes(row.credentials_encrypted) + bytes(row.webhook_secret_encrypted)
    for secret in (RMM_CREDENTIALS["api_secret"], RMM_CREDENTIALS["username"], created["webhook_secret"]):
        assert secret.encode() not in stored
    assert services.cipher.decrypt_json(row.credentials_encrypted) == RMM_CREDENTIALS
    other = CredentialCipher([Fernet.generate_key().decode()])
    with pytest.raises(Exception, match="cannot be decrypted"):
        other.decrypt_json(row.credentials_encrypted)


async def test_secrets_never_reach_the_logs(
    client: Any, engineer: dict[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    created = (await client.post("/api/v1/connections", json=rmm_body(), headers=engineer)).json()
    await client.post(f"/api/v1/connections/{created['id']}/test", headers=engineer)
    bad = rmm_body("bad")
    bad["credentials"]["unexpected"] = "leaky-value-123"
    await client.post("/api/v1/connections", json=bad, headers=engineer)
    text = caplog.text
    for secret in (RMM_CREDENTIALS["api_secret"], created["webhook_secret"], "leaky-value-123"):
        assert secret not in text


@pytest.mark.parametrize(
    ("change", "field", "message_part"),
    [
        ({"kind": "no_such_kind"}, "kind", "unknown adapter kind; installed:"),
        ({"credentials": {"username": "u"}}, "credentials.api_secret", "Field required"),
        ({"credentials": {**RMM_CREDENTIALS, "extra": "x"}}, "credentials.extra", "Extra inputs"),
        ({"options": {"page_size": 5000}}, "options.page_size", "less than or equal to 1000"),
        ({"base_url": "http://rmm.example.com"}, "base_url", "must use https"),
        ({"base_url": "https://10.0.0.5"}, "base_url", "private"),
        ({"base_url": "https://169.254.169.254/latest"}, "base_url", "link-local"),
        ({"base_url": "https://metadata.google.internal"}, "base_url", "metadata"),
        ({"base_url": "ftp://rmm.example.com"}, "base_url", "https://"),
        ({"base_url": "https://user:pw@rmm.example.com"}, "base_url", "credentials"),
        ({"name": ""}, "name", "at least 1 character"),
        ({"surprise": 1}, "surprise", "Extra inputs"),
    ],
)
async def test_validation_errors_name_the_field(
    client: Any, engineer: dict[str, str], change: dict[str, Any], field: str, message_part: str
) -> None:
    body = rmm_body() | change
    errors = _errors(await client.post("/api/v1/connections", json=body, headers=engineer))
    assert any(e["field"] == field and message_part in e["message"] for e in errors), errors


async def test_validation_error_bodies_do_not_echo_input(client: Any, engineer: dict[str, str]) -> None:
    body = rmm_body() | {"enabled": {"password": "echo-me-not-42"}}
    response = await client.post("/api/v1/connections", json=body, headers=engineer)
    assert response.status_code == 422
    assert "echo-me-not-42" not in response.text
    assert response.json()["errors"][0]["field"] == "enabled"


async def test_malformed_json_is_a_clear_error(client: Any, engineer: dict[str, str]) -> None:
    response = await client.post(
        "/api/v1/connections", content=b"{not json", headers=engineer | {"content-type": "application/json"}
    )
    assert response.status_code == 422
    assert "not valid JSON" in response.json()["message"]


async def test_duplicate_name_is_a_422(client: Any, engineer: dict[str, str]) -> None:
    assert (await client.post("/api/v1/connections", json=rmm_body(), headers=engineer)).status_code == 201
    errors = _errors(await client.post("/api/v1/connections", json=rmm_body(), headers=engineer))
    assert errors == [{"field": "name", "message": "a connection with this name already exists"}]


async def test_patch_merges_credentials_and_revalidates(
    client: Any, engineer: dict[str, str], services: Any
) -> None:
    created = (await client.post("/api/v1/connections", json=psa_body(), headers=engineer)).json()
    path = f"/api/v1/connections/{created['id']}"
    patched = await client.patch(
        path, json={"credentials": {"api_secret": "rotated-secret"}}, headers=engineer
    )
    assert patched.status_code == 200, patched.text
    assert "rotated-secret" not in patched.text
    async with services.sessions() as session:
        row = await session.scalar(select(Connection).where(Connection.id == created["id"]))
    assert services.cipher.decrypt_json(row.credentials_encrypted) == {
        "username": PSA_CREDENTIALS["username"],
        "api_secret": "rotated-secret",
    }
    errors = _errors(await client.patch(path, json={"credentials": {"api_secret": ""}}, headers=engineer))
    assert errors[0]["field"] == "credentials.api_secret"
    errors = _errors(await client.patch(path, json={"base_url": "https://192.168.1.10"}, headers=engineer))
    assert errors[0]["field"] == "base_url"
    errors = _errors(await client.patch(path, json={"kind": "dummy_rmm"}, headers=engineer))
    assert errors[0]["field"] == "kind"


async def test_webhook_secret_rotation(client: Any, engineer: dict[str, str]) -> None:
    rmm = (await client.post("/api/v1/connections", json=rmm_body(), headers=engineer)).json()
    rotated = await client.post(f"/api/v1/connections/{rmm['id']}/webhook-secret", headers=engineer)
    assert rotated.status_code == 200
    assert rotated.json()["webhook_secret"] != rmm["webhook_secret"]
    psa = (await client.post("/api/v1/connections", json=psa_body(), headers=engineer)).json()
    assert (
        await client.post(f"/api/v1/connections/{psa['id']}/webhook-secret", headers=engineer)
    ).status_code == 422


@pytest.mark.parametrize(
    ("status", "ok", "kind"),
    [
        (200, True, None),
        (401, False, "credentials"),
        (403, False, "credentials"),
        (503, False, "unreachable"),
        (400, False, "vendor"),
    ],
)
async def test_connection_test_reports_what_is_wrong(
    client: Any, engineer: dict[str, str], vendors: Any, status: int, ok: bool, kind: str | None
) -> None:
    seen: list[httpx.Request] = []

    def vendor(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(status, json={"message": "vendor says no"})

    vendors.add("psa.example.com", vendor)
    created = (await client.post("/api/v1/connections", json=psa_body(), headers=engineer)).json()
    result = (await client.post(f"/api/v1/connections/{created['id']}/test", headers=engineer)).json()
    assert result["ok"] is ok
    assert result["error_kind"] == kind
    assert seen[0].headers["authorization"] == f"Bearer {PSA_CREDENTIALS['api_secret']}"
    assert seen[0].url.path == "/ping"


async def test_adapters_route_exposes_credential_json_schema(client: Any, engineer: dict[str, str]) -> None:
    adapters = {a["kind"]: a for a in (await client.get("/api/v1/adapters", headers=engineer)).json()}
    dummy = adapters["dummy_rmm"]
    assert dummy["role"] == "rmm"
    assert set(dummy["credentials_schema"]["properties"]) == {"username", "api_secret"}
    assert dummy["credentials_schema"]["properties"]["api_secret"]["format"] == "password"
    assert dummy["credentials_schema"]["required"] == ["username", "api_secret"]
    assert dummy["options_schema"]["properties"]["page_size"]["maximum"] == 1000
