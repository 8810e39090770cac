"""The fake tenant's state: entities by id, picklists, user-defined fields, seeding helpers, and the
fault list and request records the HTTP layer fills."""

from __future__ import annotations

import calendar
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from starlette.applications import Starlette

from adapters.autotask.fake.schema import (
    API_RESOURCE_ID,
    FIELDS,
    REQUIRED,
    UDF_ENTITIES,
    Fault,
    RecordedRequest,
    Row,
    invalid,
)


def wire_date(value: datetime) -> str:
    return value.strftime("%Y-%m-%dT%H:%M:%S")


class AutotaskStore:
    """One fake Autotask tenant (one database). The HTTP layer (`app.py`) supplies `_build_app`."""

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
        self.actor = API_RESOURCE_ID
        """The resource a write is recorded as made by: the API user, or a technician in the UI."""
        """Requests other integrations made this hour: they share the same threshold."""
        self.request_count = 0
        self.data: dict[str, dict[int, Row]] = {entity: {} for entity in FIELDS}
        self.required: dict[str, tuple[str, ...]] = dict(REQUIRED)
        """Required fields per entity: tenant metadata in Autotask (`isRequired`), so a test may
        change them; writes missing one are refused."""
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
        self.app = self._build_app()

    def _build_app(self) -> Starlette:
        raise NotImplementedError

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
                "createDate": wire_date(self.now()),
            },
            start=174,
        )

    def period(self, day: datetime) -> tuple[str, str]:
        """The monthly billing period containing `day`: (start, end) in Autotask's date form."""
        last = calendar.monthrange(day.year, day.month)[1]
        start = datetime(day.year, day.month, 1)
        return wire_date(start), wire_date(start.replace(day=last))

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
                "startDate": wire_date(datetime(today.year, 1, 1)),
                "endDate": wire_date(datetime(today.year + 1, 12, 31)),
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
        day = wire_date(self.now().replace(hour=0, minute=0, second=0, microsecond=0, tzinfo=None))
        rows = [r for r in self.units_for(contract_service_id) if r["startDate"] <= day <= r["endDate"]]
        return int(rows[-1]["units"]) if rows else 0

    @staticmethod
    def _object(body: Any) -> Row:
        if not isinstance(body, dict):
            raise invalid("The request body must be a JSON object.")
        return body
