"""Receiving webhooks: verify, parse, store durably (group commit), answer 202.

Every accepted delivery is committed before its request is answered. Requests arriving while a
commit is in flight wait for the next one and share it, so the database sees one transaction per
batch rather than per request — on SQLite with `synchronous=FULL` that is the difference between
~15 % and most of a bare endpoint's throughput.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import String, Table
from sqlalchemy.exc import StatementError

from adapters.base import AlertEvent, RmmAdapter, SecurityAdapter, WebhookRequest
from adapters.common import unstorable
from adapters.errors import WebhookParseError
from connector.alerts.canonical import fitted_key, load_json, looks_canonical, parse_canonical
from connector.alerts.delivery_store import refused_row, store_for
from connector.infra.context import Services
from connector.infra.db import DatabaseUnavailable, is_unavailable
from connector.infra.logs import get_logger
from connector.infra.security.webhooks import verify_generic
from connector.models import Connection, Delivery, Problem, new_id
from connector.statuses import DeliveryStatus

log = get_logger("connector.alerts.ingest")
TARGET_TTL_SECONDS = 10.0


@dataclass(frozen=True)
class WebhookTarget:
    connection_id: str
    tenant_id: str
    kind: str
    secret: str
    adapter: RmmAdapter | SecurityAdapter
    enabled: bool = True
    """A disabled connection's deliveries are verified and recorded as refused (403), not stored."""


class TargetCache:
    """Connection id → what verifying and parsing need, cached briefly so the hot path does not
    decrypt a secret per request. Updates through the API invalidate it at once; other replicas
    see a change within the TTL."""

    def __init__(self, services: Services) -> None:
        self._services = services
        self._entries: dict[str, tuple[float, WebhookTarget | None]] = {}
        self._loading: dict[str, asyncio.Future[WebhookTarget | None]] = {}

    def invalidate(self, connection_id: str) -> None:
        self._entries.pop(connection_id, None)

    async def get(self, connection_id: str) -> WebhookTarget | None:
        if not (connection_id.isascii() and connection_id.isprintable()):
            return None  # no connection has such an id (and the database would refuse some as text)
        cached = self._entries.get(connection_id)
        if cached is not None and cached[0] > time.monotonic():
            return cached[1]
        # One load per connection at a time: a burst arriving as the entry expires shares it, and
        # shares its failure too (with the database away, they all answer 503 at once instead of
        # retrying the load one after another).
        loading = self._loading.get(connection_id)
        if loading is None:
            loading = asyncio.ensure_future(self._load(connection_id))
            self._loading[connection_id] = loading
            loading.add_done_callback(lambda _: self._loading.pop(connection_id, None))
        return await asyncio.shield(loading)  # a caller that gives up does not cancel the others

    async def _load(self, connection_id: str) -> WebhookTarget | None:
        now = time.monotonic()
        async with self._services.sessions() as session:
            row = await session.get(Connection, connection_id)
        target = None
        if row is not None and row.role in PUSH_ROLES and row.webhook_secret_encrypted is not None:
            target = WebhookTarget(
                connection_id=row.id,
                tenant_id=row.tenant_id,
                kind=row.kind,
                secret=self._services.cipher.decrypt_text(row.webhook_secret_encrypted),
                adapter=await webhook_adapter(self._services, row),
                enabled=row.enabled,
            )
        if len(connection_id) <= 64:
            self._entries[connection_id] = (now + TARGET_TTL_SECONDS, target)
        return target


PUSH_ROLES = frozenset({"rmm", "security"})
"""Connections that receive webhooks: RMMs (alerts) and security consoles (threats, incidents)."""


async def webhook_adapter(services: Services, row: Connection) -> RmmAdapter | SecurityAdapter:
    if row.role == "security":
        return await services.adapters.security(row)
    return await services.adapters.rmm(row)


def parse_delivery(adapter: RmmAdapter | SecurityAdapter, request: WebhookRequest) -> list[AlertEvent]:
    """The canonical alert if the body is one, else the vendor's native format. Events carrying a
    value the database cannot store are refused here, naming the field, whichever parser made them."""
    document: Any = None
    with contextlib.suppress(WebhookParseError):
        document = load_json(request.body)
    if document is not None and looks_canonical(document):
        events = parse_canonical(document)
    else:
        try:
            events = adapter.parse_webhook(request)
        except RecursionError:
            raise WebhookParseError("body is nested too deeply", field="body") from None
        if not events and document is None:
            load_json(request.body)  # raises the JSON error, the most useful message left
    if not events:
        raise WebhookParseError(
            "no alert in body: expected the canonical alert (event_id, client_id, endpoint_id, problem, "
            "state, occurred_at) or this RMM's own alert format",
            field="body",
        )
    refuse_unstorable(events)
    return events


def _length(model: type[Any], column: str) -> int:
    """The declared length of a `String(n)` column."""
    kind = cast(Table, model.__table__).c[column].type
    assert isinstance(kind, String) and kind.length is not None
    return int(kind.length)


EVENT_TEXT_LIMITS: dict[str, int | None] = {
    "event_id": None,  # any length: keys made from it are hashed to fit (`fitted_key`)
    "client_id": _length(Problem, "client_id"),
    "endpoint_id": _length(Problem, "endpoint_id"),
    "hostname": _length(Problem, "hostname"),
    "message": None,
}
"""Text fields of an alert event and the longest value the columns they are stored in hold."""


def refuse_unstorable(events: list[AlertEvent]) -> None:
    """A NUL, a lone surrogate or an id longer than its column would fail the insert (on PostgreSQL;
    surrogates on SQLite too) — at ingest, failing the commit batch it shares with other senders'
    deliveries, or in the worker on every attempt. Refuse the delivery instead, naming the field."""
    several = len(events) > 1
    for index, event in enumerate(events):
        for name, limit in EVENT_TEXT_LIMITS.items():
            value = getattr(event, name)
            if value is None:
                continue
            problem = unstorable(value)
            if problem is None and limit is not None and len(value) > limit:
                problem = f"longer than {limit} characters"
            if problem is not None:
                raise WebhookParseError(problem, field=f"alerts[{index}].{name}" if several else name)


DEDUPE_KEY_LENGTH = _length(Delivery, "dedupe_key")


def dedupe_key(events: list[AlertEvent], body_sha256: str) -> str:
    """The vendor's event id identifies a redelivery; several events → all their ids together. An
    id too long for the column is hashed, never cut: two ids sharing a prefix are two deliveries."""
    if len(events) == 1:
        return fitted_key(f"e:{events[0].event_id}", DEDUPE_KEY_LENGTH)
    if events:
        joined = "\n".join(sorted(e.event_id for e in events))
        return "E:" + hashlib.sha256(joined.encode("utf-8", "surrogatepass")).hexdigest()
    return "b:" + body_sha256


@dataclass
class _Pending:
    values: dict[str, Any]
    future: asyncio.Future[tuple[str, bool]]


class DeliveryWriter:
    """Writer tasks that commit queued deliveries (and their jobs) in shared transactions. One by
    default: SQLite takes one writer at a time, and on PostgreSQL three measured no faster here (the
    process is CPU-bound, not commit-bound)."""

    def __init__(
        self,
        services: Services,
        *,
        max_batch: int = 512,
        writers: int | None = None,
        deadline: float | None = None,
    ) -> None:
        self._services = services
        self._max_batch = max_batch
        self._writers = writers or 1
        self._deadline = deadline or services.settings.db_command_timeout_seconds
        """How long one batch's transaction may take before its requests answer 503."""
        self._store = store_for(
            services.engine, sqlite_busy_seconds=services.settings.db_command_timeout_seconds
        )
        self._queue: asyncio.Queue[_Pending] = asyncio.Queue()
        self._tasks: list[asyncio.Task[None]] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._abandoned: set[asyncio.Future[list[tuple[str, bool]]]] = set()

    def start(self) -> asyncio.AbstractEventLoop:
        """Starts the writer tasks if they are not running; returns their loop. The loop is kept:
        `asyncio.get_running_loop()` costs a system call (a fork check) on every call."""
        if self._loop is None or not self._tasks:
            self._loop = asyncio.get_running_loop()
            self._tasks = [
                asyncio.create_task(self._run(), name=f"delivery-writer-{n}") for n in range(self._writers)
            ]
        return self._loop

    async def stop(self) -> None:
        running: list[asyncio.Future[Any]] = [*self._tasks, *self._abandoned]
        for task in running:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        await self._store.close()

    async def submit(self, values: dict[str, Any]) -> tuple[str, bool]:
        """Stores the delivery; returns (delivery id, whether it was a redelivery)."""
        pending = _Pending(values, self.start().create_future())
        self._queue.put_nowait(pending)  # unbounded: never waits
        return await pending.future

    async def _run(self) -> None:
        while True:
            batch = [await self._queue.get()]
            while len(batch) < self._max_batch and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            results: list[tuple[str, bool] | Exception]
            try:
                results = list(await self._write_within_deadline(batch))
            except Exception as exc:
                if len(batch) > 1 and refused_row(exc):
                    # One row the database refused must not cost the others their commit.
                    log.warning("delivery batch refused a row; writing its rows apart", size=len(batch))
                    results = await self._write_apart(batch)
                else:  # not committed (or not known to be): every request in the batch gets a 5xx
                    if is_unavailable(exc):
                        log.warning(
                            "delivery batch failed: database unavailable", size=len(batch), error=str(exc)
                        )
                    else:
                        log.exception("delivery batch failed", size=len(batch))
                    for item in batch:
                        if not item.future.done():
                            item.future.set_exception(exc)
                    continue
            for item, result in zip(batch, results, strict=True):
                if item.future.done():
                    continue
                if isinstance(result, Exception):
                    item.future.set_exception(result)
                else:
                    item.future.set_result(result)
            if any(not isinstance(result, Exception) and not result[1] for result in results):
                self._services.wake_workers()

    async def _write_apart(self, batch: list[_Pending]) -> list[tuple[str, bool] | Exception]:
        """Write a batch that failed on a refused row again in halves (depth first, so a delivery is
        still written before its redeliveries) until every refused row stands alone: the good rows
        commit, only the refused ones fail; k refused rows of n cost about 2·k·log2(n) transactions.
        An error that is not about a row (the database went away) fails the rest untried."""
        outcome: list[tuple[str, bool] | Exception | None] = [None] * len(batch)
        half = len(batch) // 2
        groups = deque([list(range(half)), list(range(half, len(batch)))])
        unavailable: Exception | None = None
        while groups:
            group = groups.popleft()
            if unavailable is not None:
                for index in group:
                    outcome[index] = unavailable
                continue
            try:
                written = await self._write_within_deadline([batch[index] for index in group])
            except Exception as exc:
                if not refused_row(exc):
                    log.error("delivery batch failed while writing rows apart", error=_reason(exc))
                    unavailable = exc
                elif len(group) > 1:
                    middle = len(group) // 2
                    groups.extendleft([group[middle:], group[:middle]])
                    continue
                else:
                    log.error(
                        "delivery refused by the database",
                        delivery=batch[group[0]].values["id"],
                        error=_reason(exc),
                    )
                for index in group:
                    outcome[index] = exc
                continue
            for index, result in zip(group, written, strict=True):
                outcome[index] = result
        return [result if result is not None else RuntimeError("delivery not written") for result in outcome]

    async def _write_within_deadline(self, batch: list[_Pending]) -> list[tuple[str, bool]]:
        """`_write`, bounded: past the deadline the batch's requests fail at once (503) and the
        writer goes on with the next batch. The late transaction is cancelled, which makes
        SQLAlchemy discard its connection; should it have committed after all, the requests were
        told 503 for stored deliveries, which a resend finds as duplicates — never a false 202."""
        write = asyncio.ensure_future(self._write(batch))
        done, _ = await asyncio.wait({write}, timeout=self._deadline)
        if write in done:
            return write.result()
        write.cancel()
        self._abandoned.add(write)
        write.add_done_callback(_forget(self._abandoned))
        raise DatabaseUnavailable(f"storing {len(batch)} deliveries took longer than {self._deadline:g} s")

    async def _write(self, batch: list[_Pending]) -> list[tuple[str, bool]]:
        """One transaction for the batch: insert every new delivery, skipping those whose dedupe key
        is already stored, find the ids of the redeliveries, and queue one job per tenant for the
        stored deliveries (`DeliveryStore`)."""
        fresh: dict[tuple[str, str | None], dict[str, Any]] = {}
        for pending in batch:
            values = pending.values
            key = (values["connection_id"], values["dedupe_key"] or values["id"])
            fresh.setdefault(key, values)  # a redelivery inside the batch collapses onto the first
        rows = list(fresh.values())
        written = await self._store.write(rows)
        results: list[tuple[str, bool]] = []
        for pending in batch:
            values = pending.values
            first = fresh[(values["connection_id"], values["dedupe_key"] or values["id"])]
            if first["id"] in written.inserted:
                results.append((first["id"], first is not values))
            else:
                results.append((written.known[(values["connection_id"], values["dedupe_key"])], True))
        return results


def _reason(exc: BaseException) -> str:
    """The driver's message without the statement and its parameters (the alert body)."""
    inner = exc.orig if isinstance(exc, StatementError) and exc.orig is not None else exc
    return f"{type(inner).__name__}: {inner}"[:300]


def _forget(tasks: set[asyncio.Future[Any]]) -> Callable[[asyncio.Future[Any]], None]:
    """A done-callback that drops a cancelled batch write and consumes its outcome."""

    def done(task: asyncio.Future[Any]) -> None:
        tasks.discard(task)
        if not task.cancelled():
            task.exception()

    return done


def delivery_values(
    target_or_connection: tuple[str, str],
    request: WebhookRequest,
    *,
    status: str,
    source_ip: str | None,
    events: list[AlertEvent] | None = None,
    rejection: str | None = None,
    size: int | None = None,
) -> dict[str, Any]:
    """The delivery row. Header-derived text is cleaned to what the columns hold (it is shown in the
    deliveries list, nothing depends on it), and `size` — the body's, or a refused request's
    declared Content-Length — is clamped to the column's range: no sender, authenticated or not,
    can make this row fail its insert."""
    connection_id, tenant_id = target_or_connection
    digest = hashlib.sha256(request.body).hexdigest()
    accepted = status == DeliveryStatus.QUEUED
    return {
        "id": new_id(),
        "tenant_id": tenant_id,
        "connection_id": connection_id,
        "received_at": request.received_at,
        "status": status,
        "dedupe_key": dedupe_key(events or [], digest) if accepted else None,
        "event_count": len(events or []),
        "body": request.body if accepted else None,
        "body_sha256": digest,
        "size": min(len(request.body) if size is None else size, MAX_SIZE),
        "content_type": storable_text(request.headers.get("content-type"), 120),
        "source_ip": storable_text(source_ip, 64),
        "user_agent": storable_text(request.headers.get("user-agent"), 200),
        "rejection": storable_text(rejection, 300),
        "error": None,
        "attempts": 0,
        "processed_at": None,
    }


MAX_SIZE = 2**31 - 1
"""`deliveries.size` is a 32-bit integer on PostgreSQL; a larger declared length is recorded as this."""


def storable_text(value: str | None, limit: int) -> str | None:
    """Informational text (a header, a refusal reason) as a column of `limit` characters can hold
    it: NULs dropped, lone surrogates replaced, cut to length; empty → None."""
    if not value:
        return None
    if unstorable(value) is not None:
        value = value.replace("\x00", "").encode("utf-8", "replace").decode("utf-8")
    return value[:limit] or None


def verify(target: WebhookTarget, request: WebhookRequest) -> tuple[bool, str]:
    native = target.adapter.verify_webhook(request, target.secret)
    if native is not None:
        return native, "" if native else "bad vendor signature"
    verdict = verify_generic(target.secret, request.body, request.headers, request.query, now=time.time())
    return verdict.ok, verdict.reason


class Ingest:
    """What the webhook route needs beside the services: the target cache (told when a connection
    changes) and the group-commit writer. Built by the app's lifespan, stopped with it."""

    def __init__(self, services: Services) -> None:
        self.services = services
        self.targets = TargetCache(services)
        self.writer = DeliveryWriter(services)
        services.connection_listeners.append(self.targets.invalidate)

    async def stop(self) -> None:
        if self.targets.invalidate in self.services.connection_listeners:
            self.services.connection_listeners.remove(self.targets.invalidate)
        await self.writer.stop()
