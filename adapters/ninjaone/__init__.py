"""NinjaOne RMM adapter package: `SPEC` is the `connector.adapters` entry point.

See `adapter.py` for sources and behaviour, `alerts.py` for webhook activities, `fake/` for the
stateful fake used by tests and demos.
"""

from __future__ import annotations

from adapters.base import AdapterSpec, Role
from adapters.ninjaone.adapter import ACTIONS, NinjaOneAdapter, create_adapter, device_dashboard_url
from adapters.ninjaone.models import REGIONS, NinjaOneCredentials, NinjaOneOptions

SPEC = AdapterSpec(
    kind="ninjaone",
    role=Role.RMM,
    title="NinjaOne",
    credentials_model=NinjaOneCredentials,
    factory=create_adapter,
    options_model=NinjaOneOptions,
    webhook_scheme="header",
    default_base_url=REGIONS["us"],
    actions=ACTIONS,
    endpoint_url=device_dashboard_url,
    harness="adapters.ninjaone.fake.harness:NinjaOneHarness",
)

__all__ = ["SPEC", "NinjaOneAdapter", "NinjaOneCredentials", "NinjaOneOptions", "create_adapter"]
