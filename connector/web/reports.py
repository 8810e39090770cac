"""The dashboard's client security report: the same page and PDF as `/api/v1/reports`, under the
dashboard's sign-in (`?period=` defaults to this month, `?format=pdf` downloads it)."""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi import APIRouter
from fastapi.responses import Response

from connector.api.deps import Session
from connector.infra.errors import FieldError, NotFound
from connector.reports import service
from connector.reports.api import report_response
from connector.web.auth import User, WebError

router = APIRouter(include_in_schema=False)


@router.get("/reports/clients/{company_id}")
async def client_report(
    session: Session, user: User, company_id: str, period: str | None = None, format: str | None = None
) -> Response:
    period = period or datetime.now(UTC).strftime("%Y-%m")
    try:
        report = await service.client_report(session, user.principal.tenant_id, company_id, period)
    except NotFound as exc:
        raise WebError(404, "No client of this tenant is mapped to this PSA company.") from exc
    except FieldError as exc:
        raise WebError(
            422, f"The period {exc.errors[0]['message']}: give a month as YYYY-MM, not in the future."
        ) from exc
    return report_response(report, format if format in ("html", "pdf") else None, "")
