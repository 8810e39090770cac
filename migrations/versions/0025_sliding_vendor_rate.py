"""vendor calls per minute as a sliding log shared by every process (`vendor_rate_slots`: one row
per call the limit allows, each taken once per window) instead of fixed one-minute counters, which
let twice the limit start across a minute boundary

Revision ID: 0025
Revises: 0024
Create Date: 2026-12-03 19:20:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0025"
down_revision: str | None = "0024"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "vendor_rate_slots",
        sa.Column("connection_id", sa.String(length=32), nullable=False),
        sa.Column("slot_no", sa.Integer(), nullable=False),
        sa.Column("used_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("connection_id", "slot_no", name=op.f("pk_vendor_rate_slots")),
    )
    # The counters only ever held the current and the previous minute: nothing to carry over.
    op.drop_table("vendor_rate_windows")


def downgrade() -> None:
    op.create_table(
        "vendor_rate_windows",
        sa.Column("connection_id", sa.String(length=32), nullable=False),
        sa.Column("window", sa.BigInteger(), nullable=False),
        sa.Column("calls", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("connection_id", "window", name=op.f("pk_vendor_rate_windows")),
    )
    op.drop_table("vendor_rate_slots")
