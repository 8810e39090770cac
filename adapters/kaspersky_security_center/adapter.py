"""Kaspersky Security Center (KSC) Open API adapter: virtual Administration Servers as customers,
their managed hosts with real-time protection, anti-virus bases, scans and detections, threats
derived from the hosts' uncured-object counts, and licence keys' seat use per virtual server.

Sources (../shared/specs/kaspersky-security-center/NOTES.md is the contract: KSC publishes no
machine-readable description):
- Transport (NOTES "Transport"; KSC/14 and /16 KSCAPI index.html): `https://<server>:13299`,
  every call `POST /api/v1.0/Class.Method` (case-sensitive) with the named arguments as a JSON body,
  the answer `{"PxgRetVal": …, <out parameters by name>}`; typed values inside "params" containers
  (`{"type": "datetime", "value": …}`) are unwrapped by `models.plain`. Each connection carries one
  synchronous call at a time: `options.max_concurrency` bounds parallel calls.
- Sign-in (NOTES "Auth / sessions / tenants"; KSC/16 KSCAPI a00608.html Session):
  `Session.StartSession` with `Authorization: KSCBasic user="<b64>", pass="<b64>", internal="1"`
  (`internal="0"` and `domain="<b64>"` for a domain account) answers the session token in
  `PxgRetVal`; every further call carries it as `X-KSC-Session`. A refused sign-in (401/403) is a
  `CredentialsError`; a 401 on a call (the session ended) starts one new session and repeats it.
- Customers = virtual Administration Servers: `VServers.GetVServers(lParentGroup=-1)` on the main
  server (KSC/16 KSCAPI a00632.html; attributes `KLVSRV_ID`, `KLVSRV_UID` (the virtual server's
  globally unique name), `KLVSRV_DN`, `KLVSRV_ENABLED` from KSC/14 a00020.html "List of virtual server
  attributes"). A customer's id is its `KLVSRV_UID`. Calls for one customer run in a session
  started with `X-KSC-VServer: <b64 KLVSRV_UID>` and carry that header too (NOTES; base64 as Kaspersky's
  KlAkOAPI wrapper sends it, seen through the code search).
- Hosts (NOTES "Devices (hosts) and status"; KSC/15 KSCAPI a00499_*.html):
  `HostGroup.FindHosts(wstrFilter, vecFieldsToReturn, vecFieldsToOrder, pParams{
  KLGRP_FIND_FROM_CUR_VS_ONLY: true}, lMaxLifeTime)` → `strAccessor`, then
  `ChunkAccessor.GetItemsCount(strAccessor)`, `ChunkAccessor.GetItemsChunk(strAccessor, nStart,
  nCount)` → `pChunk.KLCSP_ITERATOR_ARRAY`, and always `ChunkAccessor.Release(strAccessor)`. One
  `AgentPage` per chunk of `options.page_size` (KSC documents no maximum; the adapter allows 1000).
- Licence keys (NOTES "Licence usage per customer"; KSC/14 KSCAPI a00761.html LicenseKeys members,
  KSC/13 a00115.html "List of license key attributes", KSC/15 a00537 for the GroupSyncIterator the
  key enumeration answers): `LicenseKeys.EnumKeys(pFields, pFieldsToOrder, pOptions, lTimeoutSec)` →
  `wstrIterator`, read with `GroupSyncIterator.GetNextItems(szwIteratorId, nCount)` → `pData.
  KLCSP_ITERATOR_ARRAY`, `bEOF`, then `GroupSyncIterator.ReleaseIterator(szwIteratorId)`.
- Error bodies: `{"PxgError": {"code", "module", "message"}}` as the KlAkOAPI wrapper reads them (not
  in the stored NOTES; other bodies are reported as text). Rate limits: none documented; a 429 is
  honoured by the shared HTTP layer (`Retry-After`).

Status mapping (`KLHST_WKS_*`, NOTES): `agent_id` = `KLHST_WKS_HOSTNAME` (the server's host id);
`hostname` = `KLHST_WKS_DN`, else `KLHST_WKS_WINHOSTNAME`, else the first label of
`KLHST_WKS_FQDN`; `protection_enabled` = `KLHST_WKS_RTP_STATE` 4–8 (running, in any of its
protection levels), unknown for 0 or absent, off otherwise; `product` = `options.product` when the
status mask says real-time protection is installed (0x10), None when it says it is not;
`definitions_date` = `KLHST_WKS_RTP_AV_BASES_TIME`, `definitions_up_to_date` = not older than
`options.outdated_definitions_days`; `last_scan_at` = `KLHST_WKS_LAST_FULLSCAN`; `active_threats` =
`KLHST_WKS_UNCURED_COUNT`; `online` = status bit 0x8 (Network Agent alive); `last_seen_at` = the later
of `KLHST_WKS_LAST_VISIBLE` and `KLHST_WKS_LAST_NAGENT_CONNECTED`; `agent_version` =
`KLHST_WKS_NAG_VERSION`; `os_name` = `KLHST_WKS_OS_NAME`. Serial numbers and MAC addresses live in
hardware inventory whose attribute names the NOTES do not verify: not reported. Isolation: not
reported. A host without `KLHST_WKS_HOSTNAME` is in its page's `skipped`.

Incremental reads: KSC cannot list "hosts changed since" (the NOTES document no such filter, and a
host that goes silent changes no attribute), so every listing is complete and `changed_since` is
ignored.

Threats: the NOTES document no threat list, only per-host detection counts (event views through
`SrvView` are named but not described). Threats are therefore derived: one `ConsoleThreat` per host
with uncured objects, found by `HostGroup.FindHosts` with the filter `(KLHST_WKS_UNCURED_COUNT > 0)`;
its id is `<KLVSRV_UID>/<KLHST_WKS_HOSTNAME>`, its classification `uncured objects`, its mitigation
state `not_cured`, its severity from `KLHST_WKS_STATUS_ID` (1 critical, 2 warning). The snapshot is
complete for every customer read, so a host whose objects were cured closes its threat by absence.

Webhooks: KSC has no outbound push (NOTES "Threats / events": SIEM export and mail only):
`verify_webhook` answers None and `parse_webhook` raises `WebhookParseError`.
"""

from __future__ import annotations

import asyncio
import base64
import logging
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Mapping
from contextlib import aclosing
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
from adapters.common import BearerToken, TokenCache, server_root, settings_as
from adapters.errors import (
    AdapterError,
    CredentialsError,
    TransientVendorError,
    VendorRequestError,
    WebhookParseError,
)
from adapters.http import VendorHttpClient
from adapters.kaspersky_security_center.models import (
    AccessorWrite,
    ChunkWrite,
    EnumKeysWrite,
    FindHostsWrite,
    FindParamsWrite,
    GetVServersWrite,
    HostRead,
    KscCredentials,
    KscOptions,
    LicenceKeyRead,
    NextItemsWrite,
    PxgErrorRead,
    ReleaseIteratorWrite,
    VServerRead,
    plain,
)

log = logging.getLogger("adapters.kaspersky_security_center")

API_PREFIX = "/api/v1.0"
ALL_GROUPS = -1
"""`lParentGroup` for virtual servers of every group."""
ALL_HOSTS_FILTER = ""
THREAT_FILTER = "(KLHST_WKS_UNCURED_COUNT > 0)"
HOST_FIELDS = (
    "KLHST_WKS_HOSTNAME",
    "KLHST_WKS_DN",
    "KLHST_WKS_FQDN",
    "KLHST_WKS_WINHOSTNAME",
    "KLHST_WKS_GROUPID",
    "KLHST_WKS_STATUS",
    "KLHST_WKS_STATUS_ID",
    "KLHST_WKS_RTP_STATE",
    "KLHST_WKS_RTP_AV_BASES_TIME",
    "KLHST_WKS_LAST_FULLSCAN",
    "KLHST_WKS_VIRUS_COUNT",
    "KLHST_WKS_UNCURED_COUNT",
    "KLHST_WKS_LAST_VISIBLE",
    "KLHST_WKS_LAST_NAGENT_CONNECTED",
    "KLHST_WKS_NAG_VERSION",
    "KLHST_WKS_OS_NAME",
)
KEY_FIELDS = (
    "KLLIC_SERIAL",
    "KLLIC_PROD_NAME",
    "KLLIC_KEY_TYPE",
    "KLLIC_LIC_COUNT",
    "KLLIC_NHOSTS_ASCURRENT",
    "KLLIC_LIMIT_DATE",
)
STATUS_ALIVE = 0x8
STATUS_RTP_INSTALLED = 0x10
RTP_RUNNING = frozenset({4, 5, 6, 7, 8})
RTP_UNKNOWN = 0
SEVERITY = {1: "critical", 2: "warning"}
SESSION_LIFETIME = timedelta(minutes=30)
"""KSC ends idle sessions itself; a 401 starts a new one before this."""
MAX_CHUNKS = 100_000


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def kscbasic(credentials: KscCredentials) -> str:
    """The `Authorization` value of a KSC Basic sign-in (NOTES "Auth / sessions / tenants")."""
    user = b64(credentials.username)
    password = b64(credentials.password.get_secret_value())
    if credentials.domain:
        return f'KSCBasic user="{user}", pass="{password}", domain="{b64(credentials.domain)}", internal="0"'
    return f'KSCBasic user="{user}", pass="{password}", internal="1"'


def parse_ksc_error(response: httpx.Response) -> tuple[str, str | None]:
    """`{"PxgError": {code, module, message}}` → (message, None); other bodies as text."""
    try:
        body = response.json()
    except ValueError:
        text = response.text.strip()
        return (text[:300] or response.reason_phrase or f"HTTP {response.status_code}", None)
    if isinstance(body, dict) and isinstance(body.get("PxgError"), dict):
        error = PxgErrorRead.model_validate(body["PxgError"])
        code = f" (code {error.code})" if error.code is not None else ""
        return (f"{error.message or 'KSC error'}{code}", None)
    return (str(body)[:300], None)


def api_base(base_url: str) -> str:
    return server_root(base_url, vendor="Kaspersky Security Center", suffixes=(API_PREFIX, "/api"))


class _Scope:
    """One session: on the main Administration Server (`vserver` None) or on one virtual server."""

    def __init__(self, adapter: KscAdapter, vserver: str | None) -> None:
        self.vserver = vserver
        self._adapter = adapter
        self.starts = 0
        self._sessions = TokenCache(self._start, clock=adapter.clock, margin=timedelta(0))
        self.client = VendorHttpClient(
            adapter.api_base,
            headers={"Accept": "application/json", **self.vserver_header()},
            auth_headers=self._headers,
            error_parser=parse_ksc_error,
            max_concurrency=adapter.options.max_concurrency,
            budget=adapter.budget,
            transport=adapter.transport_factory(adapter.api_base),
            sleep=adapter.sleep,
        )

    def vserver_header(self) -> dict[str, str]:
        return {} if self.vserver is None else {"X-KSC-VServer": b64(self.vserver)}

    async def _headers(self, force: bool) -> Mapping[str, str]:
        return {"X-KSC-Session": (await self._sessions.get(force)).value}

    async def _start(self, now: datetime) -> BearerToken:
        self.starts += 1
        where = f"virtual server {self.vserver}" if self.vserver else "the Administration Server"
        try:
            response = await self.client.request(
                "POST",
                f"{API_PREFIX}/Session.StartSession",
                json={},
                headers={"Authorization": kscbasic(self._adapter.credentials)},
                authenticated=False,
                idempotent=True,
            )
        except CredentialsError as exc:
            raise CredentialsError(
                f"KSC refused the sign-in to {where}: {exc.message}", field="credentials", status=exc.status
            ) from None
        token = _answer(response).get("PxgRetVal")
        if not isinstance(token, str) or not token:
            raise TransientVendorError(f"Session.StartSession on {where} answered no session token")
        return BearerToken(value=token, expires_at=now + SESSION_LIFETIME)

    async def call(self, method: str, arguments: BaseModel | None = None) -> dict[str, Any]:
        body = {} if arguments is None else arguments.model_dump(exclude_none=True)
        response = await self.client.request("POST", f"{API_PREFIX}/{method}", json=body, idempotent=True)
        return _answer(response)

    async def release(self, method: str, arguments: BaseModel) -> None:
        """Free a server-side accessor or iterator; a failure only costs the server memory until the
        lifetime ends, so it is logged, not raised."""
        try:
            await self.call(method, arguments)
        except AdapterError as exc:
            log.warning("KSC %s failed: %s", method, exc)

    async def aclose(self) -> None:
        await self.client.aclose()


def _answer(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json() if response.content else {}
    except ValueError:
        raise TransientVendorError(f"unreadable answer from {response.request.url.path}") from None
    if not isinstance(body, dict):
        raise TransientVendorError(f"{response.request.url.path} answered something other than an object")
    if isinstance(body.get("PxgError"), dict):
        message, _ = parse_ksc_error(response)
        raise VendorRequestError(f"KSC {response.request.url.path}: {message}", status=response.status_code)
    return body


class KscAdapter:
    """SecurityAdapter for the Kaspersky Security Center Open API."""

    def __init__(self, ctx: ConnectionContext) -> None:
        self.credentials = settings_as(KscCredentials, ctx.credentials)
        self.options = settings_as(KscOptions, ctx.options)
        self.sleep: Callable[[float], Awaitable[None]] = ctx.sleep or asyncio.sleep
        clock = ctx.extra.get("clock")
        self.clock: Callable[[], datetime] = clock if callable(clock) else (lambda: datetime.now(UTC))
        self.api_base = api_base(ctx.base_url)
        self.transport_factory = ctx.transport_factory
        self.budget = ctx.budget
        self._scopes: dict[str | None, _Scope] = {}

    def scope(self, vserver: str | None) -> _Scope:
        found = self._scopes.get(vserver)
        if found is None:
            found = self._scopes[vserver] = _Scope(self, vserver)
        return found

    @property
    def session_starts(self) -> int:
        return sum(scope.starts for scope in self._scopes.values())

    async def aclose(self) -> None:
        scopes, self._scopes = list(self._scopes.values()), {}
        for scope in scopes:
            await scope.aclose()

    async def test_connection(self) -> None:
        """A session on the main server, then its virtual servers."""
        await self._vservers()

    # -- customers -------------------------------------------------------------------------------

    async def _vservers(self) -> list[VServerRead]:
        answer = await self.scope(None).call(
            "VServers.GetVServers", GetVServersWrite(lParentGroup=ALL_GROUPS)
        )
        rows = plain(answer.get("PxgRetVal")) or []
        if not isinstance(rows, list):
            raise TransientVendorError("VServers.GetVServers answered something other than an array")
        found: list[VServerRead] = []
        for row in rows:
            try:
                server = VServerRead.model_validate(row)
            except ValidationError:
                log.warning("KSC virtual server skipped: unreadable")
                continue
            if server.KLVSRV_UID:
                found.append(server)
        return found

    async def list_customers(self) -> AsyncIterator[SecurityCustomer]:
        for server in await self._vservers():
            assert server.KLVSRV_UID is not None
            yield SecurityCustomer(id=server.KLVSRV_UID, name=_vserver_name(server))

    # -- hosts -----------------------------------------------------------------------------------

    async def host_chunks(self, vserver: str, host_filter: str) -> AsyncGenerator[list[dict[str, Any]], None]:
        """The hosts of one virtual server matching `host_filter`, a chunk at a time; the accessor
        is released however the reading ends."""
        scope = self.scope(vserver)
        found = await scope.call(
            "HostGroup.FindHosts",
            FindHostsWrite(
                wstrFilter=host_filter,
                vecFieldsToReturn=list(HOST_FIELDS),
                vecFieldsToOrder=[],
                pParams=FindParamsWrite(KLGRP_FIND_FROM_CUR_VS_ONLY=True),
                lMaxLifeTime=self.options.accessor_lifetime_seconds,
            ),
        )
        accessor = found.get("strAccessor")
        if not isinstance(accessor, str) or not accessor:
            raise TransientVendorError("HostGroup.FindHosts answered no accessor")
        try:
            counted = await scope.call("ChunkAccessor.GetItemsCount", AccessorWrite(strAccessor=accessor))
            total = plain(counted.get("PxgRetVal"))
            if not isinstance(total, int) or total < 0:
                raise TransientVendorError("ChunkAccessor.GetItemsCount answered no count")
            start = 0
            for _ in range(MAX_CHUNKS):
                if start >= total:
                    return
                chunk = await scope.call(
                    "ChunkAccessor.GetItemsChunk",
                    ChunkWrite(strAccessor=accessor, nStart=start, nCount=self.options.page_size),
                )
                rows = (plain(chunk.get("pChunk")) or {}).get("KLCSP_ITERATOR_ARRAY") or []
                if not isinstance(rows, list) or not rows:
                    return
                yield [row for row in rows if isinstance(row, dict)]
                start += len(rows)
            raise TransientVendorError(f"more than {MAX_CHUNKS} chunks of hosts")
        finally:
            await scope.release("ChunkAccessor.Release", AccessorWrite(strAccessor=accessor))

    async def iter_agent_pages(self, changed_since: datetime | None) -> AsyncGenerator[AgentPage, None]:
        """Every host of every virtual server, a chunk per page (`changed_since` cannot be applied:
        module docstring)."""
        for server in await self._vservers():
            assert server.KLVSRV_UID is not None
            name = _vserver_name(server)
            async with aclosing(self.host_chunks(server.KLVSRV_UID, ALL_HOSTS_FILTER)) as chunks:
                async for rows in chunks:
                    page = self.agent_page(rows, server.KLVSRV_UID, name)
                    if page.agents or page.skipped:
                        yield page

    def agent_page(self, rows: list[dict[str, Any]], customer_id: str, name: str) -> AgentPage:
        """One chunk of hosts read; those without their id (or unreadable) in `skipped`."""
        page = AgentPage(agents=[])
        for row in rows:
            try:
                host = HostRead.model_validate(row)
            except ValidationError as exc:
                first = exc.errors()[0]
                where = ".".join(str(p) for p in first["loc"]) or "host"
                page.skipped.append(
                    SkippedEndpoint(
                        endpoint_id=str(row.get("KLHST_WKS_HOSTNAME") or "?"),
                        field=where,
                        message=first["msg"],
                    )
                )
                continue
            if not host.KLHST_WKS_HOSTNAME:
                page.skipped.append(
                    SkippedEndpoint(endpoint_id="?", field="KLHST_WKS_HOSTNAME", message="missing")
                )
                continue
            page.agents.append(self.agent_status(host, customer_id, name))
        return page

    def agent_status(self, host: HostRead, customer_id: str, customer_name: str | None) -> AgentStatus:
        assert host.KLHST_WKS_HOSTNAME is not None
        status = host.KLHST_WKS_STATUS
        rtp = host.KLHST_WKS_RTP_STATE
        protection = None if rtp is None or rtp == RTP_UNKNOWN else rtp in RTP_RUNNING
        product: str | None = None
        if status is not None and status & STATUS_RTP_INSTALLED:
            product = self.options.product
        bases = host.KLHST_WKS_RTP_AV_BASES_TIME
        up_to_date = None
        if bases is not None:
            age = self.clock() - _aware(bases)
            up_to_date = age <= timedelta(days=self.options.outdated_definitions_days)
        seen = [t for t in (host.KLHST_WKS_LAST_VISIBLE, host.KLHST_WKS_LAST_NAGENT_CONNECTED) if t]
        return AgentStatus(
            agent_id=host.KLHST_WKS_HOSTNAME,
            customer_id=customer_id,
            customer_name=customer_name,
            hostname=host_name(host),
            os_name=host.KLHST_WKS_OS_NAME,
            product=product,
            agent_version=host.KLHST_WKS_NAG_VERSION,
            protection_enabled=protection,
            definitions_up_to_date=up_to_date,
            definitions_date=_aware(bases) if bases else None,
            last_scan_at=_aware(host.KLHST_WKS_LAST_FULLSCAN) if host.KLHST_WKS_LAST_FULLSCAN else None,
            active_threats=host.KLHST_WKS_UNCURED_COUNT,
            online=None if status is None else bool(status & STATUS_ALIVE),
            last_seen_at=max(_aware(t) for t in seen) if seen else None,
        )

    # -- threats ---------------------------------------------------------------------------------

    async def list_threats(self, since: datetime | None) -> ThreatSnapshot:
        """One threat per host with uncured objects, per virtual server (module docstring); `since`
        has no use: KSC keeps no resolved ones to report."""
        threats: list[ConsoleThreat] = []
        complete: set[str] = set()
        for server in await self._vservers():
            uid = server.KLVSRV_UID
            assert uid is not None
            found: list[ConsoleThreat] = []
            async with aclosing(self.host_chunks(uid, THREAT_FILTER)) as chunks:
                async for rows in chunks:
                    for row in rows:
                        threat = self.threat_of(row, uid)
                        if threat is not None:
                            found.append(threat)
            threats.extend(found)
            complete.add(uid)
        return ThreatSnapshot(threats=threats, complete_for=frozenset(complete))

    def threat_of(self, row: Mapping[str, Any], customer_id: str) -> ConsoleThreat | None:
        try:
            host = HostRead.model_validate(row)
        except ValidationError:
            log.warning("KSC host %s skipped in threats: unreadable", row.get("KLHST_WKS_HOSTNAME", "?"))
            return None
        uncured = host.KLHST_WKS_UNCURED_COUNT or 0
        if not host.KLHST_WKS_HOSTNAME or uncured <= 0:
            return None
        detected = host.KLHST_WKS_VIRUS_COUNT
        name = f"{uncured} uncured object{'s' if uncured != 1 else ''}"
        if detected is not None:
            name += f" ({detected} detected)"
        seen = [t for t in (host.KLHST_WKS_LAST_NAGENT_CONNECTED, host.KLHST_WKS_LAST_VISIBLE) if t]
        at = max(_aware(t) for t in seen) if seen else self.clock()
        return ConsoleThreat(
            threat_id=f"{customer_id}/{host.KLHST_WKS_HOSTNAME}",
            customer_id=customer_id,
            agent_id=host.KLHST_WKS_HOSTNAME,
            hostname=host_name(host),
            name=name,
            classification="uncured objects",
            severity=SEVERITY.get(host.KLHST_WKS_STATUS_ID or 0),
            mitigation_state="not_cured",
            resolved=False,
            detected_at=at,
            updated_at=at,
        )

    # -- licences --------------------------------------------------------------------------------

    async def licence_keys(self, vserver: str) -> list[LicenceKeyRead]:
        scope = self.scope(vserver)
        answer = await scope.call(
            "LicenseKeys.EnumKeys",
            EnumKeysWrite(
                pFields=list(KEY_FIELDS),
                pFieldsToOrder=[],
                pOptions={},
                lTimeoutSec=self.options.accessor_lifetime_seconds,
            ),
        )
        iterator = answer.get("wstrIterator")
        if not isinstance(iterator, str) or not iterator:
            raise TransientVendorError("LicenseKeys.EnumKeys answered no iterator")
        keys: list[LicenceKeyRead] = []
        try:
            for _ in range(MAX_CHUNKS):
                items = await scope.call(
                    "GroupSyncIterator.GetNextItems",
                    NextItemsWrite(szwIteratorId=iterator, nCount=self.options.page_size),
                )
                rows = (plain(items.get("pData")) or {}).get("KLCSP_ITERATOR_ARRAY") or []
                for row in rows if isinstance(rows, list) else []:
                    try:
                        keys.append(LicenceKeyRead.model_validate(row))
                    except ValidationError:
                        log.warning("KSC licence key skipped: unreadable")
                if items.get("bEOF") is not False or not rows:
                    return keys
            raise TransientVendorError(f"more than {MAX_CHUNKS} chunks of licence keys")
        finally:
            await scope.release(
                "GroupSyncIterator.ReleaseIterator", ReleaseIteratorWrite(szwIteratorId=iterator)
            )

    async def licence_use(self) -> list[LicenceUse]:
        """One `LicenceUse` per licence key of each virtual server: its product name, serial (as
        the SKU), hosts using it as the active key and its licence count (None when absent)."""
        uses: list[LicenceUse] = []
        for server in await self._vservers():
            assert server.KLVSRV_UID is not None
            for key in await self.licence_keys(server.KLVSRV_UID):
                if not key.KLLIC_PROD_NAME and not key.KLLIC_SERIAL:
                    continue
                uses.append(
                    LicenceUse(
                        customer_id=server.KLVSRV_UID,
                        product=key.KLLIC_PROD_NAME or f"Key {key.KLLIC_SERIAL}",
                        sku=key.KLLIC_SERIAL,
                        seats_used=max(0, key.KLLIC_NHOSTS_ASCURRENT or 0),
                        seats_purchased=key.KLLIC_LIC_COUNT,
                    )
                )
        return uses

    # -- webhooks --------------------------------------------------------------------------------

    def verify_webhook(self, request: WebhookRequest, secret: str) -> bool | None:
        """KSC signs nothing: it has no push."""
        return None

    def parse_webhook(self, request: WebhookRequest) -> list[AlertEvent]:
        raise WebhookParseError(
            "Kaspersky Security Center sends no webhooks; its status is read by polling", field="body"
        )


def host_name(host: HostRead) -> str:
    for value in (host.KLHST_WKS_DN, host.KLHST_WKS_WINHOSTNAME):
        if value and value.strip():
            return value.strip()
    if host.KLHST_WKS_FQDN and host.KLHST_WKS_FQDN.strip():
        return host.KLHST_WKS_FQDN.strip().split(".")[0]
    return host.KLHST_WKS_HOSTNAME or "?"


def _vserver_name(server: VServerRead) -> str:
    return server.KLVSRV_DN or server.KLVSRV_UID or f"Virtual server {server.KLVSRV_ID}"


def _aware(when: datetime) -> datetime:
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)


def create_adapter(ctx: ConnectionContext) -> KscAdapter:
    return KscAdapter(ctx)


__all__ = ["KscAdapter", "api_base", "create_adapter", "kscbasic", "parse_ksc_error"]
