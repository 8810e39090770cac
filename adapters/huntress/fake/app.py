"""The HTTP face of the fake Huntress: Basic auth, the paged lists (`limit`/`page_token`,
`sort_field`/`sort_direction`, the filters the document declares), the organization detail with
its actual usages, and fault hooks."""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import hmac
import json
import math
from collections.abc import Callable, Sequence
from typing import Any, TypeVar
from urllib.parse import urlencode

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from adapters.huntress.fake.store import (
    ACCOUNT_ID,
    DEFAULT_PAGE_SIZE,
    MAX_PAGE_SIZE,
    RATE_WINDOW,
    FakeAgent,
    FakeIncidentReport,
    FakeOrganization,
    Fault,
    HuntressStore,
    Row,
)
from adapters.testing.faults import AsgiFake, CallLog, PathFaultHooks, first_fault

T = TypeVar("T")
PAGING = frozenset({"limit", "page_token", "sort_field", "sort_direction"})
ORGANIZATION_QUERY = PAGING | {"name", "key"}
AGENT_QUERY = PAGING | {"organization_id", "platform", "hostname", "os", "version"}
REPORT_QUERY = PAGING | {"indicator_type", "status", "severity", "platform", "organization_id", "agent_id"}
REPORT_STATUSES = frozenset(
    {"sent", "closed", "dismissed", "auto_remediating", "deleting", "partner_dismissed"}
)
ADDRESS = {
    "line1": "1 Harbor Way",
    "city": "Portland",
    "state": "OR",
    "postal_code": "97201",
    "country": "US",
}
SEVERITIES = frozenset({"low", "high", "critical"})


class HuntressApiError(Exception):
    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}

    def response(self) -> JSONResponse:
        return JSONResponse(
            {"status": self.status, "error": self.message}, status_code=self.status, headers=self.headers
        )


class HuntressFake(HuntressStore, AsgiFake, PathFaultHooks[Fault], CallLog):
    """One fake Huntress account. Construct, seed, then point an adapter at `app`.

    `call_count` keys are `"METHOD /template"` (e.g. `"GET /v1/organizations/{id}"`)."""

    fault_type = Fault

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.app = Starlette(
            routes=[Route("/{path:path}", self._dispatch, methods=["GET", "POST", "PATCH", "DELETE"])]
        )

    # -- HTTP ------------------------------------------------------------------------------------

    async def _dispatch(self, request: Request) -> Response:
        path = "/" + request.path_params["path"].strip("/")
        template = path
        parts = path.strip("/").split("/")
        if len(parts) == 3 and parts[0] == "v1" and parts[2].isdigit():
            template = f"/v1/{parts[1]}/{{id}}"
        self.calls[f"{request.method} {template}"] += 1
        self.requests.append({"method": request.method, "path": path, "params": dict(request.query_params)})
        if self.latency:
            await asyncio.sleep(self.latency)
        try:
            response = self._handle(request, path, parts)
        except HuntressApiError as exc:
            response = exc.response()
        self.statuses[response.status_code] += 1
        return response

    def _throttle(self) -> None:
        """The documented sliding window: request 61 within 60 s of request 1 is refused."""
        if self.request_limit is None:
            return
        now = self.monotonic()
        while self.sent_at and self.sent_at[0] <= now - RATE_WINDOW:
            self.sent_at.popleft()
        if len(self.sent_at) >= self.request_limit:
            wait = max(1, math.ceil(self.sent_at[0] + RATE_WINDOW - now))
            raise HuntressApiError(429, "Too Many Requests", {"Retry-After": str(wait)})
        self.sent_at.append(now)

    def _handle(self, request: Request, path: str, parts: list[str]) -> Response:
        self._throttle()
        fault = first_fault(self.faults, request.method, path)
        if fault is not None:
            fault.claim()
            text = "Too Many Requests" if fault.status == 429 else "Internal Server Error"
            raise HuntressApiError(fault.status, text, fault.retry_headers())
        self._authorize(request)
        if request.method != "GET":
            raise HuntressApiError(405, f"{request.method} is not served by this fake")
        if path == "/v1/account":
            self._only(request, frozenset())
            return JSONResponse({"account": self._account()})
        if path == "/v1/actor":
            self._only(request, frozenset())
            account = self._account()
            return JSONResponse({"account": {k: account[k] for k in ("id", "name", "subdomain", "status")}})
        if path == "/v1/organizations":
            self._only(request, ORGANIZATION_QUERY)
            orgs = self._filtered(request, list(self.organizations.values()), {"name": "name", "key": "key"})
            return self._page(
                request,
                path,
                "organizations",
                orgs,
                self.organization_row,
                ("id", "created_at", "updated_at", "name", "key"),
            )
        if len(parts) == 3 and parts[:2] == ["v1", "organizations"] and parts[2].isdigit():
            self._only(request, frozenset())
            org = self.organizations.get(int(parts[2]))
            if org is None:
                raise HuntressApiError(404, "Organization not found")
            return JSONResponse({"organization": self.organization_detail(org)})
        if path == "/v1/agents":
            self._only(request, AGENT_QUERY)
            agents = self._filtered(
                request,
                list(self.agents.values()),
                {
                    "organization_id": "organization_id",
                    "platform": "platform",
                    "hostname": "hostname",
                    "os": "os",
                    "version": "version",
                },
            )
            return self._page(
                request, path, "agents", agents, self.agent_row, ("id", "created_at", "updated_at")
            )
        if path == "/v1/incident_reports":
            self._only(request, REPORT_QUERY)
            status = request.query_params.get("status")
            if status is not None and status not in REPORT_STATUSES:
                raise HuntressApiError(400, f"status does not have a valid value: {status!r}")
            severity = request.query_params.get("severity")
            if severity is not None and severity not in SEVERITIES:
                raise HuntressApiError(400, f"severity does not have a valid value: {severity!r}")
            reports = self._filtered(
                request,
                list(self.reports.values()),
                {
                    "status": "status",
                    "severity": "severity",
                    "platform": "platform",
                    "organization_id": "organization_id",
                    "agent_id": "agent_id",
                },
            )
            indicator = request.query_params.get("indicator_type")
            if indicator:
                reports = [r for r in reports if indicator in r.indicator_types]
            return self._page(
                request,
                path,
                "incident_reports",
                reports,
                self.report_row,
                ("id", "created_at", "updated_at"),
            )
        raise HuntressApiError(404, f"No route {request.method} {path}")

    def _account(self) -> Row:
        return {
            "id": ACCOUNT_ID,
            "name": self.account_name,
            "subdomain": "examplemsp",
            "status": "enabled",
            "support_type": "partner_supported",
            "neighborhood_watch": {"edr": 0},
            "billing_address": ADDRESS,
            "shipping_address": ADDRESS,
        }

    def _authorize(self, request: Request) -> None:
        scheme, _, encoded = (request.headers.get("authorization") or "").partition(" ")
        if scheme.lower() != "basic":
            raise HuntressApiError(401, "Unauthorized: no Basic credentials")
        try:
            key, _, secret = base64.b64decode(encoded.strip(), validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            raise HuntressApiError(401, "Unauthorized: malformed credentials") from None
        if not (hmac.compare_digest(key, self.api_key) and hmac.compare_digest(secret, self.api_secret)):
            raise HuntressApiError(401, "Unauthorized")

    @staticmethod
    def _only(request: Request, allowed: frozenset[str]) -> None:
        unknown = sorted(set(request.query_params) - allowed)
        if unknown:
            raise HuntressApiError(400, f"{unknown[0]} is not a valid parameter")

    @staticmethod
    def _filtered(request: Request, items: list[T], fields: dict[str, str]) -> list[T]:
        for param, attribute in fields.items():
            wanted = request.query_params.get(param)
            if wanted is None:
                continue
            items = [i for i in items if str(getattr(i, attribute)).casefold() == wanted.casefold()]
        return items

    @staticmethod
    def _fingerprint(request: Request) -> str:
        kept = sorted(
            (k, v) for k, v in request.query_params.multi_items() if k not in ("limit", "page_token")
        )
        return hashlib.sha256(json.dumps(kept).encode()).hexdigest()[:16]

    def _page(
        self,
        request: Request,
        path: str,
        key: str,
        items: Sequence[T],
        render: Callable[[T], Row],
        sortable: tuple[str, ...],
    ) -> Response:
        raw_limit = request.query_params.get("limit")
        try:
            limit = DEFAULT_PAGE_SIZE if raw_limit is None else int(raw_limit)
        except ValueError:
            raise HuntressApiError(400, "limit is invalid") from None
        if not 1 <= limit <= MAX_PAGE_SIZE:
            raise HuntressApiError(400, f"limit does not have a valid value: must be 1..{MAX_PAGE_SIZE}")
        field_name = request.query_params.get("sort_field", "id")
        direction = request.query_params.get("sort_direction", "desc")
        if field_name not in sortable:
            raise HuntressApiError(400, "sort_field does not have a valid value")
        if direction not in ("asc", "desc"):
            raise HuntressApiError(400, "sort_direction does not have a valid value")
        fingerprint = self._fingerprint(request)
        offset = 0
        token = request.query_params.get("page_token")
        if token:
            try:
                held = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
                offset, seen = int(held["o"]), str(held["f"])
            except (ValueError, KeyError, TypeError, binascii.Error):
                raise HuntressApiError(400, "page_token is invalid") from None
            if seen != fingerprint:
                raise HuntressApiError(400, "page_token does not belong to this query")

        def sort_key(item: Any) -> tuple[Any, int]:
            return (getattr(item, field_name), item.id)

        ordered = sorted(items, key=sort_key, reverse=direction == "desc")
        chunk = ordered[offset : offset + limit]
        pagination: Row = {}
        if offset + limit < len(ordered):
            following = (
                base64.urlsafe_b64encode(json.dumps({"o": offset + limit, "f": fingerprint}).encode())
                .decode()
                .rstrip("=")
            )
            query = [
                (k, v) for k, v in request.query_params.multi_items() if k not in ("limit", "page_token")
            ]
            query += [("page_token", following), ("limit", str(limit))]
            pagination = {
                "next_page_url": f"https://api.huntress.io{path}?{urlencode(query)}",
                "next_page_token": following,
            }
        return JSONResponse({key: [render(i) for i in chunk], "pagination": pagination})


__all__ = ["FakeAgent", "FakeIncidentReport", "FakeOrganization", "HuntressApiError", "HuntressFake"]
