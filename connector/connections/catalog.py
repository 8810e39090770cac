"""PSA look-ups (boards, statuses, priorities, ticket types, agreement types, products, companies)
read live from the connection's adapter and kept briefly per process, for the catalog API and for
checking the ids rules and mappings name."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime

from adapters.base import CatalogKind, PsaOption, Role
from adapters.errors import AdapterError
from connector.connections.service import build_psa
from connector.infra.context import Services
from connector.infra.errors import VendorUnavailable
from connector.models import Connection

CACHE_SECONDS = 60.0
"""How long a look-up read from the PSA is reused (a change of the connection row drops it)."""


@dataclass(frozen=True)
class Catalog:
    kind: CatalogKind
    items: list[PsaOption]
    fetched_at: datetime
    cached: bool


@dataclass(frozen=True)
class _Entry:
    read_at: float
    catalog: Catalog


_CACHE: dict[tuple[str, datetime, CatalogKind], _Entry] = {}


def _cached(key: tuple[str, datetime, CatalogKind]) -> Catalog | None:
    entry = _CACHE.get(key)
    if entry is None or time.monotonic() - entry.read_at > CACHE_SECONDS:
        return None
    return Catalog(entry.catalog.kind, entry.catalog.items, entry.catalog.fetched_at, cached=True)


def _prune(now: float) -> None:
    for key in [k for k, e in _CACHE.items() if now - e.read_at > CACHE_SECONDS]:
        del _CACHE[key]


async def read_catalog(
    services: Services, row: Connection, kind: CatalogKind, *, refresh: bool = False
) -> Catalog:
    """One look-up of a PSA connection: from the cache unless `refresh` or older than
    `CACHE_SECONDS`; `VendorUnavailable` when the PSA cannot be read."""
    assert row.role == Role.PSA.value, row.role
    key = (row.id, row.updated_at, kind)
    if not refresh and (hit := _cached(key)) is not None:
        return hit
    adapter = build_psa(services, row)
    try:
        items = await adapter.list_catalog(kind)
    except AdapterError as exc:
        raise VendorUnavailable(
            f"could not read {kind.value} from PSA connection {row.name!r}: {exc}"
        ) from exc
    finally:
        await adapter.aclose()
    now = time.monotonic()
    _prune(now)
    catalog = Catalog(kind, items, datetime.now(UTC), cached=False)
    _CACHE[key] = _Entry(now, catalog)
    return catalog
