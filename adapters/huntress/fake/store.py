"""The fake Huntress account's state: the API key pair, organizations, agents, incident reports,
the per-organization billable counts, the seeding helpers and mutators tests drive it with, and the
fault list and call records. Rows are rendered in the shapes of the Swagger `definitions`."""

from __future__ import annotations

import itertools
import secrets
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from adapters.testing.faults import ScriptedFault

Row = dict[str, Any]
ACCOUNT_ID = 5
DEFAULT_PAGE_SIZE = 10
MAX_PAGE_SIZE = 500
RATE_WINDOW = 60.0


def stamp(when: datetime | None) -> str | None:
    """ISO-8601 in UTC with a `Z`, as the API writes times (`2022-03-01T20:05:10Z`)."""
    return None if when is None else when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class Fault(ScriptedFault):
    """Faults aimed at a path (a trailing `*` matches a prefix)."""


@dataclass
class FakeOrganization:
    id: int
    name: str
    key: str
    created_at: datetime
    updated_at: datetime
    billable_agents: int | None = None
    """What `actual_usages.edr.billable_agents_count` says; None = the organization's agent count."""
    purchased: int | None = None
    """Kept for the harness; Huntress publishes no purchased seats per organization."""


@dataclass
class FakeAgent:
    id: int
    organization_id: int
    hostname: str
    serial_number: str | None
    mac_addresses: list[str]
    os: str = "Windows 11 Pro"
    platform: str = "windows"
    version: str = "0.13.78"
    edr_version: str = "0.3.20"
    defender_status: str = "Healthy"
    defender_substatus: str = "Up to date"
    defender_policy_status: str = "Compliant"
    firewall_status: str = "Disabled"
    last_callback_at: datetime | None = None
    created_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    updated_at: datetime = field(default_factory=lambda: datetime.now(UTC))


@dataclass
class FakeIncidentReport:
    id: int
    organization_id: int
    agent_id: int | None
    subject: str
    summary: str
    severity: str = "high"
    status: str = "sent"
    indicator_types: list[str] = field(default_factory=lambda: ["footholds"])
    platform: str = "windows"
    sent_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    closed_at: datetime | None = None
    status_updated_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    updated_at: datetime = field(default_factory=lambda: datetime.now(UTC))


class HuntressStore:
    """State and mutators; `HuntressFake` adds the HTTP face."""

    def __init__(self, *, now: datetime | None = None) -> None:
        self.now = now or datetime.now(UTC)
        self.api_key = "hk_" + secrets.token_hex(8)
        self.api_secret = "hs_" + secrets.token_hex(16)
        self.account_name = "Example MSP"
        self.organizations: dict[int, FakeOrganization] = {}
        self.agents: dict[int, FakeAgent] = {}
        self.reports: dict[int, FakeIncidentReport] = {}
        self.faults: list[Fault] = []
        self.calls: Counter[str] = Counter()
        self.statuses: Counter[int] = Counter()
        self.requests: list[dict[str, Any]] = []
        self.latency = 0.0
        self.request_limit: int | None = None
        """When set, the account's sliding-window limit: more than this many requests in any
        `RATE_WINDOW` seconds answer 429 with the `Retry-After` until the oldest leaves the window."""
        self.monotonic: Callable[[], float] = time.monotonic
        self.sent_at: deque[float] = deque()
        self._ids = {
            "organization": itertools.count(101),
            "agent": itertools.count(5001),
            "report": itertools.count(9001),
        }

    def credentials(self) -> dict[str, str]:
        return {"api_key": self.api_key, "api_secret": self.api_secret}

    # -- seeding ---------------------------------------------------------------------------------

    def add_organization(self, name: str, *, at: datetime | None = None) -> FakeOrganization:
        org_id = next(self._ids["organization"])
        key = "".join(ch for ch in name.lower() if ch.isalnum())[:20] or f"org{org_id}"
        when = at or self.now
        org = FakeOrganization(org_id, name, key, when - timedelta(days=400), when)
        self.organizations[org_id] = org
        return org

    def add_agent(
        self,
        organization_id: int,
        hostname: str,
        *,
        serial_number: str | None = None,
        mac_addresses: list[str] | None = None,
        os: str = "Windows 11 Pro",
        at: datetime | None = None,
    ) -> FakeAgent:
        if organization_id not in self.organizations:
            raise KeyError(f"no organization {organization_id}")
        when = at or self.now
        agent = FakeAgent(
            id=next(self._ids["agent"]),
            organization_id=organization_id,
            hostname=hostname,
            serial_number=serial_number,
            mac_addresses=[m.lower() for m in mac_addresses or []],
            os=os,
            last_callback_at=when,
            created_at=when - timedelta(days=30),
            updated_at=when,
        )
        self.agents[agent.id] = agent
        return agent

    def remove_agent(self, agent_id: int) -> None:
        self.agents.pop(agent_id, None)

    # -- mutators --------------------------------------------------------------------------------

    def touch(self, agent_id: int, *, at: datetime) -> None:
        agent = self.agents[agent_id]
        agent.last_callback_at = at
        agent.updated_at = at

    def set_defender(self, agent_id: int, status: str, substatus: str, *, at: datetime) -> None:
        agent = self.agents[agent_id]
        agent.defender_status, agent.defender_substatus, agent.updated_at = status, substatus, at

    def set_firewall(self, agent_id: int, status: str, *, at: datetime) -> None:
        agent = self.agents[agent_id]
        agent.firewall_status, agent.updated_at = status, at

    def set_last_callback(self, agent_id: int, seen: datetime, *, at: datetime) -> None:
        agent = self.agents[agent_id]
        agent.last_callback_at, agent.updated_at = seen, at

    def add_report(
        self,
        agent_id: int,
        name: str,
        *,
        severity: str = "high",
        indicator_types: list[str] | None = None,
        at: datetime | None = None,
    ) -> FakeIncidentReport:
        agent = self.agents[agent_id]
        org = self.organizations[agent.organization_id]
        when = at or self.now
        report = FakeIncidentReport(
            id=next(self._ids["report"]),
            organization_id=agent.organization_id,
            agent_id=agent.id,
            subject=f"{severity.upper()} - Incident on {agent.hostname} ({name})",
            summary=f"Huntress detected {name} on {agent.hostname} ({org.name}).",
            severity=severity,
            indicator_types=list(indicator_types or ["footholds"]),
            platform=agent.platform,
            sent_at=when,
            status_updated_at=when,
            updated_at=when,
        )
        self.reports[report.id] = report
        return report

    def close_report(self, report_id: int, *, at: datetime, status: str = "closed") -> None:
        report = self.reports[report_id]
        report.status, report.closed_at = status, at
        report.status_updated_at = report.updated_at = at

    def set_billable(self, organization_id: int, used: int, purchased: int | None) -> None:
        org = self.organizations[organization_id]
        org.billable_agents, org.purchased = used, purchased

    # -- rendering -------------------------------------------------------------------------------

    def agent_count(self, organization_id: int) -> int:
        return sum(1 for a in self.agents.values() if a.organization_id == organization_id)

    def organization_row(self, org: FakeOrganization) -> Row:
        return {
            "id": org.id,
            "agents_count": self.agent_count(org.id),
            "account_id": ACCOUNT_ID,
            "created_at": stamp(org.created_at),
            "incident_reports_count": sum(1 for r in self.reports.values() if r.organization_id == org.id),
            "key": org.key,
            "logs_sources_count": 0,
            "identity_provider_tenant_id": None,
            "billable_identity_count": 0,
            "name": org.name,
            "report_recipients": [f"it@{org.key}.example.com"],
            "sat_learner_count": 0,
            "updated_at": stamp(org.updated_at),
        }

    def organization_detail(self, org: FakeOrganization) -> Row:
        agents = [a for a in self.agents.values() if a.organization_id == org.id]
        cutoff = datetime.now(UTC) - timedelta(hours=1)
        return {
            **self.organization_row(org),
            "actual_usages": {
                "edr": {
                    "billable_agents_count": len(agents)
                    if org.billable_agents is None
                    else org.billable_agents,
                    "unresponsive_agents_count": sum(
                        1 for a in agents if a.last_callback_at is None or a.last_callback_at < cutoff
                    ),
                    "outdated_agents_count": 0,
                    "isolated_agents_count": sum(1 for a in agents if a.firewall_status == "Isolated"),
                },
            },
        }

    def agent_row(self, agent: FakeAgent) -> Row:
        return {
            "id": agent.id,
            "account_id": ACCOUNT_ID,
            "arch": "x86_64",
            "created_at": stamp(agent.created_at),
            "domain_name": "WORKGROUP",
            "edr_version": agent.edr_version,
            "external_ip": "198.51.100.42",
            "hostname": agent.hostname,
            "defender_policy_status": agent.defender_policy_status,
            "defender_status": agent.defender_status,
            "defender_substatus": agent.defender_substatus,
            "firewall_status": agent.firewall_status,
            "tamper_protection_configured": True,
            "tamper_protection_actual": True,
            "ipv4_address": f"10.1.{agent.id >> 8 & 255}.{agent.id & 255}",
            "last_callback_at": stamp(agent.last_callback_at),
            "last_survey_at": stamp(agent.last_callback_at),
            "mac_addresses": list(agent.mac_addresses),
            "service_pack_major": 0,
            "service_pack_minor": 0,
            "organization_id": agent.organization_id,
            "os": agent.os,
            "os_build_version": "22631",
            "os_major": 10,
            "os_minor": 0,
            "os_patch": 0,
            "platform": agent.platform,
            "serial_number": agent.serial_number,
            "tags": ["Server"] if "server" in agent.os.lower() else [],
            "updated_at": stamp(agent.updated_at),
            "version": agent.version,
            "version_number": 720899,
            "win_build_number": 22631,
        }

    def report_row(self, report: FakeIncidentReport) -> Row:
        counts = dict.fromkeys(
            (
                "footholds",
                "monitored_files",
                "process_detections",
                "ransomware_canaries",
                "antivirus_detections",
            ),
            0,
        )
        for name in report.indicator_types:
            counts[name] = counts.get(name, 0) + 1
        return {
            "id": report.id,
            "account_id": ACCOUNT_ID,
            "agent_id": report.agent_id,
            "body": f"<p>{report.summary}</p>",
            "closed_at": stamp(report.closed_at),
            "indicator_counts": counts,
            "indicator_types": list(report.indicator_types),
            "organization_id": report.organization_id,
            "platform": report.platform,
            "remediations": {"total_count": 0, "has_more": False, "items": []},
            "sent_at": stamp(report.sent_at),
            "severity": report.severity,
            "status": report.status,
            "status_updated_at": stamp(report.status_updated_at),
            "subject": report.subject,
            "summary": report.summary,
            "updated_at": stamp(report.updated_at),
        }

    def webhook_payload(self, report: FakeIncidentReport) -> Row:
        """An `IncidentReportCreated` (open) or `IncidentReportClosed` delivery body."""
        org = self.organizations.get(report.organization_id)
        row = self.report_row(report)
        row.pop("remediations", None)
        row.pop("indicator_types", None)
        return {
            **row,
            "event_type": "incident_report.closed"
            if report.status == "closed"
            else "incident_report.created",
            "account": {"id": ACCOUNT_ID, "name": self.account_name},
            "organization": {"id": report.organization_id, "name": org.name if org else None},
            "api_url": f"https://api.huntress.io/v1/incident_reports/{report.id}",
            "created_at": stamp(report.sent_at),
        }
