"""NinjaOne (Public API 2.0) adapter: organizations as clients, devices with their antivirus status,
threats and serial numbers, webhook activities, and scripts run as actions.

Sources:
- The API description: NinjaOne's own "NinjaOne Public API 2.0" OpenAPI 3.0.1, info.version
  2.0.9-draft (as published in JunknerdGit/NinjaOneAPI `ninjaone-api-core-resources.yaml`
  @f69909445b; each instance serves it under /apidocs). Paths, parameters and schemas below are
  from it.
- Hosts: the document has no `servers`; the API host is the instance host per region
  (`app`, `eu`, `oc`, `ca`, `us2` .ninjarmm.com) and the token host is the API host (vendor-notes
  rmm.md §4.2; asachs01/msp-claude-plugins NinjaOne "API patterns" skill; many public clients
  posting to `https://{host}/ws/oauth/token`).
- Token: OAuth2 client credentials, `POST /ws/oauth/token` form `grant_type=client_credentials`,
  `client_id`, `client_secret`, `scope=monitoring management control` → `{access_token,
  token_type, expires_in (3600), scope}`; bearer on every call (`securitySchemes.oauth2`). Refused
  clients answer 400/401 with an OAuth2 error body (`{"error": "invalid_client"}`, RFC 6749 §5.2).
- Organizations: `GET /v2/organizations?pageSize=&after=<last id>` (bare array of `Organization`).
- Devices: `GET /v2/devices-detailed?pageSize=&after=<last node id>` (bare array of `Device`, which
  carries `macAddresses`, `offline`, `lastContact`, `lastUpdate` as epoch seconds).
- Queries (`{cursor: {name, offset, count, expires}, results: [...]}`, paged with `cursor` and
  `pageSize`): `/v2/queries/antivirus-status` (`DeviceAntivirusStatus`: one row per product per
  device, `productState` ON/OFF/…, `definitionStatus`), `/v2/queries/antivirus-threats`
  (`DeviceAntivirusThreat`), `/v2/queries/computer-systems` (`serialNumber`, `biosSerialNumber`).
  Value sets of `productState` (`ON`, `OFF`, `SNOOZED`, `EXPIRED`) and `definitionStatus`
  (`UP_TO_DATE`, `OUT_OF_DATE`) are not enumerated by the document; they follow NinjaOne's
  PowerShell module (homotechsual/NinjaOne `Get-NinjaOneAntivirusStatus`: `-productState 'ON'`)
  and the Windows Security Center states NinjaOne reports. Both are compared case-insensitively
  with `-`, `_` and spaces ignored.
- Webhook: `PUT /v2/webhook` `WebhookConfiguration{url, activities, expand, headers,
  organizationIds}` (204; 403 "Only system administrators can configure webhooks"); payloads are
  `Activity` (`seriesUid` ties a condition's TRIGGERED and RESET). The document has no signature:
  the custom header of the registration authenticates deliveries (see `alerts.py`).
- Scripts: `POST /v2/device/{id}/script/run` `RunScriptRequest{type: SCRIPT|ACTION, id|uid,
  parameters, runAs}`.
- Console links: a device's page in the NinjaOne web console is
  `https://{instance}/#/deviceDashboard/{device id}/overview`, the form public integrations build
  and NinjaOne users copy from the address bar (third-party code and guides found by code search;
  the API document has no console URLs) [third-party, not from the vendor's docs].
- Rate limits: the document states none; a 429 is honoured through the shared HTTP layer
  (`Retry-After` waited, then `RateLimitedError` carrying it).

Status mapping: one `EndpointStatus` per device. Of the device's antivirus-status rows, the one of
`options.billed_product` (case-insensitive substring of `productName`) is used; a device that
reports products but not the billed one has no product and protection off (→ not protected); a
device with no rows at all reports nothing (unknown). Without a billed product the row that is ON
is used, else the first. `protection_enabled` = productState ON; `definitions_date` = the row's
timestamp when UP_TO_DATE, that minus `outdated_definitions_age_days` when OUT_OF_DATE (NinjaOne
gives no date), None otherwise; `active_threats` = the device's threat rows not quarantined,
removed, cleaned, deleted or restored; `online` = not `offline`; `last_seen_at` = `lastContact`;
`serial_number` = computer-systems `serialNumber` (else `biosSerialNumber`). `mac_addresses` =
`Device.macAddresses` (normalized by the core's record).

Incremental reads: NinjaOne's device filter has no "changed since"; every call reads the three
reports and the device list in full (pages of `page_size`, the fewest the API allows) and yields
the devices whose `lastContact`, `lastUpdate` or report rows are at or after the cursor. An agent
that went offline without reporting is caught by the core's offline check.

Malformed data: a device without `id` or `organizationId` is in its page's `skipped` (with the
field; `?` as the id when there is none).

Alerts: NinjaOne pushes (webhook); `poll_alerts` reads nothing.

Actions (`ACTIONS`): scan, definitions update and agent deployment, each a script the connection's
options name (`scan_script_id`, `definitions_script_id`, `deploy_script_id`); an action whose
script is unset raises `UnsupportedActionError` naming the option.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

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
from adapters.common import BearerToken, TokenCache, server_root, settings_as
from adapters.errors import (
    AdapterError,
    CredentialsError,
    NotFoundError,
    TransientVendorError,
    UnsupportedActionError,
    VendorRequestError,
)
from adapters.http import VendorHttpClient
from adapters.ninjaone import alerts
from adapters.ninjaone.models import (
    REGIONS,
    AntivirusStatusRead,
    AntivirusThreatRead,
    ComputerSystemRead,
    DeviceRead,
    HttpHeaderWrite,
    NinjaOneCredentials,
    NinjaOneOptions,
    OrganizationRead,
    RunScriptWrite,
    TokenRead,
    WebhookConfigurationWrite,
)

log = logging.getLogger("adapters.ninjaone")

TOKEN_PATH = "/ws/oauth/token"
ACTIONS = frozenset({ActionKind.SCAN, ActionKind.UPDATE_DEFINITIONS, ActionKind.DEPLOY_AGENT})
SCRIPT_OPTIONS = {
    ActionKind.SCAN: ("scan_script_id", "scan_script_parameters"),
    ActionKind.UPDATE_DEFINITIONS: ("definitions_script_id", "definitions_script_parameters"),
    ActionKind.DEPLOY_AGENT: ("deploy_script_id", "deploy_script_parameters"),
}
WEBHOOK_ACTIVITIES: dict[str, list[str]] = {
    "ANTIVIRUS": [],
    "SECURITY": [],
    "CONDITION": ["TRIGGERED", "RESET"],
}
"""What the registration subscribes to (an empty list: every status of that type)."""
FALLBACK_TOKEN_LIFETIME = timedelta(minutes=10)
MAX_PAGES = 100_000
HANDLED_THREAT = re.compile(r"quarantin|remov|clean|delet|restor|resolv|allow|ignor", re.I)


def api_base(base_url: str, region: str | None) -> str:
    """The region's host, or the instance URL an engineer typed (API suffixes cut)."""
    if region:
        return REGIONS[region]
    return server_root(base_url, vendor="NinjaOne", suffixes=("/api/v2", "/v2", "/ws/oauth/token", "/ws"))


def device_dashboard_url(base_url: str, options: BaseModel, endpoint_id: str) -> str | None:
    """The device's page in the NinjaOne console, `{instance}/#/deviceDashboard/{id}/overview`
    (the instance is the API host: the region's, or the connection's base URL). None for an id
    that is not NinjaOne's numeric device id."""
    region = getattr(options, "region", None)
    if not endpoint_id.isdigit():
        return None
    try:
        instance = api_base(base_url, region)
    except AdapterError:
        return None
    return f"{instance.rstrip('/')}/#/deviceDashboard/{endpoint_id}/overview"


def epoch(value: float | None) -> datetime | None:
    """NinjaOne's epoch seconds (floats) → aware UTC; 0 or absent = never."""
    if value is None or value <= 0:
        return None
    try:
        return datetime.fromtimestamp(float(value), UTC)
    except (OverflowError, OSError, ValueError):
        return None


def _norm(value: str | None) -> str:
    return re.sub(r"[\s_-]", "", (value or "")).upper()


def parse_ninja_error(response: httpx.Response) -> tuple[str, str | None]:
    """NinjaOne error bodies (`{"error": …, "error_description": …}` from OAuth, `{"resultCode",
    "errorMessage", "incidentId"}` from the API) → (message, field)."""
    try:
        body = response.json()
    except ValueError:
        text = response.text.strip()
        return (text[:300] or response.reason_phrase or f"HTTP {response.status_code}", None)
    if not isinstance(body, dict):
        return (str(body)[:300], None)
    message = (
        body.get("errorMessage")
        or body.get("error_description")
        or body.get("message")
        or body.get("error")
        or f"HTTP {response.status_code}"
    )
    field_name = body.get("field")
    return (str(message)[:500], str(field_name) if field_name else None)


@dataclass
class _Reports:
    """The query reports of one listing, by device id."""

    antivirus: dict[str, list[AntivirusStatusRead]] = field(default_factory=dict)
    threats: dict[str, list[AntivirusThreatRead]] = field(default_factory=dict)
    serials: dict[str, ComputerSystemRead] = field(default_factory=dict)


class NinjaOneAdapter:
    """RmmAdapter for the NinjaOne Public API 2.0."""

    def __init__(self, ctx: ConnectionContext) -> None:
        self._credentials = settings_as(NinjaOneCredentials, ctx.credentials)
        self._options = settings_as(NinjaOneOptions, ctx.options)
        self._sleep: Callable[[float], Awaitable[None]] = ctx.sleep or asyncio.sleep
        clock = ctx.extra.get("clock")
        self._clock: Callable[[], datetime] = clock if callable(clock) else (lambda: datetime.now(UTC))
        self.api_base = api_base(ctx.base_url, self._options.region)
        self._client = VendorHttpClient(
            self.api_base,
            headers={"Accept": "application/json"},
            auth_headers=lambda force: self._tokens.headers(force),
            error_parser=parse_ninja_error,
            max_concurrency=self._options.max_concurrency,
            budget=ctx.budget,
            transport=ctx.transport_factory(self.api_base),
            sleep=self._sleep,
        )
        self._tokens = TokenCache(
            self._request_token,
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

    async def _request_token(self, now: datetime) -> BearerToken:
        form = urlencode(
            {
                "grant_type": "client_credentials",
                "client_id": self._credentials.client_id,
                "client_secret": self._credentials.client_secret.get_secret_value(),
                "scope": self._options.scope,
            }
        )
        self.token_requests += 1
        try:
            response = await self._client.request(
                "POST",
                TOKEN_PATH,
                content=form.encode(),
                headers={"Content-Type": "application/x-www-form-urlencoded"},
                authenticated=False,
                idempotent=True,
            )
        except (CredentialsError, VendorRequestError) as exc:
            raise CredentialsError(
                f"NinjaOne refused the API client: {exc.message}", field="credentials", status=exc.status
            ) from None
        try:
            token = TokenRead.model_validate(response.json())
        except (ValueError, ValidationError):
            raise TransientVendorError("the token answer is not an OAuth2 token") from None
        if not token.access_token:
            raise CredentialsError("NinjaOne issued no access token", field="credentials")
        lifetime = timedelta(seconds=token.expires_in) if token.expires_in else FALLBACK_TOKEN_LIFETIME
        return BearerToken(value=token.access_token, expires_at=now + lifetime)

    # -- paging ----------------------------------------------------------------------------------

    async def _after_pages(
        self, path: str, params: Mapping[str, Any] | None = None
    ) -> AsyncIterator[list[dict[str, Any]]]:
        """A bare-array list paged with `after=<last id>`; a short page is the last."""
        size = self._options.page_size
        after: int | None = None
        for _ in range(MAX_PAGES):
            query: dict[str, Any] = {**(params or {}), "pageSize": size}
            if after is not None:
                query["after"] = after
            data = await self._client.get_json(path, params=query)
            if data is None:
                data = []
            if not isinstance(data, list):
                raise TransientVendorError(f"{path} answered something other than a JSON array")
            rows = [row for row in data if isinstance(row, dict)]
            yield rows
            ids = [row["id"] for row in rows if isinstance(row.get("id"), int)]
            if len(data) < size or not ids:
                return
            if after is not None and max(ids) <= after:
                raise TransientVendorError(f"{path} returned the page after {after} again")
            after = max(ids)
        raise TransientVendorError(f"{path} has more than {MAX_PAGES} pages")

    async def _cursor_pages(self, path: str) -> AsyncIterator[list[dict[str, Any]]]:
        """A query report paged with the `cursor.name` it answers; a short page is the last."""
        size = self._options.page_size
        cursor: str | None = None
        for _ in range(MAX_PAGES):
            query: dict[str, Any] = {"pageSize": size}
            if cursor:
                query["cursor"] = cursor
            data = await self._client.get_json(path, params=query)
            if not isinstance(data, dict):
                raise TransientVendorError(f"{path} answered something other than a report")
            results = data.get("results") or []
            if not isinstance(results, list):
                raise TransientVendorError(f"{path} results are not a list")
            yield [row for row in results if isinstance(row, dict)]
            name = (data.get("cursor") or {}).get("name") if isinstance(data.get("cursor"), dict) else None
            if len(results) < size or not name:
                return
            cursor = str(name)
        raise TransientVendorError(f"{path} has more than {MAX_PAGES} pages")

    # -- reading ---------------------------------------------------------------------------------

    async def test_connection(self) -> None:
        """A fresh token, then one organization."""
        await self._tokens.get(force=True)
        await self._client.get_json("/v2/organizations", params={"pageSize": 1})

    async def list_clients(self) -> AsyncIterator[RmmClient]:
        async for rows in self._after_pages("/v2/organizations"):
            for row in rows:
                try:
                    org = OrganizationRead.model_validate(row)
                except ValidationError:
                    log.warning("NinjaOne organization %s skipped: unreadable", row.get("id", "?"))
                    continue
                if org.id:
                    yield RmmClient(id=org.id, name=org.name or f"Organization {org.id}")

    async def _reports(self) -> _Reports:
        reports = _Reports()
        async for rows in self._cursor_pages("/v2/queries/antivirus-status"):
            for row in rows:
                status = _read(AntivirusStatusRead, row)
                if status is not None and status.deviceId:
                    reports.antivirus.setdefault(status.deviceId, []).append(status)
        async for rows in self._cursor_pages("/v2/queries/antivirus-threats"):
            for row in rows:
                threat = _read(AntivirusThreatRead, row)
                if threat is not None and threat.deviceId:
                    reports.threats.setdefault(threat.deviceId, []).append(threat)
        if self._options.read_serials:
            async for rows in self._cursor_pages("/v2/queries/computer-systems"):
                for row in rows:
                    system = _read(ComputerSystemRead, row)
                    if system is not None and system.deviceId:
                        reports.serials[system.deviceId] = system
        return reports

    def pick_product(self, rows: list[AntivirusStatusRead]) -> AntivirusStatusRead | None:
        named = [r for r in rows if (r.productName or "").strip()]
        billed = (self._options.billed_product or "").strip().casefold()
        if billed:
            return next((r for r in named if billed in (r.productName or "").casefold()), None)
        return next((r for r in named if _norm(r.productState) == "ON"), named[0] if named else None)

    def endpoint_status(self, device: DeviceRead, reports: _Reports) -> EndpointStatus:
        assert device.id is not None and device.organizationId is not None
        rows = reports.antivirus.get(device.id, [])
        chosen = self.pick_product(rows)
        product = (chosen.productName or "").strip() if chosen else None
        protection: bool | None = None
        definitions: datetime | None = None
        threats: int | None = None
        if chosen is not None:
            state = _norm(chosen.productState)
            protection = True if state == "ON" else False if state in ("OFF", "SNOOZED", "EXPIRED") else None
            when = epoch(chosen.timestamp)
            definition = _norm(chosen.definitionStatus)
            if when is not None and definition == "UPTODATE":
                definitions = when
            elif when is not None and definition == "OUTOFDATE":
                definitions = when - timedelta(days=self._options.outdated_definitions_age_days)
            threats = sum(
                1 for t in reports.threats.get(device.id, []) if not HANDLED_THREAT.search(t.status or "")
            )
        elif any((r.productName or "").strip() for r in rows):
            protection = False  # products reported, the billed one is not among them
        system = reports.serials.get(device.id)
        serial = ((system.serialNumber or system.biosSerialNumber or "").strip() or None) if system else None
        return EndpointStatus(
            endpoint_id=device.id,
            client_id=device.organizationId,
            site_id=device.locationId,
            hostname=device.systemName
            or device.dnsName
            or device.netbiosName
            or device.displayName
            or device.id,
            serial_number=serial,
            mac_addresses=device.macAddresses,
            device_type=_device_type(device.nodeClass),
            product=product or None,
            protection_enabled=protection,
            definitions_date=definitions,
            active_threats=threats,
            online=None if device.offline is None else not device.offline,
            last_seen_at=epoch(device.lastContact),
        )

    @staticmethod
    def changed_at(device: DeviceRead, reports: _Reports) -> datetime | None:
        assert device.id is not None
        stamps = [device.lastContact, device.lastUpdate]
        stamps += [r.timestamp for r in reports.antivirus.get(device.id, [])]
        stamps += [t.timestamp for t in reports.threats.get(device.id, [])]
        system = reports.serials.get(device.id)
        if system is not None:
            stamps.append(system.timestamp)
        times = [t for t in (epoch(s) for s in stamps) if t is not None]
        return max(times) if times else None

    async def iter_endpoint_pages(self, changed_since: datetime | None) -> AsyncIterator[EndpointPage]:
        """The reports first, then one page per page of `/v2/devices-detailed` (module docstring)."""
        reports = await self._reports()
        async for rows in self._after_pages("/v2/devices-detailed"):
            page = EndpointPage(statuses=[])
            for row in rows:
                try:
                    device = DeviceRead.model_validate(row)
                except ValidationError as exc:
                    first = exc.errors()[0]
                    where = ".".join(str(p) for p in first["loc"]) or "device"
                    page.skipped.append(
                        SkippedEndpoint(
                            endpoint_id=str(row.get("id") or "?"), field=where, message=first["msg"]
                        )
                    )
                    continue
                if not device.id or not device.organizationId:
                    missing = "id" if not device.id else "organizationId"
                    log.warning("NinjaOne device %s skipped: no %s", device.id or "?", missing)
                    page.skipped.append(
                        SkippedEndpoint(endpoint_id=device.id or "?", field=missing, message="missing")
                    )
                    continue
                if changed_since is not None:
                    changed = self.changed_at(device, reports)
                    if changed is None or changed < changed_since:
                        continue
                page.statuses.append(self.endpoint_status(device, reports))
            if page.statuses or page.skipped:
                yield page

    # -- alerts ----------------------------------------------------------------------------------

    def verify_webhook(self, request: WebhookRequest, secret: str) -> bool | None:
        """The registration's custom header carries the connection's webhook secret: a delivery
        with the header is accepted only when it matches; one without it (a canonical alert posted
        by a script) is left to the core's token / signature check."""
        wanted = self._options.webhook_header.lower()
        sent = next((v for k, v in request.headers.items() if k.lower() == wanted), None)
        if sent is None:
            return None
        return bool(secret) and hmac.compare_digest(sent.encode(), secret.encode())

    def parse_webhook(self, request: WebhookRequest) -> list[AlertEvent]:
        return alerts.parse_activity(request, epoch)

    async def poll_alerts(self, since: datetime | None) -> PolledAlerts:
        """NinjaOne pushes activities to the registered webhook: nothing to poll."""
        return PolledAlerts(events=[])

    async def register_webhook(self, url: str, secret: str) -> None:
        """`PUT /v2/webhook`: activities for antivirus, security and conditions, the device expanded
        (its organization), the secret in `options.webhook_header`. Replaces any earlier one."""
        body = WebhookConfigurationWrite(
            url=url,
            activities=WEBHOOK_ACTIVITIES,
            expand=["device"],
            headers=[HttpHeaderWrite(name=self._options.webhook_header, value=secret)],
        )
        try:
            await self._client.request("PUT", "/v2/webhook", json=body.wire(), idempotent=True)
        except CredentialsError as exc:
            if exc.status == 403:
                raise CredentialsError(
                    "NinjaOne allows only system administrators to configure webhooks: give the API "
                    "client's account that role",
                    field="credentials",
                    status=403,
                ) from None
            raise

    # -- actions ---------------------------------------------------------------------------------

    def _script_for(self, action: ActionKind) -> tuple[int, str | None]:
        if action not in ACTIONS:
            raise UnsupportedActionError(f"NinjaOne runs no {action.value!r} action", field="action")
        id_option, parameters_option = SCRIPT_OPTIONS[action]
        script = getattr(self._options, id_option)
        if script is None:
            raise UnsupportedActionError(
                f"no NinjaOne script is configured for {action.value!r}; "
                f"set the connection option {id_option}",
                field=id_option,
            )
        return int(script), getattr(self._options, parameters_option)

    async def run_action(self, endpoint_id: str, action: ActionKind) -> ActionResult:
        """`POST /v2/device/{id}/script/run` with the configured script. NinjaOne queues the run and
        answers without a job handle; the outcome appears later as a SCRIPTING activity."""
        script_id, parameters = self._script_for(action)
        device = endpoint_id.strip()
        if not device.isdigit():
            raise VendorRequestError(
                f"NinjaOne device ids are numbers, got {endpoint_id!r}", field="endpoint_id"
            )
        body = RunScriptWrite(type="SCRIPT", id=script_id, parameters=parameters, runAs=self._options.run_as)
        try:
            await self._client.request(
                "POST", f"/v2/device/{int(device)}/script/run", json=body.wire(), idempotent=False
            )
        except NotFoundError as exc:
            return ActionResult(accepted=False, message=f"NinjaOne: {exc.message}")
        return ActionResult(
            accepted=True,
            vendor_reference=f"script:{script_id}:device:{int(device)}",
            message=f"script {script_id} queued on device {int(device)}",
        )


def _read(model: type[Any], row: Mapping[str, Any]) -> Any:
    try:
        return model.model_validate(row)
    except ValidationError:
        log.warning(
            "NinjaOne %s row for device %s skipped: unreadable", model.__name__, row.get("deviceId", "?")
        )
        return None


def _device_type(node_class: str | None) -> str | None:
    value = (node_class or "").upper()
    if not value:
        return None
    if "SERVER" in value:
        return "server"
    if "WORKSTATION" in value or value in ("MAC", "LINUX_WORKSTATION"):
        return "workstation"
    return value.lower()


def create_adapter(ctx: ConnectionContext) -> NinjaOneAdapter:
    return NinjaOneAdapter(ctx)


__all__ = [
    "ACTIONS",
    "NinjaOneAdapter",
    "api_base",
    "create_adapter",
    "epoch",
    "parse_ninja_error",
]
