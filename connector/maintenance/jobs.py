"""The job a changed or deleted maintenance window queues: the problems it held are looked at again
now rather than at the end the window used to have (a shortened window must not keep them waiting;
one still open holds them again, until its new end)."""

from __future__ import annotations

from connector.infra.jobs.kinds import JobKind, JobPayload


class WindowChangedJob(JobPayload):
    rmm_connection_id: str | None = None
    client_id: str | None = None
    """The client the window covered before the change (both None: the whole tenant)."""


WINDOW_CHANGED = JobKind("maintenance_window_changed", WindowChangedJob)
