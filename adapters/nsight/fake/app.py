"""The HTTP face of the fake N-sight: `GET /api/?apikey=&service=` answered in ISO-8859-1 XML, with
fault hooks applied."""

from __future__ import annotations

import asyncio
from collections import Counter
from xml.sax.saxutils import escape

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from adapters.nsight.fake.seed import NsightSeeding
from adapters.nsight.fake.store import (
    BOMB,
    FakeCheck,
    FakeDevice,
    cdata,
    wire_time,
)
from adapters.testing.faults import AsgiFake, first_fault


class NsightApiError(Exception):
    """A FAIL answer: with `code`, the `<error><errorcode/><message/></error>` shape (3 = login
    failed, 4 = invalid parameter); without, the `<msg>` shape."""

    def __init__(self, message: str, status: int = 200, code: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.code = code

    def body(self) -> str:
        if self.code is None:
            return f"<msg>{escape(self.message)}</msg>"
        return f"<error><errorcode>{self.code}</errorcode><message>{escape(self.message)}</message></error>"


LOGIN_FAILED = 3
INVALID_PARAMETER = 4


class NsightFake(NsightSeeding, AsgiFake):
    """One fake N-sight account. Construct, seed, then point an adapter at `app`."""

    def _build_app(self) -> Starlette:
        return Starlette(routes=[Route("/api/", self._dispatch), Route("/api", self._dispatch)])

    # -- HTTP -----------------------------------------------------------------------------------

    def _result(self, inner: str, status: str = "OK") -> bytes:
        created = self.now.strftime("%Y-%m-%dT%H:%M:%S+00:00")
        text = (
            '<?xml version="1.0" encoding="ISO-8859-1"?>\n'
            f'<result created="{created}" host="{escape(self.host)}" status="{status}">{inner}</result>'
        )
        return text.encode("iso-8859-1", errors="xmlcharrefreplace")

    def _xml_response(
        self, body: bytes, status: int = 200, headers: dict[str, str] | None = None
    ) -> Response:
        return Response(body, status_code=status, media_type="text/xml; charset=ISO-8859-1", headers=headers)

    async def _dispatch(self, request: Request) -> Response:
        params = dict(request.query_params)
        service = params.get("service", "")
        self.calls[service] += 1
        self.requests.append(params)
        if self.latency:
            await asyncio.sleep(self.latency)
        fault = first_fault(self.faults, None, service)
        if fault is not None:
            fault.claim()
            message = "Too many requests" if fault.status == 429 else "Internal server error"
            return self._xml_response(
                self._result(f"<msg>{message}</msg>", "FAIL"), fault.status, fault.retry_headers()
            )
        if params.get("apikey") != self.api_key:
            refused = NsightApiError("Login failed", code=LOGIN_FAILED)
            return self._xml_response(self._result(refused.body(), "FAIL"), self.auth_failure_status)
        try:
            body = self._service(service, params)
        except NsightApiError as exc:
            return self._xml_response(self._result(exc.body(), "FAIL"), exc.status)
        for body_fault in self.body_faults:
            if body_fault.matches(service, params):
                body_fault.fired += 1
                body = BOMB if body_fault.kind == "bomb" else body[: len(body) // 2]
                break
        return self._xml_response(body)

    def _require(self, params: dict[str, str], name: str) -> int:
        value = params.get(name, "")
        if not value.isdigit():
            raise NsightApiError(f"Missing or invalid parameter {name}", code=INVALID_PARAMETER)
        return int(value)

    def _service(self, service: str, params: dict[str, str]) -> bytes:
        handlers = {
            "list_clients": self._list_clients,
            "list_sites": self._list_sites,
            "list_servers": lambda p: self._list_devices(p, "server"),
            "list_workstations": lambda p: self._list_devices(p, "workstation"),
            "list_failing_checks": self._list_failing_checks,
            "list_mav_scans": self._list_mav_scans,
            "list_mav_threats": self._list_mav_threats,
            "mav_scan_start": self._mav_scan_start,
            "mav_definitions_update": self._mav_definitions_update,
        }
        handler = handlers.get(service)
        if handler is None:
            raise NsightApiError(f"Unknown service {service}")
        return handler(params)

    def _counts(self, client_id: int) -> Counter[str]:
        counts: Counter[str] = Counter()
        for device in self.devices.values():
            if self.sites[device.site_id].client_id == client_id:
                counts[device.kind] += 1
        return counts

    def _list_clients(self, params: dict[str, str]) -> bytes:
        wanted = params.get("devicetype")
        parts: list[str] = []
        for client in self.clients.values():
            counts = self._counts(client.id)
            if wanted and not counts[wanted]:
                continue
            parts.append(
                f"<client><name>{cdata(client.name)}</name><clientid>{client.id}</clientid>"
                "<view_dashboard>0</view_dashboard><view_wkstsn_assets>0</view_wkstsn_assets>"
                "<dashboard_username></dashboard_username><timezone>Europe/London</timezone>"
                f"<creation_date>{client.created}</creation_date>"
                f"<server_count>{counts['server']}</server_count>"
                f"<workstation_count>{counts['workstation']}</workstation_count>"
                "<mobile_device_count>0</mobile_device_count>"
                f"<device_count>{counts['server'] + counts['workstation']}</device_count></client>"
            )
        return self._result("<items>" + "".join(parts) + "</items>")

    def _list_sites(self, params: dict[str, str]) -> bytes:
        client_id = self._require(params, "clientid")
        if client_id not in self.clients:
            raise NsightApiError("Invalid clientid", code=INVALID_PARAMETER)
        parts = [
            f"<site><siteid>{site.id}</siteid><name>{cdata(site.name)}</name>"
            "<connection_ok>1</connection_ok><creation_date>2024-01-15</creation_date>"
            "<primary_router></primary_router><secondary_router></secondary_router></site>"
            for site in self.sites.values()
            if site.client_id == client_id
        ]
        return self._result("<items>" + "".join(parts) + "</items>")

    def _device_xml(self, device: FakeDevice) -> str:
        fields: dict[str, str | None] = {
            "guid": f"{device.id:08x}-0000-4000-8000-{device.site_id:012x}",
            "name": cdata(device.name),
            "description": "",
            "install_date": "2024-02-01",
            "last_boot_time": wire_time(device.last_boot),
            "dsc_active": "1",
            "utc_apt": wire_time(device.last_contact),
            "utc_offset": "0",
            "user": escape(device.user),
            "domain": "corp.local",
            "manufacturer": "LENOVO",
            "model": "20XW",
            "ip": device.ip,
            "os": escape(device.os),
            f"{device.kind}id": str(device.id),
            "agent_version": "10_13_3",
            "online": "1",  # a real dashboard reports 1 for offline devices too
            "active_247": "1",
            "check_interval_247": "5",
            "status_247": "1" if device.online else "5",
        }
        for name, value in self.broken.get(device.id, {}).items():
            fields[name] = None if value is None else escape(value)
        body = "".join(
            f"<{name} />" if value == "" else f"<{name}>{value}</{name}>"
            for name, value in fields.items()
            if value is not None
        )
        return f"<{device.kind}>{body}</{device.kind}>"

    def _list_devices(self, params: dict[str, str], kind: str) -> bytes:
        site_id = self._require(params, "siteid")
        if site_id not in self.sites:
            raise NsightApiError("Invalid siteid", code=INVALID_PARAMETER)
        parts = [
            self._device_xml(d) for d in self.devices.values() if d.site_id == site_id and d.kind == kind
        ]
        return self._result("<items>" + "".join(parts) + "</items>")

    def _list_failing_checks(self, params: dict[str, str]) -> bytes:
        client_filter = self._require(params, "clientid") if "clientid" in params else None
        if client_filter is not None and client_filter not in self.clients:
            raise NsightApiError("Invalid clientid", code=INVALID_PARAMETER)
        check_type = params.get("check_type", "random")
        by_device: dict[int, list[FakeCheck]] = {}
        for check in self.checks.values():
            if not check.failing:
                continue
            if check_type == "checks" and check.check_type == 1023:
                continue
            if check_type == "tasks" and check.check_type != 1023:
                continue
            by_device.setdefault(check.device_id, []).append(check)
        offline = {d.id for d in self.devices.values() if not d.online} if check_type != "tasks" else set()
        clients: dict[int, dict[int, list[int]]] = {}
        for device_id in sorted(set(by_device) | offline):
            site = self.sites[self.devices[device_id].site_id]
            if client_filter is not None and site.client_id != client_filter:
                continue
            clients.setdefault(site.client_id, {}).setdefault(site.id, []).append(device_id)
        parts: list[str] = []
        for client_id, sites in clients.items():
            site_parts: list[str] = []
            for site_id, device_ids in sites.items():
                groups: dict[str, list[str]] = {"server": [], "workstation": []}
                for device_id in device_ids:
                    device = self.devices[device_id]
                    offline_xml = (
                        "<offline><description>offline - no response from agent</description></offline>"
                        if device_id in offline
                        else ""
                    )
                    check_xml = "".join(
                        f"<check><checkid>{c.id}</checkid><check_type>{c.check_type}</check_type>"
                        f"<description>{cdata(c.description)}</description>"
                        f"<date>{c.utc_run:%Y-%m-%d}</date><time>{c.utc_run:%H:%M:%S}</time>"
                        f"<utc_run>{wire_time(c.utc_run)}</utc_run>"
                        f"<formatted_output>{cdata(c.output)}</formatted_output>"
                        f"<consecutive_fails>{c.consecutive_fails}</consecutive_fails></check>"
                        for c in by_device.get(device_id, [])
                    )
                    failed = f"<failed_checks>{check_xml}</failed_checks>" if check_xml else ""
                    groups[device.kind].append(
                        f"<{device.kind}><id>{device.id}</id><name>{cdata(device.name)}</name>"
                        f"{offline_xml}{failed}</{device.kind}>"
                    )
                site_parts.append(
                    f"<site><siteid>{site_id}</siteid><name>{cdata(self.sites[site_id].name)}</name>"
                    f"<servers>{''.join(groups['server'])}</servers>"
                    f"<workstations>{''.join(groups['workstation'])}</workstations></site>"
                )
            parts.append(
                f"<client><clientid>{client_id}</clientid><name>{cdata(self.clients[client_id].name)}</name>"
                + "".join(site_parts)
                + "</client>"
            )
        return self._result("<items>" + "".join(parts) + "</items>")

    def _device(self, params: dict[str, str]) -> FakeDevice:
        device = self.devices.get(self._require(params, "deviceid"))
        if device is None:
            raise NsightApiError("Invalid deviceid", code=INVALID_PARAMETER)
        return device

    def _engine(self, params: dict[str, str]) -> None:
        if params.get("v", "2") not in ("1", "2"):
            raise NsightApiError("Invalid parameter v", code=INVALID_PARAMETER)

    def _list_mav_scans(self, params: dict[str, str]) -> bytes:
        """`<scan>` items directly under `<result>`, as in api_list_mav_scans.htm's example."""
        device = self._device(params)
        if params.get("details") not in ("YES", "NO"):
            raise NsightApiError("Missing or invalid parameter details", code=INVALID_PARAMETER)
        self._engine(params)
        parts = [
            f"<scan><type>{escape(scan.type)}</type><status>{scan.status}</status>"
            f"<start>{wire_time(scan.start)}</start>"
            + (f"<end>{wire_time(scan.end)}</end>" if scan.end else "")
            + "<cookies_scanned>0</cookies_scanned><registry_scanned>0</registry_scanned>"
            "<files_scanned>20837</files_scanned><folders_scanned>2046</folders_scanned>"
            "<processes_scanned>25</processes_scanned></scan>"
            for scan in device.scans
        ]
        return self._result("".join(parts))

    def _list_mav_threats(self, params: dict[str, str]) -> bytes:
        """`<threat>` items (name, category, last_event, last_status, ...) under `<result>`."""
        device = self._device(params)
        self._engine(params)
        parts = [
            f"<threat><name>{cdata(t.name)}</name><category>{escape(t.category)}</category>"
            f"<last_event>{wire_time(t.last_event)}</last_event><last_status>{t.last_status}</last_status>"
            "<last_scan_type>Active Protection</last_scan_type>"
            "<last_trace_count>1</last_trace_count></threat>"
            for t in device.threats
        ]
        return self._result("".join(parts))

    def _mav_scan_start(self, params: dict[str, str]) -> bytes:
        device = self._device(params)
        self.scans_started.append(device.id)
        return self._result("<msg />")

    def _mav_definitions_update(self, params: dict[str, str]) -> bytes:
        device = self._device(params)
        if device.id in self.pending_definition_updates:
            raise NsightApiError("There is already a MAV definition update pending")
        self.pending_definition_updates.add(device.id)
        return self._result("<msg />")
