"""vendor request budgets shared by every process of a deployment: concurrent-call slot leases and
per-minute call counts per connection

Revision ID: 0022
Revises: 0021
Create Date: 2026-12-03 14:30:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0022"
down_revision: str | None = "0021"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "vendor_slots",
        sa.Column("connection_id", sa.String(length=32), nullable=False),
        sa.Column("slot_no", sa.Integer(), nullable=False),
        sa.Column("holder", sa.String(length=32), nullable=True),
        sa.Column("owner", sa.String(length=32), nullable=True),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("connection_id", "slot_no", name=op.f("pk_vendor_slots")),
    )
    op.create_table(
        "vendor_rate_windows",
        sa.Column("connection_id", sa.String(length=32), nullable=False),
        sa.Column("window", sa.BigInteger(), nullable=False),
        sa.Column("calls", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("connection_id", "window", name=op.f("pk_vendor_rate_windows")),
    )


def downgrade() -> None:
    op.drop_table("vendor_rate_windows")
    op.drop_table("vendor_slots")
