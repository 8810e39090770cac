"""Kaspersky Security Center security-console adapter package: `SPEC` is the `connector.adapters`
entry point.

See `adapter.py` for sources and behaviour, `fake/` for the stateful fake used by tests and demos.
"""

from __future__ import annotations

from adapters.base import AdapterSpec, Role
from adapters.kaspersky_security_center.adapter import KscAdapter, create_adapter
from adapters.kaspersky_security_center.models import KscCredentials, KscOptions

SPEC = AdapterSpec(
    kind="kaspersky_security_center",
    role=Role.SECURITY,
    title="Kaspersky Security Center",
    credentials_model=KscCredentials,
    factory=create_adapter,
    options_model=KscOptions,
    webhook_scheme="none",
    default_base_url=None,
    harness="adapters.kaspersky_security_center.fake.harness:KscHarness",
)

__all__ = ["SPEC", "KscAdapter", "KscCredentials", "KscOptions", "create_adapter"]
