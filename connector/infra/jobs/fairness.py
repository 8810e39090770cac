"""Who gets the free job slots when several tenants have work waiting (pure; the queue reads the
inputs and claims what this decides).

Slots go to the tenant with the fewest jobs running now, on any worker, one slot at a time (water
filling): a tenant with a 100,000-job backfill holding every slot loses the next free one to a
tenant whose alert just arrived. Among tenants with as many jobs running, the one this worker
served longest ago goes first (so a worker with a single slot alternates rather than always
picking the tenant with the oldest job), then the one whose oldest job has waited longest. A
tenant alone in the queue still gets every slot: fairness never leaves a slot idle.
"""

from __future__ import annotations

import heapq
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

NEVER_SERVED = -1


@dataclass(frozen=True)
class DueTenant:
    """A tenant with jobs a worker could claim now."""

    tenant: str
    running: int
    """Its jobs running now under a live lease, on any worker."""
    waiting_since: datetime
    """When its oldest claimable job fell due."""
    last_served: int = NEVER_SERVED
    """This worker's claim number when it last took one of the tenant's jobs (`NEVER_SERVED`: not yet)."""


def shares(
    tenants: Sequence[DueTenant], slots: int, taken: Mapping[str, int] | None = None
) -> dict[str, int]:
    """How many of `slots` each tenant gets, given `taken` slots already given to it in this claim.
    Tenants absent from the answer get none."""
    already = taken or {}
    heap = [(t.running + already.get(t.tenant, 0), t.last_served, t.waiting_since, t.tenant) for t in tenants]
    heapq.heapify(heap)
    given: dict[str, int] = {}
    for _ in range(max(slots, 0)):
        if not heap:
            break
        load, last_served, since, tenant_id = heapq.heappop(heap)
        given[tenant_id] = given.get(tenant_id, 0) + 1
        heapq.heappush(heap, (load + 1, last_served, since, tenant_id))
    return given
