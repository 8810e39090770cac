"""Creates and patches, validated the way Manage validates them (field lists, reference shapes,
required fields, references that must exist)."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterable
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from adapters.connectwise_manage.fake.schema import (
    ADDITION_FIELDS,
    ADDITION_REFS,
    BILL_CUSTOMER,
    CONFIGURATION_FIELDS,
    CONFIGURATION_REFERENCE_FIELDS,
    CONFIGURATION_REFS,
    NOTE_FIELDS,
    NOTE_REFS,
    READ_ONLY,
    TICKET_FIELDS,
    TICKET_REFS,
    ManageApiError,
    invalid,
)
from adapters.connectwise_manage.fake.store import ManageStore, Table, _info, _now

Row = dict[str, Any]


class ManageWrites(ManageStore):
    """Write handlers over the store; `add_ticket` seeds through the same validation."""

    def add_ticket(self, company_id: int, board_id: int, summary: str, **fields: Any) -> Row:
        body: Row = {"summary": summary, "company": {"id": company_id}, "board": {"id": board_id}, **fields}
        return self._create_ticket(body)

    # -- write validation -------------------------------------------------------------------

    def _check_body(
        self, body: Any, resource: str, fields: frozenset[str], refs: frozenset[str], required: Iterable[str]
    ) -> Row:
        if not isinstance(body, dict):
            raise ManageApiError(
                400, "InvalidObject", f"{resource} object is invalid: expected a JSON object"
            )
        for key in body:
            if key not in fields:
                raise invalid(resource, key, f"{key} is not a valid field of {resource}", "UnknownField")
        for name in required:
            if body.get(name) in (None, ""):
                raise invalid(resource, name, f"The {name} field is required.", "MissingRequiredField")
        for name in refs & body.keys():
            self._check_ref(resource, name, body[name])
        return {k: v for k, v in body.items() if k not in READ_ONLY}

    @staticmethod
    def _check_ref(resource: str, name: str, value: Any) -> None:
        if value is None:
            return
        if not isinstance(value, dict) or not ({"id", "identifier", "name"} & value.keys()):
            raise invalid(resource, name, f'{name} must be a reference object such as {{"id": 1}}')
        allowed = {"id", "identifier", "name", "_info", "sort", "serializedFlag"}
        unknown = value.keys() - allowed
        if unknown:
            raise invalid(resource, name, f"{name} has unknown properties {sorted(unknown)}", "UnknownField")
        if "id" in value and (not isinstance(value["id"], int) or isinstance(value["id"], bool)):
            raise invalid(resource, name, f"{name}/id must be an integer")

    def _resolve(self, resource: str, name: str, table: Table, ref: Row) -> Row:
        row: Row | None = None
        if "id" in ref:
            row = table.get(ref["id"])
        elif "identifier" in ref:
            wanted = str(ref["identifier"]).casefold()
            row = next((r for r in table if str(r.get("identifier", "")).casefold() == wanted), None)
        elif "name" in ref:
            wanted = str(ref["name"]).casefold()
            row = next((r for r in table if str(r.get("name", "")).casefold() == wanted), None)
        if row is None:
            raise invalid(resource, name, f"{name} {json.dumps(ref)} was not found", "InvalidReference")
        return row

    @staticmethod
    def _number(resource: str, name: str, value: Any) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise invalid(resource, name, f"{name} must be a number")
        return float(value)

    @staticmethod
    def _text(resource: str, name: str, value: Any, max_length: int | None = None) -> str | None:
        if value is None:
            return None
        if not isinstance(value, str):
            raise invalid(resource, name, f"{name} must be a string")
        if max_length is not None and len(value) > max_length:
            raise invalid(
                resource, name, f"{name} cannot be longer than {max_length} characters", "MaxLength"
            )
        return value

    def _patch_ops(self, resource: str, fields: frozenset[str], body: Any) -> list[tuple[str, str, Any]]:
        if not isinstance(body, list) or not body:
            raise ManageApiError(
                400, "InvalidObject", "The patch body must be a non-empty JSON array of operations"
            )
        ops: list[tuple[str, str, Any]] = []
        for op in body:
            if (
                not isinstance(op, dict)
                or not {"op", "path"} <= op.keys()
                or op.keys() - {"op", "path", "value"}
            ):
                raise ManageApiError(400, "InvalidObject", "Each patch operation must be {op, path, value}")
            kind = str(op["op"]).lower()
            if kind not in ("add", "replace", "remove"):
                raise invalid(resource, "op", f"Unsupported patch operation {op['op']!r}")
            path = str(op["path"]).lstrip("/")
            if "/" in path:
                self.ignored_patch_ops.append(op)  # Manage answers 200 and changes nothing
                continue
            if path not in fields:
                raise invalid(resource, path, f"{path} is not a valid field of {resource}", "UnknownField")
            if path in READ_ONLY:
                raise invalid(resource, path, f"{path} is read-only")
            if kind != "remove" and "value" not in op:
                raise invalid(resource, path, "A value is required")
            ops.append((kind, path, op.get("value")))
        return ops

    # -- tickets ----------------------------------------------------------------------------

    def _board_status(self, board_id: int, ref: Row | None) -> Row:
        statuses = [self.statuses.rows[i] for i in self.statuses.by_parent.get(board_id, [])]
        if ref is None:
            default = next((s for s in statuses if s["defaultFlag"]), None) or (
                statuses[0] if statuses else None
            )
            if default is None:
                raise invalid("ticket", "status", f"board {board_id} has no statuses")
            return default
        for status in statuses:
            if ("id" in ref and status["id"] == ref["id"]) or (
                "id" not in ref and str(ref.get("name", "")).casefold() == status["name"].casefold()
            ):
                if status["inactive"]:
                    raise invalid("ticket", "status", f"status {status['name']} is inactive")
                return status
        raise invalid("ticket", "status", f"status {json.dumps(ref)} is not a status of board {board_id}")

    def _apply_status(self, ticket: Row, status: Row) -> None:
        ticket["status"] = {"id": status["id"], "name": status["name"], "sort": status["sortOrder"]}
        if status["closedStatus"]:
            if not ticket.get("closedFlag"):
                ticket["closedFlag"] = True
                ticket["closedDate"] = _now()
                ticket["closedBy"] = "APIMember"
        else:
            ticket["closedFlag"] = False
            ticket.pop("closedDate", None)  # absent, not null: Manage declares them non-nullable
            ticket.pop("closedBy", None)

    def _create_ticket(self, body: Any) -> Row:
        data = self._check_body(body, "ticket", TICKET_FIELDS, TICKET_REFS, ("summary", "company"))
        self._text("ticket", "summary", data["summary"], 100)
        self._text("ticket", "externalXRef", data.get("externalXRef"), 100)
        company = self._resolve("ticket", "company", self.companies, data["company"])
        if data.get("board"):
            board = self._resolve("ticket", "board", self.boards, data["board"])
        elif self.boards.ids:
            board = self.boards.rows[self.boards.ids[0]]
        else:
            raise invalid("ticket", "board", "No service board given and no default board is set up")
        if board.get("inactiveFlag"):
            raise invalid("ticket", "board", f"board {board['name']} is inactive")
        status = self._board_status(board["id"], data.get("status"))
        priority_ref = data.get("priority")
        priority: Row | None
        if priority_ref:
            priority = self._resolve("ticket", "priority", self.priorities, priority_ref)
        else:
            defaults = [p for p in self.priorities if p["defaultFlag"]] or self.priorities.all()
            priority = defaults[0] if defaults else None
        ticket_type = None
        if data.get("type"):
            ticket_type = self._resolve("ticket", "type", self.types, data["type"])
            if ticket_type["board"]["id"] != board["id"]:
                raise invalid(
                    "ticket", "type", f"type {ticket_type['id']} is not a type of board {board['id']}"
                )
        initial = {
            k: data.pop(k, None)
            for k in ("initialDescription", "initialInternalAnalysis", "initialResolution")
        }
        data.pop("initialDescriptionFrom", None)
        ticket: Row = {
            "recordType": "ServiceTicket",
            **data,
            "summary": data["summary"],
            "board": {"id": board["id"], "name": board["name"]},
            "company": {"id": company["id"], "identifier": company["identifier"], "name": company["name"]},
            "priority": {"id": priority["id"], "name": priority["name"], "sort": priority["sortOrder"]}
            if priority
            else None,
            "type": {"id": ticket_type["id"], "name": ticket_type["name"]} if ticket_type else None,
            "closedFlag": False,
            "_info": _info(),
        }
        self._apply_status(ticket, status)
        self.tickets.insert(ticket)
        for key, flag in (
            ("initialDescription", "detailDescriptionFlag"),
            ("initialInternalAnalysis", "internalAnalysisFlag"),
            ("initialResolution", "resolutionFlag"),
        ):
            if initial[key]:
                self._insert_note(ticket["id"], {"text": initial[key], flag: True})
        return ticket

    def _post_ticket(self, request: Request, params: dict[str, int]) -> Response:
        return JSONResponse(self._create_ticket(request.state.json), status_code=201)

    def _patch_ticket(self, request: Request, params: dict[str, int]) -> Row:
        ticket = self._require(self.tickets, params["id"])
        updated = copy.deepcopy(ticket)
        for kind, path, value in self._patch_ops("ticket", TICKET_FIELDS, request.state.json):
            if path in ("initialDescription", "initialInternalAnalysis", "initialResolution"):
                raise invalid("ticket", path, f"{path} can only be set when the ticket is created")
            if kind == "remove":
                if path in ("summary", "company", "board", "status"):
                    raise invalid("ticket", path, f"The {path} field is required.", "MissingRequiredField")
                updated.pop(path, None)
                continue
            if path in TICKET_REFS:
                self._check_ref("ticket", path, value)
            if path == "status":
                self._apply_status(updated, self._board_status(updated["board"]["id"], value))
            elif path == "summary":
                if not value:
                    raise invalid(
                        "ticket", "summary", "The summary field is required.", "MissingRequiredField"
                    )
                updated["summary"] = self._text("ticket", "summary", value, 100)
            elif path == "priority":
                priority = self._resolve("ticket", "priority", self.priorities, value)
                updated["priority"] = {
                    "id": priority["id"],
                    "name": priority["name"],
                    "sort": priority["sortOrder"],
                }
            elif path == "type":
                ticket_type = self._resolve("ticket", "type", self.types, value)
                if ticket_type["board"]["id"] != updated["board"]["id"]:
                    raise invalid("ticket", "type", f"type {ticket_type['id']} is not a type of this board")
                updated["type"] = {"id": ticket_type["id"], "name": ticket_type["name"]}
            elif path in ("company", "board"):
                raise invalid("ticket", path, f"changing {path} is not supported by this fake")
            else:
                updated[path] = value
        updated["_info"] = {**updated.get("_info", {}), "lastUpdated": _now(), "updatedBy": "APIMember"}
        self.tickets.replace(updated)
        return updated

    # -- a technician's work, as the PSA's own UI records it ---------------------------------

    def member_note(self, ticket_id: int, text: str, *, member: str = "jsmith") -> Row:
        ticket = self._require(self.tickets, ticket_id)
        note = self._insert_note(ticket_id, {"text": text, "internalAnalysisFlag": True})
        note["createdBy"] = member
        note["member"] = {"id": 7, "identifier": member, "name": member}
        ticket["_info"] = {**ticket["_info"], "lastUpdated": _now(), "updatedBy": member}
        return note

    def member_time_entry(self, ticket_id: int, hours: float, *, member: str = "jsmith") -> Row:
        ticket = self._require(self.tickets, ticket_id)
        return self.time_entries.insert(
            {
                "company": ticket["company"],
                "chargeToId": ticket_id,
                "chargeToType": "ServiceTicket",
                "member": {"id": 7, "identifier": member, "name": member},
                "timeStart": _now(),
                "actualHours": hours,
                "dateEntered": _now(),
                "enteredBy": member,
                "_info": _info({"enteredBy": member, "updatedBy": member}),
            }
        )

    def member_update(
        self, ticket_id: int, *, member: str = "jsmith", close: bool = False, owner: str | None = None
    ) -> None:
        """A technician changes the ticket: closes it (the board's first closed status) or
        reassigns it to `owner`."""
        ticket = self._require(self.tickets, ticket_id)
        if close:
            closed = [
                s
                for s in self.statuses.all()
                if s["board"]["id"] == ticket["board"]["id"] and s["closedStatus"]
            ]
            self._apply_status(ticket, closed[0])
            ticket["closedBy"] = member
        if owner is not None:
            ticket["owner"] = {"id": 8, "identifier": owner, "name": owner}
        ticket["_info"] = {**ticket["_info"], "lastUpdated": _now(), "updatedBy": member}

    def merge_ticket(self, ticket_id: int, into: int, *, member: str = "jsmith") -> None:
        self.member_update(ticket_id, member=member, close=True)
        ticket = self._require(self.tickets, ticket_id)
        ticket["mergedParentTicket"] = {"id": into}
        self._require(self.tickets, into)["hasMergedChildTicketFlag"] = True

    def delete_ticket(self, ticket_id: int) -> None:
        self.tickets.remove(ticket_id)

    # -- notes ------------------------------------------------------------------------------

    def _insert_note(self, ticket_id: int, data: Row) -> Row:
        note: Row = {
            "ticketId": ticket_id,
            "detailDescriptionFlag": False,
            "internalAnalysisFlag": False,
            "resolutionFlag": False,
            "issueFlag": False,
            "customerUpdatedFlag": False,
            "processNotifications": True,
            "internalFlag": False,
            "externalFlag": False,
            **data,
            "dateCreated": _now(),
            "createdBy": "APIMember",
            "member": {"id": 1, "identifier": "APIMember", "name": "API Member"},
            "_info": _info(),
        }
        if note["internalAnalysisFlag"]:
            note["internalFlag"] = True
        if note["detailDescriptionFlag"] or note["resolutionFlag"]:
            note["externalFlag"] = True
        return self.notes.insert(note)

    def _post_note(self, request: Request, params: dict[str, int]) -> Response:
        ticket = self._require(self.tickets, params["parentId"])
        data = self._check_body(request.state.json, "serviceNote", NOTE_FIELDS, NOTE_REFS, ("text",))
        self._text("serviceNote", "text", data["text"])
        for flag in (
            "detailDescriptionFlag",
            "internalAnalysisFlag",
            "resolutionFlag",
            "issueFlag",
            "processNotifications",
            "customerUpdatedFlag",
            "internalFlag",
            "externalFlag",
        ):
            if flag in data and data[flag] is not None and not isinstance(data[flag], bool):
                raise invalid("serviceNote", flag, f"{flag} must be a boolean")
        if not any(data.get(f) for f in ("detailDescriptionFlag", "internalAnalysisFlag", "resolutionFlag")):
            raise invalid(
                "serviceNote",
                "detailDescriptionFlag",
                "One of detailDescriptionFlag, internalAnalysisFlag or resolutionFlag must be true",
            )
        data.pop("ticketId", None)
        note = self._insert_note(ticket["id"], data)
        return JSONResponse(note, status_code=201)

    # -- a ticket's configurations -----------------------------------------------------------

    def _configuration_reference(self, config: Row) -> Row:
        return {
            "id": config["id"],
            "deviceIdentifier": config.get("deviceIdentifier") or "",
            "_info": {"configuration_href": f"company/configurations/{config['id']}"},
        }

    def _list_ticket_configurations(self, request: Request, params: dict[str, int]) -> Response:
        ticket = self._require(self.tickets, params["parentId"])
        attached = [self.configurations.get(i) for i in self.ticket_configurations.get(ticket["id"], [])]
        return JSONResponse([self._configuration_reference(c) for c in attached if c is not None])

    def _post_ticket_configuration(self, request: Request, params: dict[str, int]) -> Response:
        ticket = self._require(self.tickets, params["parentId"])
        body = request.state.json
        data = self._check_body(
            body, "configurationReference", CONFIGURATION_REFERENCE_FIELDS, frozenset(), ()
        )
        record = body.get("id") if isinstance(body, dict) else None
        if not isinstance(record, int) or isinstance(record, bool):
            raise invalid("configurationReference", "id", "The id field is required.", "MissingRequiredField")
        del data
        config = self._require(self.configurations, record)
        attached = self.ticket_configurations.setdefault(ticket["id"], [])
        if record in attached:
            raise invalid(
                "configurationReference",
                "id",
                f"Configuration {record} is already on this ticket",
                "Duplicate",
            )
        attached.append(record)
        return JSONResponse(self._configuration_reference(config), status_code=201)

    # -- configurations ---------------------------------------------------------------------

    def _post_configuration(self, request: Request, params: dict[str, int]) -> Response:
        data = self._check_body(
            request.state.json,
            "configuration",
            CONFIGURATION_FIELDS,
            CONFIGURATION_REFS,
            ("name", "type", "company"),
        )
        self._text("configuration", "name", data["name"], 100)
        self._text("configuration", "serialNumber", data.get("serialNumber"), 250)
        self._text("configuration", "notes", data.get("notes"))
        company = self._resolve("configuration", "company", self.companies, data["company"])
        ctype = self._resolve("configuration", "type", self.configuration_types, data["type"])
        custom = self._custom_fields()
        if "customFields" in data:
            custom = self._merge_custom_fields(custom, data.pop("customFields"))
        row: Row = {
            "status": {"id": 1, "name": "Active"},
            "activeFlag": True,
            "questions": [],
            **data,
            "company": self._company_ref(company["id"]),
            "type": {"id": ctype["id"], "name": ctype["name"]},
            "customFields": custom,
            "_info": _info(),
        }
        return JSONResponse(self.configurations.insert(row), status_code=201)

    def _merge_custom_fields(self, current: list[Row], value: Any) -> list[Row]:
        if not isinstance(value, list):
            raise invalid("configuration", "customFields", "customFields must be an array")
        by_id = {cf["id"]: dict(cf) for cf in current}
        for item in value:
            if not isinstance(item, dict) or not isinstance(item.get("id"), int):
                raise invalid("configuration", "customFields", "each custom field needs its integer id")
            extra = item.keys() - {
                "id",
                "caption",
                "type",
                "entryMethod",
                "numberOfDecimals",
                "value",
                "connectWiseId",
            }
            if extra:
                raise invalid(
                    "configuration", "customFields", f"unknown custom field properties {sorted(extra)}"
                )
            if item["id"] not in by_id:
                raise invalid("configuration", "customFields", f"custom field {item['id']} does not exist")
            value_sent = item.get("value")
            if (
                str(by_id[item["id"]].get("type", "")).casefold() == "number"
                and value_sent is not None
                and (isinstance(value_sent, bool) or not isinstance(value_sent, int | float))
            ):
                # Manage refuses text in a Number custom field.
                raise invalid("configuration", "customFields", f"custom field {item['id']} takes a number")
            by_id[item["id"]]["value"] = value_sent
        return list(by_id.values())

    def _patch_configuration(self, request: Request, params: dict[str, int]) -> Row:
        config = self._require(self.configurations, params["id"])
        updated = copy.deepcopy(config)
        for kind, path, value in self._patch_ops("configuration", CONFIGURATION_FIELDS, request.state.json):
            if kind == "remove":
                if path in ("name", "type", "company"):
                    raise invalid(
                        "configuration", path, f"The {path} field is required.", "MissingRequiredField"
                    )
                updated[path] = None
                continue
            if path in CONFIGURATION_REFS:
                self._check_ref("configuration", path, value)
            if path == "customFields":
                updated["customFields"] = self._merge_custom_fields(updated.get("customFields") or [], value)
            elif path == "type":
                ctype = self._resolve("configuration", "type", self.configuration_types, value)
                updated["type"] = {"id": ctype["id"], "name": ctype["name"]}
            elif path == "company":
                raise invalid("configuration", path, "changing company is not supported by this fake")
            elif path in ("name", "serialNumber", "notes", "deviceIdentifier", "osType", "osInfo"):
                limit = {
                    "name": 100,
                    "serialNumber": 250,
                    "deviceIdentifier": 100,
                    "osType": 250,
                    "osInfo": 250,
                }
                updated[path] = self._text("configuration", path, value, limit.get(path))
            else:
                updated[path] = value
        updated["_info"] = {**updated.get("_info", {}), "lastUpdated": _now()}
        self.configurations.replace(updated)
        return updated

    def _check_addition_values(self, data: Row) -> None:
        for name in ("quantity", "unitPrice", "unitCost", "lessIncluded"):
            if name in data and data[name] is not None:
                self._number("addition", name, data[name])
        if "billCustomer" in data and data["billCustomer"] not in BILL_CUSTOMER:
            raise invalid(
                "addition", "billCustomer", f"billCustomer must be one of {', '.join(BILL_CUSTOMER)}"
            )
        self._text("addition", "invoiceDescription", data.get("invoiceDescription"), 6000)
        self._text("addition", "description", data.get("description"))
        self._text("addition", "serialNumber", data.get("serialNumber"), 50)

    def _post_addition(self, request: Request, params: dict[str, int]) -> Response:
        agreement = self._require(self.agreements, params["parentId"])
        data = self._check_body(
            request.state.json, "addition", ADDITION_FIELDS, ADDITION_REFS, ("product", "billCustomer")
        )
        self._check_addition_values(data)
        product = self._resolve("addition", "product", self.products, data.pop("product"))
        data.pop("agreementId", None)
        row = self._new_addition(agreement, product, data)
        return JSONResponse(self.additions.insert(row), status_code=201)

    def _patch_addition(self, request: Request, params: dict[str, int]) -> Row:
        self._require(self.agreements, params["parentId"])
        addition = self._require(self.additions, params["id"])
        if addition["agreementId"] != params["parentId"]:
            raise ManageApiError(404, "NotFound", f"Addition Id {params['id']} not found")
        updated = copy.deepcopy(addition)
        for kind, path, value in self._patch_ops("addition", ADDITION_FIELDS, request.state.json):
            if kind == "remove":
                if path in ("product", "billCustomer"):
                    raise invalid("addition", path, f"The {path} field is required.", "MissingRequiredField")
                updated[path] = None
                continue
            if path in ADDITION_REFS:
                self._check_ref("addition", path, value)
            if path == "product":
                product = self._resolve("addition", "product", self.products, value)
                updated["product"] = {
                    "id": product["id"],
                    "identifier": product["identifier"],
                    "serializedFlag": False,
                }
            elif path in (
                "agreementId",
                "extPrice",
                "extCost",
                "margin",
                "billedQuantity",
                "agreementStatus",
            ):
                raise invalid("addition", path, f"{path} is read-only")
            else:
                self._check_addition_values({path: value})
                updated[path] = float(value) if path in ("quantity", "unitPrice", "unitCost") else value
        self._recompute_addition(updated)
        updated["_info"] = {**updated.get("_info", {}), "lastUpdated": _now()}
        self.additions.replace(updated)
        return updated
