"""Datto RMM API v2 adapter: sites as clients, devices with their antivirus state, open alerts
polled as a snapshot, alert webhooks, and components run as quick jobs.

Sources (vendor-notes/rmm.md §4.1, specs/datto-rmm/NOTES.md and what they cite):
- Datto's OpenAPI 3.1 description of API v2 ("Datto RMM API 2.0.0", mirrored at api-evangelist/datto
  `openapi/_original/datto-rmm-openapi.json`): paths under `https://{platform}-api.centrastage.net/api`,
  lists paged by `page` and `max` answering `{pageDetails{count, totalCount, prevPageUrl,
  nextPageUrl}, sites|devices|alerts}`; `Site{uid, name, autotaskCompanyId, autotaskCompanyName}`;
  `Device{uid, siteUid, hostname, operatingSystem, deviceType, online, deleted, lastSeen,
  antivirus{antivirusProduct, antivirusStatus}}`; `Alert{alertUid, priority, diagnostics, timestamp,
  alertContext (discriminated by "@class"), alertSourceInfo{deviceUid, deviceName, siteUid}}`;
  `PUT /v2/device/{deviceUid}/quickjob` `{jobName, jobComponent{componentUid, variables[{name,
  value}]}}` → `{job{uid, status}, jobComponents}`.
- Token (not in the description): `POST /auth/oauth/token`, form `grant_type=password&username=<API
  key>&password=<API secret>`, `Authorization: Basic base64("public-client:public")`, answer
  `access_token`; tokens expire after 100 hours, then every request is 401
  (https://rmm.datto.com/help/en/Content/2SETUP/APIv2.htm; public clients, find_string
  "public-client:public"). The token is reused until `expires_in` (less a margin) and renewed on 401.
- Budget: 600 requests in any rolling 60 s across the account, a one-second delay above 90 %, 429
  beyond (APIv2.htm); writes 100 per 60 s (api-evangelist `rate-limits/datto-rate-limits.yml`);
  clients that keep going past the 429 get a temporary 403 block (https://docs.nango.dev/integrations/all/datto-rmm).
  Hence `budget.py`: one `RequestBudget` per adapter object (one per connection), below the HTTP
  client, so every request waits for the budget before Datto would refuse it.
- Alert `@class` values such as `antivirus_ctx` and timestamps in Unix milliseconds: public Datto
  RMM skill notes (wyre-technology msp-claude-plugins, "alerts"); the description types times as
  `date-time`, so both forms are read.
- Webhooks: monitor and global webhooks send an MSP-written body template with bracketed variables
  and no signature (https://rmm.datto.com/help/en/Content/3NEWUI/Monitors/Webhooks.htm; vendor-notes
  §4.1); connector's template is in `alerts.py` and docs/datto-rmm-webhooks.md.
- Console links: a device's page in the web console is `https://{platform}.centrastage.net/csm/
  search?qs=uid%3A{deviceUid}` (the form public Datto RMM scripts link devices with, found by code
  search; the same form as the `portalUrl` the fake answers) [third-party, not from the vendor's
  docs; the API's own `Device.portalUrl` is not kept].
- Errors: Spring answers `{"message": …}` (or OAuth2's `{"error", "error_description"}` from the
  token route); the description publishes no error schema, so the texts are read leniently.

Status mapping: `product` = `antivirus.antivirusProduct`; `antivirusStatus`
RunningAndUpToDate / RunningAndNotUpToDate → protection on; NotRunning → protection off; NotDetected
→ no product, not protected; anything else → unknown protection. Datto reports no definitions date,
last scan or threat count on a device, so those stay None: outdated definitions and threats reach
the core through the polled alerts (antivirus and endpoint-security contexts) and webhooks.
`online` = `online`; `last_seen_at` = `lastSeen`. Deleted devices are not listed.

Incremental reads: device lists have no changed-since filter, so every page is read and the
devices whose `lastSeen` is at or after the cursor are returned (the agent reports antivirus data
when it checks in). The page count is the minimum the paging allows: ceil(devices / 250).

Alerts: `poll_alerts` reads every open alert of the account (plus the sites), so it is complete for
every site listed; a site that is absent from the poll's events has no open security alert.

Mapping hints: a site linked to an Autotask company (`autotaskCompanyId`) names it in
`RmmClient.psa_company_ids["autotask"]`, and the core proposes that mapping first.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar
from urllib.parse import parse_qs, quote, urlencode, urlsplit

import httpx
from pydantic import BaseModel, ValidationError

from adapters.base import (
    ActionKind,
    ActionResult,
    AlertEvent,
    ConnectionContext,
    EndpointPage,
    EndpointStatus,
    PolledAlerts,
    ProblemKind,
    RmmClient,
    SkippedEndpoint,
    WebhookRequest,
)
from adapters.common import BearerToken, TokenCache, server_root, settings_as
from adapters.datto_rmm import alerts
from adapters.datto_rmm.budget import BudgetTransport, RequestBudget
from adapters.datto_rmm.models import (
    AlertRead,
    DattoCredentials,
    DattoOptions,
    DeviceRead,
    JobComponentVariableWrite,
    JobComponentWrite,
    QuickJobResponseRead,
    QuickJobWrite,
    SiteRead,
    TokenRead,
)
from adapters.errors import (
    AdapterError,
    CredentialsError,
    TransientVendorError,
    UnsupportedActionError,
    VendorRequestError,
)
from adapters.http import VendorHttpClient

log = logging.getLogger("adapters.datto_rmm")

API = "/api/v2"
TOKEN_PATH = "/auth/oauth/token"
PUBLIC_CLIENT = "Basic " + base64.b64encode(b"public-client:public").decode()
TOKEN_LIFETIME = timedelta(hours=100)
"""Datto's documented token lifetime, used when the answer names no `expires_in`."""
MAX_PAGES = 100_000
ACTIONS = frozenset({ActionKind.SCAN, ActionKind.UPDATE_DEFINITIONS, ActionKind.DEPLOY_AGENT})
"""Each a component the connection's options name, run as a quick job."""
COMPONENT_OPTIONS = {
    ActionKind.SCAN: "scan_component_uid",
    ActionKind.UPDATE_DEFINITIONS: "update_component_uid",
    ActionKind.DEPLOY_AGENT: "deploy_component_uid",
}

M = TypeVar("M", bound=BaseModel)


def api_root(base_url: str) -> str:
    """The platform URL an engineer typed (with or without /api, /api/v2) → `https://host`."""
    return server_root(base_url, vendor="Datto RMM", suffixes=("/api/v2", "/api"))


def device_page_url(base_url: str, options: BaseModel, endpoint_id: str) -> str | None:
    """The device in the Datto RMM web console, `https://{platform}.centrastage.net/csm/search?qs=
    uid%3A{deviceUid}`, from the platform API host `{platform}-api.centrastage.net`; None for any
    other host (the console's host is not known then) or an empty uid."""
    del options  # the platform is in the base URL
    if not endpoint_id:
        return None
    try:
        host = httpx.URL(api_root(base_url)).host
    except AdapterError:
        return None
    platform, dash, domain = host.partition("-api.")
    if not dash or domain != "centrastage.net" or not platform.isalnum():
        return None
    return f"https://{platform}.centrastage.net/csm/search?qs=uid%3A{quote(endpoint_id, safe='')}"


def parse_time(value: Any) -> datetime | None:
    """A Datto time → aware UTC: Unix milliseconds (as a number or digits) or ISO 8601."""
    if value is None or isinstance(value, bool):
        return None
    text = str(value).strip()
    if not text:
        return None
    if text.lstrip("-").isdigit():
        number = int(text)
        if number <= 0:
            return None
        try:
            return datetime.fromtimestamp(number / 1000, UTC)
        except (OverflowError, OSError, ValueError):
            return None
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return (when if when.tzinfo else when.replace(tzinfo=UTC)).astimezone(UTC)


def parse_datto_error(response: httpx.Response) -> tuple[str, str | None]:
    """Spring / OAuth2 error bodies → (message, field)."""
    try:
        body = response.json()
    except ValueError:
        text = response.text.strip()
        return (text[:300] or response.reason_phrase or f"HTTP {response.status_code}", None)
    if not isinstance(body, dict):
        return (str(body)[:300], None)
    message = body.get("message") or body.get("error_description") or body.get("error")
    field = body.get("field") if isinstance(body.get("field"), str) else None
    errors = body.get("errors")
    if isinstance(errors, list) and errors and isinstance(errors[0], dict):
        field = field or errors[0].get("field")
        message = message or errors[0].get("message")
    return (str(message or f"HTTP {response.status_code}")[:500], field)


def antivirus_state(status: str | None) -> tuple[bool | None, bool]:
    """`antivirusStatus` → (protection enabled, product present). NotDetected means Datto found no
    antivirus product: not protected."""
    value = (status or "").strip().lower()
    if value in ("runninganduptodate", "runningandnotuptodate"):
        return (True, True)
    if value == "notrunning":
        return (False, True)
    if value == "notdetected":
        return (False, False)
    return (None, True)


class DattoRmmAdapter:
    """RmmAdapter for the Datto RMM API v2."""

    def __init__(self, ctx: ConnectionContext) -> None:
        self._credentials = settings_as(DattoCredentials, ctx.credentials)
        self._options = settings_as(DattoOptions, ctx.options)
        self._sleep: Callable[[float], Awaitable[None]] = ctx.sleep or asyncio.sleep
        clock = ctx.extra.get("clock")
        self._clock: Callable[[], datetime] = clock if callable(clock) else (lambda: datetime.now(UTC))
        monotonic = ctx.extra.get("monotonic")
        self.budget = RequestBudget(
            self._options.reads_per_minute,
            self._options.writes_per_minute,
            clock=monotonic if callable(monotonic) else time.monotonic,
            sleep=self._sleep,
        )
        self.root = api_root(ctx.base_url)
        inner = ctx.transport_factory(self.root) or httpx.AsyncHTTPTransport()
        self._client = VendorHttpClient(
            self.root,
            headers={"Accept": "application/json"},
            auth_headers=lambda force: self._tokens.headers(force),
            error_parser=parse_datto_error,
            max_concurrency=self._options.max_concurrency,
            budget=ctx.budget,
            transport=BudgetTransport(inner, self.budget),
            sleep=self._sleep,
        )
        self._tokens = TokenCache(
            lambda _now: self._request_token(),
            clock=self._clock,
            margin=timedelta(seconds=self._options.token_refresh_margin_seconds),
        )
        self.token_requests = 0

    @property
    def request_count(self) -> int:
        return self._client.request_count

    async def aclose(self) -> None:
        await self._client.aclose()

    # -- auth ----------------------------------------------------------------------------------

    async def _request_token(self) -> BearerToken:
        form = urlencode(
            {
                "grant_type": "password",
                "username": self._credentials.api_key,
                "password": self._credentials.api_secret.get_secret_value(),
            }
        )
        self.token_requests += 1
        now = self._clock()
        try:
            response = await self._client.request(
                "POST",
                TOKEN_PATH,
                content=form.encode(),
                headers={"Authorization": PUBLIC_CLIENT, "Content-Type": "application/x-www-form-urlencoded"},
                authenticated=False,
                idempotent=True,
            )
        except (CredentialsError, VendorRequestError) as exc:
            raise CredentialsError(
                f"Datto RMM refused the API key and secret: {exc.message}",
                field="credentials",
                status=exc.status,
            ) from None
        try:
            token = TokenRead.model_validate(response.json())
        except (ValueError, ValidationError):
            raise TransientVendorError("the token answer is not an OAuth2 token") from None
        if not token.access_token:
            raise CredentialsError("Datto RMM issued no access token", field="credentials")
        lifetime = (
            timedelta(seconds=token.expires_in)
            if token.expires_in and token.expires_in > 0
            else TOKEN_LIFETIME
        )
        return BearerToken(value=token.access_token, expires_at=now + lifetime)

    # -- reading ---------------------------------------------------------------------------------

    async def _pages(
        self, path: str, key: str, params: Mapping[str, Any] | None = None
    ) -> AsyncIterator[list[Any]]:
        """Every page of a list route, following `pageDetails.nextPageUrl` (its `page` only: the
        request stays on the connection's host and path)."""
        page = 0
        for _ in range(MAX_PAGES):
            query = {**(params or {}), "page": page, "max": self._options.page_size}
            data = await self._client.get_json(f"{API}{path}", params=query)
            if not isinstance(data, dict):
                raise TransientVendorError(f"{path} page {page} is not a page object")
            rows = data.get(key)
            if rows is None:
                rows = []
            if not isinstance(rows, list):
                raise TransientVendorError(f"{path} page {page}: {key} is not a list")
            yield rows
            details = data.get("pageDetails")
            following = next_page(details.get("nextPageUrl") if isinstance(details, dict) else None)
            if following is None or not rows:
                return
            if following <= page:
                raise TransientVendorError(f"{path} page {page} points back to page {following}")
            page = following
        raise TransientVendorError(f"{path} has more than {MAX_PAGES} pages")

    async def test_connection(self) -> None:
        """A fresh token, then the account."""
        await self._tokens.get(force=True)
        await self._client.get_json(f"{API}/account")

    async def _sites(self) -> AsyncIterator[SiteRead]:
        async for rows in self._pages("/account/sites", "sites"):
            for row in rows:
                try:
                    site = SiteRead.model_validate(row)
                except ValidationError as exc:
                    log.warning("Datto site skipped: %s", exc.errors()[0]["msg"])
                    continue
                if site.uid:
                    yield site

    async def list_clients(self) -> AsyncIterator[RmmClient]:
        async for site in self._sites():
            hints = {"autotask": site.autotaskCompanyId} if site.autotaskCompanyId else {}
            yield RmmClient(id=site.uid or "", name=site.name or f"Site {site.uid}", psa_company_ids=hints)

    def device_status(self, row: Any) -> EndpointStatus | SkippedEndpoint | None:
        """A `devices` row → its status, what made it unreadable, or None for a deleted device."""
        uid = str(row.get("uid") or "?") if isinstance(row, dict) else "?"
        try:
            device = DeviceRead.model_validate(row)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or "device"
            return SkippedEndpoint(endpoint_id=uid, field=where, message=first["msg"])
        if device.deleted:
            return None
        for name in ("uid", "siteUid", "hostname"):
            if not getattr(device, name):
                log.warning("Datto device %s skipped: no %s", device.uid or "?", name)
                return SkippedEndpoint(endpoint_id=device.uid or "?", field=name, message="missing")
        av = device.antivirus
        enabled, present = antivirus_state(av.antivirusStatus if av else None)
        product = (av.antivirusProduct or "").strip() if av and present else ""
        return EndpointStatus(
            endpoint_id=device.uid or "",
            client_id=device.siteUid or "",
            client_name=device.siteName,
            hostname=device.hostname or "",
            os_name=device.operatingSystem,
            device_type=(device.deviceType.category or "").lower() or None if device.deviceType else None,
            product=product or None,
            protection_enabled=enabled if av else None,
            online=device.online,
            last_seen_at=parse_time(device.lastSeen),
        )

    async def iter_endpoint_pages(self, changed_since: datetime | None) -> AsyncIterator[EndpointPage]:
        async for rows in self._pages("/account/devices", "devices"):
            page = EndpointPage(statuses=[])
            for row in rows:
                read = self.device_status(row)
                if read is None:
                    continue
                if isinstance(read, SkippedEndpoint):
                    page.skipped.append(read)
                elif changed_since is None or (
                    read.last_seen_at is not None and read.last_seen_at >= changed_since
                ):
                    page.statuses.append(read)
            if page.statuses or page.skipped:
                yield page

    # -- alerts ----------------------------------------------------------------------------------

    def verify_webhook(self, request: WebhookRequest, secret: str) -> bool | None:
        """Datto signs nothing: the core's token / X-Connector-Signature check applies."""
        return None

    def parse_webhook(self, request: WebhookRequest) -> list[AlertEvent]:
        return alerts.parse_body(request, parse_time)

    async def poll_alerts(self, since: datetime | None) -> PolledAlerts:
        """Every open alert of the account: a snapshot, complete for every site listed."""
        now = self._clock()
        sites = frozenset([site.uid async for site in self._sites() if site.uid])
        params = {} if self._options.include_muted_alerts else {"muted": "false"}
        events: dict[str, AlertEvent] = {}
        async for rows in self._pages("/account/alerts/open", "alerts", params):
            for row in rows:
                try:
                    alert = AlertRead.model_validate(row)
                except ValidationError as exc:
                    log.warning("Datto alert skipped: %s", exc.errors()[0]["msg"])
                    continue
                if alert.resolved:
                    continue
                event = alerts.polled_event(alert, parse_time, now)
                if event is not None:
                    events[event.event_id] = event
        return PolledAlerts(events=list(events.values()), complete_for=sites)

    # -- actions ---------------------------------------------------------------------------------

    def _component_for(self, action: ActionKind) -> str:
        if action not in ACTIONS:
            raise UnsupportedActionError(f"Datto RMM runs no {action.value!r}", field="action")
        option = COMPONENT_OPTIONS[action]
        component: str | None = getattr(self._options, option)
        if not component:
            raise UnsupportedActionError(
                f"no Datto component is configured for {action.value!r}; set the connection option {option}",
                field=option,
            )
        return component

    async def run_action(self, endpoint_id: str, action: ActionKind) -> ActionResult:
        """Runs the configured component on the device as a quick job
        (`PUT /v2/device/{deviceUid}/quickjob`); the job's uid is the vendor reference."""
        component = self._component_for(action)
        device = endpoint_id.strip()
        if not device or "/" in device:
            raise VendorRequestError(f"not a Datto device uid: {endpoint_id!r}", field="endpoint_id")
        variables = [
            JobComponentVariableWrite(name=k, value=v) for k, v in self._options.component_variables.items()
        ]
        body = QuickJobWrite(
            jobName=f"connector {action.value.replace('_', ' ')}",
            jobComponent=JobComponentWrite(componentUid=component, variables=variables or None),
        )
        response = await self._client.request(
            "PUT", f"{API}/device/{device}/quickjob", json=body.wire(), idempotent=False
        )
        try:
            job = QuickJobResponseRead.model_validate(response.json() if response.content else {}).job
        except (ValueError, ValidationError):
            job = None
        reference = job.uid if job and job.uid else None
        return ActionResult(
            accepted=True,
            vendor_reference=f"job:{reference}" if reference else None,
            message=f"quick job {reference or ''} {job.status if job and job.status else 'created'}".replace(
                "  ", " "
            ),
        )

    async def clear_alert(self, endpoint_id: str, problem: ProblemKind, alert_id: str | None) -> bool:
        """Resolves the alert a technician's closed ticket answered (`POST /v2/alert/{alertUid}/resolve`;
        resolving it again changes nothing, so a retry is safe)."""
        uid = (alert_id or "").strip()
        if not uid:
            return False
        if "/" in uid:
            raise VendorRequestError(f"not a Datto alert uid: {alert_id!r}", field="alert_id")
        await self._client.request("POST", f"{API}/alert/{uid}/resolve", idempotent=True)
        return True


def next_page(url: Any) -> int | None:
    """The `page` of a `nextPageUrl`, None when there is no next page."""
    if not isinstance(url, str) or not url.strip():
        return None
    values = parse_qs(urlsplit(url).query).get("page")
    if not values or not values[0].isdigit():
        return None
    return int(values[0])


def create_adapter(ctx: ConnectionContext) -> DattoRmmAdapter:
    return DattoRmmAdapter(ctx)


__all__ = [
    "ACTIONS",
    "DattoRmmAdapter",
    "api_root",
    "create_adapter",
    "next_page",
    "parse_datto_error",
    "parse_time",
]
