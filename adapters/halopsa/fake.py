"""A stateful fake of the HaloPSA REST API and its auth server, as an ASGI app.

Use it in-process with `httpx.ASGITransport(app=fake.app)` (any host routes to it), or serve
`fake.app` with uvicorn for a demo. It behaves like Halo where the adapter depends on it (sources
in `adapter.py`):

- `POST /auth/token` takes the form `grant_type=client_credentials, client_id, client_secret,
  scope`, plus `?tenant=` when the fake is built with a tenant; bad credentials are 400
  `{"error": "invalid_client", ...}` (OAuth2). Tokens expire after `token_lifetime` seconds of the
  fake's clock (`advance()`), or at once with `expire_tokens()`; an expired or unknown Bearer token
  is a 401. Paths are case-insensitive, as Halo's are (`/api/Client` = `/api/client`).
- Lists page with `pageinate=true&page_size&page_no` (1-based) and answer
  `{"page_no", "page_size", "record_count", <key>: [...]}` (`clients`, `sites`, `contracts`,
  `tickets`, `actions`, `assets`, `invoices`); lookups (`/Status`, `/TicketType`, `/Priority`,
  `/Team`) are bare arrays. Halo documents no page-size ceiling; `max_page_size` can impose one.
- Filters the adapter uses: `client_id`, `search`, `open_only`, `ticket_id`, `inventory_number`,
  `contract_id`, `type`.
- Writes are POSTs of a JSON array; an element with `id` updates that record. Missing required
  fields and unknown references are 400 with a prose message as a JSON string, e.g. "An Outcome must
  be entered for this Action" (Halo's wording, quoted in CIPP-API); the other messages are
  illustrative. `POST /RecurringInvoice` replaces the invoice's lines with the ones sent (omitted
  lines are deleted), which is why every line must be sent back. An action or ticket write that sets
  status 9 (Halo's default "Closed") marks the ticket `hasbeenclosed`.

Test and demo hooks: `seed_demo` (deterministic), `add_*`, fault injection (`fail_next`,
`rate_limit`, `timeout_next`, `clear_faults`, `set_latency`), a clock (`advance`,
`expire_tokens`), and request records (`requests`, `call_count`, `reset_calls`).
"""

from __future__ import annotations

import asyncio
import copy
import itertools
import secrets
import urllib.parse
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from adapters.testing.faults import (
    AsgiFake,
    RecordedRequest,
    RouteTable,
    ScriptedFault,
    TimeoutHooks,
    count_calls,
    decode_body,
    first_fault,
    lowered_headers,
)

Row = dict[str, Any]

DEFAULT_PAGE_SIZE = 50


class HaloApiError(Exception):
    """Raised inside handlers; rendered as Halo renders validation failures."""

    def __init__(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        super().__init__(str(body))
        self.status = status
        self.body = body
        self.headers = headers or {}

    def response(self) -> Response:
        if self.body is None:
            return Response(status_code=self.status, headers=self.headers)
        return JSONResponse(self.body, status_code=self.status, headers=self.headers)


def invalid(message: str) -> HaloApiError:
    return HaloApiError(400, message)


@dataclass
class Fault(ScriptedFault):
    """A scripted failure on requests matching `method` and API path template (e.g.
    `/Tickets/{id}`; None = any), answered with Halo's error body."""

    def fire(self) -> Response:
        self.claim()
        headers = self.retry_headers()
        if self.status == 429:
            return JSONResponse("Too many requests, please retry later.", status_code=429, headers=headers)
        message = "An error has occurred." if self.status >= 500 else f"injected {self.status}"
        return JSONResponse(
            {"ClassName": "System.Exception", "Message": message}, self.status, headers=headers
        )


@dataclass
class DemoSeed:
    client_ids: list[int] = field(default_factory=list)
    site_ids: dict[int, int] = field(default_factory=dict)
    contract_ids: dict[int, int] = field(default_factory=dict)
    recurring_invoice_ids: dict[int, int] = field(default_factory=dict)
    team_ids: dict[str, int] = field(default_factory=dict)
    status_ids: dict[str, int] = field(default_factory=dict)
    type_ids: dict[str, int] = field(default_factory=dict)
    priority_ids: dict[str, int] = field(default_factory=dict)
    asset_type_id: int = 0
    item_ids: dict[str, int] = field(default_factory=dict)
    new_status_id: int = 1
    closed_status_id: int = 9


Handler = Callable[[Request, dict[str, int]], Any]


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3]


def _int(value: Any, message: str) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        raise invalid(message) from None


def _number(value: Any, message: str) -> float:
    if isinstance(value, bool):
        raise invalid(message)
    try:
        return float(Decimal(str(value)))
    except (ArithmeticError, ValueError):
        raise invalid(message) from None


def _truthy(value: str | None) -> bool:
    return (value or "").lower() in ("true", "1", "yes")


class HaloFake(AsgiFake, TimeoutHooks[Fault]):
    """One fake Halo instance. Construct, seed, then point an adapter at `app`."""

    fault_type = Fault

    def __init__(
        self,
        *,
        client_id: str = "connector-app",
        client_secret: str = "halo-secret-1",  # noqa: S107 - the fake's own test credential
        tenant: str | None = None,
        token_lifetime: float = 3600.0,
        max_page_size: int | None = None,
    ) -> None:
        self.client_id = client_id
        self.client_secret = client_secret
        self.tenant = tenant
        self.token_lifetime = token_lifetime
        self.max_page_size = max_page_size
        self.clock = 0.0
        self.tokens: dict[str, float] = {}
        self.token_requests: list[dict[str, str]] = []
        self.clients: dict[int, Row] = {}
        self.sites: dict[int, Row] = {}
        self.contracts: dict[int, Row] = {}
        self.recurring_invoices: dict[int, Row] = {}
        self.items: dict[int, Row] = {}
        self.statuses: dict[int, Row] = {}
        self.ticket_types: dict[int, Row] = {}
        self.priorities: list[Row] = []
        self.teams: dict[int, Row] = {}
        self.outcomes: dict[int, Row] = {}
        self.tickets: dict[int, Row] = {}
        self.actions: dict[int, Row] = {}
        self.assets: dict[int, Row] = {}
        self.asset_types: dict[int, Row] = {}
        self.asset_fields: list[Row] = []
        self._ids: dict[str, itertools.count[int]] = {}
        self._invoice_ids = itertools.count(-1, -1)
        self._line_ids = itertools.count(24000)
        self.faults: list[Fault] = []
        self.latency = 0.0
        self.calls: Counter[str] = Counter()
        self.requests: list[RecordedRequest] = []
        self._routes: RouteTable[Handler] = RouteTable(ignore_case=True, signed_ids=True)
        self._build_routes()
        self.app = Starlette(
            routes=[
                Route("/auth/token", self._token, methods=["POST"]),
                Route("/api/{path:path}", self._dispatch, methods=["GET", "POST", "DELETE", "PUT"]),
            ]
        )

    # -- wiring helpers ----------------------------------------------------------------------

    def credentials(self) -> dict[str, Any]:
        creds: dict[str, Any] = {"client_id": self.client_id, "client_secret": self.client_secret}
        if self.tenant:
            creds["tenant"] = self.tenant
        return creds

    def _next(self, kind: str, start: int = 1) -> int:
        if kind not in self._ids:
            self._ids[kind] = itertools.count(start)
        return next(self._ids[kind])

    # -- clock and tokens --------------------------------------------------------------------

    def advance(self, seconds: float) -> None:
        self.clock += seconds

    def expire_tokens(self) -> None:
        self.tokens.clear()

    # -- seeding -----------------------------------------------------------------------------

    def add_client(self, name: str, *, inactive: bool = False) -> Row:
        cid = self._next("client", 12)
        row = {"id": cid, "name": name, "inactive": inactive, "toplevel_id": 1, "toplevel_name": "Customers"}
        self.clients[cid] = row
        return row

    def add_site(self, client_id: int, name: str = "Main", *, inactive: bool = False) -> Row:
        sid = self._next("site", 30)
        row = {
            "id": sid,
            "name": name,
            "client_id": client_id,
            "client_name": self.clients[client_id]["name"],
            "inactive": inactive,
        }
        self.sites[sid] = row
        return row

    def add_contract(self, client_id: int, ref: str, *, expired: bool = False) -> Row:
        kid = self._next("contract", 100)
        row = {
            "id": kid,
            "client_id": client_id,
            "client_name": self.clients[client_id]["name"],
            "ref": ref,
            "start_date": "2025-01-01T00:00:00",
            "expired": expired,
            "billingperiod": 1,
        }
        self.contracts[kid] = row
        return row

    def add_recurring_invoice(self, client_id: int, contract_id: int | None = None) -> Row:
        rid = next(self._invoice_ids)  # recurring invoice templates have negative ids
        row = {
            "id": rid,
            "client_id": client_id,
            "client_name": self.clients[client_id]["name"],
            "contract_id": contract_id if contract_id is not None else -1,
            "lines": [],
        }
        self.recurring_invoices[rid] = row
        return row

    def add_item(self, name: str, *, code: str = "", price: float = 0.0, cost: float = 0.0) -> Row:
        iid = self._next("item", 780)
        row = {"id": iid, "name": name, "code": code, "baseprice": price, "costprice": cost}
        self.items[iid] = row
        return row

    def add_invoice_line(
        self, invoice_id: int, item_id: int, qty: float, unit_price: float, **extra: Any
    ) -> Row:
        invoice = self.recurring_invoices[invoice_id]
        line = self._new_line(
            invoice, {"_itemid": item_id, "qty_order": qty, "unit_price": unit_price, **extra}
        )
        invoice["lines"].append(line)
        return line

    def add_status(self, sid: int, name: str) -> Row:
        row = {"id": sid, "name": name, "shortname": name[:4], "type": 0, "sequence": sid}
        self.statuses[sid] = row
        return row

    def add_ticket_type(self, tid: int, name: str, *, sla_id: int = 1) -> Row:
        row = {"id": tid, "name": name, "visible": True, "sla_id": sla_id, "initial_status": 1}
        self.ticket_types[tid] = row
        return row

    def add_priority(self, sla_id: int, priority_id: int, name: str) -> Row:
        row = {
            "id": len(self.priorities) + 1,
            "priorityid": priority_id,
            "slaid": sla_id,
            "name": name,
            "priorityorder": priority_id,
        }
        self.priorities.append(row)
        return row

    def add_team(self, tid: int, name: str) -> Row:
        row = {"id": tid, "name": name, "inactive": False, "forrequests": True, "department_id": 1}
        self.teams[tid] = row
        return row

    def add_outcome(self, oid: int, name: str) -> Row:
        row = {"id": oid, "outcome": name, "buttonname": name}
        self.outcomes[oid] = row
        return row

    def add_asset_type(self, tid: int, name: str) -> Row:
        row = {"id": tid, "name": name}
        self.asset_types[tid] = row
        return row

    def add_asset_field(self, fid: int, name: str, label: str) -> Row:
        row = {"id": fid, "name": name, "label": label}
        self.asset_fields.append(row)
        for asset in self.assets.values():
            asset["customfields"].append({**row, "value": None})
        return row

    def add_asset(self, client_id: int, inventory_number: str, *, assettype_id: int = 1, **extra: Any) -> Row:
        site = next((s for s in self.sites.values() if s["client_id"] == client_id), None)
        return self._create_asset(
            {
                "client_id": client_id,
                "site_id": site["id"] if site else 0,
                "assettype_id": assettype_id,
                "inventory_number": inventory_number,
                "key_field": inventory_number,
                **extra,
            },
            check=False,
        )

    def add_ticket(self, client_id: int, summary: str, **fields: Any) -> Row:
        return self._create_ticket({"client_id": client_id, "summary": summary, **fields})

    def seed_demo(self, *, clients: int = 12, devices_per_client: int = 0) -> DemoSeed:
        """A deterministic instance: lookups, `clients` clients each with a site, a contract with a
        recurring invoice, and optionally `devices_per_client` assets."""
        seed = DemoSeed()
        for sid, name in ((1, "New"), (2, "In Progress"), (3, "Waiting on Customer"), (9, "Closed")):
            seed.status_ids[name] = self.add_status(sid, name)["id"]
        for tid, name in ((1, "Incident"), (3, "Security Alert"), (4, "Service Request")):
            seed.type_ids[name] = self.add_ticket_type(tid, name)["id"]
        for pid, name in ((1, "Critical"), (2, "High"), (3, "Medium"), (4, "Low")):
            seed.priority_ids[name] = self.add_priority(1, pid, name)["priorityid"]
        for tid, name in ((1, "Service Desk"), (2, "Security Operations")):
            seed.team_ids[name] = self.add_team(tid, name)["id"]
        for oid, name in ((7, "Private Note"), (8, "Note"), (9, "Close")):
            self.add_outcome(oid, name)
        seed.asset_type_id = self.add_asset_type(1, "Workstation")["id"]
        self.add_asset_type(2, "Server")
        self.add_asset_field(151, "CFavProduct", "AV Product")
        self.add_asset_field(152, "CFavStatus", "AV Status")
        for code, name, price, cost in (
            ("EDR-SEAT", "Endpoint detection & response (per endpoint)", 6.0, 2.5),
            ("AV-SEAT", "Managed antivirus (per endpoint)", 3.0, 1.1),
            ("MS-GOLD", "Managed services - Gold", 825.0, 0.0),
        ):
            seed.item_ids[code] = self.add_item(name, code=code, price=price, cost=cost)["id"]
        for n in range(1, clients + 1):
            client = self.add_client(f"Client {n:03d} Ltd")
            cid = client["id"]
            seed.client_ids.append(cid)
            seed.site_ids[cid] = self.add_site(cid, "Head Office")["id"]
            contract = self.add_contract(cid, f"MSA-{n:03d}")
            seed.contract_ids[cid] = contract["id"]
            invoice = self.add_recurring_invoice(cid, contract["id"])
            seed.recurring_invoice_ids[cid] = invoice["id"]
            self.add_invoice_line(invoice["id"], seed.item_ids["MS-GOLD"], 1, 825.0)
            for d in range(1, devices_per_client + 1):
                self.add_asset(cid, f"C{n:03d}-WS{d:03d}", assettype_id=seed.asset_type_id)
        return seed

    # -- fault injection and inspection ---------------------------------------------------------

    def call_count(self, method: str | None = None, path: str | None = None) -> int:
        """Requests seen for a method and/or route template (`/Tickets`, `/Tickets/{id}`,
        `/auth/token`)."""
        return count_calls(self.calls, method, path, ignore_case=True)

    def reset_calls(self) -> None:
        self.calls.clear()
        self.requests.clear()

    def tickets_for(self, client_id: int) -> list[Row]:
        return [t for t in self.tickets.values() if t["client_id"] == client_id]

    def actions_for(self, ticket_id: int) -> list[Row]:
        return [a for a in self.actions.values() if a["ticket_id"] == ticket_id]

    def assets_for(self, client_id: int) -> list[Row]:
        return [a for a in self.assets.values() if a["client_id"] == client_id]

    # -- auth server -------------------------------------------------------------------------

    async def _token(self, request: Request) -> Response:
        self.calls["POST /auth/token"] += 1
        if self.latency:
            await asyncio.sleep(self.latency)
        for fault in self.faults:
            if fault.path is not None and fault.matches("POST", "/auth/token"):
                return fault.fire()
        form = dict(urllib.parse.parse_qsl((await request.body()).decode()))
        self.token_requests.append(form)
        self.requests.append(
            RecordedRequest(
                "POST",
                "/auth/token",
                "/auth/token",
                dict(request.query_params),
                lowered_headers(request),
                form,
            )
        )
        if "application/x-www-form-urlencoded" not in request.headers.get("content-type", ""):
            return JSONResponse({"error": "invalid_request"}, 400)
        if form.get("grant_type") != "client_credentials":
            return JSONResponse({"error": "unsupported_grant_type"}, 400)
        if self.tenant is not None and request.query_params.get("tenant") != self.tenant:
            return JSONResponse({"error": "invalid_request", "error_description": "Unknown tenant"}, 400)
        if form.get("client_id") != self.client_id or form.get("client_secret") != self.client_secret:
            return JSONResponse(
                {"error": "invalid_client", "error_description": "Invalid client credentials"}, 400
            )
        if form.get("scope", "all") not in ("all", "all:standard", "read:tickets edit:tickets"):
            return JSONResponse({"error": "invalid_scope"}, 400)
        token = secrets.token_urlsafe(24)
        self.tokens[token] = self.clock + self.token_lifetime
        return JSONResponse(
            {
                "scope": form.get("scope", "all"),
                "token_type": "Bearer",
                "access_token": token,
                "expires_in": int(self.token_lifetime),
            }
        )

    def _authenticate(self, request: Request) -> None:
        auth = request.headers.get("authorization", "")
        scheme, _, token = auth.partition(" ")
        expiry = self.tokens.get(token) if scheme.lower() == "bearer" else None
        if expiry is None or self.clock >= expiry:
            raise HaloApiError(401, None, {"WWW-Authenticate": 'Bearer error="invalid_token"'})

    # -- routing -----------------------------------------------------------------------------

    def _build_routes(self) -> None:
        r = self._routes.add
        r("GET", "/Client", self._lister(lambda: self.clients.values(), "clients", self._client_filter))
        r("GET", "/Client/{id}", self._getter(lambda: self.clients))
        r("GET", "/Site", self._lister(lambda: self.sites.values(), "sites", self._client_id_filter))
        r(
            "GET",
            "/ClientContract",
            self._lister(lambda: self.contracts.values(), "contracts", self._client_id_filter),
        )
        r("GET", "/ClientContract/{id}", self._getter(lambda: self.contracts))
        r("GET", "/Status", self._lookup(lambda: self.statuses.values()))
        r("GET", "/TicketType", self._lookup(lambda: self.ticket_types.values()))
        r("GET", "/Priority", self._lookup(lambda: self.priorities))
        r("GET", "/Team", self._lookup(lambda: self.teams.values()))
        r("GET", "/Outcome", self._lookup(lambda: self.outcomes.values()))
        r("GET", "/Item", self._lister(lambda: self.items.values(), "items", lambda row, q: True))
        r("GET", "/Tickets", self._lister(lambda: self.tickets.values(), "tickets", self._ticket_filter))
        r("GET", "/Tickets/{id}", self._getter(lambda: self.tickets))
        r("POST", "/Tickets", self._post_many(self._write_ticket))
        r("GET", "/Actions", self._list_actions)
        r("POST", "/Actions", self._post_many(self._create_action))
        r(
            "GET",
            "/Asset",
            self._lister(lambda: self.assets.values(), "assets", self._asset_filter, self._asset_row),
        )
        r("GET", "/Asset/{id}", self._getter(lambda: self.assets))
        r("POST", "/Asset", self._post_many(self._write_asset))
        r(
            "GET",
            "/RecurringInvoice",
            self._lister(
                lambda: self.recurring_invoices.values(), "invoices", self._invoice_filter, self._invoice_row
            ),
        )
        r("GET", "/RecurringInvoice/{id}", self._getter(lambda: self.recurring_invoices))
        r("POST", "/RecurringInvoice", self._post_many(self._write_invoice))

    async def _dispatch(self, request: Request) -> Response:
        if self.latency:
            await asyncio.sleep(self.latency)
        api_path = "/" + request.path_params["path"].strip("/")
        method = request.method.upper()
        route = self._routes.match(method, api_path)
        template = route.template
        self.calls[f"{method} {template}"] += 1
        body = decode_body(await request.body())
        status = 0
        try:
            fault = first_fault(self.faults, method, template)
            if fault is not None:
                early = fault.fire()
                status = early.status_code
                return early
            self._authenticate(request)
            if route.handler is None:
                raise HaloApiError(
                    405 if route.known else 404, f"No resource matches {method} /api{api_path}"
                )
            if isinstance(body, str):
                raise invalid("The request body is not valid JSON")
            request.state.json = body
            result = route.handler(request, route.params)
            response: Response = result if isinstance(result, Response) else JSONResponse(result)
            fault = first_fault(self.faults, method, template, after_apply=True)
            if fault is not None:
                response = fault.fire()
            status = response.status_code
            return response
        except HaloApiError as error:
            status = error.status
            return error.response()
        finally:
            self.requests.append(RecordedRequest.of(request, method, api_path, template, body, status))

    # -- generic handlers --------------------------------------------------------------------

    def _page(self, rows: list[Row], query: Any, key: str) -> Row:
        if not _truthy(query.get("pageinate")):
            count = query.get("count")
            if count and str(count).isdigit():
                rows = rows[: int(count)]
            return {"record_count": len(rows), key: rows}
        size = _int(query.get("page_size", DEFAULT_PAGE_SIZE), "page_size must be a number")
        page = _int(query.get("page_no", 1), "page_no must be a number")
        if size < 1 or page < 1:
            raise invalid("page_size and page_no must be positive")
        if self.max_page_size is not None:
            size = min(size, self.max_page_size)
        start = (page - 1) * size
        return {
            "page_no": page,
            "page_size": size,
            "record_count": len(rows),
            key: rows[start : start + size],
        }

    def _lister(
        self,
        source: Callable[[], Iterable[Row]],
        key: str,
        keep: Callable[[Row, Any], bool],
        shape: Callable[[Row], Row] | None = None,
    ) -> Handler:
        def handler(request: Request, _params: dict[str, int]) -> Row:
            query = request.query_params
            rows = [copy.deepcopy(row) for row in source() if keep(row, query)]
            rows.sort(key=lambda row: abs(row["id"]))
            if shape is not None:
                rows = [shape(row) for row in rows]
            return self._page(rows, query, key)

        return handler

    def _lookup(self, source: Callable[[], Iterable[Row]]) -> Handler:
        def handler(request: Request, _params: dict[str, int]) -> list[Row]:
            rows = [copy.deepcopy(row) for row in source()]
            wanted = request.query_params.get("type")
            if wanted is not None and wanted.lower() != "ticket":
                return []
            return rows

        return handler

    @staticmethod
    def _getter(source: Callable[[], dict[int, Row]]) -> Handler:
        def handler(_request: Request, params: dict[str, int]) -> Row:
            row = source().get(params["id"])
            if row is None:
                raise HaloApiError(404, f"Record {params['id']} not found")
            return copy.deepcopy(row)

        return handler

    @staticmethod
    def _post_many(write: Callable[[Row], Row]) -> Handler:
        def handler(request: Request, _params: dict[str, int]) -> Any:
            body = request.state.json
            if not isinstance(body, list) or not body:
                raise invalid("The request body must be a JSON array of objects")
            if not all(isinstance(item, dict) for item in body):
                raise invalid("The request body must be a JSON array of objects")
            results = [copy.deepcopy(write(item)) for item in body]
            return results[0] if len(results) == 1 else results

        return handler

    # -- filters -----------------------------------------------------------------------------

    @staticmethod
    def _client_id_filter(row: Row, query: Any) -> bool:
        wanted = query.get("client_id")
        return wanted is None or str(row.get("client_id")) == wanted

    def _client_filter(self, row: Row, query: Any) -> bool:
        if row.get("inactive") and not _truthy(query.get("includeinactive")):
            return False
        search = (query.get("search") or "").casefold()
        return not search or search in (row.get("name") or "").casefold()

    def _ticket_filter(self, row: Row, query: Any) -> bool:
        if not self._client_id_filter(row, query):
            return False
        if _truthy(query.get("open_only")) and row.get("hasbeenclosed"):
            return False
        status = query.get("status_id")
        if status is not None and str(row.get("status_id")) != status:
            return False
        search = (query.get("search") or "").casefold()
        haystack = f"{row.get('id')} {row.get('summary') or ''} {row.get('details') or ''}".casefold()
        return not search or search in haystack

    def _asset_filter(self, row: Row, query: Any) -> bool:
        if not self._client_id_filter(row, query):
            return False
        number = query.get("inventory_number")
        if number is not None and (row.get("inventory_number") or "").casefold() != number.casefold():
            return False
        search = (query.get("search") or "").casefold()
        haystack = f"{row.get('inventory_number') or ''} {row.get('key_field') or ''}".casefold()
        return not search or search in haystack

    @staticmethod
    def _asset_row(row: Row) -> Row:
        """List rows are summaries: no notes or custom fields, as in Halo's asset list."""
        return {k: v for k, v in row.items() if k not in ("notes", "customfields", "fields")}

    def _invoice_filter(self, row: Row, query: Any) -> bool:
        wanted = query.get("contract_id")
        return self._client_id_filter(row, query) and (
            wanted is None or str(row.get("contract_id")) == wanted
        )

    @staticmethod
    def _invoice_row(row: Row) -> Row:
        return {k: v for k, v in row.items() if k != "lines"}

    # -- tickets and actions -----------------------------------------------------------------

    def _check_ref(self, store: dict[int, Row], value: Any, message: str) -> int:
        ref = _int(value, message)
        if ref not in store:
            raise invalid(message)
        return ref

    def _create_ticket(self, data: Row) -> Row:
        summary = str(data.get("summary") or "").strip()
        if not summary:
            raise invalid("Please enter a Summary")
        client_id = self._check_ref(self.clients, data.get("client_id"), "Please select a valid Client")
        row: Row = {
            "id": self._next("ticket", 1001),
            "summary": summary,
            "details": data.get("details") or "",
            "client_id": client_id,
            "client_name": self.clients[client_id]["name"],
            "site_id": data.get("site_id") or 0,
            "tickettype_id": 1,
            "status_id": 1,
            "priority_id": 4,
            "team_id": 0,
            "team": "",
            "hasbeenclosed": False,
            "dateoccurred": _now(),
            "customfields": [],
        }
        self._apply_ticket_fields(row, data)
        self.tickets[row["id"]] = row
        return row

    def _apply_ticket_fields(self, row: Row, data: Row) -> None:
        if data.get("tickettype_id") is not None:
            row["tickettype_id"] = self._check_ref(
                self.ticket_types, data["tickettype_id"], "Please select a valid Ticket Type"
            )
        if data.get("status_id") is not None:
            self._set_status(
                row, self._check_ref(self.statuses, data["status_id"], "Please select a valid Status")
            )
        if data.get("priority_id") is not None:
            pid = _int(data["priority_id"], "Please select a valid Priority")
            if not any(p["priorityid"] == pid for p in self.priorities):
                raise invalid("Please select a valid Priority")
            row["priority_id"] = pid
        if data.get("team_id") is not None:
            tid = self._check_ref(self.teams, data["team_id"], "Please select a valid Team")
            row["team_id"], row["team"] = tid, self.teams[tid]["name"]
        if isinstance(data.get("customfields"), list):
            for cf in data["customfields"]:
                if not isinstance(cf, dict) or "id" not in cf:
                    raise invalid("Custom fields need an id")
                row["customfields"] = [c for c in row["customfields"] if c["id"] != cf["id"]]
                row["customfields"].append({"id": cf["id"], "value": cf.get("value")})
        for name in ("summary", "details"):
            if name in data and data[name] is not None and "id" in data:
                row[name] = data[name]

    def _set_status(self, ticket: Row, status_id: int) -> None:
        ticket["status_id"] = status_id
        closed = status_id == 9
        ticket["hasbeenclosed"] = closed or ticket.get("hasbeenclosed", False)
        if closed:
            ticket["dateclosed"] = _now()

    def _write_ticket(self, data: Row) -> Row:
        if data.get("id"):
            row = self.tickets.get(_int(data["id"], "Invalid ticket id"))
            if row is None:
                raise invalid(f"Ticket {data['id']} not found")
            self._apply_ticket_fields(row, data)
            return row
        return self._create_ticket(data)

    def _create_action(self, data: Row) -> Row:
        ticket_id = self._check_ref(self.tickets, data.get("ticket_id"), "Please select a valid Ticket")
        outcome = data.get("outcome")
        if data.get("outcome_id") is not None:
            oid = self._check_ref(
                self.outcomes, data["outcome_id"], "An Outcome must be entered for this Action"
            )
            outcome = self.outcomes[oid]["outcome"]
        elif not outcome or not any(
            o["outcome"].casefold() == str(outcome).casefold() for o in self.outcomes.values()
        ):
            raise invalid("An Outcome must be entered for this Action")
        note = data.get("note") if data.get("note") is not None else data.get("note_html")
        ticket = self.tickets[ticket_id]
        row: Row = {
            "id": self._next("action", 1),
            "ticket_id": ticket_id,
            "outcome": outcome,
            "note": note or "",
            "hiddenfromuser": bool(data.get("hiddenfromuser", False)),
            "datetime": _now(),
            "who": "API",
            "new_status": None,
        }
        if data.get("new_status") is not None:
            status = self._check_ref(self.statuses, data["new_status"], "Please select a valid Status")
            self._set_status(ticket, status)
            row["new_status"] = status
        self.actions[row["id"]] = row
        return row

    def _list_actions(self, request: Request, _params: dict[str, int]) -> Row:
        query = request.query_params
        if query.get("ticket_id") is None:
            raise invalid("ticket_id is required")
        rows = [copy.deepcopy(a) for a in self.actions.values() if str(a["ticket_id"]) == query["ticket_id"]]
        rows.sort(key=lambda a: a["id"], reverse=True)
        return self._page(rows, query, "actions")

    # -- assets ------------------------------------------------------------------------------

    def _create_asset(self, data: Row, *, check: bool = True) -> Row:
        if check:
            client_id = self._check_ref(self.clients, data.get("client_id"), "Please select a valid Client")
            site_id = self._check_ref(self.sites, data.get("site_id"), "Please select a valid Site")
            if self.sites[site_id]["client_id"] != client_id:
                raise invalid("The Site does not belong to the Client")
            self._check_ref(self.asset_types, data.get("assettype_id"), "Please select a valid Asset Type")
        row: Row = {
            "id": self._next("asset", 501),
            "inventory_number": data.get("inventory_number") or "",
            "key_field": data.get("key_field") or data.get("inventory_number") or "",
            "client_id": data["client_id"],
            "client_name": self.clients[data["client_id"]]["name"],
            "site_id": data["site_id"],
            "assettype_id": data["assettype_id"],
            "inactive": bool(data.get("inactive", False)),
            "notes": data.get("notes") or "",
            "customfields": [{**f, "value": None} for f in self.asset_fields],
        }
        self._apply_asset_custom(row, data.get("customfields"))
        self.assets[row["id"]] = row
        return row

    def _apply_asset_custom(self, row: Row, values: Any) -> None:
        if values is None:
            return
        if not isinstance(values, list):
            raise invalid("customfields must be an array")
        by_id = {cf["id"]: cf for cf in row["customfields"]}
        for value in values:
            if not isinstance(value, dict) or value.get("id") not in by_id:
                raise invalid(f"Unknown custom field {value.get('id') if isinstance(value, dict) else value}")
            by_id[value["id"]]["value"] = value.get("value")

    def _write_asset(self, data: Row) -> Row:
        if not data.get("id"):
            return self._create_asset(data)
        row = self.assets.get(_int(data["id"], "Invalid asset id"))
        if row is None:
            raise invalid(f"Asset {data['id']} not found")
        for name in ("inventory_number", "key_field", "notes", "inactive"):
            if name in data:
                row[name] = data[name]
        self._apply_asset_custom(row, data.get("customfields"))
        return row

    # -- recurring invoices ------------------------------------------------------------------

    def _new_line(self, invoice: Row, data: Row) -> Row:
        item_id = data.get("_itemid")
        if item_id is None and not data.get("item_shortdescription"):
            raise invalid("Please select an Item for each line")
        item = self.items.get(_int(item_id, "Please select a valid Item")) if item_id is not None else None
        if item_id is not None and item is None:
            raise invalid("Please select a valid Item")
        line: Row = {
            "id": next(self._line_ids),
            "ihid": invoice["id"],
            "_itemid": item_id if item_id is not None else 0,
            "item_code": item["code"] if item else "",
            "item_shortdescription": data.get("item_shortdescription") or (item["name"] if item else ""),
            "item_longdescription": data.get("item_longdescription") or "",
            "item_internal_reference": data.get("item_internal_reference") or "",
            "qty_order": 0.0,
            "unit_price": 0.0,
            "unit_cost": 0.0,
            "net_amount": 0.0,
            "recurring_invoice_quantity_type": 0,
            "isinactive": False,
            "quantity_assets": [],
            "quantity_users": [],
            "sequenceid": len(invoice["lines"]) + 1,
        }
        self._apply_line(line, data)
        return line

    @staticmethod
    def _apply_line(line: Row, data: Row) -> None:
        for name in ("qty_order", "unit_price", "unit_cost"):
            if name in data:
                line[name] = _number(data[name], f"{name} must be a number")
        for name in (
            "item_shortdescription",
            "item_longdescription",
            "item_internal_reference",
            "recurring_invoice_quantity_type",
            "isinactive",
        ):
            if name in data and data[name] is not None:
                line[name] = data[name]
        line["net_amount"] = round(line["qty_order"] * line["unit_price"], 2)

    def _write_invoice(self, data: Row) -> Row:
        invoice = self.recurring_invoices.get(_int(data.get("id"), "Please select a valid Recurring Invoice"))
        if invoice is None:
            raise invalid(f"Recurring Invoice {data.get('id')} not found")
        if "lines" not in data:
            return invoice
        if not isinstance(data["lines"], list):
            raise invalid("lines must be an array")
        # Validate everything before anything changes: a refused post leaves the invoice as it was.
        current = {line["id"]: copy.deepcopy(line) for line in invoice["lines"]}
        kept: list[Row] = []
        for given in data["lines"]:
            if not isinstance(given, dict):
                raise invalid("lines must be objects")
            line_id = given.get("id")
            if isinstance(line_id, int) and line_id > 0:
                if line_id not in current:
                    raise invalid(f"Line {line_id} is not on this Recurring Invoice")
                line = current[line_id]
                self._apply_line(line, given)
                kept.append(line)
            else:
                kept.append(self._new_line(invoice, given))
        invoice["lines"] = kept
        return invoice
