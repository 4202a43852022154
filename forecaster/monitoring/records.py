"""What the service hands over for recording, and the rows it becomes (off the request path).

The service builds a :class:`RecordBatch` per answered request in a few microseconds per series
(references to arrays it already has); the writer turns batches into table rows in bulk:
one timestamp parse for the whole batch, the seasonal naive forecast and MASE scale of each
history, tuples built column-wise.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

import numpy as np

from forecaster import metrics
from forecaster.monitoring.times import as_datetimes, to_utc


@dataclass(frozen=True)
class ForecastRecord:
    """One series' forecast: ``times`` [h] its target stamps (as answered), ``point`` [h],
    ``quantiles`` level -> [h], and ``history`` [n] the (cleaned) history it was made from."""

    series_id: str
    method: str
    times: Sequence[str]
    point: np.ndarray
    history: np.ndarray
    quantiles: dict[float, np.ndarray] = field(default_factory=dict)


@dataclass(frozen=True)
class RecordBatch:
    """The recorded forecasts of one request: model, version, its seasonal period, when."""

    model: str
    version: int
    season: int
    made_at: float  # Unix seconds
    records: list[ForecastRecord]


@dataclass(frozen=True)
class Rows:
    """Table rows for some batches: ``forecasts`` dicts, and per forecast its point tuples
    ``(step, series_id, target_time, point, seasonal_naive, lower, upper)`` without the id."""

    forecasts: list[dict]
    points: list[list[tuple]]


def seasonal_naive(history: np.ndarray, season: int, horizon: int) -> np.ndarray:
    """The last season repeated ``[horizon]`` (the last value when the history is shorter)."""
    if season > 1 and history.size >= season:
        last = history[-season:]
        return last[np.arange(horizon) % season]
    return np.full(horizon, history[-1])


def to_rows(batches: Sequence[RecordBatch]) -> Rows:
    """The rows of ``batches``. Raises :class:`~forecaster.monitoring.times.BadTimestamp`."""
    records = [(b, r) for b in batches for r in b.records]
    stamps = [s for _, r in records for s in r.times]
    times = as_datetimes(to_utc(stamps)) if stamps else []
    forecasts, points, at = [], [], 0
    for batch, rec in records:
        h = len(rec.times)
        levels = sorted(rec.quantiles)
        lower = rec.quantiles[levels[0]][:h].tolist() if levels else [None] * h
        upper = rec.quantiles[levels[-1]][:h].tolist() if levels else [None] * h
        scale = float(metrics.scale([rec.history], batch.season)[0])
        forecasts.append(
            {
                "series_id": rec.series_id,
                "model": batch.model,
                "version": batch.version,
                "made_at": datetime.fromtimestamp(batch.made_at, UTC).replace(tzinfo=None),
                "method": rec.method,
                "season": batch.season,
                "scale": scale if np.isfinite(scale) else None,
                "lower_level": levels[0] if levels else None,
                "upper_level": levels[-1] if levels else None,
                "quantiles": {str(q): v[:h].tolist() for q, v in rec.quantiles.items()} or None,
            }
        )
        naive = seasonal_naive(rec.history, batch.season, h)
        points.append(
            list(
                zip(
                    range(1, h + 1),
                    [rec.series_id] * h,
                    times[at : at + h],
                    rec.point[:h].tolist(),
                    naive.tolist(),
                    lower,
                    upper,
                    strict=True,
                )
            )
        )
        at += h
    return Rows(forecasts, points)
