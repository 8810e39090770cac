"""`/api/v1/billing`: preview a period's lines (JSON or CSV), push them into the PSA, close a period."""

from __future__ import annotations

import csv
import io
from decimal import Decimal
from typing import Any

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import JSONResponse, Response

from connector.api.deps import Engineer, ServicesDep, Session, Viewer
from connector.billing import domain
from connector.billing.schemas import PushRequest
from connector.billing.service import PeriodClosed, Preview, PushRunning, build_preview, close_period, push
from connector.infra.errors import FieldError

router = APIRouter(prefix="/api/v1/billing", tags=["billing"])

PERIOD_PATTERN = domain.PERIOD_PATTERN


def _money(value: Decimal) -> str:
    return str(domain.money(value))


def _preview_json(preview: Preview) -> dict[str, Any]:
    lines = []
    per_product: dict[str, dict[str, Decimal | int]] = {}
    for item in preview.lines:
        line = item.line
        lines.append(
            {
                "company_id": line.company_id,
                "company_name": line.company_name,
                "product": line.product,
                "rule_id": line.rule_id,
                "rmm_clients": item.clients,
                "quantity": line.quantity,
                "unit_price": str(line.unit_price),
                "unit_cost": str(line.unit_cost),
                "total": _money(line.total),
                "cost": _money(line.cost),
                "margin": _money(line.margin),
                "pushed": None
                if item.pushed is None
                else {
                    "period": item.pushed_period,
                    "quantity": item.pushed.quantity,
                    "unit_price": str(item.pushed.unit_price),
                    "unit_cost": str(item.pushed.unit_cost),
                    "line_id": item.pushed.line_id,
                },
                "action": item.action,
            }
        )
        totals = per_product.setdefault(
            line.product, {"quantity": 0, "total": Decimal(0), "cost": Decimal(0)}
        )
        totals["quantity"] = int(totals["quantity"]) + line.quantity
        totals["total"] = Decimal(totals["total"]) + line.total
        totals["cost"] = Decimal(totals["cost"]) + line.cost
    overall_total = sum((Decimal(t["total"]) for t in per_product.values()), Decimal(0))
    overall_cost = sum((Decimal(t["cost"]) for t in per_product.values()), Decimal(0))
    return {
        "period": preview.period,
        "closed": preview.closed,
        "lines": lines,
        "products": [
            {
                "product": product,
                "quantity": t["quantity"],
                "total": _money(Decimal(t["total"])),
                "cost": _money(Decimal(t["cost"])),
                "margin": _money(Decimal(t["total"]) - Decimal(t["cost"])),
            }
            for product, t in sorted(per_product.items())
        ],
        "total": _money(overall_total),
        "cost": _money(overall_cost),
        "margin": _money(overall_total - overall_cost),
        "unmapped_clients": preview.unmapped_clients,
    }


def _preview_csv(body: dict[str, Any]) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    columns = "period company_id company_name product quantity unit_price unit_cost total cost margin"
    writer.writerow([*columns.split(), "pushed_quantity", "action"])
    for line in body["lines"]:
        pushed = line["pushed"] or {}
        row = [body["period"], line["company_id"], line["company_name"] or "", line["product"]]
        row += [line[k] for k in ("quantity", "unit_price", "unit_cost", "total", "cost", "margin")]
        writer.writerow([*row, pushed.get("quantity", ""), line["action"]])
    writer.writerow(
        [body["period"], "", "TOTAL", "", "", "", "", body["total"], body["cost"], body["margin"], "", ""]
    )
    return out.getvalue()


@router.get("/preview")
async def preview_period(
    request: Request,
    session: Session,
    who: Viewer,
    period: str = Query(pattern=PERIOD_PATTERN, description="YYYY-MM"),
) -> Response:
    """Lines per PSA company × product with quantity, unit price, unit cost, total, margin and what
    is already pushed; totals per product and overall. `Accept: text/csv` for a spreadsheet."""
    body = _preview_json(await build_preview(session, who.tenant_id, period))
    if "text/csv" in request.headers.get("accept", ""):
        return Response(
            _preview_csv(body),
            media_type="text/csv",
            headers={"Content-Disposition": f'attachment; filename="billing-{period}.csv"'},
        )
    return JSONResponse(body)


@router.post("/push")
async def push_period(body: PushRequest, services: ServicesDep, who: Engineer) -> JSONResponse:
    """Reconcile the period's lines into the PSA: create missing lines once, update changed ones,
    leave equal ones untouched. `dry_run` reports the plan with no PSA calls. 409 while another push
    of the tenant runs (from the API, any replica, or `connector sync --billing`)."""
    try:  # long work (PSA calls, one per changed line): statement timeouts of background work
        _, results = await push(
            services.work, who.tenant_id, body.period, dry_run=body.dry_run, override=body.override
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
    counts: dict[str, int] = {}
    for result in results:
        counts[result.action] = counts.get(result.action, 0) + 1
    return JSONResponse(
        {
            "period": body.period,
            "dry_run": body.dry_run,
            "summary": counts,
            "lines": [
                {
                    "company_id": r.company_id,
                    "product": r.product,
                    "quantity": r.quantity,
                    "action": r.action,
                    "line_id": r.line_id,
                    "error": r.error,
                }
                for r in results
            ],
        }
    )


@router.post("/periods/{period}/close")
async def close(
    session: Session, who: Engineer, period: str = Path(pattern=PERIOD_PATTERN, description="YYYY-MM")
) -> dict[str, Any]:
    try:
        row = await close_period(session, who.tenant_id, period)
    except ValueError as exc:
        raise FieldError("period", str(exc)) from None
    return {"period": row.period, "closed": True}
