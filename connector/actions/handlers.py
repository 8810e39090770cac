"""Job handler of remote endpoint actions."""

from __future__ import annotations

from connector.actions.jobs import ACTION, ActionJob
from connector.actions.service import run_action
from connector.infra.jobs.kinds import JobContext, handles


async def run_endpoint_action(context: JobContext, job: ActionJob) -> None:
    await run_action(context.services, job.action_id)


HANDLERS = (handles(ACTION, run_endpoint_action),)
