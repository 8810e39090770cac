"""N-able N-central RMM adapter package: `SPEC` is the `connector.adapters` entry point.

See `adapter.py` for sources and behaviour, `alerts.py` for the HTTP-XML notifications,
`fake/` for the stateful fake used by tests and demos.
"""

from __future__ import annotations

from adapters.base import AdapterSpec, Role
from adapters.ncentral.adapter import ACTIONS, NcentralAdapter, create_adapter
from adapters.ncentral.models import NcentralCredentials, NcentralOptions

SPEC = AdapterSpec(
    kind="ncentral",
    role=Role.RMM,
    title="N-able N-central",
    credentials_model=NcentralCredentials,
    factory=create_adapter,
    options_model=NcentralOptions,
    webhook_scheme="generic",
    default_base_url=None,
    actions=ACTIONS,
    harness="adapters.ncentral.fake.harness:NcentralHarness",
)

__all__ = ["SPEC", "NcentralAdapter", "NcentralCredentials", "NcentralOptions", "create_adapter"]
