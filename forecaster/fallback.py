"""Statistical forecasts for histories shorter than a model reads: pure numpy, no JAX.

A history of ``n`` points (no missing values) with seasonal period ``m`` is forecast by
:func:`choose_method`'s rule, measured on M4 Hourly (``python -m benchmarks.short_history``,
histories cut to their last N points, horizon 48, m = 24; test OWA against M4's Naive2 figures;
a one-point cut has no MASE scale, so sMAPE, 43.0 for all four):

====================  ======  ======  ======  ======  ======  ======  ======
cut (points)             6      12      24      48      72      96     144
====================  ======  ======  ======  ======  ======  ======  ======
naive                  2.460   2.087   1.988   5.289   4.597   4.414   4.217
seasonal naive         2.460   2.087   0.614   0.694   0.669   0.649   0.640
seasonal blend         2.460   2.087   0.614   0.691   0.665   0.641   0.624
Naive2                 2.460   2.087   1.988   5.289   4.408   0.989   0.887
====================  ======  ======  ======  ======  ======  ======  ======

Below one season every method is the naive forecast (a shorter history has no season to repeat, and
M4's seasonality test needs three), so **naive** answers. From one season **seasonal naive**
answers, and from two seasons the **seasonal blend**: the last season's shape (its values over its
mean) pulled a quarter of the way (``BLEND_WEIGHT``) toward the mean shape of the last whole
seasons, up to seven (``BLEND_SEASONS``), at the last season's mean, repeated; shapes are
differences from the mean instead when a season's mean is not positive. It keeps seasonal naive's
recency (the last day's level and shape) and averages away part of one day's noise. The rule reads
only the length and the period. It was chosen on a validation split (the last 48 points of each
training series held out, the histories cut from the points before them: ``--split validation``)
among the mean, median and recency-weighted mean of the last k seasons, seasonal naive with a level
correction, SES on the seasonally adjusted series, and the blend at weights 0.1-0.75 over 2, 3, 4
or all seasons, each scored at 48, 72, 96 and 144 points from seven forecast origins a day apart:
at weights up to 0.25 the blend was never worse than seasonal naive, and 0.25 was the best of those
(OWA 1.4% lower on average, 0.7% at 48 points, 2.5% at 144; on the single split above 0.680 vs
0.685 at 48 points, 0.667 vs 0.677 at 96). The means and medians of the seasons lost to seasonal
naive by 2-20% (weekdays differ from weekends), the level-corrected mean profile by 1-4%, SES on
the adjusted series by 5-11%, the additive blend by 7%. The cap of seven seasons was chosen on the
same split from full histories (7, 14, 28 or all). Naive2 stays available by name
(``method="naive2"``), but the blend needs it less: on M3 Monthly (``../shared/data/m3``, horizon
18, ``--m3-monthly``) the rule's test sMAPE is 17.24 (12 points: seasonal naive), 16.63, 16.44 and
16.27 (24, 36 points, full), against 17.24 for seasonal naive and 18.18, 17.84, 16.77 for Naive2.

Quantiles are empirical and symmetric about the point forecast: the band of level ``q`` lies
``|2q - 1|``-quantile of the method's absolute in-sample errors away from it (below for q < 0.5),
taken at the finite-sample rank ``ceil((k + 1) p)`` of the ``k`` errors, as split-conformal
intervals do, and widened with the horizon as the method's error accumulates: by ``sqrt(h)`` for
naive and Naive2 (a random walk), by ``sqrt(ceil(h / m))`` for seasonal naive (one more season
repeated), by ``ceil(h / m)`` for the blend (measured on the validation split: its second season's
errors were 1.7-2.0 times its first's). The errors are the method's own in-sample ones: lag-1
differences for naive, lag-m differences for seasonal naive (lag-1 when the history is exactly one
season), for the blend each of its seasons but the first forecast from the ones before it, lag-1
differences of the seasonally adjusted series for Naive2. On M4 Hourly the rule's 80% band (levels
0.1 and 0.9) covers 80-85% of the test points from 6 points of history on (48 points: 79.8%, 96:
85.4%; ``fallback_choice`` in the benchmark), 81-84% on M3 Monthly from 24 points; at exactly one
season of M3 Monthly (lag-1 spread, 18 months ahead) only 60%. A one-point history has no error to
measure: its quantiles equal its point forecast.

These bands are what a model saved without calibration serves (``"calibrated": false``). A
calibrated model's manifest holds a table per method, made from cuts of its training data
(:mod:`forecaster.calibration`), and the service serves those instead, at any level.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal, NamedTuple

import numpy as np
from numpy.typing import ArrayLike, NDArray

from forecaster import metrics

F64 = NDArray[np.float64]
Method = Literal["naive", "seasonal_naive", "seasonal_blend", "naive2"]
METHODS: tuple[Method, ...] = ("naive", "seasonal_naive", "seasonal_blend", "naive2")
#: The seasonal blend's pull of the last season's shape toward the mean shape, and the most
#: whole seasons it reads (module docstring: both chosen on M4 Hourly's validation split).
BLEND_WEIGHT = 0.25
BLEND_SEASONS = 7

__all__ = [
    "METHODS",
    "Fallback",
    "Method",
    "answering_method",
    "choose_method",
    "fallback_forecast",
]


class Fallback(NamedTuple):
    """One series' statistical forecast: ``point`` [h], ``quantiles`` level -> [h], and the
    method that made it."""

    point: F64
    quantiles: dict[float, F64]
    method: Method


def choose_method(length: int, season: int) -> Method:
    """The method for a history of ``length`` points with seasonal period ``season`` (module
    docstring): naive below one season, seasonal naive from one season, the seasonal blend from
    two."""
    if season <= 1 or length < season:
        return "naive"
    return "seasonal_blend" if length >= 2 * season else "seasonal_naive"


def answering_method(length: int, min_model: int, season: int) -> str:
    """Who answers a history of ``length`` points: ``"model"`` when it holds at least the
    model's ``min_model`` (its ``min_input``), else :func:`choose_method`'s fallback. The
    service and ``benchmarks.short_history`` both decide through here."""
    return "model" if length >= min_model else choose_method(length, season)


def fallback_forecast(
    history: ArrayLike,
    horizon: int,
    season: int,
    levels: Sequence[float] = (),
    method: Method | None = None,
) -> Fallback:
    """Forecast ``horizon`` steps of ``history [n]`` (n >= 1, finite) with ``method`` (None:
    :func:`choose_method`'s), with a band per quantile level in ``levels``."""
    x = np.asarray(history, dtype=np.float64).ravel()
    if x.size == 0 or not np.isfinite(x).all():
        raise ValueError("a fallback forecast needs at least one point, all finite")
    if horizon < 1 or season < 1:
        raise ValueError(f"horizon and season must be positive, got {horizon} and {season}")
    method = method or choose_method(x.size, season)
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    if method == "naive2" and metrics.seasonality_test(x, season):
        found = _naive2(x, horizon, season, levels)
        if np.isfinite(found.point).all():
            return found
        method = "seasonal_naive"  # zeros in the series: no multiplicative seasonal indices
    if method == "seasonal_blend" and x.size >= 2 * season:
        return _seasonal_blend(x, horizon, season, levels)
    if method in ("seasonal_naive", "seasonal_blend") and x.size >= season:
        point = metrics.seasonal_naive([x], horizon, season)[0]
        errors = x[season:] - x[:-season]
        if errors.size == 0:  # exactly one season: no lag-m error to measure
            errors = np.diff(x)
        growth = np.sqrt(np.ceil(np.arange(1, horizon + 1) / season))
        return Fallback(point, _bands(point, errors, growth, levels), "seasonal_naive")
    point = metrics.naive([x], horizon)[0]
    growth = np.sqrt(np.arange(1, horizon + 1))
    # Naive2 of a series without a significant season is the naive forecast, by definition.
    made_by: Method = "naive2" if method == "naive2" else "naive"
    return Fallback(point, _bands(point, np.diff(x), growth, levels), made_by)


def _naive2(x: F64, horizon: int, season: int, levels: Sequence[float]) -> Fallback:
    """Naive2 of a series that passed the seasonality test, its bands from the adjusted series."""
    adjusted, future = metrics.seasonally_adjusted(x, season, horizon)
    point = adjusted[-1] * future  # Naive2; zero indices make it inf: the caller falls back
    growth = np.sqrt(np.arange(1, horizon + 1))
    spread = _bands(np.full(horizon, adjusted[-1]), np.diff(adjusted), growth, levels)
    return Fallback(point, {q: band * future for q, band in spread.items()}, "naive2")


def _blend(seasons: F64) -> F64:
    """Next season ``[m]`` from whole ``seasons [k, m]`` (oldest first): the last season's shape
    pulled ``BLEND_WEIGHT`` of the way to the mean shape, at the last season's level; shapes are
    ratios to each season's mean when every mean is positive, else differences from it."""
    level = seasons.mean(axis=1, keepdims=True)
    if (level > 0).all():
        shape = seasons / level
        return level[-1, 0] * ((1 - BLEND_WEIGHT) * shape[-1] + BLEND_WEIGHT * shape.mean(axis=0))
    shape = seasons - level
    return level[-1, 0] + (1 - BLEND_WEIGHT) * shape[-1] + BLEND_WEIGHT * shape.mean(axis=0)


def _seasonal_blend(x: F64, horizon: int, season: int, levels: Sequence[float]) -> Fallback:
    """The seasonal blend of ``x [n]`` (n >= 2 seasons) from its last whole seasons, its bands
    from its own one-season-ahead errors: each of those seasons but the first forecast from the
    ones before it."""
    k = min(x.size // season, BLEND_SEASONS)
    seasons = x[x.size - k * season :].reshape(k, season)
    point = np.resize(_blend(seasons), horizon)  # np.resize tiles the season to the horizon
    errors = np.concatenate([seasons[j] - _blend(seasons[:j]) for j in range(1, k)])
    # Linear in the seasons ahead: on M4 Hourly's validation split the second season's errors
    # were 1.7-2.0 times the first's, not sqrt(2) (a level that drifts for days, not a walk).
    growth = np.ceil(np.arange(1, horizon + 1) / season)
    return Fallback(point, _bands(point, errors, growth, levels), "seasonal_blend")


def _bands(point: F64, errors: F64, growth: F64, levels: Sequence[float]) -> dict[float, F64]:
    """``point [h]`` moved by each level's share of the absolute ``errors [k]`` (module
    docstring), times ``growth [h]``; the point itself when there is no error to measure."""
    size = np.sort(np.abs(errors[np.isfinite(errors)]))
    out = {}
    for q in levels:
        p = abs(2.0 * q - 1.0)
        rank = min(int(np.ceil((size.size + 1) * p)), size.size)  # 0 for the median or no error
        width = size[rank - 1] if rank > 0 else 0.0
        out[float(q)] = point + np.sign(q - 0.5) * width * growth
    return out
