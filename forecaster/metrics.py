"""Forecast accuracy metrics and the M4 baselines, in plain numpy (float64).

Shapes: ``insample`` is a sequence of ``n`` 1-D arrays (each series' history, lengths may differ);
``y_true``, ``y_pred``, ``lower``, ``upper`` are ``[n, h]`` (a 1-D array is read as one series).
Point metrics are computed per series and then averaged over series, as in M4.

Definitions (M4 competition, Makridakis et al. 2018 and the organisers' R benchmark script):

- sMAPE = mean_h 200·|y−f| / (|y|+|f|); a 0/0 term (y = f = 0) counts as 0.
- APE (per series) = mean_h 100·|y−f| / |y|; summarised by its mean, median, 99th percentile, max.
- MASE = mean_h |y−f| / scale, scale = mean_t |x_t − x_{t−m}| over the in-sample series.
- MSIS = mean_h [(U−L) + 2/a·(L−y)·1{y<L} + 2/a·(y−U)·1{y>U}] / scale.
- OWA = (sMAPE/sMAPE_Naive2 + MASE/MASE_Naive2) / 2, by default against M4 Hourly's Naive2.

Scale fallback (MASE, MSIS): when the seasonal scale is 0 (a series constant over every lag-m
pair) or undefined (history of m points or fewer), the lag-1 scale mean_t |x_t − x_{t−1}| is used.
If that is 0 or undefined too (a constant series), the series' MASE/MSIS is nan and it is left
out of the average over series; the average is nan only if every series is left out.

Naive2 follows ``Benchmarks and Evaluation.R`` from Mcompetitions/M4-methods, the script behind the
published statistical benchmark figures: 90% seasonality test on the ACF at lag m (series shorter
than 3m are never seasonal), classical multiplicative decomposition (centred moving average of
order m, 2×m for even m, as R's ``decompose``), naive forecast of the seasonally adjusted series
re-seasonalised with the indices continued. One R artefact is not copied: R's default ``acf`` stops
at lag ⌊10·log10 n⌋, so for m = 24 a series shorter than 252 points is silently non-seasonal there.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import cast

import numpy as np
from numpy.typing import ArrayLike, NDArray

F64 = NDArray[np.float64]

#: M4 Hourly Naive2 scores, the default OWA reference.
M4_HOURLY_NAIVE2_SMAPE = 18.383
M4_HOURLY_NAIVE2_MASE = 2.395
#: One-sided 90% normal quantile used by the M4 seasonality test.
_SEASONALITY_Z = 1.645

__all__ = [
    "M4_HOURLY_NAIVE2_MASE",
    "M4_HOURLY_NAIVE2_SMAPE",
    "acf",
    "ape_per_series",
    "ape_summary",
    "coverage",
    "evaluate",
    "mae",
    "mase",
    "mase_per_series",
    "msis",
    "naive",
    "naive2",
    "owa",
    "owa_vs_naive2",
    "rmse",
    "scale",
    "score",
    "seasonal_indices",
    "seasonal_naive",
    "seasonality_test",
    "seasonally_adjusted",
    "smape",
    "smape_per_series",
]


# ---------------------------------------------------------------------------- helpers


def _as_2d(a: ArrayLike) -> F64:
    """``[n, h]`` float64 view of ``a``; a 1-D array is one series."""
    return np.atleast_2d(np.asarray(a, dtype=np.float64))


def _as_series(insample: Sequence[ArrayLike] | ArrayLike) -> list[F64]:
    """List of 1-D float64 histories; a 1-D array is one series, a 2-D array one per row."""
    if isinstance(insample, np.ndarray) and insample.ndim == 1:
        return [insample.astype(np.float64)]
    # A 2-D array iterates over its rows, a sequence over its items.
    rows = cast(Sequence[ArrayLike], insample)
    return [np.asarray(x, dtype=np.float64).ravel() for x in rows]


def _check_pair(y_true: F64, y_pred: F64) -> None:
    if y_true.shape != y_pred.shape:
        raise ValueError(f"shape mismatch: y_true {y_true.shape} vs y_pred {y_pred.shape}")


def _nanmean_or_nan(values: F64) -> float:
    # np.nanmean warns on an all-nan slice; an all-excluded average is simply nan here.
    kept = values[~np.isnan(values)]
    return float(kept.mean()) if kept.size else float("nan")


# ---------------------------------------------------------------------------- point metrics


def smape_per_series(y_true: ArrayLike, y_pred: ArrayLike) -> F64:
    """sMAPE of each series in percent, ``[n]``, from ``[n, h]`` actuals and forecasts."""
    y, f = _as_2d(y_true), _as_2d(y_pred)
    _check_pair(y, f)
    num = 200.0 * np.abs(y - f)
    den = np.abs(y) + np.abs(f)
    # den == 0 only when y == f == 0: a perfect forecast, so the term is 0 rather than nan.
    terms = np.divide(num, den, out=np.zeros_like(num), where=den > 0)
    return terms.mean(axis=1)


def smape(y_true: ArrayLike, y_pred: ArrayLike) -> float:
    """sMAPE in percent averaged over series; inputs ``[n, h]``."""
    return float(smape_per_series(y_true, y_pred).mean())


def _lag_scale(x: F64, lag: int) -> float:
    return float(np.mean(np.abs(x[lag:] - x[:-lag]))) if x.size > lag else float("nan")


def scale(insample: Sequence[ArrayLike] | F64, m: int) -> F64:
    """MASE/MSIS denominator of each series, ``[n]``, with the lag-1 fallback (module docstring).
    A 2-D array (series of one length, one per row) is scaled in a few numpy calls."""
    if isinstance(insample, np.ndarray) and insample.ndim == 2 and m >= 1:
        return _scale_rows(insample.astype(np.float64, copy=False), m)
    out = []
    for x in _as_series(insample):
        s = _lag_scale(x, m)
        if not s > 0:  # also catches nan
            s = _lag_scale(x, 1)
        out.append(s if s > 0 else np.nan)
    return np.asarray(out, dtype=np.float64)


def _scale_rows(x: F64, m: int) -> F64:
    """:func:`scale` of the rows of ``x`` [n, length], the same numbers: numpy sums each
    contiguous row as it sums one series, and ``np.mean`` is that sum over the count (called
    directly here: its Python wrapper costs more than one row's arithmetic)."""

    def lagged(rows: F64, lag: int) -> F64:
        width = rows.shape[1] - lag
        if width <= 0:
            return np.full(len(rows), np.nan)
        return np.add.reduce(np.abs(rows[:, lag:] - rows[:, :-lag]), axis=1) / width

    s = lagged(x, m)
    ok = s > 0  # False for nan too
    if not ok.all():
        s[~ok] = lagged(x[~ok], 1)
        s[~(s > 0)] = np.nan
    return s


def _check_insample(n_insample: int, y: F64) -> None:
    if n_insample != y.shape[0]:
        raise ValueError(f"{n_insample} in-sample series for {y.shape[0]} forecast rows")


def mase_per_series(
    insample: Sequence[ArrayLike], y_true: ArrayLike, y_pred: ArrayLike, m: int
) -> F64:
    """MASE of each series, ``[n]``; nan where no scale exists (module docstring)."""
    y, f = _as_2d(y_true), _as_2d(y_pred)
    _check_pair(y, f)
    s = scale(insample, m)
    _check_insample(s.size, y)
    return np.abs(y - f).mean(axis=1) / s


def mase(insample: Sequence[ArrayLike], y_true: ArrayLike, y_pred: ArrayLike, m: int) -> float:
    """MASE averaged over series (nan series excluded); ``y_*`` are ``[n, h]``."""
    return _nanmean_or_nan(mase_per_series(insample, y_true, y_pred, m))


def ape_per_series(y_true: ArrayLike, y_pred: ArrayLike) -> F64:
    """Mean absolute percentage error of each series, ``[n]``: mean_h 100·|y−f| / |y|; inf
    where an actual is 0 and its forecast is not (0 where both are)."""
    y, f = _as_2d(y_true), _as_2d(y_pred)
    _check_pair(y, f)
    num, den = 100.0 * np.abs(y - f), np.abs(y)
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(num == 0, 0.0, num / den)
    return terms.mean(axis=1)


def ape_summary(y_true: ArrayLike, y_pred: ArrayLike) -> dict[str, float]:
    """The spread of per-series APE (:func:`ape_per_series`): its mean and median, and the worst
    series, its 99th percentile (``p99``: linear interpolation) and maximum. The mean is what a
    few runaway forecasts move and the median is not; both are needed to judge a method."""
    ape = ape_per_series(y_true, y_pred)
    return {
        "mean_ape": float(ape.mean()),
        "median_ape": float(np.median(ape)),
        "p99_ape": float(np.percentile(ape, 99)),
        "max_ape": float(ape.max()),
    }


def mae(y_true: ArrayLike, y_pred: ArrayLike) -> float:
    """Mean absolute error over all ``[n, h]`` points."""
    y, f = _as_2d(y_true), _as_2d(y_pred)
    _check_pair(y, f)
    return float(np.mean(np.abs(y - f)))


def rmse(y_true: ArrayLike, y_pred: ArrayLike) -> float:
    """Root mean squared error over all ``[n, h]`` points (pooled, not averaged per series)."""
    y, f = _as_2d(y_true), _as_2d(y_pred)
    _check_pair(y, f)
    return float(np.sqrt(np.mean((y - f) ** 2)))


def owa(
    smape_value: float,
    mase_value: float,
    *,
    smape_ref: float = M4_HOURLY_NAIVE2_SMAPE,
    mase_ref: float = M4_HOURLY_NAIVE2_MASE,
) -> float:
    """Overall weighted average relative to a reference (default: M4 Hourly Naive2); nan where
    a reference is 0 (the reference forecast was exact: no ratio to it means anything)."""
    if smape_ref == 0 or mase_ref == 0:
        return math.nan
    return 0.5 * (smape_value / smape_ref + mase_value / mase_ref)


def owa_vs_naive2(
    insample: Sequence[ArrayLike], y_true: ArrayLike, y_pred: ArrayLike, m: int
) -> float:
    """OWA relative to Naive2 computed on this very data rather than M4's published figures."""
    series = _as_series(insample)
    reference = naive2(series, _as_2d(y_true).shape[1], m)
    return owa(
        smape(y_true, y_pred),
        mase(series, y_true, y_pred, m),
        smape_ref=smape(y_true, reference),
        mase_ref=mase(series, y_true, reference, m),
    )


# ---------------------------------------------------------------------------- intervals


def coverage(y_true: ArrayLike, lower: ArrayLike, upper: ArrayLike) -> float:
    """Fraction of the ``[n, h]`` actuals inside the closed interval ``[lower, upper]``."""
    y, lo, hi = _as_2d(y_true), _as_2d(lower), _as_2d(upper)
    _check_pair(y, lo)
    _check_pair(y, hi)
    return float(np.mean((y >= lo) & (y <= hi)))


def msis(
    insample: Sequence[ArrayLike],
    y_true: ArrayLike,
    lower: ArrayLike,
    upper: ArrayLike,
    m: int,
    *,
    alpha: float = 0.05,
) -> float:
    """Mean scaled interval score (M4) of ``(1−alpha)`` intervals, averaged over series."""
    y, lo, hi = _as_2d(y_true), _as_2d(lower), _as_2d(upper)
    _check_pair(y, lo)
    _check_pair(y, hi)
    penalty = 2.0 / alpha
    score = (hi - lo) + penalty * (lo - y) * (y < lo) + penalty * (y - hi) * (y > hi)
    s = scale(insample, m)
    _check_insample(s.size, y)
    return _nanmean_or_nan(score.mean(axis=1) / s)


# ---------------------------------------------------------------------------- baselines


def naive(insample: Sequence[ArrayLike], horizon: int) -> F64:
    """Last value repeated, ``[n, horizon]``."""
    last = np.array([x[-1] for x in _as_series(insample)], dtype=np.float64)
    return np.repeat(last[:, None], horizon, axis=1)


def _seasonal_naive_one(x: F64, horizon: int, m: int) -> F64:
    if x.size < m:  # not one full season to repeat: fall back to the last value
        return np.full(horizon, x[-1])
    return np.resize(x[-m:], horizon)  # np.resize tiles the last season to the horizon


def seasonal_naive(insample: Sequence[ArrayLike], horizon: int, m: int) -> F64:
    """Last season (``m`` points) repeated, ``[n, horizon]``; naive for series shorter than m."""
    return np.stack([_seasonal_naive_one(x, horizon, m) for x in _as_series(insample)])


def acf(x: ArrayLike, max_lag: int) -> F64:
    """Sample autocorrelations at lags ``1..max_lag``, ``[max_lag]`` (R's ``acf`` estimator)."""
    values = np.asarray(x, dtype=np.float64)
    d = values - values.mean()
    denom = float(d @ d)
    n = d.size
    lags = np.arange(1, max_lag + 1)
    num = np.array([d[k:] @ d[: n - k] if k < n else 0.0 for k in lags])
    return num / denom if denom > 0 else np.zeros(max_lag)


def seasonality_test(x: ArrayLike, m: int) -> bool:
    """M4's 90% test: |acf_m| > 1.645·sqrt((1 + 2·Σ_{k<m} acf_k²)/n); never for n < 3m."""
    x = np.asarray(x, dtype=np.float64)
    if m <= 1 or x.size < 3 * m:
        return False
    r = acf(x, m)
    limit = _SEASONALITY_Z * np.sqrt((1.0 + 2.0 * np.sum(r[:-1] ** 2)) / x.size)
    return bool(abs(r[-1]) > limit)


def _centred_moving_average(x: F64, m: int) -> F64:
    """Classical trend ``[len(x)]``: MA of order m (2×m for even m), nan where undefined."""
    # Even m needs the 2×m MA (weights 1/2m at both ends) to stay centred on an observation.
    w = np.r_[0.5, np.ones(m - 1), 0.5] / m if m % 2 == 0 else np.ones(m) / m
    half = w.size // 2
    trend = np.full(x.size, np.nan)
    trend[half : x.size - half] = np.convolve(x, w, mode="valid")
    return trend


def seasonal_indices(x: ArrayLike, m: int) -> F64:
    """Multiplicative seasonal indices ``[m]`` (mean 1); index i applies to positions t ≡ i mod m.

    As R's ``decompose(type="multiplicative")``: ratio of the series to its centred moving average,
    averaged per position in the cycle, then normalised to mean 1.
    """
    x = np.asarray(x, dtype=np.float64)
    ratio = x / _centred_moving_average(x, m)
    padded = np.full(-(-x.size // m) * m, np.nan)
    padded[: x.size] = ratio
    figure = np.nanmean(padded.reshape(-1, m), axis=0)
    return figure / figure.mean()


def seasonally_adjusted(x: ArrayLike, m: int, horizon: int) -> tuple[F64, F64]:
    """``x [n]`` divided by its seasonal indices (:func:`seasonal_indices`), and the indices of
    the ``horizon`` steps after its end, which re-seasonalise a forecast of the adjusted series:
    the decomposition of M4's Naive2 and of its classical benchmarks."""
    x = np.asarray(x, dtype=np.float64)
    si = seasonal_indices(x, m)
    with np.errstate(divide="ignore", invalid="ignore"):  # zero indices: inf, for callers to see
        adjusted = x / si[np.arange(x.size) % m]
    return adjusted, si[(x.size + np.arange(horizon)) % m]


def _naive2_one(x: F64, horizon: int, m: int) -> F64:
    if not seasonality_test(x, m):
        return np.full(horizon, x[-1])
    adjusted, future = seasonally_adjusted(x, m, horizon)
    return adjusted[-1] * future


def naive2(insample: Sequence[ArrayLike], horizon: int, m: int) -> F64:
    """M4's Naive2: naive on the seasonally adjusted series × seasonal indices, ``[n, horizon]``."""
    return np.stack([_naive2_one(x, horizon, m) for x in _as_series(insample)])


# ---------------------------------------------------------------------------- summary


def evaluate(
    insample: Sequence[ArrayLike],
    y_true: ArrayLike,
    y_pred: ArrayLike,
    m: int,
    *,
    lower: ArrayLike | None = None,
    upper: ArrayLike | None = None,
    alpha: float = 0.05,
    smape_ref: float = M4_HOURLY_NAIVE2_SMAPE,
    mase_ref: float = M4_HOURLY_NAIVE2_MASE,
) -> dict[str, float]:
    """smape, mase, owa, mae, rmse (and msis, coverage when both interval bounds are given).

    OWA is relative to ``smape_ref``/``mase_ref`` (M4 Hourly Naive2 by default); use
    :func:`owa_vs_naive2` for a reference computed on the data at hand.
    """
    series = _as_series(insample)
    s, q = smape(y_true, y_pred), mase(series, y_true, y_pred, m)
    out = {
        "smape": s,
        "mase": q,
        "owa": owa(s, q, smape_ref=smape_ref, mase_ref=mase_ref),
        "mae": mae(y_true, y_pred),
        "rmse": rmse(y_true, y_pred),
    }
    if (lower is None) != (upper is None):
        raise ValueError("pass both lower and upper interval bounds, or neither")
    if lower is not None and upper is not None:
        out["msis"] = msis(series, y_true, lower, upper, m, alpha=alpha)
        out["coverage"] = coverage(y_true, lower, upper)
    return out


def score(
    insample: Sequence[ArrayLike],
    y_true: ArrayLike,
    y_pred: ArrayLike,
    m: int,
    *,
    lower: ArrayLike | None = None,
    upper: ArrayLike | None = None,
    alpha: float = 0.05,
) -> dict[str, float]:
    """The scores every command reports: :func:`evaluate`'s, with OWA against Naive2 computed on
    this very data (not M4 Hourly's published figures), so any data set can be scored."""
    series = _as_series(insample)
    out = evaluate(series, y_true, y_pred, m, lower=lower, upper=upper, alpha=alpha)
    out["owa"] = owa_vs_naive2(series, y_true, y_pred, m)
    return out
