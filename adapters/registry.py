"""Discovery of adapter kinds through the `connector.adapters` entry-point group.

Any installed distribution can add a kind by declaring an entry point that resolves to an
`AdapterSpec`, so third-party adapters need no change to this project.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from importlib.metadata import EntryPoint, entry_points

from adapters.base import AdapterSpec

ENTRY_POINT_GROUP = "connector.adapters"
log = logging.getLogger("adapters.registry")


class AdapterRegistry:
    def __init__(self, specs: Iterable[AdapterSpec] = ()) -> None:
        self._specs: dict[str, AdapterSpec] = {}
        for spec in specs:
            self.add(spec)

    def add(self, spec: AdapterSpec) -> None:
        if spec.kind in self._specs and self._specs[spec.kind] is not spec:
            raise ValueError(f"adapter kind {spec.kind!r} is registered twice")
        self._specs[spec.kind] = spec

    def get(self, kind: str) -> AdapterSpec | None:
        return self._specs.get(kind)

    def kinds(self) -> list[str]:
        return sorted(self._specs)

    def all(self) -> list[AdapterSpec]:
        return [self._specs[k] for k in self.kinds()]


def _load(entry_point: EntryPoint) -> AdapterSpec | None:
    try:
        spec = entry_point.load()
    except Exception as exc:
        log.error("adapter entry point %s failed to load: %s: %s", entry_point.name, type(exc).__name__, exc)
        return None
    if not isinstance(spec, AdapterSpec):
        log.error("adapter entry point %s is not an AdapterSpec", entry_point.name)
        return None
    if spec.kind != entry_point.name:
        log.error("adapter entry point %s declares kind %s", entry_point.name, spec.kind)
        return None
    return spec


def discover() -> AdapterRegistry:
    """All adapters installed in this environment. A broken third-party adapter is logged and
    skipped so it cannot take the service down."""
    registry = AdapterRegistry()
    for entry_point in entry_points(group=ENTRY_POINT_GROUP):
        spec = _load(entry_point)
        if spec is None:
            continue
        try:
            registry.add(spec)
        except ValueError as exc:  # two installed packages claim one kind: keep the first
            log.error("adapter entry point %s skipped: %s", entry_point.name, exc)
    return registry
