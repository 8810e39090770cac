"""A stateful fake of the NinjaOne Public API 2.0, as an ASGI app.

Use it in-process with `httpx.ASGITransport(app=fake.app)` (any host routes to it), or serve `fake.app`
with uvicorn for a demo. It behaves like NinjaOne where the adapter depends on it (sources in
`adapter.py`):

- `POST /ws/oauth/token`, form encoded only: `grant_type=client_credentials` (else 400
  `unsupported_grant_type`), the API client's id and secret (else 401 `invalid_client`), a scope
  within `monitoring management control` and what the client was granted (else 400
  `invalid_scope`) → `{access_token, token_type, expires_in, scope}`. A missing, unknown or
  expired bearer is 401; a token without the scope a route needs is 403 (monitoring for reads,
  management for the webhook, control for scripts).
- `GET /v2/organizations`, `/v2/devices-detailed`: bare arrays in id order, `pageSize` and
  `after=<last id>`; a `df` device filter is refused (400): the fake does not implement the
  filter language.
- `GET /v2/queries/antivirus-status|antivirus-threats|computer-systems`: `{cursor{name, offset,
  count, expires}, results}`, `pageSize` (default 100) and the `cursor` name of the previous
  answer; an unknown or expired cursor (10 minutes) is 400.
- `PUT /v2/webhook` validates `WebhookConfiguration` (unknown fields refused), stores it, 204; 403
  "Only system administrators can configure webhooks" when the client's account is not one.
- `POST /v2/device/{id}/script/run` validates `RunScriptRequest`, records the run, 204; unknown
  device 404, unknown script 400.
- Errors: OAuth2 bodies `{error, error_description}` on auth; `{resultCode: FAILURE, errorMessage,
  incidentId}` elsewhere (the texts are this fake's own: NinjaOne's are not published).

Test and demo hooks: `seed_fleet`, `add_*`, mutators (`touch`, `set_product`, `remove_products`,
`add_threat`, `resolve_threats`, `corrupt_device`), `activity()` (a webhook payload), faults
(`rate_limit` → 429 + Retry-After, `fail_next` → 5xx, `latency`, `expire_tokens`,
`advance_clock`) and records (`requests`, `call_count`, `reset_calls`, `script_runs`, `webhook`).

Files: `store.py` (records, seeding helpers and mutators), `seed.py` (`seed_fleet`), `app.py` (the
HTTP face), `harness.py` (the conformance-suite driver).
"""

from __future__ import annotations

from adapters.ninjaone.fake.app import NinjaOneApiError, NinjaOneFake
from adapters.ninjaone.fake.seed import FleetSeed
from adapters.ninjaone.fake.store import FakeDevice, FakeOrganization, FakeProduct, FakeThreat, ScriptRun

__all__ = [
    "FakeDevice",
    "FakeOrganization",
    "FakeProduct",
    "FakeThreat",
    "FleetSeed",
    "NinjaOneApiError",
    "NinjaOneFake",
    "ScriptRun",
]
