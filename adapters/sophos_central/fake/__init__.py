"""A stateful fake of the Sophos Central APIs, as an ASGI app.

Use it in-process with `httpx.ASGITransport(app=fake.app)` (every host routes to it; the request's
host decides what answers), or serve `fake.app` with uvicorn for a demo. It behaves like Sophos
Central where the adapter depends on it (sources in `adapter.py`):

- `id.sophos.com` `POST /api/v2/oauth2/token`, form only, exactly `grant_type=client_credentials`,
  `scope=token`, `client_id`, `client_secret` → `{access_token, errorCode: success, expires_in,
  message, refresh_token, token_type, trackingId}`; a wrong client is 401, a malformed form 400
  (`{errorCode, message, trackingId}`; the codes are this fake's own).
- `api.central.sophos.com`: `GET /whoami/v1`; `GET /partner/v1/tenants` (or
  `/organization/v1/tenants`) with the caller's id in `X-Partner-ID` (`X-Organization-ID`),
  page-number paging (`page`, `pageSize` up to 100, `pageTotal`); `GET
  /partner/v1/billing/usage/{year}/{month}` (`X-Partner-ID`, key paging, 404 "No data for requested
  year or month." after the current month or outside `usage_months`).
- `api-{region}.central.sophos.com` (one region per tenant, in turn): `GET /endpoint/v1/endpoints`
  (`view`, `lastSeenAfter`, `online`, key paging with `pageSize` lowered to 500) and `GET /common/v1/alerts`
  (open alerts, key paging up to 1000), both with `X-Tenant-ID`; a tenant asked for on another
  region's host is 400.
- Every API call needs a bearer the token route issued (else 401); a query parameter the fake does
  not implement is 400, so a stray parameter shows.
- Errors: `{error, message, correlationId, requestId}`, as in the collection's examples.

Hooks: seeding (`add_tenant`, `add_endpoint`, `set_usage`), changes (`touch`, `set_services`,
`set_last_seen`, `raise_alert`, `acknowledge`, `expire_tokens`, `corrupt` on an endpoint), faults by
path prefix (`fail_next`, `rate_limit` → 429 + Retry-After) and records (`calls`, `requests`).

Files: `store.py` (records and mutators), `app.py` (the HTTP face), `harness.py` (the harness).
"""

from __future__ import annotations

from adapters.sophos_central.fake.app import SophosApiError, SophosCentralFake
from adapters.sophos_central.fake.store import FakeAlert, FakeEndpoint, FakeTenant

__all__ = ["FakeAlert", "FakeEndpoint", "FakeTenant", "SophosApiError", "SophosCentralFake"]
