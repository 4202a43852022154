"""forecaster.extend: a model rolled forward on its own forecasts beyond its trained horizon
(issue 34, item 5), the widening of its later intervals, and the bound on the asked horizon."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from forecaster import extend
from forecaster.horizons import MAX_BLOCKS, MAX_STEPS, horizon_limit, horizon_problem
from forecaster.model import ModelConfig, init_params
from forecaster.predict import Forecast, Predictor, score_model

CONFIG = ModelConfig(
    ensemble=1, cell="gru", hidden=8, input_size=48, horizon=6, step=24, quantiles=(0.1, 0.5, 0.9)
)
BLENDED = dataclasses.replace(CONFIG, theta_weight=0.3, damped_weight=0.3, theta_season=24)


def histories(n: int = 3) -> list[np.ndarray]:
    t = np.arange(96)
    return [50 + 10 * np.sin(2 * np.pi * t / 24) + i * t * 0.1 for i in range(n)]


@pytest.mark.parametrize("config", [CONFIG, BLENDED], ids=["network", "blended"])
def test_rolled_forward_the_first_block_is_the_plain_forecast(config: ModelConfig) -> None:
    predictor = Predictor(config, init_params(config, 0), batch_sizes=(1, 4))
    plain = predictor.predict(histories())
    out = extend.forecast(predictor, histories(), 20)
    assert out.point.shape == (3, 20) and all(v.shape == (3, 20) for v in out.quantiles.values())
    np.testing.assert_allclose(out.point[:, :6], plain.point, rtol=1e-6)
    for q, band in plain.quantiles.items():
        np.testing.assert_allclose(out.quantiles[q][:, :6], band, rtol=1e-6)
    if not config.blended:  # the second block: the network reading its first one
        grown = [np.concatenate(p) for p in zip(histories(), plain.point, strict=True)]
        np.testing.assert_allclose(out.point[:, 6:12], predictor.predict(grown).point, rtol=1e-5)
    # Up to the trained horizon nothing is rolled.
    np.testing.assert_allclose(extend.forecast(predictor, histories(), 4).point, plain.point[:, :4])


def test_score_model_scores_a_longer_hold_out_rolled_forward() -> None:
    predictor = Predictor(CONFIG, init_params(CONFIG, 0), batch_sizes=(1, 4))
    targets = np.ones((3, 15))
    forecast, scores = score_model(predictor, histories(), targets, 24)
    assert forecast.point.shape == (3, 15) and np.isfinite(scores["smape"])


def test_the_asked_horizon_is_bounded() -> None:
    assert horizon_limit(6) == 6 * MAX_BLOCKS
    assert horizon_limit(200) == MAX_STEPS and horizon_limit(5000) == 5000
    assert horizon_problem(60, 6) is None
    assert "limit of 60" in (horizon_problem(61, 6) or "")
    predictor = Predictor(CONFIG, init_params(CONFIG, 0), batch_sizes=(1, 4))
    with pytest.raises(ValueError, match="limit of 60"):
        extend.forecast(predictor, histories(), 61)


def test_later_intervals_grow_at_least_like_a_random_walk_of_blocks() -> None:
    # The network's own later bands are as narrow as its first (conditional on it): widened.
    point = np.zeros((1, 9))
    d = np.array([[1.0, 2.0, 3.0] * 3])
    out = extend.widened(Forecast(point, {0.1: -d, 0.5: point, 0.9: d}), block=3)
    expected = np.sqrt(np.array([0, 0, 0, 1, 1, 1, 2, 2, 2]) * 9 + np.tile([1, 4, 9], 3))
    np.testing.assert_allclose(out.quantiles[0.9][0], expected)
    np.testing.assert_allclose(out.quantiles[0.1][0], -expected)
    np.testing.assert_array_equal(out.quantiles[0.5], point)
    # Wider own bands are kept, and never narrow a block later at the same position.
    wide = d.copy()
    wide[0, 3] = 50.0
    out = extend.widened(Forecast(point, {0.9: wide}), block=3)
    assert out.quantiles[0.9][0, 3] == 50.0 and out.quantiles[0.9][0, 6] == 50.0


def test_a_roll_hands_out_pending_histories_until_the_horizon_is_covered() -> None:
    roll = extend.Roll([np.arange(5.0)], horizon=5, block=2)
    seen = []
    while (pending := roll.pending()) is not None:
        seen.append(len(pending[0]))
        step = np.full((1, 2), float(len(seen)))
        roll.add(Forecast(step, {}))
    assert seen == [5, 7, 9] and roll.extended
    np.testing.assert_array_equal(roll.network().point, [[1, 1, 2, 2, 3]])
