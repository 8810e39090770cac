"""endpoint configurations: the PSA configuration record written for each endpoint, per PSA
connection, so a ticket for the endpoint's problem can be attached to it

Records were known only at write time until now, so every endpoint's written fingerprint is
cleared: the next sync writes each endpoint's configuration once more (adapters send no field that
is unchanged) and keeps the record it wrote.

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-03 10:20:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0019"
down_revision: str | None = "0018"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "endpoint_configurations",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("tenant_id", sa.String(length=32), nullable=False),
        sa.Column("endpoint_ref", sa.String(length=32), nullable=False),
        sa.Column("psa_connection_id", sa.String(length=32), nullable=False),
        sa.Column("configuration_id", sa.String(length=100), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["endpoint_ref"],
            ["endpoints.id"],
            name=op.f("fk_endpoint_configurations_endpoint_ref_endpoints"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["psa_connection_id"],
            ["connections.id"],
            name=op.f("fk_endpoint_configurations_psa_connection_id_connections"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_endpoint_configurations_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_endpoint_configurations")),
        sa.UniqueConstraint(
            "endpoint_ref", "psa_connection_id", name="uq_endpoint_configurations_endpoint_psa"
        ),
    )
    with op.batch_alter_table("endpoint_configurations", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_endpoint_configurations_tenant_id"), ["tenant_id"], unique=False)
    op.execute(sa.text("UPDATE endpoints SET pushed_fields_fingerprint = NULL"))


def downgrade() -> None:
    with op.batch_alter_table("endpoint_configurations", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_endpoint_configurations_tenant_id"))
    op.drop_table("endpoint_configurations")
