"""The HTTP face of the fake Autotask: zone discovery, auth headers, the request threshold, routing
to queries and writes, and fault hooks."""

from __future__ import annotations

import asyncio
import copy
from collections.abc import Callable
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from adapters.autotask.fake.schema import (
    FIELDS,
    PREFIX,
    AutotaskApiError,
    Fault,
    RecordedRequest,
    invalid,
)
from adapters.autotask.fake.seed import AutotaskSeeding
from adapters.testing.faults import (
    AsgiFake,
    TimeoutHooks,
    decode_body,
    first_fault,
    lowered_headers,
)


class AutotaskFake(AutotaskSeeding, AsgiFake, TimeoutHooks[Fault]):
    """One fake Autotask tenant (one database). Construct, seed, then point an adapter at `app`."""

    fault_type = Fault

    def _build_app(self) -> Starlette:
        return Starlette(
            routes=[Route("/{path:path}", self._dispatch, methods=["GET", "POST", "PATCH", "PUT", "DELETE"])]
        )

    # -- request handling --------------------------------------------------------------------

    @staticmethod
    def _template(api_path: str) -> str:
        parts = [p for p in api_path.split("/") if p]
        return "/" + "/".join("{id}" if p.isdigit() else p for p in parts)

    def _entity(self, name: str) -> str:
        for entity in (*FIELDS, "ContractServiceAdjustments"):
            if entity.lower() == name.lower():
                return entity
        raise AutotaskApiError(404, None, body={"Message": f"No HTTP resource was found for {name}."})

    def _authenticate(self, request: Request) -> None:
        headers = request.headers
        if (headers.get("username") or "").lower() != self.username.lower() or headers.get(
            "secret"
        ) != self.secret:
            raise AutotaskApiError(401, None)
        if headers.get("apiintegrationcode") != self.integration_code:
            # Autotask answers a bad integration code with 500, not 401 (apigrate/autotask-restapi#19).
            raise invalid("The ApiIntegrationCode is invalid.")

    async def _dispatch(self, request: Request) -> Response:
        if self.latency:
            await asyncio.sleep(self.latency)
        raw_path = "/" + request.path_params["path"].strip("/")
        method = request.method.upper()
        lower = raw_path.lower()
        api_path = raw_path[len(PREFIX) :] if lower.startswith(PREFIX) else raw_path
        template = self._template(api_path)
        body = decode_body(await request.body())
        status = 0
        try:
            if not lower.startswith(PREFIX + "/") and lower != PREFIX:
                raise AutotaskApiError(404, None, body={"Message": "No HTTP resource was found."})
            fault = first_fault(self.faults, method, template)
            if fault is not None:
                early = fault.fire()
                status = early.status_code
                return early
            if template.lower() == "/zoneinformation":
                response = self._zone(request, method)
            else:
                self._authenticate(request)
                self.request_count += 1
                if self.request_count + self.other_usage > self.threshold:
                    raise AutotaskApiError(
                        429, [f"API request threshold of {self.threshold} requests per hour exceeded."]
                    )
                if isinstance(body, str):
                    raise invalid("The request body is not valid JSON.")
                response = self._route(method, api_path, template, request, body)
            fault = first_fault(self.faults, method, template, after_apply=True)
            if fault is not None:
                response = fault.fire()
            status = response.status_code
            return response
        except AutotaskApiError as error:
            status = error.status
            return error.response()
        finally:
            self.requests.append(
                RecordedRequest(
                    method,
                    str(request.url),
                    raw_path,
                    template,
                    dict(request.query_params),
                    lowered_headers(request),
                    body,
                    status,
                )
            )

    def _zone(self, request: Request, method: str) -> Response:
        if method != "GET":
            raise AutotaskApiError(
                405, None, body={"Message": "The requested resource does not support http method."}
            )
        user = request.query_params.get("user") or ""
        if user.lower() != self.username.lower():
            raise invalid("Zone information could not be determined")
        return JSONResponse(
            {"zoneName": "America West 2", "url": self.zone_url, "webUrl": self.web_url, "ci": 1}
        )

    def _route(self, method: str, api_path: str, template: str, request: Request, body: Any) -> Response:
        parts = [p for p in api_path.split("/") if p]
        if not parts:
            raise AutotaskApiError(404, None, body={"Message": "No HTTP resource was found."})
        head = parts[0].lower()
        if head == "thresholdinformation" and method == "GET" and len(parts) == 1:
            return JSONResponse(
                {
                    "externalRequestThreshold": self.threshold,
                    "requestThresholdTimeframe": self.timeframe_minutes,
                    "currentTimeframeRequestCount": self.request_count + self.other_usage,
                }
            )
        entity = self._entity(parts[0])
        rest = [p.lower() for p in parts[1:]]
        if rest == ["query"] and method == "POST":
            return JSONResponse(self._query(entity, body, 0))
        if rest == ["query", "next"]:
            if method != "POST":
                raise AutotaskApiError(
                    405, None, body={"Message": "The requested resource does not support http method 'GET'."}
                )
            return JSONResponse(self._query_next(entity, request.query_params.get("paging") or "", body))
        if rest == ["entityinformation", "fields"] and method == "GET":
            return JSONResponse({"fields": self._field_info(entity)})
        if len(rest) == 1 and rest[0].isdigit() and method == "GET" and entity in FIELDS:
            row = self.data[entity].get(int(rest[0]))
            return JSONResponse({"item": copy.deepcopy(row) if row else None})
        writes: dict[tuple[str, str], Callable[[Any], int]] = {
            ("Tickets", "POST"): self._post_ticket,
            ("Tickets", "PATCH"): self._patch_ticket,
            ("ConfigurationItems", "POST"): self._post_configuration_item,
            ("ConfigurationItems", "PATCH"): self._patch_configuration_item,
            ("ContractServiceAdjustments", "POST"): self._post_adjustment,
        }
        if not rest and (entity, method) in writes:
            return JSONResponse({"itemId": writes[(entity, method)](self._object(body))})
        if len(rest) == 2 and rest[0].isdigit():
            parent = int(rest[0])
            child = rest[1]
            if entity == "Tickets" and child == "notes" and method == "POST":
                return JSONResponse({"itemId": self._post_note(parent, self._object(body))})
            if entity == "Contracts" and child == "serviceadjustments" and method == "POST":
                data = self._object(body)
                if data.get("contractID") not in (None, parent):
                    raise invalid("contractID does not match the parent contract.")
                return JSONResponse({"itemId": self._post_adjustment({**data, "contractID": parent})})
            if entity == "Contracts" and child == "services" and method == "PATCH":
                return JSONResponse({"itemId": self._patch_contract_service(parent, self._object(body))})
        raise AutotaskApiError(
            405 if entity in FIELDS else 404,
            None,
            body={"Message": f"The requested resource does not support http method '{method}'."},
        )
