"""The FastAPI application factory: the HTTP side of the composition root. The lifespan owns the
services (or borrows the caller's), the webhook ingest and the background components; nothing is
created at import time."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi_offline import FastAPIOffline
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from connector.actions import api as actions
from connector.alerts import api as alerts
from connector.alerts import webhook as webhooks
from connector.alerts.ingest import Ingest
from connector.api import health
from connector.api.deps import StrictQuery
from connector.api.errors import install_error_handlers
from connector.api.middleware import (
    BodyLimitMiddleware,
    MetricsMiddleware,
    NulRefusalMiddleware,
    RequestIdMiddleware,
)
from connector.api.openapi import install_openapi
from connector.audit import api as audit
from connector.billing import api as billing
from connector.connections import api as connections
from connector.fleet import api as fleet
from connector.infra import db
from connector.infra.access import AccessLog
from connector.infra.context import Services
from connector.infra.logs import configure_logging, get_logger
from connector.infra.loop import loop_name, settle_after_startup
from connector.infra.metrics import Metrics
from connector.maintenance import api as maintenance
from connector.notifications import api as notifications
from connector.reports import api as reports
from connector.rules import api as rules
from connector.runtime import BackgroundStarter, background_components, build_services
from connector.settings import Settings
from connector.sync import api as sync
from connector.tenants import api as admin
from connector.web import reports as web_reports
from connector.web.routes import install as install_dashboard

log = get_logger("connector.app")


class WebhooksFirst:
    """Hands a webhook delivery to `WebhookFastPath` before anything else runs. At alert-storm
    rates the layers every other request passes through (FastAPI's telemetry check, error pages,
    request ids, body limits, NUL refusal, metrics) cost more than storing the delivery; the fast
    path does what of theirs a webhook needs itself.

    It stands twice: around the app's middleware stack (so in-process callers of the app take the
    same path) and, as `served(app)`, in front of the app itself for the HTTP server."""

    def __init__(
        self, app: ASGIApp, fast_path: webhooks.WebhookFastPath, owner: FastAPI, *, served: bool = False
    ) -> None:
        self.app = app
        self.fast_path = fast_path
        self.owner = owner
        self.served = served

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan" and self.served:
            await self.app(scope, receive, _tuned_after_startup(send))
            return
        connection_id = self.fast_path.connection_of(scope)
        if connection_id is None:
            await self.app(scope, receive, send)
            return
        scope["app"] = self.owner
        await self.fast_path.serve(scope, receive, send, connection_id)


def _tuned_after_startup(send: Send) -> Send:
    """Settles the process (`loop.settle_after_startup`) once the app has started."""

    async def send_after(message: Message) -> None:
        if message["type"] == "lifespan.startup.complete":
            settle_after_startup()
        await send(message)

    return send_after


def put_webhooks_first(app: FastAPI, fast_path: webhooks.WebhookFastPath) -> None:
    """Starlette builds the middleware stack on the first request; wrap what it builds."""
    build = app.build_middleware_stack

    def build_with_webhooks_first() -> ASGIApp:
        return WebhooksFirst(build(), fast_path, app)

    app.build_middleware_stack = build_with_webhooks_first  # type: ignore[method-assign]
    app.state.webhook_fast_path = fast_path


def served(app: FastAPI) -> ASGIApp:
    """What the HTTP server runs: the app, with webhook deliveries taken before it is entered."""
    return WebhooksFirst(app, app.state.webhook_fast_path, app, served=True)


def create_app(
    settings: Settings | None = None,
    *,
    services: Services | None = None,
    migrate: bool = True,
    background: list[BackgroundStarter] | None = None,
) -> FastAPI:
    settings = settings or (services.settings if services else Settings())
    metrics = services.metrics if services is not None else Metrics()
    access = AccessLog()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        owned = services is None
        current = services or build_services(settings, metrics=metrics)
        ingest = Ingest(current)
        app.state.services, app.state.ingest = current, ingest
        if migrate:
            await db.migrate(settings.resolved_database_url(), schema=settings.database_schema)
        # Background work runs over its own engine: statement timeouts fit for jobs, not requests.
        work = current.work if background else current
        stops = [await start(work) for start in (background or [])]
        log.info("service started", loop=loop_name(), background=len(stops))
        try:
            yield
        finally:
            for stop in reversed(stops):
                await stop()
            await ingest.stop()
            access.flush()
            await (current.aclose() if owned else current.close_work())

    # `/docs` and `/redoc` load their scripts and styles from the installed package, not a CDN.
    app: FastAPI = FastAPIOffline(
        title="connector",
        version="0.1.0",
        description="RMM endpoint security status, alerts and billing into the PSA.",
        lifespan=lifespan,
        swagger_ui_parameters={"persistAuthorization": True},
    )
    if services is not None:
        app.state.services = services
    install_error_handlers(app)
    install_openapi(app)
    app.include_router(health.router)
    for router in (
        admin.router,
        connections.router,
        rules.router,
        alerts.router,
        fleet.router,
        sync.router,
        actions.router,
        billing.router,
        audit.router,
        maintenance.router,
        notifications.router,
        reports.router,
    ):  # a mistyped filter is refused rather than ignored
        app.include_router(router, dependencies=[StrictQuery])
    app.include_router(webhooks.router)
    app.include_router(web_reports.router)
    install_dashboard(app)
    app.add_middleware(NulRefusalMiddleware)  # inside the body limit: reads bodies already capped
    app.add_middleware(
        BodyLimitMiddleware,
        max_bytes=settings.max_body_bytes,
        webhook_max_bytes=settings.webhook_max_body_bytes,
        path_max_bytes={"/api/v1/billing/usage-uploads": settings.usage_upload_max_bytes},
    )
    app.add_middleware(MetricsMiddleware, metrics=metrics, access=access)
    app.add_middleware(RequestIdMiddleware)  # outermost: every request has an id
    fast_path = webhooks.WebhookFastPath(
        max_bytes=settings.webhook_max_body_bytes, metrics=metrics, access=access
    )
    put_webhooks_first(app, fast_path)  # the hot path skips the API's middleware and router
    return app


def app_from_environment() -> ASGIApp:
    """One process of `connector serve --workers N` (or `uvicorn connector.app:app_from_environment
    --factory`): an app object cannot cross into the worker processes, so each builds its own from
    the environment, with logging — and its redaction of `?token=` and credentials — configured
    exactly as `connector serve` configures it, and the same in-process worker and scheduler."""
    settings = Settings()
    configure_logging(settings.log_level, settings.log_format)
    return served(
        create_app(settings, background=background_components(settings, worker=True, scheduler=True))
    )
