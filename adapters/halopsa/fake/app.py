"""The HTTP face of the fake Halo: the auth server, routing, paging, list filters and fault hooks."""

from __future__ import annotations

import asyncio
import copy
import secrets
import urllib.parse
from collections.abc import Callable, Iterable
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from adapters.halopsa.fake.schema import (
    DEFAULT_PAGE_SIZE,
    Fault,
    HaloApiError,
    Row,
    as_int,
    invalid,
    truthy,
)
from adapters.halopsa.fake.seed import HaloSeeding
from adapters.testing.faults import (
    AsgiFake,
    RecordedRequest,
    RouteTable,
    TimeoutHooks,
    decode_body,
    first_fault,
    lowered_headers,
)

Handler = Callable[[Request, dict[str, int]], Any]


class HaloFake(HaloSeeding, AsgiFake, TimeoutHooks[Fault]):
    """One fake Halo instance. Construct, seed, then point an adapter at `app`."""

    fault_type = Fault

    def _build_app(self) -> Starlette:
        self._routes: RouteTable[Handler] = RouteTable(ignore_case=True, signed_ids=True)
        self._build_routes()
        return Starlette(
            routes=[
                Route("/auth/token", self._token, methods=["POST"]),
                Route("/api/{path:path}", self._dispatch, methods=["GET", "POST", "DELETE", "PUT"]),
            ]
        )

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
        r("GET", "/Agent/me", lambda _request, _params: dict(self.API_AGENT))
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
        if not truthy(query.get("pageinate")):
            count = query.get("count")
            if count and str(count).isdigit():
                rows = rows[: int(count)]
            return {"record_count": len(rows), key: rows}
        size = as_int(query.get("page_size", DEFAULT_PAGE_SIZE), "page_size must be a number")
        page = as_int(query.get("page_no", 1), "page_no must be a number")
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
        if wanted is None:
            return True
        try:
            return float(row.get("client_id") or 0) == float(wanted)
        except ValueError:
            return False

    def _client_filter(self, row: Row, query: Any) -> bool:
        if row.get("inactive") and not truthy(query.get("includeinactive")):
            return False
        search = (query.get("search") or "").casefold()
        return not search or search in (row.get("name") or "").casefold()

    def _ticket_filter(self, row: Row, query: Any) -> bool:
        if not self._client_id_filter(row, query):
            return False
        if truthy(query.get("open_only")) and row.get("hasbeenclosed"):
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

    def _list_actions(self, request: Request, _params: dict[str, int]) -> Row:
        query = request.query_params
        if query.get("ticket_id") is None:
            raise invalid("ticket_id is required")
        rows = [copy.deepcopy(a) for a in self.actions.values() if str(a["ticket_id"]) == query["ticket_id"]]
        rows.sort(key=lambda a: a["id"], reverse=True)
        return self._page(rows, query, "actions")
