"""Retraining a covariate model: the covariates the champion's manifest names are read from the
new data, the challenger keeps the champion's set unless the job allows a change, and the
backtest forecasts both models with their covariates."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from forecaster import data
from forecaster.cli import main
from forecaster.covariates import series_inputs
from forecaster.predict import Predictor
from forecaster.registry import Registry
from forecaster.retrain.report import REPORT
from tests.test_covariates import driven_frame

HORIZON = 6
FLAGS = ["--cell", "gru", "--ensemble", "1", "--hidden", "8", "--input-size", "24",
         "--horizon", str(HORIZON), "--steps", "60", "--batch-size", "16", "--eval-every", "60",
         "--warmup-steps", "5", "--no-progress"]  # fmt: skip


@pytest.fixture(autouse=True)
def _no_reexec(monkeypatch: pytest.MonkeyPatch) -> None:
    # The CLI re-executes itself with tcmalloc preloaded; in-process calls must not.
    monkeypatch.setenv("FORECASTER_NO_TCMALLOC", "1")


def retrain(capsys: pytest.CaptureFixture, csv: Path, root: Path, *extra: str) -> tuple[int, str]:
    code = main(["retrain", "--data", str(csv), "--registry", str(root), "--name", "driven",
                 *FLAGS, *extra])  # fmt: skip
    return code, capsys.readouterr().err


def report_of(root: Path, version: int) -> dict:
    return json.loads((Path(Registry(root).path("driven", version)) / REPORT).read_text())


def test_a_covariate_model_is_retrained_with_its_covariates(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    root = tmp_path / "registry"
    first, later = tmp_path / "first.csv", tmp_path / "later.csv"
    driven_frame(seed=0, hours=24 * 8).to_csv(first, index=False)
    frame = driven_frame(seed=1, hours=24 * 9)
    frame.to_csv(later, index=False)

    # The first version: the covariates named by the job.
    code, err = retrain(capsys, first, root, "--future-covariates", "x", "--static-covariates",
                        "region", "--holidays", "US")  # fmt: skip
    assert code == 0, err
    champion = Registry(root).load("driven")
    assert champion.covariates.described() == (
        "future: x; static: region; calendar: hour, weekday, yearday, holidays US"
    )

    # The next job names none: the champion's columns are read from the new data and kept.
    code, err = retrain(capsys, later, root, "--promote", "always")
    assert code == 0, err
    challenger = Registry(root).load("driven", 2)
    assert challenger.covariates.reads() == champion.covariates.reads()
    report = report_of(root, 2)
    assert "covariates" not in report["challenger"]["changes_from_champion"]
    assert report["champion"]["metrics"] is not None
    # The backtest forecast the hold-out with the horizon's covariates: its MAE is the one of
    # the model given them.
    series = data.series_from_frame(frame, future_covariates=["x"], static_covariates=["region"])
    train, targets = data.train_val_split(series, HORIZON)
    ahead = {"x": [v[-HORIZON:] for v in series.covariates.future["x"]]}
    inputs = series_inputs(len(train), train.covariates, train.end, ahead)
    predictor = Predictor(challenger.config, challenger.params, covariates=challenger.covariates)
    point = predictor.predict(train.values, inputs=inputs).point
    mae = float(np.mean(np.abs(point - targets)))
    assert report["challenger"]["metrics"]["mae"] == pytest.approx(mae, rel=1e-4)

    # New data without a covariate the model reads: one line naming it; production unmoved.
    frame.drop(columns="x").to_csv(later, index=False)
    code, err = retrain(capsys, later, root)
    assert code == 1 and "Traceback" not in err
    (line,) = [ln for ln in err.splitlines() if "error" in ln]
    assert "future covariate column 'x' is not in the file" in line
    assert Registry(root).alias("driven") == 2

    # Other columns, or another calendar, change what clients send: refused unless allowed.
    frame.to_csv(later, index=False)
    for change in (["--past-covariates", "load"], ["--no-calendar"], ["--holidays", "DE"]):
        code, err = retrain(capsys, later, root, *change)
        assert code == 1 and "Traceback" not in err, change
        assert "would change what clients get (covariates" in err, err
        assert "--allow-config-change" in err
    code, err = retrain(capsys, later, root, "--future-covariates", "x", "--past-covariates",
                        "load", "--static-covariates", "region", "--allow-config-change",
                        "--promote", "never")  # fmt: skip
    assert code == 0, err
    changed = Registry(root).load("driven", 3)
    assert changed.covariates.names("past") == ["load"]
    before, after = report_of(root, 3)["challenger"]["changes_from_champion"]["covariates"]
    assert "past: load" in after and "past" not in before
