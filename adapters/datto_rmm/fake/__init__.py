"""A stateful fake of the Datto RMM API v2, as an ASGI app.

Use it in-process with `httpx.ASGITransport(app=fake.app)` (any host routes to it), or serve
`fake.app` with uvicorn for a demo. It behaves like Datto where the adapter depends on it (sources
in `adapter.py`):

- `POST /auth/oauth/token` takes only `Authorization: Basic public-client:public` (else 401), a form
  body (else 400 `invalid_request`), `grant_type=password` (else 400 `unsupported_grant_type`) and a
  known API key and secret (else 400 `invalid_grant` "Bad credentials", Spring Security OAuth2's
  answers). Tokens last 100 hours by the fake's clock (`clock`, `advance_clock`) or until
  `expire_tokens()`; a missing, unknown or expired bearer is 401 `invalid_token`.
- Every request, the token route included, counts in a rolling 60 s window: past 600 requests (or
  100 writes) the answer is 429 until the window frees up (`reads_per_minute`,
  `writes_per_minute`).
- Lists (`/api/v2/account/sites`, `/devices`, `/alerts/open` with `muted`) page with `page` (from 0)
  and `max` (capped at 250), answer `{pageDetails{count, totalCount, prevPageUrl, nextPageUrl},
  sites|devices|alerts}` with absolute page links; a non-integer `page`/`max` is 400. Devices carry
  times as Unix milliseconds and `antivirus{antivirusProduct, antivirusStatus}`.
- `PUT /api/v2/device/{deviceUid}/quickjob` needs `jobName` and `jobComponent.componentUid` of a known
  component (404 "Device was not found." / "Component was not found."), records a `QuickJob` and
  answers `{job{uid, status: active}, jobComponents}`.
- Unknown paths are 404 and known paths under another method 405, in Spring Boot's error body
  `{status, error, message, path}`.

Hooks: `seed_fleet`, `add_*`, mutators (`touch`, `set_av`, `corrupt_device`, `add_alert`,
`resolve_alerts`), faults (`fail_next`, `rate_limit` with `Retry-After`, `latency`,
`expire_tokens`, `advance_clock`) and records (`requests`, `call_count`, `quick_jobs`).

Files: `store.py` (records and mutators), `seed.py` (`seed_fleet`), `app.py` (the HTTP face),
`harness.py` (the conformance-suite driver).
"""

from __future__ import annotations

from adapters.datto_rmm.fake.app import DattoFake
from adapters.datto_rmm.fake.seed import FleetSeed
from adapters.datto_rmm.fake.store import FakeAlert, FakeDevice, FakeSite, QuickJob, millis

__all__ = ["DattoFake", "FakeAlert", "FakeDevice", "FakeSite", "FleetSeed", "QuickJob", "millis"]
