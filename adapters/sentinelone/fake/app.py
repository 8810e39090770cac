"""The HTTP face of the fake SentinelOne console: `ApiToken` auth, the cursor-paged lists of sites,
agents and threats in the 2.1 envelope, the filters the adapter sends, validation errors in the
console's shape, and fault hooks."""

from __future__ import annotations

import asyncio
import base64
import binascii
from collections import Counter
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import TypeVar

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from adapters.sentinelone.fake.seed import SentinelOneSeeding
from adapters.sentinelone.fake.store import FakeAgent, FakeSite, FakeThreat, Fault, Row
from adapters.sentinelone.models import API_PREFIX, MAX_PAGE_SIZE, iso_z
from adapters.testing.faults import AsgiFake, CallLog, PathFaultHooks, first_fault

T = TypeVar("T")
PAGING = frozenset({"limit", "cursor", "skip", "skipCount", "countOnly", "sortBy", "sortOrder"})
QUERIES = {
    "/sites": PAGING | {"siteIds", "states", "accountIds"},
    "/agents": PAGING | {"siteIds", "accountIds", "isDecommissioned", "updatedAt__gt", "updatedAt__gte"},
    "/threats": PAGING | {"siteIds", "accountIds", "resolved", "updatedAt__gt", "updatedAt__gte"},
}
"""The query parameters each list takes here (the console's own are more; the fake implements these)."""
DEFAULT_LIMIT = 10


class SentinelOneApiError(Exception):
    """An answer in the console's error shape `{"errors": [{code, title, detail}], "data": null}`."""

    def __init__(
        self, status: int, code: int, title: str, detail: object = None, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(title)
        self.status = status
        self.code = code
        self.title = title
        self.detail = detail
        self.headers = headers or {}

    def response(self) -> JSONResponse:
        body = {"errors": [{"code": self.code, "title": self.title, "detail": self.detail}], "data": None}
        return JSONResponse(body, status_code=self.status, headers=self.headers)


def invalid(name: str, message: str) -> SentinelOneApiError:
    return SentinelOneApiError(400, 4000010, "Validation Error", {name: [message]})


def _stamp(when: datetime | None) -> str | None:
    return None if when is None else iso_z(when)


class SentinelOneFake(SentinelOneSeeding, AsgiFake, PathFaultHooks[Fault], CallLog):
    """One fake console. Construct, seed, then point an adapter at `app` (any host).

    `call_count` keys are `"GET /agents"` (paths under `/web/api/v2.1`)."""

    fault_type = Fault

    def _build_app(self) -> Starlette:
        methods = ["GET", "POST", "PUT", "DELETE"]
        return Starlette(routes=[Route("/{path:path}", self._dispatch, methods=methods)])

    # -- wire rendering --------------------------------------------------------------------------

    def site_row(self, site: FakeSite) -> Row:
        api_name, display = site.bundle
        return {
            "accountId": site.account_id,
            "accountName": self.account_name,
            "activeLicenses": site.active_licenses,
            "createdAt": _stamp(site.created_at),
            "creator": "Connector Admin",
            "creatorId": str(int(site.account_id) + 7),
            "description": None,
            "expiration": None,
            "externalId": site.external_id,
            "healthStatus": True,
            "id": site.id,
            "isDefault": False,
            "licenses": {
                "bundles": [
                    {
                        "displayName": display,
                        "majorVersion": 1,
                        "minorVersion": 0,
                        "name": api_name,
                        "surfaces": [
                            {
                                "count": -1 if site.unlimited_licenses else site.total_licenses,
                                "name": "Total Agents",
                            }
                        ],
                        "totalSurfaces": -1 if site.unlimited_licenses else site.total_licenses,
                    }
                ],
                "modules": [],
                "settings": [],
            },
            "name": site.name,
            "registrationToken": None,
            "siteType": site.site_type,
            "sku": site.sku,
            "state": site.state,
            "suite": site.sku,
            "totalLicenses": site.total_licenses,
            "unlimitedExpiration": True,
            "unlimitedLicenses": site.unlimited_licenses,
            "updatedAt": _stamp(site.updated_at),
            "usageType": "customer",
        }

    def open_threat_counts(self) -> Counter[str]:
        """Open threats per agent id, counted once per answer rather than once per agent."""
        return Counter(t.agent_id for t in self.threats.values() if t.incident_status != "resolved")

    def agent_row(self, agent: FakeAgent, open_threats: Counter[str] | None = None) -> Row:
        site = self.sites[agent.site_id]
        active = (open_threats if open_threats is not None else self.open_threat_counts())[agent.id]
        row: Row = {
            "accountId": site.account_id,
            "accountName": self.account_name,
            "activeThreats": active,
            "agentVersion": agent.agent_version,
            "computerName": agent.name,
            "createdAt": _stamp(agent.registered_at),
            "domain": "CORP",
            "externalId": "",
            "externalIp": "203.0.113.10",
            "groupId": str(int(site.id) + 1),
            "groupName": "Default Group",
            "id": agent.id,
            "infected": active > 0,
            "isActive": agent.is_active,
            "isDecommissioned": agent.decommissioned,
            "isPendingUninstall": False,
            "isUninstalled": False,
            "isUpToDate": agent.is_up_to_date,
            "lastActiveDate": _stamp(agent.last_active),
            "lastIpToMgmt": "10.0.0.15",
            "lastLoggedInUserName": "user",
            "lastSuccessfulScanDate": _stamp(agent.last_scan),
            "machineType": agent.machine_type,
            "mitigationMode": "protect",
            "mitigationModeSuspicious": "detect",
            "modelName": "Dell Inc. - OptiPlex 7090",
            "networkInterfaces": [
                {
                    "gatewayIp": "10.0.0.1",
                    "gatewayMacAddress": "00:00:5e:00:53:01",
                    "id": str(int(agent.id) + n + 1),
                    "inet": [f"10.0.{n}.{int(agent.id) % 250 + 2}"],
                    "inet6": [],
                    "name": f"Ethernet {n}",
                    "physical": mac.lower(),
                }
                for n, mac in enumerate(agent.macs)
            ],
            "networkStatus": agent.network_status,
            "operationalState": agent.operational_state,
            "osName": agent.os_name,
            "osRevision": "22631",
            "osType": "windows",
            "registeredAt": _stamp(agent.registered_at),
            "scanFinishedAt": _stamp(agent.last_scan),
            "scanStatus": "finished",
            "serialNumber": agent.serial,
            "siteId": site.id,
            "siteName": site.name,
            "threatRebootRequired": False,
            "updatedAt": _stamp(agent.updated_at),
            "userActionsNeeded": [],
            "uuid": agent.uuid,
        }
        for name, value in self.corrupted.get(agent.id, {}).items():
            if value is None:
                row.pop(name, None)
            else:
                row[name] = value
        return row

    def threat_row(self, threat: FakeThreat) -> Row:
        agent = self.agents[threat.agent_id]
        site = self.sites[agent.site_id]
        mitigated = threat.mitigation_status == "mitigated"
        return {
            "agentDetectionInfo": {"agentMitigationMode": "protect", "agentVersion": agent.agent_version},
            "agentRealtimeInfo": {
                "accountId": site.account_id,
                "accountName": self.account_name,
                "activeThreats": self.active_threats(agent.id),
                "agentComputerName": agent.name,
                "agentDomain": "CORP",
                "agentId": agent.id,
                "agentInfected": self.active_threats(agent.id) > 0,
                "agentIsActive": agent.is_active,
                "agentIsDecommissioned": agent.decommissioned,
                "agentMachineType": agent.machine_type,
                "agentNetworkStatus": agent.network_status,
                "agentOsName": agent.os_name,
                "agentOsType": "windows",
                "agentUuid": agent.uuid,
                "agentVersion": agent.agent_version,
                "siteId": site.id,
                "siteName": site.name,
            },
            "id": threat.id,
            "indicators": [],
            "mitigationStatus": (
                [{"action": "quarantine", "status": "success", "lastUpdate": _stamp(threat.updated_at)}]
                if mitigated
                else []
            ),
            "threatInfo": {
                "analystVerdict": "true_positive" if mitigated else "undefined",
                "classification": threat.classification,
                "confidenceLevel": threat.confidence,
                "createdAt": _stamp(threat.created_at),
                "filePath": f"\\Device\\HarddiskVolume3\\Users\\user\\Downloads\\{threat.name}.exe",
                "identifiedAt": _stamp(threat.created_at),
                "incidentStatus": threat.incident_status,
                "incidentStatusDescription": threat.incident_status.replace("_", " ").title(),
                "mitigationStatus": threat.mitigation_status,
                "mitigationStatusDescription": threat.mitigation_status.replace("_", " ").capitalize(),
                "sha1": f"{int(threat.id):040x}"[-40:],
                "threatId": threat.id,
                "threatName": threat.name,
                "updatedAt": _stamp(threat.updated_at),
            },
            "whiteningOptions": ["hash"],
        }

    # -- HTTP ------------------------------------------------------------------------------------

    async def _dispatch(self, request: Request) -> Response:
        full = "/" + request.path_params["path"].strip("/")
        path = full.removeprefix(API_PREFIX) if full.startswith(API_PREFIX + "/") else full
        self.calls[f"{request.method} {path}"] += 1
        self.requests.append({"method": request.method, "path": path, "params": dict(request.query_params)})
        if self.latency:
            await asyncio.sleep(self.latency)
        try:
            response = self._handle(request, full, path)
        except SentinelOneApiError as exc:
            response = exc.response()
        self.statuses[response.status_code] += 1
        return response

    def _handle(self, request: Request, full: str, path: str) -> Response:
        if not full.startswith(API_PREFIX + "/"):
            raise SentinelOneApiError(404, 4040010, "Not Found", f"No route {full}")
        fault = first_fault(self.faults, request.method, path)
        if fault is not None:
            fault.claim()
            title = "Too Many Requests" if fault.status == 429 else "Internal Server Error"
            raise SentinelOneApiError(
                fault.status, fault.status * 10000 + 10, title, None, fault.retry_headers()
            )
        if (request.headers.get("authorization") or "") != f"ApiToken {self.api_token}":
            raise SentinelOneApiError(401, 4010010, "Authentication Failed")
        if request.method != "GET" or path not in QUERIES:
            raise SentinelOneApiError(404, 4040010, "Not Found", f"No route {request.method} {full}")
        unknown = sorted(set(request.query_params) - QUERIES[path])
        if unknown:
            raise invalid(unknown[0], "Unknown field.")
        if path == "/sites":
            sites = self._filter_sites(request)
            chunk, cursor = self._page(request, "site", sites, lambda s: s.id)
            data = {
                "allSites": {
                    "activeLicenses": sum(s.active_licenses for s in sites),
                    "totalLicenses": sum(s.total_licenses for s in sites),
                },
                "sites": [self.site_row(s) for s in chunk],
            }
            return self._answer(data, len(sites), cursor)
        if path == "/agents":
            agents = self._filter_agents(request)
            chunk_a, cursor = self._page(request, "agent", agents, lambda a: a.id)
            counts = self.open_threat_counts()
            return self._answer([self.agent_row(a, counts) for a in chunk_a], len(agents), cursor)
        threats = self._filter_threats(request)
        chunk_t, cursor = self._page(request, "threat", threats, lambda t: t.id)
        return self._answer([self.threat_row(t) for t in chunk_t], len(threats), cursor)

    @staticmethod
    def _answer(data: object, total: int, cursor: str | None) -> JSONResponse:
        return JSONResponse({"data": data, "pagination": {"nextCursor": cursor, "totalItems": total}})

    # -- parameters ------------------------------------------------------------------------------

    @staticmethod
    def _ids(request: Request, name: str) -> set[str] | None:
        raw = request.query_params.get(name)
        if raw is None:
            return None
        ids = {v.strip() for v in raw.split(",") if v.strip()}
        if not ids or any(not v.isdigit() for v in ids):
            raise invalid(name, "Not a valid list of ids.")
        return ids

    @staticmethod
    def _bools(request: Request, name: str) -> set[bool] | None:
        raw = request.query_params.get(name)
        if raw is None:
            return None
        values = [v.strip().lower() for v in raw.split(",")]
        if any(v not in ("true", "false") for v in values):
            raise invalid(name, "Not a valid boolean.")
        return {v == "true" for v in values}

    @staticmethod
    def _date(request: Request, name: str) -> datetime | None:
        raw = request.query_params.get(name)
        if raw is None:
            return None
        try:
            when = datetime.fromisoformat(raw.replace("Z", "+00:00"))
        except ValueError:
            raise invalid(name, "Not a valid datetime.") from None
        if when.tzinfo is None:
            raise invalid(name, "Not a valid datetime.")
        return when

    def _changed(self, request: Request, stamp: datetime) -> bool:
        after = self._date(request, "updatedAt__gt")
        from_ = self._date(request, "updatedAt__gte")
        return (after is None or stamp > after) and (from_ is None or stamp >= from_)

    def _filter_sites(self, request: Request) -> list[FakeSite]:
        ids = self._ids(request, "siteIds")
        states = request.query_params.get("states")
        wanted = set(states.split(",")) if states else None
        return [
            s
            for s in self.sites.values()
            if (ids is None or s.id in ids) and (wanted is None or s.state in wanted)
        ]

    def _filter_agents(self, request: Request) -> list[FakeAgent]:
        ids = self._ids(request, "siteIds")
        decommissioned = self._bools(request, "isDecommissioned")
        return [
            a
            for a in self.agents.values()
            if (ids is None or a.site_id in ids)
            and (decommissioned is None or a.decommissioned in decommissioned)
            and self._changed(request, a.updated_at)
        ]

    def _filter_threats(self, request: Request) -> list[FakeThreat]:
        ids = self._ids(request, "siteIds")
        resolved = self._bools(request, "resolved")
        return [
            t
            for t in self.threats.values()
            if (ids is None or self.agents[t.agent_id].site_id in ids)
            and (resolved is None or (t.incident_status == "resolved") in resolved)
            and self._changed(request, t.updated_at)
        ]

    def _page(
        self, request: Request, kind: str, items: Sequence[T], key: Callable[[T], str]
    ) -> tuple[list[T], str | None]:
        """`limit` items after the cursor's id, in id order, and the cursor of the next page."""
        raw_limit = request.query_params.get("limit")
        try:
            limit = DEFAULT_LIMIT if raw_limit is None else int(raw_limit)
        except ValueError:
            raise invalid("limit", "Not a valid integer.") from None
        if not 1 <= limit <= MAX_PAGE_SIZE:
            raise invalid("limit", f"Must be between 1 and {MAX_PAGE_SIZE}.")
        ordered = sorted(items, key=lambda item: int(key(item)))
        after = 0
        cursor = request.query_params.get("cursor")
        if cursor:
            try:
                prefix, _, last = base64.b64decode(cursor, validate=True).decode().partition(":")
            except (binascii.Error, UnicodeDecodeError):
                raise invalid("cursor", "Invalid cursor.") from None
            if prefix != f"{kind}_id" or not last.isdigit():
                raise invalid("cursor", "Invalid cursor.")
            after = int(last)
        rest = [item for item in ordered if int(key(item)) > after]
        chunk = rest[:limit]
        if len(rest) <= limit:
            return chunk, None
        return chunk, base64.b64encode(f"{kind}_id:{key(chunk[-1])}".encode()).decode()
