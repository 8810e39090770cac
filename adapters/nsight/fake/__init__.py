"""A stateful fake of the N-sight RMM Data Extraction API, as an ASGI app.

Use it in-process with `httpx.ASGITransport(app=fake.app)` (any host routes to it), or serve `fake.app`
with uvicorn for a demo. It behaves like the real API where the adapter depends on it
(see `adapter.py` for the sources):

- `GET /api/?apikey=…&service=…`; every answer is `<result created=".." host=".." status="OK|FAIL">`
  XML declared and encoded as ISO-8859-1, names in CDATA. A FAIL carries `<msg>`. The wording of the
  fake's FAIL messages (wrong key, unknown device, missing parameter) is its own: the real texts are
  not documented.
- Services: list_clients (with per-client server/workstation counts), list_sites&clientid,
  list_servers&siteid / list_workstations&siteid (no paging, like the real ones), list_failing_checks
  [&clientid][&check_type=random|checks|tasks] (1023 = Windows Automated Task), mav_scan_start&deviceid,
  mav_definitions_update&deviceid (FAIL "There is already a MAV definition update pending" when one
  is pending).
- A wrong or missing key is a FAIL with HTTP 200 by default (`auth_failure_status` switches to 401/403).

Test and demo hooks: `seed_fleet`, `add_*`, mutators (`fail_check`, `clear_check`, `set_av_state`,
`touch`, `set_online`, `break_device`), fault injection (`rate_limit` → 429 + Retry-After, `fail_next`
→ 500, `latency`, `truncate` → cut-off XML, `serve_bomb` → entity-expansion XML) and call records
(`calls`, `requests`, `call_count`, `reset_calls`). Check type ids other than 1023 (documented) and
1026/1034 (community-reported MAV types) are placeholders.

Files: `store.py` (records, seeding helpers, mutators and fault hooks), `seed.py` (`seed_fleet`),
`app.py` (the XML services), `harness.py` (the conformance-suite driver).
"""

from __future__ import annotations

from adapters.nsight.fake.app import NsightApiError, NsightFake
from adapters.nsight.fake.seed import FleetSeed
from adapters.nsight.fake.store import CHECK_TEMPLATES, FakeCheck, FakeDevice

__all__ = ["CHECK_TEMPLATES", "FakeCheck", "FakeDevice", "FleetSeed", "NsightApiError", "NsightFake"]
