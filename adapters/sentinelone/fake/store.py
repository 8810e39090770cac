"""The fake SentinelOne console's state: the API token, sites with their licences, agents, threats,
the methods tests seed and change it with, and the fault list and call records."""

from __future__ import annotations

import itertools
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from starlette.applications import Starlette

from adapters.testing.faults import ScriptedFault

Row = dict[str, Any]

API_TOKEN = "fake-s1-api-token-0123456789abcdef"
ID_BASE = 1_100_000_000_000_000_000
"""SentinelOne ids are 18-19 digit numbers sent as strings."""
AGENT_VERSION = "23.4.4.223"
BUNDLE = ("complete", "Complete")
"""The licence bundle (api name, display name) every seeded site has."""


@dataclass
class FakeSite:
    id: str
    name: str
    account_id: str
    external_id: str | None = None
    state: str = "active"
    site_type: str = "Paid"
    active_licenses: int = 0
    total_licenses: int = 0
    unlimited_licenses: bool = False
    sku: str = "Complete"
    bundle: tuple[str, str] = BUNDLE
    created_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    updated_at: datetime = field(default_factory=lambda: datetime.now(UTC))


@dataclass
class FakeAgent:
    id: str
    uuid: str
    site_id: str
    name: str
    serial: str | None
    macs: list[str]
    os_name: str = "Windows 11 Pro"
    machine_type: str = "desktop"
    agent_version: str = AGENT_VERSION
    is_active: bool = True
    is_up_to_date: bool = True
    decommissioned: bool = False
    operational_state: str = "na"
    network_status: str = "connected"
    last_active: datetime | None = None
    last_scan: datetime | None = None
    registered_at: datetime | None = None
    updated_at: datetime = field(default_factory=lambda: datetime.now(UTC))


@dataclass
class FakeThreat:
    id: str
    agent_id: str
    name: str
    classification: str = "Malware"
    confidence: str = "malicious"
    mitigation_status: str = "not_mitigated"
    incident_status: str = "unresolved"
    created_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    updated_at: datetime = field(default_factory=lambda: datetime.now(UTC))


class Fault(ScriptedFault):
    """A scripted failure on one API-relative path (`/agents`), any method."""

    ignore_case = False


class SentinelOneStore:
    """One fake console's state. The HTTP layer (`app.py`) supplies `_build_app`."""

    def __init__(self, *, api_token: str = API_TOKEN, now: datetime | None = None) -> None:
        self.api_token = api_token
        self.now = now or datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
        self.account_id = str(ID_BASE + 1)
        self.account_name = "Connector MSP"
        self.latency = 0.0
        self.faults: list[Fault] = []
        self.calls: Counter[str] = Counter()
        self.statuses: Counter[int] = Counter()
        self.requests: list[dict[str, Any]] = []
        self.sites: dict[str, FakeSite] = {}
        self.agents: dict[str, FakeAgent] = {}
        self.threats: dict[str, FakeThreat] = {}
        self.corrupted: dict[str, dict[str, Any]] = {}
        self._id_counter = itertools.count(ID_BASE + 1000)
        self.app = self._build_app()

    def _build_app(self) -> Starlette:
        raise NotImplementedError

    def next_id(self) -> str:
        return str(next(self._id_counter))

    # -- seeding ---------------------------------------------------------------------------------

    def add_site(self, name: str, *, external_id: str | None = None) -> FakeSite:
        site = FakeSite(
            self.next_id(),
            name,
            self.account_id,
            external_id=external_id,
            created_at=self.now - timedelta(days=400),
            updated_at=self.now - timedelta(days=3),
        )
        self.sites[site.id] = site
        return site

    def add_agent(
        self,
        site_id: str,
        name: str,
        *,
        serial: str | None = None,
        macs: list[str] | None = None,
        updated_at: datetime | None = None,
        machine_type: str = "desktop",
    ) -> FakeAgent:
        agent_id = self.next_id()
        agent = FakeAgent(
            id=agent_id,
            uuid=uuid.UUID(int=int(agent_id)).hex,
            site_id=site_id,
            name=name,
            serial=serial,
            macs=list(macs or []),
            machine_type=machine_type,
            last_active=self.now - timedelta(minutes=2),
            last_scan=self.now - timedelta(days=1),
            registered_at=self.now - timedelta(days=300),
            updated_at=updated_at or self.now - timedelta(hours=1),
        )
        self.agents[agent.id] = agent
        return agent

    # -- mutators --------------------------------------------------------------------------------

    def touch(self, agent_id: str, at: datetime | None = None) -> None:
        """The agent checks in: active, last active now, its record updated."""
        agent = self.agents[agent_id]
        when = at or self.now
        agent.is_active, agent.last_active, agent.updated_at = True, when, when

    def decommission(self, agent_id: str, at: datetime | None = None) -> None:
        agent = self.agents[agent_id]
        agent.decommissioned, agent.is_active, agent.updated_at = True, False, at or self.now

    def set_operational_state(self, agent_id: str, state: str, at: datetime | None = None) -> None:
        agent = self.agents[agent_id]
        agent.operational_state, agent.updated_at = state, at or self.now

    def set_last_active(self, agent_id: str, last_active: datetime, at: datetime | None = None) -> None:
        agent = self.agents[agent_id]
        agent.last_active, agent.is_active, agent.updated_at = last_active, False, at or self.now

    def add_threat(
        self, agent_id: str, name: str = "Trojan.Generic", at: datetime | None = None
    ) -> FakeThreat:
        when = at or self.now
        threat = FakeThreat(self.next_id(), agent_id, name, created_at=when, updated_at=when)
        self.threats[threat.id] = threat
        self.agents[agent_id].updated_at = when
        return threat

    def resolve_threat(self, threat_id: str, at: datetime | None = None) -> None:
        threat = self.threats[threat_id]
        when = at or self.now
        threat.mitigation_status, threat.incident_status, threat.updated_at = "mitigated", "resolved", when
        self.agents[threat.agent_id].updated_at = when

    def active_threats(self, agent_id: str) -> int:
        return sum(
            1 for t in self.threats.values() if t.agent_id == agent_id and t.incident_status != "resolved"
        )

    def corrupt_agent(self, agent_id: str, **fields: Any) -> None:
        """Serve the agent's record malformed: a field set to `None` is dropped, others replaced."""
        self.corrupted[agent_id] = fields
