"""The HTTP face of the fake N-central: JWT exchange and refresh, paged lists, service states,
scheduled tasks, N-central's error body, and fault hooks."""

from __future__ import annotations

import asyncio
import json
import secrets
from datetime import timedelta

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from adapters.ncentral.fake.seed import NcentralSeeding
from adapters.ncentral.fake.store import (
    DEFAULT_PAGE_SIZE,
    MAX_PAGE_SIZE,
    ORDER_WORDS,
    SO_ID,
    SO_NAME,
    DirectTask,
    FakeCustomer,
    FakeDevice,
    FakeService,
    FakeSite,
    Fault,
    Row,
    iso,
    local_iso,
    local_text,
)
from adapters.testing.faults import AsgiFake, CallLog, PathFaultHooks, first_fault, sort_key


class NcentralApiError(Exception):
    REASONS = {
        400: "BAD REQUEST",
        401: "UNAUTHORIZED",
        403: "FORBIDDEN",
        404: "NOT FOUND",
        409: "CONFLICT",
        429: "TOO MANY REQUESTS",
        500: "INTERNAL SERVER ERROR",
        503: "SERVICE UNAVAILABLE",
    }

    def __init__(self, status: int, detail: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.headers = headers or {}

    def body(self) -> Row:
        reason = self.REASONS.get(self.status, "ERROR")
        return {"status": self.status, "message": f"[ID={secrets.token_hex(2)}] {reason}: {self.detail}"}

    def response(self) -> JSONResponse:
        return JSONResponse(self.body(), status_code=self.status, headers=self.headers)


def _expiry(value: str | None, default: int) -> int:
    if not value:
        return default
    text = value.strip().lower()
    unit = {"s": 1, "m": 60, "h": 3600}.get(text[-1:])
    if unit is None or not text[:-1].isdigit():
        raise NcentralApiError(400, f"BadRequestException: Invalid expiry override '{value}'.")
    return int(text[:-1]) * unit


class NcentralFake(NcentralSeeding, AsgiFake, PathFaultHooks[Fault], CallLog):
    """One fake N-central server. Construct, seed, then point an adapter at `app`.

    `call_count` keys are `"METHOD /api/path"` with device ids replaced by `{id}`."""

    fault_type = Fault

    def _build_app(self) -> Starlette:
        return Starlette(
            routes=[Route("/api/{path:path}", self._dispatch, methods=["GET", "POST", "PUT", "DELETE"])]
        )

    # -- wire rendering --------------------------------------------------------------------------

    def _customer_row(self, customer: FakeCustomer) -> Row:
        return {
            "customerId": str(customer.id),
            "customerName": customer.name,
            "orgUnitType": "CUSTOMER",
            "parentId": str(SO_ID),
            "externalId": customer.external_id,
            "externalId2": None,
            "city": "Ottawa",
            "country": "CA",
            "isSystem": False,
            "isServiceOrg": False,
        }

    def _site_row(self, site: FakeSite) -> Row:
        return {
            "siteId": str(site.id),
            "siteName": site.name,
            "orgUnitType": "SITE",
            "parentId": str(site.customer_id),
            "externalId": None,
            "city": "Ottawa",
            "country": "CA",
        }

    def _device_row(self, device: FakeDevice) -> Row:
        customer = self.customers[device.customer_id]
        site = self.sites.get(device.site_id) if device.site_id is not None else None
        row: Row = {
            "deviceId": device.id,
            "uri": f"10.0.{device.customer_id % 250}.{device.id % 250}",
            "remoteControlUri": "",
            "sourceUri": "",
            "longName": device.name,
            "deviceClass": device.device_class,
            "description": "",
            "isProbe": False,
            "osId": device.os_id,
            "supportedOs": device.os,
            "discoveredName": device.name,
            "deviceClassLabel": device.device_class,
            "supportedOsLabel": device.os,
            "lastLoggedInUser": "-",
            "stillLoggedIn": "",
            "licenseMode": "Professional",
            "orgUnitId": site.id if site else customer.id,
            "soId": SO_ID,
            "soName": SO_NAME,
            "customerId": customer.id,
            "customerName": customer.name,
            "siteId": site.id if site else None,
            "siteName": site.name if site else None,
            "applianceId": device.id % 1_000_000_007,
            "lastApplianceCheckinTime": iso(device.last_checkin),
            "lastApplianceCheckinTimeLocal": local_iso(device.last_checkin, self.server_zone),
        }
        return row

    def _service_row(self, device: FakeDevice, service: FakeService) -> Row:
        return {
            "taskId": service.task_id,
            "serviceId": service.service_id,
            "timeToStale": 195,
            "taskNote": "Added by service template [ Workstations - Windows ]",
            "taskIdent": service.task_ident,
            "stateStatus": service.state,
            "lastUpdate": None,
            "lastDataId": None,
            "createdOn": None,
            "moduleName": service.module,
            "serviceItemId": service.service_id * 100,
            "lastScanTime": local_text(device.last_checkin or self.now, millis=True) + " +0000",
            "isManagedTask": True,
            "transitionTime": local_text(service.transition or self.now, millis=True),
            "applianceId": device.id % 1_000_000_007,
            "applianceName": device.name,
        }

    # -- HTTP ------------------------------------------------------------------------------------

    @staticmethod
    def _key(method: str, path: str) -> str:
        parts = ["{id}" if p.isdigit() else p for p in path.strip("/").split("/")]
        return f"{method} /" + "/".join(parts)

    async def _dispatch(self, request: Request) -> Response:
        path = "/api/" + request.path_params["path"].strip("/")
        path = path.rstrip("/")
        self.calls[self._key(request.method, path)] += 1
        body = await request.body()
        self.requests.append(
            {
                "method": request.method,
                "path": path,
                "params": dict(request.query_params),
                "authorization": request.headers.get("authorization"),
                "content_type": request.headers.get("content-type"),
                "headers": dict(request.headers),
                "body": body,
            }
        )
        if self.latency:
            await asyncio.sleep(self.latency)
        try:
            response = await self._handle(request, path, body)
        except NcentralApiError as exc:
            response = exc.response()
        self.statuses[response.status_code] += 1
        return response

    async def _handle(self, request: Request, path: str, body: bytes) -> Response:
        fault = first_fault(self.faults, None, path)
        if fault is not None:
            fault.claim()
            if fault.embedded:
                error = NcentralApiError(fault.status, "UnexpectedDmsResponseException: DMS error.")
                return JSONResponse(error.body(), status_code=200)
            detail = (
                "TooManyRequestsException: Too many concurrent requests."
                if fault.status == 429
                else "UnexpectedDmsResponseException: Unexpected response from DMS."
            )
            raise NcentralApiError(fault.status, detail, fault.retry_headers())
        method = request.method
        if path == "/api/auth/authenticate" and method == "POST":
            return self._authenticate(request)
        if path == "/api/auth/refresh" and method == "POST":
            return self._refresh(request, body)
        self._authorize(request)
        parts = path.strip("/").split("/")[1:]
        if method == "GET":
            if parts == ["auth", "validate"]:
                return JSONResponse({"message": "The token is valid."})
            if parts == ["customers"]:
                return self._page(request, [self._customer_row(c) for c in self.customers.values()])
            if parts == ["sites"]:
                return self._page(request, [self._site_row(s) for s in self.sites.values()])
            if parts == ["devices"]:
                return self._devices(request, list(self.devices.values()))
            if len(parts) == 3 and parts[0] == "org-units" and parts[2] == "devices":
                unit = parts[1]
                scoped = [
                    d
                    for d in self.devices.values()
                    if unit in (str(d.customer_id), str(d.site_id), str(SO_ID))
                ]
                return self._devices(request, scoped)
            if len(parts) == 2 and parts[0] == "devices":
                device = self._device(parts[1])
                return JSONResponse({"data": self._device_row(device), "_links": {}})
            if len(parts) == 3 and parts[0] == "devices" and parts[2] == "service-monitor-status":
                return self._service_status(self._device(parts[1]))
            if len(parts) == 2 and parts[0] == "scheduled-tasks":
                return self._task(parts[1])
        if method == "POST" and parts == ["scheduled-tasks", "direct"]:
            return self._direct_task(body)
        raise NcentralApiError(404, f"ResourceNotFoundException: No endpoint {method} {path}.")

    # -- auth --------------------------------------------------------------------------------------

    def _issue(self, request: Request) -> Response:
        now = self.clock()
        access_seconds = _expiry(request.headers.get("x-access-expiry-override"), self.access_lifetime)
        refresh_seconds = _expiry(request.headers.get("x-refresh-expiry-override"), self.refresh_lifetime)
        access, refresh = secrets.token_urlsafe(24), secrets.token_urlsafe(24)
        self.access_tokens[access] = now + timedelta(seconds=access_seconds)
        self.refresh_tokens[refresh] = now + timedelta(seconds=refresh_seconds)
        return JSONResponse(
            {
                "tokens": {
                    "access": {"token": access, "type": "Bearer", "expirySeconds": access_seconds},
                    "refresh": {"token": refresh, "type": "Body", "expirySeconds": refresh_seconds},
                },
                "refresh": "/api/auth/refresh",
                "validate": "/api/auth/validate",
            }
        )

    def _authenticate(self, request: Request) -> Response:
        scheme, _, token = (request.headers.get("authorization") or "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise NcentralApiError(401, "UnauthorizedException: Missing authorization header bearer.")
        if not secrets.compare_digest(token.strip(), self.api_token):
            raise NcentralApiError(401, "UnauthorizedException: Invalid N-central User-API token.")
        return self._issue(request)

    def _refresh(self, request: Request, body: bytes) -> Response:
        token = body.decode("utf-8", "replace").strip()
        expires = self.refresh_tokens.pop(token, None)
        if expires is None or expires <= self.clock():
            raise NcentralApiError(401, "UnauthorizedException: Invalid or expired refresh token.")
        return self._issue(request)

    def _authorize(self, request: Request) -> None:
        scheme, _, token = (request.headers.get("authorization") or "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise NcentralApiError(401, "UnauthorizedException: Missing authorization header bearer.")
        expires = self.access_tokens.get(token.strip())
        if expires is None or expires <= self.clock():
            raise NcentralApiError(401, "UnauthorizedException: The access token is invalid or expired.")

    # -- lists -------------------------------------------------------------------------------------

    def _paging(self, request: Request) -> tuple[int, int]:
        params = request.query_params
        try:
            number = int(params.get("pageNumber", "1"))
        except ValueError:
            raise NcentralApiError(400, "BadRequestException: Invalid pageNumber format.") from None
        try:
            size = int(params.get("pageSize", str(DEFAULT_PAGE_SIZE)))
        except ValueError:
            raise NcentralApiError(400, "BadRequestException: Invalid pageSize format.") from None
        if number < 1:
            raise NcentralApiError(400, "BadRequestException: Invalid pageNumber: must be 1 or more.")
        if not 1 <= size <= MAX_PAGE_SIZE:
            raise NcentralApiError(
                400, f"BadRequestException: Invalid pageSize: must be between 1 and {MAX_PAGE_SIZE}."
            )
        return number, size

    def _page(self, request: Request, rows: list[Row]) -> Response:
        number, size = self._paging(request)
        sort_by = request.query_params.get("sortBy")
        if sort_by:
            if rows and sort_by not in rows[0]:
                raise NcentralApiError(400, f"BadRequestException: Invalid sortBy field '{sort_by}'.")
            order = (request.query_params.get("sortOrder") or "ASC").lower()
            if order not in ORDER_WORDS:
                raise NcentralApiError(400, f"BadRequestException: Invalid sortOrder '{order}'.")
            rows.sort(key=lambda r: sort_key(r.get(sort_by)), reverse=ORDER_WORDS[order])
        total = len(rows)
        pages = (total + size - 1) // size
        chunk = rows[(number - 1) * size : number * size]
        base = request.url.path

        def link(n: int) -> str:
            return f"{base}?pageNumber={n}&pageSize={size}"

        links: Row = {"firstPage": link(1), "lastPage": link(max(pages, 1))}
        if number > 1:
            links["previousPage"] = link(number - 1)
        if number < pages:
            links["nextPage"] = link(number + 1)
        return JSONResponse(
            {
                "data": chunk,
                "pageNumber": number,
                "pageSize": size,
                "itemCount": len(chunk),
                "totalItems": total,
                "totalPages": pages,
                "_links": links,
            }
        )

    def _devices(self, request: Request, devices: list[FakeDevice]) -> Response:
        raw_filter = request.query_params.get("filterId")
        if raw_filter:
            if not raw_filter.isdigit():
                raise NcentralApiError(400, f"BadRequestException: Invalid filterId format: '{raw_filter}'.")
            predicate = self.filters.get(int(raw_filter))
            if predicate is None:
                raise NcentralApiError(404, f"ResourceNotFoundException: Filter {raw_filter} was not found!")
            devices = [d for d in devices if predicate(d)]
        rows: list[Row] = []
        for device in devices:
            row = self._device_row(device)
            if self.old_server:
                row.pop("lastApplianceCheckinTime", None)
                row.pop("lastApplianceCheckinTimeLocal", None)
            for name, value in self.corrupted.get(device.id, {}).items():
                if value is None:
                    row.pop(name, None)
                else:
                    row[name] = value
            rows.append(row)
        return self._page(request, rows)

    def _device(self, raw: str) -> FakeDevice:
        if not raw.isdigit():
            raise NcentralApiError(400, f"BadRequestException: Invalid deviceId format: '{raw}'.")
        device = self.devices.get(int(raw))
        if device is None:
            raise NcentralApiError(404, f"ResourceNotFoundException: Device with ID {raw} was not found!")
        return device

    def _service_status(self, device: FakeDevice) -> Response:
        mode = self.broken_status.get(device.id)
        if mode == "missing":
            raise NcentralApiError(
                404, f"ResourceNotFoundException: No monitoring data for device {device.id}."
            )
        if mode == "malformed":
            return JSONResponse({"data": {"error": "unexpected"}, "totalItems": "n/a"})
        rows = [self._service_row(device, s) for s in device.services]
        return JSONResponse({"data": rows, "totalItems": len(rows)})

    # -- tasks -------------------------------------------------------------------------------------

    def _direct_task(self, body: bytes) -> Response:
        try:
            task = json.loads(body or b"{}")
        except ValueError:
            raise NcentralApiError(400, "BadRequestException: Malformed JSON request body.") from None
        if not isinstance(task, dict):
            raise NcentralApiError(400, "BadRequestException: Malformed JSON request body.")
        for name in ("name", "itemId", "taskType", "customerId", "deviceId"):
            if task.get(name) in (None, ""):
                raise NcentralApiError(400, f"BadRequestException: Missing required field {name}.")
        if task["taskType"] not in ("Script", "AutomationPolicy", "MacScript"):
            raise NcentralApiError(400, f"BadRequestException: Invalid taskType '{task['taskType']}'.")
        for name in ("itemId", "customerId", "deviceId"):
            if not isinstance(task[name], int) or isinstance(task[name], bool):
                raise NcentralApiError(400, f"BadRequestException: Invalid {name} format.")
        credential = task.get("credential")
        if not (isinstance(credential, dict) and credential.get("type")):
            # `credential` (and its `type`) are required in `DirectSupportTask`.
            raise NcentralApiError(400, "BadRequestException: Invalid credential: type is required.")
        parameters = task.get("parameters") or []
        if not isinstance(parameters, list):
            raise NcentralApiError(400, "BadRequestException: parameters must be an array.")
        for index, parameter in enumerate(parameters):
            # `ScheduledTaskParameter`: name, description (both non-empty) and type are required.
            if not isinstance(parameter, dict):
                raise NcentralApiError(400, f"BadRequestException: parameters[{index}] is not an object.")
            for name in ("name", "description", "type"):
                if not str(parameter.get(name) or "").strip():
                    raise NcentralApiError(
                        400, f"BadRequestException: parameters[{index}].{name} must not be empty."
                    )
            if parameter["type"] not in ("string", "integer", "boolean", "text", "dword", "password"):
                raise NcentralApiError(400, f"BadRequestException: parameters[{index}].type is invalid.")
        item = self.repository.get(task["itemId"])
        if item is None:
            raise NcentralApiError(
                404, f"ResourceNotFoundException: No remote execution item {task['itemId']}."
            )
        if not item.api_enabled:
            raise NcentralApiError(
                403,
                f"ScriptNotRunnableException: Remote Execution Item {item.id} is not enabled for API access.",
            )
        device = self.devices.get(task["deviceId"])
        if device is None:
            raise NcentralApiError(
                404, f"ResourceNotFoundException: Device with ID {task['deviceId']} was not found!"
            )
        if device.customer_id != task["customerId"]:
            raise NcentralApiError(
                400, f"BadRequestException: Invalid customerId {task['customerId']} for device {device.id}."
            )
        record = DirectTask(next(self._ids["task"]), task, self.now)
        self.tasks[record.id] = record
        return JSONResponse(
            {"data": {"taskId": record.id}, "_links": {"status": f"/api/scheduled-tasks/{record.id}/status"}},
            status_code=201,
        )

    def _task(self, raw: str) -> Response:
        task = self.tasks.get(int(raw)) if raw.isdigit() else None
        if task is None:
            raise NcentralApiError(404, f"ResourceNotFoundException: Task with ID {raw} was not found!")
        body = task.body
        return JSONResponse(
            {
                "data": {
                    "taskId": task.id,
                    "name": body["name"],
                    "itemId": body["itemId"],
                    "type": body["taskType"],
                    "customerId": body["customerId"],
                    "isEnabled": True,
                    "deviceIds": [str(body["deviceId"])],
                },
                "_links": {"status": f"/api/scheduled-tasks/{task.id}/status"},
            }
        )
