"""The dashboard's sync page: the connections a sync reads with their last run, the recent runs with
their state, and for engineers a Run sync button per connection (and one for all). A run is started
through the same service as `POST /api/v1/sync-runs` (recorded with the dashboard as its trigger);
the page refreshes itself while a run is going, so no script is needed to watch it finish."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import Response

from connector.api.deps import Session
from connector.connections.service import list_connections
from connector.infra.errors import FieldError, NotFound
from connector.infra.logs import get_logger
from connector.models import Connection, SyncRun
from connector.statuses import SyncStatus, SyncTrigger
from connector.sync import service as sync
from connector.sync.run import SyncConflict, sync_sources
from connector.web.auth import User, WebError, check_csrf, read_form, require_engineer
from connector.web.render import redirect, render

log = get_logger("connector.web.syncs")
router = APIRouter(include_in_schema=False)

PAGE = "/activity/syncs"
RECENT = 50
REFRESH_SECONDS = 5
"""While a run is going the page reloads itself this often (a plain `<meta http-equiv=refresh>`)."""


@dataclass(frozen=True)
class Source:
    connection: Connection
    last: SyncRun | None


def notice(done: str | None, name: str | None, count: str | None) -> str | None:
    """What the page says after a Run sync button (pure: the query string of the redirect)."""
    who = name or "the connection"
    if done == "started":
        return f"Sync of {who} started; this page refreshes until it has finished."
    if done == "started_all":
        n = int(count) if count and count.isdigit() and len(count) <= 4 else 0
        if n == 0:
            return "Every connection is already syncing; nothing new was started."
        return f"{n} sync(s) started; this page refreshes until they have finished."
    if done == "running":
        return f"A sync of {who} is already running; it shows below."
    return None


@router.get(PAGE)
async def syncs_page(
    request: Request,
    session: Session,
    user: User,
    done: str | None = None,
    connection: str | None = None,
    count: str | None = None,
) -> Response:
    tenant_id = user.principal.tenant_id
    connections = await list_connections(session, tenant_id)
    names = {c.id: c.name for c in connections}
    sources = []
    for source in await sync_sources(session, tenant_id):
        last = await sync.list_runs(session, tenant_id, connection_id=source.id, limit=1)
        sources.append(Source(source, last[0] if last else None))
    runs = await sync.list_runs(session, tenant_id, limit=RECENT)
    running = any(run.status == SyncStatus.RUNNING for run in runs)
    return render(
        request,
        "syncs.html",
        user,
        sources=sources,
        runs=runs,
        names=names,
        refresh=REFRESH_SECONDS if running else None,
        notice=notice(done, names.get(connection or ""), count),
    )


@router.post(PAGE)
async def run_sync(request: Request, session: Session, user: User) -> Response:
    """Start a sync of one connection (`connection_id`) or, without it, of every enabled one."""
    form = await read_form(request)
    check_csrf(form, user.csrf)
    require_engineer(user)
    tenant_id = user.principal.tenant_id
    connection_id = form.get("connection_id", "").strip() or None
    try:
        runs = await sync.start_syncs(session, tenant_id, connection_id, SyncTrigger.DASHBOARD)
    except NotFound:
        raise WebError(404, "connection_id: there is no such connection.") from None
    except FieldError as exc:
        raise WebError(422, "; ".join(f"{e['field']}: {e['message']}" for e in exc.errors)) from None
    except SyncConflict:
        return redirect(f"{PAGE}?" + urlencode({"done": "running", "connection": connection_id or ""}))
    log.info(
        "dashboard sync started",
        runs=[run.id for run in runs],
        connection_id=connection_id,
        key_id=user.principal.api_key_id,
    )
    if connection_id is None:
        return redirect(f"{PAGE}?" + urlencode({"done": "started_all", "count": len(runs)}))
    return redirect(f"{PAGE}?" + urlencode({"done": "started", "connection": connection_id}))
