"""The monitoring store's tables (SQLAlchemy Core): forecasts made, their points, actuals.

Times are naive UTC ``DateTime`` values: stamps written with an offset are brought to UTC, stamps
without one are kept as written (see :func:`forecaster.monitoring.times.to_utc`), so a forecast
and the actuals sent for it match when both use the same convention. The schema is created and
changed only by the Alembic migrations in ``migrations/`` (kept in step with this module by
``tests/test_monitoring.py``).
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
)

metadata = MetaData()

# One row per series forecast: who answered, and the history's MASE scale (the in-sample mean
# absolute error of the seasonal naive forecast; None when the history is constant).
forecasts = Table(
    "forecasts",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True),
    Column("series_id", String(256), nullable=False),
    Column("model", String(128), nullable=False),
    Column("version", Integer, nullable=False),
    Column("made_at", DateTime, nullable=False),
    Column("method", String(32), nullable=False),
    Column("season", Integer, nullable=False),
    Column("scale", Float, nullable=True),
    # The widest interval recorded with the points (lowest and highest quantile levels).
    Column("lower_level", Float, nullable=True),
    Column("upper_level", Float, nullable=True),
    # Every quantile answered: {"0.1": [h values], ...} (None when none were).
    Column("quantiles", JSON, nullable=True),
    Index("ix_forecasts_model_version", "model", "version"),
    Index("ix_forecasts_made_at", "made_at"),
)

# One row per forecast step; ``series_id`` repeated so actuals join on (series_id, target_time).
points = Table(
    "forecast_points",
    metadata,
    Column(
        "forecast_id",
        BigInteger().with_variant(Integer, "sqlite"),
        ForeignKey("forecasts.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("step", Integer, primary_key=True),
    Column("series_id", String(256), nullable=False),
    Column("target_time", DateTime, nullable=False),
    Column("point", Float, nullable=False),
    Column("seasonal_naive", Float, nullable=False),
    Column("lower", Float, nullable=True),
    Column("upper", Float, nullable=True),
    Index("ix_points_series_time", "series_id", "target_time"),
)

# The truth as it arrives; one value per series and time (a later value replaces it).
actuals = Table(
    "actuals",
    metadata,
    Column("series_id", String(256), primary_key=True),
    Column("time", DateTime, primary_key=True),
    Column("value", Float, nullable=False),
    Column("received_at", DateTime, nullable=False),
    Index("ix_actuals_received_at", "received_at"),
)
