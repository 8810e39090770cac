"""Billing for a period: daily usage → lines per PSA company × billing rule (`domain.billing`), the
preview engineers check, and the push that reconciles the lines into the PSA.

A push writes only lines whose quantity or prices differ from what was last written (kept in
`billing_line_states`, updated right after each PSA write). A crash between the PSA write and that
update is repaired by the adapter, which finds its line by marker and updates it in place.

Two pushes of one tenant never write at once: the adapter's find-by-marker-then-create is not atomic,
so two callers that both find nothing would both create. A push holds the tenant's lease
(`billing_push_leases`, one row per tenant, the same on SQLite and PostgreSQL and across processes)
from before it reads the lines until its last PSA write; a second push is refused with `PushRunning`.
The lease is renewed while the push runs and expires on its own when the process dies.
"""

from __future__ import annotations

import asyncio
import os
import socket
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any, Literal, cast

from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from adapters.base import BillingLine, BillingLineResult
from adapters.errors import AdapterError
from connector.audit import service as audit
from connector.audit.domain import WORKER, Actor, changed
from connector.billing import domain, readback, reconciliation, review, uploads
from connector.fleet.consoles import consoles_of
from connector.infra import db
from connector.infra.context import Services
from connector.infra.errors import Conflict, FieldError
from connector.infra.logs import get_logger
from connector.models import (
    BillingDecision,
    BillingLineState,
    BillingPeriod,
    BillingPriceOverride,
    BillingPsaRead,
    BillingPushLease,
    BillingRule,
    ClientMapping,
    Connection,
    ConsoleAgent,
    Endpoint,
    LicenceDaily,
    SyncCursor,
    SyncRun,
    Tenant,
    UsageDaily,
    new_id,
)
from connector.notifications.domain import Event, EventKind
from connector.notifications.service import notify
from connector.statuses import SyncStatus
from connector.tenants.service import get_tenant

PSA_CONCURRENCY = 4

log = get_logger("connector.billing.service")


class PeriodClosed(Exception):
    """The period was closed; pushing it needs `override`."""


class PushRunning(Conflict):
    """Another push of the tenant holds its lease (HTTP 409, `connector sync --billing` exit 3)."""

    def __init__(self, lease: BillingPushLease) -> None:
        super().__init__(
            f"a billing push of period {lease.period} is already running for this tenant "
            f"(from {lease.trigger}, {lease.holder}, started {lease.started_at:%Y-%m-%d %H:%M:%S} UTC); "
            "try again when it has finished"
        )
        self.period, self.trigger, self.holder = lease.period, lease.trigger, lease.holder
        self.started_at, self.expires_at = lease.started_at, lease.expires_at

    def describe(self) -> dict[str, str]:
        return {
            "period": self.period,
            "trigger": self.trigger,
            "holder": self.holder,
            "started_at": self.started_at.isoformat(),
            "lease_expires_at": self.expires_at.isoformat(),
        }


@dataclass
class PreviewLine:
    line: domain.Line
    rule: BillingRule
    pushed: domain.Pushed | None
    pushed_period: str | None
    action: domain.Action
    clients: list[str]
    agreement_id: str | None = None
    """The agreement the line was last written to (saves a PSA lookup)."""
    rmm_seats: int | None = None
    """The seats the RMM counts for the line (its scope; `installed` for a console-counted rule)."""
    console_seats: int | None = None
    """The seats the security consoles count for the line's company and product (their invoice)."""
    reason: str | None = None
    """Why the written quantity differs from the counted one (an engineer's adjustment)."""
    psa: readback.PsaView | None = None
    """The line as the PSA held it when last read back (None: never read)."""
    write_line_id: str | None = None
    """The PSA line a write goes to: the one connector wrote, or one an approval links it to."""

    @property
    def psa_finding(self) -> readback.Judged | None:
        """How the PSA's copy differs from connector's record, if it does."""
        pushed = self.pushed
        written = (
            None
            if pushed is None
            else readback.Written(
                pushed.line_id, pushed.billed if pushed.billed is not None else Decimal(pushed.quantity)
            )
        )
        return readback.judge(written, self.psa)


@dataclass
class Preview:
    period: str
    closed: bool
    lines: list[PreviewLine]
    unmapped_clients: list[domain.UnmappedClient] = field(default_factory=list)
    gone: list[PreviewLine] = field(default_factory=list)
    """Lines connector wrote whose usage vanished this period: quantity 0, written only if approved."""


def marker_for(rule_id: str, company_id: str) -> str:
    """Stable across periods: the same PSA line carries the product month after month."""
    return f"CNB-{rule_id[:8]}-{company_id}"[:40]


async def build_preview(session: AsyncSession, tenant_id: str, period: str) -> Preview:
    first, last = domain.parse_period(period)
    rules = list(
        await session.scalars(
            db.tenant_rows(BillingRule, tenant_id)
            .where(BillingRule.enabled.is_(True))
            .order_by(BillingRule.product)
        )
    )
    since = _since(rules, first, last)
    usage = await usage_rows(session, tenant_id, since, last)
    licences = await licence_rows(session, tenant_id, since, last)
    overrides = await price_overrides(session, tenant_id)
    mappings = {
        (m.rmm_connection_id, m.rmm_client_id, m.psa_connection_id): m
        for m in await session.scalars(db.tenant_rows(ClientMapping, tenant_id))
    }
    states = {
        (s.rule_id, s.company_id): s
        for s in await session.scalars(db.tenant_rows(BillingLineState, tenant_id))
    }
    closed = await session.get(BillingPeriod, (tenant_id, period)) is not None
    preview = _assemble(period, closed, rules, usage, licences, mappings, states, overrides)
    views = await psa_views(session, tenant_id)
    for item in [*preview.lines, *preview.gone]:
        item.psa = views.get((item.rule.id, item.line.company_id))
        item.write_line_id = item.pushed.line_id if item.pushed else None
    return preview


async def psa_views(session: AsyncSession, tenant_id: str) -> dict[tuple[str, str], readback.PsaView]:
    """Per rule × company, the line as the PSA held it when last read back."""
    return {
        (r.rule_id, r.company_id): readback.PsaView(
            r.line_id, None if r.quantity is None else Decimal(r.quantity), r.marked, r.error
        )
        for r in await session.scalars(db.tenant_rows(BillingPsaRead, tenant_id))
    }


def _since(rules: list[BillingRule], first: date, last: date) -> date:
    """The first day whose usage the rules count: a rule billed in arrears counts the previous month."""
    windows = [domain.counted_window(domain.model_of(rule).billing_timing, first, last) for rule in rules]
    return min([first, *(start for start, _ in windows)])


async def price_overrides(session: AsyncSession, tenant_id: str) -> dict[str, dict[str, Decimal]]:
    """Per rule id: the companies' own unit prices."""
    found: dict[str, dict[str, Decimal]] = {}
    for row in await session.scalars(db.tenant_rows(BillingPriceOverride, tenant_id)):
        found.setdefault(row.rule_id, {})[row.company_id] = Decimal(row.unit_price)
    return found


@dataclass
class Reconciliation:
    period: str
    rows: list[reconciliation.Row]


async def build_reconciliation(session: AsyncSession, tenant_id: str, period: str) -> Reconciliation:
    """The period's three numbers per company and product with their causes. The device lists are
    the current ones (endpoints and agents not retired): a cause names what to fix now. A company no
    security console is mapped to takes its console count from the period's uploaded usage reports."""
    first, last = domain.parse_period(period)
    rules = list(
        await session.scalars(
            db.tenant_rows(BillingRule, tenant_id)
            .where(BillingRule.enabled.is_(True))
            .order_by(BillingRule.product)
        )
    )
    mappings: dict[domain.MappingKey, ClientMapping] = {
        (m.rmm_connection_id, m.rmm_client_id, m.psa_connection_id): m
        for m in await session.scalars(db.tenant_rows(ClientMapping, tenant_id))
    }
    recorded = {
        (s.rule_id, s.company_id): reconciliation.Recorded(
            s.quantity, s.period, s.line_id, None if s.billed_quantity is None else Decimal(s.billed_quantity)
        )
        for s in await session.scalars(db.tenant_rows(BillingLineState, tenant_id))
    }
    endpoints = await session.execute(
        db.scoped(
            select(Endpoint.id, Endpoint.rmm_connection_id, Endpoint.client_id, Endpoint.product),
            Endpoint,
            tenant_id,
        ).where(Endpoint.retired_at.is_(None))
    )
    agents = await session.execute(
        db.scoped(
            select(
                ConsoleAgent.id, ConsoleAgent.connection_id, ConsoleAgent.customer_id, ConsoleAgent.product
            ),
            ConsoleAgent,
            tenant_id,
        ).where(ConsoleAgent.retired_at.is_(None), ConsoleAgent.endpoint_ref.is_(None))
    )
    since = _since(rules, first, last)
    rows = reconciliation.reconcile(
        rules,
        await usage_rows(session, tenant_id, since, last),
        await licence_rows(session, tenant_id, since, last),
        mappings,
        recorded,
        [reconciliation.EndpointFact(*row) for row in endpoints.all()],
        [reconciliation.AgentFact(*row) for row in agents.all()],
        {console.id for console in await consoles_of(session, tenant_id)},
        (first, last),
        psa_views=await psa_views(session, tenant_id),
        uploaded=await uploads.uploaded_usage(session, tenant_id, period),
    )
    return Reconciliation(period, rows)


async def usage_rows(session: AsyncSession, tenant_id: str, first: date, last: date) -> list[domain.UsageRow]:
    """The tenant's daily usage from `first` to `last`, both included."""
    rows = await session.execute(
        db.scoped(
            select(
                UsageDaily.rmm_connection_id,
                UsageDaily.client_id,
                UsageDaily.product,
                UsageDaily.day,
                UsageDaily.peak_installed,
                UsageDaily.last_installed,
                UsageDaily.peak_protected,
                UsageDaily.last_protected,
                UsageDaily.category,
            ),
            UsageDaily,
            tenant_id,
        ).where(UsageDaily.day >= first.isoformat(), UsageDaily.day <= last.isoformat())
    )
    return [
        domain.UsageRow(connection_id, client_id, product, date.fromisoformat(day), pi, li, pp, lp, category)
        for connection_id, client_id, product, day, pi, li, pp, lp, category in rows.all()
    ]


async def licence_rows(
    session: AsyncSession, tenant_id: str, first: date, last: date
) -> list[domain.UsageRow]:
    """The consoles' daily seats from `first` to `last` as usage rows of their customers (the seat
    counts the same whichever RMM scope would read it)."""
    rows = await session.execute(
        db.scoped(
            select(
                LicenceDaily.connection_id,
                LicenceDaily.customer_id,
                LicenceDaily.product,
                LicenceDaily.day,
                LicenceDaily.peak_used,
                LicenceDaily.last_used,
            ),
            LicenceDaily,
            tenant_id,
        ).where(LicenceDaily.day >= first.isoformat(), LicenceDaily.day <= last.isoformat())
    )
    return [
        domain.UsageRow(
            connection_id, customer_id, product, date.fromisoformat(day), peak, last_, peak, last_
        )
        for connection_id, customer_id, product, day, peak, last_ in rows.all()
    ]


def _assemble(
    period: str,
    closed: bool,
    rules: list[BillingRule],
    usage: list[domain.UsageRow],
    licences: list[domain.UsageRow],
    mappings: dict[domain.MappingKey, ClientMapping],
    states: dict[tuple[str, str], BillingLineState],
    overrides: dict[str, dict[str, Decimal]] | None = None,
) -> Preview:
    """Each rule's lines with what was last pushed for them and what a push would do. A client
    unmapped for several rules is listed once, with the last such rule's seats."""
    preview = Preview(period=period, closed=closed, lines=[])
    unmapped: dict[tuple[str, str], domain.UnmappedClient] = {}
    bounds = domain.parse_period(period)
    for rule in rules:
        billed = domain.lines_for_rule(
            rule,
            licences if rule.count_scope == CONSOLE_SEATS else usage,
            mappings,
            period=bounds,
            overrides=(overrides or {}).get(rule.id),
        )
        rmm_seats = _quantities(
            domain.lines_for_rule(
                _counting(rule, reconciliation.rmm_scope(rule)), usage, mappings, period=bounds
            )
        )
        console_seats = _quantities(
            domain.lines_for_rule(_counting(rule, CONSOLE_SEATS), licences, mappings, period=bounds)
        )
        for client in billed.unmapped:
            unmapped[(client.rmm_connection_id, client.client_id)] = client
        for line in billed.lines:
            state = states.get((rule.id, line.company_id))
            pushed = None if state is None else _pushed(state)
            preview.lines.append(
                PreviewLine(
                    line,
                    rule,
                    pushed,
                    state.period if state else None,
                    domain.plan(line, pushed),
                    billed.clients[line.company_id],
                    state.agreement_id if state else None,
                    rmm_seats.get(line.company_id),
                    console_seats.get(line.company_id),
                )
            )
    preview.unmapped_clients = list(unmapped.values())
    present = {(p.line.rule_id, p.line.company_id) for p in preview.lines}
    by_id = {rule.id: rule for rule in rules}
    for (rule_id, company_id), state in sorted(states.items()):
        rule_ = by_id.get(rule_id)
        if rule_ is None or (rule_id, company_id) in present or not state.quantity or not state.line_id:
            continue
        pushed = _pushed(state)
        zero = domain.Line(rule_id, company_id, None, rule_.product, 0, pushed.unit_price, pushed.unit_cost)
        preview.gone.append(PreviewLine(zero, rule_, pushed, state.period, "update", [], state.agreement_id))
    return preview


CONSOLE_SEATS = reconciliation.CONSOLE_SEATS


def _counting(rule: BillingRule, scope: str) -> Any:
    """A rule counted in another scope, for the preview's RMM and console columns."""
    return reconciliation.Scoped(rule, scope)


def _quantities(lines: domain.RuleLines) -> dict[str, int]:
    return {line.company_id: line.quantity for line in lines.lines}


def _pushed(state: BillingLineState) -> domain.Pushed:
    billed = None if state.billed_quantity is None else Decimal(state.billed_quantity)
    return domain.Pushed(
        state.quantity, Decimal(state.unit_price), Decimal(state.unit_cost), state.line_id, billed
    )


# -- review before money moves --------------------------------------------------------------------

REVIEW_SETTINGS = "billing_review"
"""The key of the review settings in `tenant.settings`."""
STALE_AFTER = timedelta(days=1)


def review_settings_of(tenant: Tenant) -> review.ReviewSettings:
    return review.ReviewSettings.model_validate((tenant.settings or {}).get(REVIEW_SETTINGS, {}))


async def get_review_settings(session: AsyncSession, tenant_id: str) -> review.ReviewSettings:
    return review_settings_of(await get_tenant(session, tenant_id))


async def set_review_settings(
    session: AsyncSession, tenant_id: str, settings: review.ReviewSettings, *, actor: Actor
) -> review.ReviewSettings:
    """New settings apply to the next proposals and push; decisions already made stand."""
    tenant = await get_tenant(session, tenant_id)
    before = review_settings_of(tenant).model_dump(mode="json")
    after = settings.model_dump(mode="json")
    tenant.settings = {**(tenant.settings or {}), REVIEW_SETTINGS: after}
    old, new = changed(before, after)
    if new:
        audit.record(
            session,
            tenant_id,
            "billing_review.updated",
            actor,
            target_type="billing_review",
            target_id=None,
            summary=f"billing review settings changed: {', '.join(sorted(new))}",
            before=old,
            after=new,
        )
    return settings


@dataclass
class Proposal:
    """One line a push would create or change, with its verdict and any decision on it."""

    item: PreviewLine
    current: int | None
    """The quantity connector last wrote (None: it never wrote the line)."""
    status: review.Status
    reason: str | None
    decision: BillingDecision | None = None
    reused: bool = False
    """The decision was made for an earlier period on the same difference."""

    @property
    def proposed(self) -> int:
        return self.item.line.quantity

    @property
    def write_quantity(self) -> int | None:
        return review.to_write(self.status, self.proposed, _decision(self.decision))


def _decision(row: BillingDecision | None) -> review.Decision | None:
    if row is None:
        return None
    kind = cast(review.DecisionKind, row.kind)
    return review.Decision(kind, row.current_quantity, row.proposed_quantity, row.quantity)


async def data_gaps(session: AsyncSession, tenant_id: str) -> dict[str, list[str]]:
    """Per enabled RMM and security-console connection, why its counts may be incomplete: its latest
    sync failed or is older than a day, or it never finished a full pass."""
    now = datetime.now(UTC)
    gaps: dict[str, list[str]] = {}
    connections = await session.scalars(
        db.tenant_rows(Connection, tenant_id).where(
            Connection.role.in_(("rmm", "security")), Connection.enabled.is_(True)
        )
    )
    for connection in connections:
        run = await session.scalar(
            db.tenant_rows(SyncRun, tenant_id)
            .where(SyncRun.connection_id == connection.id, SyncRun.status != SyncStatus.RUNNING)
            .order_by(SyncRun.started_at.desc())
            .limit(1)
        )
        cursor = await session.get(SyncCursor, connection.id)
        found: list[str] = []
        if run is None:
            found.append(f"no sync of {connection.name} has finished")
        elif run.status != SyncStatus.SUCCEEDED:
            found.append(f"the latest sync of {connection.name} {run.status.value}")
        elif run.finished_at is None or run.finished_at < now - STALE_AFTER:
            found.append(f"the latest sync of {connection.name} is older than a day")
        if cursor is None or cursor.last_full_at is None:
            found.append(f"{connection.name} has no full pass")
        if found:
            gaps[connection.id] = found
    return gaps


async def build_proposals(
    session: AsyncSession, tenant_id: str, period: str, preview: Preview | None = None
) -> list[Proposal]:
    """Every line a push would create or change (and every written line that would drop to zero),
    judged by the tenant's tolerance and guards, with the decision that answers it: one made for
    this period and proposed quantity, or an approval/dismissal of the same difference before."""
    preview = preview or await build_preview(session, tenant_id, period)
    settings = await get_review_settings(session, tenant_id)
    gaps = await data_gaps(session, tenant_id)
    roles = {c.id: c.role for c in await session.scalars(db.tenant_rows(Connection, tenant_id))}
    rmms = {c for c, role in roles.items() if role == "rmm"}
    consoles = {c for c, role in roles.items() if role == "security"}
    sources: dict[tuple[str, str], set[str]] = {}
    for m in await session.scalars(db.tenant_rows(ClientMapping, tenant_id)):
        sources.setdefault((m.psa_connection_id, m.psa_company_id), set()).add(m.rmm_connection_id)
    decisions = list(
        await session.scalars(db.tenant_rows(BillingDecision, tenant_id).order_by(BillingDecision.decided_at))
    )
    exact = {(d.rule_id, d.company_id, d.period, d.proposed_quantity): d for d in decisions}
    earlier: dict[tuple[str, str], BillingDecision] = {}
    for d in decisions:
        if d.period < period:
            earlier[(d.rule_id, d.company_id)] = d
    proposals = []
    changed = [p for p in preview.lines if p.action != "unchanged" or p.psa_finding is not None]
    for item in [*changed, *preview.gone]:
        line, rule = item.line, item.rule
        current = item.pushed.quantity if item.pushed is not None and item.pushed.line_id else None
        finding = item.psa_finding
        if finding is not None and finding.psa_quantity is not None:
            current = finding.psa_quantity  # what the write would change, as the PSA holds it
        line_gaps: list[str] = []
        counting = consoles if rule.count_scope == CONSOLE_SEATS else rmms
        for connection_id in sorted(sources.get((rule.psa_connection_id, line.company_id), ())):
            if connection_id in counting:  # only the sources the rule counts can lower its line
                line_gaps += gaps.get(connection_id, [])
        verdict = (
            review.Verdict("held", finding.reason)
            if finding is not None
            else review.judge(current, line.quantity, settings, line_gaps)
        )
        row = exact.get((rule.id, line.company_id, period, line.quantity))
        reused = False
        if row is None:
            before = earlier.get((rule.id, line.company_id))
            answer = _decision(before)
            if answer is not None and review.reusable(answer, current, line.quantity):
                row, reused = before, True
        status, reason = review.decided(verdict, _decision(row))
        proposals.append(Proposal(item, current, status, reason, row, reused))
    return proposals


@dataclass(frozen=True)
class DecisionIn:
    rule_id: str
    company_id: str
    proposed_quantity: int
    action: review.DecisionKind
    quantity: int | None = None
    reason: str | None = None


async def decide(
    session: AsyncSession, tenant_id: str, period: str, decisions: list[DecisionIn], *, actor: Actor
) -> list[Proposal]:
    """Record decisions on the period's current proposals (each with an audit entry); a decision on a
    proposal that changed since it was read is refused, naming it. Returns the proposals after."""
    domain.parse_period(period)
    proposals = {
        (p.item.rule.id, p.item.line.company_id): p for p in await build_proposals(session, tenant_id, period)
    }
    errors: list[dict[str, str]] = []
    for n, wanted in enumerate(decisions):
        proposal = proposals.get((wanted.rule_id, wanted.company_id))
        if proposal is None:
            errors.append(
                {
                    "field": f"decisions[{n}].company_id",
                    "message": "no proposed change for this rule and company",
                }
            )
        elif proposal.proposed != wanted.proposed_quantity:
            errors.append(
                {
                    "field": f"decisions[{n}].proposed_quantity",
                    "message": f"the proposal is now {proposal.proposed}; decide on that",
                }
            )
    if errors:
        raise FieldError.many(errors)
    by = actor.api_key_id or actor.via
    for wanted in decisions:
        proposal = proposals[(wanted.rule_id, wanted.company_id)]
        key = (wanted.rule_id, wanted.company_id, period, wanted.proposed_quantity)
        row = await session.scalar(
            db.tenant_rows(BillingDecision, tenant_id).where(
                BillingDecision.rule_id == key[0],
                BillingDecision.company_id == key[1],
                BillingDecision.period == key[2],
                BillingDecision.proposed_quantity == key[3],
            )
        )
        if row is None:
            row = BillingDecision(
                tenant_id=tenant_id,
                rule_id=key[0],
                company_id=key[1],
                period=period,
                proposed_quantity=key[3],
            )
            session.add(row)
        row.current_quantity, row.kind = proposal.current, wanted.action
        row.quantity = wanted.quantity if wanted.action == "adjust" else None
        row.reason, row.decided_by, row.decided_at = wanted.reason, by, datetime.now(UTC)
        line = proposal.item.line
        written = f" to {row.quantity}" if row.quantity is not None else ""
        audit.record(
            session,
            tenant_id,
            "billing_decision.recorded",
            actor,
            target_type="billing_line",
            target_id=marker_for(line.rule_id, line.company_id),
            connection_id=proposal.item.rule.psa_connection_id,
            summary=f"{wanted.action}{written}: {line.product} {proposal.current} → {line.quantity} for "
            f"company {line.company_name or line.company_id} ({period})"
            + (f": {wanted.reason}" if wanted.reason else ""),
            after={
                "period": period,
                "action": wanted.action,
                "current_quantity": proposal.current,
                "proposed_quantity": line.quantity,
                "quantity": row.quantity,
                "reason": wanted.reason,
            },
        )
    await session.flush()
    return await build_proposals(session, tenant_id, period)


def reviewed(preview: Preview, proposals: list[Proposal]) -> tuple[Preview, list[PushResult]]:
    """The preview a push may write (unchanged lines, and proposals approved on their own or by an
    engineer at the quantity to write) and the results of the lines that wait or were dismissed."""
    writable: list[PreviewLine] = [
        p for p in preview.lines if p.action == "unchanged" and p.psa_finding is None
    ]
    held: list[PushResult] = []
    for proposal in proposals:
        quantity, item = proposal.write_quantity, proposal.item
        if quantity is None:
            action: PushAction = "dismissed" if proposal.status == "dismissed" else "waiting"
            held.append(
                PushResult.of(
                    item.line, action, reason=f"{proposal.status}: {proposal.reason or ''}".rstrip(": ")
                )
            )
            continue
        # An adjustment names whole seats: it replaces a prorated quantity.
        prorated = item.line.prorated if quantity == item.line.quantity else None
        line = replace(item.line, quantity=quantity, prorated=prorated)
        reason = proposal.decision.reason if proposal.status == "adjusted" and proposal.decision else None
        planned_action: domain.Action = domain.plan(line, item.pushed)
        target = item.write_line_id
        finding = item.psa_finding
        if finding is not None:
            # The PSA differs from the record: the approved quantity is written whatever the record says.
            planned_action = "create" if finding.finding == readback.Finding.REMOVED_OUTSIDE else "update"
            target = finding.link_line_id if finding.finding != readback.Finding.UNREADABLE else target
        writable.append(replace(item, line=line, action=planned_action, reason=reason, write_line_id=target))
    return replace(preview, lines=writable), held


PushAction = Literal[
    "created", "updated", "unchanged", "error", "would_create", "would_update", "waiting", "dismissed"
]


@dataclass
class PushResult:
    company_id: str
    product: str
    quantity: int
    action: PushAction
    line_id: str | None = None
    error: str | None = None
    reason: str | None = None
    """Why the line waits (its review status and the guard's or tolerance's reason)."""
    billed_quantity: str | None = None
    """The quantity priced and written (a prorated line's exact one), as text."""

    @classmethod
    def of(
        cls,
        line: domain.Line,
        action: PushAction,
        line_id: str | None = None,
        *,
        error: str | None = None,
        reason: str | None = None,
    ) -> PushResult:
        return cls(
            line.company_id, line.product, line.quantity, action, line_id, error, reason, str(line.billed)
        )


PLANNED: dict[domain.Action, PushAction] = {
    "create": "would_create",
    "update": "would_update",
    "unchanged": "unchanged",
}
"""What a dry run reports for each planned action."""


def planned(preview: Preview) -> list[PushResult]:
    """A dry run's answer: what a push would do to each line, with no PSA call."""
    return [
        PushResult.of(p.line, PLANNED[p.action], p.pushed.line_id if p.pushed else None)
        for p in preview.lines
    ]


async def push(
    services: Services,
    tenant_id: str,
    period: str,
    *,
    dry_run: bool = False,
    override: bool = False,
    trigger: str = "api",
    actor: Actor = WORKER,
) -> tuple[Preview, list[PushResult]]:
    """Reconcile the period's lines into the PSA under the tenant's push lease (`PushRunning` when
    another push holds it). Only unchanged lines and approved proposals (on their own or by an engineer)
    are written; the others come back as `waiting` or `dismissed` with why. A dry run writes nothing,
    so it needs no lease."""
    if dry_run:
        await read_period_back(services, tenant_id, period)
        preview, held, _ = await _load(services, tenant_id, period)
        return preview, [*planned(preview), *held]
    async with push_lease(services, tenant_id, period, trigger) as lease:
        # Read under the lease: a push that ran just before has recorded its lines by now; and the
        # PSA's own copy first, so a line changed there is held for review, not overwritten.
        if await read_period_back(services, tenant_id, period, refuse_closed=not override):
            raise PeriodClosed(period)
        preview, held, connections = await _load(services, tenant_id, period)
        written = await _write(services, tenant_id, period, preview, connections, lease, actor)
        await read_back(
            services,
            tenant_id,
            [
                replace(item, write_line_id=result.line_id)
                for item, result in zip(preview.lines, written, strict=True)
                if result.action in ("created", "updated")
            ],
            connections,
        )
        results = [*written, *held]
    async with db.transaction(services.sessions) as session:
        await notify(session, tenant_id, review_event(period, results))
    return preview, results


async def read_period_back(
    services: Services, tenant_id: str, period: str, *, refuse_closed: bool = False
) -> bool:
    """Read every line of the period back from its PSA (see `read_back`). True, and nothing read,
    when the period is closed and `refuse_closed` says a closed period is not to be pushed."""
    async with services.sessions() as session:
        preview = await build_preview(session, tenant_id, period)
        connections = {
            c.id: c
            for c in await session.scalars(
                db.tenant_rows(Connection, tenant_id).where(Connection.role == "psa")
            )
        }
    if preview.closed and refuse_closed:
        return True
    await read_back(services, tenant_id, [*preview.lines, *preview.gone], connections)
    return False


async def read_back(
    services: Services, tenant_id: str, items: list[PreviewLine], connections: dict[str, Connection]
) -> None:
    """Read each line as its PSA holds it and keep that (`billing_psa_reads`): the review compares
    it with what connector wrote. A failed read is kept as the error, so the line waits."""
    agreements: dict[tuple[str, str], list[Any]] = {}
    in_use = agreements_in_use(items)
    slots = asyncio.Semaphore(PSA_CONCURRENCY)

    async def one(item: PreviewLine) -> tuple[PreviewLine, str | None, Any, str | None] | None:
        connection = connections.get(item.rule.psa_connection_id)
        if connection is None or not connection.enabled:
            return None
        async with slots:
            try:
                adapter = await services.adapters.psa(connection)
                agreement_id = (
                    item.rule.agreement_id
                    or item.agreement_id
                    or await _agreement_for(
                        adapter,
                        agreements,
                        item.rule,
                        item.line.company_id,
                        in_use.get((item.rule.psa_connection_id, item.line.company_id), frozenset()),
                    )
                )
                if agreement_id is None:
                    return None  # nothing to read; the write reports the missing agreement
                found = await adapter.read_billing_line(_billing_line(item, agreement_id))
            except AdapterError as exc:
                return item, None, None, str(exc)[:500]
        return item, agreement_id, found, None

    reads = [r for r in await asyncio.gather(*(one(item) for item in items)) if r is not None]
    if not reads:
        return
    async with db.transaction(services.sessions) as session:
        for item, agreement_id, found, error in reads:
            row = await session.scalar(
                db.tenant_rows(BillingPsaRead, tenant_id).where(
                    BillingPsaRead.rule_id == item.rule.id,
                    BillingPsaRead.company_id == item.line.company_id,
                )
            )
            if row is None:
                row = BillingPsaRead(
                    tenant_id=tenant_id, rule_id=item.rule.id, company_id=item.line.company_id
                )
                session.add(row)
            row.read_at, row.error = datetime.now(UTC), error
            if error is None:
                row.agreement_id = agreement_id
                row.line_id = None if found is None else found.line_id
                row.quantity = None if found is None else found.quantity
                row.marked = None if found is None else found.marked
        if len(reads) > 1:
            log.info("billing lines read back", tenant_id=tenant_id, lines=len(reads))


def review_event(period: str, results: list[PushResult]) -> Event:
    """After a push, the period waits for someone to review it (and its failed lines, if any)."""
    failed = [r for r in results if r.action == "error"]
    waiting = [r for r in results if r.action == "waiting"]
    written = sum(1 for r in results if r.action in ("created", "updated"))
    data = {"period": period, "lines": len(results), "written": written, "failed": len(failed)}
    data["waiting"] = len(waiting)
    if waiting and not failed:
        subject = f"Billing period {period} needs review: {len(waiting)} line(s) wait for approval"
        text = "; ".join(f"{r.product} for company {r.company_id}: {r.reason}" for r in waiting[:10])
    elif failed:
        subject = f"Billing period {period} needs review: {len(failed)} line(s) failed"
        text = "; ".join(f"{r.product} for company {r.company_id}: {r.error}" for r in failed[:10])
    else:
        subject = f"Billing period {period} pushed: {written} line(s) written, ready for review"
        text = ""
    return Event(EventKind.BILLING_REVIEW, subject, text, data)


async def _load(
    services: Services, tenant_id: str, period: str
) -> tuple[Preview, list[PushResult], dict[str, Connection]]:
    """The lines a push may write, the results of those that wait, and the tenant's PSAs."""
    async with services.sessions() as session:
        everything = await build_preview(session, tenant_id, period)
        preview, held = reviewed(everything, await build_proposals(session, tenant_id, period, everything))
        connections = {
            c.id: c
            for c in await session.scalars(
                db.tenant_rows(Connection, tenant_id).where(Connection.role == "psa")
            )
        }
    return preview, held, connections


async def _write(
    services: Services,
    tenant_id: str,
    period: str,
    preview: Preview,
    connections: dict[str, Connection],
    lease: PushLease,
    actor: Actor,
) -> list[PushResult]:
    """Write the changed lines, at most PSA_CONCURRENCY at a time, each recorded as it succeeds;
    then mark the unchanged ones current for the period."""
    writer = _LineWriter(
        services, tenant_id, period, connections, lease, actor, in_use=agreements_in_use(preview.lines)
    )
    tasks = [asyncio.ensure_future(writer.write(item)) for item in preview.lines]
    try:
        results = list(await asyncio.gather(*tasks))
    except BaseException:
        # Nothing may still be writing once the lease is released: stop the other lines first.
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise
    await _mark_unchanged(services, period, preview)
    return results


@dataclass
class _LineWriter:
    """One push's PSA writes: the shared agreement lookups and the concurrency limit."""

    services: Services
    tenant_id: str
    period: str
    connections: dict[str, Connection]
    lease: PushLease
    actor: Actor
    agreements: dict[tuple[str, str], list[Any]] = field(default_factory=dict)
    in_use: dict[tuple[str, str], frozenset[str]] = field(default_factory=dict)
    """Per PSA connection and company, the agreements its lines are already on."""
    slots: asyncio.Semaphore = field(default_factory=lambda: asyncio.Semaphore(PSA_CONCURRENCY))

    async def write(self, item: PreviewLine) -> PushResult:
        """Writes the line if it changed; one INFO event per line with what was done."""
        result = await self._write(item)
        connection = self.connections.get(item.rule.psa_connection_id)
        psa_kind = connection.kind if connection is not None else "unknown"
        if result.action in ("created", "updated"):
            self.services.metrics.billing_lines.labels(psa_kind, result.action).inc()
        (log.warning if result.action == "error" else log.info)(
            "billing line " + result.action,
            action=result.action,
            tenant_id=self.tenant_id,
            period=self.period,
            psa_connection_id=item.rule.psa_connection_id,
            psa_kind=psa_kind,
            rule_id=item.rule.id,
            company_id=result.company_id,
            product=result.product,
            quantity=result.quantity,
            line_id=result.line_id,
            error=result.error,
        )
        return result

    async def _write(self, item: PreviewLine) -> PushResult:
        line, rule = item.line, item.rule
        if item.action == "unchanged":
            return PushResult.of(line, "unchanged", item.pushed.line_id if item.pushed else None)
        connection = self.connections.get(rule.psa_connection_id)
        if connection is None or not connection.enabled:
            return PushResult.of(line, "error", error="PSA connection disabled")
        async with self.slots:
            try:
                adapter = await self.services.adapters.psa(connection)
                agreement_id = (
                    rule.agreement_id
                    or item.agreement_id
                    or await _agreement_for(
                        adapter,
                        self.agreements,
                        rule,
                        line.company_id,
                        self.in_use.get((rule.psa_connection_id, line.company_id), frozenset()),
                    )
                )
                if agreement_id is None:
                    return PushResult.of(
                        line,
                        "error",
                        error=f"no active agreement of type '{rule.agreement_type}' for this company",
                    )
                if not self.lease.held():  # another push may hold it by now: never write beside it
                    return PushResult.of(
                        line,
                        "error",
                        error="not written: the push could not renew its lease (database unreachable?); "
                        "push again",
                    )
                result = await adapter.upsert_billing_line(_billing_line(item, agreement_id))
            except AdapterError as exc:
                return PushResult.of(line, "error", error=str(exc))
        await _record(self.services, self.tenant_id, item, self.period, agreement_id, result, self.actor)
        return PushResult.of(line, result.action, result.line_id)


def _billing_line(item: PreviewLine, agreement_id: str) -> BillingLine:
    line, rule = item.line, item.rule
    return BillingLine(
        marker=marker_for(rule.id, line.company_id),
        company_id=line.company_id,
        agreement_id=agreement_id,
        product_id=rule.psa_product_id,
        description=rule.description or rule.product,
        quantity=line.billed,
        unit_price=line.unit_price,
        unit_cost=line.unit_cost,
        line_id=item.write_line_id,
    )


async def _mark_unchanged(services: Services, period: str, preview: Preview) -> None:
    """The lines a push left untouched are current for this period too (one statement per rule)."""
    unchanged = [(p.line.rule_id, p.line.company_id) for p in preview.lines if p.action == "unchanged"]
    if not unchanged:
        return
    async with db.transaction(services.sessions) as session:
        for rule_id in {rule_id for rule_id, _ in unchanged}:
            await session.execute(
                update(BillingLineState)
                .where(
                    BillingLineState.rule_id == rule_id,
                    BillingLineState.company_id.in_([c for r, c in unchanged if r == rule_id]),
                )
                .values(period=period)
            )


# -- the push lease ---------------------------------------------------------------------------------


@dataclass
class PushLease:
    """This process's hold on a tenant's push lease. `held()` is judged locally from the last renewal
    the database confirmed, so checking it before each PSA write costs no query."""

    services: Services
    tenant_id: str
    owner: str
    ttl: float
    valid_until: float
    """`time.monotonic()` before which the row is certainly still ours (never later than its expiry)."""
    lost: bool = False

    def held(self) -> bool:
        return not self.lost and time.monotonic() < self.valid_until

    async def renew(self) -> None:
        started = time.monotonic()
        async with db.transaction(self.services.sessions) as session:
            result = await session.execute(
                db.scoped(update(BillingPushLease), BillingPushLease, self.tenant_id)
                .where(BillingPushLease.owner == self.owner)
                .values(expires_at=datetime.now(UTC) + timedelta(seconds=self.ttl))
            )
        if result.rowcount == 1:  # type: ignore[attr-defined]
            self.valid_until = started + self.ttl
        else:  # expired and taken over by another push
            self.lost = True


@asynccontextmanager
async def push_lease(
    services: Services, tenant_id: str, period: str, trigger: str
) -> AsyncIterator[PushLease]:
    """Hold the tenant's push lease for the block, renewed every third of its length; `PushRunning`
    when another push holds it. An expired lease (its process died) is taken over."""
    lease = await _acquire(services, tenant_id, period, trigger)
    renewer = asyncio.create_task(_keep_renewed(lease), name=f"billing-lease-{tenant_id}")
    try:
        yield lease
    finally:
        renewer.cancel()
        await asyncio.gather(renewer, return_exceptions=True)
        try:
            async with db.transaction(services.sessions) as session:
                await session.execute(
                    db.scoped(delete(BillingPushLease), BillingPushLease, tenant_id).where(
                        BillingPushLease.owner == lease.owner
                    )
                )
        except Exception as exc:  # it expires on its own; do not hide the push's own outcome
            log.warning("billing push lease not released", tenant=tenant_id, error=str(exc))


async def _acquire(services: Services, tenant_id: str, period: str, trigger: str) -> PushLease:
    ttl = services.settings.billing_push_lease_seconds
    holder = f"process {os.getpid()} on {socket.gethostname()}"[:200]
    for _ in range(3):  # again only if the holder released the row between our insert and our read
        started = time.monotonic()
        now = datetime.now(UTC)
        values: dict[str, Any] = {
            "owner": new_id(),
            "period": period,
            "trigger": trigger,
            "holder": holder,
            "started_at": now,
            "expires_at": now + timedelta(seconds=ttl),
        }
        async with db.transaction(services.sessions) as session:
            # Take over an expired lease (on PostgreSQL a concurrent taker waits for the row, then
            # finds it unexpired); else insert, and the primary key lets only one of two inserts in.
            taken = await session.execute(
                db.scoped(update(BillingPushLease), BillingPushLease, tenant_id)
                .where(BillingPushLease.expires_at < now)
                .values(**values)
            )
            if taken.rowcount == 1:  # type: ignore[attr-defined]
                return PushLease(services, tenant_id, values["owner"], ttl, started + ttl)
            try:
                async with session.begin_nested():
                    session.add(BillingPushLease(tenant_id=tenant_id, **values))
            except IntegrityError:
                current = await session.scalar(db.tenant_rows(BillingPushLease, tenant_id))
                if current is not None:
                    raise PushRunning(current) from None
                continue
        return PushLease(services, tenant_id, values["owner"], ttl, started + ttl)
    raise Conflict("billing pushes of this tenant keep starting and finishing; try again")


async def _keep_renewed(lease: PushLease) -> None:
    while not lease.lost:
        await asyncio.sleep(lease.ttl / 3)
        try:
            await lease.renew()
        except Exception as exc:  # a database hiccup: `held()` stops the writes if it lasts
            log.warning("billing push lease not renewed", tenant=lease.tenant_id, error=str(exc))


async def _agreement_for(
    adapter: Any,
    cache: dict[tuple[str, str], list[Any]],
    rule: BillingRule,
    company_id: str,
    in_use: frozenset[str] = frozenset(),
) -> str | None:
    """The company's active agreement of the rule's type; of several, the one the company's other
    products are already billed on (one agreement, so one invoice, for all of a client's services)."""
    key = (rule.psa_connection_id, company_id)
    if key not in cache:
        cache[key] = await adapter.list_agreements(company_id)
    wanted = (rule.agreement_type or "").lower()
    candidates = [
        str(agreement.id)
        for agreement in cache[key]
        if agreement.active and wanted in ((agreement.type_name or "").lower(), agreement.name.lower())
    ]
    shared = [agreement_id for agreement_id in candidates if agreement_id in in_use]
    chosen = shared or candidates
    return chosen[0] if chosen else None


def agreements_in_use(items: list[PreviewLine]) -> dict[tuple[str, str], frozenset[str]]:
    """Per PSA connection and company, the agreements connector's lines are on."""
    found: dict[tuple[str, str], set[str]] = {}
    for item in items:
        if item.agreement_id:
            found.setdefault((item.rule.psa_connection_id, item.line.company_id), set()).add(
                item.agreement_id
            )
    return {key: frozenset(ids) for key, ids in found.items()}


async def _record(
    services: Services,
    tenant_id: str,
    item: PreviewLine,
    period: str,
    agreement_id: str | None,
    result: BillingLineResult,
    actor: Actor,
) -> None:
    """What the PSA now holds for the line, with its audit entry when the PSA was written to."""
    line, line_id = item.line, result.line_id
    async with db.transaction(services.sessions) as session:
        state = await session.scalar(
            select(BillingLineState).where(
                BillingLineState.rule_id == line.rule_id, BillingLineState.company_id == line.company_id
            )
        )
        before = None
        if state is None:
            state = BillingLineState(tenant_id=tenant_id, rule_id=line.rule_id, company_id=line.company_id)
            session.add(state)
        else:
            before = {
                "quantity": state.quantity,
                "unit_price": state.unit_price,
                "unit_cost": state.unit_cost,
            }
        # Upserted only because the record differed: the PSA now holds the line as wanted (`unchanged`:
        # an earlier push wrote it and died before recording it).
        audit.record(
            session,
            tenant_id,
            "billing_line.written",
            actor,
            target_type="billing_line",
            target_id=line_id,
            connection_id=item.rule.psa_connection_id,
            summary=f"{result.action} {line.product} × {line.quantity} for company "
            f"{line.company_name or line.company_id} ({period})",
            before=before,
            after={
                "action": result.action,
                "company_id": line.company_id,
                "agreement_id": agreement_id,
                "period": period,
                "quantity": line.quantity,
                **({"billed_quantity": line.prorated} if line.prorated is not None else {}),
                "unit_price": line.unit_price,
                "unit_cost": line.unit_cost,
                **({"reason": item.reason} if item.reason else {}),
            },
        )
        state.period = period
        state.pushed_at = datetime.now(UTC)
        state.agreement_id, state.line_id = agreement_id, line_id
        state.quantity, state.unit_price, state.unit_cost = line.quantity, line.unit_price, line.unit_cost
        state.billed_quantity = line.prorated


async def close_period(session: AsyncSession, tenant_id: str, period: str, *, actor: Actor) -> BillingPeriod:
    domain.parse_period(period)
    row = await session.get(BillingPeriod, (tenant_id, period))
    if row is None:
        row = BillingPeriod(tenant_id=tenant_id, period=period)
        session.add(row)
        audit.record(
            session,
            tenant_id,
            "billing_period.closed",
            actor,
            target_type="billing_period",
            target_id=period,
            summary=f"billing period {period} closed (pushing it again needs an override)",
            after={"closed": True},
        )
    return row
