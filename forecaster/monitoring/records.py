"""What the service hands over for recording, and the rows it becomes (off the request path).

The service builds a :class:`RecordBatch` per answered request in a few microseconds per series
(references to arrays it already has); the writer turns batches into one row per forecast: one
timestamp parse for the whole batch, the history's seasonal naive forecast and MASE scale, and
the arrays packed as binary (:func:`pack`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np

from forecaster import metrics
from forecaster.data import one_line
from forecaster.monitoring.tables import METHOD_CHARS, SERIES_ID_CHARS
from forecaster.monitoring.times import BadTimestamp, as_datetimes, to_micros, to_utc

F8, I8 = np.dtype("<f8"), np.dtype("<i8")
EPOCH = datetime(1970, 1, 1)


@dataclass(frozen=True)
class ForecastRecord:
    """One series' forecast: ``times`` [h] its target stamps (as answered), ``point`` [h],
    ``quantiles`` level -> [h], ``history`` [n] the (cleaned) history it was made from, and
    ``intervals``: each interval level answered (percent) -> the two of ``quantiles`` that
    bounded it as served (usually ``(1 -+ level / 100) / 2``; others when the probabilities a
    level is read at are adjusted)."""

    series_id: str
    method: str
    times: Sequence[str]
    point: np.ndarray
    history: np.ndarray
    quantiles: dict[float, np.ndarray] = field(default_factory=dict)
    intervals: dict[float, tuple[float, float]] = field(default_factory=dict)


@dataclass(frozen=True)
class RecordBatch:
    """The recorded forecasts of one request: model, version, its seasonal period, when."""

    model: str
    version: int
    seasonality: int
    made_at: float  # Unix seconds
    records: list[ForecastRecord]


def pack(values: np.ndarray, dtype: np.dtype = F8) -> bytes:
    return np.ascontiguousarray(values, dtype=dtype).tobytes()


def unpack(blob: bytes, dtype: np.dtype = F8) -> np.ndarray:
    return np.frombuffer(blob, dtype=dtype)


@dataclass(frozen=True)
class Rejected:
    """A record the store refused, and why (the others of its flush are written regardless)."""

    series_id: str
    model: str
    version: int
    reason: str


def to_rows(batches: Sequence[RecordBatch]) -> tuple[list[dict[str, Any]], list[Rejected]]:
    """One ``forecasts`` row per record of ``batches``, and the records that cannot become one
    (an unreadable stamp, an id no database holds, arrays that disagree), each on its own: one
    bad record never costs the others their row."""
    records = [(b, r) for b in batches for r in b.records]
    try:
        micros = _all_micros([r for _, r in records])
    except (BadTimestamp, ValueError, TypeError, OverflowError):
        micros = None  # one is bad: each record's stamps are read on their own below
    rows, rejected, at = [], [], 0
    for batch, rec in records:
        h = len(rec.times)
        try:
            own = micros[at : at + h] if micros is not None else _all_micros([rec])
            rows.append(_row(batch, rec, own))
        except Exception as exc:  # whatever it is, it is this record's alone
            rejected.append(
                Rejected(rec.series_id, batch.model, batch.version, one_line(exc, 200, first=True))
            )
        at += h
    return rows, rejected


def _all_micros(records: Sequence[ForecastRecord]) -> np.ndarray:
    """The target stamps of ``records``, concatenated, as int64 µs: one parse for them all."""
    stamps = [s for r in records for s in r.times]
    return to_micros(to_utc(stamps)) if stamps else np.zeros(0, I8)


def _row(batch: RecordBatch, rec: ForecastRecord, micros: np.ndarray) -> dict[str, Any]:
    h = len(rec.times)
    if not h:
        raise ValueError("no target timestamps")
    for name, text, limit in (("series id", rec.series_id, SERIES_ID_CHARS),
                              ("method", rec.method, METHOD_CHARS)):  # fmt: skip
        _check_storable(name, text, limit)
    levels = sorted(rec.quantiles)
    point = np.asarray(rec.point, np.float64)
    bands = [np.asarray(rec.quantiles[q], np.float64)[:h] for q in levels]
    if point.ndim != 1 or point.size < h or any(b.shape != (h,) for b in bands):
        raise ValueError(f"{h} target timestamps but forecast values of another length")
    scale = float(metrics.scale([rec.history], batch.seasonality)[0])
    return {
        "series_id": rec.series_id,
        "model": batch.model,
        "version": batch.version,
        "made_at": datetime.fromtimestamp(batch.made_at, UTC).replace(tzinfo=None),
        "method": rec.method,
        "season": batch.seasonality,
        "scale": scale if np.isfinite(scale) else None,
        "first_target": _datetime(micros[0]),
        "last_target": _datetime(micros[h - 1]),
        "targets": pack(micros, I8),
        "point": pack(point[:h]),
        "seasonal_naive": pack(metrics.seasonal_naive([rec.history], h, batch.seasonality)[0]),
        "quantile_levels": levels or None,
        "lower_level": levels[0] if levels else None,
        "upper_level": levels[-1] if levels else None,
        "quantiles": pack(np.stack(bands)) if bands else None,
        "intervals": _intervals(levels, rec.intervals) if bands else None,
    }


def _intervals(
    quantile_levels: Sequence[float], intervals: dict[float, tuple[float, float]]
) -> list[list[float]] | None:
    """``[[level, lower, upper], ...]`` ascending by level, of the ``intervals`` whose bounds
    are among ``quantile_levels`` (as those name them)."""
    out = []
    for level in sorted(intervals):
        at = [_position(q, quantile_levels) for q in intervals[level]]
        if at[0] is not None and at[1] is not None:
            out.append([float(level), quantile_levels[at[0]], quantile_levels[at[1]]])
    return out


def level_bounds(
    quantile_levels: Sequence[float], intervals: Sequence[Sequence[float]] | None
) -> list[tuple[float, int, int]]:
    """``(level, lower, upper)``: each recorded interval's level (percent) and the positions
    of its bounding quantiles in ``quantile_levels``; ``intervals`` None (a row recorded before
    they were, schema revision 0001): every symmetric pair of quantiles, ``q`` and ``1 - q``
    making the level ``100 (1 - 2q)``."""
    if intervals is None:
        intervals = [[round(100 * (1 - 2 * q), 9), q, 1 - q] for q in quantile_levels if q < 0.5]
    out = []
    for level, lower, upper in intervals:
        at = [_position(q, quantile_levels) for q in (lower, upper)]
        if at[0] is not None and at[1] is not None:
            out.append((float(level), at[0], at[1]))
    return out


def _position(q: float, quantile_levels: Sequence[float]) -> int | None:
    found = (i for i, o in enumerate(quantile_levels) if math.isclose(o, q, abs_tol=1e-9))
    return next(found, None)


def _check_storable(name: str, text: str, limit: int) -> None:
    """Text every backend stores as given: PostgreSQL refuses NUL, neither driver encodes a
    lone surrogate, and the column holds ``limit`` characters (SQLite would not enforce it)."""
    if "\x00" in text:
        raise ValueError(f"{name} contains a NUL character")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError(f"{name} is not valid Unicode (a lone surrogate)") from None
    if len(text) > limit:
        raise ValueError(f"{name} is longer than {limit} characters")


def score_rows(
    forecast: Any, times: np.ndarray, values: np.ndarray
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """``scores`` rows of one stored ``forecast`` row against actuals ``values`` [n] at
    ``times`` [n] (int64 µs), one per forecast point with an actual; and its ``coverage`` rows,
    one per such point and interval level."""
    if not times.size:
        return [], []
    targets = unpack(forecast.targets, I8)
    order = np.argsort(times, kind="stable")
    times, values = times[order], values[order]
    where = np.minimum(np.searchsorted(times, targets), times.size - 1)
    steps = np.flatnonzero(times[where] == targets)
    if not steps.size:
        return [], []
    actual = values[where[steps]]
    point = unpack(forecast.point)[steps]
    naive = unpack(forecast.seasonal_naive)[steps]
    inside: list[bool | None] = [None] * steps.size
    covered: list[dict[str, Any]] = []
    if forecast.quantiles is not None:
        bands = unpack(forecast.quantiles).reshape(len(forecast.quantile_levels), -1)
        inside = ((actual >= bands[0, steps]) & (actual <= bands[-1, steps])).tolist()
        for level, lo, hi in level_bounds(forecast.quantile_levels, forecast.intervals):
            within = (actual >= bands[lo, steps]) & (actual <= bands[hi, steps])
            covered += [
                {"forecast_id": forecast.id, "step": int(k) + 1, "level": level, "inside": i}
                for k, i in zip(steps, within.tolist(), strict=True)
            ]
    model, sn = _errors(actual, point, forecast.scale), _errors(actual, naive, forecast.scale)
    scored = [
        {"forecast_id": forecast.id, "step": int(k) + 1, "target_time": t, "actual": a,
         "abs_error": e, "smape": s, "scaled": c, "sn_abs_error": ne, "sn_smape": ns,
         "sn_scaled": nc, "inside": i}
        for k, t, a, e, s, c, ne, ns, nc, i in zip(
            steps, as_datetimes(targets[steps].astype("datetime64[us]")), actual.tolist(),
            *model, *sn, inside, strict=True,
        )
    ]  # fmt: skip
    return scored, covered


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


@dataclass(frozen=True)
class SeriesSeen:
    """A series the service has forecast: by which model (latest version), how often, when."""

    series_id: str
    model: str
    version: int
    forecasts: int
    last_made_at: datetime
    last_target: datetime


@dataclass(frozen=True)
class PastForecast:
    """A recorded forecast as answered: ``targets`` [h] (naive UTC), ``point`` [h], and each
    interval level answered (percent) -> its ``(lower [h], upper [h])``."""

    model: str
    version: int
    made_at: datetime
    method: str
    targets: list[datetime]
    point: np.ndarray
    intervals: dict[float, tuple[np.ndarray, np.ndarray]]


def past_forecast(row: Any) -> PastForecast:
    """A ``forecasts`` row (its arrays unpacked) as a :class:`PastForecast`."""
    targets = unpack(row.targets, I8)
    bands: dict[float, tuple[np.ndarray, np.ndarray]] = {}
    if row.quantiles is not None:
        quantiles = unpack(row.quantiles).reshape(len(row.quantile_levels), -1)
        for level, lo, hi in level_bounds(row.quantile_levels, row.intervals):
            bands[level] = (quantiles[lo], quantiles[hi])
    return PastForecast(
        model=row.model,
        version=row.version,
        made_at=row.made_at,
        method=row.method,
        targets=[_datetime(t) for t in targets],
        point=unpack(row.point),
        intervals=bands,
    )
