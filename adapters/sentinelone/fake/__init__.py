"""A stateful fake of the SentinelOne Management API 2.1, as an ASGI app.

Use it in-process with `httpx.ASGITransport(app=fake.app)` (any host routes to it), or serve
`fake.app` with uvicorn for a demo. It behaves like the console where the adapter depends on it
(sources in `adapter.py`):

- Every route is under `/web/api/v2.1`; a request without `Authorization: ApiToken <the token>` is
  401 `{"errors": [{"code": 4010010, "title": "Authentication Failed"}]}`.
- `GET /sites` → `{data: {allSites{activeLicenses, totalLicenses}, sites[…]}, pagination}`;
  `GET /agents`, `GET /threats` → `{data: […], pagination: {totalItems, nextCursor}}`, in id order.
  Rows are shaped like the real samples under ../shared/specs/sentinelone/samples.
- Paging: `limit` 1–1000 (default 10; outside that range 400), `cursor` = the previous answer's
  `nextCursor` (base64 `agent_id:<last id>`, as the console's look; a foreign or malformed one is
  400), `nextCursor` null on the last page; the filters are applied again on every page.
- Filters: `siteIds` (all three), `states` (sites), `isDecommissioned` (agents), `resolved`
  (threats), `updatedAt__gt` / `updatedAt__gte` (agents, threats). A query parameter the fake does
  not implement is refused 400 "Validation Error" naming it, so a misspelt filter cannot pass
  silently.
- Errors in the console's shape `{"errors": [{code, title, detail}], "data": null}` (codes are
  SentinelOne's pattern: HTTP status × 10000 + 10).

Test and demo hooks: `add_site`, `add_agent`, `seed_console`, mutators (`touch`, `decommission`,
`set_operational_state`, `set_last_active`, `add_threat`, `resolve_threat`, `corrupt_agent`), faults
(`rate_limit` → 429 + Retry-After, `fail_next` → 5xx, by API-relative path), `latency`, and records
(`requests`, `call_count`, `reset_calls`).

Files: `store.py` (records, seeding methods and mutators), `seed.py` (`seed_console`), `app.py` (the
HTTP face), `harness.py` (the `SecurityHarness`).
"""

from __future__ import annotations

from adapters.sentinelone.fake.app import SentinelOneApiError, SentinelOneFake
from adapters.sentinelone.fake.seed import ConsoleSeed
from adapters.sentinelone.fake.store import FakeAgent, FakeSite, FakeThreat

__all__ = ["ConsoleSeed", "FakeAgent", "FakeSite", "FakeThreat", "SentinelOneApiError", "SentinelOneFake"]
