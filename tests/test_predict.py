import dataclasses

import numpy as np
import pytest

from forecaster import classical
from forecaster.model import ModelConfig, init_params
from forecaster.predict import HistoryTooShort, Predictor, chunk_plans

CFG = ModelConfig(
    cell="gru", ensemble=1, hidden=8, input_size=48, step=24, horizon=6, quantiles=(0.1, 0.9)
)


@pytest.fixture(scope="module")
def predictor() -> Predictor:
    p = Predictor(CFG, init_params(CFG), batch_sizes=(1, 4))
    p.warmup()
    return p


def test_forecasts_have_requested_horizon_and_ordered_quantiles(predictor: Predictor) -> None:
    rng = np.random.default_rng(0)
    histories = [rng.uniform(10, 20, n) for n in (48, 60, 100, 49, 300, 55)]  # > largest batch
    f = predictor.predict(histories, horizon=4)
    assert f.point.shape == (6, 4)
    assert set(f.quantiles) == {0.1, 0.9}
    assert (f.quantiles[0.1] <= f.quantiles[0.9]).all()


def test_only_the_last_window_matters(predictor: Predictor) -> None:
    tail = np.linspace(1, 2, 48)
    a = predictor.predict([np.concatenate([np.full(100, 1e6), tail])]).point
    b = predictor.predict([tail]).point
    np.testing.assert_allclose(a, b)


def test_batching_does_not_change_results(predictor: Predictor) -> None:
    rng = np.random.default_rng(1)
    histories = [rng.uniform(1, 5, 48) for _ in range(5)]
    together = predictor.predict(histories).point
    alone = np.concatenate([predictor.predict([h]).point for h in histories])
    np.testing.assert_allclose(together, alone, rtol=1e-5)


@pytest.mark.parametrize("value", [0.0, 3.0, -2.0, 1e14])
def test_degenerate_series_give_finite_forecasts(predictor: Predictor, value: float) -> None:
    f = predictor.predict([np.full(48, value)])
    assert np.isfinite(f.point).all()
    assert all(np.isfinite(q).all() for q in f.quantiles.values())


def test_short_history_names_the_minimum(predictor: Predictor) -> None:
    with pytest.raises(HistoryTooShort, match="at least 48"):
        predictor.predict([np.ones(48), np.ones(10)])


@pytest.mark.parametrize("horizon", [0, 7])
def test_horizon_outside_the_model_range_is_refused(predictor: Predictor, horizon: int) -> None:
    with pytest.raises(ValueError, match="between 1 and 6"):
        predictor.predict([np.ones(48)], horizon=horizon)


MASKED = ModelConfig(
    cell="gru", ensemble=1, hidden=8, input_size=48, step=24, horizon=6, min_input=6
)


def test_a_masked_model_forecasts_short_histories_from_their_own_points() -> None:
    predictor = Predictor(MASKED, init_params(MASKED, 3), batch_sizes=(1, 4))
    short = np.linspace(10, 20, 10)
    alone = predictor.predict([short]).point
    # What lies before a short history never matters: it is padding, masked out.
    np.testing.assert_allclose(predictor.predict([short[-10:]]).point, alone)
    assert np.isfinite(alone).all() and alone.shape == (1, 6)
    # Same answer inside a batch of full and short histories.
    mixed = predictor.predict([np.linspace(1, 2, 48), short, np.linspace(5, 6, 30)]).point
    np.testing.assert_allclose(mixed[1], alone[0], rtol=1e-5)
    with pytest.raises(HistoryTooShort, match="at least 6"):
        predictor.predict([short[:5]])


def test_an_unmasked_model_needs_its_whole_window(predictor: Predictor) -> None:
    with pytest.raises(HistoryTooShort, match="needs at least 48"):
        predictor.predict([np.ones(47)])


def test_chunk_plans_cover_every_count_at_least_cost() -> None:
    sizes = (1, 4, 16, 64)
    # A CPU: a call costs about its rows, so padding 20 rows to 64 would cost 3x their work.
    cpu = chunk_plans(sizes, [1.0, 2.0, 6.0, 24.0])
    assert cpu[20] == (16, 4) and cpu[16] == (16,) and cpu[0] == ()
    assert all(sum(plan) >= n for n, plan in enumerate(cpu))
    # A GPU: every size costs the same, so one padded call.
    assert chunk_plans(sizes, [1.0, 1.0, 1.0, 1.0])[20] == (64,)
    # Equal costs go to fewer calls, then to the smaller size.
    assert chunk_plans(sizes, [1.0, 4.0, 16.0, 64.0])[20] == (16, 4)
    # A larger size timed faster than a smaller one is noise: the smaller one costs as little.
    assert chunk_plans(sizes, [3.0, 5.0, 4.0, 30.0])[3] == (4,)


def test_a_warmed_predictor_runs_costed_chunks_with_the_same_results(predictor: Predictor) -> None:
    rng = np.random.default_rng(2)
    histories = [rng.uniform(1, 5, 48) for _ in range(11)]  # more than the largest compiled size
    planned = predictor.predict(histories).point
    padded = Predictor(CFG, init_params(CFG), batch_sizes=(1, 4)).predict(histories).point
    np.testing.assert_allclose(planned, padded, rtol=1e-5)
    assert sum(predictor._chunk_sizes(11)) >= 11


@pytest.mark.parametrize(("theta_share", "damped_share"), [(0.25, 0.0), (0.2, 0.3), (0.0, 1.0)])
def test_classical_shares_blend_the_point_and_move_the_quantiles_with_it(
    theta_share: float, damped_share: float
) -> None:
    blended_cfg = dataclasses.replace(
        CFG, theta_weight=theta_share, damped_weight=damped_share, theta_season=24
    )
    params = init_params(CFG)
    rng = np.random.default_rng(3)
    histories = [50 + 5 * np.sin(np.arange(n) * np.pi / 12) + rng.normal(size=n) for n in (48, 97)]
    network = Predictor(CFG, params, batch_sizes=(1, 4)).predict(histories, horizon=5)
    blended = Predictor(blended_cfg, params, batch_sizes=(1, 4)).predict(histories, horizon=5)
    theta, damped = classical.theta(histories, 5, 24), classical.damped(histories, 5, 24)
    unchanged = 1.0 - theta_share - damped_share
    expected = unchanged * network.point + theta_share * theta + damped_share * damped
    np.testing.assert_allclose(blended.point, expected)
    shift = blended.point - network.point
    for q in CFG.quantiles:
        np.testing.assert_allclose(blended.quantiles[q], network.quantiles[q] + shift)


def test_models_differing_only_in_their_classical_shares_share_one_compiled_forward() -> None:
    from forecaster.predict import _forward

    cfg = dataclasses.replace(CFG, hidden=5)  # a shape no other test compiles
    params, windows = init_params(cfg), np.random.default_rng(4).uniform(1, 2, (1, 48))
    compiled = _forward._cache_size()
    for theta_share in (0.0, 0.2, 0.4):
        blended = dataclasses.replace(cfg, theta_weight=theta_share, theta_season=24)
        Predictor(blended, params, batch_sizes=(1,)).predict_windows(windows, np.array([48]))
    assert _forward._cache_size() - compiled == 1


@pytest.mark.parametrize("unit", [1e-20, 1e-300, 1e12])
@pytest.mark.parametrize("blended", [False, True], ids=["network", "blend"])
def test_forecasts_are_scale_free(predictor: Predictor, unit: float, blended: bool) -> None:
    # Below about 1e-16 every series got one near-zero forecast, labelled as the model's.
    t = np.arange(60.0)
    histories = [
        100 + 10 * np.sin(2 * np.pi * t / 24),
        np.where(t % 5 == 0, 0.0, 3 + np.cos(t)),  # zeros: the shifted scale
        np.sin(t / 3),  # signed
    ]
    if blended:
        config = dataclasses.replace(CFG, theta_weight=0.3, damped_weight=0.2, theta_season=24)
        predictor = Predictor(config, predictor._params, batch_sizes=(1, 4))
    plain = predictor.predict(histories)
    scaled = predictor.predict([unit * h for h in histories])
    np.testing.assert_allclose(scaled.point / unit, plain.point, rtol=1e-6)
    for q, band in plain.quantiles.items():
        np.testing.assert_allclose(scaled.quantiles[q] / unit, band, rtol=1e-6)


def test_a_short_series_whose_level_collapsed_is_forecast_near_its_level() -> None:
    """Issue 34 item 10: a short yearly history that rose for years and then collapsed. Theta
    and damped trend (here the whole forecast, as validation chooses on short yearly data) read
    the years of growth and forecast several times the last value; pulled toward Naive2 by the
    strength M3 Yearly's validation chose (4), the forecast's departure from the last value is
    cut by more than half and stays within a few times where the series now is."""
    cfg = ModelConfig(hidden=8, input_size=7, step=1, horizon=6, min_input=6,
                      quantiles=(0.1, 0.9))  # fmt: skip
    classical_only = dataclasses.replace(cfg, theta_weight=0.5, damped_weight=0.5)
    shrunk = dataclasses.replace(classical_only, naive_shrink=4.0)
    history = [np.array([2000.0, 3000, 4000, 5000, 6000, 7000, 8000, 9000, 10000, 900])]
    params = init_params(cfg)
    before = Predictor(classical_only, params, batch_sizes=(1,)).predict(history)
    after = Predictor(shrunk, params, batch_sizes=(1,)).predict(history)
    last = history[0][-1]
    assert before.point.min() > 8 * last  # what the blend alone serves
    assert (after.point < 3.5 * last).all() and (
        after.point - last < 0.4 * (before.point - last)
    ).all()
    assert (after.point >= last).all()  # pulled toward the level, not below it
    shift = after.point - before.point
    for q in cfg.quantiles:
        np.testing.assert_allclose(after.quantiles[q], before.quantiles[q] + shift)
    assert shrunk.method == "classical+naive" and classical_only.method == "classical"
