"""The remote action job kind: asking the RMM to run one recorded endpoint action."""

from __future__ import annotations

from connector.infra.jobs.kinds import JobKind, JobPayload


class ActionJob(JobPayload):
    action_id: str


ACTION = JobKind("action", ActionJob, unique_key=lambda p: f"action:{p.action_id}", max_attempts=3)
