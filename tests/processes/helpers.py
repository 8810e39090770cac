"""What the real-process tests share: connection bodies for installed adapter kinds (nothing is
called on them) and signing in to the dashboard the way a browser does."""

from __future__ import annotations

import re
from typing import Any

import httpx

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def rmm_connection(name: str) -> dict[str, Any]:
    return {
        "name": name,
        "kind": "nsight",
        "base_url": "http://127.0.0.1:9",
        "credentials": {"api_key": "nsight-key-0123456789"},
        "options": {},
    }


def psa_connection(name: str = "Manage") -> dict[str, Any]:
    return {
        "name": name,
        "kind": "connectwise_manage",
        "base_url": "http://127.0.0.1:9",
        "credentials": {"company_id": "msp", "public_key": "pub", "private_key": "priv", "client_id": "cid"},
        "options": {},
    }


def sign_in(browser: httpx.Client, headers: dict[str, str]) -> str:
    """Signs the browser in with the key in `headers`; returns the session's form CSRF token."""
    login = CSRF.search(browser.get("/login").text)
    assert login is not None
    key = headers["Authorization"].removeprefix("Bearer ")
    signed_in = browser.post("/login", data={"csrf_token": login.group(1), "api_key": key, "next": "/"})
    assert signed_in.status_code == 303, signed_in.text
    page = CSRF.search(browser.get("/activity").text)
    assert page is not None
    return page.group(1)


def mapping_form(csrf: str, rmm: str, psa: str, n: int) -> dict[str, str]:
    return {
        "csrf_token": csrf,
        "rmm_connection_id": rmm,
        "rmm_client_id": f"client-{n}",
        "psa_connection_id": psa,
        "psa_company_id": f"company-{n}",
    }


def webhook_receiver(base_url: str, headers: dict[str, str]) -> tuple[str, str]:
    """A ConnectWise Automate connection created through the API: (its id, its webhook secret)."""
    created = httpx.post(
        f"{base_url}/api/v1/connections",
        json={
            "name": "Automate",
            "kind": "connectwise_automate",
            "base_url": "http://127.0.0.1:9",
            "credentials": {"username": "svc", "password": "pw", "client_id": "cid"},
        },
        headers=headers,
        timeout=30,
    )
    assert created.status_code == 201, created.text
    return created.json()["id"], created.json()["webhook_secret"]
