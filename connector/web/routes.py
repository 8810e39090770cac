"""The server-rendered security dashboard: fleet overview, open problems, syncs and deliveries,
billing preview and client mappings. Pages read through the same feature service functions as the
JSON API (never its route functions), under the same roles: viewers read; replaying a delivery and
accepting a mapping need the engineer role."""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from urllib.parse import quote, urlencode

from fastapi import APIRouter, FastAPI, Query, Request
from fastapi.responses import JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from adapters.base import EndpointStatus
from adapters.errors import AdapterError
from connector.alerts import service as alerts
from connector.alerts.schemas import ProblemOut
from connector.api import errors as api_errors
from connector.api.deps import ServicesDep, Session
from connector.audit import service as audit
from connector.audit.domain import KINDS, Actor, Category
from connector.billing import domain as domain_billing
from connector.billing import service as billing_service
from connector.billing import snapshots
from connector.billing.api import statement_response
from connector.billing.schemas import DecisionIn
from connector.billing.service import PeriodClosed, PushRunning, build_preview, build_reconciliation
from connector.connections.service import list_connections
from connector.fleet import consoles, coverage
from connector.fleet import stats as fleet_stats
from connector.fleet.endpoints import to_status
from connector.infra.errors import Conflict, FieldError, NotFound
from connector.infra.logs import get_logger
from connector.infra.security.apikeys import authenticate
from connector.maintenance import service as maintenance
from connector.maintenance.schemas import WindowIn
from connector.notifications import service as notifications
from connector.rules import service as rules
from connector.rules.schemas import SuggestionOut
from connector.statuses import DeliveryStatus, ProblemStatus, Routing, SyncStatus
from connector.sync import service as sync
from connector.tenants.service import list_api_keys
from connector.web import drill, settings, setup, syncs
from connector.web import overview as overview_page
from connector.web.auth import (
    LOGIN_CSRF_COOKIE,
    SignInRequired,
    User,
    WebError,
    WebUser,
    check_csrf,
    clear_session,
    current_user,
    read_form,
    require_engineer,
    safe_next,
    seal,
    set_login_csrf,
    set_session,
)
from connector.web.render import HEADERS, STATIC, STATIC_URL, redirect, render

log = get_logger("connector.web")
router = APIRouter(include_in_schema=False)

PROBLEM_LIMIT = 500
PERIOD = domain_billing.PERIOD
NOTICES = {
    "replayed": "The delivery is queued for processing again.",
    "mapped": "Mapping saved; the client's waiting problems are being routed.",
    "window_added": "Maintenance window saved.",
    "window_deleted": "Maintenance window deleted.",
    "window_saved": "Maintenance window saved.",
    "rejected": "Rejected: the pair is not suggested again (undo it under rejected suggestions).",
    "tested": "Test notification queued; its outcome shows below.",
    "decided": "Decision recorded.",
}


# -- sign-in --------------------------------------------------------------------------------------


def _login_page(request: Request, next_path: str, *, error: str | None = None, status: int = 200) -> Response:
    token = secrets.token_urlsafe(32)
    response = render(request, "login.html", None, status=status, next=next_path, csrf=token, error=error)
    set_login_csrf(response, request, token)
    return response


@router.get("/login")
async def login_form(
    request: Request, services: ServicesDep, next_path: str | None = Query(None, alias="next")
) -> Response:
    if await current_user(request, services) is not None:
        return redirect(safe_next(next_path))
    return _login_page(request, safe_next(next_path))


@router.post("/login")
async def login(request: Request, services: ServicesDep) -> Response:
    form = await read_form(request)
    check_csrf(form, request.cookies.get(LOGIN_CSRF_COOKIE))
    key = form.get("api_key", "").strip()
    next_path = safe_next(form.get("next"))
    row = None
    if key:
        async with services.sessions() as session, session.begin():
            row = await authenticate(session, key)
    if row is None:
        log.info("dashboard sign-in refused")
        return _login_page(request, next_path, error="That API key is not valid or was revoked.", status=401)
    value, _ = seal(services, key)
    response = redirect(next_path)
    set_session(response, request, value)
    log.info("dashboard sign-in", api_key_id=row.id, tenant_id=row.tenant_id, role=row.role)
    return response


@router.post("/logout")
async def logout(request: Request, services: ServicesDep) -> Response:
    user = await current_user(request, services)
    if user is not None:
        check_csrf(await read_form(request), user.csrf)
        log.info("dashboard sign-out", key_id=user.principal.api_key_id)
    response = redirect("/login")
    clear_session(response, request)
    return response


# -- shared reads ---------------------------------------------------------------------------------


def _client_names(clients: list[fleet_stats.ClientCounts]) -> dict[tuple[str, str], str]:
    return {(c.rmm_connection_id, c.client_id): c.client_name or c.client_id for c in clients}


async def _open_problems(session: AsyncSession, tenant_id: str, *, routing: str | None) -> list[ProblemOut]:
    """Oldest first: the problems waiting longest lead the page."""
    rows = await alerts.list_problems(
        session, tenant_id, state=ProblemStatus.OPEN, routing=routing, limit=PROBLEM_LIMIT
    )
    return sorted((ProblemOut.of(problem, link) for problem, link in rows), key=lambda p: p.first_seen_at)


# -- problems -------------------------------------------------------------------------------------


@router.get("/problems")
async def problems_page(
    request: Request,
    session: Session,
    user: User,
    routing: str | None = Query(None, pattern="^(pending|ticketed|unmapped|no_rule)$"),
) -> Response:
    tenant_id = user.principal.tenant_id
    _, clients = await fleet_stats.summary(session, tenant_id)
    problems = await _open_problems(session, tenant_id, routing=routing)
    unmapped = await alerts.count_problems(
        session, tenant_id, state=ProblemStatus.OPEN, routing=Routing.UNMAPPED
    )
    return render(
        request,
        "problems.html",
        user,
        problems=problems,
        truncated=len(problems) >= PROBLEM_LIMIT,
        routing=routing,
        names=_client_names(clients),
        unmapped_count=unmapped,
        now=datetime.now(UTC),
    )


@router.get("/problems/{problem_id}")
async def problem_detail(problem_id: str, request: Request, session: Session, user: User) -> Response:
    try:
        found = await alerts.problem_context(session, user.principal.tenant_id, problem_id)
    except NotFound:
        raise WebError(404, "There is no such problem.") from None
    effective: EndpointStatus | None = None
    sources: dict[str, str] = {}
    agent = None
    if found.endpoint is not None:
        view = await consoles.endpoint_view(session, found.endpoint)
        effective, sources = coverage.effective_status(to_status(found.endpoint), view)
        agent = await consoles.matched_agent(session, found.endpoint)
    return render(
        request,
        "problem.html",
        user,
        problem=found.problem,
        link=found.link,
        endpoint=found.endpoint,
        effective=effective,
        sources=sources,
        agent=agent,
        mapping=found.mapping,
        connection=found.connection,
        client_name=(found.endpoint.client_name if found.endpoint is not None else None)
        or found.problem.client_id,
    )


# -- syncs and deliveries -------------------------------------------------------------------------


@router.get("/activity")
async def activity(request: Request, session: Session, user: User, done: str | None = None) -> Response:
    tenant_id = user.principal.tenant_id
    connections = await list_connections(session, tenant_id)
    last_runs = []
    for connection in connections:
        if connection.role != "rmm":
            continue
        runs = await sync.list_runs(session, tenant_id, connection_id=connection.id, limit=1)
        last_runs.append((connection, runs[0] if runs else None))
    failed_runs = await sync.list_runs(session, tenant_id, status=SyncStatus.FAILED, limit=20)
    deliveries = []
    for status in (DeliveryStatus.DEAD, DeliveryStatus.FAILED):
        deliveries += await alerts.list_deliveries(session, tenant_id, status=status, limit=200)
    deliveries.sort(key=lambda d: d.received_at, reverse=True)
    return render(
        request,
        "activity.html",
        user,
        last_runs=last_runs,
        failed_runs=failed_runs,
        deliveries=deliveries,
        names={c.id: c.name for c in connections},
        notice=NOTICES.get(done or ""),
    )


@router.post("/deliveries/{delivery_id}/replay")
async def replay(delivery_id: str, request: Request, session: Session, user: User) -> Response:
    check_csrf(await read_form(request), user.csrf)
    require_engineer(user)
    try:
        await alerts.replay_delivery(session, user.principal.tenant_id, delivery_id)
    except NotFound:
        raise WebError(404, "There is no such delivery.") from None
    except FieldError as exc:
        raise WebError(422, exc.errors[0]["message"]) from None
    log.info("dashboard replay", delivery_id=delivery_id, key_id=user.principal.api_key_id)
    return redirect("/activity?done=replayed")


# -- audit ----------------------------------------------------------------------------------------

AUDIT_PAGE = 100
AUDIT_ENTITIES = sorted({kind.split(".")[0] for kind in KINDS})


@router.get("/audit")
async def audit_page(
    request: Request,
    session: Session,
    user: User,
    category: str | None = Query(None, pattern="^(config|psa|rmm)?$"),
    kind: str | None = Query(None, max_length=64),
    connection: str | None = Query(None, max_length=32),
    before: int | None = Query(None, ge=1, le=2**62),
) -> Response:
    """Configuration changes and PSA/RMM writes, newest first, a page at a time."""
    tenant_id = user.principal.tenant_id
    if kind and kind not in KINDS and kind not in AUDIT_ENTITIES:
        raise WebError(422, "There is no such kind of audit entry.")
    filters = audit.AuditFilter(
        kind=kind or None,
        category=Category(category) if category else None,
        connection_id=connection or None,
    )
    events, next_before = await audit.list_events(
        session, tenant_id, filters, limit=AUDIT_PAGE, before=before
    )
    connections = await list_connections(session, tenant_id)
    keep = {"category": category or "", "kind": kind or "", "connection": connection or ""}
    older = (
        urlencode({**{k: v for k, v in keep.items() if v}, "before": next_before}) if next_before else None
    )
    return render(
        request,
        "audit.html",
        user,
        events=events,
        older=older,
        entities=AUDIT_ENTITIES,
        connections=connections,
        names={c.id: c.name for c in connections},
        chosen=keep,
    )


# -- billing --------------------------------------------------------------------------------------


@router.get("/billing")
async def billing(request: Request, session: Session, user: User, period: str | None = None) -> Response:
    current = datetime.now(UTC).strftime("%Y-%m")
    error = None
    if period is None or not PERIOD.match(period):
        error = None if period is None else "The period must look like YYYY-MM; showing this month."
        period = current
    preview = await build_preview(session, user.principal.tenant_id, period)
    products: dict[str, dict[str, Any]] = {}
    for item in preview.lines:
        line = item.line
        totals = products.setdefault(line.product, {"quantity": 0, "total": Decimal(0), "cost": Decimal(0)})
        totals["quantity"] += line.quantity
        totals["total"] += line.total
        totals["cost"] += line.cost
    total = sum((t["total"] for t in products.values()), Decimal(0))
    cost = sum((t["cost"] for t in products.values()), Decimal(0))
    _, clients = await fleet_stats.summary(session, user.principal.tenant_id)
    return render(
        request,
        "billing.html",
        user,
        money_in=await overview_page.money_in(session, user.principal.tenant_id),
        unbilled=await overview_page.unbilled(session, user.principal.tenant_id, preview, clients),
        billing_rules_help=overview_page.BILLING_RULES_HELP,
        preview=preview,
        period=period,
        error=error,
        products=sorted(products.items()),
        total=total,
        cost=cost,
        names=_client_names(clients),
        statements=await snapshots.billed_companies(session, user.principal.tenant_id, period)
        if preview.closed
        else [],
    )


@router.get("/billing/statements/{period}/{company_id}")
async def billing_statement(
    request: Request, session: Session, user: User, period: str, company_id: str, format: str | None = None
) -> Response:
    """A client's statement of a closed period, as the API serves it (`?format=pdf` for the PDF)."""
    document = None
    if PERIOD.match(period):
        document = await snapshots.statement_for(session, user.principal.tenant_id, period, company_id)
    if document is None:
        raise WebError(404, "There is no statement for this client and period: is the period closed?")
    return statement_response(document, format if format in ("html", "pdf") else None, "")


CAUSE_LABELS = {
    "rmm_device_without_product": "RMM devices without the product",
    "console_agent_without_rmm_device": "Console agents with no RMM device",
    "unmapped_client": "Clients not mapped",
    "agreement_line_missing": "New revenue found: no agreement line",
    "psa_quantity_changed": "PSA line changed outside connector",
    "unlinked_agreement_line": "Agreement line connector did not create",
    "count_changed_since_push": "Count changed since the last push",
    "retired_client_billed": "Retired client still billed",
    "uploaded_seats_without_rmm_device": "Uploaded usage report counts more than the RMM",
    "upload_customer_unmatched": "Uploaded usage report customers not matched",
}


@router.get("/billing/reconciliation")
async def billing_reconciliation(
    request: Request, session: Session, user: User, period: str | None = None
) -> Response:
    """Read-only: the three numbers per company and product and what explains their differences."""
    error = None
    if period is None or not PERIOD.match(period):
        error = None if period is None else "The period must look like YYYY-MM; showing this month."
        period = datetime.now(UTC).strftime("%Y-%m")
    result = await build_reconciliation(session, user.principal.tenant_id, period)
    return render(
        request,
        "reconciliation.html",
        user,
        rows=result.rows,
        period=period,
        error=error,
        labels=CAUSE_LABELS,
    )


# -- billing review -------------------------------------------------------------------------------

REVIEW_STATUSES = {
    "awaiting_review": "Waits for review",
    "held": "Held by a guard",
    "auto_approved": "Approved on its own",
    "approved": "Approved",
    "adjusted": "Adjusted",
    "dismissed": "Dismissed",
}
WAITING = ("awaiting_review", "held")
DECISION_ACTIONS = ("approve", "adjust", "dismiss")
BULK_ACTIONS = ("approve", "dismiss")
BULK_LIMIT = 500
"""Lines one bulk form may decide on (each is one checkbox field)."""
PUSH_ERRORS = {
    "push_running": "Another billing push of this tenant is running; try again when it has finished.",
    "push_closed": "The period is closed: nothing was pushed. Reopening a closed period is done "
    "from the API (push with override).",
}


def _period_or_current(period: str | None) -> tuple[str, str | None]:
    if period is None or not PERIOD.match(period):
        error = None if period is None else "The period must look like YYYY-MM; showing this month."
        return datetime.now(UTC).strftime("%Y-%m"), error
    return period, None


def _count(value: str | None) -> int | None:
    return int(value) if value and value.isdigit() and len(value) <= 7 else None


def _push_notice(
    done: str | None, written: str | None, waiting: str | None, failed: str | None
) -> str | None:
    if done == "decided_many" and (n := _count(written)) is not None:
        return f"Decisions recorded for {n} line(s)."
    if done != "pushed":
        return NOTICES.get(done or "")
    text = f"Pushed: {_count(written) or 0} line(s) written to the PSA"
    if _count(failed):
        text += f", {_count(failed)} failed (see the audit log)"
    return text + f"; {_count(waiting) or 0} line(s) still wait."


async def _review_page(
    request: Request,
    session: Session,
    user: WebUser,
    period: str,
    *,
    error: str | None = None,
    notice: str | None = None,
    invalid: tuple[str, str] | None = None,
    form: dict[str, str] | None = None,
    status: int = 200,
) -> Response:
    tenant_id = user.principal.tenant_id
    proposals = await billing_service.build_proposals(session, tenant_id, period)
    summary = {status_: 0 for status_ in REVIEW_STATUSES}
    for proposal in proposals:
        summary[proposal.status] = summary.get(proposal.status, 0) + 1
    # waiting lines first, then the rest in the preview's order
    proposals.sort(key=lambda p: p.status not in WAITING)
    keys = {key.id: key.name for key in await list_api_keys(session, tenant_id)}
    return render(
        request,
        "review.html",
        user,
        status=status,
        period=period,
        proposals=proposals,
        summary=summary,
        waiting=sum(summary[s] for s in WAITING),
        writable=sum(1 for p in proposals if p.write_quantity is not None),
        statuses=REVIEW_STATUSES,
        settings=await billing_service.get_review_settings(session, tenant_id),
        keys=keys,
        error=error,
        notice=notice,
        invalid=invalid,
        form=form or {},
        bulk_limit=BULK_LIMIT,
        past={"approve": "approved", "adjust": "adjusted", "dismiss": "dismissed"},
    )


@router.get("/billing/review")
async def billing_review(
    request: Request,
    session: Session,
    user: User,
    period: str | None = None,
    done: str | None = None,
    written: str | None = None,
    waiting: str | None = None,
    failed: str | None = None,
) -> Response:
    """The period's proposals (what a push would create or change), the decisions on them, and for
    engineers the forms that decide and push."""
    period, error = _period_or_current(period)
    error = error or PUSH_ERRORS.get(done or "")
    notice = _push_notice(done, written, waiting, failed)
    return await _review_page(request, session, user, period, error=error, notice=notice)


def _whole(value: str | None) -> int | str | None:
    """A form's whole number, or the text as typed (pydantic then names the field); blank is None."""
    text = (value or "").strip()
    if not text:
        return None
    try:
        return int(text)
    except ValueError:
        return text


def _decision_in(form: dict[str, str]) -> DecisionIn:
    """One decision from a row's form, validated by the API's own schema."""
    action = form.get("action", "")
    return DecisionIn.model_validate(
        {
            "rule_id": form.get("rule_id", ""),
            "company_id": form.get("company_id", ""),
            "proposed_quantity": _whole(form.get("proposed_quantity")),
            "action": action,
            "quantity": _whole(form.get("quantity")) if action == "adjust" else None,
            "reason": form.get("reason") or None,
        }
    )


def _messages(exc: ValidationError | FieldError) -> str:
    """`field: message` for each problem; the API's `decisions[n].` prefix is the form's field."""
    if isinstance(exc, FieldError):
        found = [(e["field"], e["message"]) for e in exc.errors]
    else:
        found = [
            (".".join(str(part) for part in e["loc"]) or "form", str(e["msg"]).removeprefix("Value error, "))
            for e in exc.errors()
        ]
    return "; ".join(f"{field.split('.')[-1]}: {message}" for field, message in found)


async def _decide(
    session: Session, user: WebUser, period: str, decisions: list[DecisionIn]
) -> list[billing_service.Proposal]:
    return await billing_service.decide(
        session,
        user.principal.tenant_id,
        period,
        [billing_service.DecisionIn(**d.model_dump()) for d in decisions],
        actor=Actor.key(user.principal.api_key_id, dashboard=True),
    )


def _review_url(period: str, **query: str | int) -> str:
    return "/billing/review?" + urlencode({"period": period, **query})


@router.post("/billing/review/decisions")
async def decide_one(request: Request, session: Session, user: User) -> Response:
    """Approve, dismiss or adjust one proposal (a row's form); a bad field shows on the page."""
    form = await read_form(request)
    check_csrf(form, user.csrf)
    require_engineer(user)
    period, error = _period_or_current(form.get("period"))
    if error:
        raise WebError(422, "period: must look like YYYY-MM")
    row = (form.get("rule_id", ""), form.get("company_id", ""))
    try:
        if form.get("action") not in DECISION_ACTIONS:
            raise FieldError("action", "must be approve, adjust or dismiss")
        decision = _decision_in(form)
        await _decide(session, user, period, [decision])
    except (ValidationError, FieldError) as exc:
        message = f"Not recorded: {_messages(exc)}"
        return await _review_page(
            request, session, user, period, error=message, invalid=row, form=form, status=422
        )
    log.info("dashboard billing decision", action=decision.action, key_id=user.principal.api_key_id)
    return redirect(_review_url(period, done="decided"))


@router.post("/billing/review/bulk")
async def decide_many(request: Request, session: Session, user: User) -> Response:
    """Approve or dismiss every ticked line at once (`pick-N` = `rule_id:proposed:company_id`)."""
    form = await read_form(request, max_fields=BULK_LIMIT + 4, max_bytes=BULK_LIMIT * 200)
    check_csrf(form, user.csrf)
    require_engineer(user)
    period, error = _period_or_current(form.get("period"))
    if error:
        raise WebError(422, "period: must look like YYYY-MM")
    action = form.get("action", "")
    picks = [value for name, value in form.items() if name.startswith("pick-") and value]
    try:
        if action not in BULK_ACTIONS:
            raise FieldError("action", "must be approve or dismiss")
        if not picks:
            raise FieldError("pick", "tick at least one line")
        decisions = []
        for value in picks:
            rule_id, proposed, company_id = [*value.split(":", 2), "", ""][:3]
            decisions.append(
                _decision_in(
                    {
                        "rule_id": rule_id,
                        "company_id": company_id,
                        "proposed_quantity": proposed,
                        "action": action,
                        "reason": form.get("reason", ""),
                    }
                )
            )
        await _decide(session, user, period, decisions)
    except (ValidationError, FieldError) as exc:
        message = f"Nothing recorded: {_messages(exc)}"
        return await _review_page(request, session, user, period, error=message, status=422)
    log.info("dashboard billing decisions", action=action, lines=len(picks), key_id=user.principal.api_key_id)
    return redirect(_review_url(period, done="decided_many", written=len(picks)))


@router.post("/billing/review/push")
async def push_reviewed(request: Request, services: ServicesDep, user: User) -> Response:
    """Push the period: unchanged lines and approved proposals are written, the rest keep waiting."""
    form = await read_form(request)
    check_csrf(form, user.csrf)
    require_engineer(user)
    period, error = _period_or_current(form.get("period"))
    if error:
        raise WebError(422, "period: must look like YYYY-MM")
    try:
        _, results = await billing_service.push(
            services.work,
            user.principal.tenant_id,
            period,
            trigger="dashboard",
            actor=Actor.key(user.principal.api_key_id, dashboard=True),
        )
    except PushRunning:
        return redirect(_review_url(period, done="push_running"))
    except PeriodClosed:
        return redirect(_review_url(period, done="push_closed"))
    written = sum(1 for r in results if r.action in ("created", "updated"))
    waiting = sum(1 for r in results if r.action == "waiting")
    failed = sum(1 for r in results if r.action == "error")
    log.info("dashboard billing push", period=period, written=written, key_id=user.principal.api_key_id)
    return redirect(_review_url(period, done="pushed", written=written, waiting=waiting, failed=failed))


# -- mappings -------------------------------------------------------------------------------------


@router.get("/mappings")
async def mappings(
    request: Request,
    services: ServicesDep,
    session: Session,
    user: User,
    rmm: str | None = None,
    psa: str | None = None,
    done: str | None = None,
) -> Response:
    who = user.principal
    connections = await list_connections(session, who.tenant_id)
    rmms = [c for c in connections if c.role == "rmm"]
    psas = [c for c in connections if c.role == "psa"]
    rmm_row = next((c for c in rmms if c.id == rmm), next((c for c in rmms if c.enabled), None))
    psa_row = next((c for c in psas if c.id == psa), next((c for c in psas if c.enabled), None))
    suggestions: list[SuggestionOut] = []
    error = None
    if rmm_row is not None and psa_row is not None:
        try:
            found = await rules.suggest_mappings(services, session, who.tenant_id, rmm_row.id, psa_row.id)
            suggestions = [SuggestionOut.of(s) for s in found]
        except (AdapterError, FieldError) as exc:
            error = f"Could not read clients and companies from the vendors: {exc}"
    existing = await rules.list_rows(rules.CLIENT_MAPPINGS, session, who.tenant_id, limit=5000, offset=0)
    return render(
        request,
        "mappings.html",
        user,
        rmms=rmms,
        psas=psas,
        rmm_row=rmm_row,
        psa_row=psa_row,
        suggestions=suggestions,
        error=error,
        existing=existing,
        names={c.id: c.name for c in connections},
        notice=NOTICES.get(done or ""),
        **await setup.manual_mapping_context(services, session, who.tenant_id, rmm_row, psa_row),
    )


MAPPING_FIELDS = (
    "rmm_connection_id",
    "rmm_client_id",
    "rmm_client_name",
    "psa_connection_id",
    "psa_company_id",
    "psa_company_name",
)


@router.post("/mappings")
async def accept_mapping(request: Request, services: ServicesDep, session: Session, user: User) -> Response:
    form = await read_form(request)
    check_csrf(form, user.csrf)
    require_engineer(user)
    tenant_id = user.principal.tenant_id
    body = {name: form.get(name) or None for name in MAPPING_FIELDS}
    try:
        # the company was offered from the PSA's own listing moments ago: when the PSA cannot be
        # read again now, the mapping is saved marked unchecked rather than refused
        checking = rules.PsaChecking(services, allow_unchecked=True)
        row = await rules.create(
            rules.CLIENT_MAPPINGS,
            session,
            tenant_id,
            body,
            checking,
            actor=Actor.key(user.principal.api_key_id, dashboard=True),
        )
    except FieldError as exc:
        raise WebError(422, "; ".join(f"{e['field']}: {e['message']}" for e in exc.errors)) from None
    except Conflict as exc:
        raise WebError(409, str(exc)) from None
    await rules.reroute_after_change(session, tenant_id, row)
    log.info("dashboard mapping", mapping_id=row.id, key_id=user.principal.api_key_id)
    query = urlencode({"rmm": row.rmm_connection_id, "psa": row.psa_connection_id, "done": "mapped"})
    return redirect(f"/mappings?{query}")


# -- maintenance windows and notifications -------------------------------------------------------

WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")


@router.get("/maintenance")
async def maintenance_page(
    request: Request, session: Session, user: User, done: str | None = None
) -> Response:
    tenant_id = user.principal.tenant_id
    now = datetime.now(UTC)
    windows = [
        maintenance.out(row, now)
        for row in await maintenance.list_rows(session, tenant_id, limit=500, offset=0)
    ]
    connections = await list_connections(session, tenant_id)
    channels = [notifications.out(row) for row in await notifications.list_channels(session, tenant_id)]
    sent = await notifications.list_notifications(session, tenant_id, limit=50, offset=0)
    return render(
        request,
        "maintenance.html",
        user,
        windows=windows,
        rmms=[c for c in connections if c.role == "rmm"],
        names={c.id: c.name for c in connections},
        channels=channels,
        channel_names={c.id: c.name for c in channels},
        sent=sent,
        weekdays=WEEKDAYS,
        notice=NOTICES.get(done or ""),
    )


@router.post("/maintenance")
async def add_window(request: Request, session: Session, user: User) -> Response:
    form = await read_form(request)
    check_csrf(form, user.csrf)
    require_engineer(user)
    kind = form.get("kind") or "once"
    body: dict[str, Any] = {
        "name": form.get("name") or "",
        "timezone": form.get("timezone") or "",
        "kind": kind,
        "rmm_connection_id": form.get("rmm_connection_id") or None,
        "client_id": form.get("client_id") or None,
    }
    if kind == "weekly":
        body |= {
            "weekdays": [i for i in range(7) if form.get(f"day{i}")],
            "start_time": form.get("start_time") or None,
            "duration_minutes": int(form.get("duration_minutes") or 0),
        }
    else:
        body |= {"start_local": form.get("start_local") or None, "end_local": form.get("end_local") or None}
    try:
        window = WindowIn.model_validate(body)
        row = await maintenance.create(
            session,
            user.principal.tenant_id,
            window,
            actor=Actor.key(user.principal.api_key_id, dashboard=True),
        )
    except FieldError as exc:
        raise WebError(422, "; ".join(f"{e['field']}: {e['message']}" for e in exc.errors)) from None
    except ValueError as exc:  # pydantic's ValidationError
        raise WebError(422, str(exc).splitlines()[0] + ": " + "; ".join(str(exc).splitlines()[1:3])) from None
    log.info("dashboard maintenance window", window_id=row.id, key_id=user.principal.api_key_id)
    return redirect("/maintenance?done=window_added")


@router.post("/maintenance/{window_id}/delete")
async def delete_window(window_id: str, request: Request, session: Session, user: User) -> Response:
    check_csrf(await read_form(request), user.csrf)
    require_engineer(user)
    try:
        await maintenance.delete(
            session,
            user.principal.tenant_id,
            window_id,
            actor=Actor.key(user.principal.api_key_id, dashboard=True),
        )
    except NotFound:
        raise WebError(404, "There is no such maintenance window.") from None
    return redirect("/maintenance?done=window_deleted")


@router.post("/notification-channels/{channel_id}/test")
async def test_channel(
    channel_id: str, request: Request, services: ServicesDep, session: Session, user: User
) -> Response:
    check_csrf(await read_form(request), user.csrf)
    require_engineer(user)
    try:
        await notifications.send_test(session, user.principal.tenant_id, channel_id)
    except NotFound:
        raise WebError(404, "There is no such notification channel.") from None
    session.info["wake_workers"] = True
    return redirect("/maintenance?done=tested")


# -- wiring ---------------------------------------------------------------------------------------


def _handlers() -> dict[type[Exception], Callable[[Request, Any], Awaitable[Response]]]:
    async def sign_in(_request: Request, exc: SignInRequired) -> Response:
        return redirect(f"/login?next={quote(exc.next_path, safe='/')}")

    async def web_error(request: Request, exc: WebError) -> Response:
        return render(request, "error.html", None, status=exc.status, message=exc.message)

    async def database_error(request: Request, exc: Exception) -> Response:
        """Dashboard pages get an HTML page; every other route keeps the API's JSON body."""
        status, body, headers = api_errors.database_error(exc, request.url.path)
        if getattr(request.scope.get("route"), "endpoint", None) not in _DASHBOARD_ENDPOINTS:
            return JSONResponse(body, status_code=status, headers=headers)
        message = (
            "The database is not answering right now; the change may not be saved. Try again in a moment."
            if status == 503
            else "Something went wrong on the server."
        )
        response = render(request, "error.html", None, status=status, message=message)
        response.headers.update(headers)
        return response

    handlers: dict[type[Exception], Callable[[Request, Any], Awaitable[Response]]]
    handlers = {SignInRequired: sign_in, WebError: web_error}
    handlers.update(dict.fromkeys(api_errors.DATABASE_ERRORS, database_error))
    return handlers


_DASHBOARD_ENDPOINTS = frozenset(
    getattr(route, "endpoint", None)
    for route in (
        *router.routes,
        *drill.router.routes,
        *overview_page.router.routes,
        *setup.router.routes,
        *syncs.router.routes,
        *settings.router.routes,
    )
)


def install(app: FastAPI) -> None:
    """Routes, static files and the HTML error handlers, on the given app."""
    app.include_router(router)
    app.include_router(drill.router)
    app.include_router(overview_page.router)
    app.include_router(setup.router)
    app.include_router(syncs.router)
    app.include_router(settings.router)
    app.mount(STATIC_URL, StaticFiles(directory=STATIC), name="dashboard-static")
    for exc_class, handler in _handlers().items():
        app.add_exception_handler(exc_class, handler)


__all__ = ["HEADERS", "install", "router"]
