"""A stateful fake of the Autotask PSA REST API (zone discovery included), as an ASGI app.

Use it in-process with `httpx.ASGITransport(app=fake.app)` (any host routes to it: the discovery
host and the zone host alike), or serve `fake.app` for a demo. It behaves like Autotask where the
adapter depends on it (sources in `adapter.py`):

- Paths are `/ATServicesRest/V1.0/...`, case-insensitive. `GET …/ZoneInformation?user=` answers
  `{zoneName, url, webUrl, ci}` for the known API user (unauthenticated, not counted).
- Every other call needs the `ApiIntegrationCode`, `UserName` and `Secret` headers (else 401), and
  counts toward `ThresholdInformation` (`{externalRequestThreshold, requestThresholdTimeframe,
  currentTimeframeRequestCount}`); past the threshold every call is a 429 with the error body.
- `POST /{Entity}/query` takes `QueryModel` (`filter` required, `maxRecords` 1..500, `includeFields`)
  with the operators eq, noteq, gt, gte, lt, lte, beginsWith, endsWith, contains, exist, notExist,
  in, notIn and and/or groupings (`udf: true` filters user-defined fields); string comparisons
  ignore case. Pages carry `pageDetails.nextPageUrl` (`…/{Entity}/query/next?paging=…`), which must
  be POSTed with the same body; a GET there is a 405, as on Autotask.
- Writes answer 200 `{"itemId": n}`. Unknown fields, missing required fields, picklist values not
  in the picklist and references to missing records are HTTP 500 `{"errors": ["…"]}`; the wording
  "Value does not reference an existing entity for X ." is Autotask's, the other messages are
  illustrative.
- ContractServiceAdjustments change ContractServiceUnits by `unitChange` (a delta), splitting the
  period's row at the effective date; they create the ContractService when it is missing and cannot
  be queried.

Test and demo hooks: `seed_demo` (deterministic), `add_*`, fault injection (`fail_next`, `rate_limit`,
`timeout_next`, `clear_faults`, `set_latency`), threshold usage by other integrations
(`other_usage`), and request records (`requests`, `call_count`, `reset_calls`).

Files: `schema.py` (the entities' fields, Autotask's error body, scripted faults), `store.py`
(entities and seeding helpers), `query.py` (the query filter language and paging), `writes.py`
(validated creates, patches and seat adjustments), `seed.py` (`seed_demo`), `app.py` (routing, auth,
the threshold), `harness.py` (the conformance-suite driver).
"""

from __future__ import annotations

from adapters.autotask.fake.app import AutotaskFake
from adapters.autotask.fake.schema import AutotaskApiError, Fault, RecordedRequest
from adapters.autotask.fake.seed import DemoSeed

__all__ = ["AutotaskApiError", "AutotaskFake", "DemoSeed", "Fault", "RecordedRequest"]
