"""A stateful fake of the Autotask PSA REST API (zone discovery included), as an ASGI app.

Use it in-process with `httpx.ASGITransport(app=fake.app)` (any host routes to it: the discovery
host and the zone host alike), or serve `fake.app` for a demo. It behaves like Autotask where the
adapter depends on it (sources in `adapter.py`):

- Paths are `/ATServicesRest/V1.0/...`, case-insensitive. `GET …/ZoneInformation?user=` answers
  `{zoneName, url, webUrl, ci}` for the known API user (unauthenticated, not counted).
- Every other call needs the `ApiIntegrationCode`, `UserName` and `Secret` headers (else 401), and
  counts toward `ThresholdInformation` (`{externalRequestThreshold, requestThresholdTimeframe,
  currentTimeframeRequestCount}`); past the threshold every call is a 429 with the error body.
- `POST /{Entity}/query` takes `QueryModel` (`filter` required, `maxRecords` 1..500, `includeFields`)
  with the operators eq, noteq, gt, gte, lt, lte, beginsWith, endsWith, contains, exist, notExist,
  in, notIn and and/or groupings (`udf: true` filters user-defined fields); string comparisons
  ignore case. Pages carry `pageDetails.nextPageUrl` (`…/{Entity}/query/next?paging=…`), which must
  be POSTed with the same body; a GET there is a 405, as on Autotask.
- Writes answer 200 `{"itemId": n}`. Unknown fields, missing required fields, picklist values not
  in the picklist and references to missing records are HTTP 500 `{"errors": ["…"]}`; the wording
  "Value does not reference an existing entity for X ." is Autotask's, the other messages are
  illustrative.
- ContractServiceAdjustments change ContractServiceUnits by `unitChange` (a delta), splitting the
  period's row at the effective date; they create the ContractService when it is missing and cannot
  be queried.

Test and demo hooks: `seed_demo` (deterministic), `add_*`, fault injection (`fail_next`, `rate_limit`,
`timeout_next`, `clear_faults`, `set_latency`), threshold usage by other integrations
(`other_usage`), and request records (`requests`, `call_count`, `reset_calls`).
"""

from __future__ import annotations

import asyncio
import calendar
import copy
import json
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from adapters.testing.faults import (
    AsgiFake,
    ScriptedFault,
    TimeoutHooks,
    decode_body,
    first_fault,
    lowered_headers,
)

Row = dict[str, Any]

MAX_RECORDS = 500
PREFIX = "/atservicesrest/v1.0"

# Fields the fake knows per entity (a subset of the Swagger models); anything else is refused.
FIELDS: dict[str, dict[str, str]] = {
    "Companies": {
        "id": "long",
        "companyName": "string",
        "companyNumber": "string",
        "companyType": "integer",
        "isActive": "boolean",
        "phone": "string",
        "ownerResourceID": "integer",
        "parentCompanyID": "integer",
        "createDate": "datetime",
        "lastActivityDate": "datetime",
    },
    "Contracts": {
        "id": "long",
        "companyID": "integer",
        "contractName": "string",
        "contractNumber": "string",
        "contractType": "integer",
        "contractCategory": "integer",
        "status": "integer",
        "startDate": "datetime",
        "endDate": "datetime",
        "isDefaultContract": "boolean",
        "contractPeriodType": "integer",
    },
    "Services": {
        "id": "long",
        "name": "string",
        "description": "string",
        "unitPrice": "double",
        "unitCost": "double",
        "periodType": "integer",
        "isActive": "boolean",
        "sku": "string",
    },
    "ContractServices": {
        "id": "long",
        "contractID": "integer",
        "serviceID": "integer",
        "unitPrice": "double",
        "unitCost": "double",
        "invoiceDescription": "string",
        "internalDescription": "string",
    },
    "ContractServiceUnits": {
        "id": "long",
        "contractID": "integer",
        "contractServiceID": "integer",
        "serviceID": "integer",
        "units": "integer",
        "startDate": "datetime",
        "endDate": "datetime",
        "price": "double",
        "cost": "double",
        "approveAndPostDate": "datetime",
    },
    "Tickets": {
        "id": "long",
        "ticketNumber": "string",
        "companyID": "integer",
        "title": "string",
        "description": "string",
        "status": "integer",
        "priority": "integer",
        "queueID": "integer",
        "issueType": "integer",
        "subIssueType": "integer",
        "ticketType": "integer",
        "source": "integer",
        "externalID": "string",
        "rmmAlertID": "string",
        "dueDateTime": "datetime",
        "configurationItemID": "integer",
        "contractID": "integer",
        "assignedResourceID": "integer",
        "assignedResourceRoleID": "integer",
        "resolution": "string",
        "completedDate": "datetime",
        "createDate": "datetime",
        "lastActivityDate": "datetime",
    },
    "TicketNotes": {
        "id": "long",
        "ticketID": "integer",
        "title": "string",
        "description": "string",
        "noteType": "integer",
        "publish": "integer",
        "createDateTime": "datetime",
    },
    "ConfigurationItems": {
        "id": "long",
        "companyID": "integer",
        "productID": "integer",
        "configurationItemType": "integer",
        "referenceTitle": "string",
        "referenceNumber": "string",
        "serialNumber": "string",
        "isActive": "boolean",
        "rmmDeviceAuditHostname": "string",
        "installDate": "datetime",
        "contractID": "integer",
        "notes": "string",
    },
}
UDF_ENTITIES = frozenset({"Companies", "Contracts", "Tickets", "ConfigurationItems"})
READ_ONLY = {"id", "ticketNumber", "createDate", "createDateTime", "completedDate", "lastActivityDate"}
REQUIRED: dict[str, tuple[str, ...]] = {
    "Tickets": ("companyID", "title", "status", "priority"),
    "TicketNotes": ("title", "description", "noteType", "publish"),
    "ConfigurationItems": ("companyID", "productID", "isActive"),
    "ContractServiceAdjustments": ("contractID", "serviceID", "unitChange", "effectiveDate"),
}
ADJUSTMENT_FIELDS = {
    "id",
    "contractID",
    "contractServiceID",
    "serviceID",
    "effectiveDate",
    "unitChange",
    "adjustedUnitPrice",
    "adjustedUnitCost",
    "allowRepeatService",
    "quoteItemID",
}
OPERATORS = frozenset(
    {
        "eq",
        "noteq",
        "gt",
        "gte",
        "lt",
        "lte",
        "beginsWith",
        "endsWith",
        "contains",
        "exist",
        "notExist",
        "in",
        "notIn",
    }
)


class AutotaskApiError(Exception):
    """Raised inside handlers; rendered as Autotask renders failures."""

    def __init__(
        self, status: int, errors: list[str] | None, headers: dict[str, str] | None = None, body: Any = None
    ) -> None:
        super().__init__("; ".join(errors or []))
        self.status = status
        self.errors = errors
        self.headers = headers or {}
        self.body = body

    def response(self) -> Response:
        if self.body is not None:
            return JSONResponse(self.body, status_code=self.status, headers=self.headers)
        if self.errors is None:
            return Response(status_code=self.status, headers=self.headers)
        return JSONResponse({"errors": self.errors}, status_code=self.status, headers=self.headers)


def invalid(message: str) -> AutotaskApiError:
    return AutotaskApiError(500, [message])


def no_reference(field_name: str) -> AutotaskApiError:
    return invalid(f"Value does not reference an existing entity for {field_name} . ")


@dataclass
class Fault(ScriptedFault):
    """A scripted failure on requests matching `method` and API path template (`/Tickets`,
    `/Tickets/{id}/Notes`, `/Companies/query`; None = any), answered with Autotask's error body."""

    def fire(self) -> Response:
        self.claim()
        if self.status == 429:
            message = "API request threshold exceeded; retry later."
        elif self.status >= 500:
            message = "An unexpected error has occurred."
        else:
            message = f"injected {self.status}"
        return JSONResponse({"errors": [message]}, self.status, headers=self.retry_headers())


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    url: str
    path: str
    template: str
    query: dict[str, str]
    headers: dict[str, str]
    body: Any
    status: int = 0


@dataclass
class DemoSeed:
    company_ids: list[int] = field(default_factory=list)
    contract_ids: dict[int, int] = field(default_factory=dict)
    contract_service_ids: dict[int, int] = field(default_factory=dict)
    service_ids: dict[str, int] = field(default_factory=dict)
    queue_ids: dict[str, int] = field(default_factory=dict)
    status_ids: dict[str, int] = field(default_factory=dict)
    priority_ids: dict[str, int] = field(default_factory=dict)
    issue_type_ids: dict[str, int] = field(default_factory=dict)
    configuration_item_ids: dict[int, list[int]] = field(default_factory=dict)
    new_status_id: int = 1
    complete_status_id: int = 5
    product_id: int = 0
    configuration_type_id: int = 1
    udf_names: list[str] = field(default_factory=list)
    seats: int = 0


def _date(value: datetime) -> str:
    return value.strftime("%Y-%m-%dT%H:%M:%S")


def _norm(value: Any) -> Any:
    if isinstance(value, str):
        return value.casefold()
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float):
        return float(value)
    return value


def _coerce(value: Any, kind: str) -> Any:
    """A filter value as the field's type (Autotask accepts `"5"` for an integer field)."""
    if value is None:
        return None
    if kind in ("integer", "long"):
        try:
            return int(value)
        except (TypeError, ValueError):
            raise invalid(f"Unable to convert '{value}' to an integer.") from None
    if kind == "double":
        try:
            return float(value)
        except (TypeError, ValueError):
            raise invalid(f"Unable to convert '{value}' to a number.") from None
    if kind == "boolean":
        if isinstance(value, bool):
            return value
        return str(value).lower() in ("true", "1")
    if kind == "datetime":
        return str(value).rstrip("Z")[:19]
    return str(value)


class AutotaskFake(AsgiFake, TimeoutHooks[Fault]):
    """One fake Autotask tenant (one database). Construct, seed, then point an adapter at `app`."""

    fault_type = Fault

    def __init__(
        self,
        *,
        username: str = "connector@acme.example",
        secret: str = "at-secret-1",  # noqa: S107 - the fake's own test credential
        integration_code: str = "CONNECTORFAKETRACKINGID0001",
        zone_url: str = "https://webservices14.autotask.net/ATServicesRest/",
        web_url: str = "https://ww14.autotask.net/",
        threshold: int = 10_000,
        now: Callable[[], datetime] | None = None,
    ) -> None:
        self.username = username
        self.secret = secret
        self.integration_code = integration_code
        self.zone_url = zone_url.rstrip("/") + "/"
        self.web_url = web_url
        self.threshold = threshold
        self.timeframe_minutes = 60
        self.now: Callable[[], datetime] = now or (lambda: datetime.now(UTC))
        self.other_usage = 0
        """Requests other integrations made this hour: they share the same threshold."""
        self.request_count = 0
        self.data: dict[str, dict[int, Row]] = {entity: {} for entity in FIELDS}
        self.adjustments: list[Row] = []
        self.picklists: dict[str, dict[str, list[Row]]] = {
            "Tickets": {},
            "Contracts": {},
            "TicketNotes": {},
            "ConfigurationItems": {},
        }
        self.udfs: dict[str, set[str]] = {entity: set() for entity in UDF_ENTITIES}
        self.faults: list[Fault] = []
        self.latency = 0.0
        self.requests: list[RecordedRequest] = []
        self._ids: dict[str, int] = {}
        self._paging: dict[str, tuple[str, str, int]] = {}
        self._default_picklists()
        self.app = Starlette(
            routes=[Route("/{path:path}", self._dispatch, methods=["GET", "POST", "PATCH", "PUT", "DELETE"])]
        )

    # -- wiring helpers ----------------------------------------------------------------------

    def credentials(self) -> dict[str, Any]:
        return {"username": self.username, "secret": self.secret, "integration_code": self.integration_code}

    def _next(self, entity: str, start: int) -> int:
        value = self._ids.get(entity, start - 1) + 1
        self._ids[entity] = value
        return value

    # -- picklists and seeding ---------------------------------------------------------------

    def _default_picklists(self) -> None:
        tickets = self.picklists["Tickets"]
        tickets["status"] = self._values(
            [(1, "New"), (5, "Complete"), (7, "Waiting Customer"), (8, "In Progress"), (12, "Waiting Vendor")]
        )
        tickets["priority"] = self._values([(4, "Critical"), (1, "High"), (2, "Medium"), (3, "Low")])
        tickets["queueID"] = self._values(
            [(29682833, "Client Portal"), (29683481, "Monitoring Alert"), (29683482, "Security Operations")]
        )
        tickets["issueType"] = self._values([(10, "Security"), (11, "Hardware"), (12, "Software")])
        tickets["subIssueType"] = self._values(
            [(101, "Antivirus", "10"), (102, "Malware", "10"), (111, "Disk", "11")]
        )
        tickets["status"][0]["isDefaultValue"] = True
        self.picklists["TicketNotes"]["noteType"] = self._values(
            [(1, "Task Summary"), (2, "Task Detail"), (3, "Task Notes")]
        )
        self.picklists["TicketNotes"]["publish"] = self._values(
            [(1, "All Autotask Users"), (2, "Internal Project Team"), (3, "Internal & Co-managed")]
        )
        self.picklists["Contracts"]["contractType"] = self._values(
            [(1, "Time & Materials"), (3, "Fixed Price"), (4, "Block Hours"), (7, "Recurring Service")]
        )
        self.picklists["Contracts"]["status"] = self._values([(0, "Inactive"), (1, "Active")])
        self.picklists["ConfigurationItems"]["configurationItemType"] = self._values(
            [(1, "Workstation"), (2, "Server"), (3, "Network Device")]
        )

    @staticmethod
    def _values(entries: list[tuple[Any, ...]]) -> list[Row]:
        values = []
        for order, entry in enumerate(entries):
            value, label = entry[0], entry[1]
            parent = entry[2] if len(entry) > 2 else ""
            values.append(
                {
                    "value": str(value),
                    "label": label,
                    "isDefaultValue": False,
                    "sortOrder": order,
                    "parentValue": parent,
                    "isActive": True,
                    "isSystem": True,
                }
            )
        return values

    def _insert(self, entity: str, row: Row, start: int = 1) -> Row:
        row = {"id": self._next(entity, start), **row}
        if entity in UDF_ENTITIES:
            row.setdefault("userDefinedFields", [])
        self.data[entity][row["id"]] = row
        return row

    def add_udf(self, entity: str, name: str) -> None:
        self.udfs[entity].add(name)
        for row in self.data[entity].values():
            if not any(u["name"] == name for u in row["userDefinedFields"]):
                row["userDefinedFields"].append({"name": name, "value": None})

    def add_company(self, name: str, *, number: str | None = None, active: bool = True) -> Row:
        return self._insert(
            "Companies",
            {
                "companyName": name,
                "companyNumber": number or "",
                "companyType": 1,
                "isActive": active,
                "createDate": _date(self.now()),
            },
            start=174,
        )

    def period(self, day: datetime) -> tuple[str, str]:
        """The monthly billing period containing `day`: (start, end) in Autotask's date form."""
        last = calendar.monthrange(day.year, day.month)[1]
        start = datetime(day.year, day.month, 1)
        return _date(start), _date(start.replace(day=last))

    def add_contract(self, company_id: int, name: str, *, contract_type: int = 7, active: bool = True) -> Row:
        today = self.now()
        return self._insert(
            "Contracts",
            {
                "companyID": company_id,
                "contractName": name,
                "contractNumber": "",
                "contractType": contract_type,
                "contractCategory": 1,
                "status": 1 if active else 0,
                "startDate": _date(datetime(today.year, 1, 1)),
                "endDate": _date(datetime(today.year + 1, 12, 31)),
                "isDefaultContract": False,
                "contractPeriodType": 1,
            },
            start=29684000,
        )

    def add_service(self, name: str, *, unit_price: float, unit_cost: float) -> Row:
        return self._insert(
            "Services",
            {
                "name": name,
                "description": name,
                "unitPrice": unit_price,
                "unitCost": unit_cost,
                "periodType": 1,
                "isActive": True,
                "sku": "",
            },
            start=29683600,
        )

    def add_contract_service(
        self,
        contract_id: int,
        service_id: int,
        *,
        units: int = 0,
        unit_price: float | None = None,
        unit_cost: float | None = None,
    ) -> Row:
        service = self.data["Services"][service_id]
        row = self._insert(
            "ContractServices",
            {
                "contractID": contract_id,
                "serviceID": service_id,
                "unitPrice": service["unitPrice"] if unit_price is None else unit_price,
                "unitCost": service["unitCost"] if unit_cost is None else unit_cost,
                "invoiceDescription": service["name"],
                "internalDescription": "",
            },
            start=1200,
        )
        start, end = self.period(self.now())
        self._add_units(row, start, end, units)
        return row

    def _add_units(self, service: Row, start: str, end: str, units: int) -> Row:
        return self._insert(
            "ContractServiceUnits",
            {
                "contractID": service["contractID"],
                "contractServiceID": service["id"],
                "serviceID": service["serviceID"],
                "units": units,
                "startDate": start,
                "endDate": end,
                "price": service["unitPrice"],
                "cost": service["unitCost"],
                "approveAndPostDate": None,
            },
            start=5000,
        )

    def add_configuration_item(
        self,
        company_id: int,
        name: str,
        *,
        serial: str | None = None,
        product_id: int = 1,
        item_type: int = 1,
        **udfs: str,
    ) -> Row:
        row = self._insert(
            "ConfigurationItems",
            {
                "companyID": company_id,
                "productID": product_id,
                "configurationItemType": item_type,
                "referenceTitle": name,
                "referenceNumber": "",
                "serialNumber": serial or "",
                "isActive": True,
                "rmmDeviceAuditHostname": name,
                "installDate": None,
                "contractID": None,
                "notes": "",
            },
            start=300,
        )
        row["userDefinedFields"] = [
            {"name": n, "value": udfs.get(n)} for n in sorted(self.udfs["ConfigurationItems"])
        ]
        return row

    def add_ticket(self, company_id: int, title: str, **fields: Any) -> Row:
        data = {"companyID": company_id, "title": title, "status": 1, "priority": 2, "queueID": 29683482}
        data.update(fields)
        return self._create_ticket(data)

    def seed_demo(
        self, *, companies: int = 12, configuration_items_per_company: int = 0, seats: int = 5
    ) -> DemoSeed:
        """A deterministic tenant: companies (each with a recurring-service contract holding the
        seeded per-seat services), picklists, configuration-item UDFs."""
        seed = DemoSeed(seats=seats)
        for name in ("Antivirus Status", "Definitions Date", "Last Scan", "Threats"):
            self.add_udf("ConfigurationItems", name)
        seed.udf_names = sorted(self.udfs["ConfigurationItems"])
        edr = self.add_service("Managed EDR seat", unit_price=6.0, unit_cost=2.5)
        av = self.add_service("Managed antivirus seat", unit_price=3.0, unit_cost=1.0)
        seed.service_ids = {"EDR": edr["id"], "AV": av["id"]}
        seed.product_id = 29682900
        for n in range(1, companies + 1):
            company = self.add_company(f"Customer {n:03d}", number=f"C{n:04d}")
            cid = company["id"]
            seed.company_ids.append(cid)
            contract = self.add_contract(cid, f"Managed Services {n:03d}")
            seed.contract_ids[cid] = contract["id"]
            seed.contract_service_ids[cid] = self.add_contract_service(
                contract["id"], edr["id"], units=seats
            )["id"]
            seed.configuration_item_ids[cid] = [
                self.add_configuration_item(
                    cid, f"C{n:03d}-WS{m + 1:02d}", serial=f"SN{n:03d}{m + 1:03d}", product_id=seed.product_id
                )["id"]
                for m in range(configuration_items_per_company)
            ]
        pick = self.picklists["Tickets"]
        seed.queue_ids = {v["label"]: int(v["value"]) for v in pick["queueID"]}
        seed.status_ids = {v["label"]: int(v["value"]) for v in pick["status"]}
        seed.priority_ids = {v["label"]: int(v["value"]) for v in pick["priority"]}
        seed.issue_type_ids = {v["label"]: int(v["value"]) for v in pick["issueType"]}
        return seed

    # -- fault injection and records ---------------------------------------------------------

    def call_count(self, method: str | None = None, path: str | None = None) -> int:
        return sum(
            1
            for r in self.requests
            if (method is None or r.method == method.upper())
            and (path is None or r.template.lower() == path.lower())
        )

    def reset_calls(self) -> None:
        self.requests.clear()

    def tickets_for(self, company_id: int) -> list[Row]:
        return [t for t in self.data["Tickets"].values() if t["companyID"] == company_id]

    def notes_for(self, ticket_id: int) -> list[Row]:
        return [n for n in self.data["TicketNotes"].values() if n["ticketID"] == ticket_id]

    def units_for(self, contract_service_id: int) -> list[Row]:
        rows = [
            r
            for r in self.data["ContractServiceUnits"].values()
            if r["contractServiceID"] == contract_service_id
        ]
        return sorted(rows, key=lambda r: r["startDate"])

    def current_units(self, contract_service_id: int) -> int:
        day = _date(self.now().replace(hour=0, minute=0, second=0, microsecond=0, tzinfo=None))
        rows = [r for r in self.units_for(contract_service_id) if r["startDate"] <= day <= r["endDate"]]
        return int(rows[-1]["units"]) if rows else 0

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

    @staticmethod
    def _object(body: Any) -> Row:
        if not isinstance(body, dict):
            raise invalid("The request body must be a JSON object.")
        return body

    # -- queries -----------------------------------------------------------------------------

    def _field_info(self, entity: str) -> list[Row]:
        fields = []
        picks = self.picklists.get(entity, {})
        for name, kind in FIELDS.get(entity, {}).items():
            values = picks.get(name)
            fields.append(
                {
                    "name": name,
                    "dataType": kind,
                    "length": 0,
                    "isRequired": name in REQUIRED.get(entity, ()),
                    "isReadOnly": name in READ_ONLY,
                    "isQueryable": True,
                    "isReference": name.endswith("ID") and name != "id",
                    "referenceEntityType": "",
                    "isPickList": values is not None,
                    "picklistValues": copy.deepcopy(values) if values is not None else None,
                    "picklistParentValueField": "issueType" if name == "subIssueType" else "",
                    "isSupportedWebhookField": False,
                }
            )
        return fields

    def _resolve_field(self, entity: str, name: Any) -> tuple[str, str]:
        if not isinstance(name, str):
            raise invalid("Each filter needs a field.")
        for known, kind in FIELDS[entity].items():
            if known.lower() == name.lower():
                return known, kind
        raise invalid(f"Unable to find {name} in the {entity} entity.")

    def _matches(self, entity: str, row: Row, item: Any) -> bool:
        if not isinstance(item, dict):
            raise invalid("Each filter must be an object.")
        op = item.get("op")
        if op in ("and", "or"):
            items = item.get("items")
            if not isinstance(items, list) or not items:
                raise invalid(f"The '{op}' grouping needs items.")
            results = [self._matches(entity, row, sub) for sub in items]
            return all(results) if op == "and" else any(results)
        if op not in OPERATORS:
            raise invalid(f"The filter operator '{op}' is not supported.")
        if item.get("udf"):
            name = item.get("field")
            if not isinstance(name, str) or name not in self.udfs.get(entity, set()):
                raise invalid(f"Unable to find user-defined field {name} in the {entity} entity.")
            actual: Any = next(
                (u["value"] for u in row.get("userDefinedFields", []) if u["name"] == name), None
            )
            kind = "string"
        else:
            name, kind = self._resolve_field(entity, item.get("field"))
            actual = row.get(name)
        value = item.get("value")
        if op == "exist":
            return actual not in (None, "")
        if op == "notExist":
            return actual in (None, "")
        if op in ("in", "notIn"):
            if not isinstance(value, list):
                raise invalid(f"The '{op}' operator needs an array value.")
            found = _norm(_coerce(actual, kind)) in {_norm(_coerce(v, kind)) for v in value}
            return found if op == "in" else not found
        if isinstance(value, list | dict):
            raise invalid(f"The '{op}' operator needs a single value.")
        want = _norm(_coerce(value, kind))
        have = _norm(_coerce(actual, kind))
        if op == "eq":
            return bool(have == want)
        if op == "noteq":
            return bool(have != want)
        if have is None or want is None:
            return False
        if op in ("beginsWith", "endsWith", "contains"):
            have_s, want_s = str(have), str(want)
            if op == "beginsWith":
                return have_s.startswith(want_s)
            if op == "endsWith":
                return have_s.endswith(want_s)
            return want_s in have_s
        try:
            if op == "gt":
                return bool(have > want)
            if op == "gte":
                return bool(have >= want)
            if op == "lt":
                return bool(have < want)
            return bool(have <= want)
        except TypeError:
            raise invalid(f"Cannot compare {name} with '{value}'.") from None

    def _select(self, entity: str, body: Any) -> tuple[list[Row], int, list[str] | None]:
        if entity not in FIELDS:
            raise AutotaskApiError(
                405, None, body={"Message": "The requested resource does not support http method 'POST'."}
            )
        data = self._object(body)
        lowered = {k.lower(): v for k, v in data.items()}
        unknown = set(lowered) - {"filter", "maxrecords", "includefields"}
        if unknown:
            raise invalid(f"Unknown query property: {sorted(unknown)[0]}.")
        filters = lowered.get("filter")
        if not isinstance(filters, list) or not filters:
            raise invalid("A query requires at least one filter.")
        size = lowered.get("maxrecords") or MAX_RECORDS
        if not isinstance(size, int) or not 1 <= size <= MAX_RECORDS:
            raise invalid(f"MaxRecords must be between 1 and {MAX_RECORDS}.")
        include = lowered.get("includefields")
        names: list[str] | None = None
        if include:
            if not isinstance(include, list):
                raise invalid("IncludeFields must be an array.")
            names = [self._resolve_field(entity, n)[0] for n in include]
        rows = [
            r
            for _, r in sorted(self.data[entity].items())
            if all(self._matches(entity, r, f) for f in filters)
        ]
        return rows, size, names

    def _page(self, entity: str, body: Any, offset: int) -> Row:
        rows, size, names = self._select(entity, body)
        page = rows[offset : offset + size]
        items = []
        for row in page:
            item = copy.deepcopy(row)
            if names is not None:
                item = {k: v for k, v in item.items() if k in names or k == "id"}
            items.append(item)
        next_url = None
        if offset + size < len(rows):
            token = secrets.token_urlsafe(12)
            self._paging[token] = (entity, json.dumps(body, sort_keys=True), offset + size)
            next_url = f"{self.zone_url}V1.0/{entity}/query/next?paging={token}"
        return {
            "items": items,
            "pageDetails": {
                "count": len(items),
                "requestCount": size,
                "prevPageUrl": None,
                "nextPageUrl": next_url,
            },
        }

    def _query(self, entity: str, body: Any, offset: int) -> Row:
        return self._page(entity, body, offset)

    def _query_next(self, entity: str, token: str, body: Any) -> Row:
        state = self._paging.get(token)
        if state is None or state[0] != entity:
            raise invalid("The paging token is invalid or expired.")
        if json.dumps(body, sort_keys=True) != state[1]:
            raise invalid("The query for the next page must be the same as the original query.")
        return self._page(entity, body, state[2])

    # -- writes ------------------------------------------------------------------------------

    def _check_fields(self, entity: str, data: Row, *, allowed: set[str] | None = None, create: bool) -> None:
        known = allowed if allowed is not None else set(FIELDS[entity])
        for key in data:
            if key == "userDefinedFields" and entity in UDF_ENTITIES:
                continue
            if key not in known:
                raise invalid(f"Unable to find {key} in the {entity} entity.")
            if key in READ_ONLY and key != "id" and allowed is None:
                raise invalid(f"{key} is read-only.")
        if create:
            if data.get("id") not in (None, 0):
                raise invalid("id must not be set when creating an entity.")
            for name in REQUIRED.get(entity, ()):
                if data.get(name) in (None, ""):
                    raise invalid(f"Missing Required Field: {name}.")

    def _check_picklist(self, entity: str, data: Row, name: str) -> None:
        if data.get(name) is None:
            return
        values = {v["value"] for v in self.picklists[entity].get(name, []) if v.get("isActive", True)}
        if str(data[name]) not in values:
            raise no_reference(name)

    def _check_ref(self, entity: str, value: Any, name: str) -> Row:
        row = self.data[entity].get(value) if isinstance(value, int) else None
        if row is None:
            raise no_reference(name)
        return row

    def _apply_udfs(self, entity: str, row: Row, values: Any) -> None:
        if values is None:
            return
        if not isinstance(values, list):
            raise invalid("userDefinedFields must be an array.")
        for udf in values:
            if not isinstance(udf, dict) or set(udf) - {"name", "value"}:
                raise invalid("Each user-defined field is {name, value}.")
            name = udf.get("name")
            if name not in self.udfs[entity]:
                raise invalid(f"The user-defined field '{name}' does not exist on {entity}.")
            value = udf.get("value")
            if value is not None and not isinstance(value, str):
                raise invalid(f"The user-defined field '{name}' takes a string value.")
            current = next((u for u in row["userDefinedFields"] if u["name"] == name), None)
            if current is None:
                row["userDefinedFields"].append({"name": name, "value": value})
            else:
                current["value"] = value

    def _set_status(self, ticket: Row, status: int) -> None:
        ticket["status"] = status
        complete = next(
            (int(v["value"]) for v in self.picklists["Tickets"]["status"] if v["label"] == "Complete"), 5
        )
        ticket["completedDate"] = _date(self.now()) if status == complete else None

    def _create_ticket(self, data: Row) -> Row:
        self._check_fields("Tickets", data, create=True)
        if data.get("queueID") is None and data.get("assignedResourceID") is None:
            raise invalid("Missing Required Field: queueID.")
        if (data.get("assignedResourceID") is None) != (data.get("assignedResourceRoleID") is None):
            raise invalid(
                "When assigning a Resource, you must assign both a assignedResourceID and "
                "assignedResourceRoleID."
            )
        self._check_ref("Companies", data.get("companyID"), "companyID")
        for name in ("status", "priority", "queueID", "issueType", "subIssueType"):
            self._check_picklist("Tickets", data, name)
        stamp = self.now()
        row: Row = {name: None for name in FIELDS["Tickets"] if name != "id"}
        row.update({k: v for k, v in data.items() if k not in ("id", "userDefinedFields")})
        row.update({"createDate": _date(stamp), "lastActivityDate": _date(stamp)})
        ticket = self._insert("Tickets", row, start=7000)
        ticket["ticketNumber"] = f"T{stamp:%Y%m%d}.{ticket['id'] % 10000:04d}"
        self._set_status(ticket, int(data["status"]))
        self._apply_udfs("Tickets", ticket, data.get("userDefinedFields"))
        return ticket

    def _post_ticket(self, data: Row) -> int:
        return int(self._create_ticket(data)["id"])

    def _patch_ticket(self, data: Row) -> int:
        self._check_fields("Tickets", data, create=False)
        ticket = self.data["Tickets"].get(data.get("id"))  # type: ignore[arg-type]
        if ticket is None:
            raise invalid("id is required and must reference an existing ticket.")
        for name in ("status", "priority", "queueID", "issueType", "subIssueType"):
            self._check_picklist("Tickets", data, name)
        for key, value in data.items():
            if key not in ("id", "userDefinedFields", "status"):
                ticket[key] = value
        if "status" in data:
            self._set_status(ticket, int(data["status"]))
        self._apply_udfs("Tickets", ticket, data.get("userDefinedFields"))
        ticket["lastActivityDate"] = _date(self.now())
        return int(ticket["id"])

    def _post_note(self, ticket_id: int, data: Row) -> int:
        self._check_fields("TicketNotes", data, create=True)
        if ticket_id not in self.data["Tickets"]:
            raise no_reference("ticketID")
        if data.get("ticketID") not in (None, ticket_id):
            raise invalid("ticketID does not match the parent ticket.")
        for name in ("noteType", "publish"):
            self._check_picklist("TicketNotes", data, name)
        note = self._insert(
            "TicketNotes",
            {
                "ticketID": ticket_id,
                "title": data["title"],
                "description": data["description"],
                "noteType": data["noteType"],
                "publish": data["publish"],
                "createDateTime": _date(self.now()),
            },
            start=90000,
        )
        self.data["Tickets"][ticket_id]["lastActivityDate"] = _date(self.now())
        return int(note["id"])

    def _post_configuration_item(self, data: Row) -> int:
        self._check_fields("ConfigurationItems", data, create=True)
        self._check_ref("Companies", data.get("companyID"), "companyID")
        self._check_picklist("ConfigurationItems", data, "configurationItemType")
        row: Row = {name: None for name in FIELDS["ConfigurationItems"] if name != "id"}
        row.update({k: v for k, v in data.items() if k not in ("id", "userDefinedFields")})
        item = self._insert("ConfigurationItems", row, start=300)
        item["userDefinedFields"] = [
            {"name": n, "value": None} for n in sorted(self.udfs["ConfigurationItems"])
        ]
        self._apply_udfs("ConfigurationItems", item, data.get("userDefinedFields"))
        return int(item["id"])

    def _patch_configuration_item(self, data: Row) -> int:
        self._check_fields("ConfigurationItems", data, create=False)
        item = self.data["ConfigurationItems"].get(data.get("id"))  # type: ignore[arg-type]
        if item is None:
            raise invalid("id is required and must reference an existing configuration item.")
        self._check_picklist("ConfigurationItems", data, "configurationItemType")
        self._apply_udfs("ConfigurationItems", item, data.get("userDefinedFields"))
        for key, value in data.items():
            if key not in ("id", "userDefinedFields"):
                item[key] = value
        return int(item["id"])

    def _patch_contract_service(self, contract_id: int, data: Row) -> int:
        self._check_fields(
            "ContractServices",
            data,
            allowed={"id", "unitPrice", "unitCost", "invoiceDescription", "internalDescription"},
            create=False,
        )
        service = self.data["ContractServices"].get(data.get("id"))  # type: ignore[arg-type]
        if service is None or service["contractID"] != contract_id:
            raise invalid("id is required and must reference a service on this contract.")
        for key, value in data.items():
            if key != "id":
                service[key] = value
        return int(service["id"])

    def _post_adjustment(self, data: Row) -> int:
        self._check_fields("ContractServiceAdjustments", data, allowed=ADJUSTMENT_FIELDS, create=True)
        self._check_ref("Contracts", data.get("contractID"), "contractID")
        self._check_ref("Services", data.get("serviceID"), "serviceID")
        delta = data.get("unitChange")
        if not isinstance(delta, int) or isinstance(delta, bool):
            raise invalid("unitChange must be an integer.")
        effective = _coerce(data.get("effectiveDate"), "datetime")
        try:
            day = datetime.fromisoformat(effective)
        except ValueError:
            raise invalid("effectiveDate is not a valid date.") from None
        services = [
            s
            for s in self.data["ContractServices"].values()
            if s["contractID"] == data["contractID"] and s["serviceID"] == data["serviceID"]
        ]
        if data.get("contractServiceID") is not None and not any(
            s["id"] == data["contractServiceID"] for s in services
        ):
            raise no_reference("contractServiceID")
        if services:
            service = services[0]
        else:
            catalog = self.data["Services"][data["serviceID"]]
            price = data.get("adjustedUnitPrice")
            cost = data.get("adjustedUnitCost")
            service = self._insert(
                "ContractServices",
                {
                    "contractID": data["contractID"],
                    "serviceID": data["serviceID"],
                    "unitPrice": catalog["unitPrice"] if price is None else price,
                    "unitCost": catalog["unitCost"] if cost is None else cost,
                    "invoiceDescription": catalog["name"],
                    "internalDescription": "",
                },
                start=1200,
            )
        self._apply_units(service, day, delta)
        adjustment = {
            "id": self._next("ContractServiceAdjustments", 800),
            **data,
            "contractServiceID": service["id"],
        }
        self.adjustments.append(adjustment)
        return int(adjustment["id"])

    def _apply_units(self, service: Row, day: datetime, delta: int) -> None:
        start_of_day = _date(day.replace(hour=0, minute=0, second=0, microsecond=0))
        rows = [r for r in self.units_for(service["id"]) if r["startDate"] <= start_of_day <= r["endDate"]]
        if not rows:
            if delta < 0:
                raise invalid("unitChange would make the service's units negative.")
            _, end = self.period(day)
            self._add_units(service, start_of_day, end, delta)
            return
        row = rows[-1]
        if row["units"] + delta < 0:
            raise invalid("unitChange would make the service's units negative.")
        if row["startDate"] == start_of_day:
            row["units"] += delta
            return
        split = copy.deepcopy(row)
        row["endDate"] = _date(datetime.fromisoformat(start_of_day) - timedelta(days=1))
        split.pop("id")
        split.update({"startDate": start_of_day, "units": row["units"] + delta})
        self._insert("ContractServiceUnits", split, start=5000)
