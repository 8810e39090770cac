"""What one sync run counted, shared by the RMM and the console steps of a run."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class Counters:
    pages: int = 0
    seen: int = 0
    skipped: int = 0
    changed: int = 0
    retired: int = 0
    evaluated: int = 0
    opened: int = 0
    closed: int = 0
    psa_calls: int = 0
    errors: list[dict[str, Any]] = field(default_factory=list)
    touched: dict[str, None] = field(default_factory=dict)
    dirty_clients: dict[str, set[str]] = field(default_factory=dict)
    """RMM connection id → its clients whose endpoints' PSA configuration fields may have changed in
    this run (a console run changes the status of other connections' endpoints)."""

    def dirty(self, connection_id: str, client_id: str) -> None:
        self.dirty_clients.setdefault(connection_id, set()).add(client_id)
