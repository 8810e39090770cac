"""A stateful fake of the Kaspersky Security Center Open API, as an ASGI app.

Use it in-process with `httpx.ASGITransport(app=fake.app)` (any host routes to it), or serve
`fake.app` with uvicorn for a demo. It behaves like KSC where the adapter depends on it (sources in
`adapter.py`):

- `POST /api/v1.0/Class.Method` only, JSON bodies of the method's named arguments; an unknown
  method is 404, an unknown or missing argument 400 (KSC's own answer to those is not published).
- `Session.StartSession` takes `Authorization: KSCBasic user="<b64>", pass="<b64>", internal="1"`
  and an optional `X-KSC-VServer: <b64 KLVSRV_UID>`, and answers `{"PxgRetVal": <token>}`; every
  other call needs `X-KSC-Session` (401 when unknown or expired) and the same virtual server header
  as its session (403 otherwise).
- `VServers.GetVServers` (main server only), `HostGroup.FindHosts` (filter `""` for all hosts or
  `(KLHST_WKS_UNCURED_COUNT > n)`; other filters are refused: the fake does not implement KSC's
  filter language), `ChunkAccessor.GetItemsCount/GetItemsChunk/Release`, `LicenseKeys.EnumKeys`,
  `GroupSyncIterator.GetNextItems/ReleaseIterator`, with values typed as KSC types them inside
  "params" containers (`datetime`, `long`, `params`).
- Errors: `{"PxgError": {code, module, message}}` (the messages and codes are this fake's own).

Operations faults are aimed at: `list_customers` (GetVServers), `list_agents` (each GetItemsChunk
of a full host listing), `list_threats` (FindHosts with the uncured filter), `licence_use`
(EnumKeys). Hooks: `fail_next`, `rate_limit` (429 + Retry-After), `expire_sessions`, records
(`requests`, `call_count`, `released`).
"""

from __future__ import annotations

from adapters.kaspersky_security_center.fake.app import KscApiError, KscFake
from adapters.kaspersky_security_center.fake.store import FakeHost, FakeKey, FakeVServer

__all__ = ["FakeHost", "FakeKey", "FakeVServer", "KscApiError", "KscFake"]
