"""Job handlers of the status sync: executing a run, and pushing configuration records."""

from __future__ import annotations

from connector.infra.jobs.kinds import JobContext, handles
from connector.models import SyncRun
from connector.statuses import SyncStatus
from connector.sync.configurations import push_client
from connector.sync.jobs import CONFIGURATIONS, SYNC, ConfigurationsJob, SyncJob
from connector.sync.run import execute_run, skip_if_disabled


async def run_sync(context: JobContext, job: SyncJob) -> None:
    """Execute a sync run that is still the connection's running one (a replaced run is skipped, and
    so is a run of a connection disabled since it was queued)."""
    async with context.services.sessions() as session:
        run = await session.get(SyncRun, job.run_id)
    if run is None or run.status != SyncStatus.RUNNING:
        return
    if await skip_if_disabled(context.services, job.run_id):
        return
    await execute_run(context.services, job.run_id)


async def push_configurations(context: JobContext, job: ConfigurationsJob) -> None:
    await push_client(context.services, job.connection_id, job.client_id, job.run_id)


HANDLERS = (handles(SYNC, run_sync), handles(CONFIGURATIONS, push_configurations))
