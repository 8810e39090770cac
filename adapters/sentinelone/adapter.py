"""SentinelOne (Management API 2.1) security-console adapter: sites as customers, agents with their
protection status, threats as the console classifies them, and licence use per site.

Sources:
- ../shared/specs/sentinelone/NOTES.md (base URL and auth, paging, agents, threats, sites,
  webhooks) and SOURCE.txt; the real payloads under ../shared/specs/sentinelone/samples/
  (`agents-v2.1-data-array.json`, `threats-v2.1-first-item.json`, from demisto/content's
  SentinelOne-V2 test data).
- The swagger-codegen client generated from the 2.1 swagger that NOTES.md names
  (Dirt-Diver/s1-api @ee6749a8: `api/docs/AgentsApi.md`, `ThreatsApi.md`, `SitesApi.md`,
  `SitesSiteResponseSchema200*.md`, `AgentsSchemasAgentViewSchemaMany200Data.md`, and the wire
  names in `api/src/api/*.js`), read through the search tools: `updatedAt__gt` / `isDecommissioned`
  on `GET /agents`, `resolved` / `updatedAt__gte` / `siteIds` on `GET /threats`, `siteIds` on
  `GET /sites`, list filters sent comma-separated, the `networkStatus` values
  (`connected|disconnected|connecting|disconnecting`), `isUpToDate` ("agent version is up to
  date"), `lastSuccessfulScanDate`, the site licence fields (`activeLicenses`, `totalLicenses`,
  `unlimitedLicenses`, `sku`, `licenses.bundles[].displayName`).
- Error bodies `{"errors": [{"code", "title", "detail"}]}` (code 4010010 "Authentication Failed")
  as public SentinelOne integrations handle them (search corpus `code`); the generated schemas
  carry the `errors` array on every answer.

Host and auth: the console host the engineer types (`https://<tenant>.sentinelone.net`, MSP
consoles such as `usea1-partners.sentinelone.net`), the API under `/web/api/v2.1`; every call
carries `Authorization: ApiToken <token>`. A refused token (401/403) is a `CredentialsError` on
field `credentials`; the token is static, so there is nothing to renew.

Paging: `limit` (1–1000, the option `page_size`, 1000 by default) and the `cursor` the previous
answer names in `pagination.nextCursor` (null on the last page), the filters sent again with it.

Rate limits: none are published (NOTES.md); a 429 is honoured through the shared HTTP layer
(`Retry-After` waited, retried, then `RateLimitedError` carrying it).

Customers: `GET /sites` → `data.sites[]`; sites in state `deleted` are left out. A site's
`externalId` ("Id of CRM external system") is proposed as the PSA company id under each PSA kind of
`options.external_id_psa_kinds`.

Agents: `GET /agents`, decommissioned agents left out (`isDecommissioned=false`, unless
`options.include_decommissioned`), changed-since as `updatedAt__gt`. Normalized:
`agent_id` = `id`, `customer_id` = `siteId`, `hostname` = `computerName`, `serial_number` =
`serialNumber`, `mac_addresses` = `networkInterfaces[].physical`, `os_name`, `device_type` =
`machineType`, `agent_version`, `protection_enabled` = false when the agent is decommissioned,
uninstalled or pending uninstall, or its `operationalState` is a disabled one (`*disabled*`),
else true; `definitions_up_to_date` = `isUpToDate` (SentinelOne has no signature definitions: its
engines ship with the agent, so an up-to-date agent is up-to-date protection), `definitions_date`
None; `last_scan_at` = `lastSuccessfulScanDate`, else `scanFinishedAt` of a `finished` scan;
`active_threats` = `activeThreats`; `online` = `isActive`; `last_seen_at` = `lastActiveDate`;
`isolated` = `networkStatus` `disconnected` or `disconnecting` (network quarantine in force or
under way). An agent without `id` or `siteId`, or whose record does not read, is in its page's
`skipped`.

Threats: `GET /threats?resolved=false` (every open threat), and with `since` also
`resolved=true&updatedAt__gte=since` (those resolved since). `resolved` = `threatInfo.incidentStatus`
is `resolved` (2.1 keeps the incident state there); `mitigation_state` = `threatInfo.
mitigationStatus`; `classification` = `threatInfo.classification`; `severity` = `threatInfo.
confidenceLevel`; `detected_at` = `identifiedAt`, else `createdAt`. `complete_for` = every site read
by `GET /sites` (in the connection's scope) once both listings were read to their last page.

Licence use: one `LicenceUse` per site from `GET /sites`: `seats_used` = `activeLicenses`,
`seats_purchased` = `totalLicenses` (None when `unlimitedLicenses`), `product` = "SentinelOne "
+ the site's licence bundles' display names (else its `sku`), `sku` = the site's `sku`, else the
bundle names.

Webhooks: the 2.1 API has no webhook endpoints and documents no push format (NOTES.md
"Webhooks"); `verify_webhook` answers None and `parse_webhook` raises `WebhookParseError`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime
from typing import Any

import httpx
from pydantic import ValidationError

from adapters.base import (
    AgentPage,
    AgentStatus,
    AlertEvent,
    ConnectionContext,
    ConsoleThreat,
    LicenceUse,
    SecurityCustomer,
    SkippedEndpoint,
    ThreatSnapshot,
    WebhookRequest,
)
from adapters.common import server_root, settings_as
from adapters.errors import CredentialsError, TransientVendorError, WebhookParseError
from adapters.http import VendorHttpClient
from adapters.sentinelone.models import (
    API_PREFIX,
    AgentRead,
    AgentsQuery,
    ErrorRead,
    PaginationRead,
    SentinelOneCredentials,
    SentinelOneOptions,
    SiteRead,
    SitesQuery,
    ThreatRead,
    ThreatsQuery,
    _Query,
)

log = logging.getLogger("adapters.sentinelone")

MAX_PAGES = 100_000
PRODUCT = "SentinelOne"
ISOLATED_STATES = frozenset({"disconnected", "disconnecting"})


def api_base(base_url: str) -> str:
    """The console root an engineer typed (API suffixes cut), with the 2.1 API prefix."""
    root = server_root(base_url, vendor="SentinelOne", suffixes=(API_PREFIX, "/web/api", "/api-doc", "/web"))
    return root + API_PREFIX


def parse_s1_error(response: httpx.Response) -> tuple[str, str | None]:
    """`{"errors": [{"code", "title", "detail"}]}` → (message, field)."""
    try:
        body = response.json()
    except ValueError:
        text = response.text.strip()
        return (text[:300] or response.reason_phrase or f"HTTP {response.status_code}", None)
    errors = body.get("errors") if isinstance(body, dict) else None
    if isinstance(errors, list) and errors and isinstance(errors[0], dict):
        first = ErrorRead.model_validate(errors[0])
        parts = [p for p in (first.title, _detail_text(first.detail)) if p]
        message = ": ".join(parts) or f"HTTP {response.status_code}"
        if first.code is not None:
            message += f" (code {first.code})"
        field = next(iter(first.detail), None) if isinstance(first.detail, dict) else None
        return (message[:500], str(field) if field else None)
    return (str(body)[:300], None)


def _detail_text(detail: Any) -> str | None:
    if detail is None or detail == "":
        return None
    if isinstance(detail, dict):
        return "; ".join(f"{k}: {v}" for k, v in detail.items())
    return str(detail)


def _first_error(exc: ValidationError) -> tuple[str, str]:
    first = exc.errors()[0]
    return (".".join(str(p) for p in first["loc"]) or "record", first["msg"])


class SentinelOneAdapter:
    """SecurityAdapter for the SentinelOne Management API 2.1."""

    def __init__(self, ctx: ConnectionContext) -> None:
        self._credentials = settings_as(SentinelOneCredentials, ctx.credentials)
        self._options = settings_as(SentinelOneOptions, ctx.options)
        self._sleep: Callable[[float], Awaitable[None]] = ctx.sleep or asyncio.sleep
        self.api_base = api_base(ctx.base_url)
        token = self._credentials.api_token.get_secret_value()
        self._client = VendorHttpClient(
            self.api_base,
            headers={"Accept": "application/json", "Authorization": f"ApiToken {token}"},
            error_parser=parse_s1_error,
            max_concurrency=self._options.max_concurrency,
            budget=ctx.budget,
            transport=ctx.transport_factory(self.api_base),
            sleep=self._sleep,
        )

    @property
    def request_count(self) -> int:
        return self._client.request_count

    async def aclose(self) -> None:
        await self._client.aclose()

    # -- transport -------------------------------------------------------------------------------

    async def _get(self, path: str, query: _Query) -> dict[str, Any]:
        try:
            data = await self._client.get_json(path, params=query.params())
        except CredentialsError as exc:
            raise CredentialsError(
                f"SentinelOne refused the API token: {exc.message}", field="credentials", status=exc.status
            ) from None
        if not isinstance(data, dict):
            raise TransientVendorError(f"{path} answered something other than a JSON object")
        return data

    async def _pages(self, path: str, query: _Query) -> AsyncIterator[tuple[Any, PaginationRead]]:
        """Every page of a list call: `data` and `pagination`, following `nextCursor`."""
        current = query
        seen: set[str] = set()
        for _ in range(MAX_PAGES):
            body = await self._get(path, current)
            try:
                pagination = PaginationRead.model_validate(body.get("pagination") or {})
            except ValidationError:
                raise TransientVendorError(f"{path} answered an unreadable pagination") from None
            yield body.get("data"), pagination
            cursor = pagination.nextCursor
            if not cursor:
                return
            if cursor in seen:
                raise TransientVendorError(f"{path} answered the cursor {cursor!r} again")
            seen.add(cursor)
            current = current.model_copy(update={"cursor": cursor})
        raise TransientVendorError(f"{path} has more than {MAX_PAGES} pages")

    def _site_filter(self) -> list[str] | None:
        return list(self._options.site_ids) or None

    # -- sites -----------------------------------------------------------------------------------

    async def _sites(self) -> list[SiteRead]:
        query = SitesQuery(limit=self._options.page_size, siteIds=self._site_filter())
        sites: list[SiteRead] = []
        async for data, _pagination in self._pages("/sites", query):
            rows = data.get("sites") if isinstance(data, dict) else None
            if not isinstance(rows, list):
                raise TransientVendorError("/sites answered no data.sites list")
            for row in rows:
                try:
                    site = SiteRead.model_validate(row)
                except ValidationError as exc:
                    where, message = _first_error(exc)
                    log.warning("SentinelOne site skipped: %s %s", where, message)
                    continue
                if not site.id or (site.state or "").lower() == "deleted":
                    continue
                sites.append(site)
        return sites

    async def test_connection(self) -> None:
        """One site: the token is valid and sees at least its scope."""
        await self._get("/sites", SitesQuery(limit=1, siteIds=self._site_filter()))

    async def list_customers(self) -> AsyncIterator[SecurityCustomer]:
        for site in await self._sites():
            assert site.id is not None
            hints = {kind: site.externalId for kind in self._options.external_id_psa_kinds if site.externalId}
            yield SecurityCustomer(id=site.id, name=site.name or f"Site {site.id}", psa_company_ids=hints)

    # -- agents ----------------------------------------------------------------------------------

    def agent_status(self, agent: AgentRead) -> AgentStatus:
        """One agent record → `AgentStatus` (module docstring); `id` and `siteId` must be present."""
        assert agent.id is not None and agent.siteId is not None
        state = (agent.operationalState or "").lower()
        gone = bool(agent.isDecommissioned or agent.isUninstalled or agent.isPendingUninstall)
        last_scan = agent.lastSuccessfulScanDate
        if last_scan is None and (agent.scanStatus or "").lower() == "finished":
            last_scan = agent.scanFinishedAt
        network = (agent.networkStatus or "").lower()
        return AgentStatus(
            agent_id=agent.id,
            customer_id=agent.siteId,
            customer_name=agent.siteName,
            hostname=(agent.computerName or "").strip() or agent.uuid or agent.id,
            serial_number=(agent.serialNumber or "").strip() or None,
            mac_addresses=[i.physical for i in agent.networkInterfaces or [] if i.physical],
            os_name=agent.osName,
            device_type=agent.machineType,
            product=PRODUCT,
            agent_version=agent.agentVersion,
            protection_enabled=not (gone or "disabled" in state),
            definitions_up_to_date=agent.isUpToDate,
            last_scan_at=last_scan,
            active_threats=agent.activeThreats,
            online=agent.isActive,
            last_seen_at=agent.lastActiveDate,
            isolated=(network in ISOLATED_STATES) if network else None,
        )

    async def iter_agent_pages(self, changed_since: datetime | None) -> AsyncIterator[AgentPage]:
        query = AgentsQuery(
            limit=self._options.page_size,
            siteIds=self._site_filter(),
            isDecommissioned=None if self._options.include_decommissioned else False,
            updatedAt__gt=changed_since,
        )
        async for data, _pagination in self._pages("/agents", query):
            if not isinstance(data, list):
                raise TransientVendorError("/agents answered no data list")
            page = AgentPage(agents=[])
            for row in data:
                if not isinstance(row, dict):
                    continue
                raw_id = str(row.get("id") or "?")
                try:
                    agent = AgentRead.model_validate(row)
                except ValidationError as exc:
                    where, message = _first_error(exc)
                    page.skipped.append(SkippedEndpoint(endpoint_id=raw_id, field=where, message=message))
                    continue
                if not agent.id or not agent.siteId:
                    missing = "id" if not agent.id else "siteId"
                    log.warning("SentinelOne agent %s skipped: no %s", agent.id or "?", missing)
                    page.skipped.append(SkippedEndpoint(endpoint_id=raw_id, field=missing, message="missing"))
                    continue
                if agent.isDecommissioned and not self._options.include_decommissioned:
                    continue
                page.agents.append(self.agent_status(agent))
            if page.agents or page.skipped:
                yield page

    # -- threats ---------------------------------------------------------------------------------

    @staticmethod
    def console_threat(threat: ThreatRead) -> ConsoleThreat | None:
        """One threat item → `ConsoleThreat`; None when it names no id, site or detection time."""
        info = threat.threatInfo
        agent = threat.agentRealtimeInfo
        threat_id = threat.id or (info.threatId if info else None)
        detected = (info.identifiedAt or info.createdAt) if info else None
        if not threat_id or agent is None or not agent.siteId or info is None or detected is None:
            return None
        return ConsoleThreat(
            threat_id=threat_id,
            customer_id=agent.siteId,
            agent_id=agent.agentId,
            hostname=agent.agentComputerName,
            name=info.threatName or info.sha1 or threat_id,
            classification=info.classification,
            severity=info.confidenceLevel,
            mitigation_state=info.mitigationStatus,
            resolved=(info.incidentStatus or "").lower() == "resolved",
            detected_at=detected,
            updated_at=info.updatedAt,
        )

    async def _threats(self, query: ThreatsQuery) -> list[ConsoleThreat]:
        found: list[ConsoleThreat] = []
        async for data, _pagination in self._pages("/threats", query):
            if not isinstance(data, list):
                raise TransientVendorError("/threats answered no data list")
            for row in data:
                try:
                    read = ThreatRead.model_validate(row)
                except ValidationError as exc:
                    where, message = _first_error(exc)
                    log.warning("SentinelOne threat skipped: %s %s", where, message)
                    continue
                threat = self.console_threat(read)
                if threat is None:
                    log.warning("SentinelOne threat %s skipped: no id, site or time", read.id or "?")
                    continue
                found.append(threat)
        return found

    async def list_threats(self, since: datetime | None) -> ThreatSnapshot:
        sites = self._site_filter()
        size = self._options.page_size
        threats = await self._threats(ThreatsQuery(limit=size, siteIds=sites, resolved=False))
        if since is not None:
            resolved = await self._threats(
                ThreatsQuery(limit=size, siteIds=sites, resolved=True, updatedAt__gte=since)
            )
            known = {t.threat_id for t in threats}
            threats += [t for t in resolved if t.threat_id not in known]
        complete = frozenset(s.id for s in await self._sites() if s.id)
        return ThreatSnapshot(threats=threats, complete_for=complete)

    # -- licences --------------------------------------------------------------------------------

    async def licence_use(self) -> list[LicenceUse]:
        uses: list[LicenceUse] = []
        for site in await self._sites():
            assert site.id is not None
            bundles = (site.licenses.bundles if site.licenses else None) or []
            names = [(b.displayName or b.name or "").strip() for b in bundles]
            names = [n for n in names if n]
            label = " + ".join(names) or (site.sku or "").strip()
            sku = (site.sku or "").strip() or ",".join(b.name for b in bundles if b.name) or None
            purchased = None if site.unlimitedLicenses else site.totalLicenses
            if purchased is not None and purchased < 0:
                purchased = None  # -1: unlimited
            uses.append(
                LicenceUse(
                    customer_id=site.id,
                    product=f"{PRODUCT} {label}" if label else PRODUCT,
                    sku=sku,
                    seats_used=max(0, site.activeLicenses or 0),
                    seats_purchased=purchased,
                )
            )
        return uses

    # -- webhooks --------------------------------------------------------------------------------

    def verify_webhook(self, request: WebhookRequest, secret: str) -> bool | None:
        """SentinelOne documents no webhook signature: the core's generic check applies."""
        return None

    def parse_webhook(self, request: WebhookRequest) -> list[AlertEvent]:
        raise WebhookParseError(
            "SentinelOne's Management API 2.1 has no webhook push; threats are polled", field="body"
        )


def create_adapter(ctx: ConnectionContext) -> SentinelOneAdapter:
    return SentinelOneAdapter(ctx)


__all__ = ["SentinelOneAdapter", "api_base", "create_adapter", "parse_s1_error"]
