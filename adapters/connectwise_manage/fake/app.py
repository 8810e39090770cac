"""The HTTP face of the fake Manage: routing, auth, generic reads with paging, and fault hooks."""

from __future__ import annotations

import asyncio
import base64
import bisect
import itertools
import re
from collections.abc import Callable
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from adapters.connectwise_manage.fake.query import (
    ConditionError,
    ConditionParser,
    compile_conditions,
    equality_hint,
    lookup,
    parse_conditions,
)
from adapters.connectwise_manage.fake.schema import (
    Fault,
    ManageApiError,
    invalid,
)
from adapters.connectwise_manage.fake.seed import ManageSeeding
from adapters.connectwise_manage.fake.store import Table, _project
from adapters.testing.faults import (
    AsgiFake,
    RecordedRequest,
    RouteTable,
    TimeoutHooks,
    count_calls,
    decode_body,
    first_fault,
)

Row = dict[str, Any]
Predicate = Callable[[Row], bool]


MAX_PAGE_SIZE = 1000
DEFAULT_PAGE_SIZE = 25

Handler = Callable[[Request, dict[str, int]], Any]


class ManageFake(ManageSeeding, AsgiFake, TimeoutHooks[Fault]):
    """One fake Manage tenant. Construct, seed, then point an adapter at `app` (`transport_factory`
    is a drop-in `ConnectionContext.transport_factory`: a fresh in-process transport per client)."""

    fault_type = Fault

    def _build_app(self) -> Starlette:
        self._routes: RouteTable[Handler] = RouteTable()
        self._build_routes()
        return Starlette(
            routes=[
                Route(
                    "/{path:path}",
                    self._dispatch,
                    methods=["GET", "POST", "PATCH", "PUT", "DELETE", "HEAD", "OPTIONS"],
                )
            ]
        )

    # -- fault injection and counters -------------------------------------------------------

    def fail_path(
        self,
        path: str,
        status: int = 500,
        *,
        method: str | None = None,
        times: int | None = None,
        after_apply: bool = False,
    ) -> Fault:
        """Every matching request (or only the next `times`) on `path` fails until `clear_faults()`."""
        return self._add_fault(Fault(status, times, method=method, path=path, after_apply=after_apply))

    def call_count(self, method: str | None = None, path: str | None = None) -> int:
        """Requests seen, optionally for one method and/or API-relative route template
        (e.g. `call_count("GET", "/company/companies")`, `"/service/tickets/{id}/notes"`)."""
        return count_calls(self.calls, method, path, ignore_case=False)

    def reset_calls(self) -> None:
        self.calls.clear()
        self.requests.clear()
        self.max_in_flight = self.in_flight

    # -- routing ----------------------------------------------------------------------------

    def _build_routes(self) -> None:
        r = self._routes.add
        r("GET", "/system/info", self._system_info)
        listing: list[tuple[str, Table, str | None]] = [
            ("/company/companies", self.companies, None),
            ("/finance/agreements/types", self.agreement_types, None),
            ("/finance/agreements", self.agreements, None),
            ("/service/boards", self.boards, None),
            ("/service/boards/{parentId}/statuses", self.statuses, "parentId"),
            ("/service/boards/{parentId}/types", self.types, "parentId"),
            ("/service/priorities", self.priorities, None),
            ("/service/tickets", self.tickets, None),
            ("/service/tickets/{parentId}/notes", self.notes, "parentId"),
            ("/time/entries", self.time_entries, None),
            ("/company/configurations", self.configurations, None),
            ("/company/configurations/types", self.configuration_types, None),
            ("/procurement/catalog", self.products, None),
            ("/finance/agreements/{parentId}/additions", self.additions, "parentId"),
        ]
        for template, table, parent in listing:
            r("GET", template + "/count", self._counter(table, parent))
            r("GET", template, self._lister(table, parent))
            r("GET", template + "/{id}", self._getter(table, parent))
        r("POST", "/service/tickets/search", self._ticket_search)
        r("POST", "/service/tickets", self._post_ticket)
        r("PATCH", "/service/tickets/{id}", self._patch_ticket)
        r("POST", "/service/tickets/{parentId}/notes", self._post_note)
        r("GET", "/service/tickets/{parentId}/configurations", self._list_ticket_configurations)
        r("POST", "/service/tickets/{parentId}/configurations", self._post_ticket_configuration)
        r("POST", "/company/configurations", self._post_configuration)
        r("PATCH", "/company/configurations/{id}", self._patch_configuration)
        r("POST", "/finance/agreements/{parentId}/additions", self._post_addition)
        r("PATCH", "/finance/agreements/{parentId}/additions/{id}", self._patch_addition)

    async def _dispatch(self, request: Request) -> Response:
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            return await self._answer(request)
        finally:
            self.in_flight -= 1

    async def _answer(self, request: Request) -> Response:
        if self.latency:
            await asyncio.sleep(self.latency)
        path = "/" + request.path_params["path"]
        method = request.method.upper()
        if method == "GET" and path.lower().startswith("/login/companyinfo/"):
            self.calls["GET /login/companyinfo/{companyId}"] += 1
            return self._company_info(path.rsplit("/", 1)[-1])
        prefix = self.api_prefix
        if not path.startswith(prefix + "/"):
            self.calls[f"{method} {path}"] += 1
            return ManageApiError(404, "NotFound", f"The resource {path} was not found").response()
        api_path = path[len(prefix) :]
        route = self._routes.match(method, api_path)
        template = route.template
        self.calls[f"{method} {template}"] += 1
        body = decode_body(await request.body())
        status = 0
        try:
            fault = first_fault(self.faults, method, api_path, template)
            if fault is not None:
                early: Response = fault.response()
                status = early.status_code
                return early
            self._authenticate(request)
            if route.handler is None:
                if route.known:
                    raise ManageApiError(405, "MethodNotAllowed", f"{method} is not allowed on {api_path}")
                raise ManageApiError(404, "NotFound", f"The resource {api_path} was not found")
            if isinstance(body, str):
                raise ManageApiError(400, "InvalidObject", "The request body is not valid JSON")
            request.state.json = body
            result = route.handler(request, route.params)
            response: Response = result if isinstance(result, Response) else JSONResponse(result)
            fault = first_fault(self.faults, method, api_path, template, after_apply=True)
            if fault is not None:
                response = fault.response()
            status = response.status_code
            return response
        except ManageApiError as error:
            status = error.status
            return error.response()
        finally:
            self.requests.append(RecordedRequest.of(request, method, api_path, template, body, status))

    def _authenticate(self, request: Request) -> None:
        accept = request.headers.get("accept", "")
        version = re.search(r"version=([0-9.]+)", accept)
        if version:
            self.api_versions[version.group(1)] += 1
        auth = request.headers.get("authorization", "")
        expected = base64.b64encode(
            f"{self.company_id}+{self.public_key}:{self.private_key}".encode()
        ).decode()
        if not auth.startswith("Basic ") or auth[6:].strip() != expected:
            raise ManageApiError(401, "Unauthorized", "Your credentials are invalid.")
        if request.headers.get("clientid") != self.client_id:
            raise ManageApiError(
                401, "Unauthorized", "A valid clientId is required. See developer.connectwise.com/ClientID"
            )

    def _company_info(self, company: str) -> Response:
        if company.lower() != self.company_id.lower():
            return JSONResponse(None)
        return JSONResponse(
            {
                "CompanyName": self.company_name,
                "Codebase": self.codebase,
                "VersionCode": self.version.split(".")[0],
                "VersionNumber": self.version,
                "CompanyID": self.company_id,
                "IsCloud": self.is_cloud,
            }
        )

    def _system_info(self, request: Request, params: dict[str, int]) -> Row:
        return {
            "version": self.version,
            "isCloud": self.is_cloud,
            "serverTimeZone": "Eastern Standard Time",
            "cloudRegion": "NA" if self.is_cloud else None,
        }

    # -- generic reads ----------------------------------------------------------------------

    def _filter(
        self, table: Table, conditions: str | None
    ) -> tuple[Predicate | None, int | None, int | None]:
        if not conditions:
            return None, None, None
        try:
            node = parse_conditions(conditions, table.fields)
        except ConditionError as exc:
            raise ManageApiError(
                400,
                "InvalidObject",
                "conditions is invalid",
                [
                    {
                        "code": "InvalidConditions",
                        "message": str(exc),
                        "resource": table.name,
                        "field": "conditions",
                    }
                ],
            ) from exc
        return (
            compile_conditions(node),
            equality_hint(node, ("company", "id")),
            equality_hint(node, ("id",)),
        )

    def _matching_ids(
        self, table: Table, parent: int | None, conditions: str | None, order_by: str | None
    ) -> list[int]:
        predicate, company, row_id = self._filter(table, conditions)
        key = (table.name, table.version, parent, conditions, order_by)
        cached = self._match_cache.get(key)
        if cached is not None:
            self._match_cache.move_to_end(key)
            return cached
        if row_id is not None:
            base = [row_id] if row_id in table.rows else []
        else:
            base = table.candidates(parent=parent, company=company)
        rows = table.rows
        if predicate is None:
            ids = list(base)
        else:
            ids = [i for i in base if predicate(rows[i])]
        if order_by:
            ids = self._ordered(table, ids, order_by)
        self._match_cache[key] = ids
        if len(self._match_cache) > 64:
            self._match_cache.popitem(last=False)
        return ids

    def _ordered(self, table: Table, ids: list[int], order_by: str) -> list[int]:
        for clause in reversed([c.strip() for c in order_by.split(",") if c.strip()]):
            parts = clause.split()
            if len(parts) > 2 or (len(parts) == 2 and parts[1].lower() not in ("asc", "desc")):
                raise invalid(table.name, "orderBy", f"orderBy clause {clause!r} is invalid")
            try:
                path = ConditionParser(parts[0], table.fields).path()
            except ConditionError as exc:
                raise invalid(table.name, "orderBy", str(exc)) from exc
            reverse = len(parts) == 2 and parts[1].lower() == "desc"

            def sort_key(i: int, path: tuple[str, ...] = path) -> tuple[int, Any]:
                value = lookup(table.rows[i], path)
                if value is None:
                    return (0, "")
                if isinstance(value, bool | int | float):
                    return (1, float(value))
                return (2, str(value).casefold())

            ids = sorted(ids, key=sort_key, reverse=reverse)
        return ids

    def _lister(self, table: Table, parent_param: str | None) -> Handler:
        def handler(request: Request, params: dict[str, int]) -> Response:
            parent = params.get(parent_param) if parent_param else None
            if parent_param is not None:
                self._require(self._parent_table(table), parent or 0)
            return self._list(table, request, parent, dict(request.query_params))

        return handler

    def _parent_table(self, table: Table) -> Table:
        return {
            "boardStatus": self.boards,
            "boardType": self.boards,
            "serviceNote": self.tickets,
            "addition": self.agreements,
        }[table.name]

    def _counter(self, table: Table, parent_param: str | None) -> Handler:
        def handler(request: Request, params: dict[str, int]) -> Row:
            parent = params.get(parent_param) if parent_param else None
            ids = self._matching_ids(table, parent, request.query_params.get("conditions"), None)
            return {"count": len(ids)}

        return handler

    def _getter(self, table: Table, parent_param: str | None) -> Handler:
        def handler(request: Request, params: dict[str, int]) -> Row:
            row = self._require(table, params["id"])
            if parent_param is not None and row["id"] not in table.by_parent.get(params[parent_param], []):
                raise ManageApiError(404, "NotFound", f"{table.name} Id {params['id']} not found")
            return self._shape(table, row, request.query_params.get("fields"))

        return handler

    def _shape(self, table: Table, row: Row, fields: str | None) -> Row:
        if not fields:
            return row
        paths = []
        for item in fields.split(","):
            item = item.strip()
            if not item:
                continue
            try:
                paths.append(ConditionParser(item, table.fields).path())
            except ConditionError as exc:
                raise invalid(table.name, "fields", str(exc)) from exc
        return _project(row, paths)

    def _list(self, table: Table, request: Request, parent: int | None, query: dict[str, str]) -> Response:
        try:
            page_size = int(query.get("pageSize", DEFAULT_PAGE_SIZE))
            page = int(query.get("page", 1))
            page_id = int(query.get("pageId", 0) or 0)
        except ValueError as exc:
            raise ManageApiError(400, "InvalidObject", "page, pageSize and pageId must be integers") from exc
        if page_size < 1 or page < 1:
            raise ManageApiError(400, "InvalidObject", "page and pageSize must be positive")
        page_size = min(page_size, MAX_PAGE_SIZE)
        conditions = query.get("conditions")
        order_by = query.get("orderBy")
        fields = query.get("fields")
        forward = request.headers.get("pagination-type", "").lower() == "forward-only"
        headers: dict[str, str] = {}
        if forward:
            if order_by:
                raise invalid(table.name, "orderBy", "orderBy is not supported with forward-only pagination")
            items = self._forward_page(table, parent, conditions, page_id, page_size)
            if items:
                next_url = request.url.remove_query_params("page").include_query_params(
                    pageId=items[-1]["id"]
                )
                headers["Link"] = f'<{next_url}>; rel="next"'
        else:
            ids = self._matching_ids(table, parent, conditions, order_by)
            start = (page - 1) * page_size
            items = [table.rows[i] for i in ids[start : start + page_size]]
            last = max(1, -(-len(ids) // page_size))
            links = []
            if page > 1:
                links.append((1, "first"))
                links.append((min(page - 1, last), "prev"))
            if page < last:
                links.append((page + 1, "next"))
                links.append((last, "last"))
            if links:
                headers["Link"] = ", ".join(
                    f'<{request.url.include_query_params(page=n, pageSize=page_size)}>; rel="{rel}"'
                    for n, rel in links
                )
        body = [self._shape(table, row, fields) for row in items]
        return JSONResponse(body, headers=headers)

    def _forward_page(
        self, table: Table, parent: int | None, conditions: str | None, page_id: int, size: int
    ) -> list[Row]:
        predicate, company, row_id = self._filter(table, conditions)
        if row_id is not None:
            base = [row_id] if row_id in table.rows else []
        else:
            base = table.candidates(parent=parent, company=company)
        start = bisect.bisect_right(base, page_id)
        out: list[Row] = []
        rows = table.rows
        for i in itertools.islice(base, start, None):
            row = rows[i]
            if predicate is None or predicate(row):
                out.append(row)
                if len(out) >= size:
                    break
        return out

    def _ticket_search(self, request: Request, params: dict[str, int]) -> Response:
        body = request.state.json or {}
        if not isinstance(body, dict):
            raise ManageApiError(400, "InvalidObject", "search body must be an object")
        query = {
            k: str(v) for k, v in body.items() if k in ("conditions", "orderBy", "fields", "page", "pageSize")
        }
        query.update({k: v for k, v in request.query_params.items() if k in ("page", "pageSize", "pageId")})
        return self._list(self.tickets, request, None, query)
