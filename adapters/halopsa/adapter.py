"""HaloPSA REST adapter: clients, contracts, ticket options, tickets and actions, assets, and
recurring-invoice lines.

Sources
-------
- vendor-notes/psa.md §3 (OAuth2 client credentials against `{auth}/token`, form fields
  `grant_type`, `client_id`, `client_secret`, `scope=all`, `?tenant=` for hosted instances; Bearer
  token with `expires_in`; API base `{instance}/api`; `POST /api/Tickets` takes a JSON array;
  `GET /api/RecurringInvoice/{id}` returns `lines[]` and `POST /api/RecurringInvoice` with
  `[{"id", "lines": [every line]}]` updates them).
- `homotechsual/HaloAPI` (PowerShell, MIT) @ 0a42760c: `Public/Connect-HaloAPI.ps1` (token request,
  `{auth_url}/token?tenant=…`, form encoding), `Public/Invoke/Invoke-HaloRequest.ps1` (renew on
  expiry), `Private/New-HaloGETRequest.ps1` (`pageinate=true&page_size&page_no`, `record_count`,
  list envelopes `clients`/`tickets`/`assets`/`contracts`/`invoices`/`actions`),
  `Private/New-HaloError.ps1` (error bodies: `{resultCode, errorMessage}`, `{ClassName, Message}`,
  `{Message}`, `{error}`), `Public/Get/Get-HaloTicket.ps1` (`client_id`, `search`, `open_only`),
  `Get-HaloAsset.ps1` (`client_id`, `inventory_number`, `search`), `Get-HaloContract.ps1`
  (`/api/ClientContract?client_id`), `Get-HaloRecurringInvoice.ps1` (`client_id`, `contract_id`),
  `Get-HaloStatus.ps1` (`type=ticket`), `Get-HaloTeam.ps1`, `Get-HaloTicketType.ps1`,
  `Data/Templates/*.json` (field names).
- `KelvinTegelaar/CIPP-API` `Modules/CippExtensions/Public/Halo/`: `Get-HaloToken.ps1` (token
  body), `Get-HaloMapping.ps1` (`/Client?page_no&page_size&pageinate=true`, `record_count`),
  `New-HaloPSATicket.ps1` (ticket array body; `POST /actions` with `[{ticket_id, outcome_id,
  hiddenfromuser, note_html}]`; Halo refuses an action without an outcome: "An Outcome must be
  entered for this Action"; `hasbeenclosed`), `Get-HaloPriority.ps1` (`/Priority` is per SLA:
  `priorityid`, `slaid`).
- `jakesiney/HaloPSA-Update-Invoice-Lines` @ 5d7b528e: `updata_invoice_lines.py`,
  `example-post.json` (line fields `_itemid`, `qty_order`, `unit_price`, `unit_cost`,
  `item_internal_reference`, `recurring_invoice_quantity_type`; recurring invoice ids are negative).

Unverified (no public source found; configurable where it matters): the default closed status id
9 (`options.closed_status_id`), the outcome names "Private Note" / "Close" (`options.*_outcome`,
or `*_outcome_id`), Halo's page-size ceiling and rate limits, and the ticket URL form.

What is written where
---------------------
- Tickets carry a stable `[marker]` at the end of the summary (and optionally the raw marker in a
  ticket custom field); `find_ticket` searches the client's tickets for the marker text and checks
  the summary. `TicketSpec.board_id` is the Halo team's id; the ticket names it the way Halo's
  ticket schema does (`team` by name, `team_department_id`).
- A ticket is attached to the endpoint's asset (`TicketSpec.configuration_id`, the asset id
  `upsert_configuration` returned) in the create itself: `Faults.assets`, an array of
  `Device_List` objects, given by `id` (`specs/halopsa/swagger.json`, schema `Faults`; the
  `assets` list of the HaloAPI ticket template). Being part of the create, a retried or recovered
  create cannot attach twice. An asset Halo refuses (deleted since) is dropped and the create sent
  again without it, with a warning [the refusal's wording is unverified; the fake answers a 400
  naming the asset].
- Notes and closes are Actions: a note is `{ticket_id, outcome, note, hiddenfromuser}`; a close is
  one Action with the resolution as its note and `new_status` = the closed status.
- Asset status goes into a delimited block of the asset's `notes` (default) or into asset custom
  fields matched by name/label. Assets are found by `inventory_number` within the client.
- Billing: `BillingLine.agreement_id` is a client contract (`/ClientContract`), `product_id` a Halo
  item id. The line lives on the contract's recurring invoice: it is written only when it carries the
  marker stored in `item_internal_reference` or is the line connector was linked to (the read-back
  also reports a line of the `_itemid` without it: someone else's), its quantity/prices are changed
  only when different,
  and the invoice is posted back with every line, as Halo requires. Halo can also count assets or
  users itself (`calculate_price_from_assets`); this adapter writes explicit quantities.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import re
import time
import urllib.parse
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any, TypeVar

import httpx
from pydantic import BaseModel, ValidationError

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
    create_or_recover,
    json_body,
    merge_status_block,
    parse_record,
    settings_as,
    ticket_catalog,
)
from adapters.errors import (
    AdapterError,
    ConfigurationError,
    CredentialsError,
    NotFoundError,
    VendorRequestError,
)
from adapters.halopsa.models import (
    ActionCreate,
    ActionRead,
    AgentRead,
    AssetRead,
    AssetRef,
    AssetWrite,
    ClientRead,
    ContractRead,
    CustomFieldRead,
    CustomFieldWrite,
    HaloCredentials,
    HaloOptions,
    InvoiceLineCreate,
    InvoiceLineRead,
    ItemRead,
    PriorityRead,
    RecurringInvoiceRead,
    SiteRead,
    StatusRead,
    TeamRead,
    TicketCreate,
    TicketRead,
    TicketTypeRead,
    TokenResponse,
)
from adapters.http import VendorHttpClient

log = logging.getLogger("adapters.halopsa")

SUMMARY_MAX = 250
"""Lookups by marker after a write that may have been applied despite a timeout or 5xx."""
DEFAULT_TOKEN_LIFETIME = 3600.0

_MARKER_UNSAFE = re.compile(r"[^A-Za-z0-9:._-]+")
_FIELD_HINTS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"\boutcome", re.I), "outcome"),
    (re.compile(r"\bticket ?type", re.I), "tickettype_id"),
    (re.compile(r"\basset ?type", re.I), "assettype_id"),
    (re.compile(r"\bassets?\b", re.I), "assets"),
    (re.compile(r"\bsummary\b", re.I), "summary"),
    (re.compile(r"\bclient\b", re.I), "client_id"),
    (re.compile(r"\bsite\b", re.I), "site_id"),
    (re.compile(r"\bstatus\b", re.I), "status_id"),
    (re.compile(r"\bpriority\b", re.I), "priority_id"),
    (re.compile(r"\bteam\b", re.I), "board_id"),
    (re.compile(r"\bitem\b", re.I), "_itemid"),
    (re.compile(r"\binventory", re.I), "inventory_number"),
    (re.compile(r"\bnote\b", re.I), "note"),
    (re.compile(r"\bticket\b", re.I), "ticket_id"),
)

R = TypeVar("R", bound=BaseModel)


# ---------------------------------------------------------------------------------------------
# Pure helpers (unit-tested directly)
# ---------------------------------------------------------------------------------------------


def marker_token(marker: str) -> str:
    """The `[marker]` written into summaries and line references: search-safe characters only, at
    most 42 characters; a longer or unsafe marker becomes a stable hash of it."""
    clean = _MARKER_UNSAFE.sub("-", marker.strip()).strip("-")
    if not clean or len(clean) > 40:
        clean = "cn-" + hashlib.sha256(marker.encode()).hexdigest()[:24]
    return f"[{clean}]"


def summary_with_marker(summary: str, token: str) -> str:
    """The summary with its marker at the end, shortened so the marker always survives."""
    room = SUMMARY_MAX - len(token) - 1
    text = " ".join(summary.split())
    if len(text) > room:
        text = text[: room - 3].rstrip() + "..."
    return f"{text} {token}"


def field_from_message(message: str) -> str | None:
    """Halo's validation messages are prose ("An Outcome must be entered for this Action"); name
    the request field they are about so the engineer sees which mapping to fix."""
    for pattern, name in _FIELD_HINTS:
        if pattern.search(message):
            return name
    return None


def parse_halo_error(response: httpx.Response) -> tuple[str, str | None]:
    """Halo's error bodies → (message, field). Seen shapes: a bare JSON string, `{resultCode,
    errorMessage}`, `{ClassName, Message}`, `{Message}`/`{message}`, OAuth `{error,
    error_description}`."""
    try:
        body = response.json()
    except ValueError:
        text = response.text.strip()
        message = text[:300] or response.reason_phrase or f"HTTP {response.status_code}"
        return message, field_from_message(text)
    if isinstance(body, str):
        message = body
    elif isinstance(body, dict):
        found = (
            body.get("errorMessage")
            or body.get("Message")
            or body.get("message")
            or body.get("error_description")
            or body.get("error")
        )
        message = str(found) if found else json.dumps(body)[:300]
        code = body.get("resultCode") or body.get("ClassName") or body.get("error")
        if code and str(code) not in message:
            message = f"{code}: {message}"
    else:
        message = json.dumps(body)[:300]
    return message.strip()[:500] or f"HTTP {response.status_code}", field_from_message(message)


def _credential_field(message: str) -> str:
    lowered = message.lower()
    if "tenant" in lowered:
        return "tenant"
    if "invalid_scope" in lowered or "scope" in lowered:
        return "scope"
    return "client_secret"


def _when(stamp: str | None) -> datetime | None:
    try:
        return datetime.fromisoformat(stamp.replace("Z", "+00:00")) if stamp else None
    except ValueError:
        return None


def _as_int(value: str | int, field: str, *, negative_ok: bool = False) -> int:
    try:
        number = int(str(value).strip())
    except ValueError:
        raise VendorRequestError(f"Halo ids are integers, got {value!r}", field=field) from None
    if number == 0 or (number < 0 and not negative_ok):
        raise VendorRequestError(f"not a Halo record id: {value!r}", field=field)
    return number


def _assets(configuration_id: str | None) -> list[AssetRef] | None:
    """`TicketSpec.configuration_id` as the ticket's `assets`; an id that is not a Halo asset id
    (never written by this adapter) is left off rather than failing the ticket."""
    try:
        number = int(configuration_id.strip()) if configuration_id else 0
    except ValueError:
        return None
    return [AssetRef(id=number)] if number > 0 else None


def _records(data: Any, key: str) -> list[Any]:
    """A list endpoint's records: Halo wraps most lists (`{"record_count", key: [...]}`) but
    returns some lookups (statuses, teams, ticket types, priorities) as bare arrays."""
    if isinstance(data, list):
        return data
    if isinstance(data, dict):
        for name, value in data.items():
            if name.lower() == key.lower() and isinstance(value, list):
                return value
    raise AdapterError(f"expected a list of {key} from Halo")


def _jsonable(value: Any) -> Any:
    """Records read with Decimal numbers, ready to be posted back as JSON numbers."""
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() and "." not in str(value) else float(value)
    if isinstance(value, dict):
        return {key: _jsonable(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_jsonable(item) for item in value]
    return value


def _same(current: Decimal | None, wanted: Decimal) -> bool:
    return current is not None and Decimal(current) == wanted


# ---------------------------------------------------------------------------------------------
# OAuth2 client credentials
# ---------------------------------------------------------------------------------------------


class HaloTokenSource:
    """Fetches and caches the Bearer token; refreshes it `margin` seconds before it expires and
    whenever the API answers 401 (`force=True`). One refresh at a time per connection."""

    def __init__(
        self,
        auth_base: str,
        credentials: HaloCredentials,
        *,
        transport: httpx.AsyncBaseTransport | None,
        sleep: Callable[[float], Awaitable[None]],
        margin: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.token_url = f"{auth_base}/token"
        self._credentials = credentials
        self._client = VendorHttpClient(
            auth_base, error_parser=parse_halo_error, transport=transport, sleep=sleep
        )
        self._margin = margin
        self._clock = clock
        self._token: str | None = None
        self._type = "Bearer"
        self._expires_at = 0.0
        self._lock = asyncio.Lock()
        self.fetch_count = 0

    def form(self) -> dict[str, str]:
        creds = self._credentials
        return {
            "grant_type": "client_credentials",
            "client_id": creds.client_id,
            "client_secret": creds.client_secret.get_secret_value(),
            "scope": creds.scope,
        }

    def _valid(self) -> bool:
        return self._token is not None and self._clock() < self._expires_at - self._margin

    async def headers(self, force: bool) -> dict[str, str]:
        stale = self._token
        if force or not self._valid():
            async with self._lock:
                # Another caller may have refreshed while this one waited.
                if (force and self._token == stale) or not self._valid():
                    await self._fetch()
        return {"Authorization": f"{self._type} {self._token}"}

    async def _fetch(self) -> None:
        params = {"tenant": self._credentials.tenant} if self._credentials.tenant else None
        body = urllib.parse.urlencode(self.form()).encode()
        self.fetch_count += 1
        try:
            response = await self._client.request(
                "POST",
                "/token",
                params=params,
                content=body,
                headers={"Content-Type": "application/x-www-form-urlencoded", "Accept": "application/json"},
                authenticated=False,
                idempotent=True,
            )
        except VendorRequestError as exc:
            # OAuth answers a bad client, secret, scope or tenant with 400 {"error": ...}: all of
            # them are the connection's credentials being wrong, never worth a retry.
            raise CredentialsError(
                f"Halo refused the token request: {exc.message}",
                field=_credential_field(exc.message),
                status=exc.status,
            ) from exc
        except CredentialsError as exc:
            raise CredentialsError(
                f"Halo refused the token request: {exc.message}",
                field=_credential_field(exc.message),
                status=exc.status,
            ) from exc
        try:
            token = TokenResponse.model_validate(response.json())
        except (ValueError, ValidationError) as exc:
            raise CredentialsError(
                f"{self.token_url} did not return an access token", field="auth_url"
            ) from exc
        lifetime = token.expires_in if token.expires_in and token.expires_in > 0 else DEFAULT_TOKEN_LIFETIME
        self._token = token.access_token
        self._type = (token.token_type or "Bearer").capitalize()
        self._expires_at = self._clock() + float(lifetime)

    async def aclose(self) -> None:
        await self._client.aclose()


# ---------------------------------------------------------------------------------------------
# The adapter
# ---------------------------------------------------------------------------------------------


class HaloPsaAdapter:
    """PsaAdapter for the HaloPSA REST API."""

    def __init__(self, ctx: ConnectionContext) -> None:
        credentials = settings_as(HaloCredentials, ctx.credentials)
        options = settings_as(HaloOptions, ctx.options)
        self._ctx = ctx
        self._credentials: HaloCredentials = credentials
        self._options: HaloOptions = options
        self._sleep: Callable[[float], Awaitable[None]] = ctx.sleep or asyncio.sleep
        self._teams: dict[int, TeamRead] | None = None
        self._me: int | None = None
        self.instance_url = self._instance(ctx.base_url)
        self.api_base = f"{self.instance_url}/api"
        self.auth_base = options.auth_url or f"{self.instance_url}/auth"
        clock = ctx.extra.get("clock")
        self._tokens = HaloTokenSource(
            self.auth_base,
            credentials,
            transport=ctx.transport_factory(self.auth_base),
            sleep=self._sleep,
            margin=options.token_refresh_margin,
            clock=clock if callable(clock) else time.monotonic,
        )
        self._client = VendorHttpClient(
            self.api_base,
            headers={"Accept": "application/json"},
            auth_headers=self._tokens.headers,
            error_parser=parse_halo_error,
            max_concurrency=options.max_concurrency,
            max_requests_per_minute=options.max_requests_per_minute,
            budget=ctx.budget,
            transport=ctx.transport_factory(self.api_base),
            sleep=self._sleep,
        )

    @staticmethod
    def _instance(base_url: str) -> str:
        raw = (base_url or "").strip()
        if not raw:
            raise ConfigurationError("the Halo instance URL is required", field="base_url")
        if "://" not in raw:
            raw = "https://" + raw
        url = httpx.URL(raw)
        if not url.host:
            raise ConfigurationError(f"not an instance URL: {base_url!r}", field="base_url")
        path = url.path.rstrip("/")
        for suffix in ("/api", "/auth"):
            path = path.removesuffix(suffix)
        port = f":{url.port}" if url.port else ""
        return f"{url.scheme}://{url.host}{port}{path}"

    @property
    def tokens(self) -> HaloTokenSource:
        return self._tokens

    async def aclose(self) -> None:
        await self._client.aclose()
        await self._tokens.aclose()

    # -- plumbing ---------------------------------------------------------------------------

    _body = staticmethod(json_body)

    @staticmethod
    def _parse(model: type[R], data: Any, what: str) -> R:
        return parse_record(model, data, what, "Halo")

    def _parse_list(self, model: type[R], items: list[Any], what: str) -> list[R]:
        return [self._parse(model, item, what) for item in items]

    async def _get(self, path: str, params: Mapping[str, Any] | None = None) -> Any:
        return self._body(await self._client.request("GET", path, params=params))

    async def _post(self, path: str, body: list[dict[str, Any]], *, idempotent: bool) -> Any:
        """Halo's writes are POSTs of an array; an object with `id` updates that record."""
        response = await self._client.request("POST", path, json=_jsonable(body), idempotent=idempotent)
        return self._body(response)

    @staticmethod
    def _single(data: Any) -> Any:
        """A one-element POST answers with the record itself (some versions wrap it in a list)."""
        if isinstance(data, list):
            return data[0] if data else None
        return data

    async def _pages(self, path: str, params: Mapping[str, Any], key: str) -> AsyncIterator[list[Any]]:
        """`pageinate=true&page_size&page_no` (1-based) until a short page or `record_count`. Our
        own filters go on every page."""
        size = self._options.page_size
        page = 1
        seen = 0
        while True:
            data = await self._get(path, {**params, "pageinate": "true", "page_size": size, "page_no": page})
            items = _records(data, key)
            if items:
                yield items
            seen += len(items)
            total = data.get("record_count") if isinstance(data, dict) else None
            if len(items) < size or (isinstance(total, int) and seen >= total):
                return
            page += 1

    async def _collect(self, model: type[R], path: str, params: Mapping[str, Any], key: str) -> list[R]:
        records: list[R] = []
        async for page in self._pages(path, params, key):
            records.extend(self._parse_list(model, page, key))
        return records

    async def _lookup(self, model: type[R], path: str, params: Mapping[str, Any], key: str) -> list[R]:
        """Unpaged lookup lists (statuses, teams, types, priorities)."""
        return self._parse_list(model, _records(await self._get(path, params), key), key)

    # -- Adapter ----------------------------------------------------------------------------

    async def test_connection(self) -> None:
        await self._get("/Client", {"pageinate": "true", "page_size": 1, "page_no": 1})

    async def list_companies(self) -> AsyncIterator[PsaCompany]:
        async for page in self._pages("/Client", {}, "clients"):
            for client in self._parse_list(ClientRead, page, "clients"):
                if client.inactive:
                    continue
                name = " ".join((client.name or "").split()) or f"Client {client.id}"
                yield PsaCompany(id=str(client.id), name=name)

    async def list_agreements(self, company_id: str) -> list[PsaAgreement]:
        cid = _as_int(company_id, "company_id")
        contracts = await self._collect(ContractRead, "/ClientContract", {"client_id": cid}, "contracts")
        return [
            PsaAgreement(
                id=str(c.id),
                company_id=str(c.client_id or cid),
                name=c.ref or f"Contract {c.id}",
                type_name="Contract",
                active=not c.expired,
            )
            for c in contracts
            if c.client_id in (None, cid)
        ]

    async def list_ticket_options(self) -> dict[str, list[PsaOption]]:
        teams, statuses, priorities, types = await asyncio.gather(
            self._lookup(TeamRead, "/Team", {}, "teams"),
            self._lookup(StatusRead, "/Status", {"type": "ticket"}, "statuses"),
            self._lookup(PriorityRead, "/Priority", {}, "priorities"),
            self._lookup(TicketTypeRead, "/TicketType", {}, "tickettypes"),
        )
        closed = self._options.closed_status_id
        return {
            "boards": [
                PsaOption(id=str(t.id), name=t.name or str(t.id))
                for t in teams
                if not t.inactive and t.forrequests is not False
            ],
            "statuses": [
                PsaOption(id=str(s.id), name=s.name or str(s.id), closed=s.id == closed) for s in statuses
            ],
            "priorities": [
                PsaOption(
                    id=str(p.priorityid),
                    name=p.name or str(p.priorityid),
                    parent_id=str(p.slaid) if p.slaid is not None else None,
                )
                for p in priorities
                # Tickets take `priorityid`; the row `id` is a UUID no ticket field takes.
                if p.priorityid is not None
            ],
            "types": [
                PsaOption(id=str(t.id), name=t.name or str(t.id)) for t in types if t.visible is not False
            ],
        }

    async def list_catalog(self, kind: CatalogKind) -> list[PsaOption]:
        common = await ticket_catalog(self, kind)
        if common is not None:
            return common
        if kind is CatalogKind.AGREEMENT_TYPES:
            # Halo has no agreement types: a billing rule's `agreement_type` names client contracts
            # by their reference, or all of them as "Contract" (as `list_agreements` reports them)
            contracts = await self._collect(ContractRead, "/ClientContract", {}, "contracts")
            refs = sorted({c.ref for c in contracts if c.ref and not c.expired})
            return [PsaOption(id="Contract", name="Contract"), *(PsaOption(id=r, name=r) for r in refs)]
        items = await self._collect(ItemRead, "/Item", {}, "items")
        return [PsaOption(id=str(i.id), name=i.name or str(i.id)) for i in items if not i.inactive]

    # -- tickets ----------------------------------------------------------------------------

    def _ticket_ref(self, ticket: TicketRead) -> TicketRef:
        closed = bool(ticket.hasbeenclosed) or ticket.status_id == self._options.closed_status_id
        return TicketRef(
            id=str(ticket.id),
            number=str(ticket.id),
            url=f"{self.instance_url}/ticket?id={ticket.id}",
            closed=closed,
        )

    async def find_ticket(self, marker: str, company_id: str) -> TicketRef | None:
        token = marker_token(marker)
        cid = _as_int(company_id, "company_id")
        # Search for the marker text without its brackets: Halo's search is a SQL LIKE, where
        # `[...]` is a character class. The summary check below is exact.
        params = {"client_id": cid, "search": token[1:-1]}
        tickets = await self._collect(TicketRead, "/Tickets", params, "tickets")
        matches = [t for t in tickets if token in (t.summary or "") and t.client_id in (None, cid)]
        if not matches:
            return None
        refs = [self._ticket_ref(t) for t in sorted(matches, key=lambda t: t.id)]
        open_ones = [r for r in refs if not r.closed]
        return (open_ones or refs)[0]

    async def _team(self, team_id: int) -> TeamRead:
        """The team a ticket goes to: Halo's ticket takes the team by name and department
        (`Faults.team`, `team_department_id`), so the id a rule names is looked up once."""
        if self._teams is None:
            self._teams = {t.id: t for t in await self._lookup(TeamRead, "/Team", {}, "teams")}
        team = self._teams.get(team_id)
        if team is None or not team.name:
            self._teams = None  # a team added since is found on the next call
            raise ConfigurationError(f"HaloPSA has no team {team_id}", field="board_id")
        return team

    async def create_ticket(self, spec: TicketSpec) -> TicketRef:
        token = marker_token(spec.marker)
        custom = None
        if self._options.marker_custom_field_id:
            custom = [CustomFieldWrite(id=self._options.marker_custom_field_id, value=spec.marker)]
        board = spec.board_id.strip()
        team = await self._team(_as_int(board, "board_id")) if board and board != "0" else None
        body = TicketCreate(
            summary=summary_with_marker(spec.summary, token),
            details=spec.description or None,
            client_id=_as_int(spec.company_id, "company_id"),
            team=team.name if team else None,
            team_department_id=team.department_id if team else None,
            tickettype_id=_as_int(spec.type_id, "type_id") if spec.type_id else None,
            priority_id=_as_int(spec.priority_id, "priority_id") if spec.priority_id else None,
            status_id=_as_int(spec.status_id, "status_id") if spec.status_id else None,
            customfields=custom,
            assets=_assets(spec.configuration_id),
        )

        async def post() -> Any:
            nonlocal body
            try:
                return await self._post("/Tickets", [body.wire()], idempotent=False)
            except VendorRequestError as exc:
                if body.assets is None or exc.field != "assets":
                    raise
                # The asset was deleted (or moved) since the sync wrote it: the ticket goes in without it.
                log.warning("ticket %s not attached to asset %s: %s", token, spec.configuration_id, exc)
                body = body.model_copy(update={"assets": None})
                return await self._post("/Tickets", [body.wire()], idempotent=False)

        async def create() -> TicketRef:
            created = await post()
            return self._ticket_ref(self._parse(TicketRead, self._single(created), "ticket"))

        return await create_or_recover(
            create,
            lambda: self.find_ticket(spec.marker, spec.company_id),
            sleep=self._sleep,
            what=f"ticket create for {token}",
        )

    def _action(self, ticket_id: int, text: str, *, close_status: int | None) -> ActionCreate:
        opts = self._options
        if close_status is None:
            outcome, outcome_id = opts.note_outcome, opts.note_outcome_id
        else:
            outcome, outcome_id = opts.close_outcome, opts.close_outcome_id
        return ActionCreate(
            ticket_id=ticket_id,
            outcome=None if outcome_id else outcome,
            outcome_id=outcome_id,
            note=text,
            hiddenfromuser=opts.notes_hidden_from_user,
            new_status=close_status,
        )

    async def _has_note(self, ticket_id: int, text: str) -> bool:
        wanted = text.strip()
        data = await self._get("/Actions", {"ticket_id": ticket_id, "count": 100})
        actions = self._parse_list(ActionRead, _records(data, "actions"), "actions")
        return any((a.note or "").strip() == wanted for a in actions)

    async def add_note(self, ticket_id: str, text: str) -> None:
        tid = _as_int(ticket_id, "ticket_id")
        action = self._action(tid, text, close_status=None)

        async def post() -> bool:
            await self._post("/Actions", [action.wire()], idempotent=False)
            return True

        async def posted() -> bool | None:
            return True if await self._has_note(tid, text) else None

        await create_or_recover(post, posted, sleep=self._sleep, what=f"note on ticket {tid}")

    async def _ticket(self, ticket_id: int) -> TicketRead:
        return self._parse(TicketRead, await self._get(f"/Tickets/{ticket_id}"), "ticket")

    async def close_ticket(self, ticket_id: str, status_id: str | None, resolution: str) -> None:
        tid = _as_int(ticket_id, "ticket_id")
        target = _as_int(status_id, "status_id") if status_id else self._options.closed_status_id
        ticket = await self._ticket(tid)
        if ticket.status_id == target:
            return  # the closing action carried the resolution note with it
        action = self._action(tid, resolution.strip() or "Closed", close_status=target)

        async def post() -> bool:
            await self._post("/Actions", [action.wire()], idempotent=False)
            return True

        async def closed() -> bool | None:
            return True if (await self._ticket(tid)).status_id == target else None

        await create_or_recover(post, closed, sleep=self._sleep, what=f"closing action on ticket {tid}")

    async def _my_agent(self) -> int:
        """The agent the API application logs in as (`GET /Agent/me`): its actions are ours."""
        if self._me is None:
            self._me = self._parse(AgentRead, await self._get("/Agent/me"), "agent").id
        return self._me

    async def read_ticket(self, ticket_id: str) -> TicketReadback | None:
        """The ticket (`agent_id`, `merged_into_id`, `deleted`) and its Actions: an action by an
        agent other than the API's is a person's note, time (`timetaken`) or status change."""
        tid = _as_int(ticket_id, "ticket_id")
        try:
            ticket = await self._ticket(tid)
        except NotFoundError:
            return None
        if ticket.deleted:
            return None
        me = await self._my_agent()
        data = await self._get("/Actions", {"ticket_id": tid, "count": 100})
        actions = self._parse_list(ActionRead, _records(data, "actions"), "actions")
        activity: list[TicketActivity] = []
        closed_by_human = False
        for action in actions:
            if action.who_agentid in (None, 0, me):
                continue
            by, at = str(action.who_agentid), _when(action.datetime)
            if action.new_status is not None:
                activity.append(TicketActivity(kind="status", by=by, at=at))
                closed_by_human = closed_by_human or action.new_status == self._options.closed_status_id
            if action.timetaken:
                activity.append(TicketActivity(kind="time_entry", by=by, at=at))
            if (action.note or "").strip() or not (action.new_status or action.timetaken):
                activity.append(TicketActivity(kind="note", by=by, at=at))
        if ticket.agent_id not in (None, 0, me):
            activity.append(TicketActivity(kind="assignment", by=str(ticket.agent_id)))
        closed = bool(ticket.hasbeenclosed) or ticket.status_id == self._options.closed_status_id
        merged = ticket.merged_into_id
        return TicketReadback(
            id=str(ticket.id),
            closed=closed,
            closed_by_human=closed and closed_by_human,
            merged_into=str(merged) if merged else None,
            human_activity=activity,
        )

    # -- assets -----------------------------------------------------------------------------

    async def _find_asset(self, client_id: int, name: str) -> AssetRead | None:
        wanted = name.strip().casefold()

        def pick(assets: list[AssetRead]) -> AssetRead | None:
            same = [
                a
                for a in assets
                if a.client_id in (None, client_id)
                and wanted in ((a.inventory_number or "").casefold(), (a.key_field or "").casefold())
            ]
            same.sort(key=lambda a: (bool(a.inactive), (a.inventory_number or "").casefold() != wanted, a.id))
            return same[0] if same else None

        by_number = await self._collect(
            AssetRead, "/Asset", {"client_id": client_id, "inventory_number": name.strip()}, "assets"
        )
        found = pick(by_number)
        if found is None:
            by_search = await self._collect(
                AssetRead, "/Asset", {"client_id": client_id, "search": name.strip()}, "assets"
            )
            found = pick(by_search)
        if found is None:
            return None
        # List rows are summaries; the record carries notes and custom fields.
        return self._parse(AssetRead, await self._get(f"/Asset/{found.id}"), "asset")

    def _asset_changes(self, asset: AssetRead, fields: Mapping[str, str]) -> AssetWrite | None:
        if not fields:
            return None
        if self._options.asset_fields_target == "notes":
            merged = merge_status_block(asset.notes, fields)
            return None if merged == (asset.notes or "") else AssetWrite(id=asset.id, notes=merged)
        custom: dict[str, CustomFieldRead] = {}
        for cf in asset.customfields or []:
            for label in (cf.name, cf.label):
                if label:
                    custom[label.casefold()] = cf
        changes: list[CustomFieldWrite] = []
        for key, value in fields.items():
            target = custom.get(key.casefold())
            if target is None:
                raise ConfigurationError(
                    f"asset {asset.id} has no custom field named {key!r}", field=f"fields.{key}"
                )
            if target.value is None or str(target.value) != value:
                changes.append(CustomFieldWrite(id=target.id, value=value))
        return AssetWrite(id=asset.id, customfields=changes) if changes else None

    async def _client_site(self, client_id: int) -> int:
        sites = await self._collect(SiteRead, "/Site", {"client_id": client_id}, "sites")
        active = [s for s in sites if not s.inactive and s.client_id in (None, client_id)]
        if not active:
            raise ConfigurationError(
                f"client {client_id} has no active site to put assets on", field="company_id"
            )
        return sorted(active, key=lambda s: s.id)[0].id

    async def upsert_configuration(self, update: ConfigurationUpdate) -> str | None:
        cid = _as_int(update.company_id, "company_id")
        asset = await self._find_asset(cid, update.device_name)
        if asset is None:
            if not update.create_if_missing:
                return None
            asset = await self._create_asset(cid, update)
            if self._options.asset_fields_target == "notes":
                return str(asset.id)  # the status block went in with the create
        change = self._asset_changes(asset, update.fields)
        if change is not None:
            await self._post("/Asset", [change.wire()], idempotent=True)
        return str(asset.id)

    async def _create_asset(self, client_id: int, update: ConfigurationUpdate) -> AssetRead:
        type_id = update.type_id or (
            str(self._options.default_asset_type_id) if self._options.default_asset_type_id else None
        )
        if not type_id:
            raise ConfigurationError("an asset type is required to create an asset", field="type_id")
        notes = None
        if self._options.asset_fields_target == "notes" and update.fields:
            notes = merge_status_block(None, update.fields)
        body = AssetWrite(
            client_id=client_id,
            site_id=await self._client_site(client_id),
            assettype_id=_as_int(type_id, "type_id"),
            inventory_number=update.device_name.strip(),
            key_field=update.device_name.strip(),
            notes=notes,
        )

        async def create() -> AssetRead:
            created = await self._post("/Asset", [body.wire()], idempotent=False)
            return self._parse(AssetRead, self._single(created), "asset")

        return await create_or_recover(
            create,
            lambda: self._find_asset(client_id, update.device_name),
            sleep=self._sleep,
            what=f"asset create for {update.device_name!r}",
        )

    # -- billing ----------------------------------------------------------------------------

    async def _recurring_invoice(self, client_id: int, contract_id: int) -> RecurringInvoiceRead:
        params = {"client_id": client_id, "contract_id": contract_id}
        found = await self._collect(RecurringInvoiceRead, "/RecurringInvoice", params, "invoices")
        mine = [r for r in found if r.contract_id in (None, contract_id) and r.client_id in (None, client_id)]
        if not mine:
            raise ConfigurationError(
                f"contract {contract_id} of client {client_id} has no recurring invoice to bill on",
                field="agreement_id",
            )
        if len(mine) > 1:
            log.warning("contract %s has %d recurring invoices; using %s", contract_id, len(mine), mine[0].id)
        data = await self._get(f"/RecurringInvoice/{mine[0].id}")
        return self._parse(RecurringInvoiceRead, data, "recurring invoice")

    @staticmethod
    def _find_line(
        lines: list[dict[str, Any]],
        item_id: int,
        token: str,
        line_id: str | None = None,
        *,
        by_product: bool = True,
    ) -> tuple[int, InvoiceLineRead] | None:
        """By marker, then `line_id`; then (`by_product`, reads only) an active line of the item."""
        parsed = [(i, InvoiceLineRead.model_validate(line)) for i, line in enumerate(lines) if "id" in line]
        for index, line in parsed:
            if token in (line.item_internal_reference or ""):
                return index, line
        for index, line in parsed:
            if line_id is not None and str(line.id) == line_id and not line.isinactive:
                return index, line
        if not by_product:
            return None
        same = [(i, line) for i, line in parsed if line.item_id == item_id and not line.isinactive]
        if len(same) > 1:
            log.warning(
                "recurring invoice has %d active lines for item %s; updating the first", len(same), item_id
            )
        return same[0] if same else None

    async def read_billing_line(self, line: BillingLine) -> BillingLineRead | None:
        cid = _as_int(line.company_id, "company_id")
        contract = _as_int(line.agreement_id, "agreement_id")
        item = _as_int(line.product_id, "product_id")
        token = marker_token(line.marker)
        invoice = await self._recurring_invoice(cid, contract)
        found = self._find_line([dict(raw) for raw in invoice.lines or []], item, token, line.line_id)
        if found is None:
            return None
        current = found[1]
        return BillingLineRead(
            line_id=str(current.id),
            quantity=Decimal(current.qty_order or 0),
            unit_price=current.unit_price,
            marked=token in (current.item_internal_reference or ""),
        )

    async def upsert_billing_line(self, line: BillingLine) -> BillingLineResult:
        cid = _as_int(line.company_id, "company_id")
        contract = _as_int(line.agreement_id, "agreement_id")
        item = _as_int(line.product_id, "product_id")
        token = marker_token(line.marker)
        invoice = await self._recurring_invoice(cid, contract)
        lines = [dict(raw) for raw in invoice.lines or []]
        existing = self._find_line(lines, item, token, line.line_id, by_product=False)
        if existing is not None:
            index, current = existing
            if (
                _same(current.qty_order, line.quantity)
                and _same(current.unit_price, line.unit_price)
                and _same(current.unit_cost, line.unit_cost)
            ):
                return BillingLineResult(
                    action="unchanged", line_id=str(current.id), previous_quantity=current.qty_order
                )
            lines[index].update(
                qty_order=float(line.quantity),
                unit_price=float(line.unit_price),
                unit_cost=float(line.unit_cost),
                item_internal_reference=token,
            )
            # Every line goes back with its id: repeating this post changes nothing more.
            await self._post("/RecurringInvoice", [{"id": invoice.id, "lines": lines}], idempotent=True)
            return BillingLineResult(
                action="updated", line_id=str(current.id), previous_quantity=current.qty_order
            )
        new_line = InvoiceLineCreate(
            item_id=item,
            item_shortdescription=line.description[:250] or f"Item {item}",
            item_longdescription=line.description or None,
            item_internal_reference=token,
            qty_order=line.quantity,
            unit_price=line.unit_price,
            unit_cost=line.unit_cost,
            recurring_invoice_quantity_type=self._options.billing_quantity_type,
        )
        body = [{"id": invoice.id, "lines": [*lines, new_line.wire()]}]

        async def lookup() -> InvoiceLineRead | None:
            fresh = await self._get(f"/RecurringInvoice/{invoice.id}")
            parsed = self._parse(RecurringInvoiceRead, fresh, "recurring invoice")
            hit = self._find_line([dict(raw) for raw in parsed.lines or []], item, token)
            return hit[1] if hit and token in (hit[1].item_internal_reference or "") else None

        async def create() -> InvoiceLineRead:
            response = await self._post("/RecurringInvoice", body, idempotent=False)
            created: InvoiceLineRead | None = None
            answered = self._single(response)
            if isinstance(answered, dict) and isinstance(answered.get("lines"), list):
                hit = self._find_line([dict(raw) for raw in answered["lines"]], item, token)
                created = hit[1] if hit else None
            if created is None:
                created = await lookup()
            if created is None:
                raise AdapterError(f"Halo accepted the line for item {item} but it is not on the invoice")
            return created

        line_read = await create_or_recover(
            create, lookup, sleep=self._sleep, what=f"billing line create for {token}"
        )
        return BillingLineResult(action="created", line_id=str(line_read.id))


def create_adapter(ctx: ConnectionContext) -> HaloPsaAdapter:
    return HaloPsaAdapter(ctx)
