"""N-able N-sight RMM adapter package: `SPEC` is the `connector.adapters` entry point.

See `adapter.py` for sources and behaviour, `fake/` for the stateful fake used by tests and demos.
"""

from __future__ import annotations

from adapters.base import AdapterSpec, Role
from adapters.nsight.adapter import ACTIONS, REFUSALS, NsightAdapter, create_adapter
from adapters.nsight.models import NsightCredentials, NsightOptions

SPEC = AdapterSpec(
    kind="nsight",
    role=Role.RMM,
    title="N-able N-sight RMM",
    credentials_model=NsightCredentials,
    factory=create_adapter,
    options_model=NsightOptions,
    webhook_scheme="generic",
    default_base_url="https://www.am.remote.management",
    actions=ACTIONS,
    refusals=REFUSALS,
    harness="adapters.nsight.fake.harness:NsightHarness",
)

__all__ = ["SPEC", "NsightAdapter", "NsightCredentials", "NsightOptions", "create_adapter"]
