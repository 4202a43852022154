"""The train and evaluate commands end to end on a small hourly file (in-process and as a real
console script)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from forecaster.artifacts import load_model
from forecaster.cli import main
from forecaster.registry import Registry

DATA = Path(__file__).parent / "data" / "hourly_long.csv"
TINY = ["--cell", "gru", "--hidden", "8", "--horizon", "24", "--input-size", "48", "--steps", "60",
        "--eval-every", "30", "--no-progress"]  # fmt: skip


def test_train_then_evaluate_a_saved_model(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "model"
    assert main(["train", "--data", str(DATA), *TINY, "--out", str(out)]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["best_step"] in (30, 60) and summary["validation"]["owa"] > 0
    model = load_model(out)
    assert model.config.step == 24 and model.config.input_size == 48
    assert model.manifest.freq == "h" and model.manifest.data_fingerprint.startswith("sha256:")

    assert main(["evaluate", "--model", str(out), "--data", str(DATA), "--test", str(DATA)]) == 0
    scores = json.loads(capsys.readouterr().out)
    assert scores["series"] == 6 and scores["horizon"] == 24
    assert {"smape", "mase", "owa"} <= set(scores)


def test_train_publishes_to_a_registry(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    args = ["train", "--data", str(DATA), *TINY, "--registry", str(tmp_path), "--name", "demo"]
    assert main([*args, "--promote"]) == 0
    assert Registry(tmp_path).alias("demo") == 1
    assert main(["evaluate", "--registry", str(tmp_path), "--model", "demo@1", "--data", str(DATA),
                 "--test", str(DATA)]) == 0  # fmt: skip


def test_bad_data_is_one_line_error_without_traceback(tmp_path: Path) -> None:
    short = tmp_path / "short.csv"
    short.write_text("id,timestamp,value\na,2024-01-01 00:00,1\na,2024-01-01 01:00,2\n")
    env = {**os.environ, "FORECASTER_NO_TCMALLOC": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "forecaster.cli", "train", "--data", str(short), *TINY,
         "--out", str(tmp_path / "m")],
        capture_output=True, text=True, env=env, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    assert "forecaster train: error: series 'a'" in proc.stderr
    assert not (tmp_path / "m").exists()
