"""The process-wide services the app, CLI and workers share, created by the app lifespan or CLI."""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import httpx
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from adapters.base import TransportFactory
from adapters.registry import AdapterRegistry, discover
from connector.infra import db
from connector.infra.metrics import Metrics
from connector.infra.security.crypto import CredentialCipher, load_or_create_key_file
from connector.infra.security.urls import GuardedTransport, UrlPolicy
from connector.settings import Settings

if TYPE_CHECKING:
    from connector.alerts.ingest import DeliveryWriter, TargetCache
    from connector.connections.adapters import AdapterCache


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
            purpose="work",
        )

    @functools.cached_property
    def adapters(self) -> AdapterCache:
        from connector.connections.adapters import AdapterCache

        return AdapterCache(self)

    @functools.cached_property
    def webhook_targets(self) -> TargetCache:
        from connector.alerts.ingest import TargetCache

        return TargetCache(self)

    @functools.cached_property
    def delivery_writer(self) -> DeliveryWriter:
        from connector.alerts.ingest import DeliveryWriter

        return DeliveryWriter(self)

    def wake_workers(self) -> None:
        for wake in self.wake_listeners:
            wake()

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
        if "delivery_writer" in self.__dict__:
            await self.delivery_writer.stop()
        if "adapters" in self.__dict__:
            await self.adapters.aclose()
        await self.engine.dispose()


def build_cipher(settings: Settings) -> CredentialCipher:
    if settings.secret_key is not None and settings.secret_key.get_secret_value().strip():
        return CredentialCipher.from_setting(settings.secret_key.get_secret_value())
    return CredentialCipher.from_setting(load_or_create_key_file(Path(settings.data_dir) / "secret.key"))


def build_services(
    settings: Settings,
    *,
    registry: AdapterRegistry | None = None,
    transport_factory: TransportFactory | None = None,
    metrics: Metrics | None = None,
    purpose: Purpose = "requests",
) -> Services:
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
