"""The fake Datto RMM's HTTP face: the token route, bearer auth, the rolling request budget, paged
lists, quick jobs, and scripted faults — each answered the way Datto answers (see `__init__.py`)."""

from __future__ import annotations

import asyncio
import base64
import json
import re
import secrets
from typing import Any
from urllib.parse import parse_qs

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from adapters.datto_rmm.fake.seed import Seeding
from adapters.datto_rmm.fake.store import (
    DEFAULT_PAGE_SIZE,
    MAX_PAGE_SIZE,
    FakeAlert,
    FakeDevice,
    FakeSite,
    QuickJob,
    millis,
    new_uid,
)
from adapters.testing.faults import first_fault, retry_after_value

PUBLIC_CLIENT = "Basic " + base64.b64encode(b"public-client:public").decode()
WINDOW = 60.0
ROUTES: tuple[tuple[str, str], ...] = (
    ("GET", "/v2/account"),
    ("GET", "/v2/account/sites"),
    ("GET", "/v2/account/devices"),
    ("GET", "/v2/account/alerts/open"),
    ("GET", "/v2/system/pagination"),
    ("PUT", "/v2/device/{deviceUid}/quickjob"),
    ("POST", "/v2/alert/{alertUid}/resolve"),
)
_PATTERNS = [(m, t, re.compile("^" + re.sub(r"\{\w+\}", r"(?P<id>[^/]+)", t) + "$")) for m, t in ROUTES]


REASONS = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    429: "Too Many Requests",
}


def _oauth(status: int, error: str, description: str) -> JSONResponse:
    """Spring Security OAuth2's error body."""
    return JSONResponse({"error": error, "error_description": description}, status_code=status)


def _error(status: int, message: str, path: str) -> JSONResponse:
    """Spring Boot's error body."""
    reason = REASONS.get(status, "Internal Server Error")
    return JSONResponse(
        {"status": status, "error": reason, "message": message, "path": path}, status_code=status
    )


class DattoFake(Seeding):
    """A stateful Datto RMM account."""

    def _build_app(self) -> Starlette:
        return Starlette(
            routes=[Route("/{path:path}", self._handle, methods=["GET", "POST", "PUT", "DELETE", "PATCH"])]
        )

    # -- the budget ------------------------------------------------------------------------------

    def _over_budget(self, write: bool) -> bool:
        now = self.clock()
        for window in (self.window, self.write_window):
            while window and window[0] <= now - WINDOW:
                window.popleft()
        if len(self.window) >= self.reads_per_minute or (
            write and len(self.write_window) >= self.writes_per_minute
        ):
            return True
        self.window.append(now)
        if write:
            self.write_window.append(now)
        return False

    # -- dispatch --------------------------------------------------------------------------------

    async def _handle(self, request: Request) -> Response:
        if self.latency:
            await asyncio.sleep(self.latency)
        method = request.method
        path = "/" + request.path_params["path"]
        raw = await request.body()
        response = await self._answer(request, method, path, raw)
        self.statuses[response.status_code] += 1
        self.requests.append(
            {
                "method": method,
                "path": path,
                "query": dict(request.query_params),
                "body": raw,
                "status": response.status_code,
            }
        )
        return response

    async def _answer(self, request: Request, method: str, path: str, raw: bytes) -> Response:
        write = method != "GET" and path.startswith("/api/")
        if self._over_budget(write):
            return _error(429, "Too many requests: the API request rate limit was exceeded", path)
        if path == "/auth/oauth/token" and method == "POST":
            self.calls["POST /auth/oauth/token"] += 1
            return self._token(request, raw)
        if not path.startswith("/api/"):
            return _error(404, "No message available", path)
        relative = path.removeprefix("/api")
        template, device_uid, known = None, None, False
        for route_method, route_template, pattern in _PATTERNS:
            found = pattern.match(relative)
            if found:
                known = True
                if route_method == method:
                    template, device_uid = route_template, found.groupdict().get("id")
                    break
        if template is None:
            return _error(
                405 if known else 404,
                "Request method not supported" if known else "No message available",
                path,
            )
        key = f"{method} {template}"
        self.calls[key] += 1
        fault = first_fault(self.faults, method, relative, template)
        if fault is not None:
            fault.claim()
            answer = _error(fault.status, "injected fault", path)
            if fault.retry_after is not None:
                answer.headers["Retry-After"] = retry_after_value(fault.retry_after)
            return answer
        refused = self._authenticate(request, path)
        if refused is not None:
            return refused
        if template == "/v2/account":
            return JSONResponse(
                {
                    "id": 1,
                    "uid": new_uid("account", 1),
                    "name": "Fake MSP",
                    "currency": "EUR",
                    "devicesStatus": {"numberOfDevices": len(self.devices)},
                }
            )
        if template == "/v2/system/pagination":
            return JSONResponse({"max": MAX_PAGE_SIZE})
        if template == "/v2/device/{deviceUid}/quickjob":
            return self._quick_job(device_uid or "", raw, path)
        if template == "/v2/alert/{alertUid}/resolve":
            alert = self.alerts.get(device_uid or "")  # the path's id is the alert's uid here
            if alert is None:
                return _error(404, "Alert not found", path)
            alert.resolved = True  # resolving a resolved alert changes nothing (the answer is the same)
            return Response(status_code=200)
        paging = self._paging(request, path)
        if isinstance(paging, Response):
            return paging
        page, size = paging
        records: list[Any]
        if template == "/v2/account/sites":
            records, key_name = list(self.sites.values()), "sites"
        elif template == "/v2/account/devices":
            records, key_name = [d for d in self.devices.values() if not d.deleted], "devices"
        else:
            muted = request.query_params.get("muted")
            if muted not in (None, "true", "false"):
                return _error(
                    400, f"Failed to convert value of type 'java.lang.String' to 'Boolean': {muted}", path
                )
            open_alerts = [a for a in self.alerts.values() if not a.resolved]
            if muted is not None:
                open_alerts = [a for a in open_alerts if a.muted == (muted == "true")]
            records, key_name = open_alerts, "alerts"
        chunk = self._rows(key_name, records[page * size : (page + 1) * size])
        more = (page + 1) * size < len(records)
        base = f"{request.url.scheme}://{request.url.netloc}{path}"
        extra = "&".join(f"{k}={v}" for k, v in request.query_params.items() if k not in ("page", "max"))

        def link(number: int) -> str:
            return f"{base}?max={size}&page={number}" + (f"&{extra}" if extra else "")

        return JSONResponse(
            {
                "pageDetails": {
                    "count": len(chunk),
                    "totalCount": len(records),
                    "prevPageUrl": link(page - 1) if page > 0 else None,
                    "nextPageUrl": link(page + 1) if more else None,
                },
                key_name: chunk,
            }
        )

    def _token(self, request: Request, raw: bytes) -> Response:
        self.token_requests += 1
        if request.headers.get("authorization") != PUBLIC_CLIENT:
            return _oauth(401, "unauthorized", "Full authentication is required to access this resource")
        if "application/x-www-form-urlencoded" not in request.headers.get("content-type", ""):
            return JSONResponse(
                {"error": "invalid_request", "error_description": "Missing grant type"}, status_code=400
            )
        form = {k: v[0] for k, v in parse_qs(raw.decode(errors="replace")).items()}
        if form.get("grant_type") != "password":
            return _oauth(400, "unsupported_grant_type", f"Unsupported grant type: {form.get('grant_type')}")
        username, password = form.get("username"), form.get("password")
        if not username or username not in self.users or self.users[username] != password:
            return JSONResponse(
                {"error": "invalid_grant", "error_description": "Bad credentials"}, status_code=400
            )
        token = secrets.token_urlsafe(24)
        self.tokens[token] = self.clock()
        return JSONResponse(
            {
                "access_token": token,
                "token_type": "bearer",
                "expires_in": int(self.token_lifetime) - 1,
                "scope": "default",
                "jti": new_uid("jti", len(self.tokens)),
            }
        )

    def _authenticate(self, request: Request, path: str) -> Response | None:
        header = request.headers.get("authorization", "")
        token = header[7:] if header.lower().startswith("bearer ") else None
        issued = self.tokens.get(token or "")
        if issued is None or self.clock() - issued >= self.token_lifetime:
            if token:
                self.tokens.pop(token, None)
            return _oauth(401, "invalid_token", "Access token expired or unknown")
        return None

    def _paging(self, request: Request, path: str) -> tuple[int, int] | Response:
        values: dict[str, int] = {}
        for name, default in (("page", 0), ("max", DEFAULT_PAGE_SIZE)):
            text = request.query_params.get(name)
            try:
                values[name] = default if text is None else int(text)
            except ValueError:
                message = (
                    f"Failed to convert value of type 'java.lang.String' to required type 'int': {text!r}"
                )
                return _error(400, message, path)
        if values["page"] < 0 or values["max"] < 1:
            return _error(400, "page must not be negative and max must be positive", path)
        return values["page"], min(values["max"], MAX_PAGE_SIZE)

    def _quick_job(self, device_uid: str, raw: bytes, path: str) -> Response:
        device = self.devices.get(device_uid)
        if device is None or device.deleted:
            return _error(404, "Device was not found.", path)
        try:
            body: Any = json.loads(raw) if raw else None
        except ValueError:
            return _error(400, "JSON parse error", path)
        if not isinstance(body, dict):
            return _error(400, "Required request body is missing", path)
        name, component = body.get("jobName"), body.get("jobComponent")
        if not isinstance(name, str) or not name.strip():
            return _error(400, "jobName: must not be blank", path)
        if not isinstance(component, dict) or not isinstance(component.get("componentUid"), str):
            return _error(400, "jobComponent.componentUid: must not be null", path)
        component_uid = component["componentUid"]
        if component_uid not in self.components:
            return _error(404, "Component was not found.", path)
        variables = component.get("variables") or []
        if not isinstance(variables, list) or not all(
            isinstance(v, dict) and isinstance(v.get("name"), str) and isinstance(v.get("value"), str)
            for v in variables
        ):
            return _error(400, "jobComponent.variables: each variable needs a name and a value", path)
        job = QuickJob(
            new_uid("job", len(self.quick_jobs) + 1),
            device_uid,
            component_uid,
            name,
            tuple((v["name"], v["value"]) for v in variables),
        )
        self.quick_jobs.append(job)
        return JSONResponse(
            {
                "job": {
                    "id": len(self.quick_jobs),
                    "uid": job.uid,
                    "name": name,
                    "status": "active",
                    "dateCreated": millis(self.now),
                },
                "jobComponents": [
                    {
                        "uid": component_uid,
                        "name": self.components[component_uid],
                        "variables": [{"name": k, "value": v} for k, v in job.variables],
                    }
                ],
            }
        )

    # -- records on the wire ---------------------------------------------------------------------

    def _rows(self, key: str, records: list[Any]) -> list[dict[str, Any]]:
        """One page's records on the wire (only the page's: a 50,000-device account stays cheap)."""
        if key == "devices":
            return [self._device(d) for d in records]
        if key == "alerts":
            return [self._alert(a) for a in records]
        counts: dict[str, list[int]] = {s.uid: [0, 0] for s in records}
        for device in self.devices.values():
            if device.site_uid in counts and not device.deleted:
                counts[device.site_uid][0] += 1
                counts[device.site_uid][1] += int(device.online)
        return [self._site(s, *counts[s.uid]) for s in records]

    def _site(self, site: FakeSite, total: int, online: int) -> dict[str, Any]:
        return {
            "id": site.id,
            "uid": site.uid,
            "accountUid": new_uid("account", 1),
            "name": site.name,
            "description": None,
            "notes": None,
            "onDemand": False,
            "splashtopAutoInstall": False,
            "proxySettings": None,
            "devicesStatus": {
                "numberOfDevices": total,
                "numberOfOnlineDevices": online,
                "numberOfOfflineDevices": total - online,
            },
            "autotaskCompanyName": site.autotask_company_name,
            "autotaskCompanyId": site.autotask_company_id,
            "portalUrl": f"https://{self.platform}.centrastage.net/csm/site/{site.id}",
        }

    def _device(self, device: FakeDevice) -> dict[str, Any]:
        site = self.sites[device.site_uid]
        row: dict[str, Any] = {
            "id": device.id,
            "uid": device.uid,
            "siteId": site.id,
            "siteUid": site.uid,
            "siteName": site.name,
            "deviceType": {
                "category": device.category,
                "type": "Laptop" if device.category == "Desktop" else "Server",
            },
            "hostname": device.hostname,
            "intIpAddress": f"10.0.0.{device.id % 250 + 1}",
            "operatingSystem": device.operating_system,
            "lastLoggedInUser": "FAKE\\user",
            "domain": "FAKE",
            "online": device.online,
            "suspended": False,
            "deleted": device.deleted,
            "lastSeen": millis(device.last_seen),
            "lastReboot": millis(self.now),
            "lastAuditDate": millis(self.now),
            "creationDate": millis(self.now),
            "udf": {},
            "snmpEnabled": False,
            "deviceClass": "device",
            "portalUrl": f"https://{self.platform}.centrastage.net/csm/search?qs=uid%3A{device.uid}",
            "antivirus": {"antivirusProduct": device.av_product, "antivirusStatus": device.av_status},
            "patchManagement": {
                "patchStatus": "FullyPatched",
                "patchesApprovedPending": 0,
                "patchesNotApproved": 0,
                "patchesInstalled": 12,
            },
            "softwareStatus": "Compliant",
        }
        for name, value in device.corrupt.items():
            if value is None:
                row.pop(name, None)
            else:
                row[name] = value
        return row

    def _alert(self, alert: FakeAlert) -> dict[str, Any]:
        device = self.devices[alert.device_uid]
        site = self.sites[device.site_uid]
        return {
            "alertUid": alert.uid,
            "priority": alert.priority,
            "diagnostics": alert.diagnostics,
            "resolved": alert.resolved,
            "resolvedBy": None,
            "resolvedOn": None,
            "muted": alert.muted,
            "ticketNumber": None,
            "timestamp": millis(alert.timestamp),
            "alertMonitorInfo": {"sendsEmails": False, "createsTicket": False},
            "alertContext": alert.context,
            "alertSourceInfo": {
                "deviceUid": device.uid,
                "deviceName": device.hostname,
                "siteUid": site.uid,
                "siteName": site.name,
            },
            "responseActions": [],
            "autoresolveMins": None,
        }
