"""usage uploads: saved column profiles of vendors' usage reports, and the reports uploaded per period

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-03 09:58:04.072747
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0017"
down_revision: str | None = "0016"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "billing_usage_profiles",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("tenant_id", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("psa_connection_id", sa.String(length=32), nullable=False),
        sa.Column("customer_column", sa.String(length=200), nullable=False),
        sa.Column("customer_kind", sa.String(length=20), nullable=False),
        sa.Column("aliases", sa.JSON(), nullable=False),
        sa.Column("product_column", sa.String(length=200), nullable=False),
        sa.Column("quantity_column", sa.String(length=200), nullable=False),
        sa.Column("delimiter", sa.String(length=1), nullable=True),
        sa.Column("header_row", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["psa_connection_id"],
            ["connections.id"],
            name=op.f("fk_billing_usage_profiles_psa_connection_id_connections"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_billing_usage_profiles_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_billing_usage_profiles")),
        sa.UniqueConstraint("tenant_id", "name", name=op.f("uq_billing_usage_profiles_tenant_id")),
    )
    with op.batch_alter_table("billing_usage_profiles", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_billing_usage_profiles_tenant_id"), ["tenant_id"], unique=False)

    op.create_table(
        "billing_usage_uploads",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("tenant_id", sa.String(length=32), nullable=False),
        sa.Column("profile_id", sa.String(length=32), nullable=False),
        sa.Column("psa_connection_id", sa.String(length=32), nullable=False),
        sa.Column("period", sa.String(length=7), nullable=False),
        sa.Column("filename", sa.String(length=255), nullable=True),
        sa.Column("uploaded_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("rows_read", sa.Integer(), nullable=False),
        sa.Column("rejected", sa.JSON(), nullable=False),
        sa.Column("warnings", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["profile_id"],
            ["billing_usage_profiles.id"],
            name=op.f("fk_billing_usage_uploads_profile_id_billing_usage_profiles"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_billing_usage_uploads_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_billing_usage_uploads")),
        sa.UniqueConstraint("tenant_id", "profile_id", "period", name="uq_billing_usage_uploads_key"),
    )
    with op.batch_alter_table("billing_usage_uploads", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_billing_usage_uploads_tenant_id"), ["tenant_id"], unique=False)

    op.create_table(
        "billing_usage_upload_rows",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("tenant_id", sa.String(length=32), nullable=False),
        sa.Column("upload_id", sa.String(length=32), nullable=False),
        sa.Column("customer", sa.String(length=300), nullable=False),
        sa.Column("product", sa.String(length=255), nullable=False),
        sa.Column("quantity", sa.BigInteger(), nullable=False),
        sa.Column("company_id", sa.String(length=100), nullable=True),
        sa.Column("company_name", sa.String(length=300), nullable=True),
        sa.Column("lines", sa.JSON(), nullable=False),
        sa.Column("reason", sa.String(length=200), nullable=True),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_billing_usage_upload_rows_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["upload_id"],
            ["billing_usage_uploads.id"],
            name=op.f("fk_billing_usage_upload_rows_upload_id_billing_usage_uploads"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_billing_usage_upload_rows")),
    )
    with op.batch_alter_table("billing_usage_upload_rows", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_billing_usage_upload_rows_tenant_id"), ["tenant_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_billing_usage_upload_rows_upload_id"), ["upload_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("billing_usage_upload_rows", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_billing_usage_upload_rows_upload_id"))
        batch_op.drop_index(batch_op.f("ix_billing_usage_upload_rows_tenant_id"))

    op.drop_table("billing_usage_upload_rows")
    with op.batch_alter_table("billing_usage_uploads", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_billing_usage_uploads_tenant_id"))

    op.drop_table("billing_usage_uploads")
    with op.batch_alter_table("billing_usage_profiles", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_billing_usage_profiles_tenant_id"))

    op.drop_table("billing_usage_profiles")
