"""Drill-down pages: one RMM client (its endpoints with their health class and open problems, its
problem history, tickets, billing lines of the current period and PSA mapping) and one endpoint
(every status field with its source and age, its problems, tickets, history and the remote actions
its RMM kind declares, run by engineers through the same action service as the API). Every table
sorts (`?sort=`), filters (`?q=`), pages (`?page=`, 50 rows) and exports its rows as CSV
(`?format=csv`); `?table=` names the table those apply to."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Request
from fastapi.responses import Response

from adapters.base import ActionKind, AdapterSpec
from connector.actions import service as actions
from connector.alerts import service as alerts
from connector.api.deps import ServicesDep, Session
from connector.billing.service import build_preview
from connector.connections.service import list_connections
from connector.fleet import consoles, coverage
from connector.fleet import service as fleet
from connector.fleet.endpoints import to_status
from connector.fleet.stats import HEALTH_CLASSES
from connector.infra.errors import FieldError, NotFound
from connector.infra.logs import get_logger
from connector.models import ClientMapping, Problem, TicketLink
from connector.statuses import ProblemStatus
from connector.tenants.schemas import CurrencySettings
from connector.tenants.service import get_currency
from connector.web.auth import User, WebError, WebUser, check_csrf, read_form, require_engineer
from connector.web.render import HEADERS, client_url, render
from connector.web.tables import Column, Table, all_rows, build, to_csv

log = get_logger("connector.web.drill")
router = APIRouter(include_in_schema=False)

HISTORY_DAYS = 90
CLIENT_ROWS = 5000
"""Endpoints and problems read for one client page (a client larger than this shows its first ones)."""

ACTION_LABELS = {
    ActionKind.SCAN: "Run a scan",
    ActionKind.UPDATE_DEFINITIONS: "Update definitions",
    ActionKind.DEPLOY_AGENT: "Deploy the security agent",
}

FIELD_LABELS = {
    "hostname": "Host name",
    "serial_number": "Serial number",
    "mac_addresses": "MAC addresses",
    "os_name": "Operating system",
    "device_type": "Device type",
    "product": "Security product",
    "protection_enabled": "Real-time protection",
    "definitions_date": "Definitions date",
    "last_scan_at": "Last scan",
    "active_threats": "Active threats",
    "online": "Online",
    "last_seen_at": "Last seen",
}
"""The endpoint's status fields, in the order the endpoint page lists them."""
DATED = ("definitions_date", "last_scan_at", "last_seen_at")

ENDPOINT_COLUMNS = (
    Column("hostname", "Endpoint"),
    Column("health", "Status"),
    Column("open_problems", "Open problems"),
    Column("product", "Security product"),
    Column("os_name", "Operating system"),
    Column("last_seen_at", "Last seen"),
)
PROBLEM_COLUMNS = (
    Column("kind", "Problem"),
    Column("hostname", "Endpoint"),
    Column("state", "State"),
    Column("first_seen_at", "Opened"),
    Column("cleared_at", "Cleared"),
    Column("message", "Message"),
)
TICKET_COLUMNS = (
    Column("ticket_number", "PSA ticket"),
    Column("state", "Ticket state"),
    Column("kind", "Problem"),
    Column("hostname", "Endpoint"),
    Column("created_at", "Created"),
    Column("closed_at", "Closed"),
    Column("ticket_url", "Address"),
)
BILLING_COLUMNS = (
    Column("product", "Product"),
    Column("company", "PSA company"),
    Column("quantity", "Quantity", numeric=True),
    Column("unit_price", "Unit price", numeric=True),
    Column("total", "Price", numeric=True),
    Column("action", "In PSA"),
    Column("clients", "RMM clients counted"),
)
FIELD_COLUMNS = (
    Column("label", "Field"),
    Column("value", "Value"),
    Column("source", "Source"),
    Column("dated", "Value's time"),
    Column("recorded", "Source last changed"),
)
ENDPOINT_PROBLEM_COLUMNS = (
    Column("kind", "Problem"),
    Column("state", "State"),
    Column("source", "Reported by"),
    Column("first_seen_at", "Opened"),
    Column("cleared_at", "Cleared"),
    Column("message", "Message"),
)
HISTORY_COLUMNS = (
    Column("at", "When"),
    Column("event", "What"),
    Column("detail", "Detail"),
)
ACTION_COLUMNS = (
    Column("action", "Action"),
    Column("status", "Result"),
    Column("message", "RMM's answer"),
    Column("requested_by", "Requested by"),
    Column("requested_at", "Requested"),
    Column("finished_at", "Finished"),
)


@dataclass(frozen=True)
class Spec:
    """One table of a page: its rows and how they sort by default."""

    name: str
    caption: str
    columns: Sequence[Column]
    rows: list[dict[str, Any]]
    default: str | None


def _query(request: Request, first: str) -> dict[str, str]:
    query = dict(request.query_params)
    query.setdefault("table", first)
    return query


def _tables(request: Request, base: str, specs: Sequence[Spec]) -> tuple[dict[str, Table], Response | None]:
    """The page's tables; or, for `?format=csv`, the named table's rows as a CSV download."""
    query = _query(request, specs[0].name)
    if query.get("format") == "csv":
        spec = next((s for s in specs if s.name == query["table"]), None)
        if spec is None:
            raise WebError(404, "There is no such table on this page.")
        rows = all_rows(spec.columns, spec.rows, query, spec.name, spec.default)
        headers = {**HEADERS, "Content-Disposition": f'attachment; filename="{spec.name}.csv"'}
        return {}, Response(to_csv(spec.columns, rows), media_type="text/csv; charset=utf-8", headers=headers)
    tables = {
        s.name: build(s.name, s.caption, s.columns, s.rows, query, base, default=s.default) for s in specs
    }
    return tables, None


def _kind(kind: str) -> str:
    return kind.replace("_", " ").capitalize()


def _problem_row(problem: Problem) -> dict[str, Any]:
    return {
        "id": problem.id,
        "kind": _kind(problem.kind),
        "hostname": problem.hostname or problem.endpoint_id,
        "state": problem.state.value,
        "source": problem.source.value,
        "first_seen_at": problem.first_seen_at,
        "cleared_at": problem.cleared_at,
        "message": problem.message,
    }


def _ticket_rows(found: Sequence[tuple[Problem, TicketLink | None]]) -> list[dict[str, Any]]:
    return [
        {
            "problem_id": problem.id,
            "ticket_number": link.ticket_number,
            "state": link.state.value,
            "kind": _kind(problem.kind),
            "hostname": problem.hostname or problem.endpoint_id,
            "created_at": link.created_at,
            "closed_at": link.closed_at,
            "ticket_url": link.ticket_url,
        }
        for problem, link in found
        if link is not None
    ]


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


# -- client ---------------------------------------------------------------------------------------


@router.get("/clients/{rmm_connection_id}/{client_id}")
async def client_page(
    rmm_connection_id: str, client_id: str, request: Request, session: Session, user: User
) -> Response:
    tenant_id = user.principal.tenant_id
    connections = {c.id: c for c in await list_connections(session, tenant_id)}
    connection = connections.get(rmm_connection_id)
    if connection is None or connection.role != "rmm":
        raise WebError(404, "There is no such RMM client.")
    endpoints = [
        e
        for e in await fleet.list_endpoints(
            session, tenant_id, client_id=client_id, connection_id=rmm_connection_id, limit=CLIENT_ROWS
        )
        if e.retired_at is None
    ]
    found = [
        (p, link)
        for p, link in await alerts.list_problems(session, tenant_id, client_id=client_id, limit=CLIENT_ROWS)
        if p.rmm_connection_id == rmm_connection_id
    ]
    mapping = await fleet.client_mapping(session, tenant_id, rmm_connection_id, client_id)
    if not endpoints and not found and mapping is None:
        raise WebError(404, "There is no such RMM client.")
    open_by_endpoint: dict[str, list[str]] = {}
    for problem, _ in found:
        if problem.state == ProblemStatus.OPEN:
            open_by_endpoint.setdefault(problem.endpoint_id, []).append(_kind(problem.kind))
    since = datetime.now(UTC) - timedelta(days=HISTORY_DAYS)
    recent = [
        p
        for p, _ in found
        if p.state == ProblemStatus.OPEN
        or _utc(p.first_seen_at) >= since
        or (p.cleared_at is not None and _utc(p.cleared_at) >= since)
    ]
    period = datetime.now(UTC).strftime("%Y-%m")
    billing_rows, unbilled = await _billing_rows(
        session, tenant_id, period, rmm_connection_id, client_id, mapping
    )
    name = next((e.client_name for e in endpoints if e.client_name), None) or (
        mapping.rmm_client_name if mapping is not None else None
    )
    base = client_url(rmm_connection_id, client_id)
    tables, download = _tables(
        request,
        base,
        [
            Spec(
                "endpoints",
                "Endpoints of the client with their status and open problems",
                ENDPOINT_COLUMNS,
                [
                    {
                        "id": e.id,
                        "hostname": e.hostname,
                        "health": e.health.value,
                        "open_problems": sorted(open_by_endpoint.get(e.endpoint_id, [])),
                        "product": e.product,
                        "os_name": e.os_name,
                        "last_seen_at": e.last_seen_at,
                    }
                    for e in endpoints
                ],
                "hostname",
            ),
            Spec(
                "problems",
                f"Problems opened or cleared in the last {HISTORY_DAYS} days, and those still open",
                PROBLEM_COLUMNS,
                [_problem_row(p) for p in recent],
                "-first_seen_at",
            ),
            Spec(
                "tickets",
                "PSA tickets of the client's problems",
                TICKET_COLUMNS,
                _ticket_rows(found),
                "-created_at",
            ),
            Spec(
                "billing",
                f"Billing lines for {period} that count this client",
                BILLING_COLUMNS,
                billing_rows,
                "product",
            ),
        ],
    )
    if download is not None:
        return download
    classes = [e.health.value for e in endpoints]
    counts = [(h, classes.count(h)) for h in HEALTH_CLASSES if h in classes]
    return render(
        request,
        "client.html",
        user,
        client_id=client_id,
        client_name=name or client_id,
        connection=connection,
        mapping=mapping,
        psa_name=connections[mapping.psa_connection_id].name
        if mapping is not None and mapping.psa_connection_id in connections
        else None,
        mappings_url="/mappings?"
        + urlencode({"rmm": rmm_connection_id, **({"psa": mapping.psa_connection_id} if mapping else {})}),
        counts=counts,
        open_count=sum(len(v) for v in open_by_endpoint.values()),
        tables=tables,
        period=period,
        unbilled=unbilled,
        days=HISTORY_DAYS,
        money_in=_money_in(await get_currency(session, user.principal.tenant_id)),
    )


def _money_in(settings: CurrencySettings) -> tuple[str, str]:
    return settings.currency, settings.locale


async def _billing_rows(
    session: Session,
    tenant_id: str,
    period: str,
    rmm_connection_id: str,
    client_id: str,
    mapping: ClientMapping | None,
) -> tuple[list[dict[str, Any]], list[tuple[str, int]]]:
    """The preview's lines that count this client's seats (a company's line may count several
    clients), and the seats per product left unbilled because the client is not mapped."""
    preview = await build_preview(session, tenant_id, period)
    unbilled = [
        (u.product, u.seats)
        for u in preview.unmapped_clients
        if u.rmm_connection_id == rmm_connection_id and u.client_id == client_id
    ]
    if mapping is None:
        return [], unbilled
    rows = [
        {
            "product": item.line.product,
            "company": item.line.company_name or item.line.company_id,
            "quantity": item.line.billed,
            "unit_price": item.line.unit_price,
            "total": item.line.total,
            "action": item.action.replace("_", " "),
            "clients": item.clients,
        }
        for item in preview.lines
        if item.rule.psa_connection_id == mapping.psa_connection_id
        and item.line.company_id == mapping.psa_company_id
        and client_id in item.clients
    ]
    return rows, unbilled


# -- endpoint -------------------------------------------------------------------------------------


def _source_label(source: str, rmm_name: str) -> str:
    if source == coverage.RMM:
        return f"RMM ({rmm_name})"
    return f"Console ({source.split(':', 1)[1]})"


def _field_value(name: str, value: Any) -> Any:
    if name in ("protection_enabled", "online"):
        return {True: "yes", False: "no", None: "unknown"}[value]
    return value


async def _endpoint_page(
    request: Request,
    services: ServicesDep,
    session: Session,
    user: WebUser,
    endpoint_row_id: str,
    *,
    error: str | None = None,
    status: int = 200,
) -> Response:
    tenant_id = user.principal.tenant_id
    try:
        row = await fleet.get_endpoint(session, tenant_id, endpoint_row_id)
    except NotFound:
        raise WebError(404, "There is no such endpoint.") from None
    connections = {c.id: c for c in await list_connections(session, tenant_id)}
    connection = connections.get(row.rmm_connection_id)
    rmm_name = connection.name if connection is not None else "RMM"
    effective, sources = coverage.effective_status(to_status(row), await consoles.endpoint_view(session, row))
    agent = await consoles.matched_agent(session, row)
    history = await fleet.endpoint_history(session, row)
    mapping = await fleet.client_mapping(session, tenant_id, row.rmm_connection_id, row.client_id)
    spec: AdapterSpec | None = services.registry.get(connection.kind) if connection is not None else None
    fields = [
        {
            "name": name,
            "label": label,
            "value": _field_value(name, getattr(effective, name)),
            "source": _source_label(sources.get(name, coverage.RMM), rmm_name),
            "dated": getattr(effective, name) if name in DATED else None,
            "recorded": row.updated_at
            if sources.get(name, coverage.RMM) == coverage.RMM
            else (agent.last_seen_at if agent is not None else None),
        }
        for name, label in FIELD_LABELS.items()
    ]
    events: list[dict[str, Any]] = []
    for problem, _ in history.problems:
        events.append(
            {"at": problem.first_seen_at, "event": f"{_kind(problem.kind)} opened", "detail": problem.message}
        )
        if problem.cleared_at is not None:
            events.append(
                {
                    "at": problem.cleared_at,
                    "event": f"{_kind(problem.kind)} cleared",
                    "detail": problem.clear_message or "",
                }
            )
    for action in history.actions:
        events.append(
            {
                "at": action.requested_at,
                "event": f"{action.action.replace('_', ' ').capitalize()} requested ({action.requested_by})",
                "detail": f"{action.status.value}" + (f": {action.message}" if action.message else ""),
            }
        )
    base = f"/endpoints/{quote(row.id, safe='')}"
    tables, download = _tables(
        request,
        base,
        [
            Spec("fields", "Status fields with their source and age", FIELD_COLUMNS, fields, None),
            Spec(
                "problems",
                "Problems of the endpoint, newest first",
                ENDPOINT_PROBLEM_COLUMNS,
                [_problem_row(p) for p, _ in history.problems],
                "-first_seen_at",
            ),
            Spec(
                "tickets",
                "PSA tickets of the endpoint's problems",
                TICKET_COLUMNS,
                _ticket_rows(history.problems),
                "-created_at",
            ),
            Spec(
                "actions",
                "Remote actions requested on the endpoint and the RMM's answers",
                ACTION_COLUMNS,
                [
                    {
                        "id": a.id,
                        "action": a.action.replace("_", " "),
                        "status": a.status.value,
                        "message": a.message,
                        "requested_by": a.requested_by,
                        "requested_at": a.requested_at,
                        "finished_at": a.finished_at,
                    }
                    for a in history.actions
                ],
                "-requested_at",
            ),
            Spec(
                "history",
                "What happened to the endpoint: problems opened and cleared, actions",
                HISTORY_COLUMNS,
                events,
                "-at",
            ),
        ],
    )
    if download is not None:
        return download
    offered = sorted(spec.actions, key=lambda a: a.value) if spec is not None else []
    refused = (
        [(a, spec.refusals.get(a, "")) for a in ActionKind if a not in spec.actions]
        if spec is not None
        else []
    )
    latest = history.actions[0] if history.actions else None
    return render(
        request,
        "endpoint.html",
        user,
        status=status,
        endpoint=row,
        connection=connection,
        mapping=mapping,
        agent=agent,
        tables=tables,
        offered=offered,
        refused=refused,
        labels=ACTION_LABELS,
        latest=latest if request.query_params.get("done") == "queued" else None,
        error=error,
        back_url=client_url(row.rmm_connection_id, row.client_id),
        installed=spec is not None,
    )


@router.get("/endpoints/{endpoint_row_id}")
async def endpoint_page(
    endpoint_row_id: str, request: Request, services: ServicesDep, session: Session, user: User
) -> Response:
    return await _endpoint_page(request, services, session, user, endpoint_row_id)


@router.post("/endpoints/{endpoint_row_id}/actions")
async def run_action(
    endpoint_row_id: str, request: Request, services: ServicesDep, session: Session, user: User
) -> Response:
    """Queue one remote action, checked as `POST /api/v1/endpoints/{id}/actions` checks it; a
    refusal (an action the RMM kind does not declare, a retired endpoint) shows on the page."""
    form = await read_form(request)
    check_csrf(form, user.csrf)
    require_engineer(user)
    tenant_id = user.principal.tenant_id
    try:
        row, connection = await actions.actionable_endpoint(session, tenant_id, endpoint_row_id)
    except NotFound:
        raise WebError(404, "There is no such endpoint.") from None
    except FieldError as exc:
        return await _refused(request, services, session, user, endpoint_row_id, exc)
    try:
        try:
            action = ActionKind(form.get("action", ""))
        except ValueError:
            raise FieldError("action", "must be one of: " + ", ".join(a.value for a in ActionKind)) from None
        actions.check_supported(services.registry.get(connection.kind), action)
    except FieldError as exc:
        return await _refused(request, services, session, user, endpoint_row_id, exc)
    queued = await actions.request_action(session, row, action, requested_by="dashboard")
    log.info("dashboard action", action=action.value, action_id=queued.id, key_id=user.principal.api_key_id)
    return Response(
        status_code=303,
        headers={**HEADERS, "Location": f"/endpoints/{quote(row.id, safe='')}?done=queued#action-result"},
    )


async def _refused(
    request: Request,
    services: ServicesDep,
    session: Session,
    user: WebUser,
    endpoint_row_id: str,
    exc: FieldError,
) -> Response:
    message = "Refused: " + "; ".join(f"{e['field']}: {e['message']}" for e in exc.errors)
    return await _endpoint_page(request, services, session, user, endpoint_row_id, error=message, status=422)
