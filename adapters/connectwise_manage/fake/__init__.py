"""A stateful fake of the ConnectWise PSA (Manage) REST API 3.0, as an ASGI app.

Use it in-process with `httpx.ASGITransport(app=fake.app)` (any host routes to it), or serve
`fake.app` with uvicorn for a demo. It behaves like Manage where the adapter depends on it:

- `GET /login/companyinfo/{companyId}` (unauthenticated) returns `Codebase`, `IsCloud`, ...; the API
  lives under `/{codebase}apis/3.0` (vendor-notes/psa.md §1.1).
- Basic `{companyId}+{publicKey}:{privateKey}` and the `clientId` header are checked on every API
  call; failures are 401 with Manage's error body (§1.2). The `Accept` version is recorded.
- Lists page like Manage (§1.4): `page`/`pageSize` (default 25, silently capped at 1,000) with an
  RFC 5988 `Link` header (first/prev/next/last, the query kept); forward-only paging with
  `pagination-type: forward-only` and `pageId` (= `id > pageId`, id order, `orderBy` refused, `Link`
  always carries the next `pageId`). `fields` (partial responses) and `orderBy` are honoured.
- `conditions` (§1.3) are parsed, not pattern-matched: `= != < <= > >= contains like in`, `not`,
  `and`/`or`, parentheses, quoted strings with backslash escapes (`[[]` is a literal `[` in
  contains/like), integers/decimals, `True`/`False`/`null`, `[datetime]`, dotted paths such as
  `company/id`. Unknown fields or bad syntax are a 400 with Manage's error body. String comparisons
  are case-insensitive (SQL Server collation).
- Writes are validated against the All.json field lists (`ai-connor/connectwise` model_*.go): unknown
  fields, wrong reference shapes (`{"id": n}` / `{"identifier": ...}` objects), missing required fields,
  references to records that do not exist → 400 `{"code", "message", "errors": [{..., "field"}]}`.
- PATCH takes a JSON array of `{op, path, value}` (§1.5); a nested path such as `company/identifier`
  is accepted with 200 and changes nothing, like the real API (recorded in `ignored_patch_ops`).
- Service notes need one of `detailDescriptionFlag`/`internalAnalysisFlag`/`resolutionFlag`
  (observed Manage behaviour, not in All.json).

Test and benchmark hooks: seeding helpers (`add_*`, `seed_demo`), fault injection (`fail_next`,
`rate_limit`, `fail_path`, `clear_faults`, `latency`), and a call counter (`calls`, `call_count`,
`requests`, `reset_calls`), and an in-flight gauge (`in_flight`, `max_in_flight`: requests answered at
once). Stores are indexed by id, company and parent so 50k-record tenants stay fast.

Files: `schema.py` (All.json field lists, Manage's error body, scripted faults), `query.py` (the
`conditions` language), `store.py` (tables and seeding helpers), `writes.py` (validated creates and
patches), `seed.py` (`seed_demo`), `app.py` (routing, auth, reads, paging), `harness.py` (the
conformance-suite driver).
"""

from __future__ import annotations

from adapters.connectwise_manage.fake.app import ManageFake
from adapters.connectwise_manage.fake.query import ConditionError, compile_conditions, parse_conditions
from adapters.connectwise_manage.fake.schema import (
    ADDITION_FIELDS,
    COMPANY_FIELDS,
    CONFIGURATION_FIELDS,
    NOTE_FIELDS,
    TICKET_FIELDS,
    Fault,
    ManageApiError,
)
from adapters.connectwise_manage.fake.seed import DemoSeed
from adapters.connectwise_manage.fake.store import Table
from adapters.testing.faults import RecordedRequest

__all__ = [
    "ADDITION_FIELDS",
    "COMPANY_FIELDS",
    "CONFIGURATION_FIELDS",
    "NOTE_FIELDS",
    "TICKET_FIELDS",
    "ConditionError",
    "DemoSeed",
    "Fault",
    "ManageApiError",
    "ManageFake",
    "RecordedRequest",
    "Table",
    "compile_conditions",
    "parse_conditions",
]
