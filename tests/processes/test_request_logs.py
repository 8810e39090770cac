"""Logs of a real `connector serve` in JSON mode: every line it writes is one JSON object (access
lines included); a webhook's lines carry the request id the sender gave in `X-Request-ID`, which
comes back in the response; a request without one gets a generated id; a configuration change is
one INFO event naming the API key that made it; successful requests are summarised (a sample line,
then one "requests served" line per interval, written at the latest on shutdown) while every refused
request has its own access line. SQLite."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.processes.helpers import rmm_connection
from tests.support.processes import Deployment, wait_until

pytestmark = pytest.mark.processes

ALERT = {
    "event_id": "evt-1",
    "client_id": "client-1",
    "endpoint_id": "ep-1",
    "hostname": "PC-1",
    "problem": "threat_detected",
    "state": "active",
    "message": "Trojan found",
    "occurred_at": "2026-11-20T10:00:00Z",
}


def _lines(output: str) -> list[dict[str, Any]]:
    records = []
    for line in output.splitlines():
        if line.strip():
            record = json.loads(line)  # fails the test on any line that is not JSON
            assert isinstance(record, dict), line
            records.append(record)
    return records


def test_json_lines_with_request_ids(tmp_path: Path) -> None:
    deployment = Deployment.create("sqlite", tmp_path)
    deployment.migrate()
    try:
        headers = deployment.api_key("admin")
        serve = deployment.start(
            "serve",
            "--no-worker",
            env=deployment.env(CONNECTOR_LOG_FORMAT="json", CONNECTOR_LOG_LEVEL="INFO"),
        )
        with httpx.Client(base_url=serve.url, timeout=30) as client:
            created = client.post("/api/v1/connections", json=rmm_connection("RMM"), headers=headers)
            assert created.status_code == 201, created.text
            rmm = created.json()
            generated = created.headers["x-request-id"]
            key_ids = {key["id"] for key in client.get("/api/v1/api-keys", headers=headers).json()}
            assert len(generated) >= 16

            accepted = client.post(
                f"/webhooks/{rmm['id']}",
                params={"token": rmm["webhook_secret"]},
                json=ALERT,
                headers={"X-Request-ID": "rmm-delivery-4711"},
            )
            assert accepted.status_code == 202, accepted.text
            assert accepted.headers["x-request-id"] == "rmm-delivery-4711"
            refused = client.post(
                f"/webhooks/{rmm['id']}",
                params={"token": "wrong"},
                json=ALERT,
                headers={"X-Request-ID": "forged\tid"},  # not a usable id: replaced
            )
            assert refused.status_code == 401
            replaced = refused.headers["x-request-id"]
            assert replaced not in ("forged\tid", "forged"), replaced

            def logged() -> list[dict[str, Any]]:
                records = _lines(serve.output())
                done = [
                    r
                    for r in records
                    if r.get("request_id") == replaced and r["logger"] == "connector.access"
                ]
                return records if done else []

            records = wait_until(logged, what="the refused webhook's access line")
        serve.terminate()  # SIGTERM: the summary of the interval is written on the way out
    finally:
        deployment.close()

    records = _lines(serve.output())  # with what the shutdown wrote
    mine = [r for r in records if r.get("request_id") == "rmm-delivery-4711"]
    access = next(r for r in mine if r["logger"] == "connector.access")  # the route's first success
    assert "/webhooks/" in access["event"] and access["status"] == 202 and access["sample"] is True
    assert "token=[redacted]" in access["event"]
    assert rmm["webhook_secret"] not in json.dumps(records)  # the ?token= is redacted

    refusal = [r for r in records if r.get("request_id") == replaced]
    assert any(r["event"] == "webhook refused" and r["level"] == "warning" for r in refusal), refusal
    refused_line = next(r for r in refusal if r["logger"] == "connector.access")
    assert refused_line["status"] == 401 and "sample" not in refused_line

    summaries = [r for r in records if r["event"] == "requests served"]
    assert summaries and all("request_id" not in r for r in summaries)
    routes = {(route["method"], route["route"]): route for s in summaries for route in s["routes"]}
    webhook = routes["POST", "/webhooks/{connection_id}"]
    assert webhook["count"] == 1 and webhook["statuses"] == {"202": 1}  # the 401 is not a success
    assert webhook["p99_ms"] >= webhook["p50_ms"] > 0

    change = next(r for r in records if r["event"] == "configuration changed")
    assert change["request_id"] == generated
    assert change["entity"] == "connection" and change["operation"] == "create" and change["id"] == rmm["id"]
    assert change["key_id"] in key_ids and change["tenant_id"]
    assert "credentials" in change["fields"] and "nsight-key-0123456789" not in json.dumps(records)
    # No request id leaks into lines written outside a request (start-up, background work).
    startup = [r for r in records if r["logger"] == "uvicorn.error"]
    assert startup and all("request_id" not in r for r in startup)
