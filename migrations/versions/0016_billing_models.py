"""billing models: rules per device category, included seats, minimum quantity, timing; per-company
price overrides; usage per device category; endpoints' device type; exact prorated quantities

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-03 10:20:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0016"
down_revision: str | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("billing_rules", schema=None) as batch_op:
        batch_op.add_column(sa.Column("device_category", sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column("included_seats", sa.Integer(), server_default="0", nullable=False))
        batch_op.add_column(sa.Column("minimum_quantity", sa.Integer(), server_default="0", nullable=False))
        batch_op.add_column(
            sa.Column("billing_timing", sa.String(length=16), server_default="current", nullable=False)
        )
        batch_op.drop_constraint("uq_billing_rules_tenant_id", type_="unique")
        batch_op.create_unique_constraint(
            "uq_billing_rules_category", ["tenant_id", "psa_connection_id", "product", "device_category"]
        )
        batch_op.create_index(
            "uq_billing_rules_all_categories",
            ["tenant_id", "psa_connection_id", "product"],
            unique=True,
            sqlite_where=sa.text("device_category IS NULL"),
            postgresql_where=sa.text("device_category IS NULL"),
        )

    with op.batch_alter_table("usage_daily", schema=None) as batch_op:
        batch_op.add_column(sa.Column("category", sa.String(length=16), server_default="", nullable=False))
        batch_op.drop_constraint("uq_usage_daily_key", type_="unique")
        batch_op.create_unique_constraint(
            "uq_usage_daily_key", ["rmm_connection_id", "client_id", "product", "category", "day"]
        )

    with op.batch_alter_table("endpoints", schema=None) as batch_op:
        batch_op.add_column(sa.Column("device_type", sa.String(length=64), nullable=True))

    with op.batch_alter_table("billing_line_states", schema=None) as batch_op:
        batch_op.add_column(sa.Column("billed_quantity", sa.Numeric(precision=14, scale=2), nullable=True))
    with op.batch_alter_table("billing_snapshot_lines", schema=None) as batch_op:
        batch_op.add_column(sa.Column("billed_quantity", sa.Numeric(precision=14, scale=2), nullable=True))

    op.create_table(
        "billing_price_overrides",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("tenant_id", sa.String(length=32), nullable=False),
        sa.Column("rule_id", sa.String(length=32), nullable=False),
        sa.Column("company_id", sa.String(length=100), nullable=False),
        sa.Column("unit_price", sa.Numeric(precision=14, scale=4), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["rule_id"],
            ["billing_rules.id"],
            name=op.f("fk_billing_price_overrides_rule_id_billing_rules"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_billing_price_overrides_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_billing_price_overrides")),
        sa.UniqueConstraint("rule_id", "company_id", name="uq_billing_price_overrides_rule_company"),
    )
    with op.batch_alter_table("billing_price_overrides", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_billing_price_overrides_tenant_id"), ["tenant_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("billing_price_overrides", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_billing_price_overrides_tenant_id"))
    op.drop_table("billing_price_overrides")

    with op.batch_alter_table("billing_snapshot_lines", schema=None) as batch_op:
        batch_op.drop_column("billed_quantity")
    with op.batch_alter_table("billing_line_states", schema=None) as batch_op:
        batch_op.drop_column("billed_quantity")

    with op.batch_alter_table("endpoints", schema=None) as batch_op:
        batch_op.drop_column("device_type")

    # Usage counted per category folds back into one row per client, product and day: the first
    # row takes the day's sums, the others go.
    same = (
        "FROM usage_daily AS o WHERE o.rmm_connection_id = usage_daily.rmm_connection_id "
        "AND o.client_id = usage_daily.client_id AND o.product = usage_daily.product "
        "AND o.day = usage_daily.day"
    )
    sums = ", ".join(
        f"{column} = (SELECT SUM(o.{column}) {same})"
        for column in ("peak_installed", "last_installed", "peak_protected", "last_protected")
    )
    first = f"(SELECT 1 {same} AND o.id < usage_daily.id)"  # constant text, no input in it
    op.execute(f"UPDATE usage_daily SET {sums} WHERE NOT EXISTS {first}")  # noqa: S608
    op.execute(f"DELETE FROM usage_daily WHERE EXISTS {first}")  # noqa: S608
    with op.batch_alter_table("usage_daily", schema=None) as batch_op:
        batch_op.drop_constraint("uq_usage_daily_key", type_="unique")
        batch_op.create_unique_constraint(
            "uq_usage_daily_key", ["rmm_connection_id", "client_id", "product", "day"]
        )
        batch_op.drop_column("category")

    # Rules of one product for several categories cannot all stay: the first one created does.
    op.execute(
        "DELETE FROM billing_rules WHERE EXISTS (SELECT 1 FROM billing_rules AS o "
        "WHERE o.tenant_id = billing_rules.tenant_id AND o.psa_connection_id = billing_rules.psa_connection_id "
        "AND o.product = billing_rules.product AND (o.created_at < billing_rules.created_at "
        "OR (o.created_at = billing_rules.created_at AND o.id < billing_rules.id)))"
    )
    with op.batch_alter_table("billing_rules", schema=None) as batch_op:
        batch_op.drop_index("uq_billing_rules_all_categories")
        batch_op.drop_constraint("uq_billing_rules_category", type_="unique")
        batch_op.create_unique_constraint(
            "uq_billing_rules_tenant_id", ["tenant_id", "psa_connection_id", "product"]
        )
        batch_op.drop_column("billing_timing")
        batch_op.drop_column("minimum_quantity")
        batch_op.drop_column("included_seats")
        batch_op.drop_column("device_category")
