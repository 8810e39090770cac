"""Huntress security-console adapter package: `SPEC` is the `connector.adapters` entry point.

See `adapter.py` for sources and behaviour, `pacing.py` for the request limiter, `webhooks.py` for
the Svix-signed incident report deliveries, `fake/` for the stateful fake used by tests and demos.
"""

from __future__ import annotations

from adapters.base import AdapterSpec, Role
from adapters.huntress.adapter import PRODUCT, HuntressAdapter, create_adapter
from adapters.huntress.models import API_BASE, HuntressCredentials, HuntressOptions

SPEC = AdapterSpec(
    kind="huntress",
    role=Role.SECURITY,
    title="Huntress",
    credentials_model=HuntressCredentials,
    factory=create_adapter,
    options_model=HuntressOptions,
    webhook_scheme="svix",
    default_base_url=API_BASE,
    harness="adapters.huntress.fake.harness:HuntressHarness",
)

__all__ = ["PRODUCT", "SPEC", "HuntressAdapter", "HuntressCredentials", "HuntressOptions", "create_adapter"]
