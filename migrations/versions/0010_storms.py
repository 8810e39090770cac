"""storms: client-level storm tickets, and the ticket rule's storm, priority, exclusion and
minimum-age fields

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-02 06:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "storms",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("tenant_id", sa.String(length=32), nullable=False),
        sa.Column("rmm_connection_id", sa.String(length=32), nullable=False),
        sa.Column("psa_connection_id", sa.String(length=32), nullable=True),
        sa.Column("client_id", sa.String(length=100), nullable=False),
        sa.Column("kind", sa.String(length=40), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("company_id", sa.String(length=100), nullable=False),
        sa.Column("marker", sa.String(length=40), nullable=False),
        sa.Column("ticket_id", sa.String(length=100), nullable=True),
        sa.Column("ticket_number", sa.String(length=100), nullable=True),
        sa.Column("ticket_url", sa.String(length=500), nullable=True),
        sa.Column("members", sa.JSON(), nullable=False),
        sa.Column("opened_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("lock_owner", sa.String(length=64), nullable=True),
        sa.Column("lock_expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_storms_tenant_id_tenants"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["rmm_connection_id"],
            ["connections.id"],
            name=op.f("fk_storms_rmm_connection_id_connections"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["psa_connection_id"],
            ["connections.id"],
            name=op.f("fk_storms_psa_connection_id_connections"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_storms")),
        sa.UniqueConstraint("marker", name=op.f("uq_storms_marker")),
    )
    op.create_index(op.f("ix_storms_tenant_id"), "storms", ["tenant_id"])
    op.create_index(
        "uq_storms_open",
        "storms",
        ["rmm_connection_id", "client_id", "kind"],
        unique=True,
        sqlite_where=sa.text("state = 'open'"),
        postgresql_where=sa.text("state = 'open'"),
    )
    with op.batch_alter_table("problems") as batch:
        batch.add_column(sa.Column("storm_id", sa.String(length=32), nullable=True))
        batch.create_foreign_key(
            op.f("fk_problems_storm_id_storms"), "storms", ["storm_id"], ["id"], ondelete="SET NULL"
        )
    with op.batch_alter_table("ticket_rules") as batch:
        batch.add_column(sa.Column("storm_min_endpoints", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("storm_min_percent", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("storm_window_minutes", sa.Integer(), nullable=False, server_default="60"))
        batch.add_column(sa.Column("priority_map", sa.JSON(), nullable=False, server_default="{}"))
        batch.add_column(sa.Column("disabled_problems", sa.JSON(), nullable=False, server_default="[]"))
        batch.add_column(sa.Column("exclusions", sa.JSON(), nullable=False, server_default="[]"))
        batch.add_column(sa.Column("min_age_minutes", sa.Integer(), nullable=False, server_default="0"))


def downgrade() -> None:
    with op.batch_alter_table("ticket_rules") as batch:
        for name in (
            "min_age_minutes",
            "exclusions",
            "disabled_problems",
            "priority_map",
            "storm_window_minutes",
            "storm_min_percent",
            "storm_min_endpoints",
        ):
            batch.drop_column(name)
    with op.batch_alter_table("problems") as batch:
        batch.drop_constraint(op.f("fk_problems_storm_id_storms"), type_="foreignkey")
        batch.drop_column("storm_id")
    op.drop_index("uq_storms_open", table_name="storms")
    op.drop_index(op.f("ix_storms_tenant_id"), table_name="storms")
    op.drop_table("storms")
