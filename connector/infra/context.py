"""The process-wide infrastructure the app, CLI and workers share: settings, database engine and
sessions, credential cipher, adapter registry and vendor transport, metrics, and in-process
signals (wake the workers, a connection changed). Feature objects are built by the composition
root (`connector.runtime`) and handed in — this module imports no feature."""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Protocol

import httpx
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from adapters.base import Adapter, PsaAdapter, RmmAdapter, SecurityAdapter, TransportFactory
from adapters.registry import AdapterRegistry, discover
from connector.infra import db
from connector.infra.budgets import BudgetStore, LocalBudgets
from connector.infra.metrics import Metrics
from connector.infra.security.crypto import CredentialCipher, load_or_create_key_file
from connector.infra.security.urls import GuardedTransport, UrlPolicy
from connector.models import Connection
from connector.settings import Settings


class AdapterSource(Protocol):
    """Live adapter objects for connection rows (implemented by `connections.adapters.AdapterCache`)."""

    async def get(self, row: Connection) -> Adapter: ...

    async def rmm(self, row: Connection) -> RmmAdapter: ...

    async def psa(self, row: Connection) -> PsaAdapter: ...

    async def security(self, row: Connection) -> SecurityAdapter: ...

    async def aclose(self) -> None: ...


NO_ADAPTERS = "these services were built without adapters (use connector.runtime.build_services)"


class NoAdapters:
    """The adapter source of services built without the composition root (migrations, key
    management): any use is a wiring mistake, said plainly."""

    async def get(self, row: Connection) -> Adapter:
        raise RuntimeError(NO_ADAPTERS)

    async def rmm(self, row: Connection) -> RmmAdapter:
        raise RuntimeError(NO_ADAPTERS)

    async def psa(self, row: Connection) -> PsaAdapter:
        raise RuntimeError(NO_ADAPTERS)

    async def security(self, row: Connection) -> SecurityAdapter:
        raise RuntimeError(NO_ADAPTERS)

    async def aclose(self) -> None:
        return None


Purpose = Literal["requests", "work"]
"""What an engine serves, which sets how long a statement may take (`timeouts_for`)."""


def timeouts_for(settings: Settings, purpose: Purpose) -> db.Timeouts:
    """Requests (API, dashboard, webhooks, readiness) get seconds, so a stalled database answers
    503 quickly; background work gets minutes per statement, so a large sync or billing run is
    never cut short by a limit meant for requests."""
    statement = settings.db_command_timeout_seconds
    if purpose == "work":
        statement = settings.db_work_command_timeout_seconds
    return db.Timeouts(
        connect=settings.db_connect_timeout_seconds,
        statement=statement,
        pool=settings.db_pool_timeout_seconds,
    )


def build_engine(settings: Settings, purpose: Purpose) -> AsyncEngine:
    return db.create_engine(
        settings.resolved_database_url(),
        pool_size=settings.db_pool_size,
        schema=settings.database_schema,
        timeouts=timeouts_for(settings, purpose),
    )


@dataclass
class Services:
    settings: Settings
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    cipher: CredentialCipher
    registry: AdapterRegistry
    url_policy: UrlPolicy
    transport_factory: TransportFactory
    metrics: Metrics = field(default_factory=Metrics)
    adapter_sleep: Callable[[float], Awaitable[None]] | None = None
    """How adapters wait between retries (None = asyncio.sleep); tests make it instant."""
    gauge_refreshers: list[Callable[[Services], Awaitable[None]]] = field(default_factory=list)

    wake_listeners: list[Callable[[], None]] = field(default_factory=list)
    """In-process workers register here to start on new jobs without waiting for their poll."""
    connection_listeners: list[Callable[[str], None]] = field(default_factory=list)
    """Caches of connection-derived state register here; told after a change is committed."""
    adapters: AdapterSource = field(default_factory=NoAdapters)
    """Set by the composition root; shared with the `work` services."""
    budgets: BudgetStore = field(default_factory=LocalBudgets)
    """Each connection's vendor request budget (set by the composition root to the deployment's
    shared store); shared with the `work` services."""
    purpose: Purpose = "requests"

    @functools.cached_property
    def work(self) -> Services:
        """These services over an engine with background work's statement timeouts: for the
        worker and scheduler inside `serve`, and for long work a request starts and waits for (a
        billing push). Metrics, gauges, wake-ups and vendor access stay shared; created on first
        use, closed with these services."""
        if self.purpose == "work":
            return self
        engine = build_engine(self.settings, "work")
        return Services(
            settings=self.settings,
            engine=engine,
            sessions=db.session_factory(engine),
            cipher=self.cipher,
            registry=self.registry,
            url_policy=self.url_policy,
            transport_factory=self.transport_factory,
            metrics=self.metrics,
            adapter_sleep=self.adapter_sleep,
            gauge_refreshers=self.gauge_refreshers,
            wake_listeners=self.wake_listeners,
            connection_listeners=self.connection_listeners,
            adapters=self.adapters,
            budgets=self.budgets,
            purpose="work",
        )

    def wake_workers(self) -> None:
        for wake in self.wake_listeners:
            wake()

    def connection_changed(self, connection_id: str) -> None:
        """A connection's row changed or went away (call after the commit)."""
        for listener in list(self.connection_listeners):
            listener(connection_id)

    async def refresh_gauges(self) -> None:
        """Recompute database-derived gauges (job and delivery counts) at scrape time."""
        for refresh in self.gauge_refreshers:
            await refresh(self)

    async def close_work(self) -> None:
        """Close the `work` services if they were created (they are created again on next use)."""
        work = self.__dict__.pop("work", self)
        if work is not self:
            await work.aclose()

    async def aclose(self) -> None:
        await self.close_work()
        if self.purpose == "requests":  # the work services share the adapters: closed once, here
            await self.adapters.aclose()
            await self.budgets.aclose()
        await self.engine.dispose()


def build_cipher(settings: Settings) -> CredentialCipher:
    if settings.secret_key is not None and settings.secret_key.get_secret_value().strip():
        return CredentialCipher.from_setting(settings.secret_key.get_secret_value())
    return CredentialCipher.from_setting(load_or_create_key_file(Path(settings.data_dir) / "secret.key"))


def base_services(
    settings: Settings,
    *,
    registry: AdapterRegistry | None = None,
    transport_factory: TransportFactory | None = None,
    metrics: Metrics | None = None,
    purpose: Purpose = "requests",
) -> Services:
    """The infrastructure alone, without feature objects: `connector.runtime.build_services` adds
    them (the adapter cache); commands that touch no vendor (migrate, keys, secrets) use this."""
    policy = UrlPolicy(
        allow_private_networks=settings.allow_private_networks,
        allow_insecure_loopback=settings.allow_insecure_loopback,
    )

    def guarded(_url: str) -> httpx.AsyncBaseTransport:
        return GuardedTransport(policy)

    engine = build_engine(settings, purpose)
    return Services(
        settings=settings,
        engine=engine,
        sessions=db.session_factory(engine),
        cipher=build_cipher(settings),
        registry=registry if registry is not None else discover(),
        url_policy=policy,
        transport_factory=transport_factory or guarded,
        metrics=metrics or Metrics(),
        purpose=purpose,
    )
