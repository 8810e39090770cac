"""endpoints keep what their last evaluation settled (key, when its time-based checks are next due,
the problem kinds found present and absent), so a sync evaluates only what can have changed; sync
runs count the endpoints they evaluated; the daily health and usage counts read covering indexes

Revision ID: 0024
Revises: 0023
Create Date: 2026-12-03 14:20:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0024"
down_revision: str | None = "0023"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Existing rows start without an evaluation: the first sync after the upgrade evaluates them all.
    with op.batch_alter_table("endpoints", schema=None) as batch_op:
        batch_op.add_column(sa.Column("evaluated_key", sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column("checks_due_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("present_kinds", sa.String(length=200), nullable=True))
        batch_op.add_column(sa.Column("present_count", sa.Integer(), nullable=False, server_default="0"))
        batch_op.add_column(sa.Column("absent_kinds", sa.String(length=200), nullable=True))
    active = sa.text("retired_at IS NULL")
    op.create_index(
        "ix_endpoints_health_counts",
        "endpoints",
        ["rmm_connection_id", "client_id", "health"],
        sqlite_where=active,
        postgresql_where=active,
    )
    op.create_index(
        "ix_endpoints_usage_counts",
        "endpoints",
        ["rmm_connection_id", "client_id", "product", "device_type", "os_name", "protection_enabled"],
        sqlite_where=active,
        postgresql_where=active,
    )
    with op.batch_alter_table("sync_runs", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("endpoints_evaluated", sa.Integer(), nullable=False, server_default="0")
        )


def downgrade() -> None:
    op.drop_index("ix_endpoints_usage_counts", table_name="endpoints")
    op.drop_index("ix_endpoints_health_counts", table_name="endpoints")
    with op.batch_alter_table("sync_runs", schema=None) as batch_op:
        batch_op.drop_column("endpoints_evaluated")
    with op.batch_alter_table("endpoints", schema=None) as batch_op:
        batch_op.drop_column("absent_kinds")
        batch_op.drop_column("present_count")
        batch_op.drop_column("present_kinds")
        batch_op.drop_column("checks_due_at")
        batch_op.drop_column("evaluated_key")
