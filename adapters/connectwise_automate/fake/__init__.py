"""A stateful fake of the ConnectWise Automate REST API v1, as an ASGI app.

Use it in-process with `httpx.ASGITransport(app=fake.app)` (any host routes to it), or serve `fake.app`
with uvicorn for a demo. It behaves like Automate where the adapter depends on it (sources in
`adapter.py`):

- `POST /cwa/api/v1/apitoken` `{UserName, Password[, TwoFactorPasscode]}` → `TokenResult`; a user with
  2FA and no passcode gets 200 with an empty `AccessToken` and `IsTwoFactorRequired: true`. Tokens
  expire after `token_lifetime` seconds by the fake's token clock (`clock`, `advance_clock`) or when
  `expire_tokens()` is called; a missing, unknown or expired bearer is 401.
- The `ClientId` header is required on every route (token route included); missing or unregistered
  is 403. Routes match case-insensitively, like ASP.NET routing.
- Lists (`/Clients`, `/Locations`, `/Computers`, `/Alerts`, `/Computers/{id}/ScriptHistory`) are bare
  JSON arrays: `page` (1-based), `pageSize` (default 50, silently capped at 1000), `orderBy`
  (`Field asc|desc`), `includeFields`, and `condition` parsed, not pattern-matched: `= eq > >= < <=`,
  `like` (`%`/`_`), `contains`, `in (...)`, `not` before in/like/contains, `and`/`or`, parentheses,
  quoted strings, numbers, `true`/`false`/`null`, bare datetimes, dotted fields (`Client.Id`),
  case-insensitive field names and string comparisons (MySQL collation). An unknown field or bad
  syntax is a 400 `{"Message": ...}`.
- `POST /Batch/ScriptExecute` validates the body, records a script run per accepted computer and
  answers `{ScriptResults, ContainsUnsuccessfulResults}`; unknown computers or scripts and offline
  agents with `SkipsOfflineAgents` are per-target failures.
- Errors are ASP.NET-style `{"Message": ...}` bodies. The exact message texts (and 403 for a bad
  ClientId) are this fake's own: Automate's are not published.

Test and demo hooks: `seed_fleet`, `add_*`, mutators (`touch`, `set_av`, `set_online`, `add_alert`),
fault injection (`rate_limit` → 429 + Retry-After, `fail_next` → 5xx, `latency`, `expire_tokens`,
`advance_clock`) and call records (`requests`, `call_count`, `reset_calls`, `script_runs`).

Files: `store.py` (records, field lists, seeding helpers and mutators), `query.py` (the `condition`
language), `seed.py` (`seed_fleet`), `app.py` (the token route, auth, lists, script execution),
`harness.py` (the conformance-suite driver).
"""

from __future__ import annotations

from adapters.connectwise_automate.fake.app import AutomateApiError, AutomateFake
from adapters.connectwise_automate.fake.query import ConditionError, parse_condition
from adapters.connectwise_automate.fake.seed import FleetSeed
from adapters.connectwise_automate.fake.store import (
    FakeAlert,
    FakeClient,
    FakeComputer,
    FakeLocation,
    FakeUser,
    ScriptRun,
    wire_time,
)

__all__ = [
    "AutomateApiError",
    "AutomateFake",
    "ConditionError",
    "FakeAlert",
    "FakeClient",
    "FakeComputer",
    "FakeLocation",
    "FakeUser",
    "FleetSeed",
    "ScriptRun",
    "parse_condition",
    "wire_time",
]
