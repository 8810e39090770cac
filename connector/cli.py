"""The `connector` command line: serve, worker, migrate, sync, apikey, secrets, demo."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Callable, Sequence
from enum import IntEnum
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from pydantic import ValidationError
from sqlalchemy import exc as sa_exc
from sqlalchemy import select

from adapters.registry import AdapterRegistry
from connector.infra import db
from connector.infra import loop as aio
from connector.infra.context import Services
from connector.infra.logs import configure_logging, get_logger
from connector.infra.security.apikeys import ApiRole
from connector.infra.security.crypto import SecretKeyError, generate_key, write_private_file
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


class Exit(IntEnum):
    """The exit codes of every command (README, "Exit codes"). When several apply to one run (one
    connection failed, another was already syncing), the highest is returned."""

    OK = 0
    FAILED = 1
    """Work failed: a connection's sync failed, a billing line was an error."""
    USAGE = 2
    """The command line is wrong (an unknown option, a malformed --period); argparse's code too."""
    BILLING_PUSH_RUNNING = 3
    """`sync --billing`: another push of a tenant held its lease; that tenant was skipped."""
    SYNC_RUNNING = 4
    """`sync`: a connection was already syncing; it was skipped."""
    PERIOD_CLOSED = 5
    """`sync --billing`: the period is closed and --override was not given."""
    NOT_FOUND = 6
    """`sync --connection ID`: no enabled RMM connection has that id."""
    DATABASE_UNAVAILABLE = 7
    """The database could not be reached or did not answer in time."""
    CONFIGURATION = 8
    """A setting is invalid (the message names it); nothing was started."""


EXIT_BILLING_PUSH_RUNNING = Exit.BILLING_PUSH_RUNNING


class ConfigurationError(Exception):
    """A setting that cannot work; `main` prints one line naming it and exits `Exit.CONFIGURATION`."""

    def __init__(self, setting: str, message: str) -> None:
        super().__init__(f"{setting}: {message}")
        self.setting = setting


async def bootstrap(services: Services, *, terminal: Callable[[str], Any] | None = None) -> None:
    """Migrate and, on the first start, create an admin key: written once to a file only this user
    can read (`CONNECTOR_INITIAL_ADMIN_KEY_FILE`) and shown on an interactive terminal, never to
    the log stream. Under the migration lock, so processes starting together create one key."""
    settings = services.settings
    url = settings.resolved_database_url()
    path = settings.resolved_initial_admin_key_file()
    async with db.migration_lock(url, schema=settings.database_schema):
        await db.migrate(url, schema=settings.database_schema, locked=True)
        async with db.transaction(services.sessions) as session:
            if await has_active_admin_key(session):
                return
            tenant = await get_or_create_tenant(session, DEFAULT_TENANT)
            _, plaintext = await create_api_key(session, tenant, ApiRole.ADMIN, "initial admin")
            try:  # before the commit: a key nobody can read is not created
                write_private_file(path, plaintext + "\n")
            except OSError as exc:
                raise ConfigurationError(
                    "CONNECTOR_INITIAL_ADMIN_KEY_FILE", f"cannot write {path}: {exc.strerror}"
                ) from exc
    log.warning(
        "no API key existed: an admin key was created and written to a file only this user can read; "
        "read it, then delete the file",
        path=str(path),
    )
    if terminal is None and sys.stdout.isatty():
        terminal = print
    if terminal is not None:
        terminal(
            "\n  No API key existed, so an admin key was created (also in "
            f"{path}):\n\n    {plaintext}\n\n"
            "  Use it as 'Authorization: Bearer <key>'. Create more with 'connector apikey create'.\n",
        )


def cmd_serve(settings: Settings, args: argparse.Namespace) -> int:
    import uvicorn

    from connector.app import create_app, served
    from connector.runtime import background_components

    services = build_services(settings, registry=AdapterRegistry(), purpose="work")

    async def prepare() -> None:
        try:
            await bootstrap(services)
        finally:  # in the same event loop as the connections (another loop cannot close them)
            await services.engine.dispose()

    aio.run(prepare())
    options: dict[str, Any] = {
        "host": args.host or settings.host,
        "port": args.port or settings.port,
        "log_config": None,
        "access_log": False,  # the app's own (`connector.infra.access`)
        "proxy_headers": True,
        "server_header": False,
        "loop": aio.uvicorn_loop(),
    }
    if args.workers > 1:
        # Each process builds the app itself (`app_from_environment`) from this environment: the
        # switches reach it there, so all N run the worker and scheduler as this command says.
        if args.no_worker:
            os.environ["CONNECTOR_RUN_WORKER"] = "false"
        if args.no_scheduler:
            os.environ["CONNECTOR_RUN_SCHEDULER"] = "false"
        # Each worker imports the whole app before it answers uvicorn's health check; uvicorn's 5 s
        # default kills and restarts workers for ever on a busy host where that import takes longer.
        uvicorn.run(
            "connector.app:app_from_environment",
            factory=True,
            workers=args.workers,
            timeout_worker_healthcheck=60,
            **options,
        )
        return 0
    app = create_app(
        settings,
        background=background_components(
            settings, worker=not args.no_worker, scheduler=not args.no_scheduler
        ),
    )
    uvicorn.run(served(app), **options)
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
            aio.settle_after_startup()
            log.info("worker started", owner=worker.owner, concurrency=args.concurrency, loop=aio.loop_name())
            await stopping.wait()
            log.info("worker stopping: finishing running jobs")
            await worker.stop()
            await task
            return 0
        finally:
            await services.aclose()

    return aio.run(run())


def cmd_sync(settings: Settings, args: argparse.Namespace) -> int:
    """Run a status sync of every enabled RMM connection (or one) in the foreground, then the ticket
    work it produced; print a summary; exit 1 if any connection failed, 2 if one was already running."""
    from connector.infra.jobs.worker import Worker
    from connector.models import SyncRun
    from connector.runtime import AFTER_SYNC_WORK
    from connector.sync.run import SyncConflict, execute_run, start_run, sync_sources

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
        code = Exit.OK
        try:
            await db.migrate(settings.resolved_database_url(), schema=settings.database_schema)
            async with services.sessions() as session:
                connections = await sync_sources(session)
            if args.connection:
                connections = [c for c in connections if c.id == args.connection]
                if not connections:
                    print(f"no enabled RMM or security connection with id {args.connection}", file=sys.stderr)
                    return Exit.NOT_FOUND
            if not connections:
                print("no enabled RMM connections or security consoles to sync")
                return Exit.OK
            runs: list[tuple[str, str]] = []
            for connection in connections:
                try:
                    async with db.transaction(services.sessions) as session:
                        started = await start_run(session, connection, SyncTrigger.CLI)
                except SyncConflict as conflict:
                    print(f"{connection.name}: a sync is already running (run {conflict.run_id}); skipped")
                    code = max(code, Exit.SYNC_RUNNING)
                    continue
                await execute_run(services, started.id, progress=progress(connection.name))
                if tty:
                    print()
                runs.append((connection.name, started.id))
            # The configuration writes of a run are its jobs: the run's PSA calls are known once
            # they are done, so the summary is printed after them, as the run recorded it.
            tickets = await Worker(services, concurrency=8, handlers=AFTER_SYNC_WORK).run_until_idle()
            for name, run_id in runs:
                async with services.sessions() as session:
                    done = await session.get(SyncRun, run_id)
                assert done is not None
                print(
                    f"{name}: {done.status} - {'full' if done.full else 'incremental'} pass, "
                    f"{done.pages} page(s), {done.endpoints_seen} seen, {done.endpoints_changed} changed, "
                    f"{done.endpoints_retired} retired, "
                    f"problems +{done.problems_opened}/-{done.problems_closed}, "
                    f"{done.psa_calls} PSA call(s)"
                )
                for error in done.errors:
                    print(f"  error: {error.get('message')}", file=sys.stderr)
                if done.status != SyncStatus.SUCCEEDED:
                    code = max(code, Exit.FAILED)
            print(f"ticket and configuration work: {tickets} job(s) run")
            return code
        finally:
            await services.aclose()

    return aio.run(run())


def cmd_billing(settings: Settings, args: argparse.Namespace) -> int:
    """Push (or with --dry-run, plan) every tenant's billing lines for the period, then print a
    table of the outcomes per tenant; exit codes: `Exit`."""
    from connector.audit.domain import CLI
    from connector.billing.domain import parse_period
    from connector.billing.service import PeriodClosed, PushRunning, push
    from connector.models import BillingRule, Tenant

    if not args.period:
        print("--billing needs --period YYYY-MM", file=sys.stderr)
        return Exit.USAGE
    try:
        parse_period(args.period)
    except ValueError as exc:
        print(f"--period: {exc}", file=sys.stderr)
        return Exit.USAGE

    async def run() -> int:
        services = build_services(settings, purpose="work")
        code = Exit.OK
        summary: list[tuple[str, dict[str, int]]] = []
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
                    code = max(code, Exit.PERIOD_CLOSED)
                    continue
                except PushRunning as running:
                    print(f"{tenant.name}: skipped: {running}", file=sys.stderr)
                    code = max(code, Exit.BILLING_PUSH_RUNNING)
                    continue
                counts: dict[str, int] = {}
                for r in results:
                    detail = f" - {r.error or r.reason}" if r.error or r.reason else ""
                    print(
                        f"{tenant.name}: company {r.company_id} {r.product} x{r.quantity}: {r.action}{detail}"
                    )
                    if r.action == "error":
                        code = max(code, Exit.FAILED)
                    counts[r.action] = counts.get(r.action, 0) + 1
                summary.append((tenant.name, counts))
            mode = " (dry run: nothing written)" if args.dry_run else ""
            print(f"\nbilling {args.period}{mode}")
            print(billing_table(summary))
            return code
        finally:
            await services.aclose()

    return aio.run(run())


SPINNER = "|/-\\"


def billing_table(rows: Sequence[tuple[str, dict[str, int]]]) -> str:
    """Lines per tenant and outcome (created, updated, unchanged, error, ...) as a plain-text table."""
    actions: list[str] = []
    for _, counts in rows:
        actions += [a for a in counts if a not in actions]
    header = ["tenant", *actions, "lines"]
    body = [
        [name, *(str(counts.get(a, 0)) for a in actions), str(sum(counts.values()))] for name, counts in rows
    ]
    if not body:
        body = [["(no tenant has billing rules)", *([""] * (len(header) - 1))]]
    widths = [max(len(row[i]) for row in [header, *body]) for i in range(len(header))]

    def line(cells: Sequence[str]) -> str:
        first, *rest = cells
        return "  ".join(
            [first.ljust(widths[0]), *(c.rjust(w) for c, w in zip(rest, widths[1:], strict=True))]
        )

    return "\n".join([line(header), line(["-" * w for w in widths]), *(line(row) for row in body)])


def cmd_demo(settings: Settings, args: argparse.Namespace) -> int:
    from connector import demo

    return demo.run(
        settings,
        host=args.host or settings.host,
        port=args.port or settings.port,
        per_client=args.per_client,
        empty=args.empty,
    )


def cmd_migrate(settings: Settings, args: argparse.Namespace) -> int:
    url = settings.resolved_database_url()
    if args.downgrade:
        aio.run(db.downgrade(url, args.revision, schema=settings.database_schema))
    else:
        aio.run(db.migrate(url, args.revision, schema=settings.database_schema))
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

    key = aio.run(run())
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

    count = aio.run(run())
    print(f"re-encrypted secrets of {count} connection(s) with the primary key")
    return 0


def cmd_secrets_generate(_settings: Settings, _args: argparse.Namespace) -> int:
    print(generate_key())
    return 0


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be 1 or more")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="connector", description=__doc__)
    parser.add_argument("--version", action="version", version=f"connector {package_version()}")
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="API, worker and scheduler in one process")
    serve.add_argument("--host")
    serve.add_argument("--port", type=int)
    serve.add_argument("--no-worker", action="store_true", help="do not run the job worker in-process")
    serve.add_argument("--no-scheduler", action="store_true", help="do not run scheduled syncs in-process")
    serve.add_argument(
        "--workers",
        type=_positive,
        default=1,
        help="server processes sharing the port, each with the API (and worker and scheduler unless "
        "switched off); default 1",
    )
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
    demo_cmd.add_argument(
        "--empty",
        action="store_true",
        help="only the simulated vendor systems: no connections, mappings or rules yet (add them on the "
        "dashboard's set-up pages from the printed details)",
    )
    demo_cmd.add_argument(
        "--per-client", type=_positive, default=60, help="endpoints per simulated client (default 60)"
    )
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


def package_version() -> str:
    try:
        return version("connector")
    except PackageNotFoundError:  # run from a source tree that was never installed
        return "unknown"


def settings_problem(error: ValidationError) -> str:
    """One line naming each invalid setting as it is set: `CONNECTOR_PORT: Input should be ...`."""
    problems = []
    for item in error.errors(include_url=False, include_input=False):
        name = "CONNECTOR_" + "_".join(str(part) for part in item["loc"][:1]).upper()
        problems.append(f"{name}: {item['msg']}")
    return "; ".join(problems)


def _fail(code: Exit, message: str) -> int:
    print(f"connector: {message}", file=sys.stderr)
    return int(code)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = Settings()
    except ValidationError as exc:
        return _fail(Exit.CONFIGURATION, f"configuration error: {settings_problem(exc)}")
    try:
        configure_logging(settings.log_level, settings.log_format)
    except (ValueError, TypeError) as exc:
        return _fail(Exit.CONFIGURATION, f"configuration error: CONNECTOR_LOG_LEVEL: {exc}")
    try:
        code: int = args.func(settings, args)
    except ConfigurationError as exc:
        return _fail(Exit.CONFIGURATION, f"configuration error: {exc}")
    except SecretKeyError as exc:
        return _fail(Exit.CONFIGURATION, f"configuration error: CONNECTOR_SECRET_KEY: {exc}")
    except (sa_exc.ArgumentError, sa_exc.NoSuchModuleError) as exc:
        return _fail(Exit.CONFIGURATION, f"configuration error: CONNECTOR_DATABASE_URL: {exc}")
    except Exception as exc:
        if db.is_unavailable(exc):
            return _fail(Exit.DATABASE_UNAVAILABLE, f"database unavailable: {type(exc).__name__}: {exc}")
        raise
    return int(code)


if __name__ == "__main__":
    sys.exit(main())
