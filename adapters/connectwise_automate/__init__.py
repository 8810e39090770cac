"""ConnectWise Automate RMM adapter package: `SPEC` is the `connector.adapters` entry point.

See `adapter.py` for sources and behaviour, `alerts.py` for the alert and webhook bodies, `fake/`
for the stateful fake used by tests and demos.
"""

from __future__ import annotations

from adapters.base import AdapterSpec, Role
from adapters.connectwise_automate.adapter import ACTIONS, ConnectWiseAutomateAdapter, create_adapter
from adapters.connectwise_automate.models import AutomateCredentials, AutomateOptions

SPEC = AdapterSpec(
    kind="connectwise_automate",
    role=Role.RMM,
    title="ConnectWise Automate",
    credentials_model=AutomateCredentials,
    factory=create_adapter,
    options_model=AutomateOptions,
    webhook_scheme="generic",
    default_base_url=None,
    actions=ACTIONS,
    harness="adapters.connectwise_automate.fake.harness:AutomateHarness",
)

__all__ = [
    "SPEC",
    "AutomateCredentials",
    "AutomateOptions",
    "ConnectWiseAutomateAdapter",
    "create_adapter",
]
