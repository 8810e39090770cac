"""ConnectWise Automate (formerly LabTech) REST adapter: clients, locations, computers with their
antivirus state, alerts, and scripts run as actions.

Sources (vendor-notes/rmm.md §1 and the files it cites):
- Base `https://{server}/cwa/api/v1` (HealthITAU/pyconnectwise `clients/automate_client.py`;
  asachs01/node-connectwise-automate `src/http.ts`).
- Token: `POST /cwa/api/v1/apitoken` with `{"Username", "Password"[, "TwoFactorPasscode"]}` and the
  `ClientId` header → `TokenResult` (`AccessToken`, `ExpirationDate`, `IsTwoFactorRequired`, ...); with
  2FA on and no passcode the answer is 200 with an empty `AccessToken` (pyconnectwise
  `Contracts/Security.py`; node lib `src/auth.ts`; gavsto/AutomateAPI `Connect-AutomateAPI.ps1`).
  Every call carries `Authorization: Bearer …` and `ClientId` (mandatory since Automate 2020.11,
  gavsto/AutomateAPI PR #47). Tokens last about an hour (AutomateAPI docs); long runs that do not
  renew fail mid-way (gavsto/AutomateAPI issue #11).
- Lists: `page` (1-based), `pageSize` (at most 1000), `condition`, `orderBy`, `includeFields`; the
  answer is a bare JSON array without a count, so a short page is the last one (node lib
  `src/pagination.ts`, pyconnectwise `types.py`); condition grammar in `conditions.py`.
- Computer fields `Id`, `ComputerName`, `Client{Id,Name}`, `Location{Id,Name}`, `Status`
  ("Online"/"Offline"), `Type`, `OperatingSystemName`, `SerialNumber`, `RemoteAgentLastContact`,
  `VirusScanner{Id,Name}`, `AntivirusDefinitionDate` (node lib `src/types/computers.ts`); the
  incremental filter `RemoteAgentLastContact >= …` follows AutomateAPI `Get-AutomateComputer.ps1`.
- Alerts: read-only `GET /Alerts` rows `{AlertId, Client, Computer, Monitor, AlertDate, Severity,
  Source, Message, FieldName}` (pyconnectwise `Contracts/Alerts.py`); no outbound webhook exists.
- Scripts: `POST /Batch/ScriptExecute` `{EntityType: "Computer", EntityIds, ScriptId, Parameters:
  [{Key, Value}], OfflineActionFlags}` → `{ScriptResults: [{EntityId, ResultDetails{ResultStatus,
  ReasonCode, Message}}], ContainsUnsuccessfulResults}` (pyconnectwise `Contracts/BatchScripts.py`;
  node lib `src/types/scripts.ts`). The run's outcome only appears later in
  `/Computers/{id}/ScriptHistory`; there is no job handle.
- Errors are ASP.NET Web API bodies, `{"Message": …}` with an optional `ModelState` (node lib
  `src/http.ts`). Public scripts treat 400, 401 and 403 from the token route alike as refused
  credentials, so the adapter does too.

Status mapping (Automate reports no real-time protection state, last scan or threat count on a
computer): `product` = `VirusScanner.Name`; a computer without a detected scanner reports
no protection state (→ unknown: an empty or unrecognised `VirusScanner` may be a product Automate
does not detect) unless `missing_scanner_means_unprotected` is on (then → not_protected);
`definitions_date` = `AntivirusDefinitionDate`; `online` = `Status == "Online"`; `last_seen_at` =
`RemoteAgentLastContact`. Timestamps without an offset are read in `options.server_timezone`.

Incremental reads: there is no modified-since field on computers. `iter_endpoint_pages(since)` asks
for computers whose `changed_since_fields` (default `RemoteAgentLastContact`) are at or after the
cursor; an agent only reports new antivirus data when it checks in, so this misses nothing but the
Online→Offline flip of an agent that stopped checking in before the cursor, which the core's
offline check (age of `last_seen_at`) and its daily full pass cover.

Malformed data: a computer row that cannot be read, or has no `Id` or `Client.Id`, is skipped with a
warning and reported in its page's `skipped` (with the field; `?` as the id when there is none).

Alerts: `poll_alerts(since)` reads `/Alerts` with `AlertDate >= since` (plus `alert_condition`) and
returns an active event per security alert (see `alerts.py`); Automate's API shows no cleared state,
so clears come from status observations or from a template posting `Status: Success`. The alerts
since a time are not a snapshot of what is open, so the poll is complete for no client.

Actions (`ACTIONS`): scan, definitions update and agent deployment, each a script the connection's
options name (`deploy_script_id`: a script that installs the security product's agent, e.g. an MSI
from the Automate share); an action whose script is not configured raises `UnsupportedActionError`
naming the option.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
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
from adapters.common import BearerToken, TokenCache, server_root, settings_as
from adapters.connectwise_automate import alerts
from adapters.connectwise_automate import conditions as cond
from adapters.connectwise_automate.models import (
    AlertRead,
    AutomateCredentials,
    AutomateOptions,
    ClientRead,
    ComputerRead,
    KeyValue,
    LocationRead,
    OfflineFlags,
    Ref,
    ScriptBatchResponseRead,
    ScriptExecuteWrite,
    TokenCredentialsWrite,
    TokenResultRead,
)
from adapters.errors import (
    CredentialsError,
    TransientVendorError,
    UnsupportedActionError,
    VendorRequestError,
)
from adapters.http import VendorHttpClient

log = logging.getLogger("adapters.connectwise_automate")

API_PATH = "/cwa/api/v1"
TOKEN_PATH = "/apitoken"
COMPUTER_FIELDS = (
    "Id",
    "ComputerName",
    "Client",
    "Location",
    "Status",
    "Type",
    "OperatingSystemName",
    "SerialNumber",
    "RemoteAgentLastContact",
    "VirusScanner",
    "AntivirusDefinitionDate",
)
FALLBACK_TOKEN_LIFETIME = timedelta(minutes=10)
"""Used when `ExpirationDate` is missing or already past by our clock (server clock or zone skew):
short, so a renewal comes early; a 401 renews anyway."""
MAX_PAGES = 100_000
ACTIONS = frozenset({ActionKind.SCAN, ActionKind.UPDATE_DEFINITIONS, ActionKind.DEPLOY_AGENT})
"""What this adapter runs: a configured script each (`POST /Batch/ScriptExecute`)."""
_SCRIPT_OPTIONS: dict[ActionKind, tuple[str, str]] = {
    ActionKind.SCAN: ("scan_script_id", "scan_script_parameters"),
    ActionKind.UPDATE_DEFINITIONS: ("definitions_script_id", "definitions_script_parameters"),
    ActionKind.DEPLOY_AGENT: ("deploy_script_id", "deploy_script_parameters"),
}

M = TypeVar("M", bound=BaseModel)


# ---------------------------------------------------------------------------------------------
# Pure helpers
# ---------------------------------------------------------------------------------------------


def api_base(base_url: str) -> str:
    """`https://host[/prefix]` or a URL already ending in /cwa/api/v1 → the v1 API base."""
    return server_root(base_url, vendor="Automate", suffixes=("/cwa/api/v1", "/cwa/api", "/cwa")) + API_PATH


def parse_time(value: str | None, tz: tzinfo = UTC) -> datetime | None:
    """An Automate timestamp → aware UTC; offset-less values are in the server's zone. Zero/min dates
    (.NET `0001-01-01`, MySQL `0000-00-00`) mean "never"."""
    if value is None:
        return None
    text = str(value).strip()
    if not text:
        return None
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        return None
    if when.year < 1971:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=tz)
    return when.astimezone(UTC)


def parse_automate_error(response: httpx.Response) -> tuple[str, str | None]:
    """ASP.NET error body → (message, field): `Message`, `MessageDetail`, `ModelState`, `Errors`."""
    try:
        body = response.json()
    except ValueError:
        text = response.text.strip()
        return (text[:300] or response.reason_phrase or f"HTTP {response.status_code}", None)
    if not isinstance(body, dict):
        return (str(body)[:300], None)
    lowered = {str(k).lower(): v for k, v in body.items()}
    message = str(lowered.get("message") or lowered.get("error") or f"HTTP {response.status_code}")
    field: str | None = None
    details: list[str] = []
    if lowered.get("messagedetail"):
        details.append(str(lowered["messagedetail"]))
    if lowered.get("exceptionmessage"):
        details.append(str(lowered["exceptionmessage"]))
    model_state = lowered.get("modelstate")
    if isinstance(model_state, dict):
        for key, messages in model_state.items():
            name = str(key).split(".", 1)[-1] if str(key).startswith(("request.", "model.")) else str(key)
            field = field or name or None
            items = messages if isinstance(messages, list) else [messages]
            details.extend(f"{name}: {m}" for m in items)
    errors = lowered.get("errors")
    if isinstance(errors, list):
        for item in errors:
            if isinstance(item, dict):
                low = {str(k).lower(): v for k, v in item.items()}
                field = field or (str(low["field"]) if low.get("field") else None)
                if low.get("message"):
                    details.append(str(low["message"]))
    if details:
        message = f"{message} ({'; '.join(details)})"
    return (message[:500], field)


def _online(status: str | None) -> bool | None:
    value = (status or "").strip().lower()
    if value == "online":
        return True
    if value == "offline":
        return False
    return None


# ---------------------------------------------------------------------------------------------
# The adapter
# ---------------------------------------------------------------------------------------------


class ConnectWiseAutomateAdapter:
    """RmmAdapter for the ConnectWise Automate REST API v1."""

    def __init__(self, ctx: ConnectionContext) -> None:
        credentials = settings_as(AutomateCredentials, ctx.credentials)
        options = settings_as(AutomateOptions, ctx.options)
        self._credentials: AutomateCredentials = credentials
        self._options: AutomateOptions = options
        self._tz: tzinfo = ZoneInfo(options.server_timezone)
        self._sleep: Callable[[float], Awaitable[None]] = ctx.sleep or asyncio.sleep
        clock = ctx.extra.get("clock")
        self._clock: Callable[[], datetime] = clock if callable(clock) else (lambda: datetime.now(UTC))
        self.api_base = api_base(ctx.base_url)
        self._client = VendorHttpClient(
            self.api_base,
            headers={
                "ClientId": credentials.client_id.get_secret_value(),
                "Accept": "application/json",
            },
            auth_headers=lambda force: self._tokens.headers(force),
            error_parser=parse_automate_error,
            max_concurrency=options.max_concurrency,
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
        creds = self._credentials
        body = TokenCredentialsWrite(
            Username=creds.username,
            Password=creds.password.get_secret_value(),
            TwoFactorPasscode=(
                creds.two_factor_passcode.get_secret_value().replace(" ", "")
                if creds.two_factor_passcode
                else None
            ),
        )
        self.token_requests += 1
        try:
            response = await self._client.request(
                "POST", TOKEN_PATH, json=body.wire(), authenticated=False, idempotent=True
            )
        except (CredentialsError, VendorRequestError) as exc:
            raise CredentialsError(
                f"Automate refused the credentials or ClientId: {exc.message}",
                field="credentials",
                status=exc.status,
            ) from None
        try:
            result = TokenResultRead.model_validate(response.json())
        except (ValueError, ValidationError):
            raise TransientVendorError("the token answer is not a TokenResult") from None
        if not result.AccessToken:
            if result.IsTwoFactorRequired or result.IsInternalTwoFactorRequired:
                raise CredentialsError(
                    "this Automate user requires a two-factor passcode; use an integrator user (no 2FA)",
                    field="two_factor_passcode",
                )
            raise CredentialsError("Automate issued no access token", field="credentials")
        expires = parse_time(result.ExpirationDate, self._tz)
        if expires is None or expires <= now:
            expires = now + FALLBACK_TOKEN_LIFETIME
        return BearerToken(value=result.AccessToken, expires_at=expires)

    # -- reading ---------------------------------------------------------------------------------

    async def _pages(
        self,
        path: str,
        *,
        condition: str | None = None,
        order_by: str | None = "Id asc",
        include_fields: tuple[str, ...] | None = None,
        page_size: int | None = None,
    ) -> AsyncIterator[list[dict[str, Any]]]:
        """Every page of a list route; the condition and ordering go on every page."""
        size = page_size or self._options.page_size
        previous_first: Any = None
        for page in range(1, MAX_PAGES + 1):
            params: dict[str, Any] = {"page": page, "pageSize": size}
            if condition:
                params["condition"] = condition
            if order_by:
                params["orderBy"] = order_by
            if include_fields:
                params["includeFields"] = ",".join(include_fields)
            try:
                data = await self._client.get_json(path, params=params)
            except VendorRequestError as exc:
                if exc.field is None and condition:
                    raise VendorRequestError(
                        f"{path} refused the condition {condition!r}: {exc.message}",
                        field="condition",
                        status=exc.status,
                    ) from None
                raise
            if data is None:
                data = []
            if not isinstance(data, list):
                raise TransientVendorError(f"{path} page {page} is not a JSON array")
            rows = [row for row in data if isinstance(row, dict)]
            if rows and page > 1 and rows[0] == previous_first:
                raise TransientVendorError(f"{path} returned page {page - 1} again: paging is not honoured")
            previous_first = rows[0] if rows else None
            yield rows
            if len(data) < size:
                return
        raise TransientVendorError(f"{path} has more than {MAX_PAGES} pages")

    @staticmethod
    def _parse(model: type[M], row: Mapping[str, Any], what: str) -> M | None:
        try:
            return model.model_validate(row)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            log.warning("Automate %s %s skipped: %s: %s", what, row.get("Id", "?"), where, first["msg"])
            return None

    def _computer_status(self, row: Mapping[str, Any]) -> EndpointStatus | SkippedEndpoint:
        """A `/Computers` row → its status, or what made it unreadable."""
        try:
            computer = ComputerRead.model_validate(row)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or "computer"
            log.warning("Automate computer %s skipped: %s: %s", row.get("Id", "?"), where, first["msg"])
            return SkippedEndpoint(endpoint_id=str(row.get("Id") or "?"), field=where, message=first["msg"])
        status = self.endpoint_status(computer)
        if status is not None:
            return status
        missing = "Id" if not computer.Id else "Client.Id"
        return SkippedEndpoint(endpoint_id=computer.Id or "?", field=missing, message="missing")

    async def test_connection(self) -> None:
        """A fresh token, then one page of one computer."""
        await self._tokens.get(force=True)
        await self._client.get_json("/Computers", params={"page": 1, "pageSize": 1, "includeFields": "Id"})

    async def list_clients(self) -> AsyncIterator[RmmClient]:
        async for rows in self._pages("/Clients"):
            for row in rows:
                client = self._parse(ClientRead, row, "client")
                if client is None or not client.Id:
                    continue
                yield RmmClient(id=client.Id, name=client.Name or client.Company or f"Client {client.Id}")

    async def list_locations(self) -> AsyncIterator[LocationRead]:
        """Locations (Automate's sites); `site_id` on endpoints refers to these."""
        async for rows in self._pages("/Locations"):
            for row in rows:
                location = self._parse(LocationRead, row, "location")
                if location is not None and location.Id:
                    yield location

    def changed_condition(self, since: datetime) -> str:
        return cond.or_(*(cond.compare(f, ">=", since, self._tz) for f in self._options.changed_since_fields))

    def endpoint_status(self, computer: ComputerRead) -> EndpointStatus | None:
        if not computer.Id or computer.Client is None or not computer.Client.Id:
            log.warning("Automate computer %s skipped: no Id or Client.Id", computer.Id or "?")
            return None
        product = scanner_product(computer.VirusScanner)
        # Automate reports a scanner only for the products it knows: an empty or unrecognised
        # VirusScanner says nothing about protection (unknown), unless the engineer says every
        # product in use is one Automate detects.
        protection: bool | None = None
        if product is None and self._options.missing_scanner_means_unprotected:
            protection = False
        return EndpointStatus(
            endpoint_id=computer.Id,
            client_id=computer.Client.Id,
            client_name=computer.Client.Name,
            site_id=computer.Location.Id if computer.Location else None,
            hostname=computer.ComputerName or computer.FriendlyName or f"computer-{computer.Id}",
            serial_number=(computer.SerialNumber or "").strip() or None,
            os_name=computer.OperatingSystemName,
            device_type=computer.Type.strip().lower() if computer.Type else None,
            product=product,
            protection_enabled=protection,
            definitions_date=parse_time(computer.AntivirusDefinitionDate, self._tz) if product else None,
            online=_online(computer.Status),
            last_seen_at=parse_time(computer.RemoteAgentLastContact, self._tz),
        )

    async def iter_endpoint_pages(self, changed_since: datetime | None) -> AsyncIterator[EndpointPage]:
        """One page per vendor page of computers (see the module docstring for the filter)."""
        condition = cond.and_(
            self._options.computer_condition,
            self.changed_condition(changed_since) if changed_since is not None else None,
        )
        include = COMPUTER_FIELDS if self._options.include_fields else None
        async for rows in self._pages("/Computers", condition=condition or None, include_fields=include):
            page = EndpointPage(statuses=[])
            for row in rows:
                read = self._computer_status(row)
                if isinstance(read, SkippedEndpoint):
                    page.skipped.append(read)
                else:
                    page.statuses.append(read)
            if page.statuses or page.skipped:
                yield page

    # -- alerts ----------------------------------------------------------------------------------

    def verify_webhook(self, request: WebhookRequest, secret: str) -> bool | None:
        """Automate signs nothing: the core's X-Connector-Signature / token check applies."""
        return None

    def parse_webhook(self, request: WebhookRequest) -> list[AlertEvent]:
        return alerts.parse_body(request, lambda value: parse_time(value, self._tz))

    async def poll_alerts(self, since: datetime | None) -> PolledAlerts:
        condition = cond.and_(
            self._options.alert_condition,
            cond.compare("AlertDate", ">=", since, self._tz) if since is not None else None,
        )
        now = self._clock()
        events: dict[str, AlertEvent] = {}
        async for rows in self._pages("/Alerts", condition=condition or None, order_by="AlertId asc"):
            for row in rows:
                alert = self._parse(AlertRead, row, "alert")
                if alert is None:
                    continue
                event = alerts.polled_event(alert, lambda v: parse_time(v, self._tz), now)
                if event is not None:
                    events[event.event_id] = event
        return PolledAlerts(events=list(events.values()))

    # -- actions ---------------------------------------------------------------------------------

    def _script_for(self, action: ActionKind) -> tuple[int, dict[str, str]]:
        opts = self._options
        if action not in ACTIONS:
            raise UnsupportedActionError(
                f"Automate runs no {action.value!r} through this connector; deploy agents with "
                "Automate's own installers",
                field="action",
            )
        option, params_option = _SCRIPT_OPTIONS[action]
        script: int | None = getattr(opts, option)
        params: dict[str, str] = getattr(opts, params_option)
        if script is None:
            raise UnsupportedActionError(
                f"no Automate script is configured for {action.value!r}; set the connection option {option}",
                field=option,
            )
        return script, params

    async def run_action(self, endpoint_id: str, action: ActionKind) -> ActionResult:
        """Runs the configured script on the computer via `POST /Batch/ScriptExecute`. A target the
        batch refuses (`ContainsUnsuccessfulResults`: unknown or offline computer, permissions) is
        `accepted=False` with Automate's message, not an exception. `ResultStatus` has no documented
        values, so it is only reported, never interpreted."""
        script_id, parameters = self._script_for(action)
        computer = endpoint_id.strip()
        if not computer.isdigit():
            raise VendorRequestError(
                f"Automate computer ids are numbers, got {endpoint_id!r}", field="endpoint_id"
            )
        body = ScriptExecuteWrite(
            EntityIds=[int(computer)],
            ScriptId=script_id,
            Parameters=[KeyValue(Key=k, Value=v) for k, v in parameters.items()] or None,
            OfflineActionFlags=OfflineFlags(SkipsOfflineAgents=self._options.skip_offline_agents),
        )
        response = await self._client.request(
            "POST", "/Batch/ScriptExecute", json=body.wire(), idempotent=False
        )
        try:
            result = ScriptBatchResponseRead.model_validate(response.json() if response.content else {})
        except (ValueError, ValidationError):
            result = ScriptBatchResponseRead()
        mine = [r for r in result.ScriptResults or [] if r.EntityId in (None, str(int(computer)))]
        details = mine[0].ResultDetails if mine else None
        refused = bool(result.ContainsUnsuccessfulResults)
        message = (details.Message if details and details.Message else "").strip()
        if refused:
            log.info("Automate refused script %s on computer %s: %s", script_id, computer, message)
            return ActionResult(accepted=False, message=message or "Automate refused the script run")
        return ActionResult(
            accepted=True,
            vendor_reference=f"script:{script_id}:computer:{int(computer)}",
            message=message or f"script {script_id} scheduled on computer {int(computer)}",
        )


def create_adapter(ctx: ConnectionContext) -> ConnectWiseAutomateAdapter:
    return ConnectWiseAutomateAdapter(ctx)


__all__ = [
    "ACTIONS",
    "API_PATH",
    "COMPUTER_FIELDS",
    "ConnectWiseAutomateAdapter",
    "api_base",
    "create_adapter",
    "parse_automate_error",
    "parse_time",
]


UNRECOGNISED_SCANNER_NAMES = frozenset({"", "none", "unknown", "not detected", "n/a", "no antivirus"})


def scanner_product(scanner: Ref | None) -> str | None:
    """The product name of a computer's `VirusScanner`, or None when it is empty (`null`, `{}`,
    Id 0) or names no product (`Unknown`, `None`, …)."""
    if scanner is None or scanner.Id in (None, "0"):
        return None
    name = (scanner.Name or "").strip()
    return None if name.casefold() in UNRECOGNISED_SCANNER_NAMES else name
