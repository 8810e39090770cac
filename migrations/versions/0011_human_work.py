"""ticket rules: close policy, re-raise interval and RMM alert clearing; ticket links: re-opens

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-02 06:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("ticket_rules") as batch:
        batch.add_column(
            sa.Column(
                "close_policy", sa.String(length=24), nullable=False, server_default="close_if_untouched"
            )
        )
        batch.add_column(sa.Column("reraise_minutes", sa.Integer(), nullable=True))
        batch.add_column(
            sa.Column("clear_rmm_alert", sa.Boolean(), nullable=False, server_default=sa.false())
        )
    with op.batch_alter_table("ticket_links") as batch:
        batch.add_column(sa.Column("reopened", sa.Integer(), nullable=False, server_default="0"))


def downgrade() -> None:
    with op.batch_alter_table("ticket_links") as batch:
        batch.drop_column("reopened")
    with op.batch_alter_table("ticket_rules") as batch:
        batch.drop_column("clear_rmm_alert")
        batch.drop_column("reraise_minutes")
        batch.drop_column("close_policy")
