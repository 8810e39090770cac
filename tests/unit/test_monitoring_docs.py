"""The sample Prometheus alert rules and Grafana dashboard in docs/monitoring/ load, have the
expected groups and alerts, and use only metrics the service really exports."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import yaml

from connector.infra.metrics import Metrics

DOCS = Path(__file__).resolve().parents[2] / "docs" / "monitoring"
METRIC = re.compile(r"\b((?:connector|process)_[a-z_]+)\b")
SUFFIXES = {"counter": ("_total", "_created"), "histogram": ("_bucket", "_count", "_sum", "_created")}


def exported() -> set[str]:
    names: set[str] = set()
    for family in Metrics().registry.collect():
        names.add(family.name)
        names.update(family.name + suffix for suffix in SUFFIXES.get(family.type, ()))
    return names


def _metrics_in(expr: str) -> set[str]:
    return set(METRIC.findall(expr))


def test_alert_rules_parse_with_the_expected_groups() -> None:
    document: Any = yaml.safe_load((DOCS / "prometheus-alerts.yaml").read_text())
    groups = {group["name"]: group["rules"] for group in document["groups"]}
    assert set(groups) == {"connector-sync", "connector-queue", "connector-service"}
    rules = {rule["alert"]: rule for group in groups.values() for rule in group}
    assert {"ConnectorSyncStale", "ConnectorDeadLettersGrowing", "ConnectorQueueBacklogOld"} <= set(rules)
    assert "connector_sync_last_success_timestamp_seconds" in rules["ConnectorSyncStale"]["expr"]
    assert "connector_dead_letters" in rules["ConnectorDeadLettersGrowing"]["expr"]
    assert "connector_queue_oldest_claimable_age_seconds" in rules["ConnectorQueueBacklogOld"]["expr"]
    known = exported()
    for name, rule in rules.items():
        assert rule["labels"]["severity"] in ("warning", "critical"), name
        assert rule["annotations"]["summary"], name
        assert _metrics_in(rule["expr"]) <= known, (name, _metrics_in(rule["expr"]) - known)


def test_dashboard_panels_query_exported_metrics() -> None:
    dashboard = json.loads((DOCS / "grafana-dashboard.json").read_text())
    panels = dashboard["panels"]
    assert len({panel["id"] for panel in panels}) == len(panels) >= 10
    known = exported()
    used: set[str] = set()
    for panel in panels:
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            names = _metrics_in(target["expr"])
            assert names and names <= known, (panel["title"], names - known)
            used |= names
    for needed in (
        "connector_vendor_requests_total",
        "connector_sync_last_success_timestamp_seconds",
        "connector_queue_depth",
        "connector_queue_oldest_claimable_age_seconds",
        "connector_dead_letters",
        "connector_tickets_total",
        "connector_billing_lines_written_total",
        "process_cpu_seconds_total",
    ):
        assert needed in used, needed
