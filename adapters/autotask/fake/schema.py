"""What the fake Autotask knows and how it refuses: the entities' fields (a subset of the Swagger
models), required and read-only fields, Autotask's error body, and scripted faults."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from starlette.responses import JSONResponse, Response

from adapters.testing.faults import ScriptedFault

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
        "completedByResourceID": "integer",
        "createDate": "datetime",
        "creatorResourceID": "integer",
        "lastActivityDate": "datetime",
        "lastActivityPersonType": "integer",
        "lastActivityResourceID": "integer",
    },
    "TicketNotes": {
        "id": "long",
        "ticketID": "integer",
        "title": "string",
        "description": "string",
        "noteType": "integer",
        "publish": "integer",
        "createDateTime": "datetime",
        "creatorResourceID": "integer",
        "createdByContactID": "integer",
    },
    "TimeEntries": {
        "id": "long",
        "ticketID": "integer",
        "resourceID": "integer",
        "dateWorked": "datetime",
        "hoursWorked": "double",
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
API_RESOURCE_ID = 29682885
"""The resource the fake's API user is (what Autotask records as creator/last actor of its writes)."""
PERSON_RESOURCE = 1
"""`lastActivityPersonType`: 1 a resource (a technician or the API user), 2 a contact."""
UDF_ENTITIES = frozenset({"Companies", "Contracts", "Tickets", "ConfigurationItems"})
READ_ONLY = {
    "id",
    "ticketNumber",
    "createDate",
    "createDateTime",
    "completedDate",
    "lastActivityDate",
    "completedByResourceID",
    "creatorResourceID",
    "lastActivityPersonType",
    "lastActivityResourceID",
    "createdByContactID",
}
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
