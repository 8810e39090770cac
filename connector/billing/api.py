"""`/api/v1/billing`: preview a period's lines (JSON or CSV), review the proposed changes, push the
approved ones into the PSA, close a period."""

from __future__ import annotations

import csv
import io
from decimal import Decimal
from typing import Any

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import JSONResponse, Response

from connector.api.deps import Engineer, ServicesDep, Session, Viewer
from connector.audit.domain import Actor
from connector.billing import domain, service
from connector.billing.review import ReviewSettings
from connector.billing.schemas import (
    CauseOut,
    ClosedPeriodOut,
    DecisionOut,
    DecisionsIn,
    PreviewLineOut,
    PreviewOut,
    ProductTotalOut,
    ProposalOut,
    ProposalsOut,
    PushedOut,
    PushLineOut,
    PushOut,
    PushRequest,
    ReconciliationOut,
    ReconciliationRowOut,
    UnmappedClientOut,
)
from connector.billing.service import (
    PeriodClosed,
    Preview,
    PreviewLine,
    PushResult,
    PushRunning,
    Reconciliation,
    build_preview,
    build_reconciliation,
    close_period,
    push,
)
from connector.infra.errors import FieldError

router = APIRouter(prefix="/api/v1/billing", tags=["billing"])

PERIOD_PATTERN = domain.PERIOD_PATTERN
CONFLICT: dict[int | str, dict[str, Any]] = {
    409: {"description": "another push of the tenant is running, or the period is closed"}
}


def _money(value: Decimal) -> str:
    return str(domain.money(value))


def _line_out(item: PreviewLine) -> PreviewLineOut:
    line, pushed = item.line, item.pushed
    return PreviewLineOut(
        company_id=line.company_id,
        company_name=line.company_name,
        product=line.product,
        rule_id=line.rule_id,
        rmm_clients=item.clients,
        quantity=line.quantity,
        unit_price=str(line.unit_price),
        unit_cost=str(line.unit_cost),
        total=_money(line.total),
        cost=_money(line.cost),
        margin=_money(line.margin),
        pushed=None
        if pushed is None
        else PushedOut(
            period=item.pushed_period,
            quantity=pushed.quantity,
            unit_price=str(pushed.unit_price),
            unit_cost=str(pushed.unit_cost),
            line_id=pushed.line_id,
        ),
        action=item.action,
        rmm_seats=item.rmm_seats,
        console_seats=item.console_seats,
    )


def _preview_out(preview: Preview) -> PreviewOut:
    """Lines, totals per product (sums of the rounded line figures) and overall."""
    per_product: dict[str, tuple[int, Decimal, Decimal]] = {}
    for item in preview.lines:
        line = item.line
        quantity, total, cost = per_product.get(line.product, (0, Decimal(0), Decimal(0)))
        per_product[line.product] = (quantity + line.quantity, total + line.total, cost + line.cost)
    overall_total = sum((total for _, total, _ in per_product.values()), Decimal(0))
    overall_cost = sum((cost for _, _, cost in per_product.values()), Decimal(0))
    return PreviewOut(
        period=preview.period,
        closed=preview.closed,
        lines=[_line_out(item) for item in preview.lines],
        products=[
            ProductTotalOut(
                product=product,
                quantity=quantity,
                total=_money(total),
                cost=_money(cost),
                margin=_money(total - cost),
            )
            for product, (quantity, total, cost) in sorted(per_product.items())
        ],
        total=_money(overall_total),
        cost=_money(overall_cost),
        margin=_money(overall_total - overall_cost),
        unmapped_clients=[
            UnmappedClientOut.model_validate(client, from_attributes=True)
            for client in preview.unmapped_clients
        ],
    )


def _preview_csv(body: PreviewOut) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    columns = "period company_id company_name product quantity unit_price unit_cost total cost margin"
    writer.writerow([*columns.split(), "pushed_quantity", "action"])
    for line in body.lines:
        row: list[Any] = [body.period, line.company_id, line.company_name or "", line.product]
        row += [line.quantity, line.unit_price, line.unit_cost, line.total, line.cost, line.margin]
        writer.writerow([*row, line.pushed.quantity if line.pushed else "", line.action])
    writer.writerow([body.period, "", "TOTAL", "", "", "", "", body.total, body.cost, body.margin, "", ""])
    return out.getvalue()


@router.get(
    "/preview",
    response_model=PreviewOut,
    responses={200: {"content": {"text/csv": {"schema": {"type": "string"}}}}},
)
async def preview_period(
    request: Request,
    session: Session,
    who: Viewer,
    period: str = Query(pattern=PERIOD_PATTERN, description="YYYY-MM"),
) -> PreviewOut | Response:
    """Lines per PSA company × product with quantity, unit price, unit cost, total, margin and what
    is already pushed; totals per product and overall. `Accept: text/csv` for a spreadsheet."""
    body = _preview_out(await build_preview(session, who.tenant_id, period))
    if "text/csv" in request.headers.get("accept", ""):
        return Response(
            _preview_csv(body),
            media_type="text/csv",
            headers={"Content-Disposition": f'attachment; filename="billing-{period}.csv"'},
        )
    return body


def reconciliation_out(result: Reconciliation) -> ReconciliationOut:
    counts: dict[str, int] = {}
    rows = []
    for row in result.rows:
        for cause in row.causes:
            counts[cause.code.value] = counts.get(cause.code.value, 0) + 1
        rows.append(
            ReconciliationRowOut(
                rule_id=row.rule_id,
                product=row.product,
                company_id=row.company_id,
                company_name=row.company_name,
                rmm_count=row.rmm_count,
                console_count=row.console_count,
                psa_quantity=row.psa_quantity,
                billed_count=row.billed_count,
                differences=row.differences,
                causes=[
                    CauseOut(code=c.code.value, count=c.count, ids=list(c.ids), total=c.total)
                    for c in row.causes
                ],
            )
        )
    return ReconciliationOut(period=result.period, rows=rows, causes=dict(sorted(counts.items())))


def _reconciliation_csv(body: ReconciliationOut) -> str:
    """One line per row and cause (a row without a cause has one line with an empty cause)."""
    out = io.StringIO()
    writer = csv.writer(out)
    columns = "period company_id company_name product rmm_count console_count psa_quantity billed_count"
    writer.writerow([*columns.split(), "cause", "cause_count", "ids_total", "ids"])
    for row in body.rows:
        head: list[Any] = [body.period, row.company_id or "", row.company_name or "", row.product]
        head += [row.rmm_count, _blank(row.console_count), _blank(row.psa_quantity), row.billed_count]
        causes: list[CauseOut | None] = [*row.causes] or [None]
        for cause in causes:
            tail = (
                ["", "", "", ""]
                if cause is None
                else [cause.code, cause.count, cause.total, " ".join(cause.ids)]
            )
            writer.writerow([*head, *tail])
    return out.getvalue()


def _blank(value: int | None) -> int | str:
    return "" if value is None else value


@router.get(
    "/reconciliation",
    response_model=ReconciliationOut,
    responses={200: {"content": {"text/csv": {"schema": {"type": "string"}}}}},
)
async def reconciliation_period(
    request: Request,
    session: Session,
    who: Viewer,
    period: str = Query(pattern=PERIOD_PATTERN, description="YYYY-MM"),
) -> ReconciliationOut | Response:
    """Per PSA company and product: the RMM's count, the consoles' count and the PSA quantity last
    written, each difference with its causes and the ids behind them. `Accept: text/csv` for a
    spreadsheet."""
    body = reconciliation_out(await build_reconciliation(session, who.tenant_id, period))
    if "text/csv" in request.headers.get("accept", ""):
        return Response(
            _reconciliation_csv(body),
            media_type="text/csv",
            headers={"Content-Disposition": f'attachment; filename="reconciliation-{period}.csv"'},
        )
    return body


def _push_out(body: PushRequest, results: list[PushResult]) -> PushOut:
    counts: dict[str, int] = {}
    for result in results:
        counts[result.action] = counts.get(result.action, 0) + 1
    return PushOut(
        period=body.period,
        dry_run=body.dry_run,
        summary=counts,
        lines=[PushLineOut.model_validate(result, from_attributes=True) for result in results],
    )


@router.post("/push", response_model=PushOut, responses=CONFLICT)
async def push_period(body: PushRequest, services: ServicesDep, who: Engineer) -> PushOut | JSONResponse:
    """Reconcile the period's lines into the PSA: create missing lines once, update changed ones,
    leave equal ones untouched. `dry_run` reports the plan with no PSA calls. 409 while another push
    of the tenant runs (from the API, any replica, or `connector sync --billing`)."""
    try:  # long work (PSA calls, one per changed line): statement timeouts of background work
        _, results = await push(
            services.work,
            who.tenant_id,
            body.period,
            dry_run=body.dry_run,
            override=body.override,
            actor=Actor.key(who.api_key_id),
        )
    except PushRunning as running:
        return JSONResponse(
            {"error": "conflict", "message": str(running), "running": running.describe()}, status_code=409
        )
    except PeriodClosed:
        return JSONResponse(
            {
                "error": "conflict",
                "message": f"period {body.period} is closed; push with override=true to change it",
                "errors": [{"field": "period", "message": "closed"}],
            },
            status_code=409,
        )
    return _push_out(body, results)


@router.post("/periods/{period}/close", response_model=ClosedPeriodOut)
async def close(
    session: Session, who: Engineer, period: str = Path(pattern=PERIOD_PATTERN, description="YYYY-MM")
) -> ClosedPeriodOut:
    try:
        row = await close_period(session, who.tenant_id, period, actor=Actor.key(who.api_key_id))
    except ValueError as exc:
        raise FieldError("period", str(exc)) from None
    return ClosedPeriodOut(period=row.period, closed=True)


# -- review before money moves ---------------------------------------------------------------------


@router.get("/review-settings", response_model=ReviewSettings)
async def get_review_settings(session: Session, who: Viewer) -> ReviewSettings:
    """The tolerance within which a change is written on its own, and the drop guard."""
    return await service.get_review_settings(session, who.tenant_id)


@router.put("/review-settings", response_model=ReviewSettings)
async def put_review_settings(body: ReviewSettings, session: Session, who: Engineer) -> ReviewSettings:
    """Replace the settings (omitted fields take their defaults); they apply to the next push."""
    return await service.set_review_settings(session, who.tenant_id, body, actor=Actor.key(who.api_key_id))


def _proposals_out(period: str, proposals: list[service.Proposal]) -> ProposalsOut:
    out, summary = [], dict[str, int]()
    for p in proposals:
        line, row = p.item.line, p.decision
        summary[p.status] = summary.get(p.status, 0) + 1
        out.append(
            ProposalOut(
                rule_id=line.rule_id,
                company_id=line.company_id,
                company_name=line.company_name,
                product=line.product,
                current_quantity=p.current,
                proposed_quantity=p.proposed,
                difference=p.proposed - (p.current or 0),
                status=p.status,
                reason=p.reason,
                write_quantity=p.write_quantity,
                decision=None
                if row is None
                else DecisionOut(
                    action=row.kind,
                    quantity=row.quantity,
                    reason=row.reason,
                    decided_by=row.decided_by,
                    decided_at=row.decided_at,
                    period=row.period,
                    reused=p.reused,
                ),
            )
        )
    return ProposalsOut(period=period, proposals=out, summary=dict(sorted(summary.items())))


@router.get("/proposals", response_model=ProposalsOut)
async def list_proposals(
    session: Session, who: Viewer, period: str = Query(pattern=PERIOD_PATTERN, description="YYYY-MM")
) -> ProposalsOut:
    """Every line a push would create or change for the period: current and proposed quantity,
    whether it is written on its own (`auto_approved`), waits (`awaiting_review`, `held` by a guard,
    with why) or was decided on, and the decision."""
    return _proposals_out(period, await service.build_proposals(session, who.tenant_id, period))


@router.post("/decisions", response_model=ProposalsOut)
async def record_decisions(body: DecisionsIn, session: Session, who: Engineer) -> ProposalsOut:
    """Approve, adjust (a quantity and a reason) or dismiss proposals, one or many; each names the
    proposed quantity it answers, so a proposal that changed since it was listed is refused (422).
    Returns the period's proposals after the decisions."""
    decisions = [service.DecisionIn(**d.model_dump()) for d in body.decisions]
    proposals = await service.decide(
        session, who.tenant_id, body.period, decisions, actor=Actor.key(who.api_key_id)
    )
    return _proposals_out(body.period, proposals)
