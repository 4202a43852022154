"""The statistical fallback for short histories (forecaster.fallback): which method answers,
its forecasts against forecaster.metrics' baselines, and its empirical quantiles."""

from __future__ import annotations

import numpy as np
import pytest

from forecaster import metrics
from forecaster.fallback import (
    BLEND_SEASONS,
    BLEND_WEIGHT,
    METHODS,
    answering_method,
    choose_method,
    fallback_forecast,
)

M, H = 24, 48


def wave(n: int, seed: int = 0) -> np.ndarray:
    t = np.arange(n)
    return 100 + 10 * np.sin(2 * np.pi * t / M) + np.random.default_rng(seed).normal(0, 1, n)


@pytest.mark.parametrize(
    ("length", "season", "method"),
    [(1, 24, "naive"), (23, 24, "naive"), (24, 24, "seasonal_naive"), (47, 24, "seasonal_naive"),
     (48, 24, "seasonal_blend"), (500, 24, "seasonal_blend"), (50, 1, "naive"),
     (23, 12, "seasonal_naive"), (24, 12, "seasonal_blend"), (7, 4, "seasonal_naive")],
)  # fmt: skip
def test_the_rule_by_length(length, season, method):
    assert choose_method(length, season) == method in METHODS
    assert answering_method(length, length + 1, season) == method
    assert answering_method(length, length, season) == "model"


@pytest.mark.parametrize("length", [1, 5, 23, 24, 30, 47, 100])
def test_points_are_the_m4_baselines(length):
    x = wave(length)
    found = fallback_forecast(x, H, M, method="seasonal_naive")
    expected = metrics.seasonal_naive([x], H, M) if length >= M else metrics.naive([x], H)
    np.testing.assert_array_equal(found.point, expected[0])
    if length < 2 * M:  # below two seasons the rule answers with exactly these baselines
        np.testing.assert_array_equal(fallback_forecast(x, H, M).point, expected[0])
        assert fallback_forecast(x, H, M).method == choose_method(length, M)
    naive2 = fallback_forecast(x, H, M, method="naive2")
    np.testing.assert_allclose(naive2.point, metrics.naive2([x], H, M)[0])


def test_bands_come_from_the_methods_own_errors_and_widen_with_the_horizon():
    x = wave(200)
    found = fallback_forecast(x, H, M, levels=(0.1, 0.5, 0.9), method="seasonal_naive")
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


# ------------------------------------------------------------------------------ seasonal blend


def blended(seasons: np.ndarray) -> np.ndarray:
    """The blend's next season from whole seasons ``[k, m]`` written out by hand (positive
    means: shapes are ratios to each season's mean)."""
    level = seasons.mean(axis=1, keepdims=True)
    shape = seasons / level
    return level[-1, 0] * ((1 - BLEND_WEIGHT) * shape[-1] + BLEND_WEIGHT * shape.mean(axis=0))


@pytest.mark.parametrize("seasons", [2, 3, 5, 9, 30])
@pytest.mark.parametrize("base", [100.0, -50.0])  # positive: ratios; negative mean: differences
def test_the_blend_repeats_a_perfectly_periodic_series_exactly(seasons, base):
    profile = base + 10 * np.sin(2 * np.pi * np.arange(M) / M) + np.arange(M) % 5
    found = fallback_forecast(np.tile(profile, seasons), H + 5, M)
    assert found.method == "seasonal_blend"
    np.testing.assert_allclose(found.point, np.resize(profile, H + 5), rtol=1e-12)


def test_the_blend_follows_a_level_shift_at_the_last_seasons_level():
    profile = 100 + 10 * np.sin(2 * np.pi * np.arange(M) / M)
    shifted = np.r_[np.tile(profile, 3), 2 * profile]  # the level doubles in the last season
    found = fallback_forecast(shifted, H, M)
    np.testing.assert_allclose(found.point, np.resize(2 * profile, H), rtol=1e-12)
    # The mean of the seasons lags behind the shift (a quarter of the way up); the blend does not.
    lagging = np.resize(np.mean(shifted.reshape(4, M), axis=0), H)
    assert np.abs(lagging - found.point).min() > 20
    additive = profile - 200  # means below zero: the shape is a difference from the level
    moved = np.r_[np.tile(additive, 3), additive + 30]
    np.testing.assert_allclose(fallback_forecast(moved, H, M).point, np.resize(additive + 30, H))


def test_the_blend_pulls_the_last_shape_a_quarter_toward_the_mean_shape():
    x = wave(3 * M + 7, seed=4)  # seven leading points: not a whole season, left out
    seasons = x[7:].reshape(3, M)
    found = fallback_forecast(x, H, M)
    np.testing.assert_allclose(found.point, np.resize(blended(seasons), H), rtol=1e-12)
    same_level = np.stack(
        [np.r_[np.ones(12), 3 * np.ones(12)], np.r_[3 * np.ones(12), np.ones(12)]]
    )
    # Two seasons of the same mean: a quarter of the mean shape (flat 2) and the rest the last one.
    two = fallback_forecast(same_level.ravel(), M, M).point
    np.testing.assert_allclose(two, 0.75 * same_level[1] + 0.25 * 2.0)
    assert BLEND_WEIGHT == 0.25


def test_the_blend_reads_at_most_its_cap_of_whole_seasons():
    x = wave((BLEND_SEASONS + 4) * M, seed=5)
    older = x.copy()
    older[: 4 * M] *= 3  # only seasons before the last BLEND_SEASONS change
    np.testing.assert_array_equal(
        fallback_forecast(x, H, M).point, fallback_forecast(older, H, M).point
    )
    np.testing.assert_allclose(
        fallback_forecast(x, H, M).point, np.resize(blended(x[4 * M :].reshape(-1, M)), H)
    )


def test_the_blends_bands_come_from_its_own_errors_and_grow_by_seasons_ahead():
    x = wave(2 * M, seed=6)
    found = fallback_forecast(x, 3 * M, M, levels=(0.1, 0.9))
    # Two seasons: the one error sample is the second season forecast from the first alone.
    errors = np.sort(np.abs(x[M:] - x[:M]))
    width = errors[int(np.ceil((M + 1) * 0.8)) - 1]
    for ahead in range(3):
        part = slice(ahead * M, (ahead + 1) * M)
        np.testing.assert_allclose(
            found.quantiles[0.9][part] - found.point[part], width * (ahead + 1)
        )
    np.testing.assert_allclose(
        found.point - found.quantiles[0.1], found.quantiles[0.9] - found.point
    )


def test_the_blends_first_season_band_covers_about_what_it_claims():
    inside = []
    for seed in range(100, 400):
        x = wave(4 * M + M, seed=seed)
        band = fallback_forecast(x[: 4 * M], M, M, levels=(0.1, 0.9)).quantiles
        inside.append((band[0.1] <= x[4 * M :]) & (x[4 * M :] <= band[0.9]))
    assert 0.74 < np.mean(inside) < 0.9


@pytest.mark.parametrize(
    ("length", "made_by"), [(10, "naive"), (24, "seasonal_naive"), (47, "seasonal_naive")]
)
def test_asking_for_the_blend_on_fewer_than_two_seasons_says_what_answered(length, made_by):
    x = wave(length)
    found = fallback_forecast(x, H, M, levels=(0.9,), method="seasonal_blend")
    assert found.method == made_by
    np.testing.assert_array_equal(found.point, fallback_forecast(x, H, M, method=made_by).point)


@pytest.mark.parametrize(
    "season",
    [np.r_[np.zeros(12), np.ones(12)], np.r_[-np.ones(12), np.ones(12)], np.zeros(M)],
)
def test_the_blend_of_series_with_zeros_and_negative_values_stays_finite(season):
    x = np.tile(season, 3)
    found = fallback_forecast(x, H, M, levels=(0.1, 0.9))
    assert found.method == "seasonal_blend"
    assert all(np.isfinite(a).all() for a in [found.point, *found.quantiles.values()])
    np.testing.assert_allclose(found.point, np.resize(season, H), atol=1e-12)  # periodic: exact
