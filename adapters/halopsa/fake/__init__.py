"""A stateful fake of the HaloPSA REST API and its auth server, as an ASGI app.

Use it in-process with `httpx.ASGITransport(app=fake.app)` (any host routes to it), or serve
`fake.app` with uvicorn for a demo. It behaves like Halo where the adapter depends on it (sources
in `adapter.py`):

- `POST /auth/token` takes the form `grant_type=client_credentials, client_id, client_secret,
  scope`, plus `?tenant=` when the fake is built with a tenant; bad credentials are 400
  `{"error": "invalid_client", ...}` (OAuth2). Tokens expire after `token_lifetime` seconds of the
  fake's clock (`advance()`), or at once with `expire_tokens()`; an expired or unknown Bearer token
  is a 401. Paths are case-insensitive, as Halo's are (`/api/Client` = `/api/client`).
- Lists page with `pageinate=true&page_size&page_no` (1-based) and answer
  `{"page_no", "page_size", "record_count", <key>: [...]}` (`clients`, `sites`, `contracts`,
  `tickets`, `actions`, `assets`, `invoices`); lookups (`/Status`, `/TicketType`, `/Priority`,
  `/Team`) are bare arrays. Halo documents no page-size ceiling; `max_page_size` can impose one.
- Filters the adapter uses: `client_id`, `search`, `open_only`, `ticket_id`, `inventory_number`,
  `contract_id`, `type`.
- Writes are POSTs of a JSON array; an element with `id` updates that record. Missing required
  fields and unknown references are 400 with a prose message as a JSON string, e.g. "An Outcome must
  be entered for this Action" (Halo's wording, quoted in CIPP-API); the other messages are
  illustrative. `POST /RecurringInvoice` replaces the invoice's lines with the ones sent (omitted
  lines are deleted), which is why every line must be sent back. An action or ticket write that sets
  status 9 (Halo's default "Closed") marks the ticket `hasbeenclosed`.

Test and demo hooks: `seed_demo` (deterministic), `add_*`, fault injection (`fail_next`,
`rate_limit`, `timeout_next`, `clear_faults`, `set_latency`), a clock (`advance`,

Files: `schema.py` (Halo's error body, scripted faults, value checks), `store.py` (records and
seeding helpers), `writes.py` (tickets, actions, assets and recurring invoices as Halo writes them),
`seed.py` (`seed_demo`), `app.py` (the auth server, routing, paging and filters), `harness.py` (the
conformance-suite driver).
"""

from __future__ import annotations

from adapters.halopsa.fake.app import HaloFake
from adapters.halopsa.fake.schema import Fault, HaloApiError
from adapters.halopsa.fake.seed import DemoSeed

__all__ = ["DemoSeed", "Fault", "HaloApiError", "HaloFake"]
