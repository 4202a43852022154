"""Gaps in training data: the serving policy (short gaps interpolated, a long gap cuts the
history) applied when training, every gap reported in one line, ``--max-gap`` on the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import jax
import numpy as np
import pandas as pd
import pytest

from forecaster.cli import main
from forecaster.configs import TrainConfig
from forecaster.data import SeriesSet, series_from_frame, train_val_split
from forecaster.frequency import Calendar, calendar
from forecaster.histories import clean_history
from forecaster.model import ModelConfig
from forecaster.registry import load_model
from forecaster.train import WindowSampler, fit

# co2's weekly record misses runs of 4, 5, 8 and 18 weeks.
GAPS = {60: 4, 140: 5, 220: 8, 300: 18}
FLAGS = ["--cell", "gru", "--hidden", "4", "--ensemble", "1", "--steps", "20", "--eval-every",
         "10", "--theta-weights", "0", "--no-progress"]  # fmt: skip


def co2_like(length: int = 520) -> pd.DataFrame:
    """A weekly series with a trend and a yearly cycle, rows missing at ``GAPS``."""
    t = np.arange(length)
    values = 315 + 0.03 * t + 3 * np.sin(2 * np.pi * t / 52)
    stamps = pd.date_range("1958-03-29", periods=length, freq="W-SAT")
    keep = np.ones(length, bool)
    for start, missing in GAPS.items():
        keep[start : start + missing] = False
    return pd.DataFrame({"id": "co2", "timestamp": stamps[keep], "value": values[keep]})


def test_the_loader_cuts_where_a_forecast_would(tmp_path: Path) -> None:
    frame = co2_like()
    series = series_from_frame(frame)
    assert [(g.missing, g.cut) for g in series.gaps] == [(m, True) for m in GAPS.values()]
    # Skipped weeks hide the weekday from pandas: the step is a week all the same, and the
    # defaults are weekly ones (a year's season, a quarter's horizon), not those of no calendar.
    assert series.freq == "7D" and calendar(series.freq) == Calendar("7D", (52,), 13)
    assert [s.size for s in series.before_gaps["co2"]] == [60, 76, 75, 72]
    # The service's reading of the same history (a skipped stamp is a missing point).
    on_grid = np.full(520, np.nan)
    kept = np.ones(520, bool)
    for start, missing in GAPS.items():
        kept[start : start + missing] = False
    on_grid[kept] = frame["value"].to_numpy()
    np.testing.assert_array_equal(clean_history(on_grid).values, series["co2"])
    # A hold-out (validation, retraining's backtest) takes the last points; the segments
    # before the gaps are all past, and stay training material.
    train, _ = train_val_split(series, 13)
    assert train.gaps == series.gaps
    assert [p.tolist() for p in train.before_gaps["co2"]] == [
        p.tolist() for p in series.before_gaps["co2"]
    ]
    wider = series_from_frame(frame, max_gap=8)
    assert [(g.missing, g.cut) for g in wider.gaps] == [(4, False), (5, False), (8, False),
                                                        (18, True)]  # fmt: skip
    assert len(wider.before_gaps["co2"]) == 1


def test_training_reads_every_segment_and_no_window_spans_a_gap() -> None:
    # The last segment alone is just long enough to validate on: the windows come from before.
    cfg = ModelConfig(ensemble=1, cell="gru", hidden=4, input_size=24, step=12, horizon=6)
    earlier = [1000.0 + np.arange(100.0), 2000.0 + np.arange(50.0)]
    series = SeriesSet(["a"], [5000.0 + np.arange(30.0)], before_gaps={"a": earlier})
    result = fit(series, cfg, TrainConfig(steps=4, eval_every=2, batch_size=8), progress=False)
    assert np.isfinite(result.val_metrics["owa"])
    values = [*series.values, *earlier]
    sampler = WindowSampler.from_series(values, 24, 6, held_out=[6, 0, 0])
    batch = sampler.sample(jax.random.key(0), (1, 512))
    whole = np.concatenate([batch["x"], batch["y"]], axis=-1).reshape(-1, 30)
    np.testing.assert_array_equal(np.diff(whole, axis=-1), 1.0)  # contiguous: no gap inside
    starts = set((whole[:, 0] // 1000).astype(int).tolist())
    assert starts == {1, 2}  # the last segment's only window ends in its validation points
    assert int(WindowSampler.from_series(values, 24, 6).count) == int(sampler.count) + 1


def test_train_goes_past_long_gaps_and_reports_each_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    # It stopped at the first: "gap of 4 missing values ... is longer than max_gap=3".
    data = tmp_path / "co2.csv"
    co2_like().to_csv(data, index=False)
    out = tmp_path / "model"
    assert main(["train", "--data", str(data), *FLAGS, "--out", str(out)]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out)["validation"]["owa"] > 0
    notes = [line for line in captured.err.splitlines() if "gap(s)" in line]
    assert len(notes) == 1, captured.err
    assert "4 gap(s) of missing points in 1 series: 0 interpolated, 4 longer" in notes[0]
    for missing in GAPS.values():
        assert f": {missing} cut" in notes[0]
    assert load_model(out).manifest.training["max_gap"] == 3

    wider = tmp_path / "wider"
    assert main(["train", "--data", str(data), *FLAGS, "--max-gap", "8", "--out", str(wider)]) == 0
    note = next(line for line in capsys.readouterr().err.splitlines() if "gap(s)" in line)
    assert "3 interpolated, 1 longer than max_gap cut" in note
    assert load_model(wider).manifest.training["max_gap"] == 8
