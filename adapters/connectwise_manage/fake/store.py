"""The fake tenant's state: indexed tables, the seeding helpers tests and demos build records with,
and the fault list and call records the HTTP layer fills."""

from __future__ import annotations

import copy
import itertools
import re
from collections import Counter, OrderedDict, defaultdict, deque
from collections.abc import Iterable, Iterator, Mapping
from datetime import UTC, datetime
from typing import Any

from starlette.applications import Starlette

from adapters.connectwise_manage.fake.query import lookup
from adapters.connectwise_manage.fake.schema import (
    ADDITION_FIELDS,
    AGREEMENT_FIELDS,
    AGREEMENT_TYPE_FIELDS,
    BOARD_FIELDS,
    CATALOG_FIELDS,
    COMPANY_FIELDS,
    CONFIGURATION_FIELDS,
    CONFIGURATION_TYPE_FIELDS,
    NOTE_FIELDS,
    PRIORITY_FIELDS,
    STATUS_FIELDS,
    TICKET_FIELDS,
    TIME_ENTRY_FIELDS,
    TYPE_FIELDS,
    Fault,
    ManageApiError,
)
from adapters.testing.faults import RecordedRequest

Row = dict[str, Any]

# ---------------------------------------------------------------------------------------------
# Storage
# ---------------------------------------------------------------------------------------------


class Table:
    """Rows by id (ids only grow, so `ids` stays sorted), with company and parent indexes."""

    def __init__(self, name: str, fields: frozenset[str], *, parent_field: str | None = None) -> None:
        self.name = name
        self.fields = fields
        self.parent_field = parent_field
        self.rows: dict[int, Row] = {}
        self.ids: list[int] = []
        self.by_company: defaultdict[int, list[int]] = defaultdict(list)
        self.by_parent: defaultdict[int, list[int]] = defaultdict(list)
        self.version = 0
        self._next = itertools.count(1)

    def __len__(self) -> int:
        return len(self.rows)

    def __iter__(self) -> Iterator[Row]:
        return iter(self.rows.values())

    def all(self) -> list[Row]:
        return list(self.rows.values())

    def get(self, row_id: int) -> Row | None:
        return self.rows.get(int(row_id))

    def insert(self, row: Row) -> Row:
        row_id = next(self._next)
        row["id"] = row_id
        self.rows[row_id] = row
        self.ids.append(row_id)
        company = row.get("company")
        if isinstance(company, dict) and isinstance(company.get("id"), int):
            self.by_company[company["id"]].append(row_id)
        if self.parent_field is not None:
            parent = lookup(row, tuple(self.parent_field.split("/")))
            if isinstance(parent, int):
                self.by_parent[parent].append(row_id)
        self.version += 1
        return row

    def replace(self, row: Row) -> None:
        """Store an updated row (company/parent must not change: the fake never moves them)."""
        self.rows[row["id"]] = row
        self.version += 1

    def remove(self, row_id: int) -> None:
        """Drop a row (a ticket deleted in the PSA's UI)."""
        row = self.rows.pop(int(row_id))
        self.ids.remove(row["id"])
        for index in (self.by_company, self.by_parent):
            for ids in index.values():
                if row["id"] in ids:
                    ids.remove(row["id"])
        self.version += 1

    def candidates(self, *, parent: int | None, company: int | None) -> list[int]:
        base = self.by_parent.get(parent, []) if parent is not None else self.ids
        if company is None:
            return base
        by_company = self.by_company.get(company, [])
        if parent is None:
            return by_company
        allowed = set(base)
        return [i for i in by_company if i in allowed]


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _info(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    stamp = _now()
    return {
        "lastUpdated": stamp,
        "dateEntered": stamp,
        "enteredBy": "APIMember",
        "updatedBy": "APIMember",
        **(extra or {}),
    }


def _project(row: Row, fields: list[tuple[str, ...]]) -> Row:
    out: Row = {}
    for path in fields:
        value = lookup(row, path)
        if value is None and not _has_path(row, path):
            continue
        target = out
        for part in path[:-1]:
            target = target.setdefault(part, {})
        target[path[-1]] = copy.deepcopy(value)
    return out


def _has_path(row: Row, path: tuple[str, ...]) -> bool:
    value: Any = row
    for part in path:
        if not isinstance(value, dict) or part not in value:
            return False
        value = value[part]
    return True


class ManageStore:
    """One fake Manage tenant's records. The HTTP layer (`app.py`) supplies `_build_app`."""

    def __init__(
        self,
        *,
        company_id: str = "training",
        public_key: str = "fakepublic",
        private_key: str = "fakeprivate",
        client_id: str = "00000000-0000-4000-8000-00000000c11d",
        codebase: str = "v2025_1/",
        is_cloud: bool = False,
        company_name: str = "Fake MSP",
        version: str = "v2025.1.10431",
    ) -> None:
        self.company_id = company_id
        self.public_key = public_key
        self.private_key = private_key
        self.client_id = client_id
        self.codebase = codebase.strip("/") + "/"
        self.is_cloud = is_cloud
        self.company_name = company_name
        self.version = version
        self.latency = 0.0
        self.in_flight = 0
        """Requests being answered right now (latency included)."""
        self.max_in_flight = 0
        """The most requests it was answering at once since created (or `reset_calls`)."""
        self.faults: list[Fault] = []
        self.calls: Counter[str] = Counter()
        self.requests: deque[RecordedRequest] = deque(maxlen=10_000)
        self.api_versions: Counter[str] = Counter()
        self.ignored_patch_ops: list[dict[str, Any]] = []
        self.agreement_types = Table("agreementType", AGREEMENT_TYPE_FIELDS)
        self._match_cache: OrderedDict[tuple[Any, ...], list[int]] = OrderedDict()

        self.companies = Table("company", COMPANY_FIELDS)
        self.agreements = Table("agreement", AGREEMENT_FIELDS)
        self.boards = Table("board", BOARD_FIELDS)
        self.statuses = Table("boardStatus", STATUS_FIELDS, parent_field="board/id")
        self.types = Table("boardType", TYPE_FIELDS, parent_field="board/id")
        self.priorities = Table("priority", PRIORITY_FIELDS)
        self.tickets = Table("ticket", TICKET_FIELDS)
        self.notes = Table("serviceNote", NOTE_FIELDS, parent_field="ticketId")
        self.time_entries = Table("timeEntry", TIME_ENTRY_FIELDS)
        self.configurations = Table("configuration", CONFIGURATION_FIELDS)
        self.configuration_types = Table("configurationType", CONFIGURATION_TYPE_FIELDS)
        self.configuration_custom_fields: list[Row] = []
        self.ticket_configurations: dict[int, list[int]] = {}
        """Ticket id → the configurations attached to it, in the order attached."""
        self.products = Table("catalogItem", CATALOG_FIELDS)
        self.additions = Table("addition", ADDITION_FIELDS, parent_field="agreementId")

        self.app = self._build_app()

    def _build_app(self) -> Starlette:
        raise NotImplementedError

    # -- credentials / urls -----------------------------------------------------------------

    def credentials(self) -> dict[str, str]:
        """Values for `ManageCredentials` that this fake accepts."""
        return {
            "company_id": self.company_id,
            "public_key": self.public_key,
            "private_key": self.private_key,
            "client_id": self.client_id,
        }

    @property
    def api_prefix(self) -> str:
        return f"/{self.codebase}apis/3.0"

    # -- seeding ----------------------------------------------------------------------------

    def add_company(self, name: str, identifier: str | None = None, **fields: Any) -> Row:
        row: Row = {
            "identifier": identifier or re.sub(r"[^A-Za-z0-9]", "", name)[:25] or "Company",
            "name": name,
            "status": {"id": 1, "name": "Active"},
            "deletedFlag": False,
            "types": [{"id": 1, "name": "Client"}],
            "_info": _info(),
            **fields,
        }
        return self.companies.insert(row)

    def add_companies(self, count: int, *, prefix: str = "Company") -> list[int]:
        """Bulk-seed `count` companies named `{prefix} {n}`; returns their ids."""
        start = len(self.companies) + 1
        return [
            self.add_company(f"{prefix} {n}", f"{prefix[:10]}{n}")["id"] for n in range(start, start + count)
        ]

    def _company_ref(self, company_id: int) -> Row:
        company = self.companies.get(company_id)
        if company is None:
            raise KeyError(f"no company {company_id}")
        return {"id": company["id"], "identifier": company["identifier"], "name": company["name"]}

    def add_agreement(
        self,
        company_id: int,
        name: str = "Managed Services",
        *,
        type_name: str = "Managed Services",
        status: str = "Active",
        **fields: Any,
    ) -> Row:
        type_id = self.agreement_type(type_name)["id"]
        row: Row = {
            "name": name,
            "type": {"id": type_id, "name": type_name},
            "company": self._company_ref(company_id),
            "contact": {"id": 1, "name": "Primary Contact"},
            "agreementStatus": status,
            "cancelledFlag": status == "Cancelled",
            "startDate": "2024-01-01T00:00:00Z",
            "noEndingDateFlag": True,
            "billAmount": 0.0,
            "_info": _info(),
            **fields,
        }
        return self.agreements.insert(row)

    def agreement_type(self, name: str, *, inactive: bool = False) -> Row:
        """The agreement type of that name (added, as Manage's setup tables hold them, if new)."""
        for row in self.agreement_types:
            if row["name"] == name:
                return row
        return self.agreement_types.insert(
            {
                "name": name,
                "defaultFlag": False,
                "inactiveFlag": inactive,
                "prePaymentFlag": False,
                "applicationUnlimitedFlag": True,
                "billingCycle": {"id": 1, "name": "Monthly"},
                "invoicingCycle": "CalendarYear",
                "employeeCompRate": "Actual",
                "employeeCompNotExceed": "Billing",
                "billTime": "Billable",
                "billExpenses": "Billable",
                "billProducts": "Billable",
                "taxableFlag": False,
                "prorateFlag": True,
                "_info": _info(),
            }
        )

    def add_board(
        self,
        name: str,
        *,
        statuses: Iterable[tuple[str, bool]] = (("New", False), ("In Progress", False), ("Closed", True)),
        types: Iterable[str] = ("Alert", "Incident"),
        inactive: bool = False,
    ) -> Row:
        board = self.boards.insert(
            {
                "name": name,
                "location": {"id": 1, "name": "Main"},
                "department": {"id": 1, "name": "Service"},
                "inactiveFlag": inactive,
                "projectFlag": False,
                "_info": _info(),
            }
        )
        for index, (status_name, closed) in enumerate(statuses):
            self.add_board_status(board["id"], status_name, closed=closed, default=index == 0)
        for type_name in types:
            self.add_board_type(board["id"], type_name)
        return board

    def add_board_status(
        self, board_id: int, name: str, *, closed: bool = False, default: bool = False, inactive: bool = False
    ) -> Row:
        board = self._require(self.boards, board_id)
        order = len(self.statuses.by_parent.get(board_id, []))
        return self.statuses.insert(
            {
                "name": name,
                "board": {"id": board["id"], "name": board["name"]},
                "sortOrder": order,
                "displayOnBoard": True,
                "inactive": inactive,
                "closedStatus": closed,
                "defaultFlag": default,
                "escalationStatus": "NotResponded",
                "_info": _info(),
            }
        )

    def add_board_type(self, board_id: int, name: str, *, inactive: bool = False) -> Row:
        board = self._require(self.boards, board_id)
        return self.types.insert(
            {
                "name": name,
                "category": "Reactive",
                "defaultFlag": False,
                "inactiveFlag": inactive,
                "requestForChangeFlag": False,
                "board": {"id": board["id"], "name": board["name"]},
                "_info": _info(),
            }
        )

    def add_priority(self, name: str, *, sort_order: int | None = None, default: bool = False) -> Row:
        row: Row = {
            "name": name,
            "color": "Blue",
            "sortOrder": sort_order if sort_order is not None else len(self.priorities) + 1,
            "defaultFlag": default,
            "_info": _info(),
        }
        # Priority.level is one of Critical/High/Medium/Low (OpenAPI 2026.4), absent otherwise.
        level = next((lv for lv in ("Critical", "High", "Medium", "Low") if lv in name), None)
        if level:
            row["level"] = level
        return self.priorities.insert(row)

    def add_configuration_type(self, name: str) -> Row:
        return self.configuration_types.insert(
            {"name": name, "inactiveFlag": False, "systemFlag": False, "_info": _info()}
        )

    def add_configuration_custom_field(self, caption: str, *, type: str = "Text") -> Row:
        """Define a custom field every configuration carries (existing ones get it too)."""
        definition = {
            "id": len(self.configuration_custom_fields) + 1,
            "caption": caption,
            "type": type,
            "entryMethod": "EntryField",
            "numberOfDecimals": 0,
        }
        self.configuration_custom_fields.append(definition)
        for config in self.configurations:
            config.setdefault("customFields", []).append({**definition, "value": None})
        return definition

    def _custom_fields(self) -> list[Row]:
        return [{**definition, "value": None} for definition in self.configuration_custom_fields]

    def add_configuration(
        self,
        company_id: int,
        name: str,
        *,
        type_id: int | None = None,
        serial_number: str | None = None,
        **fields: Any,
    ) -> Row:
        if type_id is None:
            type_id = (
                next(iter(self.configuration_types.ids), None)
                or self.add_configuration_type("Managed Workstation")["id"]
            )
        ctype = self._require(self.configuration_types, type_id)
        row: Row = {
            "name": name,
            "type": {"id": ctype["id"], "name": ctype["name"]},
            "status": {"id": 1, "name": "Active"},
            "company": self._company_ref(company_id),
            "serialNumber": serial_number,
            "activeFlag": True,
            "notes": None,
            "questions": [],
            "customFields": self._custom_fields(),
            "_info": _info(),
            **fields,
        }
        return self.configurations.insert(row)

    def add_product(
        self, identifier: str, description: str | None = None, *, price: float = 0.0, cost: float = 0.0
    ) -> Row:
        return self.products.insert(
            {
                "identifier": identifier,
                "description": description or identifier,
                "customerDescription": description or identifier,
                "inactiveFlag": False,
                "productClass": "Agreement",
                "serializedFlag": False,
                "price": price,
                "cost": cost,
                "recurringFlag": True,
                "_info": _info(),
            }
        )

    def add_addition(
        self,
        agreement_id: int,
        product_identifier: str,
        quantity: float,
        *,
        unit_price: float = 0.0,
        unit_cost: float = 0.0,
        description: str | None = None,
        **fields: Any,
    ) -> Row:
        agreement = self._require(self.agreements, agreement_id)
        product = self._product_by_identifier(product_identifier) or self.add_product(product_identifier)
        row = self._new_addition(
            agreement,
            product,
            {
                "quantity": quantity,
                "unitPrice": unit_price,
                "unitCost": unit_cost,
                "billCustomer": "Billable",
            },
        )
        if description is not None:
            row["description"] = description
        row.update(fields)
        return self.additions.insert(row)

    # -- accessors --------------------------------------------------------------------------

    def notes_for(self, ticket_id: int) -> list[Row]:
        return [self.notes.rows[i] for i in self.notes.by_parent.get(ticket_id, [])]

    def additions_for(self, agreement_id: int) -> list[Row]:
        return [self.additions.rows[i] for i in self.additions.by_parent.get(agreement_id, [])]

    def tickets_for(self, company_id: int) -> list[Row]:
        return [self.tickets.rows[i] for i in self.tickets.by_company.get(company_id, [])]

    @staticmethod
    def _require(table: Table, row_id: int) -> Row:
        row = table.get(row_id)
        if row is None:
            raise ManageApiError(
                404, "NotFound", f"{table.name[0].upper()}{table.name[1:]} Id {row_id} not found"
            )
        return row

    # -- additions --------------------------------------------------------------------------

    def _product_by_identifier(self, identifier: str) -> Row | None:
        wanted = identifier.casefold()
        return next((p for p in self.products if str(p["identifier"]).casefold() == wanted), None)

    def _new_addition(self, agreement: Row, product: Row, data: Row) -> Row:
        quantity = float(data.get("quantity") or 0.0)
        unit_price = (
            float(data["unitPrice"]) if data.get("unitPrice") is not None else float(product["price"])
        )
        unit_cost = float(data["unitCost"]) if data.get("unitCost") is not None else float(product["cost"])
        row: Row = {
            "lessIncluded": 0.0,
            "taxableFlag": False,
            "purchaseItemFlag": False,
            "specialOrderFlag": False,
            "description": product["description"],
            "uom": "Each",
            "sequenceNumber": float(len(self.additions.by_parent.get(agreement["id"], [])) + 1),
            "prorateCurrentPeriodFlag": False,
            "effectiveDate": agreement.get("startDate"),
            **data,
            "product": {"id": product["id"], "identifier": product["identifier"], "serializedFlag": False},
            "agreementId": agreement["id"],
            "agreementStatus": agreement.get("agreementStatus", "Active"),
            "quantity": quantity,
            "unitPrice": unit_price,
            "unitCost": unit_cost,
            "_info": _info(),
        }
        self._recompute_addition(row)
        return row

    @staticmethod
    def _recompute_addition(row: Row) -> None:
        quantity = float(row.get("quantity") or 0.0)
        row["billedQuantity"] = quantity
        row["extPrice"] = round(quantity * float(row.get("unitPrice") or 0.0), 2)
        row["extCost"] = round(quantity * float(row.get("unitCost") or 0.0), 2)
        row["margin"] = round(row["extPrice"] - row["extCost"], 2)
