"""Sophos Central adapter package: `SPEC` is the `connector.adapters` entry point.

See `adapter.py` for sources and behaviour, `fake/` for the stateful fake used by tests and demos.
"""

from __future__ import annotations

from adapters.base import AdapterSpec, Role
from adapters.sophos_central.adapter import SophosCentralAdapter, create_adapter
from adapters.sophos_central.models import GLOBAL_API, SophosCredentials, SophosOptions

SPEC = AdapterSpec(
    kind="sophos_central",
    role=Role.SECURITY,
    title="Sophos Central",
    credentials_model=SophosCredentials,
    factory=create_adapter,
    options_model=SophosOptions,
    default_base_url=GLOBAL_API,
    harness="adapters.sophos_central.fake.harness:SophosCentralHarness",
)

__all__ = ["SPEC", "SophosCentralAdapter", "SophosCredentials", "SophosOptions", "create_adapter"]
