"""Fleet numbers shared by the API and the dashboard: endpoints per health class overall and per
client, and the daily history behind the protected-share trend."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from connector.infra import db
from connector.models import ClientMapping, Endpoint, HealthDaily

HEALTH_CLASSES = ("protected", "at_risk", "unprotected", "offline", "unknown")


@dataclass
class Counts:
    protected: int = 0
    at_risk: int = 0
    unprotected: int = 0
    offline: int = 0
    unknown: int = 0

    @property
    def total(self) -> int:
        return self.protected + self.at_risk + self.unprotected + self.offline + self.unknown

    @property
    def known(self) -> int:
        """Endpoints whose RMM reports an antivirus state (the base of the protected share)."""
        return self.total - self.unknown

    @property
    def protected_share(self) -> float:
        return self.protected / self.known if self.known else 0.0

    def add(self, health: str, count: int) -> None:
        setattr(self, health, getattr(self, health) + count)


@dataclass
class ClientCounts:
    rmm_connection_id: str
    client_id: str
    client_name: str | None
    mapped_company: str | None
    counts: Counts = field(default_factory=Counts)


@dataclass
class TrendPoint:
    day: str
    protected: int
    total: int

    @property
    def share(self) -> float:
        return self.protected / self.total if self.total else 0.0


async def summary(session: AsyncSession, tenant_id: str) -> tuple[Counts, list[ClientCounts]]:
    rows = (
        await session.execute(
            db.scoped(
                select(
                    Endpoint.rmm_connection_id,
                    Endpoint.client_id,
                    func.max(Endpoint.client_name),
                    Endpoint.health,
                    func.count(),
                ),
                Endpoint,
                tenant_id,
            )
            .where(Endpoint.retired_at.is_(None))
            .group_by(Endpoint.rmm_connection_id, Endpoint.client_id, Endpoint.health)
        )
    ).all()
    mapped = {
        (m.rmm_connection_id, m.rmm_client_id): m.psa_company_name or m.psa_company_id
        for m in await session.scalars(db.tenant_rows(ClientMapping, tenant_id))
    }
    overall = Counts()
    clients: dict[tuple[str, str], ClientCounts] = {}
    for connection_id, client_id, client_name, health, count in rows:
        key = (connection_id, client_id)
        entry = clients.setdefault(key, ClientCounts(connection_id, client_id, client_name, mapped.get(key)))
        entry.counts.add(health, count)
        overall.add(health, count)
    ordered = sorted(
        clients.values(), key=lambda c: (-(c.counts.total - c.counts.protected), c.client_name or "")
    )
    return overall, ordered


async def trend(session: AsyncSession, tenant_id: str, days: int = 30) -> list[TrendPoint]:
    """Per day: protected endpoints and endpoints with a known status (`unknown` ones are left out
    of the share, as in `Counts.protected_share`)."""
    since = (datetime.now(UTC).date() - timedelta(days=days - 1)).isoformat()
    rows = (
        await session.execute(
            db.scoped(
                select(
                    HealthDaily.day,
                    func.sum(HealthDaily.protected),
                    func.sum(
                        HealthDaily.protected
                        + HealthDaily.at_risk
                        + HealthDaily.unprotected
                        + HealthDaily.offline
                    ),
                ),
                HealthDaily,
                tenant_id,
            )
            .where(HealthDaily.day >= since)
            .group_by(HealthDaily.day)
            .order_by(HealthDaily.day)
        )
    ).all()
    return [TrendPoint(day, int(protected or 0), int(total or 0)) for day, protected, total in rows]
