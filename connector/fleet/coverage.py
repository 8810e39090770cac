"""What a security console adds to an endpoint's status, and the coverage gaps it shows. Pure.

An RMM endpoint whose client a console covers takes the console's word for protection: the
product, real-time protection, definitions and last scan of its matched agent replace the RMM's
where the console reports them (each field's source is kept for the dashboard), and no matched
agent means not protected — whatever the RMM believes is installed. Threats of a device the console
knows are the console's own threat problems (with its classification and mitigation state), so the
endpoint's RMM-reported count steps aside (0) rather than open a second ticket for the same threat.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from adapters.base import AgentStatus, EndpointStatus, ProblemKind
from connector.fleet.domain import Finding, Thresholds

CONSOLE_FIELDS = ("product", "protection_enabled", "definitions_date", "last_scan_at")
SOURCED_FIELDS = (*CONSOLE_FIELDS, "active_threats", "os_name", "online", "last_seen_at")
RMM = "rmm"


@dataclass(frozen=True)
class ConsoleView:
    """What the console covering an endpoint's client says about it: its agent, or none."""

    console: str
    """The console connection's name, as the source of the fields it supplies."""
    agent: AgentStatus | None
    rule: str | None = None


def effective_status(
    status: EndpointStatus, view: ConsoleView | None
) -> tuple[EndpointStatus, dict[str, str]]:
    """The endpoint's status with the console's values merged in, and field → source."""
    sources = dict.fromkeys(SOURCED_FIELDS, RMM)
    if view is None:
        return status, sources
    source = f"console:{view.console}"
    if view.agent is None:
        sources.update(product=source, protection_enabled=source)
        return status.model_copy(update={"product": None, "protection_enabled": False}), sources
    updates: dict[str, object] = {"active_threats": 0}
    sources["active_threats"] = source
    for name in CONSOLE_FIELDS:
        value = getattr(view.agent, name)
        if value is not None:
            updates[name] = value
            sources[name] = source
    if "product" not in updates and status.product is None:
        updates["product"] = "security agent"  # installed: the console has an agent on it
        sources["product"] = source
    return status.model_copy(update=updates), sources


def coverage_message(view: ConsoleView) -> str:
    return f"no agent in the {view.console} console matches this device (by serial, MAC or hostname)"


def agent_findings(
    agent: AgentStatus,
    *,
    mapped: bool,
    matched: bool,
    endpoint_offline: bool | None,
    limits: Thresholds,
    now: datetime,
) -> list[Finding]:
    """Problems of a console agent itself: no RMM endpoint is the same device (only for a customer
    mapped to a PSA company: an unmapped one has nowhere to be managed), and silent for longer than
    the offline limit — left to the RMM's own offline check when the device itself is offline there."""
    unmanaged = Finding(
        ProblemKind.UNMANAGED_AGENT,
        (not matched) if mapped else None,
        f"{agent.hostname} has a security agent but no RMM endpoint matches it (by serial, MAC or hostname)",
    )
    age = None if agent.last_seen_at is None else (now - agent.last_seen_at) / timedelta(days=1)
    silent = None if age is None else age > limits.offline_after_days
    if matched and endpoint_offline:
        silent = None
    offline = Finding(
        ProblemKind.AGENT_OFFLINE,
        silent,
        f"security agent silent for {age:.0f} days (limit {limits.offline_after_days})"
        if age is not None
        else "",
    )
    return [unmanaged, offline]
