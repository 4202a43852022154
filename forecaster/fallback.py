"""Statistical forecasts for histories shorter than a model reads: pure numpy, no JAX.

A history of ``n`` points (no missing values) with seasonal period ``m`` is forecast by
:func:`choose_method`'s rule, measured on M4 Hourly (``python -m benchmarks.short_history``,
histories cut to their last N points, horizon 48, m = 24; test OWA against M4's Naive2 figures;
a one-point cut has no MASE scale, so sMAPE, 43.0 for all three):

====================  ======  ======  ======  ======  ======  ======
cut (points)             6      12      24      48      72      96
====================  ======  ======  ======  ======  ======  ======
naive                  2.460   2.087   1.988   5.289   4.597   4.414
seasonal naive         2.460   2.087   0.614   0.694   0.669   0.649
Naive2                 2.460   2.087   1.988   5.289   4.408   0.989
====================  ======  ======  ======  ======  ======  ======

Below one season every method is the naive forecast (a shorter history has no season to repeat,
and M4's seasonality test needs three), so **naive** answers. From one season on **seasonal
naive** answers: on M4 Hourly it beats Naive2 at every length, three seasons and more included
(Naive2 re-seasonalises from the last point alone, and hourly profiles are stable). Naive2 stays
available by name (``method="naive2"``): on M3 Monthly and Quarterly (``../shared/data/m3``) it
beats seasonal naive from three seasons on (full histories, sMAPE: 16.77 vs 17.24 monthly, 10.03
vs 11.07 quarterly), which a model of those frequencies may want.

Quantiles are empirical and symmetric about the point forecast: the band of level ``q`` lies
``|2q - 1|``-quantile of the method's absolute in-sample errors away from it (below for q < 0.5),
taken at the finite-sample rank ``ceil((k + 1) p)`` of the ``k`` errors, as split-conformal
intervals do, and widened with the horizon as the method's error accumulates: by ``sqrt(h)`` for
naive and Naive2 (a random walk), by ``sqrt(ceil(h / m))`` for seasonal naive (one more season
repeated). The errors are the method's own one-step ones: lag-1 differences for naive, lag-m
differences for seasonal naive (lag-1 when the history is exactly one season), lag-1 differences
of the seasonally adjusted series for Naive2. On M4 Hourly the 80% band (levels 0.1 and 0.9)
covers 75-84% of the test points from 6 points of history on (``fallback_choice`` in the
benchmark). A one-point history has no error to measure: its quantiles equal its point forecast.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal, NamedTuple

import numpy as np
from numpy.typing import ArrayLike, NDArray

from forecaster import metrics

F64 = NDArray[np.float64]
Method = Literal["naive", "seasonal_naive", "naive2"]
METHODS: tuple[Method, ...] = ("naive", "seasonal_naive", "naive2")

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
    docstring): naive below one season, seasonal naive from one season on."""
    return "seasonal_naive" if season > 1 and length >= season else "naive"


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
    if method == "seasonal_naive" and x.size >= season:
        point = metrics.seasonal_naive([x], horizon, season)[0]
        errors = x[season:] - x[:-season]
        if errors.size == 0:  # exactly one season: no lag-m error to measure
            errors = np.diff(x)
        growth = np.sqrt(np.ceil(np.arange(1, horizon + 1) / season))
        return Fallback(point, _bands(point, errors, growth, levels), method)
    point = metrics.naive([x], horizon)[0]
    growth = np.sqrt(np.arange(1, horizon + 1))
    # Naive2 of a series without a significant season is the naive forecast, by definition.
    made_by: Method = "naive2" if method == "naive2" else "naive"
    return Fallback(point, _bands(point, np.diff(x), growth, levels), made_by)


def _naive2(x: F64, horizon: int, season: int, levels: Sequence[float]) -> Fallback:
    """Naive2 of a series that passed the seasonality test, its bands from the adjusted series."""
    point = metrics.naive2([x], horizon, season)[0]
    indices = metrics.seasonal_indices(x, season)
    with np.errstate(divide="ignore", invalid="ignore"):  # zero indices: the caller falls back
        adjusted = x / indices[np.arange(x.size) % season]
    future = indices[(x.size + np.arange(horizon)) % season]
    growth = np.sqrt(np.arange(1, horizon + 1))
    spread = _bands(np.full(horizon, adjusted[-1]), np.diff(adjusted), growth, levels)
    return Fallback(point, {q: band * future for q, band in spread.items()}, "naive2")


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
