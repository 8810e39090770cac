"""Datto RMM adapter package: `SPEC` is the `connector.adapters` entry point.

See `adapter.py` for sources and behaviour, `budget.py` for the per-connection request budget,
`alerts.py` for polled alerts and the webhook body template, `fake/` for the stateful fake used by
tests and demos.
"""

from __future__ import annotations

from adapters.base import AdapterSpec, Role
from adapters.datto_rmm.adapter import ACTIONS, DattoRmmAdapter, create_adapter, device_page_url
from adapters.datto_rmm.models import DattoCredentials, DattoOptions

SPEC = AdapterSpec(
    kind="datto_rmm",
    role=Role.RMM,
    title="Datto RMM",
    credentials_model=DattoCredentials,
    factory=create_adapter,
    options_model=DattoOptions,
    webhook_scheme="generic",
    default_base_url=None,
    actions=ACTIONS,
    endpoint_url=device_page_url,
    harness="adapters.datto_rmm.fake.harness:DattoHarness",
)

__all__ = ["SPEC", "DattoCredentials", "DattoOptions", "DattoRmmAdapter", "create_adapter"]
