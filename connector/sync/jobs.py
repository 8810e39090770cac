"""The status sync's job kinds: executing a sync run, and writing one client's changed endpoint
statuses onto the PSA's configuration records."""

from __future__ import annotations

from connector.infra.jobs.kinds import JobKind, JobPayload
from connector.infra.jobs.queue import BULK


class SyncJob(JobPayload):
    run_id: str


class ConfigurationsJob(JobPayload):
    connection_id: str
    client_id: str
    run_id: str | None = None


SYNC = JobKind("sync", SyncJob, unique_key=lambda p: f"sync:{p.run_id}", max_attempts=3, priority=BULK)
CONFIGURATIONS = JobKind(
    "configurations",
    ConfigurationsJob,
    unique_key=lambda p: f"configurations:{p.connection_id}:{p.client_id}",
    priority=BULK,
)
