"""N-able N-central adapter over the REST "API-Service" (N-central 2023.9+): customers, sites and
devices with their antivirus and agent state, HTTP-XML notifications, and repository scripts run as
actions.

Sources (vendor-notes/rmm.md §2 and the documents it cites):
- N-able, "N-central API-Service" OpenAPI 3.0.1 (served at https://{server}/api-explorer; mirrored in
  sgibson-adt/N-central_MCP `test/openapi-spec.json`@53e31e5c): `info.description` (JWT exchange,
  `pageSize` 1–1000 default 50, `pageNumber` from 1, `sortBy`/`sortOrder`, the paged envelope `data,
  pageNumber, pageSize, itemCount, totalItems, totalPages, _links, _warning`, 429 on too many in-flight
  calls), schemas `AuthenticateResponse` (`tokens.access|refresh.{token,type,expirySeconds}`; refresh
  type "Body"), `Device` (`deviceId, longName, discoveredName, deviceClass, supportedOs, customerId,
  customerName, siteId, siteName, soId, lastApplianceCheckinTime, ...`), `DeviceResponse` (`{data}`),
  `Customer` (`customerId, customerName, parentId, orgUnitType`), `Site` (`siteId, siteName, parentId`),
  `DeviceServiceMonitoringStatus` (`taskId, serviceId, moduleName, stateStatus, taskIdent,
  lastScanTime, transitionTime`), `ApplianceTaskInformation` (the Agent Status service's check-in
  interval detail), and the error examples `{"status": 404, "message": "[ID=abcd]NOT FOUND: ..."}`.
- N-able docs: "Set up N-central REST API access" and "REST API known issues and limitations"
  (https://documentation.n-able.com/N-central/…/REST_APIs/): a reboot of N-central forgets issued
  tokens, so a failed refresh falls back to the JWT exchange; some errors arrive as a message inside
  a 200; direct tasks pile up in the device's task history. "REST API FAQs": concurrency limit 3–50
  per endpoint; a direct task needs the repository item id, the customer id and the device id.
- Refresh: `POST /api/auth/refresh` with the refresh token as the raw `text/plain` body
  (eagle00789/PS-NCentral-RESTAPI `Get-NcentralAuthenticationRefresh.ps1`; spinen/n-central-php-rest-
  client `src/Api/Client.php`); `X-ACCESS-EXPIRY-OVERRIDE` / `X-REFRESH-EXPIRY-OVERRIDE` on the
  exchange (eagle00789 `Connect-Ncentral.ps1`).
- Direct task body `{name, itemId, taskType: Script|AutomationPolicy|MacScript, customerId, deviceId,
  credential: {type: LocalSystem}, parameters: [{name, value, type, description}]}` (eagle00789 module
  `New-NcentralScheduledTask`; sgibson-adt/N-central_MCP `src/tools/scheduled-tasks.js`); the item must
  be a custom repository item with "Enable API" on, else 403 `ScriptNotRunnableException` (N-central_MCP
  README; FAQ).
- `select` on list routes is an RSQL row filter with server errors on range operators (N-central_MCP
  README), so it is not used for a changed-since filter.

Requests: a full pass costs ceil(devices / page_size) listing requests plus, with
`read_service_status` (default), one `GET /api/devices/{id}/service-monitor-status` per listed device
(N-central has no bulk view of service states; its FAQ says the SOAP asset export's service data is not
in REST yet), run `max_concurrency` at a time.

Incremental reads: the API offers no modified-since filter. `iter_endpoint_pages(since)` lists every
page and keeps devices whose `lastApplianceCheckinTime` (the agent's last check-in) is at or after the
cursor, and reads service states only for those. A device without that field (servers before
2025.3.1.9 return it only on `/api/devices/{id}`) is always kept. Agents check in every few minutes,
so online devices are "changed" on nearly every run: the saving is on offline devices.

Status mapping (service states per `moduleName`, patterns in the options; the service names depend
on the AV product and are not verified on a tenant): `product` = the first protection service's name
without " Status"; `protection_enabled` = True if any protection service is Normal, False if they are
all Failed/Warning, else None; `active_threats` = 1 (at least one) when a threat service fails, 0 when
all are Normal, else None; `online` from the Agent Status service (Normal → True, Failed → False);
`last_seen_at` = `lastApplianceCheckinTime` (offset-less = UTC; else `lastApplianceCheckinTimeLocal`,
offset-less = `server_timezone`, as the description puts it). N-central's REST API exposes no
definitions date, last AV
scan time or serial number without per-device asset calls, so those stay None. A device with no
protection service reports product None and protection None (unknown, not "unprotected").

Malformed data: a device without `deviceId`, `customerId` or a name is skipped with a warning naming
the device and the field, and reported in its page's `skipped`; a device whose service states are
missing (404) or unreadable keeps its identity with unknown security fields and is reported in its
page's `skipped` as well. Outages (5xx, 429 after retries) fail the run.

Alerts: N-central pushes (see `alerts.py`); `poll_alerts` returns nothing.

Actions (`ACTIONS`): scan, definitions update and agent deployment, each a repository item the
connection's options name (`deploy_item_id`: a custom script or automation policy that installs the
security product's agent, with Enable API on) run as a direct task; an action whose item is not
configured raises `UnsupportedActionError` naming the option.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import re
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

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
    RmmClient,
    SkippedEndpoint,
    WebhookRequest,
)
from adapters.common import server_root, settings_as
from adapters.errors import (
    AdapterError,
    ConfigurationError,
    CredentialsError,
    NotFoundError,
    TransientVendorError,
    UnsupportedActionError,
    VendorRequestError,
    WebhookParseError,
    classify_status,
)
from adapters.http import VendorHttpClient
from adapters.ncentral import alerts
from adapters.ncentral.models import (
    AuthenticateRead,
    CustomerRead,
    DeviceRead,
    DirectTaskWrite,
    NcentralCredentials,
    NcentralOptions,
    PageRead,
    ServiceStatusRead,
    SiteRead,
    TaskParameter,
    TaskType,
)

log = logging.getLogger("adapters.ncentral")

AUTH_PATH = "/api/auth/authenticate"
REFRESH_PATH = "/api/auth/refresh"
DEVICES_PATH = "/api/devices"
CUSTOMERS_PATH = "/api/customers"
SITES_PATH = "/api/sites"
DIRECT_TASK_PATH = "/api/scheduled-tasks/direct"
DEFAULT_ACCESS_SECONDS = 3600
MAX_PAGES = 100_000
NORMAL = "normal"
PROBLEM_STATES = frozenset({"failed", "warning"})
ACTIONS = frozenset({ActionKind.SCAN, ActionKind.UPDATE_DEFINITIONS, ActionKind.DEPLOY_AGENT})
"""What the REST API can run: a repository item each, as a direct task."""
_ITEM_OPTIONS: dict[ActionKind, tuple[str, str, str]] = {
    ActionKind.SCAN: ("scan_item_id", "scan_task_type", "scan_parameters"),
    ActionKind.UPDATE_DEFINITIONS: ("definitions_item_id", "definitions_task_type", "definitions_parameters"),
    ActionKind.DEPLOY_AGENT: ("deploy_item_id", "deploy_task_type", "deploy_parameters"),
}

M = TypeVar("M", bound=BaseModel)


# ---------------------------------------------------------------------------------------------
# Pure helpers
# ---------------------------------------------------------------------------------------------


def api_base(base_url: str) -> str:
    """`https://host[/prefix]`, also from a URL ending in /api or /api-explorer."""
    return server_root(base_url, vendor="N-central", suffixes=("/api", "/api-explorer"))


_FIELD_IN_MESSAGE = re.compile(r"(?:Invalid|Missing)\s+(?:required\s+)?([A-Za-z][A-Za-z0-9_]*)")


def parse_ncentral_error(response: httpx.Response) -> tuple[str, str | None]:
    """`{"status": 404, "message": "[ID=abcd]NOT FOUND: ResourceNotFoundException: ..."}` →
    (message, field named in it)."""
    try:
        body = response.json()
    except ValueError:
        text = response.text.strip()
        return (text[:300] or response.reason_phrase or f"HTTP {response.status_code}", None)
    if not isinstance(body, dict):
        return (str(body)[:300], None)
    message = str(body.get("message") or body.get("error") or f"HTTP {response.status_code}")
    message = re.sub(r"^\[ID=[^\]]*\]\s*", "", message)
    match = _FIELD_IN_MESSAGE.search(message)
    return (message[:500], match.group(1) if match else None)


def embedded_error(body: Any) -> AdapterError | None:
    """An error reported inside a 200 (documented known issue): a dict with a 4xx/5xx `status` and
    a message, and no `data`."""
    if not isinstance(body, dict) or "data" in body:
        return None
    status = body.get("status")
    message = body.get("message") or body.get("errorMessage") or body.get("Error Message")
    if not isinstance(status, int) or status < 400 or not message:
        return None
    error_class = classify_status(status) or TransientVendorError
    text = re.sub(r"^\[ID=[^\]]*\]\s*", "", str(message))
    return error_class(f"N-central reported an error inside a 200: {text}"[:500], status=status)


def _device_type(device: DeviceRead) -> str | None:
    label = (device.deviceClass or device.deviceClassLabel or "").strip()
    if not label:
        return None
    lowered = label.lower()
    if "server" in lowered:
        return "server"
    if "workstation" in lowered or "laptop" in lowered:
        return "workstation"
    return lowered


@dataclass(frozen=True)
class _Token:
    access: str
    access_expires_at: datetime
    refresh: str | None
    refresh_expires_at: datetime | None


@dataclass(frozen=True)
class KnownDevice:
    """A listed device as notifications can name it."""

    device_id: str
    customer_id: str
    names: frozenset[str]
    """longName, discoveredName (casefolded)."""
    uri: str
    units: tuple[str, ...]
    """Customer and site names (casefolded)."""

    def in_path(self, path: tuple[str, ...]) -> bool:
        """Whether a notification's org-unit path ends in this device's customer (and site)."""
        return bool(path) and (path[-len(self.units) :] == self.units or path[-1] in self.units)


class SecurityState:
    """Service states of one device → the normalized security fields."""

    def __init__(self, options: NcentralOptions) -> None:
        self._protection = [re.compile(p, re.I) for p in options.protection_services]
        self._threat = [re.compile(p, re.I) for p in options.threat_services]
        self._agent = [re.compile(p, re.I) for p in options.agent_services]

    @staticmethod
    def _matches(patterns: list[re.Pattern[str]], name: str) -> bool:
        return any(p.search(name) for p in patterns)

    def fields(self, services: list[ServiceStatusRead]) -> dict[str, Any]:
        protection: list[tuple[str, str]] = []
        threats: list[str] = []
        agent: list[str] = []
        for service in services:
            name = (service.moduleName or "").strip()
            state = (service.stateStatus or "").strip().lower()
            if not name:
                continue
            if self._matches(self._agent, name):
                agent.append(state)
            elif self._matches(self._threat, name):
                threats.append(state)
            elif self._matches(self._protection, name):
                protection.append((name, state))
        out: dict[str, Any] = {}
        if protection:
            out["product"] = re.sub(r"\s+status$", "", protection[0][0], flags=re.I) or protection[0][0]
            states = [s for _, s in protection]
            if NORMAL in states:
                out["protection_enabled"] = True
            elif all(s in PROBLEM_STATES for s in states):
                out["protection_enabled"] = False
        if threats:
            if any(s in PROBLEM_STATES for s in threats):
                out["active_threats"] = 1
            elif all(s == NORMAL for s in threats):
                out["active_threats"] = 0
        if agent:
            if NORMAL in agent:
                out["online"] = True
            elif any(s == "failed" for s in agent):
                out["online"] = False
        return out


# ---------------------------------------------------------------------------------------------
# The adapter
# ---------------------------------------------------------------------------------------------


class NcentralAdapter:
    """RmmAdapter for N-central's REST API-Service."""

    def __init__(self, ctx: ConnectionContext) -> None:
        credentials = settings_as(NcentralCredentials, ctx.credentials)
        options = settings_as(NcentralOptions, ctx.options)
        self._credentials: NcentralCredentials = credentials
        self._options: NcentralOptions = options
        self._tz: tzinfo = ZoneInfo(options.server_timezone)
        self._sleep: Callable[[float], Awaitable[None]] = ctx.sleep or asyncio.sleep
        clock = ctx.extra.get("clock")
        self._clock: Callable[[], datetime] = clock if callable(clock) else (lambda: datetime.now(UTC))
        self.base_url = api_base(ctx.base_url)
        self._client = VendorHttpClient(
            self.base_url,
            headers={"Accept": "application/json"},
            auth_headers=self._auth_headers,
            error_parser=parse_ncentral_error,
            max_concurrency=options.max_concurrency,
            budget=ctx.budget,
            transport=ctx.transport_factory(self.base_url),
            sleep=self._sleep,
        )
        self._security = SecurityState(options)
        self._token: _Token | None = None
        self._token_lock = asyncio.Lock()
        self._token_generation = 0
        self._used_generation: contextvars.ContextVar[int] = contextvars.ContextVar(
            f"ncentral_token_generation_{id(self)}", default=-1
        )
        self.authentications = 0
        self.refreshes = 0
        self._device_customers: dict[str, str] = {}
        self._customer_ids: dict[str, str] = {}
        self._known_devices: dict[str, KnownDevice] = {}
        """Devices seen in listings, by id: what a notification without `DeviceID` is matched on."""

    @property
    def request_count(self) -> int:
        return self._client.request_count

    async def aclose(self) -> None:
        await self._client.aclose()

    # -- auth ----------------------------------------------------------------------------------

    async def _auth_headers(self, force: bool) -> Mapping[str, str]:
        """Called per request (each in its own task); after a 401 (`force`) the generation this
        request's token came from tells whether it was renewed meanwhile."""
        used = self._used_generation.get() if force else self._token_generation
        token = await self._ensure_token(force, used)
        self._used_generation.set(self._token_generation)
        return {"Authorization": f"Bearer {token.access}"}

    async def _ensure_token(self, force: bool, seen: int | None = None) -> _Token:
        margin = timedelta(seconds=self._options.token_refresh_margin_seconds)
        seen = self._token_generation if seen is None else seen
        async with self._token_lock:
            now = self._clock()
            current = self._token
            if current is not None:
                if not force and current.access_expires_at - margin > now:
                    return current
                if force and self._token_generation != seen:
                    # Renewed since this request's token was handed out (requests in flight
                    # together all see the old token refused): one renewal serves them all.
                    return current
            token: _Token | None = None
            if (
                current is not None
                and current.refresh
                and (current.refresh_expires_at is None or current.refresh_expires_at > now)
            ):
                token = await self._refresh(current.refresh, now)
            if token is None:
                token = await self._authenticate(now)
            self._token = token
            self._token_generation += 1
            return token

    def _token_from(self, response: httpx.Response, now: datetime, what: str) -> _Token:
        try:
            body = response.json()
        except ValueError:
            raise TransientVendorError(f"the {what} answer is not JSON") from None
        problem = embedded_error(body)
        if problem is not None:
            raise problem
        try:
            result = AuthenticateRead.model_validate(body)
        except ValidationError:
            raise TransientVendorError(f"the {what} answer has no tokens") from None
        tokens = result.tokens
        access = tokens.access if tokens else None
        if access is None or not access.token:
            raise CredentialsError(f"N-central issued no access token on {what}", field="api_token")
        refresh = tokens.refresh if tokens else None
        lifetime = access.expirySeconds if access.expirySeconds and access.expirySeconds > 0 else None
        refresh_lifetime = refresh.expirySeconds if refresh and refresh.expirySeconds else None
        return _Token(
            access=access.token,
            access_expires_at=now + timedelta(seconds=lifetime or DEFAULT_ACCESS_SECONDS),
            refresh=refresh.token if refresh and refresh.token else None,
            refresh_expires_at=now + timedelta(seconds=refresh_lifetime) if refresh_lifetime else None,
        )

    def _override_headers(self) -> dict[str, str]:
        headers: dict[str, str] = {}
        if self._options.access_expiry_override:
            headers["X-ACCESS-EXPIRY-OVERRIDE"] = self._options.access_expiry_override
        if self._options.refresh_expiry_override:
            headers["X-REFRESH-EXPIRY-OVERRIDE"] = self._options.refresh_expiry_override
        return headers

    async def _authenticate(self, now: datetime) -> _Token:
        """The User-API token (JWT) as bearer → access and refresh tokens."""
        self.authentications += 1
        headers = {
            "Authorization": f"Bearer {self._credentials.api_token.get_secret_value()}",
            **self._override_headers(),
        }
        try:
            response = await self._client.request(
                "POST", AUTH_PATH, headers=headers, authenticated=False, idempotent=True
            )
        except (CredentialsError, VendorRequestError, NotFoundError) as exc:
            raise CredentialsError(
                f"N-central refused the User-API token: {exc.message}", field="api_token", status=exc.status
            ) from None
        return self._token_from(response, now, "authentication")

    async def _refresh(self, refresh_token: str, now: datetime) -> _Token | None:
        """The refresh token as the raw body → new tokens; None when refused (e.g. the server
        restarted and forgot it), so the caller exchanges the JWT again."""
        self.refreshes += 1
        try:
            response = await self._client.request(
                "POST",
                REFRESH_PATH,
                content=refresh_token.encode(),
                headers={"Content-Type": "text/plain"},
                authenticated=False,
                idempotent=True,
            )
            return self._token_from(response, now, "refresh")
        except (CredentialsError, VendorRequestError, NotFoundError) as exc:
            log.info("N-central refused the refresh token (%s); exchanging the User-API token", exc.message)
            return None

    # -- reading ---------------------------------------------------------------------------------

    async def _get(self, path: str, params: Mapping[str, Any] | None = None) -> Any:
        """GET → JSON; an error inside a 200 is raised like the status it names, and a transient one
        is asked again with the shared client's backoff."""
        attempt = 0
        while True:
            body = await self._client.get_json(path, params=params)
            problem = embedded_error(body)
            if problem is None:
                return body
            attempt += 1
            if not problem.retryable or attempt >= self._client.retry.attempts:
                raise problem
            log.warning("N-central %s: %s; asking again", path, problem.message)
            await self._sleep(self._client.retry.backoff(attempt))

    async def _pages(
        self, path: str, params: Mapping[str, Any] | None = None
    ) -> AsyncIterator[list[dict[str, Any]]]:
        """Every page of a paged route: `pageNumber` from 1, `pageSize`, until `totalPages`."""
        size = self._options.page_size
        for number in range(1, MAX_PAGES + 1):
            body = await self._get(path, {**(params or {}), "pageNumber": number, "pageSize": size})
            if isinstance(body, list):
                page = PageRead(data=body)
            else:
                try:
                    page = PageRead.model_validate(body if isinstance(body, dict) else {})
                except ValidationError:
                    raise TransientVendorError(f"{path} page {number} is not a page") from None
            if page.data is None:
                raise TransientVendorError(f"{path} page {number} has no data list")
            if page.warning:
                log.warning("N-central %s page %s: %s", path, number, page.warning)
            rows = [row for row in page.data if isinstance(row, dict)]
            yield rows
            if page.totalPages is not None:
                if number >= page.totalPages:
                    return
            elif len(page.data) < size:
                return
            if not page.data:
                return
        raise TransientVendorError(f"{path} has more than {MAX_PAGES} pages")

    @staticmethod
    def _parse(model: type[M], row: Mapping[str, Any], what: str) -> M | None:
        try:
            return model.model_validate(row)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            ident = row.get("deviceId") or row.get("customerId") or row.get("siteId") or "?"
            log.warning("N-central %s %s skipped: %s: %s", what, ident, where, first["msg"])
            return None

    async def test_connection(self) -> None:
        """A fresh JWT exchange, then one device."""
        await self._ensure_token(force=True)
        await self._get(DEVICES_PATH, {"pageNumber": 1, "pageSize": 1})

    async def list_clients(self) -> AsyncIterator[RmmClient]:
        async for rows in self._pages(CUSTOMERS_PATH):
            for row in rows:
                customer = self._parse(CustomerRead, row, "customer")
                if customer is None or not customer.customerId:
                    log.warning("N-central customer skipped: no customerId")
                    continue
                name = customer.customerName or f"Customer {customer.customerId}"
                self._customer_ids[name.strip().lower()] = customer.customerId
                yield RmmClient(id=customer.customerId, name=name)

    async def list_sites(self) -> AsyncIterator[SiteRead]:
        """Sites (children of customers); `site_id` on endpoints refers to these."""
        async for rows in self._pages(SITES_PATH):
            for row in rows:
                site = self._parse(SiteRead, row, "site")
                if site is not None and site.siteId:
                    yield site

    @staticmethod
    def _skip(device_id: str, field: str, message: str) -> SkippedEndpoint:
        log.warning("N-central device %s skipped: %s: %s", device_id, field, message)
        return SkippedEndpoint(endpoint_id=device_id, field=field, message=message)

    def _identity(self, row: Mapping[str, Any]) -> tuple[DeviceRead, str] | SkippedEndpoint:
        device = self._parse(DeviceRead, row, "device")
        raw_id = str(row.get("deviceId") or "?")
        if device is None:
            return self._skip(raw_id, "device", "unreadable record")
        if not device.deviceId:
            return self._skip(raw_id, "deviceId", f"missing (longName {device.longName or '?'!r})")
        if not device.customerId:
            return self._skip(device.deviceId, "customerId", "missing")
        name = (device.longName or device.discoveredName or "").strip()
        if not name:
            return self._skip(device.deviceId, "longName", "missing (and no discoveredName)")
        return device, name

    def _checkin(self, device: DeviceRead) -> datetime | None:
        """The agent's last check-in. The description gives `lastApplianceCheckinTime` (read as UTC
        when it carries no offset) and `lastApplianceCheckinTimeLocal` "in server local time with
        timezone offset" (read in `server_timezone` when the offset is missing)."""
        plain = alerts.parse_local_time(device.lastApplianceCheckinTime, UTC)
        if plain is not None:
            return plain
        return alerts.parse_local_time(device.lastApplianceCheckinTimeLocal, self._tz)

    def _changed(self, device: DeviceRead, since: datetime | None) -> bool:
        if since is None:
            return True
        if since.tzinfo is None:
            since = since.replace(tzinfo=UTC)
        seen = self._checkin(device)
        return seen is None or seen >= since

    async def _services(
        self, device_id: str, unreadable: list[SkippedEndpoint]
    ) -> list[ServiceStatusRead] | None:
        """The device's service states; what cannot be read is added to `unreadable`."""
        path = f"{DEVICES_PATH}/{device_id}/service-monitor-status"
        try:
            body = await self._get(path)
        except NotFoundError as exc:
            unreadable.append(self._status_error(device_id, "service-monitor-status", exc.message))
            return None
        rows: Any = body.get("data") if isinstance(body, dict) else body
        if not isinstance(rows, list):
            unreadable.append(self._status_error(device_id, "data", "service-monitor-status is not a list"))
            return None
        services: list[ServiceStatusRead] = []
        for row in rows:
            if not isinstance(row, dict):
                continue
            try:
                services.append(ServiceStatusRead.model_validate(row))
            except ValidationError as exc:
                where = ".".join(str(p) for p in exc.errors()[0]["loc"])
                unreadable.append(self._status_error(device_id, where, "unreadable service entry"))
        return services

    @staticmethod
    def _status_error(device_id: str, field: str, message: str) -> SkippedEndpoint:
        log.warning("N-central device %s service states unknown: %s: %s", device_id, field, message)
        return SkippedEndpoint(endpoint_id=device_id, field=field, message=message)

    def _status(self, device: DeviceRead, name: str, security: Mapping[str, Any]) -> EndpointStatus:
        assert device.deviceId is not None and device.customerId is not None
        return EndpointStatus(
            endpoint_id=device.deviceId,
            client_id=device.customerId,
            client_name=device.customerName,
            site_id=device.siteId,
            hostname=name,
            os_name=device.supportedOs or device.supportedOsLabel,
            device_type=_device_type(device),
            last_seen_at=self._checkin(device),
            **security,
        )

    async def iter_endpoint_pages(self, changed_since: datetime | None) -> AsyncIterator[EndpointPage]:
        """One page per vendor page of devices (see the module docstring for filtering)."""
        params: dict[str, Any] = {}
        if self._options.device_filter_id is not None:
            params["filterId"] = self._options.device_filter_id
        if self._options.sort_devices_by:
            params["sortBy"] = self._options.sort_devices_by
            params["sortOrder"] = "ASC"
        async for rows in self._pages(DEVICES_PATH, params):
            kept: list[tuple[DeviceRead, str]] = []
            skipped: list[SkippedEndpoint] = []
            for row in rows:
                identity = self._identity(row)
                if isinstance(identity, SkippedEndpoint):
                    skipped.append(identity)
                    continue
                device = identity[0]
                assert device.deviceId is not None and device.customerId is not None
                self._remember(device, identity[1])
                if self._changed(device, changed_since):
                    kept.append(identity)
            if not kept and not skipped:
                continue
            states: list[list[ServiceStatusRead] | None]
            if self._options.read_service_status:
                states = list(
                    await asyncio.gather(*(self._services(d.deviceId or "", skipped) for d, _ in kept))
                )
            else:
                states = [None] * len(kept)
            statuses = [
                self._status(device, name, self._security.fields(services) if services is not None else {})
                for (device, name), services in zip(kept, states, strict=True)
            ]
            yield EndpointPage(statuses=statuses, skipped=skipped)

    # -- alerts ----------------------------------------------------------------------------------

    def verify_webhook(self, request: WebhookRequest, secret: str) -> bool | None:
        """N-central signs nothing: the core's X-Connector-Signature / token check applies."""
        return None

    def _remember(self, device: DeviceRead, name: str) -> None:
        assert device.deviceId is not None and device.customerId is not None
        self._device_customers[device.deviceId] = device.customerId
        if device.customerName:
            self._customer_ids.setdefault(device.customerName.strip().lower(), device.customerId)
        units = tuple(
            unit.strip().casefold()
            for unit in (device.customerName, device.siteName)
            if unit and unit.strip()
        )
        self._known_devices[device.deviceId] = KnownDevice(
            device.deviceId,
            device.customerId,
            frozenset(n.strip().casefold() for n in (name, device.longName, device.discoveredName) if n),
            (device.uri or "").strip(),
            units,
        )

    def _client_of_path(self, path: tuple[str, ...]) -> str | None:
        """The customer an org-unit path names: its innermost unit that is a known customer, or the
        customer of devices at a site of that name under the path's other units."""
        for unit in reversed(path):
            found = self._customer_ids.get(unit.lower())
            if found is not None:
                return found
        wanted = tuple(unit.casefold() for unit in path)
        customers = {d.customer_id for d in self._known_devices.values() if d.units and d.in_path(wanted)}
        return customers.pop() if len(customers) == 1 else None

    def resolve_device(self, notified: alerts.NotifiedDevice) -> tuple[str, str] | None:
        """(device id, customer id) of what a notification names: by `DeviceID` (the customer from
        the listed device, else from the `CustomerName` path), else by `DeviceName` among the listed
        devices, narrowed by the path and then `DeviceURI` when several share the name."""
        if notified.device_id is not None:
            client = self._device_customers.get(notified.device_id) or self._client_of_path(
                notified.customer_path
            )
            return (notified.device_id, client) if client is not None else None
        name = (notified.device_name or "").strip().casefold()
        candidates = [d for d in self._known_devices.values() if name in d.names]
        wanted = tuple(unit.casefold() for unit in notified.customer_path)
        uri = (notified.device_uri or "").strip()
        if len(candidates) > 1 and wanted:
            candidates = [d for d in candidates if d.in_path(wanted)] or candidates
        if len(candidates) > 1 and uri:
            candidates = [d for d in candidates if d.uri == uri] or candidates
        if not candidates:
            return None
        if len(candidates) > 1:
            raise WebhookParseError(
                f"{len(candidates)} devices are named {notified.device_name!r} under "
                f"{' > '.join(notified.customer_path) or 'this server'}; add DeviceID to the notification "
                "template",
                field="DeviceName",
            )
        return candidates[0].device_id, candidates[0].customer_id

    def parse_webhook(self, request: WebhookRequest) -> list[AlertEvent]:
        return alerts.parse_body(request, tz=self._tz, resolve_device=self.resolve_device)

    async def poll_alerts(self, since: datetime | None) -> PolledAlerts:
        """N-central pushes its notifications; the status sync is the backstop."""
        return PolledAlerts(events=[])

    # -- actions ---------------------------------------------------------------------------------

    def _task_for(self, action: ActionKind) -> tuple[int, TaskType, dict[str, str]]:
        opts = self._options
        if action not in ACTIONS:
            raise UnsupportedActionError(
                f"N-central's API cannot run {action.value!r}; deploy agents with N-central's installers "
                "or a probe's discovery job",
                field="action",
            )
        option, kind_option, params_option = _ITEM_OPTIONS[action]
        item: int | None = getattr(opts, option)
        kind: TaskType = getattr(opts, kind_option)
        params: dict[str, str] = getattr(opts, params_option)
        if item is None:
            raise UnsupportedActionError(
                f"no N-central repository item is configured for {action.value!r}; set the connection "
                f"option {option} (a custom script or automation policy with Enable API on)",
                field=option,
            )
        return item, kind, params

    async def run_action(self, endpoint_id: str, action: ActionKind) -> ActionResult:
        """Runs the configured repository item on the device now (`POST /api/scheduled-tasks/direct`,
        one task per call). The task's outcome appears later under the task's status."""
        item, kind, parameters = self._task_for(action)
        device = endpoint_id.strip()
        if not device.isdigit():
            raise VendorRequestError(
                f"N-central device ids are numbers, got {endpoint_id!r}", field="endpoint_id"
            )
        try:
            body = await self._get(f"{DEVICES_PATH}/{device}")
        except NotFoundError:
            raise NotFoundError(f"N-central has no device {device}", field="endpoint_id") from None
        record = body.get("data") if isinstance(body, dict) and "data" in body else body
        customer = DeviceRead.model_validate(record if isinstance(record, dict) else {}).customerId
        if not customer or not customer.isdigit():
            raise TransientVendorError(f"device {device} came back without a customerId")
        task = DirectTaskWrite(
            name=f"connector {action.value} {device} {self._clock():%Y%m%dT%H%M%SZ} {secrets.token_hex(2)}",
            itemId=item,
            taskType=kind,
            customerId=int(customer),
            deviceId=int(device),
            # `ScheduledTaskParameter.description` is required and must not be empty: the
            # parameter's own name describes it.
            parameters=[TaskParameter(name=k, value=v, description=k) for k, v in parameters.items()],
        )
        option = _ITEM_OPTIONS[action][0]
        try:
            response = await self._client.request(
                "POST", DIRECT_TASK_PATH, json=task.wire(), idempotent=False
            )
        except CredentialsError as exc:
            if "notrunnable" in exc.message.replace(" ", "").lower():
                raise ConfigurationError(
                    f"N-central will not run repository item {item} through the API (turn on Enable API "
                    f"for it; bundled items cannot be run): {exc.message}",
                    field=option,
                    status=exc.status,
                ) from None
            raise
        except VendorRequestError as exc:
            raise VendorRequestError(exc.message, field=exc.field or option, status=exc.status) from None
        result: Any = response.json() if response.content else {}
        problem = embedded_error(result)
        if problem is not None:
            raise problem
        data = result.get("data", result) if isinstance(result, dict) else {}
        task_id = data.get("taskId") if isinstance(data, dict) else None
        return ActionResult(
            accepted=True,
            vendor_reference=f"task:{task_id}" if task_id is not None else None,
            message=f"N-central task {task_id} runs item {item} on device {device}"
            if task_id is not None
            else f"N-central accepted item {item} for device {device}",
        )


def create_adapter(ctx: ConnectionContext) -> NcentralAdapter:
    return NcentralAdapter(ctx)


__all__ = [
    "ACTIONS",
    "AUTH_PATH",
    "DEVICES_PATH",
    "DIRECT_TASK_PATH",
    "REFRESH_PATH",
    "NcentralAdapter",
    "SecurityState",
    "api_base",
    "create_adapter",
    "embedded_error",
    "parse_ncentral_error",
]
