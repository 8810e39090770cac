"""rejected client-mapping suggestions are stored, so they are not suggested again

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-03 14:30:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0021"
down_revision: str | None = "0020"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "mapping_rejections",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("tenant_id", sa.String(length=32), nullable=False),
        sa.Column("rmm_connection_id", sa.String(length=32), nullable=False),
        sa.Column("rmm_client_id", sa.String(length=100), nullable=False),
        sa.Column("rmm_client_name", sa.String(length=300), nullable=True),
        sa.Column("psa_connection_id", sa.String(length=32), nullable=False),
        sa.Column("psa_company_id", sa.String(length=100), nullable=False),
        sa.Column("psa_company_name", sa.String(length=300), nullable=True),
        sa.Column("rejected_by", sa.String(length=32), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["psa_connection_id"],
            ["connections.id"],
            name=op.f("fk_mapping_rejections_psa_connection_id_connections"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["rmm_connection_id"],
            ["connections.id"],
            name=op.f("fk_mapping_rejections_rmm_connection_id_connections"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_mapping_rejections_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_mapping_rejections")),
        sa.UniqueConstraint(
            "tenant_id",
            "rmm_connection_id",
            "rmm_client_id",
            "psa_connection_id",
            "psa_company_id",
            name="uq_mapping_rejections_suggestion",
        ),
    )
    with op.batch_alter_table("mapping_rejections", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_mapping_rejections_tenant_id"), ["tenant_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("mapping_rejections", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_mapping_rejections_tenant_id"))
    op.drop_table("mapping_rejections")
