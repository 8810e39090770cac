"""agent deployment: deploy rules per RMM connection, a guard row per endpoint, deployment records

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02 04:47:20.359422
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "deploy_rules",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("tenant_id", sa.String(length=32), nullable=False),
        sa.Column("rmm_connection_id", sa.String(length=32), nullable=False),
        sa.Column("interval_minutes", sa.Integer(), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["rmm_connection_id"],
            ["connections.id"],
            name=op.f("fk_deploy_rules_rmm_connection_id_connections"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_deploy_rules_tenant_id_tenants"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_deploy_rules")),
        sa.UniqueConstraint("tenant_id", "rmm_connection_id", name=op.f("uq_deploy_rules_tenant_id")),
    )
    with op.batch_alter_table("deploy_rules", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_deploy_rules_tenant_id"), ["tenant_id"], unique=False)

    op.create_table(
        "agent_deploy_guards",
        sa.Column("endpoint_row_id", sa.String(length=32), nullable=False),
        sa.Column("tenant_id", sa.String(length=32), nullable=False),
        sa.Column("last_requested_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("deployment_id", sa.String(length=32), nullable=False),
        sa.ForeignKeyConstraint(
            ["endpoint_row_id"],
            ["endpoints.id"],
            name=op.f("fk_agent_deploy_guards_endpoint_row_id_endpoints"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_agent_deploy_guards_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("endpoint_row_id", name=op.f("pk_agent_deploy_guards")),
    )
    with op.batch_alter_table("agent_deploy_guards", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_agent_deploy_guards_tenant_id"), ["tenant_id"], unique=False)

    op.create_table(
        "agent_deployments",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("tenant_id", sa.String(length=32), nullable=False),
        sa.Column("endpoint_row_id", sa.String(length=32), nullable=False),
        sa.Column("rule_id", sa.String(length=32), nullable=True),
        sa.Column("action_id", sa.String(length=32), nullable=True),
        sa.Column("interval_minutes", sa.Integer(), nullable=False),
        sa.Column("requested_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["action_id"],
            ["endpoint_actions.id"],
            name=op.f("fk_agent_deployments_action_id_endpoint_actions"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["endpoint_row_id"],
            ["endpoints.id"],
            name=op.f("fk_agent_deployments_endpoint_row_id_endpoints"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["rule_id"],
            ["deploy_rules.id"],
            name=op.f("fk_agent_deployments_rule_id_deploy_rules"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_agent_deployments_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_agent_deployments")),
    )
    with op.batch_alter_table("agent_deployments", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_agent_deployments_endpoint_row_id"), ["endpoint_row_id"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_agent_deployments_tenant_id"), ["tenant_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("agent_deployments", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_agent_deployments_tenant_id"))
        batch_op.drop_index(batch_op.f("ix_agent_deployments_endpoint_row_id"))

    op.drop_table("agent_deployments")
    with op.batch_alter_table("agent_deploy_guards", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_agent_deploy_guards_tenant_id"))

    op.drop_table("agent_deploy_guards")
    with op.batch_alter_table("deploy_rules", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_deploy_rules_tenant_id"))

    op.drop_table("deploy_rules")
