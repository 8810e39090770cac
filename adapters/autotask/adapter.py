"""Autotask PSA REST adapter: companies, contracts, ticket picklists, tickets and notes,
configuration items, and per-seat billing through contract service adjustments.

Sources:
- vendor-notes/psa.md §2.1 (the vendor Swagger 2.0 document, `specs/autotask/swagger.json`, is the
  reference for every path, header and body here; a test validates each request against it), §2.2
  (zone discovery `GET …/ATServicesRest/V1.0/ZoneInformation?user=` → `{zoneName, url, webUrl, ci}`,
  `GET /V1.0/ThresholdInformation`), §2.3 (`ApiIntegrationCode`, `UserName`, `Secret`,
  `ImpersonationResourceId` headers, not Basic auth), §2.4 (create/update answer 200 `{"itemId"}`,
  PATCH needs `id`, child writes under the parent, picklists differ per instance and are read from
  `/{Entity}/entityInformation/fields`, error body `{"errors": [...]}` with 400 or 500, UTC dates
  without `Z`), §2.5 (`QueryModel` `{filter, maxRecords, includeFields}`, operators, 500 records a
  page, `pageDetails.nextPageUrl` followed with POST and the same body: a GET answers 405 and cuts
  results off, WYRE-AI/autotask-mcp PR #170), §2.6 (10,000 requests/hour shared by all integrations,
  latency from 50% usage, 3 threads per endpoint, 429 with optional Retry-After), §2.7-§2.9 (ticket,
  note, configuration item, contract, ContractServiceUnits and ContractServiceAdjustments fields and
  rules: `unitChange` is a delta and adjustments cannot be queried).
- Autotask developer help, Tickets entity (ww1.autotask.net/help/DeveloperHelp/Content/APIs/REST/
  Entities/TicketsEntity.htm): URLs `Tickets (PUT, POST, PATCH)`, UTC times.
- Autotask ExecuteCommand API (autotask.net/help/developerhelp/content/apis/ExecuteCommand/
  UsingExecuteCommandAPI.htm): `https://ww#.autotask.net/Autotask/AutotaskExtend/ExecuteCommand.aspx?
  Code=…` deep links; the `OpenTicketDetail&TicketID=` form is used for ticket URLs [command name
  from that page's command list, not checked against a live tenant].
- Validation failures arrive as HTTP 500 with the `errors` body (WYRE-AI/msp-claude-plugins#32,
  Anteris-Dev/autotask-client#60), e.g. "Value does not reference an existing entity for taskType ."
  (WYRE-AI/autotask-mcp#46): a 500 whose message names a field the adapter sent is treated as a
  refused request, not an outage.

What is written where
---------------------
- Tickets carry the connector's marker in `externalID` (50 characters; longer markers are hashed);
  `find_ticket` queries `externalID eq marker and companyID eq N`. `create_ticket` looks the marker up
  before posting and again after a timeout or 5xx, so a retried create never makes a second ticket.
- A ticket is attached to the endpoint's configuration item by the Ticket's own
  `configurationItemID` on create (TicketModel in `specs/autotask/swagger.json`; vendor-notes §2.7
  lists it among the core ticket fields). The attachment travels with the create, so a retried or
  recovered create cannot attach twice. An item Autotask refuses ("Value does not reference an
  existing entity for configurationItemID", the item deleted since the sync wrote it) is dropped
  and the create sent again without it, with a warning: the ticket is never lost over it.
- Notes are TicketNotes (`POST /Tickets/{id}/Notes`). Closing posts a resolution note (unless an
  identical one exists), then PATCHes the ticket's status to the mapped complete status.
- Configuration status goes into the configuration item's user-defined fields; only changed UDFs are
  PATCHed. Items are matched by `referenceTitle` or `serialNumber` within the company.
- Seats: the current count is read from ContractServiceUnits for the period covering today, and only
  the difference is posted as a ContractServiceAdjustment. The intent is recorded before posting; after
  an uncertain failure the units are re-read instead of re-posting, and a recorded change that the
  units do not show yet is never posted twice.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, TypeVar

import httpx
from pydantic import BaseModel, ValidationError

from adapters.autotask import query as q
from adapters.autotask.models import (
    AutotaskCredentials,
    AutotaskOptions,
    CompanyRead,
    ConfigurationItemCreate,
    ConfigurationItemRead,
    ConfigurationItemUpdate,
    ContractRead,
    ContractServiceAdjustmentCreate,
    ContractServiceRead,
    ContractServiceUnitRead,
    ContractServiceUpdate,
    FieldInfo,
    FieldsResult,
    ItemResult,
    OperationResult,
    QueryFilter,
    QueryPage,
    SentModel,
    ServiceRead,
    ThresholdInfo,
    TicketCreate,
    TicketNoteCreate,
    TicketNoteRead,
    TicketRead,
    TicketUpdate,
    TimeEntryRead,
    UdfValue,
    ZoneInfo,
)
from adapters.autotask.threshold import ThresholdGuard, ThresholdPolicy
from adapters.base import (
    BillingLine,
    BillingLineRead,
    BillingLineResult,
    CatalogKind,
    ConfigurationUpdate,
    ConnectionContext,
    PsaAgreement,
    PsaCompany,
    PsaOption,
    TicketActivity,
    TicketReadback,
    TicketRef,
    TicketSpec,
)
from adapters.common import (
    best_device_match,
    create_or_recover,
    json_body,
    parse_record,
    settings_as,
    ticket_catalog,
)
from adapters.errors import (
    AdapterError,
    ConfigurationError,
    CredentialsError,
    NotFoundError,
    RateLimitedError,
    TransientVendorError,
    VendorRequestError,
)
from adapters.http import VendorHttpClient

DISCOVERY_URL = "https://webservices.autotask.net/ATServicesRest"
API_VERSION = "V1.0"
EXTERNAL_ID_MAX = 50
TITLE_MAX = 255
NOTE_TITLE_MAX = 250
DEFAULT_COMPLETE_STATUS = 5
ACTIVE_CONTRACT_STATUS = 1
"""Lookups by marker after a write that may have been applied."""

_MARKER_UNSAFE = re.compile(r"[^A-Za-z0-9:._-]+")
_ZONE_UNKNOWN = re.compile(r"zone information could not be determined", re.I)
_BAD_INTEGRATION = re.compile(r"integration\s*code|tracking identifier", re.I)
_FOR_FIELD = re.compile(r"\bfor\s+([A-Za-z][A-Za-z0-9_]*)\s*\.?\s*$")

TICKET_RULE_FIELD_OF = {
    "queueID": "board_id",
    "issueType": "type_id",
    "priority": "priority_id",
    "status": "status_new_id",
}
"""Autotask ticket fields a ticket rule sets, by the rule field that sets them."""

R = TypeVar("R", bound=BaseModel)

log = logging.getLogger("adapters.autotask")


# ---------------------------------------------------------------------------------------------
# Pure helpers (unit-tested directly)
# ---------------------------------------------------------------------------------------------


def marker_token(marker: str) -> str:
    """The marker as stored in `externalID`: filter-safe characters, at most 50; a longer or unsafe
    marker becomes a stable hash of it."""
    clean = _MARKER_UNSAFE.sub("-", marker.strip()).strip("-")
    if not clean or len(clean) > EXTERNAL_ID_MAX:
        clean = "cn-" + hashlib.sha256(marker.encode()).hexdigest()[:32]
    return clean


def autotask_date(when: datetime) -> str:
    """Autotask's UTC timestamp form, without `Z` or offset."""
    if when.tzinfo is not None:
        when = when.astimezone(UTC).replace(tzinfo=None)
    return when.strftime("%Y-%m-%dT%H:%M:%S")


def note_title(text: str, limit: int = NOTE_TITLE_MAX) -> str:
    first = next((line.strip() for line in text.splitlines() if line.strip()), "") or "Note"
    return first if len(first) <= limit else first[: limit - 3].rstrip() + "..."


def _names_in(value: Any, into: set[str]) -> None:
    """Field names a request body mentions: its keys, filter `field`s and UDF `name`s."""
    if isinstance(value, dict):
        for key, item in value.items():
            if isinstance(key, str) and key not in ("op", "value", "items", "udf", "filter"):
                into.add(key)
            if key in ("field", "name") and isinstance(item, str):
                into.add(item)
            _names_in(item, into)
    elif isinstance(value, list):
        for item in value:
            _names_in(item, into)


def field_from_message(message: str, candidates: Iterable[str]) -> str | None:
    """The field an Autotask error message is about: "... for taskType ." or a sent field's name."""
    names = sorted(set(candidates), key=len, reverse=True)
    match = _FOR_FIELD.search(message.strip())
    if match:
        named = match.group(1)
        return next((n for n in names if n.lower() == named.lower()), named)
    for name in names:
        if len(name) > 2 and re.search(rf"(?<![A-Za-z0-9]){re.escape(name)}(?![A-Za-z0-9])", message, re.I):
            return name
    return None


def parse_autotask_error(response: httpx.Response) -> tuple[str, str | None]:
    """`{"errors": ["...", ...]}` → (joined message, field named by it)."""
    try:
        body = response.json()
    except ValueError:
        text = response.text.strip()
        return (text[:300] or response.reason_phrase or f"HTTP {response.status_code}", None)
    messages: list[str] = []
    if isinstance(body, dict):
        errors = body.get("errors") or body.get("Errors")
        if isinstance(errors, list):
            messages = [str(e) for e in errors if e]
        elif body.get("message") or body.get("Message"):
            messages = [str(body.get("message") or body.get("Message"))]
    if not messages:
        return (str(body)[:300] if body else f"HTTP {response.status_code}", None)
    candidates: set[str] = set()
    try:
        sent = json.loads(response.request.content or b"null")
    except (ValueError, httpx.RequestNotRead):
        sent = None
    _names_in(sent, candidates)
    field = None
    for message in messages:
        field = field_from_message(message, candidates)
        if field:
            break
    return ("; ".join(messages)[:1000], field)


def _when(stamp: str | None) -> datetime | None:
    try:
        return datetime.fromisoformat(stamp.replace("Z", "+00:00")) if stamp else None
    except ValueError:
        return None


def _as_int(value: str, field: str) -> int:
    try:
        number = int(str(value).strip())
    except ValueError:
        raise VendorRequestError(f"Autotask ids are integers, got {value!r}", field=field) from None
    if number < 0:
        raise VendorRequestError(f"Autotask ids are not negative, got {value!r}", field=field)
    return number


def _configuration_item(configuration_id: str | None) -> int | None:
    """`TicketSpec.configuration_id` as the ticket's `configurationItemID`; an id that is not one
    (never written by this adapter) is left off rather than failing the ticket."""
    if not configuration_id:
        return None
    try:
        number = int(configuration_id.strip())
    except ValueError:
        return None
    return number if number > 0 else None


def _same_money(current: Decimal | None, wanted: Decimal) -> bool:
    return current is not None and Decimal(str(current)) == wanted


# ---------------------------------------------------------------------------------------------
# The adapter
# ---------------------------------------------------------------------------------------------


class AutotaskAdapter:
    """PsaAdapter for the Autotask PSA REST API (v1.0)."""

    def __init__(self, ctx: ConnectionContext) -> None:
        credentials = settings_as(AutotaskCredentials, ctx.credentials)
        options = settings_as(AutotaskOptions, ctx.options)
        self._ctx = ctx
        self._credentials: AutotaskCredentials = credentials
        self._options: AutotaskOptions = options
        self._sleep: Callable[[float], Awaitable[None]] = ctx.sleep or asyncio.sleep
        clock = ctx.extra.get("clock")
        self._clock: Callable[[], float] = clock if callable(clock) else time.monotonic
        now = ctx.extra.get("now")
        self._now: Callable[[], datetime] = now if callable(now) else (lambda: datetime.now(UTC))
        self.discovery_base = (ctx.base_url or DISCOVERY_URL).strip().rstrip("/")
        if not self.discovery_base.startswith(("https://", "http://")):
            raise ConfigurationError(f"not an absolute URL: {ctx.base_url!r}", field="base_url")
        self.zone: ZoneInfo | None = None
        self._client: VendorHttpClient | None = None
        self._lock = asyncio.Lock()
        self.guard = ThresholdGuard(
            self._read_threshold,
            ThresholdPolicy(
                check_every=options.threshold_check_every,
                slow_share=options.threshold_slow_share,
                slow_delay=options.threshold_slow_delay,
                refuse_share=options.threshold_refuse_share,
                retry_after=options.threshold_retry_after,
            ),
            sleep=self._sleep,
            clock=self._clock,
        )
        self._fields: dict[str, list[FieldInfo]] = {}
        self._ledger: dict[tuple[int, int, str], tuple[int, int, float]] = {}

    # -- connection plumbing ---------------------------------------------------------------

    def _headers(self) -> dict[str, str]:
        creds = self._credentials
        headers = {
            "ApiIntegrationCode": creds.integration_code.get_secret_value(),
            "UserName": creds.username,
            "Secret": creds.secret.get_secret_value(),
            "Accept": "application/json",
        }
        if creds.impersonation_resource_id is not None:
            headers["ImpersonationResourceId"] = str(creds.impersonation_resource_id)
        return headers

    @property
    def api_base(self) -> str | None:
        return self._client.base_url if self._client else None

    async def _discover(self) -> ZoneInfo:
        if self._options.zone_url:
            return ZoneInfo(url=self._options.zone_url, webUrl=self._options.web_url)
        client = VendorHttpClient(  # a call to the vendor like any other: it takes a budget slot
            self.discovery_base,
            headers=self._headers(),
            error_parser=parse_autotask_error,
            max_concurrency=self._options.max_concurrency,
            max_requests_per_minute=self._options.max_requests_per_minute,
            budget=self._ctx.budget,
            transport=self._ctx.transport_factory(self.discovery_base),
            sleep=self._sleep,
        )
        try:
            response = await self._send(
                client,
                "GET",
                f"/{API_VERSION}/ZoneInformation",
                params={"user": self._credentials.username},
                idempotent=True,
            )
            data = response.json()
        except (NotFoundError, VendorRequestError) as exc:
            raise CredentialsError(
                f"Autotask has no zone for API user {self._credentials.username!r}: {exc.message}",
                field="username",
            ) from exc
        except ValueError as exc:
            raise ConfigurationError(
                f"{self.discovery_base} did not answer like Autotask zone discovery", field="base_url"
            ) from exc
        finally:
            await client.aclose()
        zone = ZoneInfo.model_validate(data) if isinstance(data, dict) else ZoneInfo()
        if not zone.url or not zone.url.startswith(("https://", "http://")):
            raise CredentialsError(
                f"Autotask has no zone for API user {self._credentials.username!r}", field="username"
            )
        return zone.model_copy(update={"webUrl": self._options.web_url or zone.webUrl})

    async def _http(self) -> VendorHttpClient:
        if self._client is not None:
            return self._client
        async with self._lock:
            if self._client is None:
                zone = await self._discover()
                assert zone.url is not None
                api_base = zone.url.rstrip("/") + f"/{API_VERSION}"
                self.zone = zone
                self._client = VendorHttpClient(
                    api_base,
                    headers={**self._headers(), "Content-Type": "application/json"},
                    error_parser=parse_autotask_error,
                    max_concurrency=self._options.max_concurrency,
                    max_requests_per_minute=self._options.max_requests_per_minute,
                    budget=self._ctx.budget,
                    transport=self._ctx.transport_factory(api_base),
                    sleep=self._sleep,
                )
        return self._client

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def _read_threshold(self) -> ThresholdInfo:
        client = await self._http()
        response = await self._send(client, "GET", "/ThresholdInformation", idempotent=True)
        try:
            return ThresholdInfo.model_validate(response.json())
        except (ValueError, ValidationError) as exc:
            raise TransientVendorError("unreadable ThresholdInformation answer") from exc

    _body = staticmethod(json_body)

    async def _send(
        self,
        client: VendorHttpClient,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json_body: Any = None,
        idempotent: bool,
        guarded: bool = False,
    ) -> httpx.Response:
        """Send with Autotask's error semantics (each attempt passes the threshold guard if `guarded`).

        Autotask answers validation failures, unknown users and bad integration codes with HTTP 500
        and the `errors` body, so 5xx are retried here rather than in the shared client: a 500 that
        names a field we sent is a refused request (VendorRequestError), one about the zone or the
        integration code is a credentials problem; neither is retried. Other 5xx and timeouts are
        retried for reads and absolute updates only. 429 and unsent requests are retried by the
        shared client.
        """
        attempts = client.retry.attempts if idempotent else 1
        for attempt in range(1, attempts + 1):
            if guarded:
                await self.guard.before_request()
            try:
                return await client.request(method, path, params=params, json=json_body, idempotent=False)
            except RateLimitedError:
                self.guard.force_check()
                raise
            except TransientVendorError as exc:
                if exc.status == 500:
                    if _ZONE_UNKNOWN.search(exc.message):
                        raise VendorRequestError(exc.message, field="username", status=500) from exc
                    if _BAD_INTEGRATION.search(exc.message):
                        raise CredentialsError(exc.message, field="integration_code", status=500) from exc
                    if exc.field:
                        raise VendorRequestError(exc.message, field=exc.field, status=500) from exc
                if attempt >= attempts:
                    raise
                wait = client.retry.backoff(attempt)
                if exc.retry_after is not None:
                    wait = max(min(exc.retry_after, client.retry.retry_after_max), wait)
                await self._sleep(wait)
        raise AssertionError("unreachable")  # pragma: no cover

    async def _call(self, method: str, path: str, *, json_body: Any = None, idempotent: bool) -> Any:
        """One budgeted API call against the zone."""
        client = await self._http()
        response = await self._send(
            client, method, path, json_body=json_body, idempotent=idempotent, guarded=True
        )
        return self._body(response)

    @staticmethod
    def _parse(model: type[R], data: Any, what: str) -> R:
        return parse_record(model, data, what, "Autotask")

    def _next_url(self, url: str) -> str:
        """nextPageUrl must stay on the zone host: the credentials travel with it."""
        assert self._client is not None
        base = httpx.URL(self._client.base_url)
        target = httpx.URL(url)
        if target.is_relative_url:
            return url
        if (target.scheme, target.host, target.port) != (base.scheme, base.host, base.port):
            raise AdapterError(f"Autotask paging pointed off the zone host: {target.host}")
        return url

    async def _pages(
        self, entity: str, filters: list[QueryFilter], include_fields: list[str] | None = None
    ) -> AsyncIterator[list[dict[str, Any]]]:
        """`POST /{Entity}/query`, then each `nextPageUrl` with POST and the same body."""
        body = q.body(*filters, max_records=self._options.page_size, include_fields=include_fields).wire()
        url = f"/{entity}/query"
        seen: set[str] = set()
        while True:
            data = await self._call("POST", url, json_body=body, idempotent=True)
            page = self._parse(QueryPage, data, f"{entity} query page")
            yield page.items
            following = page.pageDetails.nextPageUrl if page.pageDetails else None
            if not following or not page.items or following in seen:
                return
            seen.add(following)
            url = self._next_url(following)

    async def _query(
        self, model: type[R], entity: str, filters: list[QueryFilter], include_fields: list[str] | None = None
    ) -> list[R]:
        records: list[R] = []
        async for items in self._pages(entity, filters, include_fields):
            records.extend(self._parse(model, item, entity) for item in items)
        return records

    async def _create(self, path: str, body: SentModel) -> int:
        data = await self._call("POST", path, json_body=body.wire(), idempotent=False)
        result = self._parse(OperationResult, data, "operation result")
        if result.itemId is None:
            raise AdapterError(f"Autotask did not return an itemId for POST {path}")
        return result.itemId

    async def _update(self, path: str, body: SentModel) -> None:
        # Every update here sets absolute values, so repeating it is harmless.
        await self._call("PATCH", path, json_body=body.wire(), idempotent=True)

    async def _get_item(self, model: type[R], path: str, what: str) -> R:
        data = self._parse(ItemResult, await self._call("GET", path, idempotent=True), what)
        if data.item is None:
            raise NotFoundError(f"Autotask has no {what} at {path}")
        return self._parse(model, data.item, what)

    async def _field_info(self, entity: str) -> dict[str, FieldInfo]:
        if entity not in self._fields:
            data = await self._call("GET", f"/{entity}/entityInformation/fields", idempotent=True)
            self._fields[entity] = self._parse(FieldsResult, data, f"{entity} fields").fields
        return {f.name.lower(): f for f in self._fields[entity]}

    async def _picklist(self, entity: str, field: str) -> list[PsaOption]:
        info = (await self._field_info(entity)).get(field.lower())
        if info is None or not info.picklistValues:
            return []
        values = sorted(
            (v for v in info.picklistValues if v.isActive is not False),
            key=lambda v: (v.sortOrder if v.sortOrder is not None else 1 << 30, v.label or ""),
        )
        return [
            PsaOption(id=v.value, name=v.label or v.value, parent_id=v.parentValue or None) for v in values
        ]

    async def required_ticket_fields(self) -> frozenset[str]:
        """Required ticket fields are tenant metadata (`isRequired` of `Tickets/entityInformation/
        fields`): those a rule routes with, less what the options fill (the new status, and the
        priority when a default is configured). `companyID` and `title` are always sent."""
        info = await self._field_info("Tickets")
        filled = {"status"} | ({"priority"} if self._options.default_priority_id is not None else set())
        return frozenset(
            rule_field
            for name, rule_field in TICKET_RULE_FIELD_OF.items()
            if name not in filled and (field := info.get(name.lower())) is not None and field.isRequired
        )

    # -- Adapter ----------------------------------------------------------------------------

    async def test_connection(self) -> None:
        """Zone discovery plus an authenticated ThresholdInformation read (which also primes the
        budget guard); refuses when the shared budget is already nearly spent."""
        await self.guard.before_request()
        if self.guard.last is None:
            await self.guard.check()

    async def list_companies(self) -> AsyncIterator[PsaCompany]:
        fields = ["id", "companyName", "companyNumber", "isActive"]
        async for items in self._pages("Companies", [q.eq("isActive", True)], fields):
            for item in items:
                company = self._parse(CompanyRead, item, "company")
                yield PsaCompany(
                    id=str(company.id),
                    name=company.companyName or str(company.id),
                    identifier=company.companyNumber or None,
                )

    async def list_agreements(self, company_id: str) -> list[PsaAgreement]:
        cid = _as_int(company_id, "company_id")
        contracts = await self._query(ContractRead, "Contracts", [q.eq("companyID", cid)])
        types = {o.id: o.name for o in await self._picklist("Contracts", "contractType")}
        today = autotask_date(self._today())
        return [
            PsaAgreement(
                id=str(c.id),
                company_id=str(c.companyID if c.companyID is not None else cid),
                name=c.contractName or str(c.id),
                type_id=str(c.contractType) if c.contractType is not None else None,
                type_name=types.get(str(c.contractType)) if c.contractType is not None else None,
                active=c.status == ACTIVE_CONTRACT_STATUS and (not c.endDate or c.endDate[:10] >= today[:10]),
            )
            for c in sorted(contracts, key=lambda c: c.id)
        ]

    async def _complete_status(self) -> int:
        if self._options.complete_status_id is not None:
            return self._options.complete_status_id
        for option in await self._picklist("Tickets", "status"):
            if option.name.strip().lower() == "complete":
                return int(option.id)
        return DEFAULT_COMPLETE_STATUS

    async def list_ticket_options(self) -> dict[str, list[PsaOption]]:
        complete = str(await self._complete_status())
        statuses = [
            o.model_copy(update={"closed": o.id == complete})
            for o in await self._picklist("Tickets", "status")
        ]
        return {
            "boards": await self._picklist("Tickets", "queueID"),
            "statuses": statuses,
            "priorities": await self._picklist("Tickets", "priority"),
            "types": await self._picklist("Tickets", "issueType"),
            "subtypes": await self._picklist("Tickets", "subIssueType"),
        }

    async def list_catalog(self, kind: CatalogKind) -> list[PsaOption]:
        common = await ticket_catalog(self, kind)
        if common is not None:
            return common
        if kind is CatalogKind.AGREEMENT_TYPES:
            return await self._picklist("Contracts", "contractType")
        # products: the services per-seat billing adjusts on a contract (`BillingLine.product_id`)
        services = await self._query(
            ServiceRead, "Services", [q.eq("isActive", True)], ["id", "name", "isActive"]
        )
        return [
            PsaOption(id=str(s.id), name=s.name or str(s.id)) for s in sorted(services, key=lambda s: s.id)
        ]

    # -- tickets ----------------------------------------------------------------------------

    def _ticket_ref(self, ticket: TicketRead) -> TicketRef:
        url = None
        if self.zone is not None and self.zone.webUrl:
            url = (
                f"{self.zone.webUrl.rstrip('/')}/Autotask/AutotaskExtend/ExecuteCommand.aspx"
                f"?Code=OpenTicketDetail&TicketID={ticket.id}"
            )
        # Autotask stamps completedDate when a ticket reaches the Complete status.
        return TicketRef(
            id=str(ticket.id), number=ticket.ticketNumber, url=url, closed=bool(ticket.completedDate)
        )

    async def find_ticket(self, marker: str, company_id: str) -> TicketRef | None:
        token = marker_token(marker)
        filters = [q.eq("externalID", token), q.eq("companyID", _as_int(company_id, "company_id"))]
        fields = ["id", "ticketNumber", "companyID", "status", "externalID", "completedDate"]
        tickets = await self._query(TicketRead, "Tickets", filters, fields)
        matches = sorted((t for t in tickets if (t.externalID or "") == token), key=lambda t: -t.id)
        if not matches:
            return None
        open_ones = [t for t in matches if not t.completedDate]
        return self._ticket_ref((open_ones or matches)[0])

    async def create_ticket(self, spec: TicketSpec) -> TicketRef:
        existing = await self.find_ticket(spec.marker, spec.company_id)
        if existing is not None and not existing.closed:
            return existing
        title = " ".join(spec.summary.split())
        priority = spec.priority_id or (
            str(self._options.default_priority_id) if self._options.default_priority_id is not None else None
        )
        body = TicketCreate(
            companyID=_as_int(spec.company_id, "company_id"),
            title=title if len(title) <= TITLE_MAX else title[: TITLE_MAX - 3].rstrip() + "...",
            description=(spec.description[:8000] or None) if spec.description else None,
            status=_as_int(spec.status_id, "status_id") if spec.status_id else self._options.new_status_id,
            priority=_as_int(priority, "priority_id") if priority else None,
            queueID=_as_int(spec.board_id, "board_id"),
            issueType=_as_int(spec.type_id, "type_id") if spec.type_id else None,
            externalID=marker_token(spec.marker),
            configurationItemID=_configuration_item(spec.configuration_id),
        )

        async def post() -> int:
            nonlocal body
            try:
                return await self._create("/Tickets", body)
            except VendorRequestError as exc:
                if body.configurationItemID is None or exc.field != "configurationItemID":
                    raise
                # The item was deleted (or moved) since the sync wrote it: the ticket goes in without it.
                log.warning(
                    "ticket %s not attached to configuration item %s: %s",
                    body.externalID,
                    body.configurationItemID,
                    exc,
                )
                body = body.model_copy(update={"configurationItemID": None})
                return await self._create("/Tickets", body)

        async def create() -> TicketRef:
            ticket_id = await post()
            try:
                ticket = await self._get_item(TicketRead, f"/Tickets/{ticket_id}", "ticket")
            except TransientVendorError:
                return self._ticket_ref(TicketRead(id=ticket_id))
            return self._ticket_ref(ticket)

        async def open_ticket() -> TicketRef | None:
            found = await self.find_ticket(spec.marker, spec.company_id)
            return found if found is not None and not found.closed else None

        return await create_or_recover(
            create, open_ticket, sleep=self._sleep, what=f"ticket create for {body.externalID}"
        )

    async def _notes(self, ticket_id: int) -> list[TicketNoteRead]:
        return await self._query(
            TicketNoteRead,
            "TicketNotes",
            [q.eq("ticketID", ticket_id)],
            ["id", "ticketID", "title", "description"],
        )

    async def _has_note(self, ticket_id: int, text: str) -> bool:
        wanted = text.strip()
        return any((n.description or "").strip() == wanted for n in await self._notes(ticket_id))

    async def _post_note(self, ticket_id: int, text: str, title: str) -> None:
        body = TicketNoteCreate(
            ticketID=ticket_id,
            title=title,
            description=text[:32000],
            noteType=self._options.note_type,
            publish=self._options.note_publish,
        )

        async def post() -> bool:
            await self._create(f"/Tickets/{ticket_id}/Notes", body)
            return True

        async def posted() -> bool | None:
            return True if await self._has_note(ticket_id, text) else None

        await create_or_recover(post, posted, sleep=self._sleep, what=f"note on ticket {ticket_id}")

    async def add_note(self, ticket_id: str, text: str) -> None:
        if not text.strip():
            raise VendorRequestError("a ticket note needs text", field="text")
        await self._post_note(_as_int(ticket_id, "ticket_id"), text, note_title(text))

    async def close_ticket(self, ticket_id: str, status_id: str | None, resolution: str) -> None:
        tid = _as_int(ticket_id, "ticket_id")
        ticket = await self._get_item(TicketRead, f"/Tickets/{tid}", "ticket")
        target = _as_int(status_id, "status_id") if status_id else await self._complete_status()
        if resolution.strip() and not await self._has_note(tid, resolution):
            await self._post_note(tid, resolution, self._options.resolution_note_title)
        if ticket.status != target:
            update = TicketUpdate(
                id=tid,
                status=target,
                resolution=resolution[:32000] if resolution.strip() and not ticket.resolution else None,
            )
            await self._update("/Tickets", update)

    async def read_ticket(self, ticket_id: str) -> TicketReadback | None:
        """The ticket (`lastActivityPersonType`/`lastActivityResourceID`, `assignedResourceID`,
        `completedByResourceID`), its TicketNotes and its TimeEntries. The integration's own
        resource is the ticket's `creatorResourceID`: work by any other resource or by a contact
        is a person's."""
        tid = _as_int(ticket_id, "ticket_id")
        try:
            ticket = await self._get_item(TicketRead, f"/Tickets/{tid}", "ticket")
        except NotFoundError:
            return None
        me = ticket.creatorResourceID
        activity: list[TicketActivity] = []
        fields = ["id", "ticketID", "creatorResourceID", "createdByContactID", "createDateTime"]
        for note in await self._query(TicketNoteRead, "TicketNotes", [q.eq("ticketID", tid)], fields):
            if note.createdByContactID is not None or note.creatorResourceID != me:
                by = note.creatorResourceID or note.createdByContactID
                activity.append(TicketActivity(kind="note", by=str(by), at=_when(note.createDateTime)))
        fields = ["id", "ticketID", "resourceID", "dateWorked"]
        for entry in await self._query(TimeEntryRead, "TimeEntries", [q.eq("ticketID", tid)], fields):
            activity.append(
                TicketActivity(kind="time_entry", by=str(entry.resourceID), at=_when(entry.dateWorked))
            )
        if ticket.assignedResourceID is not None and ticket.assignedResourceID != me:
            activity.append(TicketActivity(kind="assignment", by=str(ticket.assignedResourceID)))
        contact = ticket.lastActivityPersonType == 2
        if contact or (ticket.lastActivityResourceID is not None and ticket.lastActivityResourceID != me):
            activity.append(
                TicketActivity(
                    kind="edit", by=str(ticket.lastActivityResourceID), at=_when(ticket.lastActivityDate)
                )
            )
        done_by = ticket.completedByResourceID
        return TicketReadback(
            id=str(ticket.id),
            closed=bool(ticket.completedDate),
            closed_by_human=bool(ticket.completedDate and done_by is not None and done_by != me),
            human_activity=activity,
        )

    # -- configuration items ----------------------------------------------------------------

    async def _find_configuration(
        self, company_id: int, update: ConfigurationUpdate
    ) -> ConfigurationItemRead | None:
        names = [q.eq("referenceTitle", update.device_name)]
        if update.serial_number:
            names.append(q.eq("serialNumber", update.serial_number))
        match = names[0] if len(names) == 1 else q.or_(*names)
        found = await self._query(
            ConfigurationItemRead, "ConfigurationItems", [q.eq("companyID", company_id), match]
        )
        if not found:
            return None
        return best_device_match(
            found,
            device_name=update.device_name,
            serial_number=update.serial_number,
            name_of=lambda item: item.referenceTitle,
            serial_of=lambda item: item.serialNumber,
            active_of=lambda item: item.isActive,
            id_of=lambda item: item.id,
        )

    async def upsert_configuration(self, update: ConfigurationUpdate) -> str | None:
        cid = _as_int(update.company_id, "company_id")
        item = await self._find_configuration(cid, update)
        if item is None:
            if not update.create_if_missing:
                return None
            item = await self._create_configuration(cid, update)
        current = {u.name.casefold(): u.value for u in item.userDefinedFields or []}
        changed = [
            UdfValue(name=key, value=value)
            for key, value in sorted(update.fields.items())
            if current.get(key.casefold()) != value
        ]
        if changed:
            await self._update(
                "/ConfigurationItems", ConfigurationItemUpdate(id=item.id, userDefinedFields=changed)
            )
        return str(item.id)

    async def _create_configuration(
        self, company_id: int, update: ConfigurationUpdate
    ) -> ConfigurationItemRead:
        product = self._options.configuration_product_id
        if product is None:
            raise ConfigurationError(
                "a product is required to create a configuration item", field="configuration_product_id"
            )
        type_id = update.type_id or (
            str(self._options.default_configuration_type_id)
            if self._options.default_configuration_type_id is not None
            else None
        )
        body = ConfigurationItemCreate(
            companyID=company_id,
            productID=product,
            referenceTitle=update.device_name[:200],
            serialNumber=update.serial_number[:100] if update.serial_number else None,
            configurationItemType=_as_int(type_id, "type_id") if type_id else None,
            userDefinedFields=[UdfValue(name=k, value=v) for k, v in sorted(update.fields.items())] or None,
        )

        async def create() -> ConfigurationItemRead:
            item_id = await self._create("/ConfigurationItems", body)
            udfs = [{"name": u.name, "value": u.value} for u in body.userDefinedFields or []]
            return ConfigurationItemRead.model_validate(
                {
                    "id": item_id,
                    "companyID": company_id,
                    "referenceTitle": body.referenceTitle,
                    "serialNumber": body.serialNumber,
                    "isActive": True,
                    "userDefinedFields": udfs,
                }
            )

        return await create_or_recover(
            create,
            lambda: self._find_configuration(company_id, update),
            sleep=self._sleep,
            what=f"configuration item create for {update.device_name!r}",
        )

    # -- billing ----------------------------------------------------------------------------

    def _today(self) -> datetime:
        now = self._now()
        return now.replace(hour=0, minute=0, second=0, microsecond=0)

    async def _contract_service(self, contract_id: int, service_id: int) -> ContractServiceRead | None:
        found = await self._query(
            ContractServiceRead,
            "ContractServices",
            [q.eq("contractID", contract_id), q.eq("serviceID", service_id)],
        )
        return min(found, key=lambda s: s.id) if found else None

    async def current_units(self, contract_id: int, service_id: int, day: str) -> int:
        """Seats in the ContractServiceUnits row covering `day` (the latest-starting one, since an
        adjustment splits a period at its effective date); 0 when there is none."""
        rows = await self._query(
            ContractServiceUnitRead,
            "ContractServiceUnits",
            [
                q.eq("contractID", contract_id),
                q.eq("serviceID", service_id),
                q.lte("startDate", day),
                q.gte("endDate", day),
            ],
        )
        if not rows:
            return 0
        row = max(rows, key=lambda r: (r.startDate or "", r.id))
        return int(row.units or 0)

    async def read_billing_line(self, line: BillingLine) -> BillingLineRead | None:
        """A contract holds one service per catalog service: the rule that names the service names
        the line, so there is no marker to look for (`marked` None)."""
        contract_id = _as_int(line.agreement_id, "agreement_id")
        service_id = _as_int(line.product_id, "product_id")
        service = await self._contract_service(contract_id, service_id)
        if service is None:
            return None
        units = await self.current_units(contract_id, service_id, autotask_date(self._today()))
        return BillingLineRead(
            line_id=str(service.id), quantity=Decimal(units), unit_price=service.unitPrice, marked=None
        )

    async def upsert_billing_line(self, line: BillingLine) -> BillingLineResult:
        contract_id = _as_int(line.agreement_id, "agreement_id")
        service_id = _as_int(line.product_id, "product_id")
        if line.quantity != line.quantity.to_integral_value() or line.quantity < 0:
            raise VendorRequestError(
                f"Autotask seat counts are whole numbers, got {line.quantity}", field="quantity"
            )
        target = int(line.quantity)
        day = autotask_date(self._today())
        service = await self._contract_service(contract_id, service_id)
        if service is None and target == 0:
            return BillingLineResult(action="unchanged", line_id="")  # nothing billed, no line to make
        current = await self.current_units(contract_id, service_id, day) if service else 0
        priced = False
        if service is not None and not (
            _same_money(service.unitPrice, line.unit_price) and _same_money(service.unitCost, line.unit_cost)
        ):
            await self._update(
                f"/Contracts/{contract_id}/Services",
                ContractServiceUpdate(id=service.id, unitPrice=line.unit_price, unitCost=line.unit_cost),
            )
            priced = True
        if current == target and service is not None:
            return BillingLineResult(
                action="updated" if priced else "unchanged",
                line_id=str(service.id),
                previous_quantity=Decimal(current),
            )
        key = (contract_id, service_id, day)
        pending = self._ledger.get(key)
        if pending and pending[:2] == (current, target) and self._clock() < pending[2]:
            raise TransientVendorError(
                f"a change of {target - current:+d} seats on contract {contract_id} was already posted and "
                "ContractServiceUnits does not show it yet; not posting it twice",
                field="quantity",
            )
        body = ContractServiceAdjustmentCreate(
            contractID=contract_id,
            serviceID=service_id,
            contractServiceID=service.id if service else None,
            effectiveDate=day,
            unitChange=target - current,
            adjustedUnitPrice=line.unit_price,
            adjustedUnitCost=line.unit_cost,
        )
        self._ledger[key] = (current, target, self._clock() + self._options.adjustment_ledger_seconds)

        async def post() -> int:
            try:
                await self._create("/ContractServiceAdjustments", body)
            except TransientVendorError as exc:
                if not exc.maybe_applied:  # certainly not applied: nothing to guard against
                    self._ledger.pop(key, None)
                raise
            except AdapterError:
                self._ledger.pop(key, None)
                raise
            return target

        async def applied() -> int | None:
            return target if await self.current_units(contract_id, service_id, day) == target else None

        await create_or_recover(
            post, applied, sleep=self._sleep, what=f"seat adjustment on contract {contract_id}"
        )
        if service is None:
            service = await self._contract_service(contract_id, service_id)
            if service is None:
                raise TransientVendorError(f"contract {contract_id} shows no service {service_id} yet")
            return BillingLineResult(action="created", line_id=str(service.id), previous_quantity=None)
        return BillingLineResult(
            action="updated", line_id=str(service.id), previous_quantity=Decimal(current)
        )


def create_adapter(ctx: ConnectionContext) -> AutotaskAdapter:
    return AutotaskAdapter(ctx)


__all__ = [
    "AutotaskAdapter",
    "create_adapter",
    "field_from_message",
    "marker_token",
    "parse_autotask_error",
]
