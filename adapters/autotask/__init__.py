"""Autotask PSA adapter package: `SPEC` is the `connector.adapters` entry point.

See `adapter.py` for sources and behaviour, `fake/` for the stateful fake used by tests and demos.
The connection's base URL is the zone-discovery host; the zone's own URL is discovered per API user.
"""

from __future__ import annotations

from adapters.autotask.adapter import DISCOVERY_URL, AutotaskAdapter, create_adapter
from adapters.autotask.models import AutotaskCredentials, AutotaskOptions
from adapters.base import AdapterSpec, Role

SPEC = AdapterSpec(
    kind="autotask",
    role=Role.PSA,
    title="Autotask PSA",
    credentials_model=AutotaskCredentials,
    factory=create_adapter,
    options_model=AutotaskOptions,
    default_base_url=DISCOVERY_URL,
    harness="adapters.autotask.fake.harness:AutotaskHarness",
)

__all__ = ["SPEC", "AutotaskAdapter", "AutotaskCredentials", "AutotaskOptions", "create_adapter"]
