"""Request dependencies: the shared services, a database session, and the authenticated principal."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, HTTPException, Request
from sqlalchemy.ext.asyncio import AsyncSession

from connector.infra.context import Services
from connector.infra.security.apikeys import ApiRole, authenticate


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


async def get_principal(request: Request, services: Annotated[Services, Depends(get_services)]) -> Principal:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise UNAUTHORIZED
    async with services.sessions() as session, session.begin():
        row = await authenticate(session, token.strip())
        if row is None:
            raise UNAUTHORIZED
        return Principal(tenant_id=row.tenant_id, api_key_id=row.id, role=ApiRole(row.role))


def require(role: ApiRole) -> Callable[[Principal], Awaitable[Principal]]:
    async def check(principal: Annotated[Principal, Depends(get_principal)]) -> Principal:
        if not principal.role.allows(role):
            raise HTTPException(status_code=403, detail=f"requires the {role.value} role")
        return principal

    return check


Session = Annotated[AsyncSession, Depends(get_session, scope="function")]
"""The request's session. Function scope: the commit runs when the endpoint function returns,
before the response goes out (request scope would commit after the client has its answer)."""
ServicesDep = Annotated[Services, Depends(get_services)]
Viewer = Annotated[Principal, Depends(require(ApiRole.VIEWER))]
Engineer = Annotated[Principal, Depends(require(ApiRole.ENGINEER))]
Admin = Annotated[Principal, Depends(require(ApiRole.ADMIN))]
