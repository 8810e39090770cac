"""The HTTP face of the fake Automate: the token route, ClientId and bearer checks, lists with
paging, conditions and ordering, script execution, and fault hooks."""

from __future__ import annotations

import asyncio
import functools
import json
import secrets
from collections.abc import Callable
from datetime import datetime, timedelta

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from adapters.connectwise_automate.fake.query import ConditionError, parse_condition, row_key
from adapters.connectwise_automate.fake.seed import AutomateSeeding
from adapters.connectwise_automate.fake.store import (
    ALERT_FIELDS,
    API_PREFIX,
    CLIENT_FIELDS,
    COMPUTER_FIELDS,
    DEFAULT_PAGE_SIZE,
    LOCATION_FIELDS,
    MAX_PAGE_SIZE,
    RUN_FIELDS,
    FakeAlert,
    FakeClient,
    FakeComputer,
    FakeLocation,
    Fault,
    Row,
    ScriptRun,
    wire_time,
)
from adapters.testing.faults import AsgiFake, CallLog, PathFaultHooks, first_fault


class AutomateApiError(Exception):
    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}

    def response(self) -> JSONResponse:
        return JSONResponse({"Message": self.message}, status_code=self.status, headers=self.headers)


class AutomateFake(AutomateSeeding, AsgiFake, PathFaultHooks[Fault], CallLog):
    """One fake Automate server. Construct, seed, then point an adapter at `app`.

    `call_count` keys are `"METHOD /path"` with the path lower-cased (e.g. `"GET /computers"`)."""

    fault_type = Fault

    def _build_app(self) -> Starlette:
        return Starlette(routes=[Route(API_PREFIX + "/{path:path}", self._dispatch, methods=["GET", "POST"])])

    # -- wire rendering --------------------------------------------------------------------------

    def _client_row(self, client: FakeClient) -> Row:
        return {
            "Id": str(client.id),
            "Name": client.name,
            "Company": client.name,
            "City": client.city,
            "ExternalId": client.external_id,
        }

    def _location_row(self, location: FakeLocation) -> Row:
        client = self.clients[location.client_id]
        return {
            "Id": location.id,
            "Client": {"Id": client.id, "Name": client.name},
            "Name": location.name,
            "ExternalId": None,
        }

    def _computer_row(self, computer: FakeComputer) -> Row:
        client = self.clients[computer.client_id]
        location = self.locations[computer.location_id]
        return {
            "Id": str(computer.id),
            "ComputerName": computer.name,
            "FriendlyName": computer.name,
            # `LabTech.Models.Computer`: the nested client's Id is a string, the location's an int.
            "Client": {"Id": str(client.id), "Name": client.name},
            "Location": {"Id": location.id, "Name": location.name},
            "Status": "Online" if computer.online else "Offline",
            "Type": computer.type,
            "OperatingSystemName": computer.os,
            "DomainName": "CORP",
            "SerialNumber": computer.serial,
            "RemoteAgentLastContact": wire_time(computer.last_contact),
            "LastHeartbeat": wire_time(computer.last_contact),
            "DateAdded": wire_time(computer.date_added),
            "VirusScanner": (
                {"Id": str(computer.scanner[0]), "Name": computer.scanner[1]} if computer.scanner else None
            ),
            "AntivirusDefinitionDate": wire_time(computer.definitions),
            "LocalIPAddress": f"10.{computer.client_id % 250}.{computer.id // 250 % 250}.{computer.id % 250}",
            "IsMaintenanceModeEnabled": False,
            "RemoteAgentVersion": "2024.11.0.18",
        }

    def _alert_row(self, alert: FakeAlert) -> Row:
        computer = self.computers[alert.computer_id]
        client = self.clients[computer.client_id]
        location = self.locations[computer.location_id]
        return {
            "AlertId": alert.id,
            "Client": {"Id": client.id, "Name": client.name},
            "Computer": {
                "Id": computer.id,
                "Name": computer.name,
                "ComputerStatus": "Online" if computer.online else "Offline",
            },
            "Device": None,
            "Location": {"Id": location.id, "Name": location.name},
            "Monitor": {"Id": alert.monitor_id, "Name": alert.monitor},
            "AlertDate": wire_time(alert.at),
            "Severity": {"Id": alert.severity[0], "Name": alert.severity[1]},
            "Source": alert.source,
            "Message": alert.message,
            "FieldName": alert.field_name,
        }

    def _run_row(self, run: ScriptRun) -> Row:
        return {
            "Id": run.id,
            "ScriptId": run.script_id,
            "ComputerId": run.computer_id,
            "Name": self.scripts.get(run.script_id, ""),
            "User": self.username,
            "Status": run.status,
            "State": run.state,
            "HistoryDate": wire_time(run.at),
            "DiagnosticMessage": "",
        }

    # -- HTTP ------------------------------------------------------------------------------------

    async def _dispatch(self, request: Request) -> Response:
        path = "/" + request.path_params["path"].strip("/")
        key = f"{request.method} {path.lower()}"
        self.calls[key] += 1
        self.requests.append(
            {
                "method": request.method,
                "path": path,
                "params": dict(request.query_params),
                "authorization": request.headers.get("authorization"),
                "client_id": request.headers.get("clientid"),
            }
        )
        if self.latency:
            await asyncio.sleep(self.latency)
        try:
            response = await self._handle(request, path)
        except AutomateApiError as exc:
            response = exc.response()
        self.statuses[response.status_code] += 1
        return response

    async def _handle(self, request: Request, path: str) -> Response:
        fault = first_fault(self.faults, request.method, path)
        if fault is not None:
            fault.claim()
            text = "Too many requests" if fault.status == 429 else "An error has occurred."
            raise AutomateApiError(fault.status, text, fault.retry_headers())
        client_id = (request.headers.get("clientid") or "").strip().lower()
        if not client_id or client_id not in self.client_ids:
            raise AutomateApiError(403, "A registered ClientId header is required.")
        lowered = path.lower()
        if lowered == "/apitoken" and request.method == "POST":
            return await self._token(request)
        self._authorize(request)
        parts = lowered.strip("/").split("/")
        if request.method == "GET":
            if parts == ["clients"]:
                rows = [self._client_row(c) for c in self.clients.values()]
                return self._list(request, rows, CLIENT_FIELDS)
            if parts == ["locations"]:
                rows = [self._location_row(x) for x in self.locations.values()]
                return self._list(request, rows, LOCATION_FIELDS)
            if parts == ["computers"]:
                rows = [self._computer_row(c) for c in self.computers.values()]
                return self._list(request, rows, COMPUTER_FIELDS, corrupt=self._corrupt)
            if parts == ["alerts"]:
                rows = [self._alert_row(a) for a in self.alerts.values()]
                return self._list(request, rows, ALERT_FIELDS, "AlertId")
            if len(parts) == 2 and parts[0] == "computers":
                return JSONResponse(self._computer_row(self._computer(parts[1])))
            if len(parts) == 3 and parts[0] == "computers" and parts[2] == "scripthistory":
                computer = self._computer(parts[1])
                rows = [self._run_row(r) for r in self.script_runs if r.computer_id == computer.id]
                return self._list(request, rows, RUN_FIELDS)
        if request.method == "POST" and parts == ["batch", "scriptexecute"]:
            return await self._script_execute(request)
        raise AutomateApiError(404, f"No HTTP resource was found that matches the request URI '{path}'.")

    def _computer(self, raw: str) -> FakeComputer:
        if not raw.isdigit() or int(raw) not in self.computers:
            raise AutomateApiError(404, f"Computer {raw} was not found.")
        return self.computers[int(raw)]

    async def _token(self, request: Request) -> Response:
        try:
            body = json.loads(await request.body() or b"{}")
        except ValueError:
            raise AutomateApiError(400, "The request is invalid.") from None
        if not isinstance(body, dict):
            raise AutomateApiError(400, "The request is invalid.")
        fields = {str(k).lower(): v for k, v in body.items()}
        user = self.users.get(str(fields.get("username") or "").lower())
        if user is None or fields.get("password") != user.password:
            raise AutomateApiError(401, "Username or password is incorrect.")
        now = self.clock()
        if user.two_factor is not None:
            passcode = str(fields.get("twofactorpasscode") or "")
            if not passcode:
                return JSONResponse(self._token_result("", now, two_factor=True))
            if passcode != user.two_factor:
                raise AutomateApiError(401, "The two-factor passcode is incorrect.")
        token = secrets.token_urlsafe(24)
        self.tokens[token] = now + timedelta(seconds=self.token_lifetime)
        return JSONResponse(self._token_result(token, now))

    def _token_result(self, token: str, now: datetime, *, two_factor: bool = False) -> Row:
        expires = now + timedelta(seconds=self.token_lifetime)
        return {
            "AccessToken": token,
            "TokenType": "Bearer" if token else None,
            "ExpirationDate": expires.isoformat() if token else None,
            "AbsoluteExpirationDate": (now + timedelta(hours=8)).isoformat() if token else None,
            "UserId": "42",
            "InternalUserName": self.username,
            "IsTwoFactorRequired": two_factor,
            "IsInternalTwoFactorRequired": False,
            "SSOAccessToken": None,
        }

    def _authorize(self, request: Request) -> None:
        header = request.headers.get("authorization") or ""
        scheme, _, token = header.partition(" ")
        expires = self.tokens.get(token.strip()) if scheme.lower() == "bearer" else None
        if expires is None or expires <= self.clock():
            raise AutomateApiError(401, "Authorization has been denied for this request.")

    def _corrupt(self, row: Row) -> Row:
        overrides = self.corrupted.get(int(row.get("Id") or 0))
        if not overrides:
            return row
        row = dict(row)
        for name, value in overrides.items():
            if value is None:
                row.pop(name, None)
            else:
                row[name] = value
        return row

    def _list(
        self,
        request: Request,
        rows: list[Row],
        fields: frozenset[str],
        default_order: str = "Id",
        *,
        corrupt: Callable[[Row], Row] | None = None,
    ) -> Response:
        params = request.query_params
        try:
            page = int(params.get("page", "1"))
            size = int(params.get("pageSize", str(DEFAULT_PAGE_SIZE)))
        except ValueError:
            raise AutomateApiError(400, "The request is invalid.") from None
        if page < 1 or size < 1:
            raise AutomateApiError(400, "The request is invalid.")
        size = min(size, MAX_PAGE_SIZE)
        condition = params.get("condition")
        if condition and condition.strip():
            try:
                predicate = parse_condition(condition, fields)
            except ConditionError as exc:
                raise AutomateApiError(400, str(exc)) from None
            rows = [r for r in rows if predicate(r)]
        order = (params.get("orderBy") or f"{default_order} asc").strip()
        for clause in reversed([c.strip() for c in order.split(",") if c.strip()]):
            name, _, direction = clause.partition(" ")
            if name.lower() not in fields:
                raise AutomateApiError(400, f"Unknown field '{name}' in orderBy.")
            descending = direction.strip().lower() == "desc"
            rows.sort(key=functools.partial(row_key, name), reverse=descending)
        chunk = rows[(page - 1) * size : page * size]
        if corrupt is not None:
            chunk = [corrupt(r) for r in chunk]
        include = params.get("includeFields")
        if include:
            wanted = {f.strip().lower() for f in include.split(",") if f.strip()}
            chunk = [{k: v for k, v in r.items() if k.lower() in wanted} for r in chunk]
        return JSONResponse(chunk)

    async def _script_execute(self, request: Request) -> Response:
        try:
            body = json.loads(await request.body() or b"{}")
        except ValueError:
            raise AutomateApiError(400, "The request is invalid.") from None
        if not isinstance(body, dict):
            raise AutomateApiError(400, "The request is invalid.")
        if body.get("EntityType") != "Computer":
            raise AutomateApiError(400, "EntityType must be Computer for this fake.")
        ids = body.get("EntityIds")
        if not isinstance(ids, list) or not ids or not all(isinstance(i, int) for i in ids):
            raise AutomateApiError(400, "EntityIds must be a non-empty list of ids.")
        script_id = body.get("ScriptId")
        flags = body.get("OfflineActionFlags") or {}
        params = body.get("Parameters") or []
        if not isinstance(params, list) or not all(
            isinstance(p, dict) and set(p) == {"Key", "Value"} for p in params
        ):
            raise AutomateApiError(400, "Parameters must be a list of {Key, Value}.")
        results: list[Row] = []
        failed = False
        for entity in ids:
            computer = self.computers.get(entity)
            if script_id not in self.scripts:
                status, message = 1, f"Script {script_id} does not exist."
            elif computer is None:
                status, message = 1, f"Computer {entity} does not exist."
            elif not computer.online and flags.get("SkipsOfflineAgents"):
                status, message = 1, f"Computer {entity} is offline; the script was skipped."
            else:
                status, message = 0, ""
                self.script_runs.append(
                    ScriptRun(
                        id=next(self._ids["run"]),
                        script_id=int(script_id),
                        computer_id=entity,
                        parameters=params,
                        skips_offline=bool(flags.get("SkipsOfflineAgents")),
                        at=self.now,
                    )
                )
            failed = failed or status != 0
            details = {"ResultStatus": status, "ReasonCode": 0, "Message": message}
            results.append({"EntityId": entity, "ResultDetails": details})
        return JSONResponse({"ScriptResults": results, "ContainsUnsuccessfulResults": failed})
