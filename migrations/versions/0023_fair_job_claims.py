"""jobs are claimed fairly between tenants: an index on each tenant's runnable jobs in due order
(it replaces the plain tenant index, which it covers)

Revision ID: 0023
Revises: 0020
Create Date: 2026-12-03 14:10:00.000000
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0023"
down_revision: str | None = "0020"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.create_index(
            "ix_jobs_tenant_claim", ["tenant_id", "status", "run_after", "id"], unique=False
        )
        batch_op.drop_index("ix_jobs_tenant_id")


def downgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.create_index("ix_jobs_tenant_id", ["tenant_id"], unique=False)
        batch_op.drop_index("ix_jobs_tenant_claim")
