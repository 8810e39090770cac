"""Links from a ticket's body to an endpoint's page in its RMM's console, where the RMM kind
declares how to build one (`AdapterSpec.endpoint_url`) from the connection's base URL and options."""

from __future__ import annotations

from collections.abc import Callable

from pydantic import ValidationError

from connector.infra.context import Services
from connector.models import Connection

Link = Callable[[str], str | None]
"""RMM endpoint id → its page in the RMM's console (None: not known)."""


def _none(_endpoint_id: str) -> str | None:
    return None


async def rmm_links(services: Services, rmm_connection_id: str) -> Link:
    """How to link to the endpoints of this RMM connection; a link to nothing for an RMM kind whose
    console address is not known, a connection gone, or options that no longer validate."""
    async with services.sessions() as session:
        rmm = await session.get(Connection, rmm_connection_id)
    return link_for(services, rmm)


def link_for(services: Services, rmm: Connection | None) -> Link:
    """`rmm_links` for a connection row already read."""
    spec = services.registry.get(rmm.kind) if rmm is not None else None
    if rmm is None or spec is None or spec.endpoint_url is None:
        return _none
    try:
        options = spec.options_model.model_validate(rmm.options or {})
    except ValidationError:
        return _none
    build, base_url = spec.endpoint_url, rmm.base_url

    def link(endpoint_id: str) -> str | None:
        return build(base_url, options, endpoint_id)

    return link
