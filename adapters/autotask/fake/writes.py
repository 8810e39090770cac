"""Creates, patches and contract-service adjustments, validated the way Autotask validates them."""

from __future__ import annotations

import copy
from datetime import datetime, timedelta
from typing import Any

from adapters.autotask.fake.query import AutotaskQueries, coerce
from adapters.autotask.fake.schema import (
    ADJUSTMENT_FIELDS,
    API_RESOURCE_ID,
    FIELDS,
    PERSON_RESOURCE,
    READ_ONLY,
    UDF_ENTITIES,
    Row,
    invalid,
    no_reference,
)
from adapters.autotask.fake.store import wire_date


class AutotaskWrites(AutotaskQueries):
    """Write handlers; `add_ticket` seeds through the same validation."""

    def add_ticket(self, company_id: int, title: str, **fields: Any) -> Row:
        data = {"companyID": company_id, "title": title, "status": 1, "priority": 2, "queueID": 29683482}
        data.update(fields)
        return self._create_ticket(data)

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
            for name in self.required.get(entity, ()):
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
        ticket["completedDate"] = wire_date(self.now()) if status == complete else None
        ticket["completedByResourceID"] = self.actor if status == complete else None

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
        if data.get("configurationItemID") is not None:
            # A ticket's configuration item is one of its company's items (a deleted or another
            # company's item is refused as Autotask refuses any dangling reference).
            item = self._check_ref("ConfigurationItems", data["configurationItemID"], "configurationItemID")
            if item.get("companyID") != data.get("companyID"):
                raise no_reference("configurationItemID")
        for name in ("status", "priority", "queueID", "issueType", "subIssueType"):
            self._check_picklist("Tickets", data, name)
        stamp = self.now()
        row: Row = {name: None for name in FIELDS["Tickets"] if name != "id"}
        row.update({k: v for k, v in data.items() if k not in ("id", "userDefinedFields")})
        row.update({"createDate": wire_date(stamp), "lastActivityDate": wire_date(stamp)})
        row.update({"creatorResourceID": self.actor, **self._activity()})
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
        ticket.update(self._activity())
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
                "createDateTime": wire_date(self.now()),
                "creatorResourceID": self.actor,
                "createdByContactID": None,
            },
            start=90000,
        )
        self.data["Tickets"][ticket_id].update(self._activity())
        return int(note["id"])

    def _activity(self) -> Row:
        return {
            "lastActivityDate": wire_date(self.now()),
            "lastActivityPersonType": PERSON_RESOURCE,
            "lastActivityResourceID": self.actor,
        }

    # -- a technician's work, as Autotask records it (their resource, not the API user) ------

    TECHNICIAN = 30685001

    def _as_technician(self) -> None:
        self.actor = self.TECHNICIAN

    def resource_note(self, ticket_id: int, text: str) -> Row:
        try:
            self._as_technician()
            note_id = self._post_note(
                ticket_id, {"title": "Technician", "description": text, "noteType": 1, "publish": 1}
            )
        finally:
            self.actor = API_RESOURCE_ID
        return self.data["TicketNotes"][note_id]

    def resource_time_entry(self, ticket_id: int, hours: float) -> Row:
        entry = self._insert(
            "TimeEntries",
            {
                "ticketID": ticket_id,
                "resourceID": self.TECHNICIAN,
                "dateWorked": wire_date(self.now()),
                "hoursWorked": hours,
                "createDateTime": wire_date(self.now()),
            },
            start=40000,
        )
        self.data["Tickets"][ticket_id].update(self._activity_of(self.TECHNICIAN))
        return entry

    def _activity_of(self, resource: int) -> Row:
        return {**self._activity(), "lastActivityResourceID": resource}

    def resource_update(self, ticket_id: int, *, complete: bool = False, assign: bool = False) -> None:
        ticket = self.data["Tickets"][ticket_id]
        try:
            self._as_technician()
            if complete:
                done = next(
                    int(v["value"]) for v in self.picklists["Tickets"]["status"] if v["label"] == "Complete"
                )
                self._set_status(ticket, done)
            if assign:
                ticket["assignedResourceID"] = self.TECHNICIAN
                ticket["assignedResourceRoleID"] = 29683464
            ticket.update(self._activity())
        finally:
            self.actor = API_RESOURCE_ID

    def delete_ticket(self, ticket_id: int) -> None:
        del self.data["Tickets"][ticket_id]

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
        effective = coerce(data.get("effectiveDate"), "datetime")
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
        start_of_day = wire_date(day.replace(hour=0, minute=0, second=0, microsecond=0))
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
        row["endDate"] = wire_date(datetime.fromisoformat(start_of_day) - timedelta(days=1))
        split.pop("id")
        split.update({"startDate": start_of_day, "units": row["units"] + delta})
        self._insert("ContractServiceUnits", split, start=5000)
