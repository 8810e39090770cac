"""One live adapter object per connection, shared by the worker's jobs and rebuilt when the
connection's row changes (so vendor sessions, tokens and discovered endpoints are reused)."""

from __future__ import annotations

import asyncio
from datetime import datetime

from adapters.base import Adapter, PsaAdapter, RmmAdapter, SecurityAdapter
from connector.connections.service import build_adapter
from connector.infra.context import Services
from connector.models import Connection


class AdapterCache:
    def __init__(self, services: Services) -> None:
        self._services = services
        self._adapters: dict[str, tuple[datetime, Adapter]] = {}
        self._lock = asyncio.Lock()

    async def get(self, row: Connection) -> Adapter:
        async with self._lock:
            cached = self._adapters.get(row.id)
            if cached is not None and cached[0] == row.updated_at:
                return cached[1]
            if cached is not None:
                await cached[1].aclose()
            adapter = build_adapter(self._services, row)
            self._adapters[row.id] = (row.updated_at, adapter)
            return adapter

    async def rmm(self, row: Connection) -> RmmAdapter:
        adapter = await self.get(row)
        assert isinstance(adapter, RmmAdapter), row.kind
        return adapter

    async def psa(self, row: Connection) -> PsaAdapter:
        adapter = await self.get(row)
        assert isinstance(adapter, PsaAdapter), row.kind
        return adapter

    async def security(self, row: Connection) -> SecurityAdapter:
        adapter = await self.get(row)
        assert isinstance(adapter, SecurityAdapter), row.kind
        return adapter

    async def aclose(self) -> None:
        async with self._lock:
            for _, adapter in self._adapters.values():
                await adapter.aclose()
            self._adapters.clear()
