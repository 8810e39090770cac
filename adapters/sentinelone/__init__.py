"""SentinelOne security-console adapter package: `SPEC` is the `connector.adapters` entry point.

See `adapter.py` for sources and behaviour, `fake/` for the stateful fake used by tests and demos.
"""

from __future__ import annotations

from adapters.base import AdapterSpec, Role
from adapters.sentinelone.adapter import SentinelOneAdapter, create_adapter
from adapters.sentinelone.models import SentinelOneCredentials, SentinelOneOptions

SPEC = AdapterSpec(
    kind="sentinelone",
    role=Role.SECURITY,
    title="SentinelOne",
    credentials_model=SentinelOneCredentials,
    factory=create_adapter,
    options_model=SentinelOneOptions,
    webhook_scheme="generic",
    default_base_url=None,
    harness="adapters.sentinelone.fake.harness:SentinelOneHarness",
)

__all__ = ["SPEC", "SentinelOneAdapter", "SentinelOneCredentials", "SentinelOneOptions", "create_adapter"]
