"""ConnectWise PSA (Manage) REST adapter: companies, agreements, ticket options, tickets, notes,
configurations and agreement additions.

Sources (see also the module docstrings of `models.py` and `conditions.py`):
- vendor-notes/psa.md §1.1 (URL form, `api-` cloud prefix, `/login/companyinfo/{companyId}` codebase
  discovery, version pinned in `Accept`), §1.2 (Basic `{companyId}+{publicKey}:{privateKey}` and the
  `clientId` header), §1.3 (`conditions` syntax and quoting), §1.4 (navigable `page`/`pageSize` paging
  with RFC 5988 `Link` headers, forward-only `pagination-type: forward-only` + `pageId` paging, the
  1,000-record page limit), §1.5 (JSON Patch rules, status codes, `ErrorResponseMessage`, internal
  timeouts returned as 500), §1.6 (429 + `Retry-After`), §1.7 (endpoints and fields), §4-§5 (markers
  against duplicate tickets after create timeouts, paging that drops filters).
- ConnectWise Developer Guide (developer.connectwise.com/Products/ConnectWise_PSA/REST, mirrored as
  noted in vendor-notes §0 "CW-DG") and "PSA Pagination" best-practice page ("CW-PAG").
- Public OpenAPI description `All.json` (model 2025.8) as generated in `ai-connor/connectwise` (MIT):
  `README.md` endpoint table, `model_ticket.go`, `model_service_note.go`, `model_addition.go`,
  `model_company_configuration.go`, `model_patch_operation.go`, `model_error_response_message.go`.

How the URLs are formed
-----------------------
The connection's `base_url` is the Manage site the engineer signs in to, e.g.
`https://na.myconnectwise.net` (cloud) or `https://psa.example.com` (on-premises); an optional path
prefix is kept. `options.site` (a bare host) overrides the base URL's host. The codebase comes from
`options.codebase`, from a base URL that already ends in `/{codebase}apis/3.0`, or from
`GET {site}/login/companyinfo/{companyId}` (unauthenticated). Cloud instances (`IsCloud`, or any
codebase other than `v4_6_release/` when `IsCloud` is absent; `options.cloud` forces it) get the `api-`
host prefix, so the API base is `https://api-na.myconnectwise.net/{codebase}apis/3.0`; on-premises
hosts are used as given. Discovery happens once per adapter, on first use.

What is written where
---------------------
- Tickets carry a stable `[marker]` inside the 100-character summary (suffix or prefix) and the raw
  marker in `externalXRef`; `find_ticket` searches `summary contains "[[]marker]" and company/id = N`.
- A ticket is attached to the endpoint's configuration (`TicketSpec.configuration_id`) after it is
  created, by `POST /service/tickets/{parentId}/configurations` with a `ConfigurationReference`
  (`{"id": n}`; All.json 2025.1 `PostServiceTicketsByParentIdConfigurations`, vendor-notes §1.7
  "Tickets link to configurations via /service/tickets/{parentId}/configurations"). The ticket's
  list (`GET` on the same path) is read first, so a retried create or one recovered by its marker
  attaches once; a refused reference (the configuration deleted) leaves the ticket as created and
  logs a warning.
- Configuration status goes into a delimited block of the configuration's `notes` (default), or into
  configuration custom fields matched by caption (`customFields` is replaced as a whole array, the
  only way Manage accepts custom-field writes). `questions` are type-specific and not written.
- Agreement additions are written only when they carry connector's `[marker]` (kept in the
  addition's `description`; the customer-facing `invoiceDescription` stays clean) or are the line
  connector was linked to; the read-back also reports an addition of the product (identifier or id)
  without the marker, so someone else's line is held for review, not overwritten. Quantity,
  unitPrice and unitCost are patched only when they differ.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import logging
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
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
    attach_or_warn,
    best_device_match,
    create_or_recover,
    json_body,
    merge_status_block,
    parse_record,
    settings_as,
    ticket_catalog,
)
from adapters.connectwise_manage import conditions as cond
from adapters.connectwise_manage.models import (
    AdditionCreate,
    AdditionRead,
    AgreementRead,
    AgreementTypeRead,
    BoardRead,
    BoardStatusRead,
    BoardTypeRead,
    CatalogItemRead,
    CompanyInfo,
    CompanyRead,
    ConfigurationCreate,
    ConfigurationRead,
    ConfigurationRef,
    CustomFieldRead,
    CustomFieldValueWrite,
    ErrorResponseRead,
    IdRef,
    ManageCredentials,
    ManageOptions,
    NoteRead,
    PatchOperation,
    PriorityRead,
    ProductRef,
    ServiceNoteCreate,
    TicketCreate,
    TicketRead,
    TimeEntryRead,
    patch_body,
)
from adapters.errors import (
    AdapterError,
    ConfigurationError,
    NotFoundError,
    VendorRequestError,
)
from adapters.http import VendorHttpClient

log = logging.getLogger("adapters.connectwise_manage")

SUMMARY_MAX = 100
ON_PREM_CODEBASE = "v4_6_release/"
CLOUD_DOMAINS = (".myconnectwise.net", ".connectwisedev.com")
FORWARD_ONLY = {"pagination-type": "forward-only"}
"""Lookups by marker after a create that may have been applied: Manage creates can take minutes."""

_MARKER_UNSAFE = re.compile(r"[^A-Za-z0-9:._-]+")
_API_PATH = re.compile(r"^(?P<prefix>.*?)/(?P<codebase>[^/]+/)apis/3\.0/?$")

R = TypeVar("R", bound=BaseModel)


# ---------------------------------------------------------------------------------------------
# Pure helpers (unit-tested directly)
# ---------------------------------------------------------------------------------------------


def marker_token(marker: str) -> str:
    """The `[marker]` written into summaries/descriptions: condition-safe characters only, at most
    42 characters; a longer or unsafe marker is replaced by a stable hash of it."""
    clean = _MARKER_UNSAFE.sub("-", marker.strip()).strip("-")
    if not clean or len(clean) > 40:
        clean = "cn-" + hashlib.sha256(marker.encode()).hexdigest()[:24]
    return f"[{clean}]"


def summary_with_marker(summary: str, token: str, style: str = "suffix") -> str:
    """Fit the summary and its marker into Manage's 100 characters, marker always intact."""
    room = SUMMARY_MAX - len(token) - 1
    text = " ".join(summary.split())
    if len(text) > room:
        text = text[: room - 3].rstrip() + "..."
    return f"{token} {text}" if style == "prefix" else f"{text} {token}"


def basic_auth_value(company_id: str, public_key: str, private_key: str) -> str:
    raw = f"{company_id}+{public_key}:{private_key}".encode()
    return "Basic " + base64.b64encode(raw).decode("ascii")


def accept_header(api_version: str) -> str:
    return f"application/vnd.connectwise.com+json; version={api_version}"


def parse_manage_error(response: httpx.Response) -> tuple[str, str | None]:
    """Manage's `ErrorResponseMessage` → (message, field) for `AdapterError`."""
    try:
        body = response.json()
    except ValueError:
        text = response.text.strip()
        return (text[:300] or response.reason_phrase or f"HTTP {response.status_code}", None)
    if not isinstance(body, dict):
        return (str(body)[:300], None)
    try:
        error = ErrorResponseRead.model_validate(body)
    except ValidationError:
        return (str(body)[:300], None)
    message = error.message or error.error or error.code or f"HTTP {response.status_code}"
    field: str | None = None
    details: list[str] = []
    for item in error.errors or []:
        if field is None and item.field:
            field = item.field
        if item.message and item.message != message:
            details.append(item.message)
    if details:
        message = f"{message} ({'; '.join(details)})"
    if error.code and error.code not in message:
        message = f"{error.code}: {message}"
    return (message, field)


def _next_link_param(response: httpx.Response, name: str) -> str | None:
    link = response.links.get("next")
    if not link or not link.get("url"):
        return None
    value = httpx.URL(str(link["url"])).params.get(name)
    return str(value) if value is not None else None


def _when(stamp: str | None) -> datetime | None:
    try:
        return datetime.fromisoformat(stamp.replace("Z", "+00:00")) if stamp else None
    except ValueError:
        return None


def _as_int(value: str, field: str) -> int:
    try:
        number = int(str(value).strip())
    except ValueError:
        raise VendorRequestError(f"ConnectWise ids are integers, got {value!r}", field=field) from None
    if number < 1:
        raise VendorRequestError(f"ConnectWise ids are positive, got {value!r}", field=field)
    return number


def _is_cancelled(addition: AdditionRead, now: datetime) -> bool:
    if (addition.agreementStatus or "").lower() == "cancelled":
        return True
    if not addition.cancelledDate:
        return False
    try:
        when = datetime.fromisoformat(addition.cancelledDate.replace("Z", "+00:00"))
    except ValueError:
        return True
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when <= now


@dataclass(frozen=True)
class ManageEndpoint:
    """Where one connection's API lives, once resolved."""

    api_base: str
    web_base: str
    codebase: str
    cloud: bool


# ---------------------------------------------------------------------------------------------
# The adapter
# ---------------------------------------------------------------------------------------------


class ConnectWiseManageAdapter:
    """PsaAdapter for ConnectWise PSA (Manage) REST API 3.0."""

    def __init__(self, ctx: ConnectionContext) -> None:
        credentials = settings_as(ManageCredentials, ctx.credentials)
        options = settings_as(ManageOptions, ctx.options)
        self._ctx = ctx
        self._credentials: ManageCredentials = credentials
        self._options: ManageOptions = options
        self._sleep: Callable[[float], Awaitable[None]] = ctx.sleep or asyncio.sleep
        self._scheme, self._host, self._prefix, self._url_codebase = self._parse_site(ctx.base_url)
        self._endpoint: ManageEndpoint | None = None
        self._client: VendorHttpClient | None = None
        self._lock = asyncio.Lock()
        self._closed_status_cache: dict[int, int] = {}

    # -- connection plumbing ---------------------------------------------------------------

    def _parse_site(self, base_url: str) -> tuple[str, str, str, str | None]:
        raw = (base_url or "").strip()
        if not raw and not self._options.site:
            raise ConfigurationError("the Manage site URL is required", field="base_url")
        if raw and "://" not in raw:
            raw = "https://" + raw
        url = httpx.URL(raw or f"https://{self._options.site}")
        scheme = url.scheme or "https"
        if self._options.site:
            host = self._options.site
        else:
            host = url.host + (f":{url.port}" if url.port else "")
        if not host:
            raise ConfigurationError(f"not a site URL: {base_url!r}", field="base_url")
        path = url.path.rstrip("/")
        codebase: str | None = None
        match = _API_PATH.match(path + "/")
        if match:
            path, codebase = match.group("prefix"), match.group("codebase")
        return scheme, host.lower(), path, codebase

    @property
    def site_url(self) -> str:
        return f"{self._scheme}://{self._host}{self._prefix}"

    @property
    def endpoint(self) -> ManageEndpoint | None:
        return self._endpoint

    def _headers(self) -> dict[str, str]:
        creds = self._credentials
        return {
            "Authorization": basic_auth_value(
                creds.company_id, creds.public_key, creds.private_key.get_secret_value()
            ),
            "clientId": creds.client_id.get_secret_value(),
            "Accept": accept_header(self._options.api_version),
        }

    async def _discover(self) -> CompanyInfo:
        site = self.site_url
        client = VendorHttpClient(  # a call to the vendor like any other: it takes a budget slot
            site,
            headers={"Accept": "application/json"},
            error_parser=parse_manage_error,
            max_concurrency=self._options.max_concurrency,
            max_requests_per_minute=self._options.max_requests_per_minute,
            budget=self._ctx.budget,
            transport=self._ctx.transport_factory(site),
            sleep=self._sleep,
        )
        path = f"/login/companyinfo/{self._credentials.company_id}"
        try:
            response = await client.request("GET", path, authenticated=False)
            body = response.json()
        except NotFoundError as exc:
            raise ConfigurationError(
                f"{site} does not know company id {self._credentials.company_id!r}", field="company_id"
            ) from exc
        except ValueError as exc:
            raise ConfigurationError(
                f"{site} did not answer like a ConnectWise Manage site", field="base_url"
            ) from exc
        finally:
            await client.aclose()
        info = CompanyInfo.model_validate(body) if isinstance(body, dict) else CompanyInfo()
        if not info.Codebase:
            raise ConfigurationError(
                f"{site} does not know company id {self._credentials.company_id!r}", field="company_id"
            )
        return info

    async def _resolve(self) -> ManageEndpoint:
        codebase = self._options.codebase or self._url_codebase
        cloud = self._options.cloud
        if codebase is None:
            info = await self._discover()
            codebase = (info.Codebase or "").strip("/") + "/"
            if cloud is None:
                cloud = info.IsCloud if info.IsCloud is not None else codebase != ON_PREM_CODEBASE
        if cloud is None:
            bare = self._host.split(":")[0]
            cloud = bare.startswith("api-") or bare.endswith(CLOUD_DOMAINS)
        web_host = self._host.removeprefix("api-")
        api_host = self._host
        if cloud and not api_host.startswith("api-"):
            api_host = "api-" + api_host
        return ManageEndpoint(
            api_base=f"{self._scheme}://{api_host}{self._prefix}/{codebase}apis/3.0",
            web_base=f"{self._scheme}://{web_host}{self._prefix}/{codebase}",
            codebase=codebase,
            cloud=bool(cloud),
        )

    async def _http(self) -> VendorHttpClient:
        if self._client is not None:
            return self._client
        async with self._lock:
            if self._client is None:
                endpoint = await self._resolve()
                self._endpoint = endpoint
                self._client = VendorHttpClient(
                    endpoint.api_base,
                    headers=self._headers(),
                    error_parser=parse_manage_error,
                    max_concurrency=self._options.max_concurrency,
                    max_requests_per_minute=self._options.max_requests_per_minute,
                    budget=self._ctx.budget,
                    transport=self._ctx.transport_factory(endpoint.api_base),
                    sleep=self._sleep,
                )
        return self._client

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    _body = staticmethod(json_body)

    @staticmethod
    def _parse(model: type[R], data: Any, what: str) -> R:
        return parse_record(model, data, what, "ConnectWise")

    def _parse_list(self, model: type[R], data: Any, what: str) -> list[R]:
        if not isinstance(data, list):
            raise AdapterError(f"expected a list of {what} records from ConnectWise")
        return [self._parse(model, item, what) for item in data]

    async def _get(self, path: str, params: Mapping[str, Any] | None = None) -> Any:
        client = await self._http()
        return self._body(await client.request("GET", path, params=params))

    async def _send(self, method: str, path: str, body: Any, *, idempotent: bool) -> Any:
        client = await self._http()
        response = await client.request(method, path, json=body, idempotent=idempotent)
        return self._body(response)

    async def _patch(self, path: str, ops: list[PatchOperation]) -> Any:
        # Every patch here is an absolute `replace`, so repeating it is harmless.
        return await self._send("PATCH", path, patch_body(ops), idempotent=True)

    # -- paging -----------------------------------------------------------------------------

    async def _pages(self, path: str, params: Mapping[str, Any]) -> AsyncIterator[list[Any]]:
        """Navigable paging. Our own query (conditions included) is re-sent on every page; only the
        page number is taken from the `Link: rel="next"` header, so a filter can never be lost."""
        client = await self._http()
        size = self._options.page_size
        page = 1
        while True:
            query = {**params, "page": page, "pageSize": size}
            response = await client.request("GET", path, params=query)
            items = self._body(response)
            if not isinstance(items, list):
                raise AdapterError(f"expected a list from GET {path}")
            yield items
            if len(items) < size:
                return
            next_page = _next_link_param(response, "page")
            if next_page is None:
                if "link" in response.headers:
                    return
                page += 1  # no Link header at all: keep going until a short page
                continue
            try:
                following = int(next_page)
            except ValueError:
                return
            if following <= page:
                return
            page = following

    async def _forward_pages(self, path: str, params: Mapping[str, Any]) -> AsyncIterator[list[Any]]:
        """Forward-only paging (`pagination-type: forward-only`, `pageId` = last id seen; results in
        id order, no `orderBy`). Recommended by CW for large reads."""
        client = await self._http()
        size = self._options.page_size
        page_id: int | None = None
        while True:
            query: dict[str, Any] = {**params, "pageSize": size}
            if page_id is not None:
                query["pageId"] = page_id
            response = await client.request("GET", path, params=query, headers=FORWARD_ONLY)
            items = self._body(response)
            if not isinstance(items, list):
                raise AdapterError(f"expected a list from GET {path}")
            if items:
                yield items
            if len(items) < size:
                return
            next_id = _next_link_param(response, "pageId")
            candidate: int | None = None
            if next_id is not None and next_id.isdigit():
                candidate = int(next_id)
            elif isinstance(items[-1], dict) and isinstance(items[-1].get("id"), int):
                candidate = int(items[-1]["id"])
            if candidate is None or (page_id is not None and candidate <= page_id):
                return
            page_id = candidate

    async def _collect(self, model: type[R], path: str, params: Mapping[str, Any], what: str) -> list[R]:
        records: list[R] = []
        async for page in self._pages(path, params):
            records.extend(self._parse_list(model, page, what))
        return records

    # -- Adapter ----------------------------------------------------------------------------

    async def test_connection(self) -> None:
        await self._get("/system/info")

    async def list_companies(self) -> AsyncIterator[PsaCompany]:
        params = {"conditions": cond.eq("deletedFlag", False), "fields": "id,identifier,name"}
        async for page in self._forward_pages("/company/companies", params):
            for company in self._parse_list(CompanyRead, page, "company"):
                yield PsaCompany(
                    id=str(company.id),
                    name=company.name or company.identifier or str(company.id),
                    identifier=company.identifier,
                )

    async def list_agreements(self, company_id: str) -> list[PsaAgreement]:
        cid = _as_int(company_id, "company_id")
        params = {"conditions": cond.eq("company/id", cid), "orderBy": "id asc"}
        agreements = await self._collect(AgreementRead, "/finance/agreements", params, "agreement")
        return [
            PsaAgreement(
                id=str(a.id),
                company_id=str(a.company.id if a.company and a.company.id else cid),
                name=a.name or str(a.id),
                type_name=a.type.name if a.type else None,
                type_id=str(a.type.id) if a.type and a.type.id else None,
                active=not a.cancelledFlag and (a.agreementStatus or "Active").lower() == "active",
            )
            for a in agreements
        ]

    async def list_ticket_options(self) -> dict[str, list[PsaOption]]:
        boards, priorities = await asyncio.gather(
            self._collect(
                BoardRead, "/service/boards", {"conditions": cond.eq("inactiveFlag", False)}, "board"
            ),
            self._collect(PriorityRead, "/service/priorities", {"orderBy": "sortOrder asc"}, "priority"),
        )
        board_statuses = await asyncio.gather(
            *(
                self._collect(
                    BoardStatusRead,
                    f"/service/boards/{board.id}/statuses",
                    {"conditions": cond.eq("inactive", False), "orderBy": "sortOrder asc"},
                    "board status",
                )
                for board in boards
            )
        )
        board_types = await asyncio.gather(
            *(
                self._collect(
                    BoardTypeRead,
                    f"/service/boards/{board.id}/types",
                    {"conditions": cond.eq("inactiveFlag", False)},
                    "board type",
                )
                for board in boards
            )
        )
        statuses = [
            PsaOption(
                id=str(status.id),
                name=status.name or str(status.id),
                parent_id=str(board.id),
                closed=bool(status.closedStatus),
            )
            for board, found in zip(boards, board_statuses, strict=True)
            for status in found
        ]
        types = [
            PsaOption(id=str(kind.id), name=kind.name or str(kind.id), parent_id=str(board.id))
            for board, found_types in zip(boards, board_types, strict=True)
            for kind in found_types
        ]
        return {
            "boards": [PsaOption(id=str(b.id), name=b.name or str(b.id)) for b in boards],
            "statuses": statuses,
            "priorities": [PsaOption(id=str(p.id), name=p.name or str(p.id)) for p in priorities],
            "types": types,
        }

    async def list_catalog(self, kind: CatalogKind) -> list[PsaOption]:
        common = await ticket_catalog(self, kind)
        if common is not None:
            return common
        if kind is CatalogKind.AGREEMENT_TYPES:
            types = await self._collect(
                AgreementTypeRead,
                "/finance/agreements/types",
                {"conditions": cond.eq("inactiveFlag", False), "orderBy": "name asc"},
                "agreement type",
            )
            return [PsaOption(id=str(t.id), name=t.name or str(t.id)) for t in types]
        # products: catalog items, by the key billing lines name them with (identifier or id)
        items = await self._collect(
            CatalogItemRead,
            "/procurement/catalog",
            {
                "conditions": cond.eq("inactiveFlag", False),
                "fields": "id,identifier,description,inactiveFlag",
            },
            "catalog item",
        )
        by_id = self._options.billing_product_key == "id"
        return [
            PsaOption(
                id=str(i.id) if by_id or not i.identifier else i.identifier,
                name=i.description or i.identifier or str(i.id),
            )
            for i in items
        ]

    # -- tickets ----------------------------------------------------------------------------

    def _ticket_ref(self, ticket: TicketRead) -> TicketRef:
        url = None
        # The PSA's deep link to a service ticket (ConnectWise.aspx?routeTo=ServiceFV&recid=N) is the
        # form integrations commonly use; it is not in All.json [unverified against a live tenant].
        if self._endpoint is not None:
            url = f"{self._endpoint.web_base}ConnectWise.aspx?routeTo=ServiceFV&recid={ticket.id}"
        return TicketRef(id=str(ticket.id), number=str(ticket.id), url=url, closed=bool(ticket.closedFlag))

    async def find_ticket(self, marker: str, company_id: str) -> TicketRef | None:
        token = marker_token(marker)
        params = {
            "conditions": cond.and_(
                cond.contains("summary", token), cond.eq("company/id", _as_int(company_id, "company_id"))
            ),
            "orderBy": "id desc",
            "fields": "id,summary,board,status,company,closedFlag",
        }
        tickets = await self._collect(TicketRead, "/service/tickets", params, "ticket")
        matches = [t for t in tickets if token in (t.summary or "")]
        if not matches:
            return None
        open_ones = [t for t in matches if not t.closedFlag]
        return self._ticket_ref((open_ones or matches)[0])

    async def create_ticket(self, spec: TicketSpec) -> TicketRef:
        token = marker_token(spec.marker)
        body = TicketCreate(
            summary=summary_with_marker(spec.summary, token, self._options.marker_style),
            board=IdRef(id=_as_int(spec.board_id, "board_id")),
            company=IdRef(id=_as_int(spec.company_id, "company_id")),
            status=IdRef(id=_as_int(spec.status_id, "status_id")) if spec.status_id else None,
            priority=IdRef(id=_as_int(spec.priority_id, "priority_id")) if spec.priority_id else None,
            type=IdRef(id=_as_int(spec.type_id, "type_id")) if spec.type_id else None,
            initialDescription=spec.description or None,
            externalXRef=spec.marker if len(spec.marker) <= 100 else token,
        )

        async def create() -> TicketRef:
            created = await self._send("POST", "/service/tickets", body.wire(), idempotent=False)
            return self._ticket_ref(self._parse(TicketRead, created, "ticket"))

        ref = await create_or_recover(
            create,
            lambda: self.find_ticket(spec.marker, spec.company_id),
            sleep=self._sleep,
            what=f"ticket create for {token}",
        )
        if spec.configuration_id:
            configuration = spec.configuration_id
            await attach_or_warn(
                lambda: self._attach_configuration(int(ref.id), configuration),
                ticket_id=ref.id,
                configuration_id=configuration,
            )
        return ref

    async def _ticket_configurations(self, ticket_id: int) -> set[int]:
        data = await self._get(
            f"/service/tickets/{ticket_id}/configurations", {"fields": "id", "pageSize": 1000, "page": 1}
        )
        return {c.id for c in self._parse_list(ConfigurationRef, data, "ticket configuration")}

    async def _attach_configuration(self, ticket_id: int, configuration_id: str) -> None:
        """`POST /service/tickets/{id}/configurations` with a ConfigurationReference `{"id": n}`,
        unless the ticket already lists the record (a retried create, a ticket found by its
        marker): attaching twice is a no-op."""
        record = _as_int(configuration_id, "configuration_id")
        if record in await self._ticket_configurations(ticket_id):
            return

        async def post() -> bool:
            body = IdRef(id=record).wire()
            await self._send("POST", f"/service/tickets/{ticket_id}/configurations", body, idempotent=False)
            return True

        async def attached() -> bool | None:
            return True if record in await self._ticket_configurations(ticket_id) else None

        await create_or_recover(
            post, attached, sleep=self._sleep, what=f"configuration {record} on ticket {ticket_id}"
        )

    async def _recent_notes(self, ticket_id: int, *, resolution_only: bool) -> list[NoteRead]:
        params: dict[str, Any] = {"orderBy": "id desc", "pageSize": 100, "page": 1}
        if resolution_only:
            params["conditions"] = cond.eq("resolutionFlag", True)
        data = await self._get(f"/service/tickets/{ticket_id}/notes", params)
        return self._parse_list(NoteRead, data, "note")

    async def _has_note(self, ticket_id: int, text: str, *, resolution_only: bool) -> bool:
        wanted = text.strip()
        notes = await self._recent_notes(ticket_id, resolution_only=resolution_only)
        return any((note.text or "").strip() == wanted for note in notes)

    async def _post_note(self, ticket_id: int, text: str, *, resolution: bool) -> None:
        body = ServiceNoteCreate(
            text=text,
            detailDescriptionFlag=None if resolution else True,
            resolutionFlag=True if resolution else None,
        )

        async def post() -> bool:
            await self._send("POST", f"/service/tickets/{ticket_id}/notes", body.wire(), idempotent=False)
            return True

        async def posted() -> bool | None:
            return True if await self._has_note(ticket_id, text, resolution_only=resolution) else None

        await create_or_recover(post, posted, sleep=self._sleep, what=f"note on ticket {ticket_id}")

    async def add_note(self, ticket_id: str, text: str) -> None:
        await self._post_note(_as_int(ticket_id, "ticket_id"), text, resolution=False)

    async def _closed_status_id(self, board_id: int) -> int:
        if board_id in self._closed_status_cache:
            return self._closed_status_cache[board_id]
        params = {
            "conditions": cond.and_(cond.eq("closedStatus", True), cond.eq("inactive", False)),
            "orderBy": "sortOrder asc",
        }
        statuses = await self._collect(
            BoardStatusRead, f"/service/boards/{board_id}/statuses", params, "board status"
        )
        closed = [s for s in statuses if s.closedStatus and not s.inactive]
        if not closed:
            raise ConfigurationError(f"board {board_id} has no active closed status", field="status_id")
        self._closed_status_cache[board_id] = closed[0].id
        return closed[0].id

    async def close_ticket(self, ticket_id: str, status_id: str | None, resolution: str) -> None:
        tid = _as_int(ticket_id, "ticket_id")
        ticket = self._parse(
            TicketRead,
            await self._get(f"/service/tickets/{tid}", {"fields": "id,board,status,closedFlag"}),
            "ticket",
        )
        if status_id:
            target = _as_int(status_id, "status_id")
        else:
            if ticket.board is None or ticket.board.id is None:
                raise ConfigurationError(f"ticket {tid} has no board to find a closed status on")
            target = await self._closed_status_id(ticket.board.id)
        if resolution.strip() and not await self._has_note(tid, resolution, resolution_only=True):
            await self._post_note(tid, resolution, resolution=True)
        current = ticket.status.id if ticket.status else None
        if current != target:
            await self._patch(
                f"/service/tickets/{tid}",
                [PatchOperation(op="replace", path="status", value=IdRef(id=target))],
            )

    async def read_ticket(self, ticket_id: str) -> TicketReadback | None:
        """The ticket, its notes and its time entries. The integration's own identity is the member
        that entered the ticket (`_info.enteredBy`); notes by another member, any time entry, a
        last update (`_info.updatedBy` — a status change, a reassignment) or a close by another
        member are a person's work."""
        tid = _as_int(ticket_id, "ticket_id")
        fields = "id,closedFlag,closedBy,owner,status,mergedParentTicket,_info"
        try:
            ticket = self._parse(
                TicketRead, await self._get(f"/service/tickets/{tid}", {"fields": fields}), "ticket"
            )
        except NotFoundError:
            return None
        me = ticket.info.enteredBy if ticket.info else None
        activity: list[TicketActivity] = []
        for note in await self._recent_notes(tid, resolution_only=False):
            author = note.createdBy or (note.member.identifier if note.member else None)
            if author and author != me:
                activity.append(TicketActivity(kind="note", by=author, at=_when(note.dateCreated)))
        params = {
            "conditions": cond.and_(cond.eq("chargeToType", "ServiceTicket"), cond.eq("chargeToId", tid)),
            "orderBy": "id desc",
            "pageSize": 100,
            "page": 1,
        }
        entries = self._parse_list(TimeEntryRead, await self._get("/time/entries", params), "time entry")
        for entry in entries:
            by = entry.member.identifier if entry.member else None
            activity.append(TicketActivity(kind="time_entry", by=by, at=_when(entry.dateEntered)))
        updated_by = ticket.info.updatedBy if ticket.info else None
        if updated_by and me and updated_by != me:
            at = _when(ticket.info.lastUpdated if ticket.info else None)
            activity.append(TicketActivity(kind="edit", by=updated_by, at=at))
        merged = ticket.mergedParentTicket.id if ticket.mergedParentTicket else None
        return TicketReadback(
            id=str(ticket.id),
            closed=bool(ticket.closedFlag),
            closed_by_human=bool(ticket.closedFlag and ticket.closedBy and ticket.closedBy != me),
            merged_into=str(merged) if merged is not None else None,
            human_activity=activity,
        )

    # -- configurations ---------------------------------------------------------------------

    async def _find_configuration(
        self, company_id: int, update: ConfigurationUpdate
    ) -> ConfigurationRead | None:
        names = [cond.eq("name", update.device_name)]
        if update.serial_number:
            names.append(cond.eq("serialNumber", update.serial_number))
        params = {"conditions": cond.and_(cond.eq("company/id", company_id), cond.or_(*names))}
        found = await self._collect(ConfigurationRead, "/company/configurations", params, "configuration")
        if not found:
            return None
        return best_device_match(
            found,
            device_name=update.device_name,
            serial_number=update.serial_number,
            name_of=lambda c: c.name,
            serial_of=lambda c: c.serialNumber,
            active_of=lambda c: c.activeFlag,
            id_of=lambda c: c.id,
        )

    def _configuration_ops(
        self, config: ConfigurationRead, fields: Mapping[str, str]
    ) -> list[PatchOperation]:
        if not fields:
            return []
        if self._options.configuration_fields_target == "notes":
            merged = merge_status_block(config.notes, fields)
            if merged == (config.notes or ""):
                return []
            return [PatchOperation(op="replace", path="notes", value=merged)]
        custom = list(config.customFields or [])
        by_caption = {(cf.caption or "").casefold(): index for index, cf in enumerate(custom)}
        changed = False
        values: list[Any] = [cf.value for cf in custom]
        for key, value in fields.items():
            index = by_caption.get(key.casefold())
            if index is None:
                raise ConfigurationError(
                    f"configuration {config.id} has no custom field captioned {key!r}", field=f"fields.{key}"
                )
            wanted = custom_field_value(custom[index], value, key)
            if values[index] is None or values[index] != wanted:
                values[index] = wanted
                changed = True
        if not changed:
            return []
        array = [
            CustomFieldValueWrite(
                id=cf.id,
                caption=cf.caption,
                type=cf.type,
                entryMethod=cf.entryMethod,
                numberOfDecimals=cf.numberOfDecimals,
                value=values[i],
                connectWiseId=cf.connectWiseId,
            )
            for i, cf in enumerate(custom)
        ]
        return [PatchOperation(op="replace", path="customFields", value=array)]

    async def upsert_configuration(self, update: ConfigurationUpdate) -> str | None:
        cid = _as_int(update.company_id, "company_id")
        config = await self._find_configuration(cid, update)
        if config is None:
            if not update.create_if_missing:
                return None
            config = await self._create_configuration(cid, update)
            if self._options.configuration_fields_target == "notes":
                return str(config.id)  # the status block went in with the create
        ops = self._configuration_ops(config, update.fields)
        if ops:
            await self._patch(f"/company/configurations/{config.id}", ops)
        return str(config.id)

    async def _create_configuration(self, company_id: int, update: ConfigurationUpdate) -> ConfigurationRead:
        type_id = update.type_id or (
            str(self._options.default_configuration_type_id)
            if self._options.default_configuration_type_id
            else None
        )
        if not type_id:
            raise ConfigurationError(
                "a configuration type is required to create a configuration", field="type_id"
            )
        notes = None
        if self._options.configuration_fields_target == "notes" and update.fields:
            notes = merge_status_block(None, update.fields)
        body = ConfigurationCreate(
            name=update.device_name[:100],
            type=IdRef(id=_as_int(type_id, "type_id")),
            company=IdRef(id=company_id),
            serialNumber=update.serial_number or None,
            notes=notes,
        )

        async def create() -> ConfigurationRead:
            created = await self._send("POST", "/company/configurations", body.wire(), idempotent=False)
            return self._parse(ConfigurationRead, created, "configuration")

        return await create_or_recover(
            create,
            lambda: self._find_configuration(company_id, update),
            sleep=self._sleep,
            what=f"configuration create for {update.device_name!r}",
        )

    # -- billing ----------------------------------------------------------------------------

    def _product_ref(self, product_id: str) -> tuple[ProductRef, str]:
        if self._options.billing_product_key == "id":
            number = _as_int(product_id, "product_id")
            return ProductRef(id=number), cond.eq("product/id", number)
        return ProductRef(identifier=product_id), cond.eq("product/identifier", product_id)

    def _product_matches(self, addition: AdditionRead, product_id: str) -> bool:
        if addition.product is None:
            return False
        if self._options.billing_product_key == "id":
            return str(addition.product.id) == product_id.strip()
        return (addition.product.identifier or "").casefold() == product_id.casefold()

    async def _find_addition(
        self, agreement_id: int, line: BillingLine, token: str, *, by_product: bool = True
    ) -> AdditionRead | None:
        """The line by marker, then by `line_id`; then (`by_product`) any active addition of the
        product. Writes never fall back to the product: an addition of the product that is not
        connector's is someone else's, and the read-back holds it for review instead."""
        _, product_condition = self._product_ref(line.product_id)
        params = {"conditions": cond.or_(product_condition, cond.contains("description", token))}
        additions = await self._collect(
            AdditionRead, f"/finance/agreements/{agreement_id}/additions", params, "agreement addition"
        )
        now = datetime.now(UTC)
        active = [a for a in additions if not _is_cancelled(a, now)]
        marked = [a for a in active if token in (a.description or "")]
        if marked:
            return marked[0]
        linked = [a for a in active if line.line_id is not None and str(a.id) == line.line_id]
        if linked:
            return linked[0]
        if not by_product:
            return None
        same_product = [a for a in active if self._product_matches(a, line.product_id)]
        if len(same_product) > 1:
            log.warning(
                "agreement %s has %d active additions for product %s; updating the first",
                agreement_id,
                len(same_product),
                line.product_id,
            )
        return same_product[0] if same_product else None

    async def read_billing_line(self, line: BillingLine) -> BillingLineRead | None:
        aid = _as_int(line.agreement_id, "agreement_id")
        token = marker_token(line.marker)
        found = await self._find_addition(aid, line, token)
        if found is None:
            return None
        return BillingLineRead(
            line_id=str(found.id),
            quantity=Decimal(found.quantity or 0),
            unit_price=found.unitPrice,
            marked=token in (found.description or ""),
        )

    async def upsert_billing_line(self, line: BillingLine) -> BillingLineResult:
        aid = _as_int(line.agreement_id, "agreement_id")
        token = marker_token(line.marker)
        described = f"{line.description} {token}".strip()
        existing = await self._find_addition(aid, line, token, by_product=False)
        if existing is None:
            product, _ = self._product_ref(line.product_id)
            body = AdditionCreate(
                product=product,
                billCustomer=self._options.bill_customer,
                quantity=line.quantity,
                unitPrice=line.unit_price,
                unitCost=line.unit_cost,
                description=described,
                invoiceDescription=line.description or None,
            )
            path = f"/finance/agreements/{aid}/additions"

            async def create() -> AdditionRead:
                created = await self._send("POST", path, body.wire(), idempotent=False)
                return self._parse(AdditionRead, created, "agreement addition")

            async def created_earlier() -> AdditionRead | None:
                found = await self._find_addition(aid, line, token, by_product=False)
                if found is not None:  # as on the update path: it ends with the wanted values
                    await self._update_addition(aid, found, line, described)
                return found

            addition = await create_or_recover(
                create, created_earlier, sleep=self._sleep, what=f"billing line create for {token}"
            )
            return BillingLineResult(action="created", line_id=str(addition.id))
        changed = await self._update_addition(aid, existing, line, described)
        return BillingLineResult(
            action="updated" if changed else "unchanged",
            line_id=str(existing.id),
            previous_quantity=existing.quantity,
        )

    async def _update_addition(
        self, agreement_id: int, addition: AdditionRead, line: BillingLine, described: str
    ) -> bool:
        ops: list[PatchOperation] = []
        for path, current, wanted in (
            ("quantity", addition.quantity, line.quantity),
            ("unitPrice", addition.unitPrice, line.unit_price),
            ("unitCost", addition.unitCost, line.unit_cost),
        ):
            if current is None or Decimal(current) != wanted:
                ops.append(PatchOperation(op="replace", path=path, value=wanted))
        if not ops:
            return False
        if (addition.description or "") != described:
            ops.append(PatchOperation(op="replace", path="description", value=described))
        await self._patch(f"/finance/agreements/{agreement_id}/additions/{addition.id}", ops)
        return True


def create_adapter(ctx: ConnectionContext) -> ConnectWiseManageAdapter:
    return ConnectWiseManageAdapter(ctx)


def custom_field_value(field: CustomFieldRead, text: str, key: str) -> Any:
    """The value to write into a configuration custom field: a `Number` field takes a JSON number
    (Manage refuses text there), every other type the text."""
    if (field.type or "").casefold() != "number":
        return text
    try:
        number = Decimal(text.strip())
    except ArithmeticError:
        number = None
    if number is None or not number.is_finite():
        raise ConfigurationError(
            f"custom field {field.caption!r} is a Number field; {text!r} is not a number",
            field=f"fields.{key}",
        )
    return int(number) if number == number.to_integral_value() else float(number)
