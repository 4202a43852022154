"""What the service hands over for recording, and the rows it becomes (off the request path).

The service builds a :class:`RecordBatch` per answered request in a few microseconds per series
(references to arrays it already has); the writer turns batches into one row per forecast: one
timestamp parse for the whole batch, the history's seasonal naive forecast and MASE scale, and
the arrays packed as binary (:func:`pack`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np

from forecaster import metrics
from forecaster.monitoring.times import as_datetimes, to_micros, to_utc

F8, I8 = np.dtype("<f8"), np.dtype("<i8")
EPOCH = datetime(1970, 1, 1)


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


def pack(values: np.ndarray, dtype: np.dtype = F8) -> bytes:
    return np.ascontiguousarray(values, dtype=dtype).tobytes()


def unpack(blob: bytes, dtype: np.dtype = F8) -> np.ndarray:
    return np.frombuffer(blob, dtype=dtype)


def to_rows(batches: Sequence[RecordBatch]) -> list[dict[str, Any]]:
    """One ``forecasts`` row per record of ``batches``. Raises
    :class:`~forecaster.monitoring.times.BadTimestamp` for an unreadable target stamp."""
    records = [(b, r) for b in batches for r in b.records]
    stamps = [s for _, r in records for s in r.times]
    micros = to_micros(to_utc(stamps)) if stamps else np.zeros(0, I8)
    rows, at = [], 0
    for batch, rec in records:
        h = len(rec.times)
        levels = sorted(rec.quantiles)
        scale = float(metrics.scale([rec.history], batch.season)[0])
        rows.append(
            {
                "series_id": rec.series_id,
                "model": batch.model,
                "version": batch.version,
                "made_at": datetime.fromtimestamp(batch.made_at, UTC).replace(tzinfo=None),
                "method": rec.method,
                "season": batch.season,
                "scale": scale if np.isfinite(scale) else None,
                "first_target": _datetime(micros[at]),
                "last_target": _datetime(micros[at + h - 1]),
                "targets": pack(micros[at : at + h], I8),
                "point": pack(rec.point[:h]),
                "seasonal_naive": pack(metrics.seasonal_naive([rec.history], h, batch.season)[0]),
                "quantile_levels": levels or None,
                "lower_level": levels[0] if levels else None,
                "upper_level": levels[-1] if levels else None,
                "quantiles": pack(np.stack([rec.quantiles[q][:h] for q in levels]))
                if levels
                else None,
            }
        )
        at += h
    return rows


def score_rows(forecast: Any, times: np.ndarray, values: np.ndarray) -> list[dict[str, Any]]:
    """``scores`` rows of one stored ``forecast`` row against actuals ``values`` [n] at
    ``times`` [n] (int64 µs): one per forecast point with an actual."""
    if not times.size:
        return []
    targets = unpack(forecast.targets, I8)
    order = np.argsort(times, kind="stable")
    times, values = times[order], values[order]
    where = np.minimum(np.searchsorted(times, targets), times.size - 1)
    steps = np.flatnonzero(times[where] == targets)
    if not steps.size:
        return []
    actual = values[where[steps]]
    point = unpack(forecast.point)[steps]
    naive = unpack(forecast.seasonal_naive)[steps]
    inside: list[bool | None] = [None] * steps.size
    if forecast.quantiles is not None:
        bands = unpack(forecast.quantiles).reshape(len(forecast.quantile_levels), -1)
        inside = ((actual >= bands[0, steps]) & (actual <= bands[-1, steps])).tolist()
    model, sn = _errors(actual, point, forecast.scale), _errors(actual, naive, forecast.scale)
    return [
        {"forecast_id": forecast.id, "step": int(k) + 1, "target_time": t, "actual": a,
         "abs_error": e, "smape": s, "scaled": c, "sn_abs_error": ne, "sn_smape": ns,
         "sn_scaled": nc, "inside": i}
        for k, t, a, e, s, c, ne, ns, nc, i in zip(
            steps, as_datetimes(targets[steps].astype("datetime64[us]")), actual.tolist(),
            *model, *sn, inside, strict=True,
        )
    ]  # fmt: skip


def _datetime(micros: np.int64) -> datetime:
    return EPOCH + timedelta(microseconds=int(micros))


def _errors(actual: np.ndarray, forecast: np.ndarray, scale: float | None) -> tuple[list, ...]:
    """Absolute error, sMAPE term and scaled error of each point (scaled: None without scale)."""
    # Halves first: the sMAPE term stays finite for values near 1e308 (the error may not).
    half, both = np.abs(actual / 2 - forecast / 2), np.abs(actual) / 2 + np.abs(forecast) / 2
    smape = 200.0 * np.divide(half, both, out=np.zeros_like(half), where=both > 0)
    with np.errstate(over="ignore"):
        err = 2 * half
    scaled = (err / scale).tolist() if scale else [None] * err.size
    return err.tolist(), smape.tolist(), scaled
