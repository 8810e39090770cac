"""billing snapshots: per closed period, each billed line and the devices behind its count

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-02 16:15:48.886100
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "billing_snapshot_lines",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("tenant_id", sa.String(length=32), nullable=False),
        sa.Column("period", sa.String(length=7), nullable=False),
        sa.Column("rule_id", sa.String(length=32), nullable=False),
        sa.Column("company_id", sa.String(length=100), nullable=False),
        sa.Column("company_name", sa.String(length=255), nullable=True),
        sa.Column("product", sa.String(length=255), nullable=False),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("quantity", sa.Integer(), nullable=False),
        sa.Column("pushed_quantity", sa.Integer(), nullable=True),
        sa.Column("unit_price", sa.Numeric(precision=14, scale=4), nullable=False),
        sa.Column("unit_cost", sa.Numeric(precision=14, scale=4), nullable=False),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_billing_snapshot_lines_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_billing_snapshot_lines")),
        sa.UniqueConstraint(
            "tenant_id", "period", "rule_id", "company_id", name="uq_billing_snapshot_lines_line"
        ),
    )
    with op.batch_alter_table("billing_snapshot_lines", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_billing_snapshot_lines_tenant_id"), ["tenant_id"], unique=False)

    op.create_table(
        "billing_snapshot_devices",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("tenant_id", sa.String(length=32), nullable=False),
        sa.Column("line_id", sa.String(length=32), nullable=False),
        sa.Column("device_id", sa.String(length=32), nullable=False),
        sa.Column("hostname", sa.String(length=255), nullable=False),
        sa.Column("serial_number", sa.String(length=100), nullable=True),
        sa.Column("first_seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["line_id"],
            ["billing_snapshot_lines.id"],
            name=op.f("fk_billing_snapshot_devices_line_id_billing_snapshot_lines"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_billing_snapshot_devices_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_billing_snapshot_devices")),
        sa.UniqueConstraint("line_id", "device_id", name="uq_billing_snapshot_devices_line_device"),
    )
    with op.batch_alter_table("billing_snapshot_devices", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_billing_snapshot_devices_line_id"), ["line_id"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_billing_snapshot_devices_tenant_id"), ["tenant_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("billing_snapshot_devices", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_billing_snapshot_devices_tenant_id"))
        batch_op.drop_index(batch_op.f("ix_billing_snapshot_devices_line_id"))

    op.drop_table("billing_snapshot_devices")
    with op.batch_alter_table("billing_snapshot_lines", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_billing_snapshot_lines_tenant_id"))

    op.drop_table("billing_snapshot_lines")
