"""Huntress (REST API v1 and webhooks) as a security console: organizations as customers, agents
with their Managed Antivirus (Defender) and isolation state, incident reports as threats, billable
counts as licence use, and signed incident report webhooks.

Sources:
- `../shared/specs/huntress/huntress-rest-api-v1.swagger.json`: Huntress's own Swagger 2.0 "Huntress
  API Reference" (host `api.huntress.io`, https, paths under `/v1`; see SOURCE.txt there). Its
  `info.description` gives authentication, the rate limit, pagination and error codes; paths,
  parameters and definitions below are from it.
- `../shared/specs/huntress/huntress-webhooks.openapi.json`: Huntress's OpenAPI 3.1 "Huntress
  Webhooks" (event payloads, `IncidentReportPayload`). It describes no signature.
- Huntress support, "How to use Webhooks Integration" (support.huntress.io article 51679111552147):
  deliveries carry "a Svix signature, a timestamp, and a unique delivery ID", verified with any Svix
  library against the raw body; Svix documentation, "Verifying Webhooks Manually" (docs.svix.com):
  headers and signed content (see `webhooks.py`).
- Huntress support, "Managed AV - Interface & Basic Settings" (support.huntress.io article 308): the
  Managed Antivirus states Protected, Unhealthy and Not Protected and what each means.

Auth: HTTP Basic, `Authorization: Basic base64(<api key>:<api secret>)` on every request
(`securityDefinitions.basic_auth`). 401 "could not be authenticated" and 403 (the credential's
permissions) raise `CredentialsError`; nothing is re-sent, there is no token to renew.

Rate limit: 60 requests per account per minute, sliding window. Every request waits for a place in
a rolling window of `options.requests_per_minute` (default 60) per 60 s (`pacing.py`) before it is
sent; a 429 is still retried after `Retry-After` by the shared HTTP client.

Paging: `limit` (1..500; `options.page_size`, default 500) and `page_token`; every list answer is
`{<resources>: [...], pagination: {next_page_token, next_page_url}}`; the listing ends when there is
no next token.

Customers: `GET /v1/organizations` (sorted by id ascending).

Agents: `GET /v1/agents`. The operation filters by organization, platform, hostname, os and
version but not by time; it sorts by `updated_at`. A changed-since read asks for
`sort_field=updated_at&sort_direction=desc` and stops at the first page reaching an agent updated
before the cursor (yielding only those at or after it); a full read sorts by id ascending. (An
agent updated while such a read pages may move between pages; the next read catches it.)
Mapping of `Agent`: `hostname`, `serial_number`, `mac_addresses`, `os` (→ os_name; "server" in it →
device type server, else workstation), `version` (→ agent_version), `defender_status` (Managed
Antivirus, i.e. Microsoft Defender through Huntress: Healthy/Protected → protection on; Not
Protected/Disabled/Not Installed/Incompatible → off; Unhealthy — "enabled but not all engines are
turned on", "signatures are out of date" or "disabled" per Huntress support, "Managed AV -
Interface & Basic Settings" — and anything else → unknown), `defender_substatus` ("Up to date" →
definitions up to date, "Out of date"/"Outdated" → not), `firewall_status` (Isolated, Pending
Release → isolated; Enabled, Disabled, Pending Isolation → not), `last_callback_at` (→
last_seen_at; online when within `options.offline_after_minutes`). Huntress reports no definitions
date, scan time or threat count per agent (those stay None; threats come from `list_threats`). An
agent without id or organization is in its page's `skipped`.

Threats: `GET /v1/incident_reports` per status. Open: `sent`, `auto_remediating`. With a `since`,
also the reports resolved since then (`closed`, `dismissed`, `partner_dismissed`, sorted by
`updated_at` descending, read until one is older than `since`). `ConsoleThreat`: `subject` → name,
`indicator_types` → classification (Huntress's own spellings, most severe first, comma-separated),
`severity`, `status` → mitigation state, resolved when closed or dismissed; the hostname is taken
from the subject ("… Incident on <host> (…)"). Every organization is `complete_for` (the open
listings are complete or raise).

Licence use: per organization, product `Huntress Managed EDR` (sku `edr`): with `licence_counts`
"billable" (default) `actual_usages.edr.billable_agents_count` of `GET /v1/organizations/{id}`
(falling back to `agents_count`), with "agents" the listing's `agents_count`. ITDR (sum of
`billable_identities_count`), SAT (`learners_count`) and SIEM (`billable_log_sources_count`) are
added when non-zero. Huntress publishes no purchased seats per organization: `seats_purchased` is
None.

Errors: the document gives the codes (400, 401, 404, 429, 500) but no error body; `error`,
`message` or `errors` of a JSON body are used when present.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from pydantic import BaseModel, ValidationError

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
from adapters.errors import TransientVendorError
from adapters.http import VendorHttpClient
from adapters.huntress import webhooks
from adapters.huntress.models import (
    API_BASE,
    AgentRead,
    HuntressCredentials,
    HuntressOptions,
    IncidentReportRead,
    OrganizationRead,
    OrganizationUsageRead,
    PaginationRead,
)
from adapters.huntress.pacing import PacedTransport, RollingWindow

log = logging.getLogger("adapters.huntress")

PRODUCT = "Huntress Managed EDR"
PRODUCTS = {
    "edr": PRODUCT,
    "itdr": "Huntress Managed ITDR",
    "sat": "Huntress Managed SAT",
    "siem": "Huntress Managed SIEM",
}
WINDOW_SECONDS = 60.0
OPEN_STATUSES = ("sent", "auto_remediating")
RESOLVED_STATUSES = ("closed", "dismissed", "partner_dismissed")
INDICATOR_ORDER = (
    "ransomware_canaries",
    "footholds",
    "process_detections",
    "behavioral_detections",
    "mde_detections",
    "antivirus_detections",
    "monitored_files",
    "managed_identity",
    "siem_detections",
    "email_security_detections",
    "favicon_detections",
    "app_control",
    "ai_misuse",
)
PROTECTED = frozenset({"healthy", "protected", "enabled", "active"})
UNPROTECTED = frozenset({"not protected", "unprotected", "disabled", "not installed", "incompatible", "off"})
"""`Unhealthy` is neither: Huntress uses it for Defender on with an engine off, signatures out of
date, or Defender disabled."""
UP_TO_DATE = frozenset({"up to date", "uptodate", "current"})
OUT_OF_DATE = frozenset({"out of date", "outdated", "out-of-date", "definitions out of date"})
ISOLATED = frozenset({"isolated", "pending release"})
NOT_ISOLATED = frozenset({"enabled", "disabled", "pending isolation"})
MAX_PAGES = 100_000


def api_base(base_url: str | None) -> str:
    """The API root an engineer typed (`/v1` and `/docs` cut), else api.huntress.io."""
    if not (base_url or "").strip():
        return API_BASE
    return server_root(str(base_url), vendor="Huntress", suffixes=("/v1", "/docs"))


def parse_huntress_error(response: httpx.Response) -> tuple[str, str | None]:
    try:
        body = response.json()
    except ValueError:
        text = response.text.strip()
        return (text[:300] or response.reason_phrase or f"HTTP {response.status_code}", None)
    if isinstance(body, dict):
        errors = body.get("errors")
        if isinstance(errors, list) and errors:
            errors = "; ".join(str(e) for e in errors)
        message = body.get("error") or body.get("message") or errors or f"HTTP {response.status_code}"
        return (str(message)[:500], None)
    return (str(body)[:300], None)


def _word(value: str | None) -> str:
    return " ".join((value or "").replace("_", " ").split()).casefold()


def classification(types: list[str] | None) -> str | None:
    """Indicator types, most severe first, in Huntress's spelling."""
    found = [t for t in dict.fromkeys(types or []) if t]
    if not found:
        return None
    rank = {name: i for i, name in enumerate(INDICATOR_ORDER)}
    return ", ".join(sorted(found, key=lambda t: (rank.get(t, len(rank)), t)))


class HuntressAdapter:
    """SecurityAdapter for the Huntress REST API v1."""

    def __init__(self, ctx: ConnectionContext) -> None:
        self._credentials = settings_as(HuntressCredentials, ctx.credentials)
        self._options = settings_as(HuntressOptions, ctx.options)
        self._sleep: Callable[[float], Awaitable[None]] = ctx.sleep or asyncio.sleep
        clock = ctx.extra.get("clock")
        self._clock: Callable[[], datetime] = clock if callable(clock) else (lambda: datetime.now(UTC))
        monotonic = ctx.extra.get("monotonic")
        self.window = RollingWindow(
            self._options.requests_per_minute,
            WINDOW_SECONDS,
            clock=monotonic if callable(monotonic) else time.monotonic,
            sleep=self._sleep,
        )
        self.api_base = api_base(ctx.base_url)
        inner = ctx.transport_factory(self.api_base) or httpx.AsyncHTTPTransport()
        pair = f"{self._credentials.api_key}:{self._credentials.api_secret.get_secret_value()}"
        self._client = VendorHttpClient(
            self.api_base,
            headers={
                "Accept": "application/json",
                "Authorization": "Basic " + base64.b64encode(pair.encode()).decode(),
            },
            error_parser=parse_huntress_error,
            max_concurrency=self._options.max_concurrency,
            budget=ctx.budget,
            transport=PacedTransport(inner, self.window),
            sleep=self._sleep,
        )

    @property
    def request_count(self) -> int:
        return self._client.request_count

    async def aclose(self) -> None:
        await self._client.aclose()

    # -- paging ----------------------------------------------------------------------------------

    async def _pages(
        self, path: str, key: str, params: Mapping[str, Any] | None = None
    ) -> AsyncIterator[list[dict[str, Any]]]:
        """`{key: [...], pagination}` pages, following `next_page_token` until there is none."""
        token: str | None = None
        for _ in range(MAX_PAGES):
            query: dict[str, Any] = {**(params or {}), "limit": self._options.page_size}
            if token:
                query["page_token"] = token
            data = await self._client.get_json(path, params=query)
            if not isinstance(data, dict) or not isinstance(data.get(key), list):
                raise TransientVendorError(f"{path} answered without a {key!r} list")
            yield [row for row in data[key] if isinstance(row, dict)]
            try:
                pagination = PaginationRead.model_validate(data.get("pagination") or {})
            except ValidationError:
                raise TransientVendorError(f"{path} answered an unreadable pagination") from None
            following = (pagination.next_page_token or "").strip() or None
            if following is None:
                return
            if following == token:
                raise TransientVendorError(f"{path} returned the same page token twice")
            token = following
        raise TransientVendorError(f"{path} has more than {MAX_PAGES} pages")

    async def _organizations(self) -> list[OrganizationRead]:
        found: list[OrganizationRead] = []
        params = {"sort_field": "id", "sort_direction": "asc"}
        async for rows in self._pages("/v1/organizations", "organizations", params):
            for row in rows:
                org = _read(OrganizationRead, row, "organization")
                if org is not None and org.id:
                    found.append(org)
        return found

    # -- reading ---------------------------------------------------------------------------------

    async def test_connection(self) -> None:
        """`GET /v1/account`: the account the key pair belongs to."""
        await self._client.get_json("/v1/account")

    async def list_customers(self) -> AsyncIterator[SecurityCustomer]:
        for org in await self._organizations():
            assert org.id is not None
            yield SecurityCustomer(id=org.id, name=(org.name or "").strip() or f"Organization {org.id}")

    def agent_status(self, agent: AgentRead, customer_name: str | None) -> AgentStatus:
        assert agent.id is not None and agent.organization_id is not None
        defender = _word(agent.defender_status)
        protection = True if defender in PROTECTED else False if defender in UNPROTECTED else None
        substatus = _word(agent.defender_substatus)
        definitions = True if substatus in UP_TO_DATE else False if substatus in OUT_OF_DATE else None
        firewall = _word(agent.firewall_status)
        isolated = True if firewall in ISOLATED else False if firewall in NOT_ISOLATED else None
        seen = agent.last_callback_at
        online = None
        if seen is not None:
            online = self._clock() - seen <= timedelta(minutes=self._options.offline_after_minutes)
        os_name = (agent.os or "").strip() or None
        device_type = None
        if os_name:
            device_type = "server" if "server" in os_name.casefold() else "workstation"
        return AgentStatus(
            agent_id=agent.id,
            customer_id=agent.organization_id,
            customer_name=customer_name,
            hostname=(agent.hostname or "").strip() or agent.id,
            serial_number=(agent.serial_number or "").strip() or None,
            mac_addresses=agent.mac_addresses,
            os_name=os_name,
            device_type=device_type,
            product=PRODUCT,
            agent_version=(agent.version or "").strip() or None,
            protection_enabled=protection,
            definitions_up_to_date=definitions,
            active_threats=None,
            online=online,
            last_seen_at=seen,
            isolated=isolated,
        )

    async def iter_agent_pages(self, changed_since: datetime | None) -> AsyncIterator[AgentPage]:
        """One page per `GET /v1/agents` page (module docstring for the changed-since read)."""
        names = {org.id: org.name for org in await self._organizations() if org.id}
        if changed_since is None:
            params = {"sort_field": "id", "sort_direction": "asc"}
        else:
            params = {"sort_field": "updated_at", "sort_direction": "desc"}
        async for rows in self._pages("/v1/agents", "agents", params):
            page = AgentPage(agents=[])
            reached_older = False
            for row in rows:
                try:
                    agent = AgentRead.model_validate(row)
                except ValidationError as exc:
                    first = exc.errors()[0]
                    where = ".".join(str(p) for p in first["loc"]) or "agent"
                    page.skipped.append(
                        SkippedEndpoint(
                            endpoint_id=str(row.get("id") or "?"), field=where, message=first["msg"]
                        )
                    )
                    continue
                if changed_since is not None:
                    if agent.updated_at is None or agent.updated_at < changed_since:
                        reached_older = True
                        continue
                if not agent.id or not agent.organization_id:
                    missing = "id" if not agent.id else "organization_id"
                    log.warning("Huntress agent %s skipped: no %s", agent.id or "?", missing)
                    page.skipped.append(
                        SkippedEndpoint(endpoint_id=agent.id or "?", field=missing, message="missing")
                    )
                    continue
                page.agents.append(self.agent_status(agent, names.get(agent.organization_id)))
            if page.agents or page.skipped:
                yield page
            if reached_older:
                return

    def console_threat(self, report: IncidentReportRead) -> ConsoleThreat | None:
        if not report.id or not report.organization_id:
            log.warning("Huntress incident report %s skipped: no id or organization", report.id or "?")
            return None
        detected = report.sent_at or report.status_updated_at or report.updated_at
        if detected is None:
            log.warning("Huntress incident report %s skipped: no time", report.id)
            return None
        status = (report.status or "").strip().lower() or None
        return ConsoleThreat(
            threat_id=report.id,
            customer_id=report.organization_id,
            agent_id=report.agent_id,
            hostname=webhooks.hostname_from_subject(report.subject),
            name=(report.subject or "").strip() or f"Incident report {report.id}",
            classification=classification(report.indicator_types),
            severity=(report.severity or "").strip().lower() or None,
            mitigation_state=status,
            resolved=status in RESOLVED_STATUSES,
            detected_at=detected,
            updated_at=report.updated_at or report.status_updated_at,
        )

    async def _reports(self, status: str, since: datetime | None) -> list[IncidentReportRead]:
        params: dict[str, Any] = {"status": status}
        if since is None:
            params.update(sort_field="id", sort_direction="asc")
        else:
            params.update(sort_field="updated_at", sort_direction="desc")
        found: list[IncidentReportRead] = []
        async for rows in self._pages("/v1/incident_reports", "incident_reports", params):
            older = False
            for row in rows:
                report = _read(IncidentReportRead, row, "incident report")
                if report is None:
                    continue
                if since is not None and (report.updated_at is None or report.updated_at < since):
                    older = True
                    continue
                found.append(report)
            if older:
                break
        return found

    async def list_threats(self, since: datetime | None) -> ThreatSnapshot:
        customers = frozenset(org.id for org in await self._organizations() if org.id)
        threats: dict[str, ConsoleThreat] = {}
        for status in OPEN_STATUSES:
            for report in await self._reports(status, None):
                threat = self.console_threat(report)
                if threat is not None:
                    threats[threat.threat_id] = threat
        if since is not None:
            for status in RESOLVED_STATUSES:
                for report in await self._reports(status, since):
                    threat = self.console_threat(report)
                    if threat is not None:
                        threats.setdefault(threat.threat_id, threat)
        seen = {t.customer_id for t in threats.values()}
        return ThreatSnapshot(threats=list(threats.values()), complete_for=customers | frozenset(seen))

    async def licence_use(self) -> list[LicenceUse]:
        uses: list[LicenceUse] = []
        for org in await self._organizations():
            assert org.id is not None
            counts: dict[str, int] = {"edr": org.agents_count or 0}
            if self._options.licence_counts == "billable":
                data = await self._client.get_json(f"/v1/organizations/{org.id}")
                raw = data.get("organization") if isinstance(data, dict) else None
                detail = _read(OrganizationUsageRead, raw if isinstance(raw, dict) else {}, "organization")
                usages = detail.actual_usages if detail is not None else None
                if usages is not None:
                    if usages.edr is not None and usages.edr.billable_agents_count is not None:
                        counts["edr"] = usages.edr.billable_agents_count
                    counts["itdr"] = sum(i.billable_identities_count or 0 for i in usages.itdr or [])
                    counts["sat"] = (usages.sat.learners_count or 0) if usages.sat else 0
                    counts["siem"] = (usages.siem.billable_log_sources_count or 0) if usages.siem else 0
            else:
                counts["itdr"] = org.billable_identity_count or 0
                counts["sat"] = org.sat_learner_count or 0
                counts["siem"] = org.logs_sources_count or 0
            for sku, seats in counts.items():
                if sku == "edr" or seats > 0:
                    uses.append(
                        LicenceUse(
                            customer_id=org.id,
                            product=PRODUCTS[sku],
                            sku=sku,
                            seats_used=max(0, seats),
                            seats_purchased=None,
                        )
                    )
        return uses

    # -- webhooks --------------------------------------------------------------------------------

    def verify_webhook(self, request: WebhookRequest, secret: str) -> bool | None:
        return webhooks.verify(request, secret)

    def parse_webhook(self, request: WebhookRequest) -> list[AlertEvent]:
        return webhooks.parse(request)


def _read(model: type[Any], row: Mapping[str, Any], what: str) -> Any:
    try:
        read: BaseModel = model.model_validate(row)
    except ValidationError:
        log.warning("Huntress %s %s skipped: unreadable", what, row.get("id", "?"))
        return None
    return read


def create_adapter(ctx: ConnectionContext) -> HuntressAdapter:
    return HuntressAdapter(ctx)


__all__ = [
    "PRODUCT",
    "HuntressAdapter",
    "api_base",
    "classification",
    "create_adapter",
    "parse_huntress_error",
]
