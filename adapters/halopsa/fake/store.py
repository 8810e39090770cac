"""The fake instance's records, clock and tokens, the seeding helpers, and the fault list and
request records the HTTP layer fills."""

from __future__ import annotations

import itertools
import uuid
from collections import Counter
from typing import Any

from starlette.applications import Starlette

from adapters.halopsa.fake.schema import (
    Fault,
    Row,
)
from adapters.testing.faults import (
    RecordedRequest,
    count_calls,
)


class HaloStore:
    """One fake Halo instance's state. The HTTP layer (`app.py`) supplies `_build_app`."""

    def __init__(
        self,
        *,
        client_id: str = "connector-app",
        client_secret: str = "halo-secret-1",  # noqa: S107 - the fake's own test credential
        tenant: str | None = None,
        token_lifetime: float = 3600.0,
        max_page_size: int | None = None,
    ) -> None:
        self.client_id = client_id
        self.client_secret = client_secret
        self.tenant = tenant
        self.token_lifetime = token_lifetime
        self.max_page_size = max_page_size
        self.clock = 0.0
        self.tokens: dict[str, float] = {}
        self.token_requests: list[dict[str, str]] = []
        self.clients: dict[int, Row] = {}
        self.sites: dict[int, Row] = {}
        self.contracts: dict[int, Row] = {}
        self.recurring_invoices: dict[int, Row] = {}
        self.items: dict[int, Row] = {}
        self.statuses: dict[int, Row] = {}
        self.ticket_types: dict[int, Row] = {}
        self.priorities: list[Row] = []
        self.teams: dict[int, Row] = {}
        self.outcomes: dict[int, Row] = {}
        self.tickets: dict[int, Row] = {}
        self.actions: dict[int, Row] = {}
        self.actor: Row = {"id": 1, "name": "API"}
        """The agent an action is recorded as made by: the API's, or a technician's in the UI."""
        self.assets: dict[int, Row] = {}
        self.asset_types: dict[int, Row] = {}
        self.asset_fields: list[Row] = []
        self._ids: dict[str, itertools.count[int]] = {}
        self._invoice_ids = itertools.count(-1, -1)
        self._line_ids = itertools.count(24000)
        self.faults: list[Fault] = []
        self.latency = 0.0
        self.calls: Counter[str] = Counter()
        self.requests: list[RecordedRequest] = []
        self.app = self._build_app()

    def _build_app(self) -> Starlette:
        raise NotImplementedError

    # -- wiring helpers ----------------------------------------------------------------------

    def credentials(self) -> dict[str, Any]:
        creds: dict[str, Any] = {"client_id": self.client_id, "client_secret": self.client_secret}
        if self.tenant:
            creds["tenant"] = self.tenant
        return creds

    def _next(self, kind: str, start: int = 1) -> int:
        if kind not in self._ids:
            self._ids[kind] = itertools.count(start)
        return next(self._ids[kind])

    # -- clock and tokens --------------------------------------------------------------------

    def advance(self, seconds: float) -> None:
        self.clock += seconds

    def expire_tokens(self) -> None:
        self.tokens.clear()

    # -- seeding -----------------------------------------------------------------------------

    def add_client(self, name: str, *, inactive: bool = False) -> Row:
        cid = self._next("client", 12)
        row = {"id": cid, "name": name, "inactive": inactive, "toplevel_id": 1, "toplevel_name": "Customers"}
        self.clients[cid] = row
        return row

    def add_site(self, client_id: int, name: str = "Main", *, inactive: bool = False) -> Row:
        sid = self._next("site", 30)
        row = {
            "id": sid,
            "name": name,
            # `Site.client_id` is a number (double) in Halo's description.
            "client_id": float(client_id),
            "client_name": self.clients[client_id]["name"],
            "inactive": inactive,
        }
        self.sites[sid] = row
        return row

    def add_contract(self, client_id: int, ref: str, *, expired: bool = False) -> Row:
        kid = self._next("contract", 100)
        row = {
            "id": kid,
            "client_id": client_id,
            "client_name": self.clients[client_id]["name"],
            "ref": ref,
            "start_date": "2025-01-01T00:00:00",
            "expired": expired,
            "contract_status": "Expired" if expired else "Active",
            "billingperiod": 1,
        }
        self.contracts[kid] = row
        return row

    def add_recurring_invoice(self, client_id: int, contract_id: int | None = None) -> Row:
        rid = next(self._invoice_ids)  # recurring invoice templates have negative ids
        row = {
            "id": rid,
            "client_id": client_id,
            "client_name": self.clients[client_id]["name"],
            "contract_id": contract_id if contract_id is not None else -1,
            "lines": [],
        }
        self.recurring_invoices[rid] = row
        return row

    def add_item(self, name: str, *, code: str = "", price: float = 0.0, cost: float = 0.0) -> Row:
        iid = self._next("item", 780)
        row = {"id": iid, "name": name, "code": code, "baseprice": price, "costprice": cost}
        self.items[iid] = row
        return row

    def add_status(self, sid: int, name: str) -> Row:
        row = {"id": sid, "name": name, "shortname": name[:4], "type": 0, "sequence": sid}
        self.statuses[sid] = row
        return row

    def add_ticket_type(self, tid: int, name: str, *, sla_id: int = 1) -> Row:
        row = {"id": tid, "name": name, "visible": True, "sla_id": sla_id, "initial_status": 1}
        self.ticket_types[tid] = row
        return row

    def add_priority(self, sla_id: int, priority_id: int, name: str) -> Row:
        row = {
            # `Policy.id` is a UUID; tickets take `priorityid`.
            "id": str(uuid.UUID(int=(sla_id << 32) + priority_id)),
            "priorityid": priority_id,
            "slaid": sla_id,
            "name": name,
            "priorityorder": priority_id,
        }
        self.priorities.append(row)
        return row

    def add_team(self, tid: int, name: str) -> Row:
        row = {"id": tid, "name": name, "inactive": False, "forrequests": True, "department_id": 1}
        self.teams[tid] = row
        return row

    def add_outcome(self, oid: int, name: str) -> Row:
        row = {"id": oid, "outcome": name, "buttonname": name}
        self.outcomes[oid] = row
        return row

    def add_asset_type(self, tid: int, name: str) -> Row:
        row = {"id": tid, "name": name}
        self.asset_types[tid] = row
        return row

    def add_asset_field(self, fid: int, name: str, label: str) -> Row:
        row = {"id": fid, "name": name, "label": label}
        self.asset_fields.append(row)
        for asset in self.assets.values():
            asset["customfields"].append({**row, "value": None})
        return row

    # -- fault injection and inspection ---------------------------------------------------------

    def call_count(self, method: str | None = None, path: str | None = None) -> int:
        """Requests seen for a method and/or route template (`/Tickets`, `/Tickets/{id}`,
        `/auth/token`)."""
        return count_calls(self.calls, method, path, ignore_case=True)

    def reset_calls(self) -> None:
        self.calls.clear()
        self.requests.clear()

    def tickets_for(self, client_id: int) -> list[Row]:
        return [t for t in self.tickets.values() if t["client_id"] == client_id]

    def actions_for(self, ticket_id: int) -> list[Row]:
        return [a for a in self.actions.values() if a["ticket_id"] == ticket_id]

    def assets_for(self, client_id: int) -> list[Row]:
        return [a for a in self.assets.values() if a["client_id"] == client_id]
