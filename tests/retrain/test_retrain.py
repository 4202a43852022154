"""The retraining job: decisions, reports, config files, the lock, and crashes mid-job."""

from __future__ import annotations

import dataclasses
import errno
import fcntl
import json
import os
import select
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from forecaster import data, metrics, retrain
from forecaster.cli import main
from forecaster.model import ModelConfig, init_params
from forecaster.predict import Predictor, sanity_problems
from forecaster.registry import LoadedModel, PublishLockedError, Registry, load_model
from forecaster.retrain.jobs import job_from_settings

ROOT = Path(__file__).resolve().parents[2]
# Subprocesses share the project's persistent compilation cache (the service's default
# FORECASTER_COMPILATION_CACHE_DIR), so programs compiled by one test's process are reused.
JAX_CACHE_ENV = {
    "JAX_COMPILATION_CACHE_DIR": str(ROOT / ".jax_cache"),
    "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0",
    "JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES": "0",
}
SEASON, HORIZON, INPUT = 6, 6, 24
TINY = ModelConfig(ensemble=1, cell="gru", hidden=8, input_size=INPUT, horizon=HORIZON, step=SEASON)
FLAGS = ["--cell", "gru", "--ensemble", "1", "--hidden", "8", "--seasonality", "6",
         "--input-size", "24", "--horizon", "6", "--steps", "60", "--batch-size", "16",
         "--eval-every", "60",
         "--warmup-steps", "5"]  # fmt: skip


def write_long_csv(path: Path, n_series: int = 5, length: int = 96, seed: int = 0) -> Path:
    """Hourly series with a 6-step season, level differences and noise."""
    rng = np.random.default_rng(seed)
    times = pd.date_range("2024-01-01", periods=length, freq="h")
    k = np.arange(length)
    frames = [
        pd.DataFrame(
            {
                "id": f"s{i}",
                "timestamp": times,
                "value": (30 + 15 * i) * (1 + 0.3 * np.sin(2 * np.pi * k / SEASON + i))
                + rng.normal(0, 1, length),
            }
        )
        for i in range(n_series)
    ]
    pd.concat(frames).to_csv(path, index=False)
    return path


def job_args(csv: Path, root: Path) -> list[str]:
    """The command line of a tiny retraining of model ``demo``."""
    return ["--data", str(csv), "--registry", str(root), "--name", "demo", *FLAGS]


def retrain_cli(capsys: pytest.CaptureFixture, *argv: str) -> tuple[int, str, str]:
    code = main(["retrain", *argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(autouse=True)
def _no_reexec(monkeypatch: pytest.MonkeyPatch) -> None:
    # The CLI re-executes itself with tcmalloc preloaded; in-process calls must not.
    monkeypatch.setenv("FORECASTER_NO_TCMALLOC", "1")


@pytest.fixture
def csv(tmp_path: Path) -> Path:
    return write_long_csv(tmp_path / "hourly.csv")


def publish_champion(root: Path, name: str = "demo") -> int:
    """An untrained champion of the CLI's architecture, in production."""
    return Registry(root).publish(name, TINY, init_params(TINY, 7), promote=True)


# ---------------------------------------------------------------------------- end to end


def test_first_run_promotes_and_stores_the_report(
    tmp_path: Path, csv: Path, capsys: pytest.CaptureFixture
) -> None:
    root = tmp_path / "models"
    code, out, err = retrain_cli(capsys, *job_args(csv, root))

    assert code == 0, err
    assert "demo: promoted v1 to production: no champion to beat" in out
    assert "status" in out and "promoted" in out.splitlines()[-1]  # the summary table
    assert "60/60" in err  # the progress bar
    registry = Registry(root)
    assert registry.alias("demo") == 1
    version = load_model(root / "demo" / "1")  # verifies every hash, the report's included
    assert {"report.json", "plot.png"} <= set(version.manifest.files)
    report = json.loads((root / "demo" / "1" / "report.json").read_text())
    assert (
        report["decision"]
        | {"status": "promoted", "production_before": None, "production_after": 1}
        == report["decision"]
    )
    assert report["data"]["fingerprint"] == data.fingerprint(data.load_series(csv))
    assert report["challenger"]["version"] == 1
    assert report["challenger"]["sanity"] == {"passed": True, "problems": []}
    assert set(report["challenger"]["metrics"]) >= {"smape", "mase", "owa"}
    assert report["champion"]["version"] is None
    assert {"load_s", "train_s", "backtest_s"} <= set(report["timings"])
    assert (root / "demo" / "1" / "plot.png").read_bytes().startswith(b"\x89PNG")


def test_champion_and_challenger_see_the_same_window(
    tmp_path: Path, csv: Path, capsys: pytest.CaptureFixture
) -> None:
    root = tmp_path / "models"
    publish_champion(root)
    policy = ["--promote", "never", "--warm-start", "--no-progress"]
    code, out, err = retrain_cli(capsys, *job_args(csv, root), *policy)

    assert code == 0, err
    assert "published v2, production stays v1" in out
    assert Registry(root).alias("demo") == 1
    report = json.loads((root / "demo" / "2" / "report.json").read_text())
    assert report["challenger"]["warm_start"] == {
        "requested": True,
        "used": True,
        "from_version": 1,
    }
    assert report["decision"]["production_after"] == 1
    # Recompute the champion's score by hand: last HORIZON points, forecast from the rest.
    series = data.load_series(csv)
    histories = [v[:-HORIZON] for v in series.values]
    targets = np.stack([v[-HORIZON:] for v in series.values])
    champion = Registry(root).load("demo", 1)
    forecast = Predictor(champion.config, champion.params).predict(histories).point
    owa = metrics.owa_vs_naive2(histories, targets, forecast, SEASON)
    assert report["champion"]["metrics"]["owa"] == pytest.approx(owa)
    assert report["backtest"]["series"] == len(series)


def test_config_file_retrains_several_models(
    tmp_path: Path, csv: Path, capsys: pytest.CaptureFixture
) -> None:
    wide = tmp_path / "wide.csv"
    rows = data.load_series(write_long_csv(tmp_path / "other.csv", 3, 80, seed=1))
    pd.DataFrame([[sid, *v] for sid, v in rows]).to_csv(wide, index=False)
    config = tmp_path / "retrain.toml"
    config.write_text(
        f"""
registry = "{tmp_path / "models"}"
margin = 0.05

[model]
hidden = 8
input_size = {INPUT}
horizon = {HORIZON}

[train]
seasonality = {SEASON}
steps = 500
batch_size = 16
eval_every = 1000
warmup_steps = 5

[[models]]
name = "hourly"
data = "{csv}"

[[models]]
name = "wide"
data = "{wide}"
format = "wide"
promote = "never"
"""
    )
    code, out, err = retrain_cli(capsys, "--config", str(config), "--steps", "40", "--no-progress")

    assert code == 0, err
    table = out.split("\n\n")[-1].splitlines()
    assert table[0].split()[:3] == ["model", "status", "champion"]
    assert [row.split()[:2] for row in table[1:]] == [["hourly", "promoted"], ["wide", "kept"]]
    root = tmp_path / "models"
    assert Registry(root).alias("hourly") == 1 and Registry(root).alias("wide") is None
    report = json.loads((root / "wide" / "1" / "report.json").read_text())
    assert report["challenger"]["train"]["steps"] == 40  # the command line wins
    assert report["decision"]["margin"] == 0.05 and report["data"]["series"] == 3


def test_a_second_job_is_refused(tmp_path: Path, csv: Path, capsys: pytest.CaptureFixture) -> None:
    root = tmp_path / "models"
    publish_champion(root)
    # Another process's job: flock on its own descriptor conflicts with ours.
    fd = os.open(root / "demo" / ".job.lock", os.O_RDWR | os.O_CREAT)
    fcntl.flock(fd, fcntl.LOCK_EX)
    os.ftruncate(fd, 0)
    os.write(fd, b"4242 retraining\n")
    before = sorted(p.name for p in (root / "demo").iterdir())
    try:
        code, out, err = retrain_cli(capsys, *job_args(csv, root))
    finally:
        os.close(fd)

    assert code == 1
    assert "refused" in err and "is being retrained by process 4242 (retraining)" in err
    assert "demo: FAILED" in out
    assert sorted(p.name for p in (root / "demo").iterdir()) == before
    assert Registry(root).alias("demo") == 1


def _read_until(proc: subprocess.Popen, marker: bytes, timeout: float = 240) -> bytes:
    """What ``proc`` wrote to stderr up to ``marker``; fails if it exits or times out first."""
    seen, deadline = b"", time.monotonic() + timeout
    while marker not in seen:
        left = deadline - time.monotonic()
        assert left > 0, f"no {marker!r} in time: {seen[-2000:]!r}"
        if select.select([proc.stderr], [], [], left)[0]:
            chunk = os.read(proc.stderr.fileno(), 65536)
            assert chunk, f"exited before {marker!r}: {seen[-2000:]!r}"
            seen += chunk
    return seen


def test_a_retrain_does_not_claim_a_promotion_it_did_not_make(tmp_path: Path, csv: Path) -> None:
    """An operator promotes v2 while the job trains against champion v1: the job publishes v3
    but does not promote it over the operator's choice, and says so (issue 29)."""
    root = tmp_path / "models"
    publish_champion(root)
    registry = Registry(root)
    operators = registry.publish("demo", TINY, init_params(TINY, 8))  # v2, not promoted
    cmd = [sys.executable, "-m", "forecaster.cli", "retrain", *job_args(csv, root)]
    cmd += ["--promote", "always"]
    env = {**os.environ, **JAX_CACHE_ENV}
    # The operator holds the writers' lock from the start, so however fast the job trains, it
    # publishes only after the operator's promote: the order is fixed, not raced.
    with registry.lock("demo"):
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE)  # fmt: skip
        try:
            _read_until(proc, b" 0/60 [")  # the progress bar: the champion (v1) is loaded
            assert registry.promote("demo", operators) == 1
        except BaseException:
            proc.kill()
            raise
    out, err = proc.communicate(timeout=240)
    out, err = out.decode(), err.decode()

    assert proc.returncode == 0, err[-2000:]
    assert "demo: published v3, NOT promoted: production is v2: production moved to v2" in out
    assert "compared with champion v1" in out
    assert out.splitlines()[-1].split()[:2] == ["demo", "superseded"]
    assert registry.alias("demo") == operators
    assert [e["version"] for e in registry.describe("demo")["alias_log"]] == [1, operators]
    report = json.loads((root / "demo" / "3" / "report.json").read_text())
    decision = report["decision"]
    assert decision["status"] == "superseded" and decision["action"] == "keep"
    assert (decision["production_before"], decision["production_after"]) == (1, operators)


def test_production_is_read_once_before_the_run(
    tmp_path: Path, csv: Path, capsys: pytest.CaptureFixture
) -> None:
    """An operator promotes v2 after the job has read production (v1) and while it waits for
    its data: the live verdict, the champion and the backtest are all v1's, so the job's
    promotion is withdrawn ("superseded"). A job that read production again to load the
    champion would compare with v2 and promote over the operator's choice."""
    root = tmp_path / "models"
    publish_champion(root)
    registry = Registry(root)
    operators = registry.publish("demo", TINY, init_params(TINY, 8))  # v2, not promoted
    fifo = tmp_path / "arriving.csv"
    os.mkfifo(fifo)  # the job blocks reading it until the test has promoted v2
    argv = [*job_args(fifo, root), "--promote", "always", "--no-progress"]
    codes: list[int] = []
    job = threading.Thread(target=lambda: codes.append(main(["retrain", *argv])))
    job.start()
    try:
        deadline = time.monotonic() + 120
        while True:  # a writer's open succeeds once the job has opened the data to read it
            try:
                fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
                break
            except OSError as err:  # ENXIO: no reader yet
                assert err.errno == errno.ENXIO
            assert job.is_alive() and time.monotonic() < deadline, capsys.readouterr()
            time.sleep(0.05)
        assert registry.promote("demo", operators) == 1
        os.set_blocking(fd, True)
        os.write(fd, csv.read_bytes())
        os.close(fd)
    finally:
        job.join(timeout=240)
    out, err = capsys.readouterr()

    assert codes == [0], err[-2000:]
    assert "demo: published v3, NOT promoted: production is v2: production moved to v2" in out
    assert registry.alias("demo") == operators
    report = json.loads((root / "demo" / "3" / "report.json").read_text())
    assert report["live"]["version"] == report["champion"]["version"] == 1
    decision = report["decision"]
    assert decision["status"] == "superseded" and decision["action"] == "keep"
    assert (decision["production_before"], decision["production_after"]) == (1, operators)
    assert (report["backtest"]["series"], report["backtest"]["horizon"]) == (5, HORIZON)


def test_the_hold_out_is_cut_once(tmp_path: Path, csv: Path) -> None:
    """The backtest scores the hold-out that training left out (the Trained stage's), never a
    second cut of the data that could disagree with it."""
    settings = {"name": "demo", "data": str(csv), "registry": str(tmp_path / "models"),
                "model": {"cell": "gru", "hidden": 8, "input_size": INPUT, "horizon": HORIZON},
                "train": {"seasonality": SEASON, "steps": 10, "batch_size": 16,
                          "eval_every": 10, "warmup_steps": 5}}  # fmt: skip
    job = job_from_settings(settings)
    stages = retrain.run
    trained = stages.train(stages.load(job, Registry(job.registry), None, {}), progress=False)
    series = data.load_series(csv)
    tails = np.stack([v[-HORIZON:] for v in series.values])
    np.testing.assert_array_equal(trained.holdout.targets, tails)
    assert [len(h) for h in trained.holdout.histories] == [len(v) - HORIZON for v in series.values]

    odd = trained.holdout.select(np.arange(len(series)) % 2 == 1, HORIZON)
    evaluated = stages.evaluate(dataclasses.replace(trained, holdout=odd))
    assert evaluated.backtest.holdout.ids == ["s1", "s3"]
    np.testing.assert_array_equal(evaluated.backtest.holdout.targets, tails[[1, 3]])


def test_admin_actions_do_not_wait_for_a_running_job(tmp_path: Path) -> None:
    """A job holds its own lock for its whole run; promote and rollback take the writers' lock
    only, so they go ahead (and a writer holding that lock refuses them at once, by name)."""
    root = tmp_path / "models"
    publish_champion(root)
    registry = Registry(root)
    registry.publish("demo", TINY, init_params(TINY, 8))
    fd = os.open(root / "demo" / ".job.lock", os.O_RDWR | os.O_CREAT)
    fcntl.flock(fd, fcntl.LOCK_EX)  # a job of another process, training
    try:
        assert registry.promote("demo", 2, blocking=False) == 1
        assert registry.rollback("demo", blocking=False) == 1
    finally:
        os.close(fd)
    assert registry.promote("demo", 2) == 1
    fd = os.open(root / "demo" / ".lock", os.O_RDWR)
    fcntl.flock(fd, fcntl.LOCK_EX)  # a job of another process, publishing
    os.ftruncate(fd, 0)
    os.write(fd, b"4242 retraining: publishing a challenger\n")
    try:
        held = "being written by process 4242 [(]retraining: publishing a challenger[)]"
        with pytest.raises(PublishLockedError, match=held):
            registry.promote("demo", 1, blocking=False)
        with pytest.raises(PublishLockedError, match=held):
            registry.rollback("demo", blocking=False)
    finally:
        os.close(fd)
    assert registry.alias("demo") == 2


def test_a_crash_before_the_alias_moves_keeps_production(tmp_path: Path, csv: Path) -> None:
    root = tmp_path / "models"
    publish_champion(root)
    env = {**os.environ, **JAX_CACHE_ENV, "FORECASTER_FAILPOINT": "alias:after-temp"}
    cmd = [sys.executable, "-m", "forecaster.cli", "retrain", *job_args(csv, root)]
    cmd += ["--promote", "always", "--no-progress"]
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=240)

    assert proc.returncode == -9, proc.stderr[-2000:]  # SIGKILLed while moving the alias
    registry = Registry(root)
    assert registry.alias("demo") == 1
    assert registry.load("demo").manifest.files.keys() == {"weights.safetensors"}
    with registry.lock("demo", blocking=False):  # the dead job's lock went with it
        pass


# ---------------------------------------------------------------------------- decisions


@pytest.mark.parametrize(
    ("policy", "margin", "challenger", "champion", "problems", "status"),
    [
        ("if-better", 0.0, 0.9, None, [], "promoted"),
        ("if-better", 0.0, 0.9, 1.0, [], "promoted"),
        ("if-better", 0.2, 0.9, 1.0, [], "kept"),  # 10% better, 20% needed
        ("if-better", 0.0, 1.0, 1.0, [], "kept"),  # a tie does not beat the champion
        ("if-better", 0.0, 1.1, 1.0, [], "kept"),
        ("if-better", 0.5, 0.9, float("nan"), [], "promoted"),  # unusable champion score
        ("if-better", 0.0, float("nan"), 1.0, [], "kept"),
        ("if-better", 0.0, 0.5, None, ["probe 'zeros'"], "rejected"),
        ("always", 0.0, 2.0, 1.0, [], "promoted"),
        ("always", 0.0, 0.5, 1.0, ["probe 'huge'"], "rejected"),
        ("never", 0.0, 0.5, 1.0, [], "kept"),
        ("never", 0.0, 0.5, None, [], "kept"),
    ],
)
def test_decide(
    policy: retrain.Policy,
    margin: float,
    challenger: float,
    champion: float | None,
    problems: list[str],
    status: str,
) -> None:
    decision = retrain.decide(policy, margin, challenger, champion, problems, 3)
    assert decision.status == status
    assert decision.promote == (status == "promoted")
    assert decision.reason


def test_sanity_flags_a_model_that_explodes() -> None:
    params = init_params(TINY, 0)
    assert sanity_problems(Predictor(TINY, params)) == []
    head = params["members"]["head"]
    broken = {"members": {**params["members"], "head": {**head, "bias": head["bias"] + 50.0}}}
    problems = sanity_problems(Predictor(TINY, broken))
    assert any("'seasonal'" in p for p in problems)


def test_backtest_scores_both_models_on_common_series_and_steps() -> None:
    champion_cfg = ModelConfig(
        cell="gru", ensemble=1, hidden=8, input_size=36, horizon=3, step=SEASON
    )
    lengths = [60, 30, 60]  # the second is too short for the champion's 36-point window
    series = data.SeriesSet(
        ["a", "b", "c"], [50 + 10 * np.sin(np.arange(n) / 2) + i for i, n in enumerate(lengths)]
    )
    _, holdout = retrain.split_holdout(series, HORIZON, SEASON)
    champion = LoadedModel(champion_cfg, init_params(champion_cfg, 1), manifest=None)
    result = retrain.backtest(holdout, (TINY, init_params(TINY, 0)), champion)

    assert result.holdout.ids == ["a", "c"]
    assert result.holdout.targets.shape == (2, 3) == result.champion.shape
    assert result.challenger.shape == (2, 3)
    np.testing.assert_array_equal(result.holdout.targets[:, :3], holdout.targets[[0, 2], :3])


# ---------------------------------------------------------------------------- config files


def test_load_jobs_precedence_and_json(tmp_path: Path) -> None:
    path = tmp_path / "jobs.json"
    path.write_text(
        json.dumps(
            {
                "registry": "top",
                "margin": 0.01,
                "model": {"hidden": 16},
                "train": {"steps": 9},
                "models": [
                    {"name": "a", "data": "a.csv", "model": {"hidden": 4}, "promote": "never"},
                    {
                        "name": "b",
                        "data": "b.parquet",
                        "registry": "own",
                        "train": {"seasonality": 12},
                    },
                ],
            }
        )
    )
    a, b = retrain.load_jobs(path, {"margin": 0.2, "train": {"steps": 3}})

    assert (a.registry, a.model.hidden, a.promote, a.margin) == ("top", 4, "never", 0.2)
    assert (b.registry, b.model.hidden, b.promote) == ("own", 16, "if-better")
    assert a.train.steps == b.train.steps == 3
    # Without data the rule sees no frequency: horizon 12, window max(season 12, 2 x 12) = 24,
    # two whole seasons, so a season per step.
    assert (b.model.step, b.model.input_size, b.train.seasonality) == (12, 24, 12)
    assert [j.name for j in retrain.load_jobs(path, only="b")] == ["b"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('registry = "r"\n[[models]]\nname = "a"\ndata = "x.csv"\nhiden = 3\n', "unknown key"),
        ('[[models]]\nname = "a"\ndata = "x.csv"\n', "no `registry`"),
        ('registry = "r"\nmodels = []\n', "non-empty list"),
        ('registry = "r"\n[[models]]\nname = "a"\n', "needs `data`"),
        ('registry = "r"\n[model]\nhidden = "8"\n[[models]]\nname = "a"\ndata = "x"\n', "type"),
        ('registry = "r"\npromote = "maybe"\n[[models]]\nname = "a"\ndata = "x"\n', "promote"),
        (
            'registry = "r"\n[[models]]\nname = "a"\ndata = "x"\n[[models]]\nname = "a"\n'
            'data = "y"\n',
            "listed twice",
        ),
        ("registry = \n", "not valid toml"),
    ],
)
def test_bad_config_files_are_refused(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "jobs.toml"
    path.write_text(text)
    with pytest.raises(retrain.ConfigError, match=message):
        retrain.load_jobs(path)


def test_missing_flags_exit_2(capsys: pytest.CaptureFixture) -> None:
    code, _, err = retrain_cli(capsys, "--data", "x.csv")
    assert code == 2
    assert "--registry, --name required" in err


def test_a_broken_champion_is_reported_not_fatal(tmp_path: Path) -> None:
    root = tmp_path / "models"
    publish_champion(root)
    (root / "demo" / "1" / "weights.safetensors").write_bytes(b"garbage")
    champion = retrain.run._load_champion(Registry(root), "demo", 1)
    assert champion.version == 1 and champion.model is None
    assert "champion v1 failed to load" in champion.error
    decision = retrain.decide("if-better", 0.5, 0.9, float("nan"), (), champion.version)
    assert decision.promote and "no usable backtest score" in decision.reason


# ---------------------------------------------------------------------------- champion's config


def test_the_challenger_defaults_to_the_champions_configs(
    tmp_path: Path, csv: Path, capsys: pytest.CaptureFixture
) -> None:
    root = tmp_path / "models"
    training = {"steps": 30, "batch_size": 16, "eval_every": 30, "warmup_steps": 5,
                "seasonality": SEASON}  # fmt: skip
    Registry(root).publish("demo", TINY, init_params(TINY, 7), promote=True, training=training)
    argv = ["--data", str(csv), "--registry", str(root), "--name", "demo", "--no-progress"]
    code, _, err = retrain_cli(capsys, *argv, "--promote", "never", "--warm-start")

    assert code == 0, err
    report = json.loads((root / "demo" / "2" / "report.json").read_text())
    config = report["challenger"]["config"]  # the classical shares are chosen afresh by training
    chosen = {"theta_weight", "damped_weight", "theta_season"}
    assert {k: v for k, v in config.items() if k not in chosen} == TINY.to_dict()
    assert report["challenger"]["train"] | training == report["challenger"]["train"]
    assert report["challenger"]["changes_from_champion"] == {}
    assert report["challenger"]["warm_start"]["used"] is True
    assert Registry(root).load("demo", 2).manifest.training["steps"] == 30


def test_a_horizon_change_needs_the_users_consent(
    tmp_path: Path, csv: Path, capsys: pytest.CaptureFixture
) -> None:
    root = tmp_path / "models"
    publish_champion(root)
    flags = [*job_args(csv, root), "--horizon", "3", "--no-progress"]
    code, _, err = retrain_cli(capsys, *flags)
    assert code == 1
    assert "would change what clients get (horizon 6 -> 3)" in err
    assert "--allow-config-change" in err
    assert Registry(root).versions("demo") == [1]

    code, _, err = retrain_cli(capsys, *flags, "--allow-config-change", "--promote", "never")
    assert code == 0, err
    report = json.loads((root / "demo" / "2" / "report.json").read_text())
    assert report["challenger"]["changes_from_champion"]["horizon"] == [6, 3]
