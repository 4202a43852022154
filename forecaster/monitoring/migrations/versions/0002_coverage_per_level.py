"""Interval coverage per level: the intervals each forecast answered, and a row per point and level.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

ID = sa.BigInteger().with_variant(sa.Integer, "sqlite")


def upgrade() -> None:
    # A nullable column: both SQLite and PostgreSQL add it in place, the rows untouched.
    op.add_column("forecasts", sa.Column("intervals", sa.JSON, nullable=True))
    op.create_table(
        "coverage",
        sa.Column(
            "forecast_id",
            ID,
            sa.ForeignKey("forecasts.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("step", sa.Integer, primary_key=True),
        sa.Column("level", sa.Float, primary_key=True),
        sa.Column("inside", sa.Boolean, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("coverage")
    with op.batch_alter_table("forecasts") as batch:  # SQLite drops a column by copying
        batch.drop_column("intervals")
