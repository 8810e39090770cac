"""The fake Administration Server's state: internal users, virtual servers with their hosts and
licence keys, sessions, host accessors and key iterators, the mutators tests drive it with, and
the faults and call records."""

from __future__ import annotations

import itertools
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from adapters.testing.faults import ScriptedFault

Row = dict[str, Any]

STATUS_VISIBLE = 0x1
STATUS_NAGENT = 0x4
STATUS_ALIVE = 0x8
STATUS_RTP = 0x10
HEALTHY_STATUS = STATUS_VISIBLE | STATUS_NAGENT | STATUS_ALIVE | STATUS_RTP
RTP_RUNNING = 4
RTP_STOPPED = 1
PRODUCT = "Kaspersky Endpoint Security for Windows"
NAMESPACE = uuid.UUID("6f0c3c1e-4b8a-4f51-9a43-4b5d0c6b2a10")


def ksc_time(when: datetime) -> Row:
    """A datetime as KSC types it inside a "params" container."""
    return {"type": "datetime", "value": when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")}


@dataclass
class FakeHost:
    hostname: str
    """`KLHST_WKS_HOSTNAME`: the server's GUID-like host id."""
    vserver: str
    display_name: str
    status: int = HEALTHY_STATUS
    status_id: int = 0
    rtp_state: int = RTP_RUNNING
    bases_time: datetime | None = None
    last_full_scan: datetime | None = None
    virus_count: int = 0
    uncured_count: int = 0
    last_visible: datetime | None = None
    last_connected: datetime | None = None
    nag_version: str = "14.0.0.10902"
    os_name: str = "Microsoft Windows 11 Pro"
    group_id: int = 0
    win_name: str | None = None
    """`KLHST_WKS_WINHOSTNAME` when it differs from the display name."""
    broken: bool = False
    """Served without `KLHST_WKS_HOSTNAME` (a record the adapter cannot identify)."""


@dataclass
class FakeKey:
    serial: str
    product: str
    lic_count: int | None
    used: int | None = None
    """Hosts using it as the active key; None = the virtual server's hosts with RTP installed."""
    key_type: int = 1


@dataclass
class FakeVServer:
    id: int
    uid: str
    name: str
    group: int = 0
    hosts: dict[str, FakeHost] = field(default_factory=dict)
    keys: list[FakeKey] = field(default_factory=list)


@dataclass
class Session:
    token: str
    vserver: str | None


@dataclass
class Accessor:
    id: str
    vserver: str | None
    kind: str
    """"agents" or "threats": what the listing was for (fault targeting and call counts)."""
    rows: list[Row]


@dataclass
class Iterator:
    id: str
    vserver: str | None
    rows: list[Row]
    offset: int = 0


class Fault(ScriptedFault):
    """A fault aimed at one operation (`path` holds the operation name)."""


class KscStore:
    def __init__(self, *, now: datetime | None = None) -> None:
        self.now = now or datetime.now(UTC)
        self.users: dict[str, str] = {"connector-api": "K$c-Api-Passw0rd"}
        self.vservers: dict[str, FakeVServer] = {}
        self.sessions: dict[str, Session] = {}
        self.accessors: dict[str, Accessor] = {}
        self.iterators: dict[str, Iterator] = {}
        self.released: list[str] = []
        self.faults: list[Fault] = []
        self.calls: Counter[str] = Counter()
        self.statuses: Counter[int] = Counter()
        self.requests: list[dict[str, Any]] = []
        self._ids = itertools.count(1)
        self._hosts = itertools.count(1)

    # -- seeding ---------------------------------------------------------------------------------

    def credentials(self) -> dict[str, str]:
        user, password = next(iter(self.users.items()))
        return {"username": user, "password": password}

    def add_vserver(self, name: str) -> FakeVServer:
        number = next(self._ids)
        uid = str(uuid.uuid5(NAMESPACE, f"{number}:{name}"))
        server = FakeVServer(id=number, uid=uid, name=name)
        self.vservers[uid] = server
        return server

    def add_host(self, vserver: str, name: str, *, at: datetime | None = None) -> FakeHost:
        when = at or self.now
        host = FakeHost(
            hostname=str(uuid.uuid5(NAMESPACE, f"host:{next(self._hosts)}:{name}")),
            vserver=vserver,
            display_name=name,
            bases_time=when - timedelta(hours=3),
            last_full_scan=when - timedelta(days=1),
            last_visible=when,
            last_connected=when,
        )
        self.vservers[vserver].hosts[host.hostname] = host
        return host

    def add_key(self, vserver: str, product: str, lic_count: int | None) -> FakeKey:
        server = self.vservers[vserver]
        key = FakeKey(
            serial=f"{server.id:04d}-{len(server.keys) + 1:06d}-{server.uid[:8].upper()}",
            product=product,
            lic_count=lic_count,
        )
        server.keys.append(key)
        return key

    # -- lookups and mutators --------------------------------------------------------------------

    def host(self, hostname: str) -> FakeHost:
        for server in self.vservers.values():
            if hostname in server.hosts:
                return server.hosts[hostname]
        raise KeyError(hostname)

    def remove_host(self, hostname: str) -> None:
        del self.vservers[self.host(hostname).vserver].hosts[hostname]

    def key_used(self, server: FakeVServer, key: FakeKey) -> int:
        if key.used is not None:
            return key.used
        return sum(1 for h in server.hosts.values() if h.status & STATUS_RTP)

    # -- wire rendering --------------------------------------------------------------------------

    def host_row(self, host: FakeHost, fields: list[str]) -> Row:
        values: Row = {
            "KLHST_WKS_HOSTNAME": host.hostname,
            "KLHST_WKS_DN": host.display_name,
            "KLHST_WKS_FQDN": f"{host.display_name.lower()}.corp.local",
            "KLHST_WKS_WINHOSTNAME": host.win_name or host.display_name,
            "KLHST_WKS_GROUPID": host.group_id,
            "KLHST_WKS_STATUS": host.status,
            "KLHST_WKS_STATUS_ID": host.status_id,
            "KLHST_WKS_RTP_STATE": host.rtp_state,
            "KLHST_WKS_RTP_AV_BASES_TIME": ksc_time(host.bases_time) if host.bases_time else None,
            "KLHST_WKS_LAST_FULLSCAN": ksc_time(host.last_full_scan) if host.last_full_scan else None,
            "KLHST_WKS_VIRUS_COUNT": {"type": "long", "value": host.virus_count},
            "KLHST_WKS_UNCURED_COUNT": {"type": "long", "value": host.uncured_count},
            "KLHST_WKS_LAST_VISIBLE": ksc_time(host.last_visible) if host.last_visible else None,
            "KLHST_WKS_LAST_NAGENT_CONNECTED": ksc_time(host.last_connected) if host.last_connected else None,
            "KLHST_WKS_NAG_VERSION": host.nag_version,
            "KLHST_WKS_OS_NAME": host.os_name,
        }
        row = {name: values[name] for name in fields if name in values and values[name] is not None}
        if host.broken:
            row.pop("KLHST_WKS_HOSTNAME", None)
        return {"type": "params", "value": row}

    def key_row(self, server: FakeVServer, key: FakeKey, fields: list[str]) -> Row:
        values: Row = {
            "KLLIC_SERIAL": key.serial,
            "KLLIC_PROD_NAME": key.product,
            "KLLIC_KEY_TYPE": key.key_type,
            "KLLIC_LIC_COUNT": key.lic_count,
            "KLLIC_NHOSTS_ASCURRENT": self.key_used(server, key),
            "KLLIC_LIMIT_DATE": ksc_time(self.now + timedelta(days=365)),
        }
        return {
            "type": "params",
            "value": {n: values[n] for n in fields if n in values and values[n] is not None},
        }
