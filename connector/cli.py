"""The `connector` command line: serve, worker, migrate, sync, apikey, secrets, demo."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import select

from adapters.registry import AdapterRegistry
from connector.infra import db
from connector.infra.context import Services
from connector.infra.logs import configure_logging, get_logger
from connector.infra.security.apikeys import ApiRole
from connector.infra.security.crypto import generate_key
from connector.models import Connection
from connector.runtime import build_services
from connector.settings import Settings
from connector.statuses import SyncStatus, SyncTrigger
from connector.tenants.service import (
    DEFAULT_TENANT,
    create_api_key,
    get_or_create_tenant,
    has_active_admin_key,
)

log = get_logger("connector.cli")

EXIT_BILLING_PUSH_RUNNING = 3
"""`sync --billing`: another push of a tenant held its lease (README, command table)."""


async def bootstrap(services: Services, *, out: Callable[[str], Any] = print) -> None:
    """Migrate, ensure the default tenant, and on first start print an admin key once."""
    await db.migrate(services.settings.resolved_database_url(), schema=services.settings.database_schema)
    async with db.transaction(services.sessions) as session:
        if await has_active_admin_key(session):
            return
        tenant = await get_or_create_tenant(session, DEFAULT_TENANT)
        _, plaintext = await create_api_key(session, tenant, ApiRole.ADMIN, "initial admin")
    out(
        "\n  No API key existed, so an admin key was created. It is shown only this once:\n\n"
        f"    {plaintext}\n\n"
        "  Use it as 'Authorization: Bearer <key>'. Create more with 'connector apikey create'.\n",
    )


def cmd_serve(settings: Settings, args: argparse.Namespace) -> int:
    import uvicorn

    from connector.app import create_app
    from connector.runtime import background_components

    services = build_services(settings, registry=AdapterRegistry(), purpose="work")

    async def prepare() -> None:
        try:
            await bootstrap(services)
        finally:  # in the same event loop as the connections (another loop cannot close them)
            await services.engine.dispose()

    asyncio.run(prepare())
    app = create_app(
        settings,
        background=background_components(
            settings, worker=not args.no_worker, scheduler=not args.no_scheduler
        ),
    )
    uvicorn.run(
        app,
        host=args.host or settings.host,
        port=args.port or settings.port,
        log_config=None,
        proxy_headers=True,
        server_header=False,
    )
    return 0


def cmd_worker(settings: Settings, args: argparse.Namespace) -> int:
    """Job workers only, sharing the database with any number of `serve` replicas (scale-out)."""
    import signal

    from connector import runtime

    async def run() -> int:
        services = build_services(settings, purpose="work")
        try:
            await db.migrate(settings.resolved_database_url(), schema=settings.database_schema)
            worker = runtime.worker(services, concurrency=args.concurrency, poll_interval=args.poll_interval)
            if args.once:
                ran = await worker.run_until_idle()
                print(f"ran {ran} job(s); none runnable now")
                return 0
            loop = asyncio.get_running_loop()
            stopping = asyncio.Event()
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, stopping.set)
            task = asyncio.create_task(worker.run(), name="job-worker")
            log.info("worker started", owner=worker.owner, concurrency=args.concurrency)
            await stopping.wait()
            log.info("worker stopping: finishing running jobs")
            await worker.stop()
            await task
            return 0
        finally:
            await services.aclose()

    return asyncio.run(run())


def cmd_sync(settings: Settings, args: argparse.Namespace) -> int:
    """Run a status sync of every enabled RMM connection (or one) in the foreground, then the ticket
    work it produced; print a summary; exit 1 if any connection failed, 2 if one was already running."""
    from connector.infra.jobs.worker import Worker
    from connector.models import SyncRun
    from connector.runtime import AFTER_SYNC_WORK
    from connector.sync.run import SyncConflict, execute_run, rmm_connections, start_run

    if args.billing:
        return cmd_billing(settings, args)
    tty = sys.stdout.isatty()

    def progress(name: str) -> Callable[[SyncRun], None]:
        def show(run: SyncRun) -> None:
            line = (
                f"{name}: {run.pages} page(s), {run.endpoints_seen} endpoint(s), "
                f"{run.endpoints_changed} changed"
            )
            if tty:
                print(f"\r\x1b[2K{SPINNER[run.pages % len(SPINNER)]} {line}", end="", flush=True)
            else:
                print(line, flush=True)

        return show

    async def run() -> int:
        services = build_services(settings, purpose="work")
        code = 0
        try:
            await db.migrate(settings.resolved_database_url(), schema=settings.database_schema)
            async with services.sessions() as session:
                connections = await rmm_connections(session)
            if args.connection:
                connections = [c for c in connections if c.id == args.connection]
                if not connections:
                    print(f"no enabled RMM connection with id {args.connection}", file=sys.stderr)
                    return 2
            if not connections:
                print("no enabled RMM connections to sync")
                return 0
            for connection in connections:
                try:
                    async with db.transaction(services.sessions) as session:
                        started = await start_run(session, connection, SyncTrigger.CLI)
                except SyncConflict as conflict:
                    print(f"{connection.name}: a sync is already running (run {conflict.run_id}); skipped")
                    code = max(code, 2)
                    continue
                done = await execute_run(services, started.id, progress=progress(connection.name))
                if tty:
                    print()
                print(
                    f"{connection.name}: {done.status} - {'full' if done.full else 'incremental'} pass, "
                    f"{done.pages} page(s), {done.endpoints_seen} seen, {done.endpoints_changed} changed, "
                    f"{done.endpoints_retired} retired, "
                    f"problems +{done.problems_opened}/-{done.problems_closed}, "
                    f"{done.psa_calls} PSA configuration write(s)"
                )
                for error in done.errors:
                    print(f"  error: {error.get('message')}", file=sys.stderr)
                if done.status != SyncStatus.SUCCEEDED:
                    code = max(code, 1)
            tickets = await Worker(services, concurrency=8, handlers=AFTER_SYNC_WORK).run_until_idle()
            print(f"ticket and configuration work: {tickets} job(s) run")
            return code
        finally:
            await services.aclose()

    return asyncio.run(run())


def cmd_billing(settings: Settings, args: argparse.Namespace) -> int:
    """Push (or with --dry-run, plan) every tenant's billing lines for the period; exit 1 on any
    error line, 2 if the period is closed and --override was not given, 3 if a push of a tenant was
    already running (that tenant is skipped; run again later)."""
    from connector.audit.domain import CLI
    from connector.billing.domain import parse_period
    from connector.billing.service import PeriodClosed, PushRunning, push
    from connector.models import BillingRule, Tenant

    if not args.period:
        print("--billing needs --period YYYY-MM", file=sys.stderr)
        return 2
    try:
        parse_period(args.period)
    except ValueError as exc:
        print(f"--period: {exc}", file=sys.stderr)
        return 2

    async def run() -> int:
        services = build_services(settings, purpose="work")
        code = 0
        try:
            await db.migrate(settings.resolved_database_url(), schema=settings.database_schema)
            async with services.sessions() as session:
                tenants = list(
                    await session.scalars(
                        select(Tenant)
                        .where(Tenant.id.in_(select(BillingRule.tenant_id)))
                        .order_by(Tenant.name)
                    )
                )
            for tenant in tenants:
                try:
                    _, results = await push(
                        services,
                        tenant.id,
                        args.period,
                        dry_run=args.dry_run,
                        override=args.override,
                        trigger="cli",
                        actor=CLI,
                    )
                except PeriodClosed:
                    print(f"{tenant.name}: period {args.period} is closed (use --override to push it)")
                    code = max(code, 2)
                    continue
                except PushRunning as running:
                    print(f"{tenant.name}: skipped: {running}", file=sys.stderr)
                    code = max(code, EXIT_BILLING_PUSH_RUNNING)
                    continue
                for r in results:
                    detail = f" - {r.error}" if r.error else ""
                    print(
                        f"{tenant.name}: company {r.company_id} {r.product} x{r.quantity}: {r.action}{detail}"
                    )
                    if r.action == "error":
                        code = max(code, 1)
                summary: dict[str, int] = {}
                for r in results:
                    summary[r.action] = summary.get(r.action, 0) + 1
                mode = " (dry run: nothing written)" if args.dry_run else ""
                print(f"{tenant.name}: {args.period} {summary or 'no lines'}{mode}")
            return code
        finally:
            await services.aclose()

    return asyncio.run(run())


SPINNER = "|/-\\"


def cmd_demo(settings: Settings, args: argparse.Namespace) -> int:
    from connector import demo

    return demo.run(settings, host=args.host or settings.host, port=args.port or settings.port)


def cmd_migrate(settings: Settings, args: argparse.Namespace) -> int:
    url = settings.resolved_database_url()
    if args.downgrade:
        asyncio.run(db.downgrade(url, args.revision, schema=settings.database_schema))
    else:
        asyncio.run(db.migrate(url, args.revision, schema=settings.database_schema))
    print(f"database at {args.revision}")
    return 0


def cmd_apikey_create(settings: Settings, args: argparse.Namespace) -> int:
    async def run() -> str:
        services = build_services(settings, purpose="work")
        try:
            await db.migrate(settings.resolved_database_url(), schema=settings.database_schema)
            async with db.transaction(services.sessions) as session:
                tenant = await get_or_create_tenant(session, args.tenant)
                _, plaintext = await create_api_key(session, tenant, ApiRole(args.role), args.name)
            return plaintext
        finally:
            await services.aclose()

    key = asyncio.run(run())
    print(key)
    print(
        f"# {args.role} key for tenant {args.tenant!r}; shown once, only its hash is stored", file=sys.stderr
    )
    return 0


def cmd_secrets_rotate(settings: Settings, _args: argparse.Namespace) -> int:
    """Re-encrypt every stored secret with the first key of CONNECTOR_SECRET_KEY."""

    async def run() -> int:
        services = build_services(settings, purpose="work")
        try:
            async with db.transaction(services.sessions) as session:
                rows = list(await session.scalars(select(Connection)))
                for row in rows:
                    row.credentials_encrypted = services.cipher.rotate(row.credentials_encrypted)
                    if row.webhook_secret_encrypted is not None:
                        row.webhook_secret_encrypted = services.cipher.rotate(row.webhook_secret_encrypted)
            return len(rows)
        finally:
            await services.aclose()

    count = asyncio.run(run())
    print(f"re-encrypted secrets of {count} connection(s) with the primary key")
    return 0


def cmd_secrets_generate(_settings: Settings, _args: argparse.Namespace) -> int:
    print(generate_key())
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="connector", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="API, worker and scheduler in one process")
    serve.add_argument("--host")
    serve.add_argument("--port", type=int)
    serve.add_argument("--no-worker", action="store_true", help="do not run the job worker in-process")
    serve.add_argument("--no-scheduler", action="store_true", help="do not run scheduled syncs in-process")
    serve.set_defaults(func=cmd_serve)

    worker = sub.add_parser("worker", help="run job workers only (scale-out next to `serve`)")
    worker.add_argument("--concurrency", type=int, default=4, help="jobs run at once (default 4)")
    worker.add_argument("--poll-interval", type=float, default=1.0, help="seconds between idle polls")
    worker.add_argument("--once", action="store_true", help="run what is runnable now, then exit")
    worker.set_defaults(func=cmd_worker)

    sync = sub.add_parser("sync", help="run a status sync once in the foreground (for cron)")
    sync.add_argument("--connection", help="only this RMM connection id")
    sync.add_argument("--billing", action="store_true", help="push billing lines instead of a status sync")
    sync.add_argument("--period", help="billing month, YYYY-MM (with --billing)")
    sync.add_argument("--dry-run", action="store_true", help="with --billing: report, write nothing")
    sync.add_argument("--override", action="store_true", help="with --billing: push a closed period")
    sync.set_defaults(func=cmd_sync)

    demo_cmd = sub.add_parser("demo", help="the service with simulated vendor systems and sample data")
    demo_cmd.add_argument("--host")
    demo_cmd.add_argument("--port", type=int)
    demo_cmd.set_defaults(func=cmd_demo)

    migrate = sub.add_parser("migrate", help="apply database migrations")
    migrate.add_argument("revision", nargs="?", default="head")
    migrate.add_argument("--downgrade", action="store_true", help="downgrade to the revision instead")
    migrate.set_defaults(func=cmd_migrate)

    apikey = sub.add_parser("apikey", help="manage API keys").add_subparsers(dest="apikey", required=True)
    create = apikey.add_parser("create", help="create an API key (printed once)")
    create.add_argument("--role", choices=[r.value for r in ApiRole], required=True)
    create.add_argument("--tenant", default=DEFAULT_TENANT, help="tenant name (created if new)")
    create.add_argument("--name", default="cli")
    create.set_defaults(func=cmd_apikey_create)

    secrets_cmd = sub.add_parser("secrets", help="credential encryption keys").add_subparsers(
        dest="secrets", required=True
    )
    secrets_cmd.add_parser("rotate", help="re-encrypt stored secrets with the primary key").set_defaults(
        func=cmd_secrets_rotate
    )
    secrets_cmd.add_parser("generate-key", help="print a new key for CONNECTOR_SECRET_KEY").set_defaults(
        func=cmd_secrets_generate
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    settings = Settings()
    configure_logging(settings.log_level, settings.log_format)
    code: int = args.func(settings, args)
    return code


if __name__ == "__main__":
    sys.exit(main())
