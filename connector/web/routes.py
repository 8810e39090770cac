"""The server-rendered security dashboard: fleet overview, open problems, syncs and deliveries,
billing preview and client mappings. Pages read through the same service functions (and, where
the logic lives in the API handler, the same handler functions) as the JSON API, under the same
roles: viewers read; replaying a delivery and accepting a mapping need the engineer role."""

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
from sqlalchemy import func, select

from adapters.errors import AdapterError
from connector.alerts import api as alerts_api
from connector.alerts.problems import reroute_unmapped
from connector.alerts.schemas import ProblemOut
from connector.api import errors as api_errors
from connector.api.deps import ServicesDep, Session
from connector.billing import domain as domain_billing
from connector.billing.service import build_preview
from connector.fleet import stats as fleet_stats
from connector.infra.errors import Conflict, FieldError, NotFound
from connector.infra.logs import get_logger
from connector.models import ClientMapping, Connection, Delivery, Endpoint, Problem, TicketLink
from connector.rules import api as rules_api
from connector.rules import service as rules
from connector.sync import api as sync_api
from connector.tenants.service import authenticate
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
from connector.web.charts import trend_chart
from connector.web.render import HEADERS, STATIC, STATIC_URL, redirect, render

log = get_logger("connector.web")
router = APIRouter(include_in_schema=False)

TREND_DAYS = 30
PROBLEM_LIMIT = 500
PERIOD = domain_billing.PERIOD
NOTICES = {
    "replayed": "The delivery is queued for processing again.",
    "mapped": "Mapping saved; the client's waiting problems are being routed.",
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
        log.info("dashboard sign-out", api_key_id=user.principal.api_key_id)
    response = redirect("/login")
    clear_session(response, request)
    return response


# -- shared reads ---------------------------------------------------------------------------------


async def _connections(session: Any, tenant_id: str) -> list[Connection]:
    rows = await session.scalars(
        select(Connection).where(Connection.tenant_id == tenant_id).order_by(Connection.name)
    )
    return list(rows)


def _client_names(clients: list[fleet_stats.ClientCounts]) -> dict[tuple[str, str], str]:
    return {(c.rmm_connection_id, c.client_id): c.client_name or c.client_id for c in clients}


async def _count(session: Any, model: Any, *where: Any) -> int:
    return int(await session.scalar(select(func.count()).select_from(model).where(*where)) or 0)


async def _open_problems(session: Any, user: WebUser, **filters: str | None) -> list[ProblemOut]:
    """The API's problem listing, called with every filter spelled out (its defaults are Query())."""
    values: dict[str, Any] = {"routing": None, "client_id": None, "endpoint_id": None, "kind": None}
    values.update(filters)
    problems = await alerts_api.list_problems(
        session, user.principal, state="open", limit=PROBLEM_LIMIT, offset=0, **values
    )
    return sorted(problems, key=lambda p: p.first_seen_at)


# -- overview -------------------------------------------------------------------------------------


@router.get("/")
async def overview(request: Request, session: Session, user: User) -> Response:
    tenant_id = user.principal.tenant_id
    overall, clients = await fleet_stats.summary(session, tenant_id)
    points = await fleet_stats.trend(session, tenant_id, TREND_DAYS)
    connections = {c.id: c.name for c in await _connections(session, tenant_id)}
    open_problem = (Problem.tenant_id == tenant_id, Problem.state == "open")
    return render(
        request,
        "overview.html",
        user,
        classes=fleet_stats.HEALTH_CLASSES,
        overall={h: getattr(overall, h) for h in fleet_stats.HEALTH_CLASSES},
        total=overall.total,
        share=overall.protected_share if overall.known else None,
        clients=clients,
        unmapped=[c for c in clients if c.mapped_company is None],
        connections=connections,
        several_rmms=len({c.rmm_connection_id for c in clients}) > 1,
        chart=trend_chart(points, TREND_DAYS, datetime.now(UTC).date()),
        days=TREND_DAYS,
        open_problems=await _count(session, Problem, *open_problem),
        unmapped_problems=await _count(session, Problem, *open_problem, Problem.routing == "unmapped"),
        dead_deliveries=await _count(
            session, Delivery, Delivery.tenant_id == tenant_id, Delivery.status == "dead"
        ),
    )


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
    problems = await _open_problems(session, user, routing=routing)
    unmapped = await _count(
        session,
        Problem,
        Problem.tenant_id == tenant_id,
        Problem.state == "open",
        Problem.routing == "unmapped",
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
    tenant_id = user.principal.tenant_id
    found = (
        await session.execute(
            select(Problem, TicketLink)
            .outerjoin(TicketLink, TicketLink.problem_id == Problem.id)
            .where(Problem.id == problem_id, Problem.tenant_id == tenant_id)
        )
    ).first()
    if found is None:
        raise WebError(404, "There is no such problem.")
    problem, link = found
    endpoint = await session.scalar(
        select(Endpoint).where(
            Endpoint.tenant_id == tenant_id,
            Endpoint.rmm_connection_id == problem.rmm_connection_id,
            Endpoint.endpoint_id == problem.endpoint_id,
        )
    )
    mapping = await session.scalar(
        select(ClientMapping).where(
            ClientMapping.tenant_id == tenant_id,
            ClientMapping.rmm_connection_id == problem.rmm_connection_id,
            ClientMapping.rmm_client_id == problem.client_id,
        )
    )
    connection = await session.get(Connection, problem.rmm_connection_id)
    return render(
        request,
        "problem.html",
        user,
        problem=problem,
        link=link,
        endpoint=endpoint,
        mapping=mapping,
        connection=connection,
        client_name=(endpoint.client_name if endpoint is not None else None) or problem.client_id,
    )


# -- syncs and deliveries -------------------------------------------------------------------------


@router.get("/activity")
async def activity(request: Request, session: Session, user: User, done: str | None = None) -> Response:
    who = user.principal
    connections = await _connections(session, who.tenant_id)
    last_runs = []
    for connection in connections:
        if connection.role != "rmm":
            continue
        runs = await sync_api.list_sync_runs(
            session, who, connection_id=connection.id, status=None, limit=1, offset=0
        )
        last_runs.append((connection, runs[0] if runs else None))
    failed_runs = await sync_api.list_sync_runs(
        session, who, connection_id=None, status="failed", limit=20, offset=0
    )
    deliveries = []
    for status in ("dead", "failed"):
        deliveries += await alerts_api.list_deliveries(
            session, who, status=status, connection_id=None, limit=200, offset=0
        )
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
        await alerts_api.replay_delivery(delivery_id, session, user.principal)
    except NotFound:
        raise WebError(404, "There is no such delivery.") from None
    except FieldError as exc:
        raise WebError(422, exc.errors[0]["message"]) from None
    log.info("dashboard replay", delivery_id=delivery_id, api_key_id=user.principal.api_key_id)
    return redirect("/activity?done=replayed")


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
        preview=preview,
        period=period,
        error=error,
        products=sorted(products.items()),
        total=total,
        cost=cost,
        names=_client_names(clients),
    )


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
    connections = await _connections(session, who.tenant_id)
    rmms = [c for c in connections if c.role == "rmm"]
    psas = [c for c in connections if c.role == "psa"]
    rmm_row = next((c for c in rmms if c.id == rmm), next((c for c in rmms if c.enabled), None))
    psa_row = next((c for c in psas if c.id == psa), next((c for c in psas if c.enabled), None))
    suggestions: list[Any] = []
    error = None
    if rmm_row is not None and psa_row is not None:
        try:
            suggestions = await rules_api.mapping_suggestions(
                services,
                session,
                who,
                rmm_connection_id=rmm_row.id,
                psa_connection_id=psa_row.id,
                threshold=0.75,
            )
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
async def accept_mapping(request: Request, session: Session, user: User) -> Response:
    form = await read_form(request)
    check_csrf(form, user.csrf)
    require_engineer(user)
    tenant_id = user.principal.tenant_id
    body = {name: form.get(name) or None for name in MAPPING_FIELDS}
    try:
        row = await rules.create(rules.CLIENT_MAPPINGS, session, tenant_id, body)
    except FieldError as exc:
        raise WebError(422, "; ".join(f"{e['field']}: {e['message']}" for e in exc.errors)) from None
    except Conflict as exc:
        raise WebError(409, str(exc)) from None
    if await reroute_unmapped(session, tenant_id, row.rmm_connection_id, row.rmm_client_id):
        session.info["wake_workers"] = True
    log.info("dashboard mapping", mapping_id=row.id, api_key_id=user.principal.api_key_id)
    query = urlencode({"rmm": row.rmm_connection_id, "psa": row.psa_connection_id, "done": "mapped"})
    return redirect(f"/mappings?{query}")


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


_DASHBOARD_ENDPOINTS = frozenset(getattr(route, "endpoint", None) for route in router.routes)


def install(app: FastAPI) -> None:
    """Routes, static files and the HTML error handlers, on the given app."""
    app.include_router(router)
    app.mount(STATIC_URL, StaticFiles(directory=STATIC), name="dashboard-static")
    for exc_class, handler in _handlers().items():
        app.add_exception_handler(exc_class, handler)


__all__ = ["HEADERS", "install", "router"]
