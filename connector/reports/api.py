"""`/api/v1/reports`: a client's monthly security report, as HTML, PDF or JSON."""

from __future__ import annotations

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse, Response

from connector.api.deps import Session, Viewer
from connector.reports import document, service
from connector.reports.domain import ClientReport
from connector.reports.schemas import ClientReportOut, report_out

router = APIRouter(prefix="/api/v1/reports", tags=["reports"])


@router.get(
    "/clients/{company_id}",
    response_class=Response,
    responses={
        200: {
            "model": ClientReportOut,
            "content": {
                "text/html": {"schema": {"type": "string"}},
                "application/pdf": {"schema": {"type": "string", "format": "binary"}},
            },
        }
    },
)
async def client_report(
    request: Request,
    session: Session,
    who: Viewer,
    company_id: str,
    period: str = Query(description="YYYY-MM (UTC)"),
    format: str | None = Query(None, pattern="^(html|pdf|json)$"),
) -> Response:
    """One PSA company's month: the protected share per day, problems opened and resolved by kind,
    threats, and its devices at the month's end (protected / not protected / unknown, and console
    agent coverage where a security console covers it). HTML; PDF with `Accept: application/pdf`
    or `?format=pdf`; JSON with `?format=json`. 404 when no client of the tenant is mapped to the
    company; 422 (`period`) for a malformed period or one not yet begun."""
    report = await service.client_report(session, who.tenant_id, company_id, period)
    return report_response(report, format, request.headers.get("accept", ""))


def report_response(report: ClientReport, format: str | None, accept: str) -> Response:
    """JSON with `format=json`; PDF with `format=pdf` or an `Accept` naming it (no `format`); else HTML."""
    if format == "json":
        return JSONResponse(report_out(report).model_dump(mode="json"))
    if format == "pdf" or (format is None and "application/pdf" in accept):
        name = f"security-report-{report.period}-{report.company_id}.pdf"
        return Response(
            document.pdf(report),
            media_type="application/pdf",
            headers={"Content-Disposition": f'inline; filename="{name}"'},
        )
    return Response(document.html(report), media_type="text/html")
