"""security consoles: their agents beside the RMM's endpoints, engineers' match overrides, and
the seats each console customer uses per day

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-02 15:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:

    op.create_table(
        "licence_daily",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("tenant_id", sa.String(length=32), nullable=False),
        sa.Column("connection_id", sa.String(length=32), nullable=False),
        sa.Column("customer_id", sa.String(length=100), nullable=False),
        sa.Column("product", sa.String(length=255), nullable=False),
        sa.Column("sku", sa.String(length=100), nullable=True),
        sa.Column("day", sa.String(length=10), nullable=False),
        sa.Column("peak_used", sa.Integer(), nullable=False),
        sa.Column("last_used", sa.Integer(), nullable=False),
        sa.Column("purchased", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["connection_id"],
            ["connections.id"],
            name=op.f("fk_licence_daily_connection_id_connections"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_licence_daily_tenant_id_tenants"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_licence_daily")),
        sa.UniqueConstraint("connection_id", "customer_id", "product", "day", name="uq_licence_daily_key"),
    )
    with op.batch_alter_table("licence_daily", schema=None) as batch_op:
        batch_op.create_index("ix_licence_daily_tenant_day", ["tenant_id", "day"], unique=False)

    op.create_table(
        "agent_match_overrides",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("tenant_id", sa.String(length=32), nullable=False),
        sa.Column("connection_id", sa.String(length=32), nullable=False),
        sa.Column("agent_id", sa.String(length=100), nullable=False),
        sa.Column("endpoint_ref", sa.String(length=32), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["connection_id"],
            ["connections.id"],
            name=op.f("fk_agent_match_overrides_connection_id_connections"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["endpoint_ref"],
            ["endpoints.id"],
            name=op.f("fk_agent_match_overrides_endpoint_ref_endpoints"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_agent_match_overrides_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_agent_match_overrides")),
        sa.UniqueConstraint("connection_id", "agent_id", name="uq_agent_match_overrides_agent"),
    )
    with op.batch_alter_table("agent_match_overrides", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_agent_match_overrides_tenant_id"), ["tenant_id"], unique=False)

    op.create_table(
        "console_agents",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("tenant_id", sa.String(length=32), nullable=False),
        sa.Column("connection_id", sa.String(length=32), nullable=False),
        sa.Column("agent_id", sa.String(length=100), nullable=False),
        sa.Column("customer_id", sa.String(length=100), nullable=False),
        sa.Column("customer_name", sa.String(length=255), nullable=True),
        sa.Column("hostname", sa.String(length=255), nullable=False),
        sa.Column("serial_number", sa.String(length=100), nullable=True),
        sa.Column("mac_addresses", sa.JSON(), nullable=True),
        sa.Column("os_name", sa.String(length=255), nullable=True),
        sa.Column("device_type", sa.String(length=64), nullable=True),
        sa.Column("product", sa.String(length=255), nullable=True),
        sa.Column("agent_version", sa.String(length=64), nullable=True),
        sa.Column("protection_enabled", sa.Boolean(), nullable=True),
        sa.Column("definitions_up_to_date", sa.Boolean(), nullable=True),
        sa.Column("definitions_date", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_scan_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("active_threats", sa.Integer(), nullable=True),
        sa.Column("online", sa.Boolean(), nullable=True),
        sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("isolated", sa.Boolean(), nullable=True),
        sa.Column("fingerprint", sa.String(length=32), nullable=False),
        sa.Column("seen_in_run_id", sa.String(length=32), nullable=True),
        sa.Column("endpoint_ref", sa.String(length=32), nullable=True),
        sa.Column("match_rule", sa.String(length=16), nullable=True),
        sa.Column("match_note", sa.String(length=500), nullable=True),
        sa.Column("first_seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("retired_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["connection_id"],
            ["connections.id"],
            name=op.f("fk_console_agents_connection_id_connections"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["endpoint_ref"],
            ["endpoints.id"],
            name=op.f("fk_console_agents_endpoint_ref_endpoints"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_console_agents_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_console_agents")),
        sa.UniqueConstraint("connection_id", "agent_id", name="uq_console_agents_connection_agent"),
    )
    with op.batch_alter_table("console_agents", schema=None) as batch_op:
        batch_op.create_index("ix_console_agents_endpoint", ["endpoint_ref"], unique=False)
        batch_op.create_index("ix_console_agents_tenant_customer", ["tenant_id", "customer_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_console_agents_tenant_id"), ["tenant_id"], unique=False)


def downgrade() -> None:

    with op.batch_alter_table("console_agents", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_console_agents_tenant_id"))
        batch_op.drop_index("ix_console_agents_tenant_customer")
        batch_op.drop_index("ix_console_agents_endpoint")

    op.drop_table("console_agents")
    with op.batch_alter_table("agent_match_overrides", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_agent_match_overrides_tenant_id"))

    op.drop_table("agent_match_overrides")
    with op.batch_alter_table("licence_daily", schema=None) as batch_op:
        batch_op.drop_index("ix_licence_daily_tenant_day")

    op.drop_table("licence_daily")
