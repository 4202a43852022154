"""The Theta method and the choice of its share in the forecast (forecaster.theta)."""

from __future__ import annotations

import numpy as np
import pytest

from forecaster import metrics, theta


def test_a_straight_line_keeps_its_last_value_and_half_its_slope() -> None:
    """Theta's signature: SES follows a noiseless line exactly (weight 1), and the drift is half
    the line's slope."""
    x = 10.0 + 2.0 * np.arange(30)
    forecast = theta.theta([x], 5, 1)[0]
    np.testing.assert_allclose(forecast, x[-1] + 1.0 * np.arange(1, 6))


def test_a_constant_series_forecasts_its_constant() -> None:
    np.testing.assert_allclose(theta.theta([np.full(12, 7.5)], 4, 1), 7.5)


def test_a_seasonal_series_keeps_its_seasonal_shape() -> None:
    pattern = np.array([0.8, 1.0, 1.3, 0.9])
    x = 100.0 * np.tile(pattern, 10)
    forecast = theta.theta([x], 8, 4)[0]
    np.testing.assert_allclose(forecast / forecast.mean(), np.tile(pattern, 2), rtol=1e-6)


def test_a_series_that_is_not_positive_is_not_seasonally_adjusted() -> None:
    """Multiplicative indices make no sense through zero: the series is smoothed as it is."""
    x = np.tile([-1.0, 1.0], 12)
    assert np.isfinite(theta.theta([x], 4, 2)).all()


def test_series_of_different_lengths_are_forecast_as_if_alone() -> None:
    rng = np.random.default_rng(0)
    histories = [rng.uniform(50, 60, n) * (1 + 0.1 * np.arange(n) % 4) for n in (9, 40, 1, 23)]
    together = theta.theta(histories, 6, 4)
    alone = np.concatenate([theta.theta([h], 6, 4) for h in histories])
    np.testing.assert_allclose(together, alone)


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

    level, alpha = theta._ses([x])
    least = min(run(float(a), best_l0(float(a)))[0] for a in theta.ALPHAS)
    chosen = float(alpha[0])
    assert run(chosen, best_l0(chosen))[0] == pytest.approx(least)
    assert level[0] == pytest.approx(run(chosen, best_l0(chosen))[1])
    assert chosen > 0.5


def test_choose_weight_follows_validation() -> None:
    rng = np.random.default_rng(2)
    histories = [100 + 5 * np.arange(20) + rng.normal(size=20) for _ in range(8)]
    targets = np.stack([h[-1] + 5 * np.arange(1, 5) for h in histories])
    candidates = (0.0, 0.25, 0.5)
    weight, owa = theta.choose_weight(histories, targets, targets, 1, candidates)
    assert weight == 0.0 and owa[0.0] == 0.0  # a perfect network needs no help
    bad = targets + 40.0  # far too high: Theta's (lower) forecasts pull it back
    weight, owa = theta.choose_weight(histories, targets, bad, 1, candidates)
    assert weight == 0.5 and owa[0.5] < owa[0.25] < owa[0.0]
    classical = theta.theta(histories, 4, 1)
    blended = bad + 0.5 * (classical - bad)
    assert owa[0.5] == pytest.approx(metrics.score(histories, targets, blended, 1)["owa"])


def test_undefined_scores_never_win() -> None:
    """Constant series: Naive2 is exact, so OWA is undefined for every weight: the network
    alone."""
    histories = [np.full(12, 5.0) for _ in range(3)]
    targets = np.full((3, 4), 5.0)
    weight, owa = theta.choose_weight(histories, targets, targets + 1.0, 1, (0.0, 0.5, 1.0))
    assert weight == 0.0 and not any(np.isfinite(v) for v in owa.values())
