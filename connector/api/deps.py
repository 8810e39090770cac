"""Request dependencies: the shared services, a database session, and the authenticated principal."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, HTTPException, Request
from sqlalchemy.ext.asyncio import AsyncSession

from connector.security.apikeys import ApiRole
from connector.services import Services
from connector.tenants import authenticate


def get_services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


async def get_session(services: Annotated[Services, Depends(get_services)]) -> AsyncIterator[AsyncSession]:
    """One transaction per request, committed when the handler returns without error. A handler
    that queued jobs sets `session.info["wake_workers"]`; workers are woken after the commit."""
    async with services.sessions() as session:
        async with session.begin():
            yield session
        if session.info.get("wake_workers"):
            services.wake_workers()


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


Session = Annotated[AsyncSession, Depends(get_session)]
ServicesDep = Annotated[Services, Depends(get_services)]
Viewer = Annotated[Principal, Depends(require(ApiRole.VIEWER))]
Engineer = Annotated[Principal, Depends(require(ApiRole.ENGINEER))]
Admin = Annotated[Principal, Depends(require(ApiRole.ADMIN))]
