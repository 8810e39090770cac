"""N-able N-sight RMM (formerly SolarWinds RMM / MAXfocus / GFI MAX) adapter over the Data Extraction API.

Sources:
- vendor-notes/rmm.md §3 (URL form, regional servers, the 90-second frequency rule, CDATA names,
  ISO-8859-1, single-item lists, MAV calls, no outbound webhook).
- N-able documentation, https://documentation.n-able.com/remote-management/userguide/Content/ :
  data_extraction_api.htm; devices.htm (list_clients with server_count/workstation_count);
  listing_sites.htm (list_sites: siteid, name, ...); listing_workstations_.htm (list_workstations:
  workstationid, name, os, online, last_boot_time, utc_apt, ...); listing_failing_checks.htm and
  listing_failing_checks_2.htm (list_failing_checks, `clientid` "suggested" for large accounts,
  `check_type=random|checks|tasks`, 1023 = Windows Automated Task); listing_checks_.htm (check fields
  checkid, check_type, description, utc_run, consecutive_fails); managed_antivirus2.htm (mav_scan_start,
  mav_definitions_update, list_mav_scans are per device); api_mav_definitions_update.htm (the
  `status="FAIL"` + `<msg>` failure shape). Same pages at developer.n-able.com/n-sight/docs/.
- Not in the official pages and taken from public client code, so lenient here: `serverid` as the
  server's id element (mirrors the documented `workstationid`; `id`/`deviceid` also accepted), the
  failing-checks nesting items/client/site/{servers/server|workstations/workstation}/failed_checks/check
  with `<id>`/`<name>` on the device (a public PHP wall-chart and a Python client's fixtures).

Requests and limits
-------------------
`GET {server}/api/?apikey=…&service=…`. There is no paging; the narrowest documented listings are per
site, so a full pass costs 1 (list_clients) + 2 per client (list_sites, list_failing_checks) + up to 2
per site (list_servers, list_workstations — skipped when the client's count for that kind is 0) + 2
per listed device (list_mav_scans, list_mav_threats: the antivirus state exists only per device;
option `managed_antivirus: false` drops them). N-able asks for no automated call more often than every
90 seconds: the core's schedule must respect that; this adapter adds per-connection concurrency
(default 2) and the shared client's retries with Retry-After.

Antivirus state and online
--------------------------
The device listings carry no antivirus field. Each listed device's Managed Antivirus answers give
the product ("Managed Antivirus (Bitdefender)" / "(VIPRE)" after option `mav_engine`), the last
finished scan and the active threats (see `antivirus.py`); a device reporting no scan and no threat
has no Managed Antivirus: unknown by default (it may run another antivirus N-sight does not report,
and an unknown raises no ticket), unprotected with option `without_mav: unprotected` (an account
that runs Managed Antivirus on every device). Real-time protection is off
while a security check of the device fails as "protection disabled" (`list_failing_checks` for the
client, read once per client during the listing), else on. A device whose MAV answers cannot be read
keeps None for every antivirus field (unknown, never "fine").
`online` is not taken from the listings' `<online>` flag: a real dashboard reports `<online>1` for
devices that are offline (specs/rmm/samples/nsight/workstation_item_python_nableapi.json). A device is
offline when `<online>` is 0 or the client's failing checks list it with an `<offline>` element
(failing_checks_client_fixture.xml), online when they were read and do not; None when they could not
be read.

Incremental reads
-----------------
The API has no "changed since" filter. `iter_endpoint_pages(changed_since)` still reads every site,
then keeps devices whose last contact (`utc_apt`, the agent's last upload time as far as the field name
and the empty value on a never-seen device suggest; not verified on a tenant) or last boot
(`last_boot_time`) is at or after the cursor; a device with neither timestamp is always kept.

Alerts (poll only; N-sight has no webhook)
-----------------------------------------
`poll_alerts` reads `list_failing_checks&check_type=checks` per client (or once for the account, plus
`list_clients` to name the clients it covers) and returns a snapshot: one `active` event per failing
security check (see `alerts.py`), every poll, with the stable id `nsight:{device}:{check}`, and
`complete_for` naming every client whose failing checks were read. A check that stopped failing is
simply absent; the core clears the open polled problems a complete poll no longer lists, so the
adapter remembers nothing between polls and a rebuilt adapter answers the same. A client whose
failing checks could not be read is listed in `last_failures` and left out of `complete_for` (its
problems stay as they are). `since` does not filter: the API reports current state, not a change log.

Webhooks: N-sight sends none. The canonical alert, which an N-sight script can post, is parsed by the
core; `parse_webhook` knows no other format and returns nothing.

Malformed responses
-------------------
A device without its id or name is skipped with a warning naming the site, device and field (and, when
its id is known, reported in its page's `skipped`); an unreadable optional field becomes None with a
warning. XML that cannot be parsed (truncated, DTD or
entity declarations refused by defusedxml) is re-requested `malformed_retries` times; if it stays
unreadable that client/site is skipped, the remaining sites are still yielded, and
`NsightIncompleteListingError` (a TransientVendorError naming every failed site) is raised at the end.

Secrets: the API key is a query parameter. Errors and warnings name the service and scope, never the
URL; the shared client logs URLs without their query string, and the `httpx` logger gets a filter that
masks `apikey=` in its request lines.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from xml.etree.ElementTree import Element

import httpx

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
    WebhookRequest,
)
from adapters.common import settings_as
from adapters.errors import (
    ConfigurationError,
    CredentialsError,
    NotFoundError,
    RateLimitedError,
    UnsupportedActionError,
    VendorRequestError,
)
from adapters.http import VendorHttpClient
from adapters.nsight import alerts
from adapters.nsight.antivirus import MavState, mav_state, product_name
from adapters.nsight.models import (
    NsightClient,
    NsightCredentials,
    NsightDevice,
    NsightOptions,
    NsightSite,
    ParseReport,
)
from adapters.nsight.parsing import (
    NsightIncompleteListingError,
    NsightMalformedResponseError,
    check_result,
    failure_message,
    parse_clients,
    parse_devices,
    parse_failing_checks,
    parse_mav_scans,
    parse_mav_threats,
    parse_offline_devices,
    parse_sites,
    parse_xml,
)

log = logging.getLogger("adapters.nsight")

API_PATH = "/api/"
ACTION_SERVICES: Mapping[ActionKind, str] = {
    ActionKind.SCAN: "mav_scan_start",
    ActionKind.UPDATE_DEFINITIONS: "mav_definitions_update",
}
ACTIONS = frozenset(ACTION_SERVICES)
"""Managed Antivirus calls; agent deployment has none."""
REFUSALS: Mapping[ActionKind, str] = {
    ActionKind.DEPLOY_AGENT: "N-sight's Data Extraction API has no call that installs an agent or a "
    "protection product; deploy from the dashboard (site installer, Download Agent, or Managed "
    "Antivirus in the device's monitoring policy)",
}
_APIKEY_IN_TEXT = re.compile(r"(apikey=)[^&\s\"']+", re.I)


class _RedactApiKey(logging.Filter):
    """Masks `apikey=` values in records of the logger it is attached to (httpx logs full URLs)."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a broken record is not ours to fix
            return True
        if "apikey=" in message.lower():
            record.msg = _APIKEY_IN_TEXT.sub(r"\1[redacted]", message)
            record.args = None
        return True


def install_log_redaction() -> None:
    logger = logging.getLogger("httpx")
    if not any(isinstance(f, _RedactApiKey) for f in logger.filters):
        logger.addFilter(_RedactApiKey())


def parse_http_error(response: httpx.Response) -> tuple[str, str | None]:
    """Error body of a non-2xx response: the XML `<msg>` when there is one, else a short text."""
    try:
        root = parse_xml(response.content, "error body")
        return (failure_message(root), None)
    except NsightMalformedResponseError:
        text = _APIKEY_IN_TEXT.sub(r"\1[redacted]", response.text.strip())
        return (text[:200] or response.reason_phrase or f"HTTP {response.status_code}", None)


@dataclass(frozen=True)
class _ClientChecks:
    """What a client's failing checks say about its devices during a listing."""

    offline: frozenset[str]
    protection_off: frozenset[str]


def _changed(device: NsightDevice, since: datetime | None) -> bool:
    if since is None:
        return True
    if since.tzinfo is None:
        since = since.replace(tzinfo=UTC)
    stamps = [t for t in (device.last_contact_at, device.last_boot_at) if t is not None]
    return not stamps or max(stamps) >= since


class NsightAdapter:
    """RmmAdapter for N-sight RMM's Data Extraction API (XML over HTTPS GET)."""

    def __init__(self, ctx: ConnectionContext) -> None:
        credentials = settings_as(NsightCredentials, ctx.credentials)
        options = settings_as(NsightOptions, ctx.options)
        base = (ctx.base_url or "").strip().rstrip("/")
        if not base:
            raise ConfigurationError("the N-sight regional server URL is required", field="base_url")
        if "://" not in base:
            base = "https://" + base
        base = re.sub(r"/api$", "", base)
        self._credentials: NsightCredentials = credentials
        self._options: NsightOptions = options
        self._sleep: Callable[[float], Awaitable[None]] = ctx.sleep or asyncio.sleep
        self._client = VendorHttpClient(
            base,
            headers={"Accept": "text/xml, application/xml"},
            error_parser=parse_http_error,
            max_concurrency=options.max_concurrency,
            budget=ctx.budget,
            transport=ctx.transport_factory(base),
            sleep=self._sleep,
        )
        self.last_report = ParseReport()
        self.last_failures: list[str] = []
        install_log_redaction()

    @property
    def request_count(self) -> int:
        return self._client.request_count

    async def aclose(self) -> None:
        await self._client.aclose()

    # -- transport ---------------------------------------------------------------------------

    def _params(self, service: str, params: Mapping[str, str]) -> dict[str, str]:
        return {"apikey": self._credentials.api_key.get_secret_value(), "service": service, **params}

    async def _call(self, service: str, params: Mapping[str, str], where: str) -> Element:
        response = await self._client.request("GET", API_PATH, params=self._params(service, params))
        return check_result(parse_xml(response.content, where), service, where)

    async def _read(self, service: str, params: Mapping[str, str], where: str) -> Element:
        """`_call`, re-requesting unreadable XML (often a cut-off transfer) a few times."""
        attempt = 0
        while True:
            try:
                return await self._call(service, params, where)
            except NsightMalformedResponseError as exc:
                if attempt >= self._options.malformed_retries:
                    raise
                attempt += 1
                log.warning("N-sight %s for %s unreadable (%s); asking again", service, where, exc.message)
                await self._sleep(self._client.retry.backoff(attempt))

    @staticmethod
    def _log_skipped(report: ParseReport, start: int) -> None:
        for line in report.skipped[start:]:
            log.warning("N-sight item skipped: %s", line)

    async def _clients(self, report: ParseReport) -> list[NsightClient]:
        mark = len(report.skipped)
        clients = parse_clients(await self._read("list_clients", {}, "list_clients"), report)
        self._log_skipped(report, mark)
        return clients

    # -- RmmAdapter ---------------------------------------------------------------------------

    async def test_connection(self) -> None:
        await self._call("list_clients", {}, "list_clients")

    async def list_clients(self) -> AsyncIterator[RmmClient]:
        for client in await self._clients(ParseReport()):
            yield RmmClient(id=client.id, name=client.name)

    def _status(
        self,
        device: NsightDevice,
        client: NsightClient,
        site: NsightSite,
        checks: _ClientChecks | None,
        mav: MavState | None,
    ) -> EndpointStatus:
        online: bool | None
        if device.online is False:
            online = False  # `<online>0` is believable; `<online>1` is not (module docstring)
        else:
            online = None if checks is None else device.id not in checks.offline
        product: str | None = None
        protection: bool | None = None
        last_scan: datetime | None = None
        threats: int | None = None
        if mav is not None and mav.installed:
            product = product_name(self._options.mav_engine)
            protection = None if checks is None else device.id not in checks.protection_off
            last_scan, threats = mav.last_scan_at, mav.active_threats
        elif mav is not None and self._options.without_mav == "unprotected":
            protection = False
        return EndpointStatus(
            endpoint_id=device.id,
            client_id=client.id,
            client_name=client.name,
            site_id=site.id,
            hostname=device.name,
            serial_number=device.serial_number,
            os_name=device.os,
            device_type=device.kind,
            product=product,
            protection_enabled=protection,
            last_scan_at=last_scan,
            active_threats=threats,
            online=online,
            last_seen_at=device.last_contact_at,
        )

    async def _client_checks(self, client: NsightClient, report: ParseReport) -> _ClientChecks | None:
        """The client's failing checks (all types, so `<offline>` devices are included); None, with
        a warning, when they cannot be read (online and protection then stay unknown)."""
        where = f"failing checks of client {client.id} ({client.name})"
        try:
            root = await self._read("list_failing_checks", {"clientid": client.id}, where)
        except (NsightMalformedResponseError, NotFoundError, VendorRequestError) as exc:
            log.warning("N-sight %s could not be read: %s", where, exc)
            report.skipped.append(f"{where}: unreadable ({exc}); online and protection unknown")
            return None
        mark = len(report.skipped)
        failing = parse_failing_checks(root, report)
        self._log_skipped(report, mark)
        protection_off = frozenset(
            c.device_id
            for c in failing
            if c.client_id == client.id
            and alerts.is_security_check(c, self._options.security_check_types)
            and alerts.problem_for(c) is ProblemKind.PROTECTION_DISABLED
        )
        return _ClientChecks(offline=frozenset(parse_offline_devices(root)), protection_off=protection_off)

    async def _mav(self, device: NsightDevice, where: str, report: ParseReport) -> MavState | None:
        """The device's Managed Antivirus state; None (antivirus fields unknown) when unreadable."""
        engine = str(self._options.mav_engine)
        scope = f"{where} {device.kind} {device.id} ({device.name})"
        try:
            scans = await self._read(
                "list_mav_scans", {"deviceid": device.id, "details": "NO", "v": engine}, scope
            )
            threats = await self._read("list_mav_threats", {"deviceid": device.id, "v": engine}, scope)
        except (NsightMalformedResponseError, NotFoundError, VendorRequestError) as exc:
            line = f"{scope}: field managed_antivirus unreadable ({exc}); antivirus state unknown"
            log.warning("N-sight item skipped: %s", line)
            report.skipped.append(line)
            return None
        state = mav_state(parse_mav_scans(scans), parse_mav_threats(threats))
        if state.unknown_statuses:
            log.warning(
                "N-sight %s: threat status %s not recognised, counted as active",
                scope,
                ", ".join(state.unknown_statuses),
            )
        return state

    async def _site_page(
        self,
        client: NsightClient,
        site: NsightSite,
        since: datetime | None,
        report: ParseReport,
        checks: _ClientChecks | None,
    ) -> EndpointPage:
        where = f"site {site.id} ({site.name}) of client {client.id} ({client.name})"
        page = EndpointPage(statuses=[])
        for kind, count in (("server", client.server_count), ("workstation", client.workstation_count)):
            if count == 0:
                continue
            root = await self._read(f"list_{kind}s", {"siteid": site.id}, where)
            mark, unreadable = len(report.skipped), len(report.devices)
            devices = parse_devices(root, "server" if kind == "server" else "workstation", where, report)
            self._log_skipped(report, mark)
            changed = [d for d in devices if _changed(d, since)]
            states: list[MavState | None] = [None] * len(changed)
            if self._options.managed_antivirus:
                states = list(await asyncio.gather(*(self._mav(d, where, report) for d in changed)))
            page.statuses.extend(
                self._status(d, client, site, checks, state) for d, state in zip(changed, states, strict=True)
            )
            page.skipped.extend(report.devices[unreadable:])
        return page

    async def iter_endpoint_pages(self, changed_since: datetime | None) -> AsyncIterator[EndpointPage]:
        """One page per site (see the module docstring for filtering and partial failures)."""
        report = ParseReport()
        failures: list[str] = []
        self.last_report, self.last_failures = report, failures
        for client in await self._clients(report):
            where = f"client {client.id} ({client.name})"
            try:
                mark = len(report.skipped)
                root = await self._read("list_sites", {"clientid": client.id}, where)
                sites = parse_sites(root, client.id, report)
                self._log_skipped(report, mark)
            except (NsightMalformedResponseError, NotFoundError) as exc:
                log.error("N-sight sites of %s could not be read: %s", where, exc)
                failures.append(f"{where}: {exc}")
                continue
            checks = await self._client_checks(client, report) if sites else None
            for site in sites:
                try:
                    page = await self._site_page(client, site, changed_since, report, checks)
                except (NsightMalformedResponseError, NotFoundError) as exc:
                    scope = exc.field or f"site {site.id}"
                    log.error("N-sight devices of %s could not be read: %s", scope, exc.message)
                    failures.append(f"{scope}: {exc.message}")
                    continue
                if page.statuses or page.skipped:
                    yield page
        if failures:
            raise NsightIncompleteListingError(failures)

    def verify_webhook(self, request: WebhookRequest, secret: str) -> bool | None:
        return None

    def parse_webhook(self, request: WebhookRequest) -> list[AlertEvent]:
        """N-sight has no webhook format of its own (see the module docstring)."""
        return []

    async def poll_alerts(self, since: datetime | None) -> PolledAlerts:
        """Snapshot of failing security checks, complete for the clients read (see the module
        docstring)."""
        now = datetime.now(UTC)
        report = ParseReport()
        failures: list[str] = []
        self.last_report, self.last_failures = report, failures
        clients = await self._clients(report)
        scopes: list[tuple[frozenset[str], dict[str, str], str]]
        if self._options.failing_checks_scope == "per_client":
            scopes = [
                (frozenset({c.id}), {"clientid": c.id, "check_type": "checks"}, f"client {c.id} ({c.name})")
                for c in clients
            ]
        else:
            scopes = [(frozenset(c.id for c in clients), {"check_type": "checks"}, "account")]
        events: list[AlertEvent] = []
        complete: set[str] = set()
        for scope, params, where in scopes:
            try:
                root = await self._read("list_failing_checks", params, where)
            except (NsightMalformedResponseError, NotFoundError) as exc:
                log.error("N-sight failing checks of %s could not be read: %s", where, exc)
                failures.append(f"{where}: {exc}")
                continue
            mark = len(report.skipped)
            checks = parse_failing_checks(root, report)
            self._log_skipped(report, mark)
            found: dict[str, AlertEvent] = {}
            for check in checks:
                if check.client_id not in scope:
                    continue
                if alerts.is_security_check(check, self._options.security_check_types):
                    event = alerts.active_event(check, now)
                    found[event.event_id] = event
            events.extend(found.values())
            complete |= scope
        return PolledAlerts(events=events, complete_for=frozenset(complete))

    async def run_action(self, endpoint_id: str, action: ActionKind) -> ActionResult:
        """SCAN → mav_scan_start, UPDATE_DEFINITIONS → mav_definitions_update (Managed Antivirus
        only); a `status="FAIL"` answer (e.g. "There is already a MAV definition update pending")
        is a refused action, not an exception. Agent deployment has no API call."""
        service = ACTION_SERVICES.get(action)
        if service is None:
            raise UnsupportedActionError(
                f"N-sight's API has no call for {action.value!r}: "
                + REFUSALS.get(action, "not a Managed Antivirus action"),
                field="action",
            )
        device = endpoint_id.strip()
        if not device.isdigit():
            raise VendorRequestError(
                f"N-sight device ids are numbers, got {endpoint_id!r}", field="endpoint_id"
            )
        where = f"{service} on device {device}"
        response = await self._client.request(
            "GET", API_PATH, params=self._params(service, {"deviceid": device}), idempotent=False
        )
        root = parse_xml(response.content, where)
        try:
            check_result(root, service, where)
        except (CredentialsError, RateLimitedError):
            raise
        except NotFoundError as exc:
            raise NotFoundError(
                f"N-sight does not know device {device}: {exc.message}", field="endpoint_id"
            ) from None
        except VendorRequestError:
            message = failure_message(root)
            log.info("N-sight refused %s: %s", where, message)
            return ActionResult(accepted=False, message=message)
        message = (root.findtext("msg") or "").strip()
        return ActionResult(accepted=True, message=message or f"{service} requested")


def create_adapter(ctx: ConnectionContext) -> NsightAdapter:
    return NsightAdapter(ctx)


__all__ = ["ACTIONS", "ACTION_SERVICES", "API_PATH", "REFUSALS", "NsightAdapter", "create_adapter"]
