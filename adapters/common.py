"""Small pieces every adapter needs the same way: typed settings from a connection, JSON bodies with
exact decimals, vendor records validated into models with an error that says what was read, a server
URL normalized from what an engineer typed, and the recovery after a create the vendor may have
applied."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, TypeVar

import httpx
from pydantic import BaseModel, ConfigDict, ValidationError

from adapters.base import CatalogKind, PsaOption
from adapters.errors import AdapterError, ConfigurationError, TransientVendorError

M = TypeVar("M", bound=BaseModel)


def settings_as(model: type[M], value: BaseModel) -> M:
    """The connection's credentials or options as this adapter's own model (the core may hand over
    an equivalent model instance, e.g. after a registry reload)."""
    return value if isinstance(value, model) else model.model_validate(value.model_dump())


def json_body(response: httpx.Response) -> Any:
    """The response's JSON with floats as `Decimal` (money and quantities stay exact); an unreadable
    body is transient (a proxy's error page, a cut-off answer)."""
    if not response.content:
        return None
    try:
        return json.loads(response.content, parse_float=Decimal)
    except ValueError as exc:
        raise TransientVendorError(
            f"unreadable response from {response.request.url.path}", status=response.status_code
        ) from exc


def unstorable(text: str) -> str | None:
    """Why a text value cannot be stored, or None: PostgreSQL's text types refuse NUL characters and
    no database driver encodes a lone surrogate (JSON's `\\ud800` decodes to one). Webhook parsers
    refuse such values naming the field, so they never reach the database."""
    if "\x00" in text:
        return "contains a NUL character"
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            return "contains an unpaired surrogate (not valid Unicode)"
    return None


def parse_record(model: type[M], data: Any, what: str, vendor: str) -> M:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise AdapterError(f"unexpected {what} record from {vendor}: {exc.errors()[:1]}") from exc


class LenientRead(BaseModel):
    """Base for records read from a vendor: fields the adapter does not use are ignored (vendors add
    fields between versions), values are immutable."""

    model_config = ConfigDict(extra="ignore", frozen=True)


def id_text(value: Any) -> Any:
    """Vendor ids arrive as numbers or strings: normalize to trimmed text (empty → None)."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return value.strip() or None
    return value


STATUS_BLOCK_BEGIN = "[connector status]"
STATUS_BLOCK_END = "[/connector status]"


def merge_status_block(notes: str | None, fields: Mapping[str, str]) -> str:
    """Replace (or append) connector's delimited status block in a PSA record's free-text notes,
    leaving whatever technicians wrote around it untouched."""
    lines = [f"{key}: {' '.join(str(value).split())}" for key, value in sorted(fields.items())]
    block = "\n".join([STATUS_BLOCK_BEGIN, *lines, STATUS_BLOCK_END])
    current = notes or ""
    start = current.find(STATUS_BLOCK_BEGIN)
    end = current.find(STATUS_BLOCK_END, start + 1) if start >= 0 else -1
    if start >= 0 and end >= 0:
        return current[:start] + block + current[end + len(STATUS_BLOCK_END) :]
    if not current.strip():
        return block
    return current.rstrip() + "\n\n" + block


R = TypeVar("R")


def best_device_match(
    found: Sequence[R],
    *,
    device_name: str,
    serial_number: str | None,
    name_of: Callable[[R], str | None],
    serial_of: Callable[[R], str | None],
    active_of: Callable[[R], bool | None],
    id_of: Callable[[R], int],
) -> R:
    """Among a PSA's configuration records found by name or serial: the one matching both, then
    an active one, then the oldest (so repeated lookups always pick the same record)."""
    serial = (serial_number or "").casefold()
    name = device_name.casefold()

    def rank(item: R) -> tuple[int, int, int]:
        by_serial = 0 if serial and (serial_of(item) or "").casefold() == serial else 1
        by_name = 0 if (name_of(item) or "").casefold() == name else 1
        inactive = 0 if active_of(item) is not False else 1
        return (by_serial + by_name, inactive, id_of(item))

    return sorted(found, key=rank)[0]


def server_root(base_url: str, *, vendor: str, suffixes: Sequence[str] = ()) -> str:
    """The server URL an engineer typed → `scheme://host[:port][/prefix]`: `https://` added when no
    scheme is given, trailing slashes dropped, and the first of `suffixes` the path ends with
    (case-insensitive) cut off, so a URL copied from the API's own pages works too."""
    raw = (base_url or "").strip().rstrip("/")
    if not raw:
        raise ConfigurationError(f"the {vendor} server URL is required", field="base_url")
    if "://" not in raw:
        raw = "https://" + raw
    url = httpx.URL(raw)
    if not url.host:
        raise ConfigurationError(f"not a server URL: {base_url!r}", field="base_url")
    path = url.path.rstrip("/")
    for suffix in suffixes:
        if path.lower().endswith(suffix.lower()):
            path = path[: -len(suffix)]
            break
    port = f":{url.port}" if url.port else ""
    return f"{url.scheme}://{url.host}{port}{path}"


T = TypeVar("T")
RECOVERY_DELAYS = (0.0, 2.0, 5.0)
"""Seconds before each look-up after a create that may have been applied: vendors index a new record
for search a moment after they answer (or would have answered) its create."""
recovery_log = logging.getLogger("adapters.recovery")


async def create_or_recover(
    create: Callable[[], Awaitable[T]],
    find: Callable[[], Awaitable[T | None]],
    *,
    sleep: Callable[[float], Awaitable[None]],
    what: str,
    delays: Sequence[float] = RECOVERY_DELAYS,
) -> T:
    """`create()`, and when it fails in a way the vendor may still have acted on (a timeout or 5xx:
    `TransientVendorError.maybe_applied`), `find()` the record by its marker instead of creating it
    again: after each of `delays`, until it turns up. A transient error while looking is one more
    miss. When it never turns up the create's own error is raised, so the core retries later, and
    that retry looks first too. PSAs have no idempotency keys; this is the one place that makes a
    create safe to repeat."""
    try:
        return await create()
    except TransientVendorError as exc:
        if not exc.maybe_applied:
            raise
        recovery_log.warning("%s may have been applied (%s); looking it up", what, exc)
        for delay in delays:
            if delay:
                await sleep(delay)
            try:
                found = await find()
            except TransientVendorError:
                continue
            if found is not None:
                return found
        raise


attach_log = logging.getLogger("adapters.tickets")


async def attach_or_warn(
    attach: Callable[[], Awaitable[None]], *, ticket_id: str, configuration_id: str
) -> bool:
    """Attach a new ticket to its configuration record; a refusal (the record was deleted, the
    vendor rejects the reference) or an outage is logged as a warning and the ticket stands as
    created: a ticket is never lost over its attachment. True when attached."""
    try:
        await attach()
    except AdapterError as exc:
        attach_log.warning(
            "ticket %s not attached to configuration %s: %s: %s",
            ticket_id,
            configuration_id,
            type(exc).__name__,
            exc,
        )
        return False
    return True


TICKET_CATALOG: dict[CatalogKind, str] = {
    CatalogKind.BOARDS: "boards",
    CatalogKind.STATUSES: "statuses",
    CatalogKind.PRIORITIES: "priorities",
    CatalogKind.TICKET_TYPES: "types",
}
"""The catalog kinds `PsaAdapter.list_ticket_options` already reads, by its keys."""


async def ticket_catalog(adapter: Any, kind: CatalogKind) -> list[PsaOption] | None:
    """The ticket look-ups and companies every PSA adapter reads the same way (None: another kind,
    which the adapter reads itself)."""
    if kind in TICKET_CATALOG:
        options: dict[str, list[PsaOption]] = await adapter.list_ticket_options()
        return options.get(TICKET_CATALOG[kind], [])
    if kind is CatalogKind.COMPANIES:
        return [PsaOption(id=c.id, name=c.name) async for c in adapter.list_companies()]
    return None


@dataclass(frozen=True)
class BearerToken:
    value: str
    expires_at: datetime


class TokenCache:
    """One bearer token per adapter object, shared by its concurrent requests. It is fetched when
    there is none or it is within `margin` of expiring, and fetched again when the vendor refused
    it (`force`) — once for all the requests refused with the same token, not once each."""

    def __init__(
        self,
        fetch: Callable[[datetime], Awaitable[BearerToken]],
        *,
        clock: Callable[[], datetime],
        margin: timedelta,
    ) -> None:
        self._fetch = fetch
        self._clock = clock
        self._margin = margin
        self._lock = asyncio.Lock()
        self._token: BearerToken | None = None
        self._generation = 0

    async def get(self, force: bool = False) -> BearerToken:
        seen = self._generation
        async with self._lock:
            now = self._clock()
            current = self._token
            if current is not None:
                if not force and current.expires_at - self._margin > now:
                    return current
                if force and self._generation != seen:
                    return current  # another request renewed it while this one waited
            self._token = await self._fetch(now)
            self._generation += 1
            return self._token

    async def headers(self, force: bool) -> Mapping[str, str]:
        """The `Authorization` header, as `VendorHttpClient`'s `auth_headers` asks for it."""
        return {"Authorization": f"Bearer {(await self.get(force)).value}"}
