"""Three-way reconciliation of a period: per PSA company and billing rule, the seats the RMM counts,
the seats the security consoles count, and the quantity on the PSA line, with each difference
explained by the devices and clients behind it. Pure: no I/O.

The PSA quantity is the agreement line as the PSA held it when last read back (before every push,
after each write, and on `POST /billing/read-back`), else the quantity connector last wrote. A line
changed or removed in the PSA by someone else, and a line of the product connector did not create,
are causes of their own. Causes are derived from device lists and those reads, never inferred from
the numbers alone, except for an uploaded usage report, which has no devices: its seats beyond the
RMM's count are a cause naming the upload.

The console count of a company comes from its security consoles when one is mapped to it; else from
the vendors' usage reports uploaded for the period (`Uploaded`), where one lists the company and a
product the rule bills; else there is none. `Row.console_source` says which. Uploaded counts only
inform the reconciliation: a console-counted rule still bills the consoles' seats.
"""

from __future__ import annotations

import dataclasses
import math
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from enum import StrEnum
from typing import Any, Literal, NamedTuple

from connector.billing.domain import BillingTerms, CompanyMapping, MappingKey, UsageRow, lines_for_rule
from connector.billing.readback import Finding, PsaView, Written, judge
from mappings.resolution import billing_rule_matches

ID_CAP = 50
"""Ids listed per cause; `total` still counts them all."""
CONSOLE_SEATS = "console_seats"


class CauseCode(StrEnum):
    RMM_DEVICE_WITHOUT_PRODUCT = "rmm_device_without_product"
    CONSOLE_AGENT_WITHOUT_RMM_DEVICE = "console_agent_without_rmm_device"
    UNMAPPED_CLIENT = "unmapped_client"
    AGREEMENT_LINE_MISSING = "agreement_line_missing"
    PSA_QUANTITY_CHANGED = "psa_quantity_changed"
    """The PSA line was changed (or removed) in the PSA outside connector since connector wrote it."""
    UNLINKED_AGREEMENT_LINE = "unlinked_agreement_line"
    """The agreement has a line of the product that connector neither created nor was linked to."""
    COUNT_CHANGED_SINCE_PUSH = "count_changed_since_push"
    """The devices counted now differ from those behind the quantity connector last wrote."""
    RETIRED_CLIENT_BILLED = "retired_client_billed"
    UPLOADED_SEATS_WITHOUT_RMM_DEVICE = "uploaded_seats_without_rmm_device"
    UPLOAD_CUSTOMER_UNMATCHED = "upload_customer_unmatched"


ConsoleSource = Literal["console", "upload"]


class EndpointFact(NamedTuple):
    """A current (not retired) RMM endpoint: enough to place it and see its product."""

    id: str
    rmm_connection_id: str
    client_id: str
    product: str | None


class AgentFact(NamedTuple):
    """A current console agent that no RMM endpoint matches."""

    id: str
    connection_id: str
    customer_id: str
    product: str | None


class Uploaded(NamedTuple):
    """A customer's seats of one product in a vendor's usage report uploaded for the period."""

    upload_id: str
    psa_connection_id: str
    company_id: str | None
    """None: the customer matched no PSA company."""
    company_name: str | None
    customer: str
    product: str
    quantity: int


class Recorded(NamedTuple):
    """What connector last wrote to the PSA for a rule × company."""

    quantity: int
    period: str | None
    line_id: str | None
    billed: Decimal | None = None
    """The exact quantity written when it was not whole seats (a prorated line)."""

    @property
    def written(self) -> Written:
        return Written(self.line_id, self.billed if self.billed is not None else Decimal(self.quantity))


@dataclass(frozen=True)
class Cause:
    code: CauseCode
    count: int
    """Devices or clients for the list causes; seats for the line causes."""
    ids: tuple[str, ...]
    """At most `ID_CAP` of the ids behind the cause."""
    total: int
    """How many ids there are in all."""


@dataclass(frozen=True)
class Row:
    """One product of one PSA company (or, with `company_id` None, a rule's unmapped clients)."""

    rule_id: str
    product: str
    company_id: str | None
    company_name: str | None
    rmm_count: int
    console_count: int | None
    """None when no security console is mapped to the company."""
    psa_quantity: int | None
    """None when connector has recorded no line for the company and product."""
    causes: tuple[Cause, ...]
    console_counted: bool = False
    """The rule bills the consoles' seats (`console_seats`), not the RMM's."""
    console_source: ConsoleSource | None = None
    """Where `console_count` comes from: a mapped security console, an uploaded usage report, or
    nowhere (None, with `console_count` None)."""

    @property
    def billed_count(self) -> int:
        """The count the rule bills by: the consoles' for a console-counted rule (an uploaded report
        is not billed from), else the RMM's."""
        if not self.console_counted:
            return self.rmm_count
        return (self.console_count or 0) if self.console_source == "console" else 0

    @property
    def differences(self) -> dict[str, int | None]:
        """Signed gaps between the three numbers (None where one side is absent)."""
        psa, console = self.psa_quantity, self.console_count
        return {
            "rmm_minus_psa": None if psa is None else self.rmm_count - psa,
            "console_minus_psa": None if psa is None or console is None else console - psa,
            "console_minus_rmm": None if console is None else console - self.rmm_count,
        }


def cause(code: CauseCode, ids: Sequence[str], count: int | None = None) -> Cause:
    return Cause(code, len(ids) if count is None else count, tuple(sorted(ids)[:ID_CAP]), len(ids))


@dataclass(frozen=True)
class Scoped:
    """A rule counted in another scope (the RMM's or the consoles' column): the seats counted, of the
    rule's device category (consoles report none: their column counts every category) and for the
    month the rule's line counts, without included seats, minimum or proration."""

    rule: BillingTerms
    count_scope: str
    included_seats = 0
    minimum_quantity = 0

    @property
    def billing_timing(self) -> str:
        return "arrears" if getattr(self.rule, "billing_timing", None) == "arrears" else "current"

    @property
    def device_category(self) -> str | None:
        return None if self.count_scope == CONSOLE_SEATS else getattr(self.rule, "device_category", None)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.rule, name)


def rmm_scope(rule: BillingTerms) -> str:
    """The RMM's view of a rule's seats: its own scope, or `installed` beside a console-counted rule."""
    return "installed" if rule.count_scope == CONSOLE_SEATS else rule.count_scope


def reconcile(
    rules: Sequence[BillingTerms],
    usage: Sequence[UsageRow],
    licences: Sequence[UsageRow],
    mappings: Mapping[MappingKey, CompanyMapping],
    recorded: Mapping[tuple[str, str], Recorded],
    endpoints: Iterable[EndpointFact],
    unmatched_agents: Iterable[AgentFact],
    console_connection_ids: set[str],
    period: tuple[date, date] | None = None,
    *,
    psa_views: Mapping[tuple[str, str], PsaView] | None = None,
    uploaded: Sequence[Uploaded] = (),
) -> list[Row]:
    """Rows per rule (in the order given) and company (sorted), each with its causes; a rule's
    unmapped clients come next as one row without a company, then, as another, the customers of
    uploaded reports that matched no PSA company. With `period`, a rule billed in arrears counts the
    previous month's rows (the caller passes them)."""
    endpoints_by_client: dict[tuple[str, str], list[EndpointFact]] = defaultdict(list)
    for endpoint in endpoints:
        endpoints_by_client[(endpoint.rmm_connection_id, endpoint.client_id)].append(endpoint)
    agents_by_customer: dict[tuple[str, str], list[AgentFact]] = defaultdict(list)
    for agent in unmatched_agents:
        agents_by_customer[(agent.connection_id, agent.customer_id)].append(agent)
    licensed: dict[tuple[str, str], set[str]] = defaultdict(set)
    """(console connection, customer) → the product names of its licence rows."""
    for licence in licences:
        licensed[(licence.rmm_connection_id, licence.client_id)].add(licence.product.lower())
    clients_of: dict[tuple[str, str], list[tuple[str, str]]] = defaultdict(list)
    """(PSA connection, company) → its mapped (RMM or console connection, client)."""
    names: dict[tuple[str, str], str | None] = {}
    for (connection_id, client_id, psa_id), mapping in mappings.items():
        clients_of[(psa_id, mapping.psa_company_id)].append((connection_id, client_id))
        names[(psa_id, mapping.psa_company_id)] = mapping.psa_company_name
    usage_by_name, licences_by_name = _by_product_name(usage), _by_product_name(licences)
    billed_names: dict[tuple[str, str | None], bool] = {}
    """(PSA connection, product name) → whether a rule of that PSA bills the product."""
    rows: list[Row] = []
    for rule in rules:
        siblings = [r for r in rules if r.psa_connection_id == rule.psa_connection_id]
        rmm = lines_for_rule(
            Scoped(rule, rmm_scope(rule)), _matching(rule, usage_by_name), mappings, period=period
        )
        console = lines_for_rule(
            Scoped(rule, CONSOLE_SEATS), _matching(rule, licences_by_name), mappings, period=period
        )
        rmm_counts = {line.company_id: line.quantity for line in rmm.lines}
        console_counts = {line.company_id: line.quantity for line in console.lines}
        recorded_companies = {company for rule_id, company in recorded if rule_id == rule.id}
        reports = [
            u
            for u in uploaded
            if u.psa_connection_id == rule.psa_connection_id and billing_rule_matches(rule, u.product)
        ]
        upload_counts: dict[str, int] = defaultdict(int)
        upload_ids: dict[str, set[str]] = defaultdict(set)
        for report in reports:
            if report.company_id is not None:
                upload_counts[report.company_id] += report.quantity
                upload_ids[report.company_id].add(report.upload_id)
                names.setdefault((rule.psa_connection_id, report.company_id), report.company_name)
        companies = set(rmm_counts) | set(console_counts) | recorded_companies | set(upload_counts)
        for company_id in sorted(companies):
            key = (rule.psa_connection_id, company_id)
            clients = clients_of.get(key, [])
            has_console = any(connection in console_connection_ids for connection, _ in clients)
            source: ConsoleSource | None = (
                "console" if has_console else "upload" if company_id in upload_counts else None
            )
            devices = [e for client in clients for e in endpoints_by_client.get(client, [])]
            bare = [e.id for e in devices if not _billed(billed_names, siblings, e.product)]
            agents = [
                a
                for connection, client in clients
                for a in agents_by_customer.get((connection, client), [])
                if _agent_bills(rule, a, licensed, siblings)
            ]
            state = recorded.get((rule.id, company_id))
            view = (psa_views or {}).get((rule.id, company_id))
            row = Row(
                rule.id,
                rule.product,
                company_id,
                names.get(key),
                rmm_counts.get(company_id, 0),
                console_counts.get(company_id, 0)
                if has_console
                else upload_counts[company_id]
                if source
                else None,
                _psa_quantity(state, view),
                (),
                rule.count_scope == CONSOLE_SEATS,
                source,
            )
            causes = _company_causes(row, state, view, bare, bool(devices), agents)
            if source == "upload" and row.console_count is not None and row.console_count > row.rmm_count:
                beyond = row.console_count - row.rmm_count
                causes.append(
                    cause(CauseCode.UPLOADED_SEATS_WITHOUT_RMM_DEVICE, sorted(upload_ids[company_id]), beyond)
                )
            rows.append(_with(row, causes))
        unmapped = {(c.rmm_connection_id, c.client_id): c.seats for c in rmm.unmapped}
        unmapped_console = {(c.rmm_connection_id, c.client_id): c.seats for c in console.unmapped}
        if unmapped or unmapped_console:
            ids = [f"{conn}:{client}" for conn, client in sorted(set(unmapped) | set(unmapped_console))]
            rows.append(
                Row(
                    rule.id,
                    rule.product,
                    None,
                    None,
                    sum(unmapped.values()),
                    sum(unmapped_console.values()) if unmapped_console else None,
                    None,
                    (cause(CauseCode.UNMAPPED_CLIENT, ids),),
                    rule.count_scope == CONSOLE_SEATS,
                    "console" if unmapped_console else None,
                )
            )
        unmatched = [report for report in reports if report.company_id is None]
        if unmatched:
            customers = sorted({report.customer for report in unmatched})
            rows.append(
                Row(
                    rule.id,
                    rule.product,
                    None,
                    None,
                    0,
                    sum(report.quantity for report in unmatched),
                    None,
                    (cause(CauseCode.UPLOAD_CUSTOMER_UNMATCHED, customers),),
                    rule.count_scope == CONSOLE_SEATS,
                    "upload",
                )
            )
    return rows


def _by_product_name(rows: Iterable[UsageRow]) -> dict[str, list[UsageRow]]:
    groups: dict[str, list[UsageRow]] = defaultdict(list)
    for row in rows:
        groups[row.product].append(row)
    return groups


def _matching(rule: BillingTerms, by_name: Mapping[str, list[UsageRow]]) -> list[UsageRow]:
    """The rows of the products the rule bills: each rule reads only its share of the period."""
    return [row for name, rows in by_name.items() if billing_rule_matches(rule, name) for row in rows]


def _billed(
    memo: dict[tuple[str, str | None], bool], siblings: Sequence[BillingTerms], product: str | None
) -> bool:
    """Whether a rule of the PSA bills the product: a device billed under another rule of the same
    PSA is not missing this one."""
    key = (siblings[0].psa_connection_id, product)
    if key not in memo:
        memo[key] = any(billing_rule_matches(r, product or "") for r in siblings)
    return memo[key]


def _agent_bills(
    rule: BillingTerms,
    agent: AgentFact,
    licensed: Mapping[tuple[str, str], set[str]],
    siblings: Sequence[BillingTerms],
) -> bool:
    """An agent is a seat of the rule when its own product matches; an agent whose product no rule
    of the PSA bills (or that reports none) is a seat of each product its customer is licensed for."""
    if agent.product and any(billing_rule_matches(r, agent.product) for r in siblings):
        return billing_rule_matches(rule, agent.product)
    wanted = rule.product.lower()
    return any(wanted in product for product in licensed.get((agent.connection_id, agent.customer_id), ()))


def _psa_quantity(state: Recorded | None, view: PsaView | None) -> int | None:
    """The agreement line's quantity: as last read back from the PSA when that read succeeded (0 for
    a line no longer there), else as connector last wrote it; None when neither knows a line."""
    if view is not None and view.error is None:
        if view.line_id is not None:
            return None if view.quantity is None else math.ceil(view.quantity)  # whole seats, as counted
        return 0 if state is not None and state.line_id else None
    return None if state is None else state.quantity


def _company_causes(
    row: Row,
    state: Recorded | None,
    view: PsaView | None,
    bare: Sequence[str],
    has_devices: bool,
    agents: Sequence[AgentFact],
) -> list[Cause]:
    causes: list[Cause] = []
    if bare:
        causes.append(cause(CauseCode.RMM_DEVICE_WITHOUT_PRODUCT, bare))
    if agents:
        causes.append(cause(CauseCode.CONSOLE_AGENT_WITHOUT_RMM_DEVICE, [a.id for a in agents]))
    billed = row.billed_count
    assert row.company_id is not None
    line_ids = [state.line_id or row.company_id] if state is not None else [row.company_id]
    found = judge(None if state is None else state.written, view)
    finding = None if found is None else found.finding
    if state is None:
        if found is not None and finding == Finding.UNLINKED:
            causes.append(cause(CauseCode.UNLINKED_AGREEMENT_LINE, [found.link_line_id or row.company_id]))
        elif billed > 0:
            causes.append(cause(CauseCode.AGREEMENT_LINE_MISSING, line_ids, billed))
        return causes
    if finding in (Finding.EDITED_OUTSIDE, Finding.REMOVED_OUTSIDE):
        changed_by = (row.psa_quantity or 0) - state.quantity
        causes.append(cause(CauseCode.PSA_QUANTITY_CHANGED, line_ids, changed_by))
    if billed == 0 and not has_devices and state.quantity > 0:
        causes.append(cause(CauseCode.RETIRED_CLIENT_BILLED, line_ids, state.quantity))
    elif state.quantity != billed:
        causes.append(cause(CauseCode.COUNT_CHANGED_SINCE_PUSH, line_ids, billed - state.quantity))
    return causes


def _with(row: Row, causes: list[Cause]) -> Row:
    return dataclasses.replace(row, causes=tuple(causes))
