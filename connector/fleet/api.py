"""`/api/v1/endpoints`, `/api/v1/fleet/summary` and `/api/v1/settings/thresholds`."""

from __future__ import annotations

from datetime import timedelta

from fastapi import APIRouter, Query

from connector.api.deps import Engineer, Session, Viewer, configuration_changed
from connector.api.schemas import Offset
from connector.audit.domain import Actor
from connector.fleet import consoles, coverage, endpoints, service
from connector.fleet import stats as fleet_stats
from connector.fleet.domain import Thresholds
from connector.fleet.endpoints import to_status
from connector.fleet.schemas import (
    ActionOut,
    ClientHealthOut,
    CompanyCoverageOut,
    ConsoleAgentOut,
    DeploymentOut,
    EndpointDetail,
    EndpointOut,
    EndpointProblemOut,
    FleetSummaryOut,
    HealthCountsOut,
    MatchIn,
    TrendPointOut,
)

router = APIRouter(prefix="/api/v1", tags=["fleet"])


# -- endpoints ------------------------------------------------------------------------------------


@router.get("/endpoints", response_model=list[EndpointOut])
async def list_endpoints(
    session: Session,
    who: Viewer,
    client_id: str | None = None,
    connection_id: str | None = None,
    status: str | None = Query(None, pattern="^(protected|at_risk|unprotected|offline|unknown|retired)$"),
    problem: str | None = Query(None, description="only endpoints with an open problem of this kind"),
    limit: int = Query(200, ge=1, le=5000),
    offset: Offset = 0,
) -> list[EndpointOut]:
    rows = await service.list_endpoints(
        session,
        who.tenant_id,
        client_id=client_id,
        connection_id=connection_id,
        health=status,
        problem=problem,
        limit=limit,
        offset=offset,
    )
    return [EndpointOut.model_validate(r, from_attributes=True) for r in rows]


@router.get("/endpoints/{endpoint_id}", response_model=EndpointDetail)
async def get_endpoint(endpoint_id: str, session: Session, who: Viewer) -> EndpointDetail:
    row = await service.get_endpoint(session, who.tenant_id, endpoint_id)
    history = await service.endpoint_history(session, row)
    status, sources = coverage.effective_status(to_status(row), await consoles.endpoint_view(session, row))
    agent = await consoles.matched_agent(session, row)
    detail = EndpointDetail.model_validate(
        {
            **EndpointOut.model_validate(row, from_attributes=True).model_dump(),
            **{name: getattr(status, name) for name in sources},
            "sources": sources,
            "console_agent": None
            if agent is None
            else ConsoleAgentOut.model_validate(agent, from_attributes=True),
            "problems": [],
            "actions": [ActionOut.model_validate(a, from_attributes=True) for a in history.actions],
            "deployments": [
                DeploymentOut(
                    id=deployment.id,
                    rule_id=deployment.rule_id,
                    action_id=deployment.action_id,
                    status=action.status if action else None,
                    message=action.message if action else None,
                    requested_at=deployment.requested_at,
                    interval_minutes=deployment.interval_minutes,
                    next_allowed_at=deployment.requested_at + timedelta(minutes=deployment.interval_minutes),
                )
                for deployment, action in history.deployments
            ],
        }
    )
    for problem, link in history.problems:
        item = EndpointProblemOut.model_validate(problem, from_attributes=True)
        if link is not None:
            item.ticket_id, item.ticket_number, item.ticket_state = (
                link.ticket_id,
                link.ticket_number,
                link.state,
            )
        detail.problems.append(item)
    return detail


# -- console agents -------------------------------------------------------------------------------


@router.get("/console-agents", response_model=list[ConsoleAgentOut])
async def list_console_agents(
    session: Session,
    who: Viewer,
    connection_id: str | None = None,
    customer_id: str | None = None,
    matched: bool | None = Query(None, description="only agents matched (true) or not matched (false)"),
    limit: int = Query(200, ge=1, le=5000),
    offset: Offset = 0,
) -> list[ConsoleAgentOut]:
    """Agents of the security consoles, each with the RMM endpoint it was matched to, the rule
    that matched it, or why it is unmatched although there were candidates."""
    rows = await consoles.list_agents(
        session,
        who.tenant_id,
        connection_id=connection_id,
        customer_id=customer_id,
        matched=matched,
        limit=limit,
        offset=offset,
    )
    return [ConsoleAgentOut.model_validate(r, from_attributes=True) for r in rows]


@router.get("/console-agents/{agent_id}", response_model=ConsoleAgentOut)
async def get_console_agent(agent_id: str, session: Session, who: Viewer) -> ConsoleAgentOut:
    row = await consoles.get_agent(session, who.tenant_id, agent_id)
    return ConsoleAgentOut.model_validate(row, from_attributes=True)


@router.put("/console-agents/{agent_id}/match", response_model=ConsoleAgentOut)
async def set_console_agent_match(
    agent_id: str, body: MatchIn, session: Session, who: Engineer
) -> ConsoleAgentOut:
    """Match the agent to this endpoint by hand; kept over the automatic rules until deleted."""
    row = await consoles.get_agent(session, who.tenant_id, agent_id)
    row = await consoles.set_match(
        session, who.tenant_id, row, body.endpoint_id, actor=Actor.key(who.api_key_id)
    )
    configuration_changed(session, who, "agent match", "update", row.id, ["endpoint_id"])
    return ConsoleAgentOut.model_validate(row, from_attributes=True)


@router.delete("/console-agents/{agent_id}/match", response_model=ConsoleAgentOut)
async def clear_console_agent_match(agent_id: str, session: Session, who: Engineer) -> ConsoleAgentOut:
    """Drop the manual match: the next sync matches the agent by the rules again."""
    row = await consoles.get_agent(session, who.tenant_id, agent_id)
    row = await consoles.clear_match(session, who.tenant_id, row, actor=Actor.key(who.api_key_id))
    configuration_changed(session, who, "agent match", "delete", row.id, ["endpoint_id"])
    return ConsoleAgentOut.model_validate(row, from_attributes=True)


# -- fleet summary --------------------------------------------------------------------------------


@router.get("/fleet/summary", response_model=FleetSummaryOut)
async def fleet_summary(
    session: Session, who: Viewer, days: int = Query(30, ge=1, le=366)
) -> FleetSummaryOut:
    """Endpoints per health class overall and per RMM client, and the daily protected-share trend."""
    overall, clients = await fleet_stats.summary(session, who.tenant_id)
    points = await fleet_stats.trend(session, who.tenant_id, days)
    return FleetSummaryOut(
        overall=HealthCountsOut.of(overall),
        clients=[ClientHealthOut.of_client(c) for c in clients],
        trend=[TrendPointOut(day=p.day, protected=p.protected, total=p.total) for p in points],
    )


@router.get("/fleet/coverage", response_model=list[CompanyCoverageOut])
async def fleet_coverage(session: Session, who: Viewer) -> list[CompanyCoverageOut]:
    """Per PSA company a security console covers: RMM endpoints with and without a console agent,
    agents no endpoint matches, and the console's seat count; least covered first."""
    return [
        CompanyCoverageOut(
            company_id=c.company_id,
            company_name=c.company_name,
            consoles=c.consoles,
            endpoints=c.endpoints,
            with_agent=c.with_agent,
            without_agent=c.without_agent,
            agents=c.agents,
            unmanaged_agents=c.unmanaged_agents,
            seats=c.seats,
            covered_share=c.covered_share,
        )
        for c in await consoles.coverage_by_company(session, who.tenant_id)
    ]


# -- thresholds -----------------------------------------------------------------------------------


@router.get("/settings/thresholds", response_model=Thresholds)
async def get_thresholds(session: Session, who: Viewer) -> Thresholds:
    return await endpoints.get_thresholds(session, who.tenant_id)


@router.put("/settings/thresholds", response_model=Thresholds)
async def put_thresholds(body: Thresholds, session: Session, who: Engineer) -> Thresholds:
    """New limits apply at the next sync, which re-evaluates every endpoint against them."""
    thresholds = await endpoints.set_thresholds(session, who.tenant_id, body, actor=Actor.key(who.api_key_id))
    configuration_changed(session, who, "thresholds", "update", who.tenant_id, body.model_fields_set)
    return thresholds
