"""foundation: tenants, api keys, connections, mappings, rules

Revision ID: 0001
Revises:
Create Date: 2026-11-22 23:42:40.253174
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "tenants",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("settings", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tenants")),
        sa.UniqueConstraint("name", name=op.f("uq_tenants_name")),
    )
    op.create_table(
        "api_keys",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("tenant_id", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("prefix", sa.String(length=16), nullable=False),
        sa.Column("key_hash", sa.String(length=64), nullable=False),
        sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_api_keys_tenant_id_tenants"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_keys")),
        sa.UniqueConstraint("prefix", name=op.f("uq_api_keys_prefix")),
    )
    with op.batch_alter_table("api_keys", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_api_keys_tenant_id"), ["tenant_id"], unique=False)

    op.create_table(
        "connections",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("tenant_id", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("kind", sa.String(length=64), nullable=False),
        sa.Column("role", sa.String(length=8), nullable=False),
        sa.Column("base_url", sa.String(length=500), nullable=False),
        sa.Column("credentials_encrypted", sa.LargeBinary(), nullable=False),
        sa.Column("options", sa.JSON(), nullable=False),
        sa.Column("webhook_secret_encrypted", sa.LargeBinary(), nullable=True),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_connections_tenant_id_tenants"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_connections")),
        sa.UniqueConstraint("tenant_id", "name", name=op.f("uq_connections_tenant_id")),
    )
    with op.batch_alter_table("connections", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_connections_tenant_id"), ["tenant_id"], unique=False)

    op.create_table(
        "billing_rules",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("tenant_id", sa.String(length=32), nullable=False),
        sa.Column("psa_connection_id", sa.String(length=32), nullable=False),
        sa.Column("product", sa.String(length=200), nullable=False),
        sa.Column("count_scope", sa.String(length=20), nullable=False),
        sa.Column("count_method", sa.String(length=20), nullable=False),
        sa.Column("agreement_type", sa.String(length=200), nullable=True),
        sa.Column("agreement_id", sa.String(length=100), nullable=True),
        sa.Column("psa_product_id", sa.String(length=200), nullable=False),
        sa.Column("description", sa.String(length=300), nullable=True),
        sa.Column("unit_price", sa.Numeric(precision=14, scale=4), nullable=False),
        sa.Column("cost_tiers", sa.JSON(), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["psa_connection_id"],
            ["connections.id"],
            name=op.f("fk_billing_rules_psa_connection_id_connections"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_billing_rules_tenant_id_tenants"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_billing_rules")),
        sa.UniqueConstraint(
            "tenant_id", "psa_connection_id", "product", name=op.f("uq_billing_rules_tenant_id")
        ),
    )
    with op.batch_alter_table("billing_rules", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_billing_rules_tenant_id"), ["tenant_id"], unique=False)

    op.create_table(
        "client_mappings",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("tenant_id", sa.String(length=32), nullable=False),
        sa.Column("rmm_connection_id", sa.String(length=32), nullable=False),
        sa.Column("rmm_client_id", sa.String(length=100), nullable=False),
        sa.Column("rmm_client_name", sa.String(length=300), nullable=True),
        sa.Column("psa_connection_id", sa.String(length=32), nullable=False),
        sa.Column("psa_company_id", sa.String(length=100), nullable=False),
        sa.Column("psa_company_name", sa.String(length=300), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["psa_connection_id"],
            ["connections.id"],
            name=op.f("fk_client_mappings_psa_connection_id_connections"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["rmm_connection_id"],
            ["connections.id"],
            name=op.f("fk_client_mappings_rmm_connection_id_connections"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_client_mappings_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_client_mappings")),
        sa.UniqueConstraint(
            "tenant_id", "rmm_connection_id", "rmm_client_id", name=op.f("uq_client_mappings_tenant_id")
        ),
    )
    with op.batch_alter_table("client_mappings", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_client_mappings_tenant_id"), ["tenant_id"], unique=False)

    op.create_table(
        "ticket_rules",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("tenant_id", sa.String(length=32), nullable=False),
        sa.Column("psa_connection_id", sa.String(length=32), nullable=False),
        sa.Column("problem", sa.String(length=40), nullable=True),
        sa.Column("board_id", sa.String(length=100), nullable=False),
        sa.Column("type_id", sa.String(length=100), nullable=True),
        sa.Column("priority_id", sa.String(length=100), nullable=True),
        sa.Column("status_new_id", sa.String(length=100), nullable=True),
        sa.Column("status_closed_id", sa.String(length=100), nullable=True),
        sa.Column("summary_template", sa.String(length=300), nullable=False),
        sa.Column("note_interval_minutes", sa.Integer(), nullable=False),
        sa.Column("auto_action", sa.String(length=40), nullable=True),
        sa.Column("update_configurations", sa.Boolean(), nullable=False),
        sa.Column("create_configurations", sa.Boolean(), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["psa_connection_id"],
            ["connections.id"],
            name=op.f("fk_ticket_rules_psa_connection_id_connections"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_ticket_rules_tenant_id_tenants"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ticket_rules")),
        sa.UniqueConstraint(
            "tenant_id", "psa_connection_id", "problem", name=op.f("uq_ticket_rules_tenant_id")
        ),
    )
    with op.batch_alter_table("ticket_rules", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_ticket_rules_tenant_id"), ["tenant_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("ticket_rules", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_ticket_rules_tenant_id"))

    op.drop_table("ticket_rules")
    with op.batch_alter_table("client_mappings", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_client_mappings_tenant_id"))

    op.drop_table("client_mappings")
    with op.batch_alter_table("billing_rules", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_billing_rules_tenant_id"))

    op.drop_table("billing_rules")
    with op.batch_alter_table("connections", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_connections_tenant_id"))

    op.drop_table("connections")
    with op.batch_alter_table("api_keys", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_api_keys_tenant_id"))

    op.drop_table("api_keys")
    op.drop_table("tenants")
