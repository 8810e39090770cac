"""A stateful fake of the N-sight RMM Data Extraction API, as an ASGI app.

Use it in-process with `httpx.ASGITransport(app=fake.app)` (any host routes to it), or serve `fake.app`
with uvicorn for a demo. It behaves like the real API where the adapter depends on it
(see `adapter.py` for the sources):

- `GET /api/?apikey=…&service=…`; every answer is `<result created=".." host=".." status="OK|FAIL">`
  XML declared and encoded as ISO-8859-1, names in CDATA. A FAIL carries
  `<error><errorcode/><message/></error>` (3 = login failed, 4 = invalid parameter) or, for the
  documented refusal of mav_definitions_update, `<msg>`. The wording of the messages is the fake's
  own: the real texts are not published (only the codes are).
- Services: list_clients (with per-client server/workstation counts), list_sites&clientid,
  list_servers&siteid / list_workstations&siteid (no paging, like the real ones; `<online>` is 1 for
  every device, offline or not, as a real dashboard answers), list_failing_checks
  [&clientid][&check_type=random|checks|tasks] (1023 = Windows Automated Task; offline devices carry
  an `<offline>` element), list_mav_scans&deviceid&details=YES|NO[&v] (`<scan>` items under
  `<result>`, Bitdefender type names), list_mav_threats&deviceid[&v] (`<threat>` items with
  name/category/last_event/last_status), mav_scan_start&deviceid, mav_definitions_update&deviceid
  (FAIL "There is already a MAV definition update pending" when one is pending).
- Devices have Managed Antivirus unless seeded with `mav=False` or `remove_mav` is called.
- A wrong or missing key is a FAIL with HTTP 200 by default (`auth_failure_status` switches to 401/403).

Test and demo hooks: `seed_fleet`, `add_*`, mutators (`fail_check`, `clear_check`, `set_av_state`,
`remove_mav`, `set_last_scan`, `touch`, `set_online`, `break_device`), fault injection (`rate_limit`
→ 429 + Retry-After, `fail_next` → 500, `latency`, `truncate` → cut-off XML, `serve_bomb` →
entity-expansion XML) and call records (`calls`, `requests`, `call_count`, `reset_calls`). Check
type ids other than 1023 (documented) and 1026/1034 (community-reported MAV types) are placeholders.

Files: `store.py` (records, seeding helpers, mutators and fault hooks), `seed.py` (`seed_fleet`),
`app.py` (the XML services), `harness.py` (the conformance-suite driver).
"""

from __future__ import annotations

from adapters.nsight.fake.app import NsightApiError, NsightFake
from adapters.nsight.fake.seed import FleetSeed
from adapters.nsight.fake.store import CHECK_TEMPLATES, FakeCheck, FakeDevice

__all__ = ["CHECK_TEMPLATES", "FakeCheck", "FakeDevice", "FleetSeed", "NsightApiError", "NsightFake"]
