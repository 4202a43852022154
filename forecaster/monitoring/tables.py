"""The monitoring store's tables (SQLAlchemy Core): forecasts made, actuals, and scores.

A forecast is one row: its arrays (target times, point forecast, the seasonal naive forecast of
the same history, quantiles) packed as little-endian binary, so recording a 48-step forecast is
one insert, not 48. Actuals are matched to forecasts when they arrive, and each matched point
becomes a ``scores`` row holding its errors; accuracy is then a grouped sum over ``scores``.

Times are naive UTC: stamps written with an offset are brought to UTC, stamps without one are
kept as written (:func:`forecaster.monitoring.times.to_utc`), so a forecast and the actuals sent
for it match when both use the same convention. The schema is created and changed only by the
Alembic migrations in ``migrations/`` (kept in step with this module by a test).
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
)

metadata = MetaData()
# Characters a series id and a method name may hold (the columns' lengths).
SERIES_ID_CHARS, METHOD_CHARS = 256, 32
ID = BigInteger().with_variant(Integer, "sqlite")  # SQLite autoincrements INTEGER keys only

forecasts = Table(
    "forecasts",
    metadata,
    Column("id", ID, primary_key=True),
    Column("series_id", String(SERIES_ID_CHARS), nullable=False),
    Column("model", String(128), nullable=False),
    Column("version", Integer, nullable=False),
    Column("made_at", DateTime, nullable=False),
    Column("method", String(METHOD_CHARS), nullable=False),
    Column("season", Integer, nullable=False),
    # The history's MASE scale: in-sample mean absolute error of the seasonal naive forecast
    # (lag 1 when that is 0); None when the history is constant.
    Column("scale", Float, nullable=True),
    Column("first_target", DateTime, nullable=False),
    Column("last_target", DateTime, nullable=False),
    # [h] int64 microseconds since 1970 (naive UTC), and [h] float64 values.
    Column("targets", LargeBinary, nullable=False),
    Column("point", LargeBinary, nullable=False),
    Column("seasonal_naive", LargeBinary, nullable=False),
    # Quantile levels answered, ascending, and their values [levels, h] float64.
    Column("quantile_levels", JSON, nullable=True),
    Column("quantiles", LargeBinary, nullable=True),
    # The widest interval scored for coverage: the lowest and highest level.
    Column("lower_level", Float, nullable=True),
    Column("upper_level", Float, nullable=True),
    # The intervals answered, ascending by level: [[level (percent), lower, upper], ...], the
    # bounds being the quantile levels that bounded it as served (usually (1 -+ level/100) / 2).
    # None (rows before revision 0002): every symmetric pair of quantiles is taken for one.
    Column("intervals", JSON, nullable=True),
    Index("ix_forecasts_series_last_target", "series_id", "last_target"),
    Index("ix_forecasts_model_version", "model", "version"),
    Index("ix_forecasts_made_at", "made_at"),
)

# The truth as it arrives; one value per series and time (a later value replaces it).
actuals = Table(
    "actuals",
    metadata,
    Column("series_id", String(SERIES_ID_CHARS), primary_key=True),
    Column("time", DateTime, primary_key=True),
    Column("value", Float, nullable=False),
    Column("received_at", DateTime, nullable=False),
    Index("ix_actuals_received_at", "received_at"),
)

# One row per forecast point that has an actual: its errors, and the seasonal naive's.
scores = Table(
    "scores",
    metadata,
    Column("forecast_id", ID, ForeignKey("forecasts.id", ondelete="CASCADE"), primary_key=True),
    Column("step", Integer, primary_key=True),  # 1 = the first forecast point
    Column("target_time", DateTime, nullable=False),
    Column("actual", Float, nullable=False),
    Column("abs_error", Float, nullable=False),
    Column("smape", Float, nullable=False),  # 200 |a - f| / (|a| + |f|), 0 where both are 0
    Column("scaled", Float, nullable=True),  # |a - f| / scale
    Column("sn_abs_error", Float, nullable=False),
    Column("sn_smape", Float, nullable=False),
    Column("sn_scaled", Float, nullable=True),
    Column("inside", Boolean, nullable=True),  # within the widest interval; None: no interval
    Index("ix_scores_target_time", "target_time"),
)

# One row per scored point and interval level: whether the actual fell inside that level's band.
coverage = Table(
    "coverage",
    metadata,
    Column("forecast_id", ID, ForeignKey("forecasts.id", ondelete="CASCADE"), primary_key=True),
    Column("step", Integer, primary_key=True),
    Column("level", Float, primary_key=True),  # nominal, in percent
    Column("inside", Boolean, nullable=False),
)
