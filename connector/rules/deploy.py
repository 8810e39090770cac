"""Deploy rules: the RMM connection's `deploy_agent` action, requested automatically for every
endpoint the RMM reports without any protection product (health `unprotected`), at most once per
endpoint per the rule's interval, each deployment recorded and shown on the endpoint.

At most once, under concurrency and crashes:
- The claim is one statement: an upsert of the endpoint's guard row (`agent_deploy_guards`) that
  only writes when there is no row yet or its last deployment is older than the interval. Two
  sweeps racing for one endpoint serialize on that row (PostgreSQL re-checks the condition against
  the committed row; SQLite runs one writer at a time), so exactly one of them wins.
- The claim, the deployment record, the endpoint action and its job commit in one transaction per
  endpoint: a crash before the commit leaves nothing (the next sweep deploys), after it the job
  runs the action, which asks the RMM at most once (see `connector.actions.service.run_action`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from adapters.base import ActionKind, Role
from adapters.registry import AdapterRegistry
from connector.actions.service import check_supported, request_action
from connector.connections.service import connection_of_role
from connector.infra import db
from connector.infra.context import Services
from connector.infra.logs import get_logger
from connector.models import (
    AgentDeployGuard,
    AgentDeployment,
    Connection,
    DeployRule,
    Endpoint,
    EndpointAction,
    new_id,
)
from connector.statuses import Health

log = get_logger("connector.rules.deploy")


async def check_rule_supported(
    registry: AdapterRegistry, session: AsyncSession, tenant_id: str, rule: DeployRule
) -> None:
    """A deploy rule on a connection whose kind cannot deploy agents is refused (4xx naming why)."""
    connection = await connection_of_role(
        session, tenant_id, rule.rmm_connection_id, Role.RMM, "rmm_connection_id"
    )
    check_supported(registry.get(connection.kind), ActionKind.DEPLOY_AGENT)


async def claim(
    session: AsyncSession, rule: DeployRule, endpoint: Endpoint, now: datetime
) -> AgentDeployment | None:
    """Claim the endpoint for a deployment now and request it, in the caller's transaction; None
    when another deployment to it is younger than the rule's interval, including one asked for
    otherwise (over the API, or by a ticket rule before this deploy rule existed)."""
    deployment_id = new_id()
    cutoff = now - timedelta(minutes=rule.interval_minutes)
    recent = await session.scalar(
        select(EndpointAction.id)
        .where(
            EndpointAction.endpoint_row_id == endpoint.id,
            EndpointAction.action == ActionKind.DEPLOY_AGENT.value,
            EndpointAction.requested_at > cutoff,
        )
        .limit(1)
    )
    if recent is not None:
        return None
    statement = (
        db.dialect_insert(session, AgentDeployGuard)
        .values(
            endpoint_row_id=endpoint.id,
            tenant_id=endpoint.tenant_id,
            last_requested_at=now,
            deployment_id=deployment_id,
        )
        .on_conflict_do_update(
            index_elements=[AgentDeployGuard.endpoint_row_id],
            set_={"last_requested_at": now, "deployment_id": deployment_id},
            where=AgentDeployGuard.last_requested_at <= cutoff,
        )
    )
    if db.affected(await session.execute(statement)) != 1:
        return None
    action = await request_action(session, endpoint, ActionKind.DEPLOY_AGENT, requested_by="rule")
    deployment = AgentDeployment(
        id=deployment_id,
        tenant_id=endpoint.tenant_id,
        endpoint_row_id=endpoint.id,
        rule_id=rule.id,
        action_id=action.id,
        interval_minutes=rule.interval_minutes,
        requested_at=now,
    )
    session.add(deployment)
    await session.flush()
    return deployment


@dataclass(frozen=True)
class SweepResult:
    candidates: int
    deployed: int


async def deploy_unprotected(services: Services, connection: Connection) -> SweepResult:
    """Request a deployment for each of the connection's unprotected endpoints the rule may deploy
    to now (one short transaction per endpoint)."""
    async with services.sessions() as session:
        rule = await session.scalar(
            db.scoped(select(DeployRule), DeployRule, connection.tenant_id).where(
                DeployRule.rmm_connection_id == connection.id, DeployRule.enabled.is_(True)
            )
        )
        spec = services.registry.get(connection.kind)
        if rule is None or spec is None or ActionKind.DEPLOY_AGENT not in spec.actions:
            return SweepResult(0, 0)
        candidates = list(
            await session.scalars(
                select(Endpoint.id)
                .where(
                    Endpoint.rmm_connection_id == connection.id,
                    Endpoint.retired_at.is_(None),
                    Endpoint.health == Health.UNPROTECTED,
                )
                .order_by(Endpoint.id)
            )
        )
    deployed = 0
    for endpoint_row_id in candidates:
        async with db.transaction(services.sessions) as session:
            endpoint = await session.get(Endpoint, endpoint_row_id)
            if endpoint is None or endpoint.retired_at is not None or endpoint.health != Health.UNPROTECTED:
                continue
            if await claim(session, rule, endpoint, datetime.now(UTC)) is not None:
                deployed += 1
    if deployed:
        log.info("agent deployments requested", connection=connection.id, count=deployed)
        services.wake_workers()
    return SweepResult(len(candidates), deployed)
