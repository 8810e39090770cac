"""The HTTP face of the fake NinjaOne: the OAuth2 token route, bearer and scope checks, the
`after`-paged lists, the cursor-paged query reports, the webhook registration, script runs, and
fault hooks."""

from __future__ import annotations

import asyncio
import bisect
import json
import secrets
from collections.abc import Callable, Mapping
from datetime import timedelta
from typing import Any, TypeVar
from urllib.parse import parse_qs

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from adapters.ninjaone.fake.seed import NinjaOneSeeding
from adapters.ninjaone.fake.store import (
    CURSOR_LIFETIME,
    DEFAULT_PAGE_SIZE,
    SCOPES,
    FakeDevice,
    FakeOrganization,
    Fault,
    Row,
    ScriptRun,
    epoch,
)
from adapters.testing.faults import AsgiFake, CallLog, PathFaultHooks, first_fault

WEBHOOK_FIELDS = frozenset({"url", "activities", "expand", "headers", "organizationIds"})
RUN_SCRIPT_FIELDS = frozenset({"type", "id", "uid", "parameters", "runAs"})
T = TypeVar("T")
QUERY_ROUTES = (
    "/v2/queries/antivirus-status",
    "/v2/queries/antivirus-threats",
    "/v2/queries/computer-systems",
)


class NinjaOneApiError(Exception):
    def __init__(
        self, status: int, message: str, headers: dict[str, str] | None = None, *, oauth: str = ""
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}
        self.oauth = oauth

    def response(self) -> JSONResponse:
        if self.oauth:
            body: Row = {"error": self.oauth, "error_description": self.message}
        else:
            body = {"resultCode": "FAILURE", "errorMessage": self.message, "incidentId": secrets.token_hex(8)}
        return JSONResponse(body, status_code=self.status, headers=self.headers)


class NinjaOneFake(NinjaOneSeeding, AsgiFake, PathFaultHooks[Fault], CallLog):
    """One fake NinjaOne instance. Construct, seed, then point an adapter at `app`.

    `call_count` keys are `"METHOD /path"` (e.g. `"GET /v2/devices-detailed"`)."""

    fault_type = Fault

    def _build_app(self) -> Starlette:
        methods = ["GET", "POST", "PUT", "PATCH", "DELETE"]
        return Starlette(routes=[Route("/{path:path}", self._dispatch, methods=methods)])

    # -- wire rendering --------------------------------------------------------------------------

    @staticmethod
    def organization_row(org: FakeOrganization) -> Row:
        return {"id": org.id, "name": org.name, "nodeApprovalMode": "AUTOMATIC"}

    def device_row(self, device: FakeDevice) -> Row:
        row: Row = {
            "id": device.id,
            "uid": device.uid,
            "organizationId": device.organization_id,
            "locationId": device.location_id,
            "nodeClass": device.node_class,
            "approvalStatus": "APPROVED",
            "offline": device.offline,
            "displayName": device.name,
            "systemName": device.name,
            "dnsName": f"{device.name.lower()}.corp.local",
            "netbiosName": device.name,
            "created": epoch(device.created),
            "lastContact": epoch(device.last_contact),
            "lastUpdate": epoch(device.last_update),
            "ipAddresses": [f"10.0.{device.id >> 8 & 255}.{device.id & 255}"],
            "macAddresses": list(device.macs),
            "publicIP": "203.0.113.10",
            "deviceType": "AGENT",
        }
        for name, value in self.corrupted.get(device.id, {}).items():
            if value is None:
                row.pop(name, None)
            else:
                row[name] = value
        return row

    def _antivirus_rows(self, offset: int, size: int) -> list[Row]:
        pairs = [(d, p) for d in self.devices.values() for p in d.products][offset : offset + size]
        return [
            {
                "productName": p.name,
                "productState": p.state,
                "definitionStatus": p.definitions,
                "version": p.version,
                "deviceId": d.id,
                "timestamp": epoch(p.at),
            }
            for d, p in pairs
        ]

    def _threat_rows(self, offset: int, size: int) -> list[Row]:
        return [
            {
                "name": t.name,
                "productCode": "WINDEFEND",
                "status": t.status,
                "type": "TROJAN",
                "threatId": t.id,
                "category": "MALWARE",
                "level": "HIGH",
                "detectionSource": "REAL_TIME",
                "deviceId": t.device_id,
                "timestamp": epoch(t.at),
            }
            for t in list(self.threats.values())[offset : offset + size]
        ]

    def _system_rows(self, offset: int, size: int) -> list[Row]:
        return [
            {
                "name": d.name,
                "manufacturer": "Dell Inc.",
                "model": "OptiPlex 7090",
                "biosSerialNumber": d.serial,
                "serialNumber": d.serial,
                "domain": "CORP",
                "domainRole": "MEMBER_WORKSTATION",
                "numberOfProcessors": 1,
                "totalPhysicalMemory": 17179869184,
                "virtualMachine": False,
                "chassisType": "DESKTOP",
                "deviceId": d.id,
                "timestamp": epoch(d.system_at),
            }
            for d in list(self.devices.values())[offset : offset + size]
        ]

    # -- HTTP ------------------------------------------------------------------------------------

    async def _dispatch(self, request: Request) -> Response:
        path = "/" + request.path_params["path"].strip("/")
        self.calls[f"{request.method} {path}"] += 1
        self.requests.append({"method": request.method, "path": path, "params": dict(request.query_params)})
        if self.latency:
            await asyncio.sleep(self.latency)
        try:
            response = await self._handle(request, path)
        except NinjaOneApiError as exc:
            response = exc.response()
        self.statuses[response.status_code] += 1
        return response

    async def _handle(self, request: Request, path: str) -> Response:
        fault = first_fault(self.faults, request.method, path)
        if fault is not None:
            fault.claim()
            text = "Too Many Requests" if fault.status == 429 else "Internal Server Error"
            raise NinjaOneApiError(fault.status, text, fault.retry_headers())
        if path == "/ws/oauth/token":
            if request.method != "POST":
                raise NinjaOneApiError(405, "Method Not Allowed")
            return await self._token(request)
        scopes = self._authorize(request)
        method = request.method
        if method == "GET" and path == "/v2/organizations":
            return self._after_page(request, self.organizations, self.organization_row, scopes)
        if method == "GET" and path == "/v2/devices-detailed":
            if request.query_params.get("df"):
                raise NinjaOneApiError(400, "Device filters are not supported by this fake")
            return self._after_page(request, self.devices, self.device_row, scopes)
        if method == "GET" and path in QUERY_ROUTES:
            self._need(scopes, "monitoring")
            return self._report(request, path)
        if method == "PUT" and path == "/v2/webhook":
            self._need(scopes, "management")
            return await self._put_webhook(request)
        if method == "DELETE" and path == "/v2/webhook":
            self._need(scopes, "management")
            self.webhook = None
            return Response(status_code=204)
        parts = path.strip("/").split("/")
        if (
            method == "POST"
            and len(parts) == 5
            and parts[:2] == ["v2", "device"]
            and parts[3:] == ["script", "run"]
        ):
            self._need(scopes, "control")
            return await self._run_script(request, parts[2])
        raise NinjaOneApiError(404, f"No endpoint {method} {path}")

    async def _token(self, request: Request) -> Response:
        content_type = request.headers.get("content-type", "")
        if not content_type.startswith("application/x-www-form-urlencoded"):
            raise NinjaOneApiError(400, "The token request must be form encoded", oauth="invalid_request")
        form = {k: v[0] for k, v in parse_qs((await request.body()).decode("utf-8", "replace")).items()}
        if form.get("grant_type") != "client_credentials":
            raise NinjaOneApiError(400, "Unsupported grant type", oauth="unsupported_grant_type")
        if form.get("client_id") != self.client_id or form.get("client_secret") != self.client_secret:
            raise NinjaOneApiError(401, "Invalid client credentials", oauth="invalid_client")
        asked = frozenset((form.get("scope") or "").split())
        if not asked or not asked <= SCOPES or not asked <= self.granted_scopes:
            raise NinjaOneApiError(400, f"Invalid scope: {form.get('scope')!r}", oauth="invalid_scope")
        token = secrets.token_urlsafe(24)
        self.tokens[token] = (self.clock() + timedelta(seconds=self.token_lifetime), asked)
        body = {
            "access_token": token,
            "token_type": "bearer",
            "expires_in": self.token_lifetime,
            "scope": " ".join(sorted(asked)),
        }
        return JSONResponse(body)

    def _authorize(self, request: Request) -> frozenset[str]:
        scheme, _, token = (request.headers.get("authorization") or "").partition(" ")
        found = self.tokens.get(token.strip()) if scheme.lower() == "bearer" else None
        if found is None or found[0] <= self.clock():
            raise NinjaOneApiError(401, "Unauthorized", oauth="invalid_token")
        return found[1]

    @staticmethod
    def _need(scopes: frozenset[str], scope: str) -> None:
        if scope not in scopes:
            raise NinjaOneApiError(
                403, f"The access token lacks the {scope!r} scope", oauth="insufficient_scope"
            )

    @staticmethod
    def _int_param(request: Request, name: str, default: int | None) -> int | None:
        raw = request.query_params.get(name)
        if raw is None:
            return default
        try:
            return int(raw)
        except ValueError:
            raise NinjaOneApiError(400, f"Invalid value for {name}: {raw!r}") from None

    def _after_page(
        self, request: Request, items: Mapping[int, T], render: Callable[[T], Row], scopes: frozenset[str]
    ) -> Response:
        """Records with an id above `after`, in id order, `pageSize` of them (all without it)."""
        self._need(scopes, "monitoring")
        size = self._int_param(request, "pageSize", None)
        after = self._int_param(request, "after", 0) or 0
        if size is not None and size < 1:
            raise NinjaOneApiError(400, "pageSize must be positive")
        ids = sorted(items)
        start = bisect.bisect_right(ids, after)
        chosen = ids[start:] if size is None else ids[start : start + size]
        return JSONResponse([render(items[i]) for i in chosen])

    def _report(self, request: Request, path: str) -> Response:
        size = self._int_param(request, "pageSize", DEFAULT_PAGE_SIZE) or DEFAULT_PAGE_SIZE
        if size < 1:
            raise NinjaOneApiError(400, "pageSize must be positive")
        offset = 0
        name = request.query_params.get("cursor")
        if name:
            held = self.cursors.get(name)
            if held is None or held[0] != path or held[2] <= self.clock():
                raise NinjaOneApiError(400, "Cursor is invalid or expired")
            offset = held[1]
        if path.endswith("antivirus-status"):
            chunk = self._antivirus_rows(offset, size)
        elif path.endswith("antivirus-threats"):
            chunk = self._threat_rows(offset, size)
        else:
            chunk = self._system_rows(offset, size)
        cursor_name = secrets.token_hex(12)
        expires = self.clock() + timedelta(seconds=CURSOR_LIFETIME)
        self.cursors[cursor_name] = (path, offset + len(chunk), expires)
        cursor = {"name": cursor_name, "offset": offset, "count": len(chunk), "expires": expires.timestamp()}
        return JSONResponse({"cursor": cursor, "results": chunk})

    async def _json_body(self, request: Request, fields: frozenset[str]) -> dict[str, Any]:
        try:
            body = json.loads(await request.body() or b"null")
        except ValueError:
            raise NinjaOneApiError(400, "Malformed JSON body") from None
        if not isinstance(body, dict):
            raise NinjaOneApiError(400, "The body must be a JSON object")
        unknown = sorted(set(body) - fields)
        if unknown:
            raise NinjaOneApiError(400, f"Unrecognized field {unknown[0]!r}")
        return body

    async def _put_webhook(self, request: Request) -> Response:
        if not self.system_administrator:
            raise NinjaOneApiError(403, "Only system administrators can configure webhooks")
        body = await self._json_body(request, WEBHOOK_FIELDS)
        url = body.get("url")
        if not isinstance(url, str) or not url.startswith(("https://", "http://")):
            raise NinjaOneApiError(400, "url must be an absolute http(s) URL")
        headers = body.get("headers") or []
        if not isinstance(headers, list) or not all(
            isinstance(h, dict)
            and set(h) == {"name", "value"}
            and all(isinstance(v, str) for v in h.values())
            for h in headers
        ):
            raise NinjaOneApiError(400, "headers must be a list of {name, value}")
        activities = body.get("activities") or {}
        if not isinstance(activities, dict) or not all(isinstance(v, list) for v in activities.values()):
            raise NinjaOneApiError(400, "activities must map an activity type to a list of status codes")
        self.webhook = body
        return Response(status_code=204)

    async def _run_script(self, request: Request, raw_id: str) -> Response:
        if not raw_id.isdigit() or int(raw_id) not in self.devices:
            raise NinjaOneApiError(404, f"Device {raw_id} not found")
        body = await self._json_body(request, RUN_SCRIPT_FIELDS)
        if body.get("type") not in ("SCRIPT", "ACTION"):
            raise NinjaOneApiError(400, "type must be SCRIPT or ACTION")
        script_id = body.get("id")
        if body["type"] == "SCRIPT" and (not isinstance(script_id, int) or script_id not in self.scripts):
            raise NinjaOneApiError(400, f"Script {script_id} not found")
        self.script_runs.append(
            ScriptRun(int(raw_id), int(script_id or 0), body.get("parameters"), body.get("runAs"), self.now)
        )
        return Response(status_code=204)
