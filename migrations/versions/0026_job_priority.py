"""jobs carry a priority (0: a live alert's or a person's work, 1: a bulk sweep such as a status
sync's reconciliations or configuration pushes); within a tenant claims take the urgent ones first,
so a tenant's alert does not wait behind its own backfill. The claim index leads with it.

Revision ID: 0026
Revises: 0025
Create Date: 2026-12-03 19:40:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0026"
down_revision: str | None = "0025"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("priority", sa.SmallInteger(), nullable=False, server_default="0"))
        batch_op.drop_index("ix_jobs_tenant_claim")
        batch_op.create_index(
            "ix_jobs_tenant_claim", ["status", "tenant_id", "priority", "run_after", "id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_index("ix_jobs_tenant_claim")
        batch_op.create_index(
            "ix_jobs_tenant_claim", ["status", "tenant_id", "run_after", "id"], unique=False
        )
        batch_op.drop_column("priority")
