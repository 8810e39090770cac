"""Safe parsing of N-sight Data Extraction API XML into the records in `models.py`.

- XML goes through defusedxml with DTDs, entity declarations and external references forbidden: an
  entity-expansion bomb or an external-entity payload is refused before anything is expanded.
- Every response is `<result created=".." host=".." status="OK|FAIL">`; a FAIL carries its reason in
  `<msg>` (documented for mav_definitions_update, api_mav_definitions_update.htm) or as
  `<error><errorcode/><message/></error>` (errorcode 3 = login failed, 4 = invalid parameter:
  specs/rmm/samples/nsight/service_params.json). Failures are classified by the code, never by the
  wording of the message.
- Names may come wrapped in CDATA and the server declares ISO-8859-1; ElementTree handles both when
  it is given the raw bytes.
- A device lacking its id or name is skipped and reported (naming the site, the device and the
  field); an unreadable optional value is dropped to None and reported the same way.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import TypeVar
from xml.etree.ElementTree import Element, ParseError

import defusedxml.ElementTree as SafeET
from defusedxml import DefusedXmlException

from adapters.base import SkippedEndpoint
from adapters.errors import (
    AdapterError,
    CredentialsError,
    NotFoundError,
    TransientVendorError,
    VendorRequestError,
)
from adapters.nsight.models import (
    DeviceKind,
    FailingCheck,
    MavScan,
    MavThreat,
    NsightClient,
    NsightDevice,
    NsightSite,
    ParseReport,
)


class NsightMalformedResponseError(TransientVendorError):
    """A response that is not the XML the service documents (truncated, not XML, refused DTD,
    required element missing). `field` names the service and the scope (client/site)."""

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message, field=field, maybe_applied=False)


class NsightIncompleteListingError(TransientVendorError):
    """Raised after every readable page was yielded: some clients or sites could not be read.
    The pages already yielded are valid; the pass is not complete (no retirements, no cursor)."""

    def __init__(self, failures: list[str]) -> None:
        shown = "; ".join(failures[:5]) + (f"; and {len(failures) - 5} more" if len(failures) > 5 else "")
        super().__init__(f"N-sight listing incomplete ({len(failures)} failed): {shown}", maybe_applied=False)
        self.failures = failures


T = TypeVar("T")

ERRORCODE_LOGIN_FAILED = "3"
"""`<error><errorcode>3</errorcode>`: login failed (wrong or revoked API key)."""
ERRORCODE_INVALID_PARAMETER = "4"
"""`<error><errorcode>4</errorcode>`: a parameter is invalid, e.g. an id this key cannot see."""


def parse_xml(content: bytes, where: str) -> Element:
    """Bytes → root element, refusing DTDs/entities; errors name `where`, never the URL."""
    if not content.strip():
        raise NsightMalformedResponseError("empty response body", field=where)
    try:
        root: Element = SafeET.fromstring(
            content, forbid_dtd=True, forbid_entities=True, forbid_external=True
        )
    except DefusedXmlException as exc:
        raise NsightMalformedResponseError(
            f"refused XML with DTD/entity declarations ({type(exc).__name__})", field=where
        ) from None
    except ParseError as exc:
        raise NsightMalformedResponseError(f"unreadable XML: {exc}", field=where) from None
    return root


def failure_message(root: Element) -> str:
    for path in ("msg", "error/message", "message", "error/msg", "error"):
        node = root.find(path)
        if node is not None and (node.text or "").strip():
            return (node.text or "").strip()
    code = text(root, "error/errorcode")
    return f"error code {code}" if code else "the server reported status FAIL without a message"


def classify_failure(message: str, service: str, code: str | None = None) -> AdapterError:
    """A `status="FAIL"` answer → the adapter error the core acts on, by its `<errorcode>` (the
    message texts are not published and are never matched): 3 = login failed → CredentialsError,
    4 = invalid parameter → NotFoundError (the id is not one this key can see); anything else,
    including the documented `<msg>`-only refusals, → VendorRequestError."""
    if code == ERRORCODE_LOGIN_FAILED:
        return CredentialsError(f"N-sight refused the API key (login failed): {message}", field="api_key")
    if code == ERRORCODE_INVALID_PARAMETER:
        return NotFoundError(f"{service}: invalid parameter: {message}", field=service)
    return VendorRequestError(f"{service}: {message}", field=service)


def check_result(root: Element, service: str, where: str) -> Element:
    """Return the `<result>` root when its status is OK; raise the classified error otherwise."""
    if root.tag != "result":
        raise NsightMalformedResponseError(f"expected <result>, got <{root.tag}>", field=where)
    status = (root.get("status") or "OK").strip().upper()
    if status != "OK":
        raise classify_failure(failure_message(root), service, text(root, "error/errorcode"))
    return root


def text(node: Element, path: str) -> str | None:
    child = node.find(path)
    if child is None or child.text is None:
        return None
    value = child.text.strip()
    return value or None


def parse_time(value: str | None) -> datetime | None:
    """'2015-07-21 23:09:38' (UTC), ISO-8601, or epoch seconds → aware datetime; None if empty.
    Raises ValueError for anything else so the caller can name the field."""
    if value is None or value in ("0", "0000-00-00 00:00:00", "0000-00-00"):
        return None
    if value.isdigit():
        return datetime.fromtimestamp(int(value), tz=UTC)
    when = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def _flag(value: str | None) -> bool | None:
    if value is None:
        return None
    if value in ("1", "0"):
        return value == "1"
    raise ValueError(f"expected 0 or 1, got {value!r}")


def _count(value: str | None) -> int | None:
    if value is None:
        return None
    return int(value)


def _optional(
    node: Element, source: str, convert: Callable[[str | None], T | None], label: str, report: ParseReport
) -> T | None:
    try:
        return convert(text(node, source))
    except ValueError:
        report.skipped.append(f"{label}: field {source} unreadable, ignored")
        return None


def parse_clients(root: Element, report: ParseReport) -> list[NsightClient]:
    clients: list[NsightClient] = []
    for index, node in enumerate(root.iterfind("items/client"), start=1):
        cid, name = text(node, "clientid"), text(node, "name")
        label = f"client #{index} ({name or cid or 'unnamed'})"
        if not cid or not cid.isdigit():
            report.skipped.append(f"{label}: clientid missing or not a number")
            continue
        counts: dict[str, int | None] = {}
        for key in ("server_count", "workstation_count"):
            try:
                counts[key] = _count(text(node, key))
            except ValueError:
                report.skipped.append(f"{label}: {key} is not a number (ignored)")
                counts[key] = None
        clients.append(
            NsightClient(
                id=cid,
                name=name or f"client {cid}",
                server_count=counts["server_count"],
                workstation_count=counts["workstation_count"],
            )
        )
    return clients


def parse_sites(root: Element, client_id: str, report: ParseReport) -> list[NsightSite]:
    sites: list[NsightSite] = []
    for index, node in enumerate(root.iterfind("items/site"), start=1):
        sid, name = text(node, "siteid"), text(node, "name")
        if not sid or not sid.isdigit():
            report.skipped.append(f"client {client_id} site #{index} ({name or 'unnamed'}): siteid missing")
            continue
        sites.append(NsightSite(id=sid, name=name or f"site {sid}", client_id=client_id))
    return sites


_ID_FIELDS: dict[str, tuple[str, ...]] = {
    "server": ("serverid", "id", "deviceid"),
    "workstation": ("workstationid", "id", "deviceid"),
}


def parse_devices(root: Element, kind: DeviceKind, where: str, report: ParseReport) -> list[NsightDevice]:
    """`list_servers` / `list_workstations` items → devices; bad devices are skipped and reported."""
    devices: list[NsightDevice] = []
    for index, node in enumerate(root.iterfind(f"items/{kind}"), start=1):
        name = text(node, "name")
        device_id = next((v for f in _ID_FIELDS[kind] if (v := text(node, f))), None)
        label = f"{where} {kind} #{index} ({name or device_id or 'unnamed'})"
        if not device_id or not device_id.isdigit():
            report.skipped.append(f"{label}: field {_ID_FIELDS[kind][0]} missing or not a number")
            report.devices.append(
                SkippedEndpoint(
                    endpoint_id=device_id or "?", field=_ID_FIELDS[kind][0], message="missing or not a number"
                )
            )
            continue
        label = f"{where} {kind} {device_id}"
        if not name:
            report.skipped.append(f"{label}: field name missing")
            report.devices.append(SkippedEndpoint(endpoint_id=device_id, field="name", message="missing"))
            continue
        label = f"{label} ({name})"
        online = _optional(node, "online", _flag, label, report)
        last_boot = _optional(node, "last_boot_time", parse_time, label, report)
        last_contact = _optional(node, "utc_apt", parse_time, label, report)
        devices.append(
            NsightDevice(
                id=device_id,
                name=name,
                kind=kind,
                os=text(node, "os"),
                online=online,
                last_boot_at=last_boot,
                last_contact_at=last_contact,
                serial_number=text(node, "device_serial") or text(node, "serial_number"),
            )
        )
    return devices


def _failing_devices(site: Element) -> Iterator[tuple[str, Element]]:
    for kind in ("server", "workstation"):
        for node in site.iterfind(f"{kind}s/{kind}"):
            yield kind, node


def parse_failing_checks(root: Element, report: ParseReport) -> list[FailingCheck]:
    """`list_failing_checks`: items/client/site/{servers/server|workstations/workstation}
    /failed_checks/check; devices without failed checks (e.g. only `<offline>`) yield nothing."""
    checks: list[FailingCheck] = []
    for client in root.iterfind("items/client"):
        client_id = text(client, "clientid")
        if not client_id:
            report.skipped.append(f"client ({text(client, 'name') or 'unnamed'}): field clientid missing")
            continue
        for site in client.iterfind("site"):
            site_id = text(site, "siteid") or ""
            for kind, device in _failing_devices(site):
                device_id = text(device, "id")
                device_name = text(device, "name")
                label = f"client {client_id} site {site_id} {kind} {device_id or device_name or 'unnamed'}"
                if not device_id:
                    if device.find("failed_checks/check") is not None:
                        report.skipped.append(f"{label}: field id missing")
                    continue
                for index, check in enumerate(device.iterfind("failed_checks/check"), start=1):
                    check_id = text(check, "checkid")
                    if not check_id:
                        report.skipped.append(f"{label} check #{index}: field checkid missing")
                        continue
                    try:
                        check_type = _count(text(check, "check_type"))
                    except ValueError:
                        report.skipped.append(f"{label} check {check_id}: field check_type unreadable")
                        check_type = None
                    try:
                        last_run = parse_time(text(check, "utc_run"))
                    except ValueError:
                        report.skipped.append(f"{label} check {check_id}: field utc_run unreadable")
                        last_run = None
                    checks.append(
                        FailingCheck(
                            client_id=client_id,
                            site_id=site_id,
                            device_id=device_id,
                            device_name=device_name,
                            check_id=check_id,
                            check_type=check_type,
                            description=text(check, "description") or "",
                            output=text(check, "formatted_output") or "",
                            last_run_at=last_run,
                        )
                    )
    return checks


def parse_offline_devices(root: Element) -> set[str]:
    """The devices a `list_failing_checks` answer reports with an `<offline>` element (the agent
    is not reporting): the reliable offline signal, unlike the listings' `<online>` flag."""
    offline: set[str] = set()
    for site in root.iterfind("items/client/site"):
        for _kind, device in _failing_devices(site):
            device_id = text(device, "id")
            if device_id and device.find("offline") is not None:
                offline.add(device_id)
    return offline


def _scan_time(node: Element, *names: str) -> datetime | None:
    for name in names:
        try:
            when = parse_time(text(node, name))
        except ValueError:
            continue
        if when is not None:
            return when
    return None


def parse_mav_scans(root: Element) -> list[MavScan]:
    """`list_mav_scans&details=NO`: `<scan>` items (type QUICK/DEEP/ACTIVE/CUSTOM, or the
    Bitdefender names "Quick"/"Deep"/"Active Protection"/"Custom"; status NONE/PENDING/…/FINISHED;
    `start`/`end` in UTC, `end` only once finished), read wherever they sit under `<result>`."""
    scans: list[MavScan] = []
    for node in root.iter("scan"):
        scans.append(
            MavScan(
                type=(text(node, "type") or text(node, "scantype") or "").upper().replace(" ", "_"),
                status=(text(node, "status") or "").upper(),
                started_at=_scan_time(node, "start", "scanstartdatetime"),
                ended_at=_scan_time(node, "end", "scanenddatetime"),
            )
        )
    return scans


def parse_mav_threats(root: Element) -> list[MavThreat]:
    """`list_mav_threats`: the latest occurrence of each threat (`name`, `category`, `last_event`,
    `last_status`); a `<threat>` without a name is not a threat."""
    threats: list[MavThreat] = []
    for node in root.iter("threat"):
        name = text(node, "name")
        if not name:
            continue
        threats.append(
            MavThreat(
                name=name,
                category=text(node, "category"),
                status=(text(node, "last_status") or "").upper(),
                last_event_at=_scan_time(node, "last_event"),
            )
        )
    return threats
