"""The train and evaluate commands end to end on a small hourly file (in-process and as a real
console script)."""

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from forecaster import classical
from forecaster.cli import main
from forecaster.predict import Predictor
from forecaster.registry import Registry, load_model

DATA = Path(__file__).parents[1] / "data" / "hourly_long.csv"
TINY = ["--cell", "gru", "--hidden", "8", "--horizon", "24", "--input-size", "48", "--steps", "60",
        "--eval-every", "30", "--ensemble", "1", "--no-progress"]  # fmt: skip


def split_file(tmp_path: Path, path: Path, horizon: int) -> tuple[Path, Path]:
    """(history, test) CSVs: the last ``horizon`` rows of every series are the test period."""
    frame = pd.read_csv(path)
    last = frame.groupby("id").tail(horizon).index
    history, test = tmp_path / "history.csv", tmp_path / "test.csv"
    frame.drop(index=last).to_csv(history, index=False)
    frame.loc[last].to_csv(test, index=False)
    return history, test


def test_train_then_evaluate_a_saved_model(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "model"
    assert main(["train", "--data", str(DATA), *TINY, "--out", str(out)]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["best_step"] in (30, 60) and summary["validation"]["owa"] > 0
    model = load_model(out)
    assert model.config.step == 24 and model.config.input_size == 48
    assert model.manifest.freq == "h" and model.manifest.data_fingerprint.startswith("sha256:")

    history, test = split_file(tmp_path, DATA, 24)
    assert main(["evaluate", "--model", str(out), "--data", str(history), "--test", str(test)]) == 0
    scores = json.loads(capsys.readouterr().out)
    assert scores["series"] == 6 and scores["horizon"] == 24
    assert {"smape", "mase", "owa"} <= set(scores)


def test_evaluate_refuses_a_history_that_holds_the_test_period(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    out = tmp_path / "model"
    assert main(["train", "--data", str(DATA), *TINY, "--out", str(out)]) == 0
    capsys.readouterr()
    _, test = split_file(tmp_path, DATA, 24)
    assert main(["evaluate", "--model", str(out), "--data", str(DATA), "--test", str(test)]) == 1
    err = capsys.readouterr().err
    assert "already contains the test period: series 's0' runs to" in err


def test_train_publishes_to_a_registry(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    args = ["train", "--data", str(DATA), *TINY, "--registry", str(tmp_path), "--name", "demo"]
    assert main([*args, "--promote"]) == 0
    assert Registry(tmp_path).alias("demo") == 1
    history, test = split_file(tmp_path, DATA, 24)
    assert main(["evaluate", "--registry", str(tmp_path), "--model", "demo@1", "--data",
                 str(history), "--test", str(test)]) == 0  # fmt: skip


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


OTHER_COLUMNS = Path(__file__).parents[1] / "data" / "long_hourly.csv"


def test_theta_weights_flag_sets_the_candidates(tmp_path: Path, capsys: pytest.CaptureFixture):
    """One candidate, all classical: the saved model forecasts the mean of Theta and damped
    trend."""
    out = tmp_path / "model"
    flags = [*TINY, "--steps", "2", "--eval-every", "2", "--theta-weights", "1"]
    assert main(["train", "--data", str(DATA), *flags, "--out", str(out)]) == 0
    model = load_model(out)
    shares = model.config.theta_weight, model.config.damped_weight, model.config.theta_season
    assert shares == (0.5, 0.5, 24)
    history = pd.read_csv(DATA).groupby("id")["value"].apply(np.asarray).iloc[0]
    point = Predictor(model.config, model.params).predict([history]).point
    both = classical.forecasts([history], 24, 24, ("theta", "damped"))
    np.testing.assert_allclose(point, (both["theta"] + both["damped"]) / 2, rtol=1e-6)
    with pytest.raises(SystemExit):  # set by training, not a flag
        main(["train", "--data", str(DATA), *TINY, "--theta-season", "7", "--out", str(out)])
    assert "unrecognized arguments: --theta-season 7" in capsys.readouterr().err


def run_cli(*argv: str, timeout: float = 120) -> subprocess.CompletedProcess:
    env = {**os.environ, "FORECASTER_NO_TCMALLOC": "1"}
    return subprocess.run(
        [sys.executable, "-m", "forecaster.cli", *argv],
        capture_output=True, text=True, env=env, timeout=timeout,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--cell", "transformer"], "cell must be lstm, gru or rnn, got 'transformer'"),
        (["--input-size", "50", "--step", "24"], "input_size 50 is not a whole number of steps"),
    ],
)
def test_bad_model_flags_are_one_line_errors(tmp_path: Path, flags: list, message: str) -> None:
    proc = run_cli("train", "--data", str(DATA), "--out", str(tmp_path / "m"), *flags)
    assert proc.returncode == 1
    [line] = proc.stderr.strip().splitlines()
    assert line.startswith("forecaster train: error: the command line: ") and message in line
    assert not (tmp_path / "m").exists()


def test_a_url_without_its_fsspec_backend_is_a_one_line_error(tmp_path: Path) -> None:
    proc = run_cli("train", "--data", "s3://bucket/series.csv", "--out", str(tmp_path / "m"))
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    assert proc.stderr.strip() == (
        "forecaster train: error: cannot read s3://bucket/series.csv: Install s3fs to access S3"
    )


def test_help_does_not_import_jax() -> None:
    code = (
        "import sys; from forecaster.cli import build_parser; build_parser(); "
        "print(sorted(m for m in ('jax', 'flax', 'pandas') if m in sys.modules))"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


def test_models_list_does_not_import_jax() -> None:
    code = (
        "import sys; from forecaster.cli import main; "
        "main(['models', 'list', '--registry', 'models']); "
        "print(sorted(m for m in ('jax', 'flax') if m in sys.modules))"
    )
    root = Path(__file__).resolve().parents[2]
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=root)
    assert proc.returncode == 0, proc.stderr
    assert "m4-hourly" in proc.stdout
    assert proc.stdout.strip().splitlines()[-1] == "[]"


def test_evaluate_takes_the_data_options_of_train(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    frame = pd.read_csv(OTHER_COLUMNS)
    last = frame.groupby("series").tail(1).index
    history, test = tmp_path / "history.csv", tmp_path / "test.csv"
    frame.drop(index=last).to_csv(history, index=False)
    frame.loc[last].to_csv(test, index=False)
    out = tmp_path / "model"
    columns = ["--id-col", "series", "--time-col", "time", "--value-col", "y"]
    tiny = ["--hidden", "4", "--horizon", "1", "--input-size", "2", "--seasonality", "1",
            "--steps", "4", "--eval-every", "2", "--batch-size", "4", "--no-progress"]  # fmt: skip
    assert main(["train", "--data", str(history), *columns, *tiny, "--out", str(out)]) == 0
    capsys.readouterr()
    argv = ["evaluate", "--model", str(out), "--data", str(history), "--test", str(test)]
    assert main([*argv, *columns]) == 0
    scores = json.loads(capsys.readouterr().out)
    assert scores["series"] == 2 and scores["horizon"] == 1
    assert {"smape", "mase", "owa"} <= set(scores)


REPO = Path(__file__).resolve().parents[2]
OURS = ("forecaster", "service", "benchmarks")


def _imports(path: Path) -> list[tuple[str, list[str]]]:
    """(module, names) of each import in ``path``: ``import a.b`` is ("a.b", []),
    ``from a import b, c`` is ("a", ["b", "c"]) (the tree uses no relative imports)."""
    found: list[tuple[str, list[str]]] = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found += [(a.name, []) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            found.append((node.module or "", [a.name for a in node.names]))
    return found


def test_the_library_never_imports_the_command_line_the_service_or_pydantic_settings() -> None:
    """Arrows point down: only the command line imports itself, and only ``forecaster serve``
    (which starts the service) imports the service and so its settings."""
    package = REPO / "forecaster"
    offenders = []
    for path in package.rglob("*.py"):
        where = path.relative_to(package).as_posix()
        for module, _ in _imports(path):
            parts = module.split(".")
            if parts[:2] == ["forecaster", "cli"] and not where.startswith("cli/"):
                offenders.append(f"{where}: {module}")
            if parts[0] in ("service", "pydantic_settings") and where != "cli/serve.py":
                offenders.append(f"{where}: {module}")
    assert offenders == []


def test_the_saved_model_layer_is_used_by_its_public_names() -> None:
    """Outside ``forecaster/registry/`` (tests aside, which test its insides) the package is
    imported by the names its ``__init__`` lists, never by its modules."""
    import forecaster.registry

    offenders = []
    for top in OURS:
        for path in (REPO / top).rglob("*.py"):
            where = path.relative_to(REPO).as_posix()
            if where.startswith("forecaster/registry/"):
                continue
            for module, names in _imports(path):
                inside = module.startswith("forecaster.registry.")
                hidden = set(names) - set(forecaster.registry.__all__)
                if inside or (module == "forecaster.registry" and hidden):
                    offenders.append(f"{where}: {module} {sorted(hidden)}")
    assert offenders == []


def test_benchmarks_use_public_names_only() -> None:
    """No private module (``forecaster.cli._options``) and no underscore name of ours, imported
    or reached through a module (``load_test._wrk``)."""
    offenders = []
    for path in (REPO / "benchmarks").glob("*.py"):
        modules = set()
        for module, names in _imports(path):
            if module.split(".")[0] not in OURS:
                continue
            private = [p for p in [*module.split("."), *names] if p.startswith("_")]
            offenders += [f"{path.name}: {module} {p}" for p in private]
            modules.update(names or [module.split(".")[0]])
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):  # `import a.b as c` binds c
                modules.update(a.asname for a in node.names if a.asname)
            if not (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)):
                continue
            private = node.attr.startswith("_") and not node.attr.startswith("__")
            if node.value.id in modules and private:
                offenders.append(f"{path.name}:{node.lineno}: {node.value.id}.{node.attr}")
    assert offenders == []


def test_the_settings_variables_are_read_in_one_place() -> None:
    """``Settings`` reads every ``FORECASTER_*`` setting; in the library only
    ``forecaster/environment.py`` reads one (for the commands), by a setting's own name."""
    from forecaster import environment
    from service.settings import Settings

    assert Settings.model_config.get("env_prefix") == environment.PREFIX
    variables = {environment.variable(f) for f in Settings.model_fields}
    offenders = []
    for path in (REPO / "forecaster").rglob("*.py"):
        where = path.relative_to(REPO).as_posix()
        if where == "forecaster/environment.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Constant) and node.value in variables:
                offenders.append(f"{where}:{node.lineno}: {node.value}")
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "setting":
                field = node.args[0]
                if not (isinstance(field, ast.Constant) and field.value in Settings.model_fields):
                    offenders.append(f"{where}:{node.lineno}: setting({ast.unparse(field)})")
    assert offenders == []


def test_train_and_evaluate_with_covariates(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    rng = np.random.default_rng(0)
    times = pd.date_range("2024-01-01", periods=24 * 20, freq="h")
    x = rng.uniform(0, 2, (2, len(times)))
    frame = pd.concat(
        pd.DataFrame({"id": sid, "timestamp": times, "value": 10 + 3 * x[i], "x": x[i]})
        for i, sid in enumerate(["a", "b"])
    ).reset_index(drop=True)
    last = frame.groupby("id").tail(24).index
    history, test = tmp_path / "history.csv", tmp_path / "test.csv"
    frame.drop(index=last).to_csv(history, index=False)
    frame.loc[last].to_csv(test, index=False)
    out = tmp_path / "model"
    flags = ["--future-covariates", "x", "--holidays", "US", "--no-progress"]
    assert main(["train", "--data", str(history), *TINY, *flags, "--out", str(out)]) == 0
    assert "covariates: future: x; calendar: hour, weekday, yearday, holidays US" in (
        capsys.readouterr().err
    )
    model = load_model(out)
    assert model.covariates.names("future") == ["x"] and model.manifest.format_version == 4
    assert main(["evaluate", "--model", str(out), "--data", str(history), "--test", str(test)]) == 0
    assert json.loads(capsys.readouterr().out)["horizon"] == 24
    # The test file must carry the horizon's covariates: a one-line error naming the column.
    pd.read_csv(test).drop(columns="x").to_csv(test, index=False)
    assert main(["evaluate", "--model", str(out), "--data", str(history), "--test", str(test)]) == 1
    assert "future covariate column 'x' is not in the file" in capsys.readouterr().err


def test_a_covariate_column_that_does_not_exist_is_a_one_line_error(tmp_path: Path) -> None:
    proc = run_cli("train", "--data", str(DATA), *TINY, "--future-covariates", "wind",
                   "--out", str(tmp_path / "m"))  # fmt: skip
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert (
        proc.stderr.strip()
        .splitlines()[-1]
        .startswith("forecaster train: error: future covariate column 'wind' is not in the file")
    )
