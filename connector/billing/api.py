"""`/api/v1/billing`: preview a period's lines (JSON or CSV), review the proposed changes, push the
approved ones into the PSA, close a period."""

from __future__ import annotations

import csv
import io
from decimal import Decimal
from typing import Any

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import JSONResponse, Response

from connector.api.deps import Engineer, ServicesDep, Session, Viewer, configuration_changed
from connector.audit.domain import Actor
from connector.billing import domain, service, snapshots, statement, trace, uploads
from connector.billing.review import ReviewSettings
from connector.billing.schemas import (
    CauseOut,
    ChangesOut,
    ClientTotalOut,
    ClosedPeriodOut,
    DecisionOut,
    DecisionsIn,
    LineDevicesOut,
    PreviewLineOut,
    PreviewOut,
    ProductChangeOut,
    ProductTotalOut,
    ProposalOut,
    ProposalsOut,
    PushedOut,
    PushLineOut,
    PushOut,
    PushRequest,
    ReadBackRequest,
    ReconciliationOut,
    ReconciliationRowOut,
    SnapshotDeviceOut,
    SnapshotLineOut,
    UnmappedClientOut,
    UsageProfileIn,
    UsageProfileOut,
    UsageRowOut,
    UsageUploadOut,
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
    push,
)
from connector.billing.usage_upload import multipart_file
from connector.infra.errors import FieldError, NotFound

router = APIRouter(prefix="/api/v1/billing", tags=["billing"])

PERIOD_PATTERN = domain.PERIOD_PATTERN
CONFLICT: dict[int | str, dict[str, Any]] = {
    409: {"description": "another push of the tenant is running, or the period is closed"}
}


def _money(value: Decimal) -> str:
    return str(domain.money(value))


def _line_out(item: PreviewLine) -> PreviewLineOut:
    line, pushed, model = item.line, item.pushed, domain.model_of(item.rule)
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
        billed_quantity=str(line.billed),
        counted_seats=line.counted,
        device_category=model.device_category,
        included_seats=model.included_seats,
        minimum_quantity=model.minimum_quantity,
        billing_timing=model.billing_timing,
        price_override=line.overridden,
    )


def _client_out(company_id: str, items: list[PreviewLine]) -> ClientTotalOut:
    total = sum((item.line.total for item in items), Decimal(0))
    cost = sum((item.line.cost for item in items), Decimal(0))
    return ClientTotalOut(
        company_id=company_id,
        company_name=next((i.line.company_name for i in items if i.line.company_name), None),
        products=sorted({item.line.product for item in items}),
        agreement_ids=sorted({item.agreement_id for item in items if item.agreement_id}),
        total=_money(total),
        cost=_money(cost),
        margin=_money(total - cost),
    )


def _preview_out(preview: Preview) -> PreviewOut:
    """Lines, totals per product (sums of the rounded line figures) and overall."""
    per_product: dict[str, tuple[int, Decimal, Decimal]] = {}
    for item in preview.lines:
        line = item.line
        quantity, total, cost = per_product.get(line.product, (0, Decimal(0), Decimal(0)))
        per_product[line.product] = (quantity + line.quantity, total + line.total, cost + line.cost)
    per_client: dict[str, list[PreviewLine]] = {}
    for item in preview.lines:
        per_client.setdefault(item.line.company_id, []).append(item)
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
        clients=[_client_out(company_id, items) for company_id, items in sorted(per_client.items())],
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
        row += [line.billed_quantity, line.unit_price, line.unit_cost, line.total, line.cost, line.margin]
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
                console_source=row.console_source,
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
    columns = "period company_id company_name product rmm_count console_count console_source"
    writer.writerow(
        [*columns.split(), "psa_quantity", "billed_count", "cause", "cause_count", "ids_total", "ids"]
    )
    for row in body.rows:
        head: list[Any] = [body.period, row.company_id or "", row.company_name or "", row.product]
        head += [row.rmm_count, _blank(row.console_count), row.console_source or ""]
        head += [_blank(row.psa_quantity), row.billed_count]
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
    written, each difference with its causes and the ids behind them. A company no security console
    is mapped to takes its console count from the period's uploaded usage reports
    (`console_source`: `console`, `upload` or null). `Accept: text/csv` for a spreadsheet."""
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
    """Close the period. The first close freezes each billed line with its devices (see
    `/periods/{period}/lines`); closing again changes nothing."""
    try:
        row = await snapshots.close(session, who.tenant_id, period, actor=Actor.key(who.api_key_id))
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
    settings = await service.set_review_settings(
        session, who.tenant_id, body, actor=Actor.key(who.api_key_id)
    )
    configuration_changed(session, who, "billing_review", "update", who.tenant_id, body.model_fields_set)
    return settings


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
                psa_quantity=None if p.item.psa is None else p.item.psa.quantity,
                psa_finding=None if (found := p.item.psa_finding) is None else found.finding.value,
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


@router.post("/read-back", response_model=ProposalsOut)
async def read_back(body: ReadBackRequest, services: ServicesDep, who: Engineer) -> ProposalsOut:
    """Read every line of the period back from its PSA now (a push does it first on its own) and
    return the proposals after: a line changed, removed or made there by someone else waits for
    review with why. Writes nothing to the PSA."""
    await service.read_period_back(services.work, who.tenant_id, body.period)
    async with services.work.sessions() as session:
        proposals = await service.build_proposals(session, who.tenant_id, body.period)
    return _proposals_out(body.period, proposals)


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


PeriodPath = Path(pattern=PERIOD_PATTERN, description="YYYY-MM")


def _snapshot_line_out(row: Any, devices: int) -> SnapshotLineOut:
    return SnapshotLineOut(
        id=row.id,
        company_id=row.company_id,
        company_name=row.company_name,
        product=row.product,
        rule_id=row.rule_id,
        source=row.source,
        quantity=row.quantity,
        billed_quantity=str(snapshots.billed(row)),
        pushed_quantity=row.pushed_quantity,
        unit_price=str(row.unit_price),
        total=_money(row.unit_price * snapshots.billed(row)),
        devices=devices,
    )


def _device_out(device: trace.Counted) -> SnapshotDeviceOut:
    return SnapshotDeviceOut.model_validate(device, from_attributes=True)


async def _closed_or_404(session: Any, tenant_id: str, period: str) -> None:
    if not await snapshots.closed(session, tenant_id, period):
        raise NotFound("closed billing period")


@router.get("/periods/{period}/lines", response_model=list[SnapshotLineOut])
async def snapshot_lines(session: Session, who: Viewer, period: str = PeriodPath) -> list[SnapshotLineOut]:
    """The lines a closed period billed, as frozen at its close, with how many devices each counted.
    404 when the period is not closed."""
    await _closed_or_404(session, who.tenant_id, period)
    rows = await snapshots.lines(session, who.tenant_id, period)
    listed = await snapshots.devices(session, who.tenant_id, [row.id for row in rows])
    return [_snapshot_line_out(row, len(listed.get(row.id, []))) for row in rows]


@router.get(
    "/periods/{period}/lines/{line_id}/devices",
    response_model=LineDevicesOut,
    responses={200: {"content": {"text/csv": {"schema": {"type": "string"}}}}},
)
async def snapshot_line_devices(
    request: Request, session: Session, who: Viewer, line_id: str, period: str = PeriodPath
) -> LineDevicesOut | Response:
    """The devices that produced a closed line's count (endpoint or console agent row id, hostname,
    serial, first and last seen within the period). `Accept: text/csv` for a spreadsheet to show
    the client."""
    row = await snapshots.line(session, who.tenant_id, period, line_id)
    if row is None:
        raise NotFound("billing line")
    listed = (await snapshots.devices(session, who.tenant_id, [row.id])).get(row.id, [])
    body = LineDevicesOut(
        period=period,
        line=_snapshot_line_out(row, len(listed)),
        devices=[_device_out(device) for device in listed],
    )
    if "text/csv" in request.headers.get("accept", ""):
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow(
            [
                "period",
                "company_id",
                "product",
                "device_id",
                "hostname",
                "serial_number",
                "first_seen_at",
                "last_seen_at",
            ]
        )
        for device in body.devices:
            writer.writerow(
                [
                    period,
                    row.company_id,
                    row.product,
                    device.device_id,
                    device.hostname,
                    device.serial_number or "",
                    device.first_seen_at.isoformat(),
                    device.last_seen_at.isoformat(),
                ]
            )
        return Response(
            out.getvalue(),
            media_type="text/csv",
            headers={"Content-Disposition": f'attachment; filename="devices-{period}-{line_id}.csv"'},
        )
    return body


@router.get("/periods/{period}/changes", response_model=ChangesOut)
async def snapshot_changes(
    session: Session, who: Viewer, company_id: str = Query(min_length=1), period: str = PeriodPath
) -> ChangesOut:
    """Per product, the company's devices billed this closed period and not the closed period
    before it (added), and the other way round (removed). 404 when the period is not closed."""
    await _closed_or_404(session, who.tenant_id, period)
    found = await snapshots.changes(session, who.tenant_id, period, company_id)
    return ChangesOut(
        period=found.period,
        previous_period=found.previous_period,
        company_id=found.company_id,
        products=[
            ProductChangeOut(
                product=change.product,
                previous_count=change.previous_count,
                count=change.count,
                added=[_device_out(d) for d in change.added],
                removed=[_device_out(d) for d in change.removed],
            )
            for change in found.products
        ],
    )


@router.get(
    "/periods/{period}/statements/{company_id}",
    response_class=Response,
    responses={
        200: {
            "content": {
                "text/html": {"schema": {"type": "string"}},
                "application/pdf": {"schema": {"type": "string", "format": "binary"}},
            }
        }
    },
)
async def client_statement(
    request: Request,
    session: Session,
    who: Viewer,
    company_id: str,
    period: str = PeriodPath,
    format: str | None = Query(None, pattern="^(html|pdf)$"),
) -> Response:
    """One statement per client for a closed period: every product billed to its PSA company with
    quantity, unit price and total, and the grand total. HTML, or PDF with `Accept:
    application/pdf` or `?format=pdf`. 404 when the period is not closed or billed the company
    nothing."""
    document = await snapshots.statement_for(session, who.tenant_id, period, company_id)
    if document is None:
        raise NotFound("statement")
    return statement_response(document, format, request.headers.get("accept", ""))


def statement_response(document: statement.Statement, format: str | None, accept: str) -> Response:
    """PDF when asked by `format=pdf` or an `Accept` naming it (and no `format=html`), else HTML."""
    if format == "pdf" or (format is None and "application/pdf" in accept):
        name = f"statement-{document.period}-{document.company_id}.pdf"
        return Response(
            statement.pdf(document),
            media_type="application/pdf",
            headers={"Content-Disposition": f'inline; filename="{name}"'},
        )
    return Response(statement.html(document), media_type="text/html")


# -- vendors' usage reports for the reconciliation ---------------------------------------------------


def _profile_out(row: Any) -> UsageProfileOut:
    return UsageProfileOut(
        id=row.id, created_at=row.created_at, updated_at=row.updated_at, **uploads.profile_values(row)
    )


@router.get("/usage-profiles", response_model=list[UsageProfileOut])
async def list_usage_profiles(session: Session, who: Viewer) -> list[UsageProfileOut]:
    """The saved column profiles of vendors' usage reports, by name."""
    return [_profile_out(row) for row in await uploads.list_profiles(session, who.tenant_id)]


@router.post("/usage-profiles", response_model=UsageProfileOut, status_code=201)
async def create_usage_profile(body: UsageProfileIn, session: Session, who: Engineer) -> UsageProfileOut:
    """A profile: which columns hold the customer, the product and the seats, what the customer
    column holds, aliases for customers named differently in the PSA, the delimiter, the lines
    before the header, and the PSA connection the report reconciles against."""
    row = await uploads.create_profile(
        session, who.tenant_id, body.model_dump(), actor=Actor.key(who.api_key_id)
    )
    configuration_changed(session, who, "usage profile", "create", row.id, body.model_fields_set)
    return _profile_out(row)


@router.get("/usage-profiles/{profile_id}", response_model=UsageProfileOut)
async def get_usage_profile(profile_id: str, session: Session, who: Viewer) -> UsageProfileOut:
    return _profile_out(await uploads.get_profile(session, who.tenant_id, profile_id))


@router.put("/usage-profiles/{profile_id}", response_model=UsageProfileOut)
async def put_usage_profile(
    profile_id: str, body: UsageProfileIn, session: Session, who: Engineer
) -> UsageProfileOut:
    """Replaces the profile. Reports already uploaded keep how they were read: upload again."""
    row = await uploads.update_profile(
        session, who.tenant_id, profile_id, body.model_dump(), actor=Actor.key(who.api_key_id)
    )
    configuration_changed(session, who, "usage profile", "update", row.id, body.model_fields_set)
    return _profile_out(row)


@router.delete("/usage-profiles/{profile_id}", status_code=204)
async def delete_usage_profile(profile_id: str, session: Session, who: Engineer) -> Response:
    """The profile and the reports uploaded with it."""
    await uploads.delete_profile(session, who.tenant_id, profile_id, actor=Actor.key(who.api_key_id))
    configuration_changed(session, who, "usage profile", "delete", profile_id)
    return Response(status_code=204)


def _usage_row_out(row: Any) -> UsageRowOut:
    return UsageRowOut(
        customer=row.customer,
        product=row.product,
        quantity=row.quantity,
        company_id=row.company_id,
        company_name=row.company_name,
        lines=list(row.lines or []),
        reason=row.reason,
    )


def _upload_out(stored: uploads.Stored) -> UsageUploadOut:
    upload = stored.upload
    accepted = [_usage_row_out(r) for r in stored.rows if r.company_id is not None]
    return UsageUploadOut(
        id=upload.id,
        profile_id=upload.profile_id,
        psa_connection_id=upload.psa_connection_id,
        period=upload.period,
        filename=upload.filename,
        uploaded_at=upload.uploaded_at,
        rows_read=upload.rows_read,
        rows_accepted=sum(len(r.lines) for r in accepted),
        replaced=stored.replaced,
        accepted=accepted,
        unmatched=[_usage_row_out(r) for r in stored.rows if r.company_id is None],
        rejected=list(upload.rejected or []),
        warnings=list(upload.warnings or []),
    )


UPLOAD_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "text/csv": {
                "schema": {"type": "string"},
                "example": "Customer;SKU;Seats\nAcme Dental;EDR Complete;12\n",
            },
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "properties": {"file": {"type": "string", "format": "binary"}},
                    "required": ["file"],
                }
            },
        },
    }
}
UPLOAD_ERRORS: dict[int | str, dict[str, Any]] = {
    409: {"description": "another upload of the same period and profile is being stored"},
    413: {"description": "the file is larger than `USAGE_UPLOAD_MAX_BYTES`"},
    415: {"description": "the body is JSON or a urlencoded form, not a CSV file"},
}


@router.post(
    "/usage-uploads",
    response_model=UsageUploadOut,
    status_code=201,
    openapi_extra=UPLOAD_BODY,
    responses=UPLOAD_ERRORS,
)
async def upload_usage(
    request: Request,
    session: Session,
    services: ServicesDep,
    who: Engineer,
    period: str = Query(pattern=PERIOD_PATTERN, description="YYYY-MM"),
    profile: str = Query(min_length=1, max_length=32, description="the usage profile's id"),
) -> UsageUploadOut | JSONResponse:
    """A vendor's usage report for the period (the CSV as the body, `text/csv`, or as the `file`
    of a multipart form), read with the profile and stored; an upload for the same period and
    profile replaces the earlier one. Lists the customers matched to PSA companies, those matched
    to none, and the rows rejected (line, column, reason). 422 when no row can be read."""
    content_type = request.headers.get("content-type", "")
    kind = content_type.split(";")[0].strip().lower()
    if kind in ("application/json", "application/x-www-form-urlencoded"):
        return JSONResponse(
            {
                "error": "unsupported_media_type",
                "message": "post the CSV as text/csv or as a multipart form file",
            },
            status_code=415,
        )
    data = await request.body()
    filename: str | None = None
    if kind == "multipart/form-data":
        try:
            filename, data = multipart_file(content_type, data)
        except ValueError as exc:
            raise FieldError("file", str(exc)) from None
    stored = await uploads.upload(
        services, session, who.tenant_id, profile, period, data, filename, actor=Actor.key(who.api_key_id)
    )
    return _upload_out(stored)


@router.get("/usage-uploads", response_model=list[UsageUploadOut])
async def list_usage_uploads(
    session: Session,
    who: Viewer,
    period: str | None = Query(None, pattern=PERIOD_PATTERN, description="YYYY-MM; all periods without"),
) -> list[UsageUploadOut]:
    """The uploaded usage reports (of the period), each with its rows."""
    return [_upload_out(found) for found in await uploads.list_uploads(session, who.tenant_id, period)]


@router.get("/usage-uploads/{upload_id}", response_model=UsageUploadOut)
async def get_usage_upload(upload_id: str, session: Session, who: Viewer) -> UsageUploadOut:
    return _upload_out(await uploads.get_upload(session, who.tenant_id, upload_id))


@router.delete("/usage-uploads/{upload_id}", status_code=204)
async def delete_usage_upload(upload_id: str, session: Session, who: Engineer) -> Response:
    """The report and its rows: the reconciliation no longer counts them."""
    await uploads.delete_upload(session, who.tenant_id, upload_id, actor=Actor.key(who.api_key_id))
    return Response(status_code=204)
