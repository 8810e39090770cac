"""Sophos Central adapter: partner (or organization) tenants as customers, each tenant's endpoints
with their health from the tenant's own regional API host, open threat alerts, and seats from the
partner billing usage report.

Sources:
- ../shared/specs/sophos-central/Sophos Central APIs.postman_collection.json: Sophos's own Postman
  collection (sophos/sophos-central-apis-postman @ae514f4962); every request below is one of its
  requests (method, URL, query keys, headers, body fields), and its example answers are the shapes
  read (cut into ../shared/specs/sophos-central/samples/*.json). NOTES.md and SOURCE.txt beside it
  summarise the flow and the provenance.
- The token answer (`access_token`, `expires_in`, `refresh_token`): the collection's "Authenticate"
  test script reads `access_token` and `refresh_token`; `expires_in` (seconds) as public clients of
  the same endpoint read it (simon-r-watson/SophosCentral `Connect-SophosCentral.ps1`, found with
  the code search; developer.sophos.com "getting started" linked from the collection's README).

Flow:
- Token: `POST https://id.sophos.com/api/v2/oauth2/token`, form `grant_type=client_credentials`,
  `scope=token`, `client_id`, `client_secret` (request "Authenticate", `auth: noauth`). The bearer is
  cached until `expires_in` (less a margin) and fetched again once when a call answers 401.
- `GET {global}/whoami/v1` → `{id, idType, apiHosts{global, dataRegion}}`. As the collection's
  "Who am I?" script does, `idType` picks the header of what follows: `partner` → `X-Partner-ID`,
  `organization` → `X-Organization-ID`, `tenant` → `X-Tenant-ID`.
- Customers: `GET {global}/partner/v1/tenants?page=&pageSize=&pageTotal=true` (`X-Partner-ID`), or
  `/organization/v1/tenants` (`X-Organization-ID`): page-number paging, `pages{current, total}`.
  Each tenant carries its `apiHost` (`https://api-{dataRegion}.central.sophos.com`); a tenant
  credential is its own single customer at `apiHosts.dataRegion`. Regional hosts are accepted
  only under the global host's domain (`central.sophos.com`), and over HTTPS when the global API
  is (the collection's whoami example writes `http://api-us01.central.sophos.com`).
- Agents: `GET {apiHost}/endpoint/v1/endpoints?view=full&pageSize=[&pageFromKey=][&lastSeenAfter=]`
  with `X-Tenant-ID`: key-based paging (`pages.nextKey` → `pageFromKey`); the page size is lowered
  to `pages.maxSize` when an answer states a smaller one.
- Threats: `GET {apiHost}/common/v1/alerts?pageSize=[&pageFromKey=]` with `X-Tenant-ID`: the
  tenant's open alerts (an acknowledged alert leaves the list), key-paged like endpoints.
- Licence use: `GET {global}/partner/v1/billing/usage/{year}/{month}?pageSize=[&pageFromKey=]` with
  `X-Partner-ID`, this month's report, the previous month's when this one answers 404 ("No data for
  requested year or month", the collection's example).
- Errors: `{error, message, correlationId, requestId}` bodies (the collection's 4xx/5xx examples);
  429 examples carry the same body: `Retry-After` is honoured by the shared HTTP layer (waited,
  then `RateLimitedError`). The collection states no rate numbers.

Status mapping (`AgentStatus`, from `view=full` items):
- identity: `id`, `tenant.id` (else the tenant listed), `hostname`, `serialNumber`, `macAddresses`;
  `os.name`, `type` (`computer`, `server`, …) as device type;
- `product`: the assigned product codes other than `coreAgent`, joined by `+`; `agent_version`:
  the `coreAgent` product's version (else the first version given);
- `protection_enabled` from `health.services.status`: `good`/`suspicious` → on, `bad` → off,
  anything else → unknown (services are the protection components; tamper protection is a
  separate setting the record has no field for, so it is read but not mapped);
- `active_threats` from `health.threats.status`: `good` → 0, `suspicious`/`bad` → 1 (Sophos gives
  a status, not a count: at least one), else unknown;
- `online`, `last_seen_at` (`lastSeenAt`), `isolated` (`isolation.status == "isolated"`);
- definitions date/state and last scan: not in the endpoint shape → None.

Incremental reads: `changed_since` is sent as `lastSeenAfter` (the collection's filter, "last seen
after the given date and time (inclusive)"): every check-in, and every health change an agent
reports, moves `lastSeenAt`. An agent that goes silent does not move it, but Sophos turns its
`online` off: a second listing per tenant with `online=false` adds the offline endpoints not
already listed, so the core sees them go offline (with their last-seen time) without a full read.
Offline agents are thus listed on every incremental read: a superset of what changed, bounded by
the offline count.

Threats: of a tenant's open alerts, those whose category is `malware`, `pua`, `runtimeDetections`
or `security`, or whose `type` names a detection (`…Malware…`, `…PUA…`, `…Threat…`, `…Ransom…`,
`…Exploit…`/`…Hmpa…`, `…Detected`, `…Detection…`; the collection's own PUA example is filed under
`updating`). `classification` from the type (`PUA`, `Ransomware`, `Exploit`, `Malware`, `Runtime
detection`, else the category); `mitigation_state` `not_mitigated` while Sophos offers a clean-up
action (`clean…` in `allowedActions`), else `mitigated`. A resolved (acknowledged) alert leaves
the list: `resolved` is never True; absence from a complete snapshot closes it. `since` is not
used: the open alerts are a snapshot.

Licence use: usage rows summed per (`accountId`, `sku` or `productCode`); `product` is the
`productDescription` (else the code), `seats_used` the `billableQuantity` (else
`actualQuantity`), `seats_purchased` None (MSP monthly billing is by use). Organization and tenant
credentials have no billing report; their licence list (`/licenses/v1/licenses`) carries no seat
counts in the collection's example, so `licence_use` answers nothing for them.

Webhooks: Sophos Central has no push in the collection (only SIEM pull): `verify_webhook` is None
and `parse_webhook` refuses every body.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

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
from adapters.common import BearerToken, TokenCache, server_root, settings_as
from adapters.errors import (
    AdapterError,
    ConfigurationError,
    CredentialsError,
    NotFoundError,
    TransientVendorError,
    VendorRequestError,
    WebhookParseError,
)
from adapters.http import VendorHttpClient
from adapters.sophos_central.models import (
    GLOBAL_API,
    AlertRead,
    EndpointRead,
    ErrorRead,
    KeyPageRead,
    SophosCredentials,
    SophosOptions,
    TenantPageRead,
    TenantRead,
    TokenRead,
    TokenRequestWrite,
    UsageRead,
    WhoAmIRead,
)

log = logging.getLogger("adapters.sophos_central")

WHOAMI = "/whoami/v1"
PARTNER_TENANTS = "/partner/v1/tenants"
ORGANIZATION_TENANTS = "/organization/v1/tenants"
ENDPOINTS = "/endpoint/v1/endpoints"
ALERTS = "/common/v1/alerts"
BILLING_USAGE = "/partner/v1/billing/usage/{year}/{month}"
ID_HEADERS = {"partner": "X-Partner-ID", "organization": "X-Organization-ID", "tenant": "X-Tenant-ID"}
FALLBACK_TOKEN_LIFETIME = timedelta(minutes=10)
MAX_PAGES = 100_000
THREAT_CATEGORIES = frozenset({"malware", "pua", "runtimedetections", "security"})
THREAT_TYPE = re.compile(r"malware|pua|threat|ransom|exploit|hmpa|detected$|detection", re.I)
SERVICE_ON = {"good": True, "suspicious": True, "bad": False}
THREATS_COUNT = {"good": 0, "suspicious": 1, "bad": 1}


def parse_sophos_error(response: httpx.Response) -> tuple[str, str | None]:
    """Sophos error bodies (`{error, message, correlationId, requestId}` from the APIs,
    `{errorCode, message}` from the token endpoint) → (message, field)."""
    try:
        body = response.json()
    except ValueError:
        text = response.text.strip()
        return (text[:300] or response.reason_phrase or f"HTTP {response.status_code}", None)
    if not isinstance(body, dict):
        return (str(body)[:300], None)
    error = ErrorRead.model_validate(body)
    message = error.message or error.error or error.errorCode or f"HTTP {response.status_code}"
    code = error.error or error.errorCode
    text = f"{message} ({code})" if code and code != message else message
    if error.correlationId:
        text += f" [correlationId {error.correlationId}]"
    return (text[:500], None)


def sophos_time(value: str | None) -> datetime | None:
    """ISO 8601 as Sophos writes it (`2019-09-23T12:02:01.700Z`, or without a zone for UTC)."""
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def wire_time(value: datetime) -> str:
    """A filter time as the collection writes it: UTC, milliseconds, `Z`."""
    utc = value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


def classify_alert(alert: AlertRead) -> str | None:
    """The threat classification of an alert, or None when the alert is not about a threat."""
    kind = alert.type or ""
    category = (alert.category or "").lower()
    if category not in THREAT_CATEGORIES and not THREAT_TYPE.search(kind.rsplit("::", 1)[-1]):
        return None
    tail = kind.rsplit("::", 1)[-1].lower()
    if "pua" in tail or category == "pua":
        return "PUA"
    if "ransom" in tail:
        return "Ransomware"
    if "exploit" in tail or "hmpa" in tail:
        return "Exploit"
    if "malware" in tail or "threat" in tail or category == "malware":
        return "Malware"
    if category == "runtimedetections":
        return "Runtime detection"
    return alert.category or "Threat"


def threat_of(alert: AlertRead, tenant_id: str) -> ConsoleThreat | None:
    """The `ConsoleThreat` an open alert is, or None (not a threat, or no id / raise time)."""
    classification = classify_alert(alert)
    detected = sophos_time(alert.raisedAt)
    if classification is None or not alert.id or detected is None:
        return None
    cleanable = any(action.lower().startswith("clean") for action in alert.allowedActions)
    return ConsoleThreat(
        threat_id=alert.id,
        customer_id=(alert.tenant.id if alert.tenant and alert.tenant.id else tenant_id),
        agent_id=alert.managedAgent.id if alert.managedAgent else None,
        name=alert.description or alert.type or classification,
        classification=classification,
        severity=alert.severity,
        mitigation_state="not_mitigated" if cleanable else "mitigated",
        resolved=False,
        detected_at=detected,
    )


def agent_of(endpoint: EndpointRead, tenant_id: str, tenant_name: str | None) -> AgentStatus:
    health = endpoint.health
    services = (health.services.status if health and health.services else None) or ""
    threats = (health.threats.status if health and health.threats else None) or ""
    products = [p for p in endpoint.assignedProducts if p.code]
    core = next((p for p in products if p.code == "coreAgent" and p.version), None)
    version = core.version if core else next((p.version for p in products if p.version), None)
    names = [str(p.code) for p in products if p.code != "coreAgent"]
    return AgentStatus(
        agent_id=str(endpoint.id),
        customer_id=(endpoint.tenant.id if endpoint.tenant and endpoint.tenant.id else tenant_id),
        customer_name=tenant_name,
        hostname=str(endpoint.hostname),
        serial_number=endpoint.serialNumber or None,
        mac_addresses=endpoint.macAddresses or None,
        os_name=endpoint.os.name if endpoint.os else None,
        device_type=endpoint.type,
        product="+".join(names) or None,
        agent_version=version,
        protection_enabled=SERVICE_ON.get(services.lower()),
        active_threats=THREATS_COUNT.get(threats.lower()),
        online=endpoint.online,
        last_seen_at=sophos_time(endpoint.lastSeenAt),
        isolated=None if endpoint.isolation is None else endpoint.isolation.status == "isolated",
    )


@dataclass(frozen=True)
class Tenant:
    id: str
    name: str
    api_host: str | None


def _root(url: str) -> tuple[str, str]:
    parsed = httpx.URL(url)
    port = f":{parsed.port}" if parsed.port else ""
    return f"{parsed.scheme}://{parsed.host}{port}", parsed.path or "/"


class SophosCentralAdapter:
    """SecurityAdapter for the Sophos Central APIs."""

    def __init__(self, ctx: ConnectionContext) -> None:
        self._credentials = settings_as(SophosCredentials, ctx.credentials)
        self._options = settings_as(SophosOptions, ctx.options)
        self._sleep: Callable[[float], Awaitable[None]] = ctx.sleep or asyncio.sleep
        clock = ctx.extra.get("clock")
        self._clock: Callable[[], datetime] = clock if callable(clock) else (lambda: datetime.now(UTC))
        self._transport_factory = ctx.transport_factory
        self._budget = ctx.budget
        self.global_base = server_root(
            ctx.base_url or GLOBAL_API, vendor="Sophos Central", suffixes=(WHOAMI,)
        )
        global_host = httpx.URL(self.global_base).host
        self._regional_domain = global_host.split(".", 1)[1] if global_host.count(".") >= 2 else global_host
        token_root, self._token_path = _root(self._options.token_url)
        self._tokens = TokenCache(
            self._request_token,
            clock=self._clock,
            margin=timedelta(seconds=self._options.token_refresh_margin_seconds),
        )
        self._id_client = self._client(token_root, authenticated=False)
        self._global = self._client(self.global_base)
        self._regional: dict[str, VendorHttpClient] = {}
        self._whoami: WhoAmIRead | None = None
        self.token_requests = 0

    def _client(self, base: str, *, authenticated: bool = True) -> VendorHttpClient:
        return VendorHttpClient(
            base,
            headers={"Accept": "application/json"},
            auth_headers=(lambda force: self._tokens.headers(force)) if authenticated else None,
            error_parser=parse_sophos_error,
            max_concurrency=self._options.max_concurrency,
            budget=self._budget,
            transport=self._transport_factory(base),
            sleep=self._sleep,
        )

    @property
    def request_count(self) -> int:
        clients = [self._id_client, self._global, *self._regional.values()]
        return sum(c.request_count for c in clients)

    async def aclose(self) -> None:
        for client in [self._id_client, self._global, *self._regional.values()]:
            await client.aclose()

    # -- auth ----------------------------------------------------------------------------------

    async def _request_token(self, now: datetime) -> BearerToken:
        form = TokenRequestWrite(
            client_id=self._credentials.client_id,
            client_secret=self._credentials.client_secret.get_secret_value(),
        )
        self.token_requests += 1
        try:
            response = await self._id_client.request(
                "POST",
                self._token_path,
                content=urlencode(form.model_dump()).encode(),
                headers={"Content-Type": "application/x-www-form-urlencoded"},
                authenticated=False,
                idempotent=True,
            )
        except (CredentialsError, VendorRequestError, NotFoundError) as exc:
            raise CredentialsError(
                f"Sophos ID refused the API credential: {exc.message}", field="credentials", status=exc.status
            ) from None
        try:
            token = TokenRead.model_validate(response.json())
        except (ValueError, ValidationError):
            raise TransientVendorError("the token answer is not an OAuth2 token") from None
        if not token.access_token:
            raise CredentialsError("Sophos ID issued no access token", field="credentials")
        lifetime = timedelta(seconds=token.expires_in) if token.expires_in else FALLBACK_TOKEN_LIFETIME
        return BearerToken(value=token.access_token, expires_at=now + lifetime)

    async def whoami(self) -> WhoAmIRead:
        """Who the credential is (cached for the adapter's life: it does not change)."""
        if self._whoami is None:
            data = await self._global.get_json(WHOAMI)
            try:
                who = WhoAmIRead.model_validate(data)
            except ValidationError:
                raise TransientVendorError("the whoami answer is not an identity") from None
            if not who.id or who.idType not in ID_HEADERS:
                raise ConfigurationError(
                    f"Sophos Central names this credential a {who.idType!r}, not a partner, "
                    "organization or tenant",
                    field="credentials",
                )
            self._whoami = who
        return self._whoami

    def _api_host(self, value: str | None) -> str | None:
        """A tenant's regional host, accepted only under the global host's domain."""
        if not value:
            return None
        try:
            url = httpx.URL(value if "://" in value else f"https://{value}")
        except httpx.InvalidURL:
            return None
        host = url.host.lower()
        if url.scheme not in ("https", "http") or not (
            host == self._regional_domain or host.endswith("." + self._regional_domain)
        ):
            log.warning("ignoring the API host %r outside %s", value, self._regional_domain)
            return None
        port = f":{url.port}" if url.port else ""
        scheme = "https" if self.global_base.startswith("https://") else url.scheme
        return f"{scheme}://{host}{port}"

    def _regional_client(self, api_host: str) -> VendorHttpClient:
        client = self._regional.get(api_host)
        if client is None:
            client = self._regional[api_host] = self._client(api_host)
        return client

    # -- paging ----------------------------------------------------------------------------------

    async def _key_pages(
        self,
        client: VendorHttpClient,
        path: str,
        headers: Mapping[str, str],
        params: Mapping[str, Any] | None = None,
    ) -> AsyncIterator[list[dict[str, Any]]]:
        """A key-paged list (`pages.nextKey` → `pageFromKey`), a vendor page at a time."""
        size = self._options.page_size
        key: str | None = None
        seen: set[str] = set()
        for _ in range(MAX_PAGES):
            query: dict[str, Any] = {**(params or {}), "pageSize": size}
            if key:
                query["pageFromKey"] = key
            response = await client.request("GET", path, params=query, headers=headers)
            try:
                page = KeyPageRead.model_validate(response.json())
            except (ValueError, ValidationError):
                raise TransientVendorError(f"{path} answered something other than a page") from None
            yield [row for row in page.items if isinstance(row, dict)]
            pages = page.pages
            if pages and pages.maxSize and pages.maxSize < size:
                size = pages.maxSize
            key = pages.nextKey if pages else None
            if not key or not page.items:
                return
            if key in seen:
                raise TransientVendorError(f"{path} answered the page key {key!r} again")
            seen.add(key)
        raise TransientVendorError(f"{path} has more than {MAX_PAGES} pages")

    async def _tenant_pages(self, path: str, header: Mapping[str, str]) -> AsyncIterator[TenantRead]:
        size = self._options.tenant_page_size
        for number in range(1, MAX_PAGES):
            query = {"page": number, "pageSize": size, "pageTotal": "true"}
            response = await self._global.request("GET", path, params=query, headers=header)
            try:
                page = TenantPageRead.model_validate(response.json())
            except (ValueError, ValidationError):
                raise TransientVendorError(f"{path} answered something other than a page") from None
            for row in page.items:
                yield TenantRead.model_validate(row)
            total = page.pages.total if page.pages else None
            if not page.items or total is None or number >= total:
                return
        raise TransientVendorError(f"{path} has more than {MAX_PAGES} pages")

    async def tenants(self) -> list[Tenant]:
        who = await self.whoami()
        assert who.id is not None
        if who.idType == "tenant":
            host = self._api_host(who.apiHosts.dataRegion if who.apiHosts else None)
            return [Tenant(who.id, self._options.tenant_name or who.id, host)]
        path = PARTNER_TENANTS if who.idType == "partner" else ORGANIZATION_TENANTS
        found: list[Tenant] = []
        async for tenant in self._tenant_pages(path, {ID_HEADERS[str(who.idType)]: who.id}):
            if not tenant.id:
                continue
            name = tenant.showAs or tenant.name or tenant.id
            found.append(Tenant(tenant.id, name, self._api_host(tenant.apiHost)))
        return found

    # -- SecurityAdapter ---------------------------------------------------------------------------

    async def test_connection(self) -> None:
        await self.whoami()

    async def list_customers(self) -> AsyncIterator[SecurityCustomer]:
        for tenant in await self.tenants():
            yield SecurityCustomer(id=tenant.id, name=tenant.name)

    async def iter_agent_pages(self, changed_since: datetime | None) -> AsyncIterator[AgentPage]:
        passes: list[dict[str, Any]] = [{"view": "full"}]
        if changed_since is not None:
            # Seen since the cursor, then the offline ones (Sophos turns `online` off itself).
            passes = [
                {"view": "full", "lastSeenAfter": wire_time(changed_since)},
                {"view": "full", "online": "false"},
            ]
        for tenant in await self.tenants():
            if tenant.api_host is None:
                continue  # not provisioned in a data region yet: it has no endpoints
            client = self._regional_client(tenant.api_host)
            listed: set[str] = set()
            for number, params in enumerate(passes):
                async for rows in self._key_pages(client, ENDPOINTS, {"X-Tenant-ID": tenant.id}, params):
                    fresh = [row for row in rows if str(row.get("id")) not in listed]
                    listed.update(str(row.get("id")) for row in fresh)
                    if number == 0 or fresh:
                        yield self._agent_page(fresh, tenant)

    def _agent_page(self, rows: list[dict[str, Any]], tenant: Tenant) -> AgentPage:
        agents: list[AgentStatus] = []
        skipped: list[SkippedEndpoint] = []
        for row in rows:
            try:
                endpoint = EndpointRead.model_validate(row)
            except ValidationError as exc:
                where = ".".join(str(p) for p in exc.errors()[0]["loc"])
                skipped.append(
                    SkippedEndpoint(
                        endpoint_id=str(row.get("id") or "?"), field=where, message=str(exc)[:300]
                    )
                )
                continue
            missing = "id" if not endpoint.id else "hostname" if not endpoint.hostname else None
            if missing:
                skipped.append(
                    SkippedEndpoint(endpoint_id=endpoint.id or "?", field=missing, message=f"no {missing}")
                )
                continue
            agents.append(agent_of(endpoint, tenant.id, tenant.name))
        return AgentPage(agents=agents, skipped=skipped)

    async def list_threats(self, since: datetime | None) -> ThreatSnapshot:
        threats: list[ConsoleThreat] = []
        complete: set[str] = set()
        failure: AdapterError | None = None
        tenants = [t for t in await self.tenants() if t.api_host]
        for tenant in tenants:
            assert tenant.api_host is not None
            client = self._regional_client(tenant.api_host)
            found: list[ConsoleThreat] = []
            try:
                async for rows in self._key_pages(client, ALERTS, {"X-Tenant-ID": tenant.id}):
                    for row in rows:
                        try:
                            alert = AlertRead.model_validate(row)
                        except ValidationError:
                            continue
                        threat = threat_of(alert, tenant.id)
                        if threat is not None:
                            found.append(threat)
            except (TransientVendorError, CredentialsError, NotFoundError) as exc:
                log.warning("alerts of tenant %s not read: %s", tenant.id, exc)
                failure = exc
                continue
            threats.extend(found)
            complete.add(tenant.id)
        if failure is not None and not complete:
            raise failure
        return ThreatSnapshot(threats=threats, complete_for=frozenset(complete))

    async def licence_use(self) -> list[LicenceUse]:
        who = await self.whoami()
        if who.idType != "partner" or not who.id:
            return []
        header = {"X-Partner-ID": who.id}
        today = self._clock().astimezone(UTC)
        months = [(today.year, today.month)]
        months.append((today.year - 1, 12) if today.month == 1 else (today.year, today.month - 1))
        for index, (year, month) in enumerate(months):
            path = BILLING_USAGE.format(year=year, month=month)
            try:
                rows = [row async for page in self._key_pages(self._global, path, header) for row in page]
            except NotFoundError:
                if index + 1 < len(months):
                    continue
                return []
            return self._usage(rows)
        return []

    @staticmethod
    def _usage(rows: list[dict[str, Any]]) -> list[LicenceUse]:
        totals: dict[tuple[str, str], tuple[str, str | None, int]] = {}
        for row in rows:
            try:
                usage = UsageRead.model_validate(row)
            except ValidationError:
                continue
            product = usage.productDescription or usage.productCode or usage.sku
            if not usage.accountId or not product:
                continue
            seats = usage.billableQuantity if usage.billableQuantity is not None else usage.actualQuantity
            key = (usage.accountId, usage.sku or usage.productCode or product)
            _, sku, before = totals.get(key, (product, usage.sku, 0))
            totals[key] = (product, sku, before + (seats or 0))
        return [
            LicenceUse(customer_id=account, product=product, sku=sku, seats_used=seats, seats_purchased=None)
            for (account, _), (product, sku, seats) in totals.items()
        ]

    def verify_webhook(self, request: WebhookRequest, secret: str) -> bool | None:
        return None

    def parse_webhook(self, request: WebhookRequest) -> list[AlertEvent]:
        raise WebhookParseError(
            "Sophos Central sends no webhooks (its APIs are polled); nothing can be read from this body",
            field="body",
        )


def create_adapter(ctx: ConnectionContext) -> SophosCentralAdapter:
    return SophosCentralAdapter(ctx)
