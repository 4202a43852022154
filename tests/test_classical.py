"""Theta, damped trend, and the choice of their share in the forecast (forecaster.classical)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from forecaster import classical, metrics


def test_a_straight_line_keeps_its_last_value_and_half_its_slope() -> None:
    """Theta's signature: SES follows a noiseless line exactly (weight 1), and the drift is half
    the line's slope."""
    x = 10.0 + 2.0 * np.arange(30)
    forecast = classical.theta([x], 5, 1)[0]
    np.testing.assert_allclose(forecast, x[-1] + 1.0 * np.arange(1, 6))


def test_a_constant_series_forecasts_its_constant() -> None:
    np.testing.assert_allclose(classical.theta([np.full(12, 7.5)], 4, 1), 7.5)


def test_a_seasonal_series_keeps_its_seasonal_shape() -> None:
    pattern = np.array([0.8, 1.0, 1.3, 0.9])
    x = 100.0 * np.tile(pattern, 10)
    forecast = classical.theta([x], 8, 4)[0]
    np.testing.assert_allclose(forecast / forecast.mean(), np.tile(pattern, 2), rtol=1e-6)


def test_a_series_that_is_not_positive_is_not_seasonally_adjusted() -> None:
    """Multiplicative indices make no sense through zero: the series is smoothed as it is."""
    x = np.tile([-1.0, 1.0], 12)
    both = classical.forecasts([x], 4, 2, ["theta", "damped"])
    assert all(np.isfinite(f).all() for f in both.values())


def test_damped_trend_follows_a_line_with_a_trend_that_dies_away() -> None:
    x = 10.0 + 2.0 * np.arange(30)
    forecast = classical.damped([x], 12, 1)[0]
    steps = np.diff(np.concatenate([[x[-1]], forecast]))
    assert steps[0] == pytest.approx(2.0, rel=0.05)  # the slope goes on at first...
    assert (np.diff(steps) < 0).all() and (steps > 0).all()  # ...damped at every step


def test_damped_trend_keeps_a_constant_and_a_season() -> None:
    np.testing.assert_allclose(classical.damped([np.full(12, 7.5)], 4, 1), 7.5)
    np.testing.assert_allclose(classical.damped([np.full(12, 1e300)], 4, 1), 1e300)
    pattern = np.array([0.8, 1.0, 1.3, 0.9])
    forecast = classical.damped([100.0 * np.tile(pattern, 10)], 8, 4)[0]
    np.testing.assert_allclose(forecast / forecast.mean(), np.tile(pattern, 2), rtol=1e-6)


def test_damped_trend_is_the_least_squares_fit_over_its_grid() -> None:
    """Against a plain loop: for every grid setting, the one-step errors of the best initial
    level and trend (found by lstsq on the errors' linear dependence on them); the setting with
    the least squared error forecasts what ``damped`` does."""
    rng = np.random.default_rng(4)
    x = 50 + 0.5 * np.arange(25) + np.cumsum(rng.normal(size=25))

    def run(a: float, b: float, p: float, level: float, trend: float) -> tuple[np.ndarray, tuple]:
        errors = []
        for v in x:
            e = v - level - p * trend
            errors.append(e)
            level, trend = level + p * trend + a * e, p * trend + b * e
        return np.array(errors), (level, trend)

    best = None
    for a, b, p in classical.DAMPED_GRID:
        base = run(a, b, p, 0.0, 0.0)[0]
        design = np.stack([run(a, b, p, *s)[0] - base for s in ((1, 0), (0, 1))], axis=1)
        start = np.linalg.lstsq(design, -base, rcond=None)[0]
        errors, (level, trend) = run(a, b, p, *start)
        if best is None or errors @ errors < best[0]:
            best = errors @ errors, level, trend, p
    _, level, trend, p = best
    expected = level + trend * np.cumsum(p ** np.arange(1, 6))
    np.testing.assert_allclose(classical.damped([x], 5, 1)[0], expected, rtol=1e-6)


def test_damped_trend_reads_a_long_series_last_points_only() -> None:
    rng = np.random.default_rng(5)
    x = 500 + np.cumsum(rng.normal(size=classical.DAMPED_HISTORY + 300))
    tail = x[-classical.DAMPED_HISTORY :]
    np.testing.assert_array_equal(classical.damped([x], 6, 1), classical.damped([tail], 6, 1))
    assert not np.array_equal(classical.damped([x], 6, 1), classical.damped([tail[1:]], 6, 1))


def test_damped_trend_of_fewer_than_three_points_is_the_last_value() -> None:
    forecast = classical.damped([np.array([4.0]), np.array([1.0, 3.0])], 3, 1)
    np.testing.assert_allclose(forecast, [[4.0] * 3, [3.0] * 3])


@pytest.mark.parametrize("method", ["theta", "damped"])
def test_series_of_different_lengths_are_forecast_as_if_alone(method: str) -> None:
    rng = np.random.default_rng(0)
    lengths = (9, 40, 1, 23, 2, 3)
    histories = [rng.uniform(50, 60, n) * (1 + 0.1 * np.arange(n) % 4) for n in lengths]
    together = classical.forecasts(histories, 6, 4, [method])[method]
    alone = np.concatenate([classical.forecasts([h], 6, 4, [method])[method] for h in histories])
    np.testing.assert_allclose(together, alone)
    assert np.isfinite(together).all()


def test_the_smoothing_weight_and_initial_level_are_the_least_squares_ones() -> None:
    rng = np.random.default_rng(1)
    x = 100 + np.cumsum(rng.normal(size=60))  # a random walk: SES weight near 1

    def run(a: float, l0: float) -> tuple[float, float]:
        """(one-step squared errors, final level) of SES from level ``l0``."""
        level, total = l0, 0.0
        for v in x:
            total += (v - level) ** 2
            level += a * (v - level)
        return total, level

    def best_l0(a: float) -> float:  # the errors are quadratic in l0: three points fix them
        s = [run(a, l0)[0] for l0 in (-1.0, 0.0, 1.0)]
        return (s[0] - s[2]) / (2 * (s[0] - 2 * s[1] + s[2]))

    level, alpha, _ = classical._ses([x])
    least = min(run(float(a), best_l0(float(a)))[0] for a in classical.ALPHAS)
    chosen = float(alpha[0])
    assert run(chosen, best_l0(chosen))[0] == pytest.approx(least)
    assert level[0] == pytest.approx(run(chosen, best_l0(chosen))[1])
    assert chosen > 0.5


def test_choose_weight_follows_validation() -> None:
    rng = np.random.default_rng(2)
    histories = [100 + 5 * np.arange(20) + rng.normal(size=20) for _ in range(8)]
    targets = np.stack([h[-1] + 5 * np.arange(1, 5) for h in histories])
    candidates = (0.0, 0.25, 0.5)
    weight, owa = classical.choose_weight(histories, targets, targets, 1, candidates)
    assert weight == 0.0 and owa[0.0] == 0.0  # a perfect network needs no help
    bad = targets + 40.0  # far too high: the classical (lower) forecasts pull it back
    weight, owa = classical.choose_weight(histories, targets, bad, 1, candidates)
    assert weight == 0.5 and owa[0.5] < owa[0.25] < owa[0.0]
    mean = (classical.theta(histories, 4, 1) + classical.damped(histories, 4, 1)) / 2
    blended = bad + 0.5 * (mean - bad)
    assert owa[0.5] == pytest.approx(metrics.score(histories, targets, blended, 1)["owa"])


def test_undefined_scores_never_win() -> None:
    """Constant series: Naive2 is exact, so OWA is undefined for every weight: the network
    alone."""
    histories = [np.full(12, 5.0) for _ in range(3)]
    targets = np.full((3, 4), 5.0)
    weight, owa = classical.choose_weight(histories, targets, targets + 1.0, 1, (0.0, 0.5, 1.0))
    assert weight == 0.0 and not any(np.isfinite(v) for v in owa.values())


@settings(max_examples=60, deadline=None)
@given(
    histories=st.lists(
        st.lists(st.floats(-1e300, 1e300), min_size=1, max_size=60),
        min_size=1,
        max_size=4,
    ),
    horizon=st.integers(1, 10),
    m=st.sampled_from([1, 4, 12]),
)
def test_any_finite_histories_get_finite_forecasts(
    histories: list[list[float]], horizon: int, m: int
) -> None:
    """Any scale, tiny or huge: the methods fit each series divided by its largest magnitude."""
    series = [np.array(h) for h in histories]
    for forecast in classical.forecasts(series, horizon, m, ["theta", "damped"]).values():
        assert forecast.shape == (len(series), horizon)
        assert np.isfinite(forecast).all()


def test_volatility_is_the_spread_of_seasonal_changes_over_the_level() -> None:
    line, wave = 10.0 + 2.0 * np.arange(20), 100.0 * np.tile([0.8, 1.0, 1.3, 0.9], 5)
    jumpy = np.array([1000.0, 4000, 1500, 5000, 900, 4500, 1200, 300])
    v = classical.volatility([np.full(9, 3.0), line, wave, jumpy, np.zeros(5), np.ones(1)], 4)
    # A constant, a line (its yearly changes are all equal), a pure season: nothing to doubt.
    np.testing.assert_allclose(v[[0, 1, 2, 4, 5]], 0.0, atol=1e-12)
    assert v[3] > 0.5
    assert classical.volatility([wave], 1)[0] > 0.1  # at lag 1 the season reads as noise


def test_toward_naive_keeps_smooth_series_and_pulls_volatile_ones() -> None:
    smooth = 100.0 + 5 * np.arange(12)
    collapsed = np.array([3000.0, 4000, 5000, 6000, 7000, 8000, 9000, 800])
    histories = [smooth, collapsed]
    runaway = np.array([[160.0, 165, 170], [9500, 9800, 10100]])
    naive2 = classical.forecasts(histories, 3, 1, ("naive2",))["naive2"]
    np.testing.assert_allclose(naive2, [[155.0] * 3, [800.0] * 3])
    pulled = classical.toward_naive(histories, runaway, naive2, 1, 4.0)
    np.testing.assert_allclose(pulled[0], runaway[0])  # a straight line keeps its trend
    keep = 1 / (1 + 4.0 * classical.volatility([collapsed], 1)[0])
    np.testing.assert_allclose(pulled[1], 800 + keep * (runaway[1] - 800))
    assert (pulled[1] - 800 < 0.3 * (runaway[1] - 800)).all()  # the departure cut by 70%


def test_choose_shrink_keeps_the_strongest_pull_validation_cannot_tell_from_the_best() -> None:
    rng = np.random.default_rng(5)
    candidates = (0.0, 1.0, 4.0)
    # Volatile series whose level stays where it last was: a runaway forecast is pulled back.
    histories = [rng.uniform(500, 1500, 10) for _ in range(6)]
    targets = np.stack([np.full(4, h[-1]) for h in histories]) * rng.uniform(0.9, 1.1, (6, 4))
    runaway = targets * 3.0
    strength, owa = classical.choose_shrink(histories, targets, runaway, 1, candidates)
    assert strength == 4.0 and owa[4.0] < owa[1.0] < owa[0.0]
    # Noisy trends that go on: the network's forecast is right and Naive2 far behind.
    histories = [100 + 20 * np.arange(20) + rng.normal(0, 20, 20) for _ in range(6)]
    targets = np.stack([h[-1] + 20 * np.arange(1, 5) for h in histories])
    strength, owa = classical.choose_shrink(histories, targets, targets, 1, candidates)
    assert strength == 0.0 and owa[0.0] == 0.0
    # Where the candidates score within SHRINK_TOLERANCE of each other (nearly smooth series:
    # the pull barely moves them), the strongest wins.
    histories = [100 + 20 * np.arange(20) + rng.normal(0, 1e-3, 20) for _ in range(6)]
    targets = np.stack([h[-1] + 20 * np.arange(1, 5) for h in histories])
    off = targets * rng.uniform(0.95, 1.05, targets.shape)
    strength, owa = classical.choose_shrink(histories, targets, off, 1, candidates)
    assert max(owa.values()) <= min(owa.values()) * (1 + classical.SHRINK_TOLERANCE)
    assert strength == 4.0


def test_choose_shrink_with_undefined_scores_is_none() -> None:
    histories = [np.full(12, 5.0) for _ in range(3)]
    targets = np.full((3, 4), 5.0)
    strength, owa = classical.choose_shrink(histories, targets, targets + 1.0, 1, (0.0, 2.0))
    assert strength == 0.0 and not any(np.isfinite(v) for v in owa.values())
