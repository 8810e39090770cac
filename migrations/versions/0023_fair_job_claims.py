"""jobs are claimed fairly between tenants: an index on each tenant's jobs by status in due order
(it replaces the index on status and due time, which only served the oldest-first claim)

Revision ID: 0023
Revises: 0022
Create Date: 2026-12-03 14:10:00.000000
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0023"
down_revision: str | None = "0022"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.create_index(
            "ix_jobs_tenant_claim", ["status", "tenant_id", "run_after", "id"], unique=False
        )
        batch_op.drop_index("ix_jobs_claim")


def downgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.create_index("ix_jobs_claim", ["status", "run_after"], unique=False)
        batch_op.drop_index("ix_jobs_tenant_claim")
