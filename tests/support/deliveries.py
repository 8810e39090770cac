"""A tenant with an RMM connection, for tests that hand delivery rows to the writer or its stores."""

from __future__ import annotations

from connector.infra.context import Services
from connector.models import Connection, Tenant, new_id


async def delivery_owner(services: Services) -> tuple[str, str]:
    """(connection id, tenant id) of a new tenant's RMM connection."""
    async with services.sessions() as session, session.begin():
        tenant = Tenant(name=f"tenant-{new_id()[:8]}")
        session.add(tenant)
        await session.flush()
        connection = Connection(
            tenant_id=tenant.id, name="rmm", kind="dummy_rmm", role="rmm", base_url="https://rmm.example.com",
            credentials_encrypted=b"x",
        )  # fmt: skip
        session.add(connection)
        await session.flush()
        return connection.id, tenant.id
