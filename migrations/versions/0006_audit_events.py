"""audit events; ticket links outlive their PSA connection (handed over)

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02 04:40:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

LINK_FK = "fk_ticket_links_psa_connection_id_connections"


def upgrade() -> None:
    op.create_table(
        "audit_events",
        sa.Column("seq", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("tenant_id", sa.String(length=32), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("category", sa.String(length=8), nullable=False),
        sa.Column("kind", sa.String(length=64), nullable=False),
        sa.Column("actor", sa.String(length=64), nullable=False),
        sa.Column("api_key_id", sa.String(length=32), nullable=True),
        sa.Column("connection_id", sa.String(length=32), nullable=True),
        sa.Column("client_id", sa.String(length=100), nullable=True),
        sa.Column("target_type", sa.String(length=40), nullable=False),
        sa.Column("target_id", sa.String(length=200), nullable=True),
        sa.Column("summary", sa.String(length=500), nullable=False),
        sa.Column("before", sa.JSON(), nullable=True),
        sa.Column("after", sa.JSON(), nullable=True),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_audit_events_tenant_id_tenants"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_audit_events")),
    )
    op.create_index("ix_audit_events_tenant_seq", "audit_events", ["tenant_id", "seq"], unique=False)
    op.create_index("ix_audit_events_tenant_at", "audit_events", ["tenant_id", "at"], unique=False)
    with op.batch_alter_table("ticket_links") as batch:
        batch.alter_column("psa_connection_id", existing_type=sa.String(length=32), nullable=True)
        batch.drop_constraint(LINK_FK, type_="foreignkey")
        batch.create_foreign_key(LINK_FK, "connections", ["psa_connection_id"], ["id"], ondelete="SET NULL")


def downgrade() -> None:
    # Handed-over links have no PSA connection any more; they cannot be kept under NOT NULL.
    op.execute("DELETE FROM ticket_links WHERE psa_connection_id IS NULL")
    with op.batch_alter_table("ticket_links") as batch:
        batch.drop_constraint(LINK_FK, type_="foreignkey")
        batch.create_foreign_key(LINK_FK, "connections", ["psa_connection_id"], ["id"], ondelete="CASCADE")
        batch.alter_column("psa_connection_id", existing_type=sa.String(length=32), nullable=False)
    op.drop_index("ix_audit_events_tenant_at", table_name="audit_events")
    op.drop_index("ix_audit_events_tenant_seq", table_name="audit_events")
    op.drop_table("audit_events")
