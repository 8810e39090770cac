"""billing PSA reads: each billed line as the PSA holds it, read back before and after a push

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-03 10:20:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0018"
down_revision: str | None = "0017"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "billing_psa_reads",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("tenant_id", sa.String(length=32), nullable=False),
        sa.Column("rule_id", sa.String(length=32), nullable=False),
        sa.Column("company_id", sa.String(length=100), nullable=False),
        sa.Column("agreement_id", sa.String(length=100), nullable=True),
        sa.Column("line_id", sa.String(length=100), nullable=True),
        sa.Column("quantity", sa.Numeric(precision=14, scale=2), nullable=True),
        sa.Column("marked", sa.Boolean(), nullable=True),
        sa.Column("error", sa.String(length=500), nullable=True),
        sa.Column("read_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["rule_id"],
            ["billing_rules.id"],
            name=op.f("fk_billing_psa_reads_rule_id_billing_rules"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_billing_psa_reads_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_billing_psa_reads")),
        sa.UniqueConstraint("rule_id", "company_id", name="uq_billing_psa_reads_rule_company"),
    )
    with op.batch_alter_table("billing_psa_reads", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_billing_psa_reads_tenant_id"), ["tenant_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("billing_psa_reads", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_billing_psa_reads_tenant_id"))
    op.drop_table("billing_psa_reads")
