"""The command line says what it chose before the long wait, and what it did not score (issue 34,
items 4 and 11): the derived settings in one line (and the manifest), help that says which
defaults come from the data, a compiling phase and a time left on the progress bar, and
evaluate's note on test points beyond the horizon."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd
import pytest

from forecaster.cli import build_parser, main
from forecaster.registry import load_model

DATA = Path(__file__).parents[1] / "data" / "hourly_long.csv"
SMALL = ["--cell", "gru", "--hidden", "8", "--input-size", "48", "--steps", "4", "--ensemble",
         "1"]  # fmt: skip


def help_of(command: str) -> dict[str, str]:
    sub = next(a for a in build_parser()._actions if a.dest == "command").choices[command]
    return {a.dest: a.help or "" for a in sub._actions}


def test_help_says_which_defaults_come_from_the_data() -> None:
    helps = help_of("train")
    for name in ("horizon", "steps", "seasonality", "input_size", "step", "eval_every"):
        assert "derived from the" in helps[name], name
    assert "default 48" not in helps["horizon"] and "default 12000" not in helps["steps"]
    assert "default 24" not in helps["seasonality"]


def test_train_says_what_it_derived_before_training_and_the_manifest_holds_it(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    out = tmp_path / "model"
    assert main(["train", "--data", str(DATA), *SMALL, "--no-progress", "--out", str(out)]) == 0
    err = capsys.readouterr().err.splitlines()
    [said] = [line for line in err if line.startswith("forecaster train: training with ")]
    manifest = load_model(out).manifest
    cfg, training = manifest.config, manifest.training or {}
    assert manifest.freq == "h"
    assert f"seasonality {training['seasonality']}, horizon {cfg.horizon}, " in said
    assert f"window {cfg.input_size} ({cfg.step} points a step)" in said
    assert f"{training['steps']} steps (validated every {training['eval_every']})" in said
    assert "given: --cell, --hidden, --input-size, --ensemble, --steps" in said
    assert (cfg.horizon, training["seasonality"]) == (48, 24)  # hourly, not given


def test_the_progress_bar_shows_compiling_then_the_time_left(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    argv = ["train", "--data", str(DATA), *SMALL, "--steps", "200", "--out", str(tmp_path / "m")]
    assert main(argv) == 0
    err = capsys.readouterr().err
    assert "train: compiling" in err
    # tqdm's "[elapsed<left, rate]" on the training phase, e.g. "[00:03<00:00, 61.2step/s"
    assert re.search(r"train: 100%.*\[\d\d:\d\d<\d\d:\d\d, ", err)
    assert err.index("train: compiling") < err.index("train: 100%")


def test_evaluate_rolls_forward_beyond_the_horizon_and_says_what_it_did_not_score(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """A test file longer than the model's horizon is scored whole, the model rolled forward on
    its own forecasts (issue 34, item 5); only beyond the limit of ten horizons is a point left
    unscored, and the note says so."""
    out = tmp_path / "model"
    tiny = [*SMALL, "--horizon", "3", "--no-progress"]  # limit: 30 steps
    assert main(["train", "--data", str(DATA), *tiny, "--out", str(out)]) == 0
    frame = pd.read_csv(DATA)
    for held, scored in ((12, 12), (36, 30)):
        last = frame.groupby("id").tail(held).index
        history, test = tmp_path / "history.csv", tmp_path / "test.csv"
        frame.drop(index=last).to_csv(history, index=False)
        frame.loc[last].to_csv(test, index=False)
        capsys.readouterr()
        argv = ["evaluate", "--model", str(out), "--data", str(history), "--test", str(test)]
        assert main(argv) == 0
        captured = capsys.readouterr()
        line = json.loads(captured.out)
        assert (line["horizon"], line["extended"]) == (scored, True)
        assert "forecaster evaluate: data: long (ids 'id', timestamps 'timestamp', values " in (
            captured.err
        )
        assert (
            f"note: the model forecasts 3 steps at once; the {scored} scored are made by rolling "
            "it forward on its own forecasts" in captured.err
        )
        unscored = (
            "note: scoring the first 30 points of each test series (the most this model "
            "forecasts, up to 10 times the trained horizon and at most 1,000 steps); the test "
            "file holds up to 36 a series, the rest are not scored"
        )
        assert (unscored in captured.err) == (held > 30)
