"""Serving calibrated bands cheaply (issue 35's cost goal): the table read once per model and its
interpolated rows kept, scales and quantiles computed for every series and level at once, and
still the same numbers as the per-request, per-series, per-level code they replaced (kept below
as the reference)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pytest

from forecaster import calibration, fallback, metrics
from forecaster.calibration import GRID, Calibration, Table
from forecaster.extend import widened
from forecaster.predict import Forecast

F64 = np.ndarray
SEASON, WINDOW, BLOCK = 24, 168, 12


# ------------------------------------------------------------------ the code before (reference)


def reference_at(table: Table, probs: Sequence[float], steps: int) -> F64:
    values = np.asarray(table.values, np.float64)
    grid = np.asarray(GRID)
    rows = values[np.minimum(np.arange(steps), len(values) - 1)]
    out = np.empty((len(probs), steps))
    for i, p in enumerate(probs):
        p = min(max(float(p), grid[0]), grid[-1])
        k = min(int(np.searchsorted(grid, p, side="right")) - 1, len(grid) - 2)
        w = (p - grid[k]) / (grid[k + 1] - grid[k])
        out[i] = (1 - w) * rows[:, k] + w * rows[:, k + 1]
    return out


def reference_scales(histories: Sequence[F64], season: int, window: int) -> F64:
    s = metrics.scale([np.asarray(h[-window:], np.float64) for h in histories], season)
    return np.nan_to_num(s, nan=0.0)


def reference_spread(
    table: Table, scale: F64, point: F64, probs: Sequence[float], block: int
) -> dict[float, F64]:
    h = point.shape[1]
    values = reference_at(table, probs, min(h, block))
    out = {}
    for i, q in enumerate(probs):
        d = np.zeros_like(point)
        d[:, : values.shape[1]] = scale[:, None] * values[i][None, :]
        out[float(q)] = point + d
    if h > block:
        out = widened(Forecast(point, out), block).quantiles
    return out


def reference_bands(
    cal: Calibration, histories: Sequence[F64], point: F64, probs: Sequence[float]
) -> dict[float, F64]:
    s = reference_scales(histories, cal.season, cal.window)
    return reference_spread(cal.model, s, point, probs, len(cal.model.values))


def reference_fallback(
    cal: Calibration, history: F64, horizon: int, probs: Sequence[float]
) -> dict[float, F64]:
    own = fallback.fallback_forecast(history, horizon, SEASON, probs)
    table = cal.fallback[own.method]
    lag = calibration._scale_lag(own.method, cal.season)
    s = reference_scales([np.asarray(history, np.float64)], lag, cal.window)
    qs = reference_spread(table, s, own.point[None, :], probs, len(table.values))
    return {q: v[0] for q, v in qs.items()}


# ------------------------------------------------------------------ fixtures


def random_table(rng: np.random.Generator, steps: int) -> Table:
    """Per-step quantiles of scaled errors: sorted along the grid, widening with the step."""
    rows = (
        np.sort(rng.standard_t(4, (steps, len(GRID))), axis=1) * np.linspace(1, 3, steps)[:, None]
    )
    return Table(count=100, values=[[float(f"{v:.5g}") for v in row] for row in rows])


@pytest.fixture(scope="module")
def cal() -> Calibration:
    rng = np.random.default_rng(7)
    tables = {m: random_table(rng, BLOCK) for m in ("naive", "seasonal_naive", "seasonal_blend")}
    return Calibration(
        season=SEASON, window=WINDOW, origins=2, stride=SEASON, model=random_table(rng, BLOCK),
        fallback=tables,  # type: ignore[arg-type]  # the keys are fallback methods
    )  # fmt: skip


def histories(rng: np.random.Generator) -> list[F64]:
    """Long and short, smooth, noisy, huge, constant (no scale) and seasonal-constant (lag-1
    scale) histories."""
    t = np.arange(400)
    wave = 100 + 10 * np.sin(2 * np.pi * t / SEASON)
    return [
        wave + rng.normal(0, 3, 400),
        (wave + rng.normal(0, 1, 400))[:200],
        1e9 * (2 + np.sin(t / 5))[:300],
        np.full(250, 7.0),
        np.tile(np.arange(SEASON, dtype=float), 10),  # seasonal naive is exact: lag-1 scale
        rng.lognormal(3, 1, 170),
    ]


LEVEL_SETS = {
    "default": [80.0, 95.0],
    "three": [50.0, 80.0, 95.0],
    "odd": [67.3, 99.9, 10.0],
}
QUANTILES = [0.0001, 0.013, 0.1, 0.5, 0.77, 0.9, 0.9999]


def probs_of(levels: Sequence[float], quantiles: Sequence[float] = ()) -> list[float]:
    pairs = calibration.level_quantiles(levels)
    return sorted({*quantiles, *(q for pair in pairs for q in pair)})


def assert_same(got: dict[float, F64], want: dict[float, F64]) -> None:
    assert list(got) == list(want)
    for q in want:
        np.testing.assert_allclose(got[q], want[q], rtol=1e-9, atol=1e-9, err_msg=str(q))


# ------------------------------------------------------------------ tests


@pytest.mark.parametrize("horizon", [BLOCK, 5, 3 * BLOCK + 4])  # in, under and beyond the table
@pytest.mark.parametrize("name", [*LEVEL_SETS, "quantiles"])
def test_bands_are_the_numbers_of_the_code_before(cal, name, horizon):
    rng = np.random.default_rng(1)
    hs = histories(rng)
    probs = probs_of(LEVEL_SETS.get(name, [80.0]), QUANTILES if name == "quantiles" else ())
    point = np.stack([h[-1] + rng.normal(0, 1, horizon).cumsum() for h in hs])
    want = reference_bands(cal, hs, point, probs)
    for _ in range(2):  # the first call fills the table's store, the second reads it
        assert_same(calibration.bands(cal, hs, Forecast(point, {}), probs).quantiles, want)
    for k in range(len(hs)):  # one series at a time, as most requests come
        one = calibration.bands(cal, [hs[k]], Forecast(point[k : k + 1], {}), probs)
        assert_same(one.quantiles, {q: v[k : k + 1] for q, v in want.items()})


def test_scales_are_the_numbers_of_the_code_before():
    rng = np.random.default_rng(2)
    hs = histories(rng)
    for season in (1, SEASON, 7):
        for window in (WINDOW, 48, 1000):  # every history whole, all cut, some shorter
            np.testing.assert_allclose(
                calibration.scales(hs, season, window),
                reference_scales(hs, season, window),
                rtol=1e-12,
                atol=0,
            )
    assert calibration.scales(hs, SEASON, WINDOW)[3] == 0.0  # constant: no width
    assert calibration.scales([np.array([3.0])], SEASON, WINDOW).tolist() == [0.0]


def test_scale_of_rows_is_scale_of_each_series():
    rng = np.random.default_rng(3)
    rows = np.vstack([rng.lognormal(2, 1, (5, 60)), np.full((1, 60), 4.0), np.tile([1.0, 2.0], 30)])
    for m in (1, 2, 12, 60, 80):  # 60 and beyond: too short for the season, lag 1
        np.testing.assert_array_equal(metrics.scale(rows, m), metrics.scale(list(rows), m))


@pytest.mark.parametrize("length", [2, 5, SEASON, 30, 2 * SEASON, 100])
@pytest.mark.parametrize("name", ["default", "odd"])
def test_calibrated_fallback_bands_are_the_numbers_of_the_code_before(cal, length, name):
    rng = np.random.default_rng(length)
    history = 50 + 5 * np.sin(2 * np.pi * np.arange(length) / SEASON) + rng.normal(0, 1, length)
    probs = probs_of(LEVEL_SETS[name], QUANTILES)
    for horizon in (BLOCK, 2 * BLOCK + 1):
        got, calibrated = calibration.fallback_forecast(cal, history, horizon, SEASON, probs)
        assert calibrated
        assert_same(got.quantiles, reference_fallback(cal, history, horizon, probs))


def test_a_table_reads_its_values_once_and_hands_out_rows_no_caller_can_change(cal):
    probs = probs_of([80.0, 95.0])
    first = cal.model.at(probs, BLOCK)
    assert cal.model.at(list(probs), BLOCK) is first  # kept, not recomputed per request
    with pytest.raises(ValueError):
        first[0, 0] = 1.0
    np.testing.assert_array_equal(first, reference_at(cal.model, probs, BLOCK))
    assert cal.model.at(probs, 3).shape == (4, 3)  # another horizon: its own rows


def test_kept_rows_stay_bounded_and_tables_compare_by_their_values():
    rng = np.random.default_rng(4)
    table = random_table(rng, 4)
    twin = Table.model_validate(table.model_dump())
    for k in range(200):  # levels adjusted online move a little at a time
        level = 80 + k / 100
        np.testing.assert_array_equal(
            table.at(probs_of([level]), 4), reference_at(table, probs_of([level]), 4)
        )
    assert len(table._derived.at) <= calibration._KEPT
    assert table == twin and twin == table  # what was asked of one does not make them differ
    other = random_table(rng, 4)
    other.at([0.5], 4)
    assert table != other
