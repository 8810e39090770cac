"""problems keep the RMM's alert id, so an RMM that can resolve alerts is told when a technician
closes the ticket

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-03 11:30:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0020"
down_revision: str | None = "0019"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("problems", schema=None) as batch_op:
        batch_op.add_column(sa.Column("vendor_alert_id", sa.String(length=200), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("problems", schema=None) as batch_op:
        batch_op.drop_column("vendor_alert_id")
