"""Forecasts, actuals and scores.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

ID = sa.BigInteger().with_variant(sa.Integer, "sqlite")


def upgrade() -> None:
    op.create_table(
        "forecasts",
        sa.Column("id", ID, primary_key=True),
        sa.Column("series_id", sa.String(256), nullable=False),
        sa.Column("model", sa.String(128), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("made_at", sa.DateTime, nullable=False),
        sa.Column("method", sa.String(32), nullable=False),
        sa.Column("season", sa.Integer, nullable=False),
        sa.Column("scale", sa.Float, nullable=True),
        sa.Column("first_target", sa.DateTime, nullable=False),
        sa.Column("last_target", sa.DateTime, nullable=False),
        sa.Column("targets", sa.LargeBinary, nullable=False),
        sa.Column("point", sa.LargeBinary, nullable=False),
        sa.Column("seasonal_naive", sa.LargeBinary, nullable=False),
        sa.Column("quantile_levels", sa.JSON, nullable=True),
        sa.Column("quantiles", sa.LargeBinary, nullable=True),
        sa.Column("lower_level", sa.Float, nullable=True),
        sa.Column("upper_level", sa.Float, nullable=True),
    )
    op.create_index("ix_forecasts_series_last_target", "forecasts", ["series_id", "last_target"])
    op.create_index("ix_forecasts_model_version", "forecasts", ["model", "version"])
    op.create_index("ix_forecasts_made_at", "forecasts", ["made_at"])
    op.create_table(
        "actuals",
        sa.Column("series_id", sa.String(256), primary_key=True),
        sa.Column("time", sa.DateTime, primary_key=True),
        sa.Column("value", sa.Float, nullable=False),
        sa.Column("received_at", sa.DateTime, nullable=False),
    )
    op.create_index("ix_actuals_received_at", "actuals", ["received_at"])
    op.create_table(
        "scores",
        sa.Column(
            "forecast_id",
            ID,
            sa.ForeignKey("forecasts.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("step", sa.Integer, primary_key=True),
        sa.Column("target_time", sa.DateTime, nullable=False),
        sa.Column("actual", sa.Float, nullable=False),
        sa.Column("abs_error", sa.Float, nullable=False),
        sa.Column("smape", sa.Float, nullable=False),
        sa.Column("scaled", sa.Float, nullable=True),
        sa.Column("sn_abs_error", sa.Float, nullable=False),
        sa.Column("sn_smape", sa.Float, nullable=False),
        sa.Column("sn_scaled", sa.Float, nullable=True),
        sa.Column("inside", sa.Boolean, nullable=True),
    )
    op.create_index("ix_scores_target_time", "scores", ["target_time"])


def downgrade() -> None:
    op.drop_table("scores")
    op.drop_table("actuals")
    op.drop_table("forecasts")
