"""A stateful fake of N-central's REST API-Service, as an ASGI app, plus its HTTP-XML notifications.

Use it in-process with `httpx.ASGITransport(app=fake.app)` (any host routes to it), or serve `fake.app`
with uvicorn for a demo. It behaves like N-central where the adapter depends on it (sources in
`adapter.py`):

- `POST /api/auth/authenticate` with the User-API token (JWT) as bearer → `{"tokens": {"access":
  {token, type: "Bearer", expirySeconds}, "refresh": {token, type: "Body", expirySeconds}}, "refresh",
  "validate"}`; `X-ACCESS-EXPIRY-OVERRIDE` / `X-REFRESH-EXPIRY-OVERRIDE` (`120s`, `30m`, `1h`) are
  honoured. `POST /api/auth/refresh` takes the refresh token as the raw body and rotates both tokens.
  Tokens expire by the fake's token clock (`clock`, `advance_clock`); `restart()` forgets every issued
  token like a rebooted server. A missing, unknown or expired bearer is 401.
- Paged lists (`/api/customers`, `/api/sites`, `/api/devices`, `/api/org-units/{id}/devices`):
  `pageNumber` (from 1), `pageSize` (1–1000, default 50; outside → 400), `sortBy`/`sortOrder`
  (ASC/ASCENDING/NATURAL, DESC/DESCENDING/REVERSE), `filterId` on devices (filters registered with
  `add_filter`); envelope `data, pageNumber, pageSize, itemCount, totalItems, totalPages, _links`.
- `GET /api/devices/{id}` → `{data, _links}`; `GET /api/devices/{id}/service-monitor-status` →
  `{data: [DeviceServiceMonitoringStatus], totalItems}`.
- `POST /api/scheduled-tasks/direct` validates the body, refuses repository items without API access
  (403 `ScriptNotRunnableException`) and records a task; `GET /api/scheduled-tasks/{id}`.
- Errors are `{"status": n, "message": "[ID=…] REASON: SomethingException: …"}` like the spec's
  examples; the exact texts are this fake's own. The monitored-service names used when seeding
  ("Agent Status", "AV Defender Status", "AV Status", "AV Defender Threat Status", "CPU", "Disk",
  "Windows UAC Status") are plausible but only "Windows UAC Status" and "Disk" appear in N-able's
  examples.

Test and demo hooks: `seed_fleet`, `add_*`, mutators (`touch`, `set_service`, `set_online`),
malformed data (`corrupt_device`, `break_status`, `old_server`), notifications (`notification_xml`),
fault injection (`rate_limit` → 429 + Retry-After, `fail_next` → 5xx, `embed_error_next` → an error
inside a 200, `latency`, `restart`, `advance_clock`) and call records (`requests`, `call_count`,
`reset_calls`, `tasks`).

Files: `store.py` (records, seeding helpers, mutators, malformed data and notifications), `seed.py`
(`seed_fleet`), `app.py` (tokens, paged lists, service states, scheduled tasks), `harness.py` (the
conformance-suite driver).
"""

from __future__ import annotations

from adapters.ncentral.fake.app import NcentralApiError, NcentralFake
from adapters.ncentral.fake.seed import FleetSeed
from adapters.ncentral.fake.store import (
    AGENT_SERVICE,
    AV_PRODUCTS,
    DEFAULT_TEMPLATE,
    MAX_PAGE_SIZE,
    THREAT_SERVICE,
    DirectTask,
    FakeCustomer,
    FakeDevice,
    FakeService,
    FakeSite,
    iso,
    local_text,
)

__all__ = [
    "AGENT_SERVICE",
    "AV_PRODUCTS",
    "DEFAULT_TEMPLATE",
    "MAX_PAGE_SIZE",
    "THREAT_SERVICE",
    "DirectTask",
    "FakeCustomer",
    "FakeDevice",
    "FakeService",
    "FakeSite",
    "FleetSeed",
    "NcentralApiError",
    "NcentralFake",
    "iso",
    "local_text",
]
