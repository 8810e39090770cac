"""Every URL a connection is configured with — its base URL and the URL- or host-valued options of
its adapter — is held to the outbound address policy at configuration time (422 naming the field),
and "test connection" never reports ok for a vendor that only redirects, nor answers 500 for a
stored URL the HTTP client cannot parse."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from sqlalchemy import update

from connector.models import Connection
from tests.api.world import psa_body

MANAGE = {
    "name": "Manage",
    "kind": "connectwise_manage",
    "base_url": "https://na.myconnectwise.net",
    "credentials": {"company_id": "acme", "public_key": "pub", "private_key": "priv", "client_id": "cid"},
}
HALO = {
    "name": "Halo",
    "kind": "halopsa",
    "base_url": "https://acme.halopsa.com",
    "credentials": {"client_id": "cid", "client_secret": "secret"},
}
AUTOTASK = {
    "name": "Autotask",
    "kind": "autotask",
    "credentials": {"username": "api@acme.example", "secret": "s", "integration_code": "c"},
}


@pytest.fixture
async def engineer(make_key: Any) -> dict[str, str]:
    return dict(await make_key("engineer"))


def _error(response: httpx.Response) -> dict[str, str]:
    assert response.status_code == 422, f"{response.status_code}: {response.text}"
    errors: list[dict[str, str]] = response.json()["errors"]
    assert len(errors) == 1, errors
    return errors[0]


BAD_OPTIONS = [
    (MANAGE, "site", "169.254.169.254", "link-local"),
    (MANAGE, "site", "metadata.google.internal.", "metadata"),
    (MANAGE, "site", "10.0.0.5", "private"),
    (MANAGE, "site", "0177.0.0.1", "dotted-quad"),  # tests allow loopback itself
    (MANAGE, "site", "２１３０７０６４３３", "dotted-quad"),
    (HALO, "auth_url", "http://login.halopsa.example/auth", "https"),
    (HALO, "auth_url", "https://192.168.1.1/auth", "private"),
    (AUTOTASK, "zone_url", "http://webservices14.autotask.net/ATServicesRest/", "https"),
    (AUTOTASK, "zone_url", "https://169.254.169.254/latest/", "link-local"),
    (AUTOTASK, "web_url", "https://[fd00::1]/", "private"),
]


@pytest.mark.parametrize(("body", "option", "value", "reason"), BAD_OPTIONS)
async def test_url_options_are_under_the_address_policy(
    client: Any, engineer: dict[str, str], body: dict[str, Any], option: str, value: str, reason: str
) -> None:
    created = await client.post(
        "/api/v1/connections", json=body | {"options": {option: value}}, headers=engineer
    )
    error = _error(created)
    assert error["field"] == f"options.{option}" and reason in error["message"], error
    assert value not in created.text

    good = (await client.post("/api/v1/connections", json=body, headers=engineer)).json()
    patched = await client.patch(
        f"/api/v1/connections/{good['id']}", json={"options": {option: value}}, headers=engineer
    )
    assert _error(patched)["field"] == f"options.{option}"


async def test_url_options_are_stored_normalized(client: Any, engineer: dict[str, str]) -> None:
    options = {"site": "API-NA.MyConnectWise.net."}
    manage = await client.post("/api/v1/connections", json=MANAGE | {"options": options}, headers=engineer)
    assert manage.status_code == 201, manage.text
    assert manage.json()["options"]["site"] == "api-na.myconnectwise.net"
    zone = {"zone_url": "https://WebServices14.Autotask.net./ATServicesRest/"}
    autotask = await client.post("/api/v1/connections", json=AUTOTASK | {"options": zone}, headers=engineer)
    assert autotask.status_code == 201, autotask.text
    assert autotask.json()["options"]["zone_url"] == "https://webservices14.autotask.net/ATServicesRest/"


@pytest.mark.parametrize(
    ("host", "reason"),
    [  # the tests' settings allow loopback: these are refused for their form
        ("2130706433", "dotted-quad"),
        ("0x7f.1", "dotted-quad"),
        ("127.1", "dotted-quad"),
        ("0177.0.0.1", "dotted-quad"),
        ("１２７.０.０.１", "dotted-quad"),
        ("1572395042", "dotted-quad"),
        ("metadata.google.internal.", "metadata"),
    ],
)
async def test_numeric_and_dotted_base_urls_are_refused(
    client: Any, engineer: dict[str, str], host: str, reason: str
) -> None:
    response = await client.post(
        "/api/v1/connections", json=MANAGE | {"base_url": f"https://{host}"}, headers=engineer
    )
    error = _error(response)
    assert error["field"] == "base_url" and reason in error["message"], error


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
async def test_a_vendor_answering_only_redirects_is_not_ok(
    client: Any, engineer: dict[str, str], vendors: Any, status: int
) -> None:
    def login_redirect(request: httpx.Request) -> httpx.Response:
        return httpx.Response(status, headers={"location": "https://psa.example.com/login?session=s3cr3t"})

    vendors.add("psa.example.com", login_redirect)
    created = (await client.post("/api/v1/connections", json=psa_body(), headers=engineer)).json()
    result = (await client.post(f"/api/v1/connections/{created['id']}/test", headers=engineer)).json()
    assert result["ok"] is False
    assert result["error_kind"] == "configuration"
    assert "redirect to https://psa.example.com/login" in result["message"]
    assert "s3cr3t" not in result["message"]


@pytest.mark.parametrize("stored", ["https://0177.0.0.1", "https://１２７.０.０.１"])
async def test_a_stored_url_the_client_cannot_parse_is_a_failed_test_not_a_500(
    client: Any, engineer: dict[str, str], services: Any, stored: str
) -> None:
    """Connections saved before hosts were normalized at configuration time."""
    created = (await client.post("/api/v1/connections", json=MANAGE, headers=engineer)).json()
    async with services.sessions() as session, session.begin():
        await session.execute(
            update(Connection).where(Connection.id == created["id"]).values(base_url=stored)
        )
    response = await client.post(f"/api/v1/connections/{created['id']}/test", headers=engineer)
    assert response.status_code == 200, response.text
    assert response.json()["ok"] is False
    assert response.json()["error_kind"] == "configuration"
