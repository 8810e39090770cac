"""Dashboard sign-in. The browser holds the API key only sealed with the service cipher (Fernet) in
an HttpOnly, SameSite=Strict cookie, so the key is checked against the database on every request
(a revoked key ends the session at once) and never appears in a page, a URL or a log. A random
per-session CSRF token sealed in the same cookie must come back in every form POST."""

from __future__ import annotations

import hmac
import json
import secrets
import time
from dataclasses import dataclass
from typing import Annotated
from urllib.parse import parse_qsl

from fastapi import Depends, Request
from fastapi.responses import Response

from connector.api.deps import Principal, ServicesDep
from connector.infra.context import Services
from connector.infra.security.apikeys import ApiRole, authenticate
from connector.infra.security.crypto import SecretKeyError

SESSION_COOKIE = "connector_session"
LOGIN_CSRF_COOKIE = "connector_login_csrf"
SESSION_MAX_AGE = 12 * 3600
"""Seconds a sign-in lasts; the sealed cookie carries its issue time, so it cannot be extended."""
MAX_FORM_BYTES = 16_384


class SignInRequired(Exception):
    """Raised by page dependencies; the handler redirects to the sign-in form."""

    def __init__(self, next_path: str) -> None:
        super().__init__("sign-in required")
        self.next_path = next_path


class WebError(Exception):
    """An error shown to the browser as an HTML page with this status."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True)
class WebUser:
    principal: Principal
    csrf: str

    @property
    def role(self) -> ApiRole:
        return self.principal.role

    @property
    def is_engineer(self) -> bool:
        return self.principal.role.allows(ApiRole.ENGINEER)


def seal(services: Services, api_key: str) -> tuple[str, str]:
    """The session cookie value for a verified key, and the new session's CSRF token."""
    csrf = secrets.token_urlsafe(32)
    token = services.cipher.encrypt_json({"key": api_key, "csrf": csrf, "iat": int(time.time())})
    return token.decode("ascii"), csrf


def unseal(services: Services, value: str) -> tuple[str, str] | None:
    """(key, csrf) from a cookie value, or None when it is forged, garbled or expired."""
    try:
        data = services.cipher.decrypt_json(value.encode("ascii"))
    except (SecretKeyError, UnicodeError, ValueError, json.JSONDecodeError):
        return None
    key, csrf, issued = data.get("key"), data.get("csrf"), data.get("iat")
    if not isinstance(key, str) or not isinstance(csrf, str) or not isinstance(issued, int):
        return None
    if not 0 <= time.time() - issued <= SESSION_MAX_AGE:
        return None
    return key, csrf


async def current_user(request: Request, services: Services) -> WebUser | None:
    value = request.cookies.get(SESSION_COOKIE)
    sealed = unseal(services, value) if value else None
    if sealed is None:
        return None
    key, csrf = sealed
    async with services.sessions() as session, session.begin():
        row = await authenticate(session, key)
    if row is None:
        return None
    return WebUser(Principal(tenant_id=row.tenant_id, api_key_id=row.id, role=ApiRole(row.role)), csrf)


def _next_path(request: Request) -> str:
    path = request.url.path
    return f"{path}?{request.url.query}" if request.url.query else path


async def require_user(request: Request, services: ServicesDep) -> WebUser:
    user = await current_user(request, services)
    if user is None:
        raise SignInRequired(_next_path(request) if request.method == "GET" else "/")
    return user


User = Annotated[WebUser, Depends(require_user)]


def require_engineer(user: WebUser) -> None:
    if not user.is_engineer:
        raise WebError(403, "This needs an API key with the engineer role.")


def safe_next(value: str | None) -> str:
    """Only same-site paths, so the sign-in form cannot be turned into an open redirect."""
    if not value or not value.startswith("/") or value.startswith("//") or "\\" in value:
        return "/"
    return value


def _secure(request: Request) -> bool:
    return request.url.scheme == "https"


def set_session(response: Response, request: Request, value: str) -> None:
    response.set_cookie(
        SESSION_COOKIE, value, httponly=True, samesite="strict", secure=_secure(request), path="/"
    )
    response.delete_cookie(LOGIN_CSRF_COOKIE, path="/", secure=_secure(request), samesite="strict")


def clear_session(response: Response, request: Request) -> None:
    response.delete_cookie(
        SESSION_COOKIE, path="/", secure=_secure(request), httponly=True, samesite="strict"
    )


def set_login_csrf(response: Response, request: Request, token: str) -> None:
    response.set_cookie(
        LOGIN_CSRF_COOKIE,
        token,
        max_age=3600,
        httponly=True,
        samesite="strict",
        secure=_secure(request),
        path="/",
    )


async def read_form(
    request: Request, *, max_fields: int = 50, max_bytes: int = MAX_FORM_BYTES
) -> dict[str, str]:
    """A small urlencoded form body (the dashboard's forms have no files), first value per name.
    A form listing many rows (a bulk decision) may allow more fields and bytes."""
    body = await request.body()
    if not body:
        return {}
    content_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if content_type != "application/x-www-form-urlencoded":
        raise WebError(415, "Forms must be posted as application/x-www-form-urlencoded.")
    if len(body) > max_bytes:
        raise WebError(413, "The form is too large.")
    try:
        pairs = parse_qsl(body.decode("utf-8"), keep_blank_values=True, max_num_fields=max_fields)
    except (UnicodeDecodeError, ValueError):
        raise WebError(400, "The form could not be read.") from None
    form: dict[str, str] = {}
    for name, value in pairs:
        form.setdefault(name, value)
    return form


def check_csrf(form: dict[str, str], expected: str | None) -> None:
    token = form.get("csrf_token", "")
    if not expected or not token or not hmac.compare_digest(token.encode(), expected.encode()):
        raise WebError(
            403, "The form expired or did not come from this dashboard; reload the page and retry."
        )
