"""The statistical fallback for short histories (forecaster.fallback): which method answers,
its forecasts against forecaster.metrics' baselines, and its empirical quantiles."""

from __future__ import annotations

import numpy as np
import pytest

from forecaster import metrics
from forecaster.fallback import answering_method, choose_method, fallback_forecast

M, H = 24, 48


def wave(n: int, seed: int = 0) -> np.ndarray:
    t = np.arange(n)
    return 100 + 10 * np.sin(2 * np.pi * t / M) + np.random.default_rng(seed).normal(0, 1, n)


@pytest.mark.parametrize(
    ("length", "season", "method"),
    [(1, 24, "naive"), (23, 24, "naive"), (24, 24, "seasonal_naive"), (500, 24, "seasonal_naive"),
     (50, 1, "naive")],
)  # fmt: skip
def test_the_rule_by_length(length, season, method):
    assert choose_method(length, season) == method
    assert answering_method(length, length + 1, season) == method
    assert answering_method(length, length, season) == "model"


@pytest.mark.parametrize("length", [1, 5, 23, 24, 30, 100])
def test_points_are_the_m4_baselines(length):
    x = wave(length)
    found = fallback_forecast(x, H, M)
    expected = metrics.seasonal_naive([x], H, M) if length >= M else metrics.naive([x], H)
    np.testing.assert_array_equal(found.point, expected[0])
    assert found.method == choose_method(length, M)
    naive2 = fallback_forecast(x, H, M, method="naive2")
    np.testing.assert_allclose(naive2.point, metrics.naive2([x], H, M)[0])


def test_bands_come_from_the_methods_own_errors_and_widen_with_the_horizon():
    x = wave(200)
    found = fallback_forecast(x, H, M, levels=(0.1, 0.5, 0.9))
    assert found.method == "seasonal_naive"
    lo, mid, hi = (found.quantiles[q] for q in (0.1, 0.5, 0.9))
    np.testing.assert_array_equal(mid, found.point)  # the median band is the point
    errors = np.sort(np.abs(x[M:] - x[:-M]))
    width = errors[int(np.ceil((errors.size + 1) * 0.8)) - 1]
    # One season ahead the band is the 80% share of the lag-24 errors; two seasons, sqrt(2) of it.
    np.testing.assert_allclose(hi[:M] - found.point[:M], width)
    np.testing.assert_allclose(hi[M:] - found.point[M:], width * np.sqrt(2))
    np.testing.assert_allclose(found.point - lo, hi - found.point)
    naive = fallback_forecast(x[:10], 5, M, levels=(0.9,))
    step = np.sort(np.abs(np.diff(x[:10])))[7]  # rank ceil(10 * 0.8) of 9 differences
    np.testing.assert_allclose(naive.quantiles[0.9] - naive.point, step * np.sqrt(np.arange(1, 6)))


def test_bands_cover_about_what_they_claim():
    rng = np.random.default_rng(1)
    walks = np.cumsum(rng.normal(0, 1, (400, 60)), axis=1)
    inside = []
    for w in walks:
        band = fallback_forecast(w[:50], 10, 1, levels=(0.1, 0.9)).quantiles
        inside.append((band[0.1] <= w[50:]) & (w[50:] <= band[0.9]))
    assert 0.72 < np.mean(inside) < 0.88


@pytest.mark.parametrize("history", [[5.0], [0.0], [-3.0]])
def test_a_one_point_history_never_crashes_and_has_no_spread(history):
    found = fallback_forecast(history, 6, M, levels=(0.025, 0.5, 0.975))
    assert found.method == "naive"
    for band in found.quantiles.values():
        np.testing.assert_array_equal(band, history * 6)


def test_exactly_one_season_measures_its_spread_by_lag_one():
    x = wave(M)
    found = fallback_forecast(x, H, M, levels=(0.9,))
    assert found.method == "seasonal_naive"
    assert (found.quantiles[0.9] > found.point).all() and np.isfinite(found.quantiles[0.9]).all()


def test_naive2_of_a_series_with_zeros_stays_finite():
    x = np.tile(np.r_[np.zeros(12), np.ones(12)], 5)
    found = fallback_forecast(x, H, M, levels=(0.1, 0.9), method="naive2")
    assert all(np.isfinite(a).all() for a in [found.point, *found.quantiles.values()])


@pytest.mark.parametrize(
    ("history", "kwargs"),
    [([], {}), ([1.0, np.nan], {}), ([1.0, np.inf], {}), ([1.0], {"method": "ets"}),
     ([1.0], {"horizon": 0})],
)  # fmt: skip
def test_bad_arguments_are_value_errors(history, kwargs):
    with pytest.raises(ValueError):
        fallback_forecast(history, **({"horizon": 3, "season": M} | kwargs))
