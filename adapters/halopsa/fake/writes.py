"""Tickets, actions, assets and recurring invoices, written and validated the way Halo does."""

from __future__ import annotations

import copy
from typing import Any

from adapters.halopsa.fake.schema import (
    Row,
    as_int,
    as_number,
    invalid,
    now_text,
)
from adapters.halopsa.fake.store import HaloStore

TICKET_WRITE_FIELDS = frozenset(
    "id summary details client_id site_id user_id tickettype_id status_id priority_id team "
    "team_department_id agent_id department_id customfields category_1 impact urgency assets".split()
)
"""The `Faults` properties (Halo's ticket schema) the fake takes; others are refused, as the schema
is closed (`team_id`, for one, is not among them)."""


DEVICE_LIST_WRITE_FIELDS = frozenset("id inventory_number key_field client_id site_id assettype_id".split())
"""The `Device_List` properties the fake takes in a ticket's `assets` (the schema is closed)."""


class HaloWrites(HaloStore):
    """Write handlers; `add_ticket`, `add_asset` and `add_invoice_line` seed through the same
    validation."""

    API_AGENT: Row = {"id": 1, "name": "API"}
    """The agent the API application logs in as (`GET /Agent/me`)."""
    TECHNICIAN: Row = {"id": 12, "name": "Jo Smith"}

    def add_invoice_line(
        self, invoice_id: int, item_id: int, qty: float, unit_price: float, **extra: Any
    ) -> Row:
        invoice = self.recurring_invoices[invoice_id]
        line = self._new_line(
            invoice, {"_itemid": item_id, "qty_order": qty, "unit_price": unit_price, **extra}
        )
        invoice["lines"].append(line)
        return line

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

    # -- tickets and actions -----------------------------------------------------------------

    def _check_ref(self, store: dict[int, Row], value: Any, message: str) -> int:
        ref = as_int(value, message)
        if ref not in store:
            raise invalid(message)
        return ref

    def _check_ticket_fields(self, data: Row) -> None:
        unknown = sorted(set(data) - TICKET_WRITE_FIELDS)
        if unknown:
            # `Faults` is `additionalProperties: false` in Halo's description.
            raise invalid(f"{unknown[0]} is not a field of a ticket")

    def _create_ticket(self, data: Row) -> Row:
        self._check_ticket_fields(data)
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
            "dateoccurred": now_text(),
            "customfields": [],
            "assets": [],
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
            pid = as_int(data["priority_id"], "Please select a valid Priority")
            if not any(p["priorityid"] == pid for p in self.priorities):
                raise invalid("Please select a valid Priority")
            row["priority_id"] = pid
        if data.get("team") is not None:
            # Faults takes the team by name, with `team_department_id` telling apart teams of one
            # name in different departments.
            department = data.get("team_department_id")
            teams = [
                t
                for t in self.teams.values()
                if str(t["name"]).casefold() == str(data["team"]).casefold()
                and (department is None or t.get("department_id") == department)
            ]
            if len(teams) != 1:
                raise invalid("Please select a valid Team")
            row["team_id"], row["team"] = teams[0]["id"], teams[0]["name"]
        if isinstance(data.get("customfields"), list):
            for cf in data["customfields"]:
                if not isinstance(cf, dict) or "id" not in cf:
                    raise invalid("Custom fields need an id")
                row["customfields"] = [c for c in row["customfields"] if c["id"] != cf["id"]]
                row["customfields"].append({"id": cf["id"], "value": cf.get("value")})
        if data.get("assets") is not None:
            row["assets"] = self._ticket_assets(row, data["assets"])
        for name in ("summary", "details"):
            if name in data and data[name] is not None and "id" in data:
                row[name] = data[name]

    def _ticket_assets(self, ticket: Row, assets: Any) -> list[Row]:
        """`Faults.assets`: `Device_List` objects by id, each an asset of the ticket's client."""
        if not isinstance(assets, list):
            raise invalid("assets must be a list of assets")
        listed: list[Row] = list(ticket.get("assets") or [])
        for asset in assets:
            if not isinstance(asset, dict) or "id" not in asset or set(asset) - DEVICE_LIST_WRITE_FIELDS:
                raise invalid("Each asset is a Device_List object with its id")
            aid = as_int(asset["id"], "Please select a valid Asset")
            row = self.assets.get(aid)
            if row is None or row["client_id"] != ticket["client_id"]:
                raise invalid(f"Asset {aid} not found")
            if all(a["id"] != aid for a in listed):
                listed.append({"id": aid, "inventory_number": row.get("inventory_number")})
        return listed

    def _set_status(self, ticket: Row, status_id: int) -> None:
        ticket["status_id"] = status_id
        closed = status_id == 9
        ticket["hasbeenclosed"] = closed or ticket.get("hasbeenclosed", False)
        if closed:
            ticket["dateclosed"] = now_text()

    def _write_ticket(self, data: Row) -> Row:
        if data.get("id"):
            self._check_ticket_fields(data)
            row = self.tickets.get(as_int(data["id"], "Invalid ticket id"))
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
            "datetime": now_text(),
            "who": self.actor["name"],
            "who_agentid": self.actor["id"],
            "who_type": 1,
            "timetaken": float(data.get("timetaken") or 0.0),
            "new_status": None,
        }
        if data.get("new_status") is not None:
            status = self._check_ref(self.statuses, data["new_status"], "Please select a valid Status")
            self._set_status(ticket, status)
            row["new_status"] = status
        self.actions[row["id"]] = row
        return row

    # -- a technician's work, as Halo records it (Actions by another agent) --------------------

    def agent_action(
        self, ticket_id: int, note: str, *, new_status: int | None = None, timetaken: float = 0.0
    ) -> Row:
        try:
            self.actor = self.TECHNICIAN
            data: Row = {"ticket_id": ticket_id, "outcome": "Note", "note": note, "timetaken": timetaken}
            if new_status is not None:
                data["new_status"] = new_status
            return self._create_action(data)
        finally:
            self.actor = self.API_AGENT

    def agent_assign(self, ticket_id: int) -> None:
        self.tickets[ticket_id]["agent_id"] = self.TECHNICIAN["id"]
        self.agent_action(ticket_id, "Reassigned to Jo Smith")

    def delete_ticket(self, ticket_id: int) -> None:
        del self.tickets[ticket_id]
        for action_id in [a for a, row in self.actions.items() if row["ticket_id"] == ticket_id]:
            del self.actions[action_id]

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
        row = self.assets.get(as_int(data["id"], "Invalid asset id"))
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
        item = self.items.get(as_int(item_id, "Please select a valid Item")) if item_id is not None else None
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
                line[name] = as_number(data[name], f"{name} must be a number")
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
        invoice = self.recurring_invoices.get(
            as_int(data.get("id"), "Please select a valid Recurring Invoice")
        )
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
