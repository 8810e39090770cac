"""ConnectWise PSA (Manage) adapter package: `SPEC` is the `connector.adapters` entry point.

See `adapter.py` for sources and behaviour, `fake/` for the stateful fake used by tests and demos.
"""

from __future__ import annotations

from adapters.base import AdapterSpec, Role
from adapters.connectwise_manage.adapter import ConnectWiseManageAdapter, create_adapter
from adapters.connectwise_manage.models import ManageCredentials, ManageOptions

SPEC = AdapterSpec(
    kind="connectwise_manage",
    role=Role.PSA,
    title="ConnectWise PSA (Manage)",
    credentials_model=ManageCredentials,
    factory=create_adapter,
    options_model=ManageOptions,
    default_base_url="https://na.myconnectwise.net",
    harness="adapters.connectwise_manage.fake.harness:ManageHarness",
)

__all__ = ["SPEC", "ConnectWiseManageAdapter", "ManageCredentials", "ManageOptions", "create_adapter"]
