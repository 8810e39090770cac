"""A stateful fake of the Huntress REST API v1, as an ASGI app.

Use it in-process with `httpx.ASGITransport(app=fake.app)` (any host routes to it), or serve
`fake.app` with uvicorn for a demo. It behaves like Huntress where the adapter depends on it
(sources in `adapter.py`):

- HTTP Basic auth with the account's API key and secret on every route (else 401).
- `GET /v1/account`, `/v1/actor`; `GET /v1/organizations`, `/v1/agents`, `/v1/incident_reports`
  answering `{<resources>: [...], pagination: {next_page_url, next_page_token}}` (pagination empty
  on the last page), `limit` 1..500 (default 10), an opaque `page_token` tied to the query it came
  from, `sort_field` / `sort_direction` (default id, desc) and the filters the document declares;
  an undeclared parameter or an invalid value is 400.
- `GET /v1/organizations/{id}`: `OrganizationWithActualProductUsages`, `actual_usages.edr` with the
  billable agent count.
- Errors `{status, error}` (Huntress documents the codes, not the body; the texts are this fake's).

Test and demo hooks: `add_*`, mutators (`touch`, `set_defender`, `set_firewall`,
`set_last_callback`, `add_report`, `close_report`, `set_billable`), `webhook_payload`, faults
(`rate_limit` → 429 + Retry-After, `fail_next` → 5xx, `latency`) and records (`requests`,
`call_count`, `reset_calls`). `seed.seed_fleet` seeds a larger account.
"""

from __future__ import annotations

from adapters.huntress.fake.app import HuntressApiError, HuntressFake
from adapters.huntress.fake.store import FakeAgent, FakeIncidentReport, FakeOrganization

__all__ = ["FakeAgent", "FakeIncidentReport", "FakeOrganization", "HuntressApiError", "HuntressFake"]
