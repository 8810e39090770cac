"""HaloPSA adapter package: `SPEC` is the `connector.adapters` entry point.

See `adapter.py` for sources and behaviour, `fake/` for the stateful fake used by tests and demos.
"""

from __future__ import annotations

from adapters.base import AdapterSpec, Role
from adapters.halopsa.adapter import HaloPsaAdapter, create_adapter
from adapters.halopsa.models import HaloCredentials, HaloOptions

SPEC = AdapterSpec(
    kind="halopsa",
    role=Role.PSA,
    title="HaloPSA",
    credentials_model=HaloCredentials,
    factory=create_adapter,
    options_model=HaloOptions,
    default_base_url="https://example.halopsa.com",
    harness="adapters.halopsa.fake.harness:HaloHarness",
)

__all__ = ["SPEC", "HaloCredentials", "HaloOptions", "HaloPsaAdapter", "create_adapter"]
