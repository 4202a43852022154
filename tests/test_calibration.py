"""Calibration (issue 35): per-step conformal tables of scaled backtest errors, any level served,
stored in the manifest (format 3; older manifests load uncalibrated)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from forecaster import calibration
from forecaster.calibration import GRID, Calibration, conformal_table
from forecaster.configs import ModelConfig
from forecaster.model import init_params
from forecaster.predict import Forecast, Predictor
from forecaster.registry import load_model, save_model
from forecaster.registry.manifest import parse_manifest

TINY = ModelConfig(cell="gru", hidden=8, input_size=48, horizon=12, step=24)
LEVELS = (50.0, 80.0, 95.0)


def noise_series(n: int, length: int, seed: int) -> list[np.ndarray]:
    """Exchangeable series: a daily wave plus noise whose size differs from series to series."""
    rng = np.random.default_rng(seed)
    t = np.arange(length)
    return [
        100 + 10 * np.sin(2 * np.pi * t / 24 + rng.uniform(0, 6)) + rng.standard_t(5, length) * s
        for s in rng.uniform(0.5, 5.0, n)
    ]


def covered(y: np.ndarray, bands: dict[float, np.ndarray], level: float) -> float:
    lo, hi = calibration.level_quantiles([level])[0]
    return 100 * float(np.mean((y >= bands[lo]) & (y <= bands[hi])))


def test_conformal_quantiles_cover_fresh_exchangeable_errors_at_any_level():
    rng = np.random.default_rng(0)
    errors = rng.standard_t(4, (4000, 3)) * np.array([1.0, 2.0, 3.0])  # widens with the step
    table = conformal_table(errors)
    fresh = rng.standard_t(4, (40_000, 3)) * np.array([1.0, 2.0, 3.0])
    for level in (*LEVELS, 67.0):  # 67 is between the grid's probabilities
        lo, hi = calibration.level_quantiles([level])[0]
        bounds = table.at([lo, hi], 3)
        inside = (fresh >= bounds[0]) & (fresh <= bounds[1])
        for step in range(3):
            assert abs(100 * inside[:, step].mean() - level) < 1.5, (level, step)


def test_a_calibrated_model_covers_near_nominal_on_exchangeable_series():
    # A random (bad) network: calibration must make its intervals honest anyway.
    predictor = Predictor(TINY, init_params(TINY, 0))
    fit_on, held = noise_series(300, 120, 1), noise_series(300, 120, 2)
    cal = calibration.calibrate(predictor, fit_on, 24, origins=2)
    histories, y = [s[:-12] for s in held], np.stack([s[-12:] for s in held])
    probs = sorted(q for pair in calibration.level_quantiles(LEVELS) for q in pair)
    out = calibration.bands(cal, histories, predictor.predict(histories), probs)
    for level in LEVELS:
        assert abs(covered(y, out.quantiles, level) - level) < 3.0, level
    # Every step, not only overall: widths grow where the errors do.
    lo, hi = calibration.level_quantiles([80.0])[0]
    inside = (y >= out.quantiles[lo]) & (y <= out.quantiles[hi])
    assert np.all(np.abs(100 * inside.mean(axis=0) - 80) < 7.0)


def test_bands_are_ordered_by_probability_and_scaled_by_the_series():
    predictor = Predictor(TINY, init_params(TINY, 0))
    cal = calibration.calibrate(predictor, noise_series(60, 120, 3), 24, origins=2)
    rng = np.random.default_rng(0)
    calm = 100 + 10 * np.sin(np.arange(96) * 2 * np.pi / 24) + rng.normal(0, 1, 96)
    wild = 100 + 10 * np.sin(np.arange(96) * 2 * np.pi / 24) + rng.normal(0, 5, 96)
    probs = [0.025, 0.1, 0.37, 0.5, 0.9, 0.975]
    out = calibration.bands(cal, [calm, wild], predictor.predict([calm, wild]), probs)
    stacked = np.stack([out.quantiles[p] for p in probs])
    assert np.all(np.diff(stacked, axis=0) >= 0)
    width = out.quantiles[0.975] - out.quantiles[0.025]
    assert np.all(width[1] > 2 * width[0])
    constant = calibration.bands(
        cal, [np.full(96, 7.0)], Forecast(np.full((1, 12), 7.0), {}), probs
    )
    assert all(np.allclose(v, 7.0) for v in constant.quantiles.values())


def test_the_fallback_is_calibrated_per_method_and_covers_short_cuts():
    predictor = Predictor(TINY, init_params(TINY, 0))
    cal = calibration.calibrate(predictor, noise_series(300, 120, 4), 24, origins=2)
    assert set(cal.fallback) == {"naive", "seasonal_naive"}  # below min_input = 48
    held = noise_series(300, 120, 5)
    probs = sorted(q for pair in calibration.level_quantiles(LEVELS) for q in pair)
    for n in (12, 20, 30, 40):  # naive, naive, seasonal naive with one or more lag-24 errors
        made = [calibration.fallback_forecast(cal, s[-12 - n : -12], 12, 24, probs) for s in held]
        assert all(ok for _, ok in made)
        bands = {q: np.stack([f.quantiles[q] for f, _ in made]) for q in probs}
        y = np.stack([s[-12:] for s in held])
        for level in (80.0, 95.0):
            assert abs(covered(y, bands, level) - level) < 3.5, (n, level)
    # Without a calibration, the method's own bands, said to be uncalibrated.
    own, ok = calibration.fallback_forecast(None, held[0][:30], 12, 24, [0.1, 0.9])
    assert not ok and set(own.quantiles) == {0.1, 0.9}


def test_the_manifest_stores_the_calibration_and_older_ones_load_uncalibrated(tmp_path):
    predictor = Predictor(TINY, init_params(TINY, 0))
    cal = calibration.calibrate(predictor, noise_series(20, 120, 6), 24, origins=2)
    save_model(tmp_path / "m", TINY, init_params(TINY, 0), calibration=cal, seasonality=24)
    loaded = load_model(tmp_path / "m")
    assert loaded.manifest.format_version == 3
    assert loaded.manifest.calibration == cal
    raw = json.loads((tmp_path / "m" / "manifest.json").read_text())
    assert len(raw["calibration"]["model"]["values"]) == TINY.horizon
    assert len(raw["calibration"]["model"]["values"][0]) == len(GRID)
    older = {k: v for k, v in raw.items() if k != "calibration"} | {"format_version": 2}
    assert parse_manifest(json.dumps(older).encode()).calibration is None
    save_model(tmp_path / "plain", TINY, init_params(TINY, 0))
    assert load_model(tmp_path / "plain").manifest.calibration is None


def test_a_table_of_the_wrong_shape_is_refused():
    table = conformal_table(np.random.default_rng(0).normal(size=(50, 2)))
    Calibration(season=24, window=48, origins=1, stride=24, model=table)
    short = table.model_copy(update={"values": [row[:-1] for row in table.values]})
    with pytest.raises(ValueError, match="table row"):
        Calibration(season=24, window=48, origins=1, stride=24, model=short)


def test_an_uncalibrated_model_serves_the_levels_and_quantiles_its_heads_give() -> None:
    """The one rule of the service and the batch job: default levels it cannot give are left
    out, asked ones and quantiles refused naming their position and what is offered."""
    heads = (0.1, 0.5, 0.9)
    got = calibration.uncalibrated_intervals((80.0, 95.0), (0.5,), heads, levels_asked=False)
    assert got == ([80.0], [(0.1, 0.9)], [0.5])
    with pytest.raises(calibration.NotOffered) as caught:
        calibration.uncalibrated_intervals((80.0, 95.0), (), heads, levels_asked=True)
    assert (caught.value.field, caught.value.index) == ("levels", 1)
    assert str(caught.value) == (
        "level 95 needs the quantiles 0.025 and 0.975; the model is not calibrated and offers "
        "[0.1, 0.5, 0.9]"
    )
    with pytest.raises(calibration.NotOffered) as caught:
        calibration.uncalibrated_intervals((80.0,), (0.5, 0.3), heads, levels_asked=False)
    assert (caught.value.field, caught.value.index) == ("quantiles", 1)
    assert str(caught.value).startswith("quantile 0.3 is not offered")


def test_one_series_gets_enough_origins_for_an_80_band_inside_the_95_band() -> None:
    """Eight origins of one series gave 8 errors per step: the 10%/90% and 2.5%/97.5% quantiles
    were all the extremes, so the served 80% band was the 95% one (EPF, one series a market)."""
    predictor = Predictor(TINY, init_params(TINY, 0))
    (series,) = noise_series(1, 48 + 12 + 24 * 45, 3)
    cal = calibration.calibrate(predictor, [series], 24)  # the default origins, 8
    assert cal.origins == calibration.LEAST_ERRORS and cal.model.count >= 39
    (lo80, hi80), (lo95, hi95) = calibration.level_quantiles([80.0, 95.0])
    bounds = cal.model.at([lo95, lo80, hi80, hi95], 12)
    assert np.all(bounds[0] < bounds[1]) and np.all(bounds[2] < bounds[3])
    # Many series keep the origins asked for.
    assert calibration.origins_for(414, 8) == 8 and calibration.origins_for(3, 8) == 14
