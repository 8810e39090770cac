"""The HTTP face of the fake Sophos Central: the Sophos ID token route, the global API (whoami,
partner/organization tenants, billing usage) and the regional tenant APIs (endpoints, alerts), with
bearer, id-header and host checks, Sophos paging, and fault hooks."""

from __future__ import annotations

import asyncio
import re
import secrets
import uuid
from datetime import datetime
from typing import Any
from urllib.parse import parse_qs

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from adapters.sophos_central.fake.store import (
    ALERT_MAX_PAGE,
    DEFAULT_PAGE,
    ENDPOINT_MAX_PAGE,
    TENANT_MAX_PAGE,
    TOKEN_LIFETIME,
    USAGE_MAX_PAGE,
    FakeAlert,
    FakeEndpoint,
    FakeTenant,
    Fault,
    Row,
    SophosStore,
)
from adapters.testing.faults import AsgiFake, first_fault, lowered_headers

ID_HOST = "id.sophos.com"
GLOBAL_HOST = "api.central.sophos.com"
TOKEN_PATH = "/api/v2/oauth2/token"
USAGE = re.compile(r"^/partner/v1/billing/usage/(\d{4})/(\d{1,2})$")
ENDPOINT_QUERY = frozenset({"pageFromKey", "pageSize", "pageTotal", "view", "lastSeenAfter", "online"})
ALERT_QUERY = frozenset({"pageFromKey", "pageSize", "pageTotal"})
TENANT_QUERY = frozenset({"page", "pageSize", "pageTotal"})
USAGE_QUERY = frozenset({"pageFromKey", "pageSize", "pageTotal", "accountId"})
KEY_BASE = 2_000_000_000_000
"""Page keys look like the collection's (`2000818931339`): an offset above this base."""


class SophosApiError(Exception):
    def __init__(self, status: int, error: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.error = error
        self.message = message
        self.headers = headers or {}

    def response(self, *, token: bool = False) -> JSONResponse:
        if token:
            body: Row = {"errorCode": self.error, "message": self.message, "trackingId": str(uuid.uuid4())}
        else:
            body = {
                "error": self.error,
                "message": self.message,
                "correlationId": str(uuid.uuid4()),
                "requestId": str(uuid.uuid4()),
            }
        return JSONResponse(body, status_code=self.status, headers=self.headers)


def sophos_time(value: datetime, *, zone: bool = True) -> str:
    text = value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}"
    return text + "Z" if zone else text


def parse_time(value: str) -> datetime:
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise SophosApiError(400, "badRequest", f"invalid date-time {value!r}") from None
    if parsed.tzinfo is None:
        raise SophosApiError(400, "badRequest", f"date-time {value!r} has no zone")
    return parsed


class SophosCentralFake(SophosStore, AsgiFake):
    """One fake Sophos Central (a partner with tenants, or a single tenant). Construct, seed, then
    point an adapter at `app`; every host routes here and the host decides what answers.

    `calls` keys are `"METHOD /template"` (e.g. `"GET /endpoint/v1/endpoints"`)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.latency = 0.0
        self.app = Starlette(
            routes=[Route("/{path:path}", self._dispatch, methods=["GET", "POST", "PUT", "PATCH", "DELETE"])]
        )

    # -- faults and records ------------------------------------------------------------------------

    def fail_next(self, status: int = 500, times: int | None = 1, path: str | None = None) -> None:
        self.faults.append(Fault(status, times, path=path))

    def rate_limit(self, times: int | None = 1, retry_after: float = 1.0, path: str | None = None) -> None:
        self.faults.append(Fault(429, times, path=path, retry_after=retry_after))

    def clear_faults(self) -> None:
        self.faults.clear()

    def call_count(self, key: str | None = None, *, prefix: bool = False) -> int:
        if key is None:
            return sum(self.calls.values())
        if prefix:
            return sum(n for k, n in self.calls.items() if k.startswith(key))
        return self.calls[key]

    def reset_calls(self) -> None:
        self.calls.clear()
        self.statuses.clear()
        self.requests.clear()

    # -- dispatch ----------------------------------------------------------------------------------

    async def _dispatch(self, request: Request) -> Response:
        if self.latency:
            await asyncio.sleep(self.latency)
        host = (request.url.hostname or "").lower()
        path = "/" + request.path_params["path"].strip("/")
        match = USAGE.match(path)
        template = "/partner/v1/billing/usage/{year}/{month}" if match else path
        self.calls[f"{request.method} {template}"] += 1
        raw = await request.body()
        self.requests.append(
            {
                "method": request.method,
                "host": host,
                "path": path,
                "query": dict(request.query_params),
                "body": raw,
            }
        )
        token_route = host == ID_HOST
        fault = first_fault(self.faults, request.method, path, template)
        if fault is not None:
            fault.claim()
            self.statuses[fault.status] += 1
            error = SophosApiError(
                fault.status,
                "tooManyRequests" if fault.status == 429 else "internalServerError",
                "Too many requests." if fault.status == 429 else "Internal Server Error.",
                fault.retry_headers(),
            )
            return error.response(token=token_route)
        try:
            if token_route:
                answer: Response = self._token(request, path, raw)
            else:
                answer = self._api(request, host, path, match)
        except SophosApiError as exc:
            answer = exc.response(token=token_route)
        self.statuses[answer.status_code] += 1
        return answer

    def _token(self, request: Request, path: str, raw: bytes) -> Response:
        if request.method != "POST" or path != TOKEN_PATH:
            raise SophosApiError(404, "notFound", "no such route")
        if not request.headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
            raise SophosApiError(400, "oauth.invalid_request", "the token request is a form")
        form = {k: v[0] for k, v in parse_qs(raw.decode()).items()}
        unknown = sorted(set(form) - {"grant_type", "scope", "client_id", "client_secret"})
        if unknown:
            raise SophosApiError(400, "oauth.invalid_request", f"unknown field {unknown[0]}")
        if form.get("grant_type") != "client_credentials" or form.get("scope") != "token":
            raise SophosApiError(400, "oauth.invalid_request", "grant_type client_credentials, scope token")
        if form.get("client_id") != self.client_id or form.get("client_secret") != self.client_secret:
            raise SophosApiError(401, "oauth.invalid_client", "client authentication failed")
        return JSONResponse(
            {
                "access_token": self.issue_token(),
                "errorCode": "success",
                "expires_in": int(TOKEN_LIFETIME.total_seconds()),
                "message": "OK",
                "refresh_token": secrets.token_urlsafe(24),
                "token_type": "bearer",
                "trackingId": str(uuid.uuid4()),
            }
        )

    def _api(self, request: Request, host: str, path: str, usage: re.Match[str] | None) -> Response:
        headers = lowered_headers(request)
        auth = headers.get("authorization", "")
        if not auth.startswith("Bearer ") or auth[7:] not in self.tokens:
            raise SophosApiError(401, "unauthorized", "Unauthorized.")
        if request.method != "GET":
            raise SophosApiError(405, "methodNotAllowed", f"{request.method} is not served by the fake")
        query = dict(request.query_params)
        if host == GLOBAL_HOST:
            if path == "/whoami/v1":
                return JSONResponse(self._whoami())
            if path == "/partner/v1/tenants":
                self._need_id(headers, "partner", "x-partner-id")
                return JSONResponse(self._tenant_page(query, "partner"))
            if path == "/organization/v1/tenants":
                self._need_id(headers, "organization", "x-organization-id")
                return JSONResponse(self._tenant_page(query, "organization"))
            if usage is not None:
                self._need_id(headers, "partner", "x-partner-id")
                return JSONResponse(self._usage(query, int(usage.group(1)), int(usage.group(2))))
            raise SophosApiError(404, "notFound", f"{path} is not a global API route of the fake")
        tenant = self._regional_tenant(headers, host)
        if path == "/endpoint/v1/endpoints":
            return JSONResponse(self._endpoints(query, tenant))
        if path == "/common/v1/alerts":
            return JSONResponse(self._alerts(query, tenant))
        raise SophosApiError(404, "notFound", f"{path} is not a tenant API route of the fake")

    def _need_id(self, headers: dict[str, str], id_type: str, header: str) -> None:
        if self.id_type != id_type:
            raise SophosApiError(403, "forbidden", f"the caller is not a {id_type}")
        if headers.get(header) != self.partner_id:
            raise SophosApiError(403, "forbidden", f"{header} does not name the caller")

    def _regional_tenant(self, headers: dict[str, str], host: str) -> FakeTenant:
        tenant_id = headers.get("x-tenant-id")
        if not tenant_id:
            raise SophosApiError(400, "badRequest", "X-Tenant-ID is required")
        tenant = self.tenants.get(tenant_id)
        if tenant is None or (self.id_type == "tenant" and tenant_id != self.partner_id):
            raise SophosApiError(403, "forbidden", "the caller cannot access this tenant")
        if host != tenant.api_host.removeprefix("https://"):
            raise SophosApiError(
                400, "badRequest", f"tenant {tenant_id} is served by {tenant.api_host}, not {host}"
            )
        return tenant

    # -- answers -----------------------------------------------------------------------------------

    def _whoami(self) -> Row:
        region = None
        if self.id_type == "tenant":
            region = self.tenants[self.partner_id].api_host
        return {
            "id": self.partner_id,
            "idType": self.id_type,
            "apiHosts": {"global": f"https://{GLOBAL_HOST}", **({"dataRegion": region} if region else {})},
        }

    @staticmethod
    def _check_query(query: dict[str, str], allowed: frozenset[str]) -> None:
        unknown = sorted(set(query) - allowed)
        if unknown:
            raise SophosApiError(400, "badRequest", f"query parameter {unknown[0]!r} is not supported")

    @staticmethod
    def _size(query: dict[str, str], maximum: int) -> int:
        try:
            size = int(query.get("pageSize", DEFAULT_PAGE))
        except ValueError:
            raise SophosApiError(400, "badRequest", "pageSize is a number") from None
        if size < 1:
            raise SophosApiError(400, "badRequest", "pageSize must be at least 1")
        return min(size, maximum)

    def _key_page(
        self, rows: list[Row], query: dict[str, str], maximum: int, *, from_key: bool = True
    ) -> Row:
        size = self._size(query, maximum)
        key = query.get("pageFromKey")
        start = 0
        if key:
            if not key.isdigit() or int(key) < KEY_BASE:
                raise SophosApiError(400, "badRequest", f"invalid pageFromKey {key!r}")
            start = int(key) - KEY_BASE
        chunk = rows[start : start + size]
        pages: Row = {"fromKey": key or str(KEY_BASE)} if from_key else {}
        pages |= {"size": size, "maxSize": maximum}
        if start + size < len(rows):
            pages["nextKey"] = str(KEY_BASE + start + size)
        if query.get("pageTotal") == "true":
            pages["total"] = max(1, -(-len(rows) // size))
            pages["items"] = len(rows)
        return {"items": chunk, "pages": pages}

    def tenant_row(self, tenant: FakeTenant, id_type: str) -> Row:
        return {
            "id": tenant.id,
            "name": tenant.name,
            "dataGeography": tenant.geography,
            "dataRegion": tenant.region,
            "billingType": "usage",
            id_type: {"id": self.partner_id},
            "apiHost": tenant.api_host,
        }

    def _tenant_page(self, query: dict[str, str], id_type: str) -> Row:
        self._check_query(query, TENANT_QUERY)
        size = self._size(query, TENANT_MAX_PAGE)
        try:
            number = int(query.get("page", "1"))
        except ValueError:
            raise SophosApiError(400, "badRequest", "page is a number") from None
        if number < 1:
            raise SophosApiError(400, "badRequest", "page starts with 1")
        rows = [self.tenant_row(t, id_type) for t in self.tenants.values()]
        pages: Row = {"current": number, "size": size, "maxSize": TENANT_MAX_PAGE}
        if query.get("pageTotal") == "true":
            pages["total"] = max(1, -(-len(rows) // size))
            pages["items"] = len(rows)
        return {"items": rows[(number - 1) * size : number * size], "pages": pages}

    def endpoint_row(self, endpoint: FakeEndpoint, view: str = "full") -> Row:
        row: Row = {
            "id": endpoint.id,
            "type": endpoint.type,
            "tenant": {"id": endpoint.tenant_id},
            "hostname": endpoint.hostname,
        }
        if view != "basic":
            overall = "good" if endpoint.services == "good" and endpoint.threats == "good" else "bad"
            row |= {
                "health": {
                    "overall": overall,
                    "threats": {"status": endpoint.threats},
                    "services": {
                        "status": endpoint.services,
                        "serviceDetails": [
                            {
                                "name": "Sophos Endpoint Defense Service",
                                "status": "running" if endpoint.services == "good" else "stopped",
                            }
                        ],
                    },
                },
                "os": {
                    "isServer": endpoint.type == "server",
                    "platform": "windows",
                    "name": endpoint.os_name,
                    "majorVersion": 10,
                    "minorVersion": 0,
                    "build": 22631,
                },
                "ipv4Addresses": ["10.20.0." + str(int(endpoint.id[:2], 16))],
                "macAddresses": list(endpoint.macs),
                "associatedPerson": {"name": "CORP\\user", "viaLogin": "CORP\\user", "id": str(uuid.uuid4())},
                "tamperProtectionEnabled": endpoint.tamper,
                "assignedProducts": [
                    {"code": "coreAgent", "version": endpoint.version},
                    {"code": "interceptX", "version": endpoint.version},
                ],
                "lastSeenAt": sophos_time(endpoint.last_seen),
                "online": endpoint.online,
            }
        if view == "full":
            row |= {
                "tamperProtectionSupported": True,
                "isolation": {"status": endpoint.isolation, "adminIsolated": False, "selfIsolated": False},
                "lockdown": {"status": "notInstalled"},
                "encryption": {"volumes": [], "overallStatus": "notEncrypted"},
                "lastAgentUpdateAt": sophos_time(endpoint.last_seen),
            }
            if endpoint.serial:
                row["serialNumber"] = endpoint.serial
        for name, value in endpoint.corrupt.items():
            if value is None:
                row.pop(name, None)
            else:
                row[name] = value
        return row

    def _endpoints(self, query: dict[str, str], tenant: FakeTenant) -> Row:
        self._check_query(query, ENDPOINT_QUERY)
        view = query.get("view", "summary")
        if view not in ("basic", "summary", "full"):
            raise SophosApiError(400, "badRequest", f"view {view!r} is not basic, summary or full")
        listed = [e for e in self.endpoints.values() if e.tenant_id == tenant.id]
        if "lastSeenAfter" in query:
            after = parse_time(query["lastSeenAfter"])
            listed = [e for e in listed if e.last_seen >= after]
        if "online" in query:
            if query["online"] not in ("true", "false"):
                raise SophosApiError(400, "badRequest", "online is true or false")
            listed = [e for e in listed if e.online is (query["online"] == "true")]
        return self._key_page([self.endpoint_row(e, view) for e in listed], query, ENDPOINT_MAX_PAGE)

    def alert_row(self, alert: FakeAlert) -> Row:
        tenant = self.tenants[alert.tenant_id]
        return {
            "id": alert.id,
            "allowedActions": list(alert.allowed_actions),
            "category": alert.category,
            "description": alert.description,
            "groupKey": "MSx" + alert.type.replace(":", "")[:20],
            "managedAgent": {"id": alert.agent_id, "type": "computer"},
            "product": "endpoint",
            "raisedAt": sophos_time(alert.raised_at, zone=False),
            "severity": alert.severity,
            "tenant": {"id": tenant.id, "name": tenant.name},
            "type": alert.type,
        }

    def _alerts(self, query: dict[str, str], tenant: FakeTenant) -> Row:
        self._check_query(query, ALERT_QUERY)
        rows = [self.alert_row(a) for a in self.alerts.values() if a.tenant_id == tenant.id]
        return self._key_page(rows, query, ALERT_MAX_PAGE, from_key=False)  # as the example

    def _usage(self, query: dict[str, str], year: int, month: int) -> Row:
        self._check_query(query, USAGE_QUERY)
        if not 1 <= month <= 12:
            raise SophosApiError(400, "badRequest", "month is 1 to 12")
        available = (year, month) <= (self.now.year, self.now.month)
        if self.usage_months is not None:
            available = (year, month) in self.usage_months
        if not available:
            raise SophosApiError(404, "notFound", "No data for requested year or month.")
        rows: list[Row] = []
        for tenant in self.tenants.values():
            if query.get("accountId") and query["accountId"] != tenant.id:
                continue
            for n, (sku, code, description, group, quantity) in enumerate(tenant.usage):
                rows.append(
                    {
                        "partnerAccountId": self.partner_id,
                        "partnerEdiAccountNumber": "1231231",
                        "partnerAccountName": "Fake MSP Ltd",
                        "billingStartDate": f"{year:04d}-{month:02d}-01",
                        "billingEndDate": f"{year:04d}-{month:02d}-28",
                        "orderNumber": f"Order-{year}{month:02d}",
                        "orderLineItemNumber": f"OrderLine-{n + 1}",
                        "accountNumberOrSerialNumber": tenant.id[:15].upper(),
                        "productDescription": description,
                        "productGroup": group,
                        "sku": sku,
                        "billableQuantity": quantity,
                        "externalId": str(uuid.uuid5(uuid.NAMESPACE_URL, tenant.id)),
                        "accountId": tenant.id,
                        "accountStatus": "active",
                        "actualQuantity": quantity,
                        "productCode": code,
                    }
                )
        return self._key_page(rows, query, USAGE_MAX_PAGE)
