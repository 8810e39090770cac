"""Request dependencies: the shared services, a database session, and the authenticated principal."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Annotated

import structlog
from fastapi import Depends, HTTPException, Request
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.ext.asyncio import AsyncSession

from connector.infra.context import Services
from connector.infra.errors import FieldError
from connector.infra.logs import get_logger
from connector.infra.security.apikeys import ApiRole, authenticate

log = get_logger("connector.api")


def get_services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


async def get_session(services: Annotated[Services, Depends(get_services)]) -> AsyncIterator[AsyncSession]:
    """One transaction per request, committed as soon as the handler returns without error and
    before the response is sent (the dependency has function scope, see `Session`): a 2xx means
    committed, and a failed commit answers an error instead. A handler that queued jobs sets
    `session.info["wake_workers"]`; workers are woken, and `after_commit` callbacks run, only
    once the commit succeeded."""
    async with services.sessions() as session:
        async with session.begin():
            yield session
        for callback in session.info.get(AFTER_COMMIT, ()):
            callback()
        if session.info.get("wake_workers"):
            services.wake_workers()


AFTER_COMMIT = "after_commit"


def after_commit(session: AsyncSession, callback: Callable[[], None]) -> None:
    """Run `callback` once the request's transaction is committed (e.g. drop a cache entry, so
    no concurrent reader refills it with the state from before the commit)."""
    session.info.setdefault(AFTER_COMMIT, []).append(callback)


@dataclass(frozen=True)
class Principal:
    tenant_id: str
    api_key_id: str
    role: ApiRole


UNAUTHORIZED = HTTPException(
    status_code=401, detail="missing or invalid API key", headers={"WWW-Authenticate": "Bearer"}
)


BEARER = HTTPBearer(
    scheme_name="ApiKey",
    bearerFormat="ck_…",
    description="An API key (`connector apikey create` or `POST /api/v1/api-keys`) as `Authorization: "
    "Bearer ck_…`; its role (viewer < engineer < admin) decides what it may do.",
    auto_error=False,  # the 401 body and header are this module's, not FastAPI's 403
)


async def get_principal(
    services: Annotated[Services, Depends(get_services)],
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(BEARER)],
) -> Principal:
    token = credentials.credentials.strip() if credentials is not None else ""
    if not token:
        raise UNAUTHORIZED
    async with services.sessions() as session, session.begin():
        row = await authenticate(session, token)
        if row is None:
            raise UNAUTHORIZED
        # Every later log line of the request says whose key made it.
        structlog.contextvars.bind_contextvars(tenant_id=row.tenant_id, key_id=row.id)
        return Principal(tenant_id=row.tenant_id, api_key_id=row.id, role=ApiRole(row.role))


def require(role: ApiRole) -> Callable[[Principal], Awaitable[Principal]]:
    async def check(principal: Annotated[Principal, Depends(get_principal)]) -> Principal:
        if not principal.role.allows(role):
            raise HTTPException(status_code=403, detail=f"requires the {role.value} role")
        return principal

    return check


def configuration_changed(
    session: AsyncSession,
    who: Principal,
    entity: str,
    operation: str,
    entity_id: str,
    fields: Iterable[str] = (),
) -> None:
    """One INFO event for a configuration change, written once the request's transaction has
    committed (a change that rolled back is not reported). Field names only: values can be secrets."""
    names = sorted(fields)

    def report() -> None:
        log.info(
            "configuration changed",
            entity=entity,
            operation=operation,
            id=entity_id,
            fields=names,
            tenant_id=who.tenant_id,
            key_id=who.api_key_id,  # (a key named `api_key…` would be redacted as a secret)
        )

    after_commit(session, report)


Session = Annotated[AsyncSession, Depends(get_session, scope="function")]
"""The request's session. Function scope: the commit runs when the endpoint function returns,
before the response goes out (request scope would commit after the client has its answer)."""
ServicesDep = Annotated[Services, Depends(get_services)]
Viewer = Annotated[Principal, Depends(require(ApiRole.VIEWER))]
Engineer = Annotated[Principal, Depends(require(ApiRole.ENGINEER))]
Admin = Annotated[Principal, Depends(require(ApiRole.ADMIN))]


def _query_names(dependant: Dependant) -> set[str]:
    names = {param.alias for param in dependant.query_params}
    for sub in dependant.dependencies:
        names |= _query_names(sub)
    return names


async def refuse_unknown_query(request: Request) -> None:
    """422 for a query parameter the route does not declare: a mistyped filter (`?stauts=open`)
    would otherwise be ignored and the unfiltered listing answered as if it were the filtered one."""
    if not request.query_params:
        return
    route = request.scope.get("route")
    if not isinstance(route, APIRoute):
        return
    known = _query_names(route.dependant)  # only for requests with a query: a few attribute reads
    unknown = sorted(set(request.query_params) - known)
    if unknown:
        allowed = ", ".join(sorted(known)) or "none"
        raise FieldError.many(
            [
                {"field": name[:64], "message": f"unknown query parameter; allowed: {allowed}"}
                for name in unknown
            ]
        )


StrictQuery = Depends(refuse_unknown_query)
"""For the API's routers: `app.include_router(router, dependencies=[StrictQuery])`."""
