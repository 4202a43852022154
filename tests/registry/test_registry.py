"""Tests of forecaster.registry and ``forecaster models``: versions, aliases, locking, crashes.

Crash and concurrency tests use a worker subprocess that imports JAX once and then forks one
child per publish: a fresh interpreter per iteration would cost a second of imports each. The
worker never initialises an XLA backend, so forking it is safe.
"""

from __future__ import annotations

import dataclasses
import json
import os
import random
import resource
import shutil
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import jax
import numpy as np
import pytest
from flax.traverse_util import flatten_dict

from forecaster.cli import main as cli_main
from forecaster.model import ModelConfig, init_params
from forecaster.registry import artifacts as A
from forecaster.registry import registry as R

REPO = Path(__file__).resolve().parents[2]
CFG = ModelConfig(ensemble=1, cell="gru", hidden=8, input_size=48, step=24, horizon=4)
SHAPES = jax.eval_shape(lambda: init_params(CFG))


def make_params(seed: int) -> dict:
    """Small random float32 params (numpy only: no XLA compile per test)."""
    rng = np.random.default_rng(seed)
    return jax.tree.map(lambda s: (0.1 * rng.standard_normal(s.shape)).astype(np.float32), SHAPES)


def _flat(params: dict) -> dict[str, np.ndarray]:
    return {k: np.asarray(v) for k, v in flatten_dict(params, sep="/").items()}


def _same_params(a: dict, b: dict) -> bool:
    fa, fb = _flat(a), _flat(b)
    return fa.keys() == fb.keys() and all(np.array_equal(fa[k], fb[k]) for k in fa)


@pytest.fixture
def reg(tmp_path: Path) -> R.Registry:
    return R.Registry(tmp_path / "models")


def _corrupt_weights(registry: R.Registry, name: str, version: int) -> None:
    path = Path(registry.path(name, version)) / "weights.safetensors"
    data = bytearray(path.read_bytes())
    data[-3] ^= 0xFF
    path.write_bytes(bytes(data))


# ------------------------------------------------------------------------------ basics


def test_publish_promote_load(reg: R.Registry) -> None:
    assert reg.names() == []
    assert reg.publish("demand", CFG, make_params(1), metrics={"val_mase": 0.9}) == 1
    assert reg.publish("demand", CFG, make_params(2), data_fingerprint="fp2") == 2
    assert reg.names() == ["demand"] and reg.versions("demand") == [1, 2]
    assert reg.alias("demand") is None
    with pytest.raises(R.ModelNotFoundError, match="promote one"):
        reg.load("demand")
    reg.promote("demand", 1)
    assert reg.alias("demand") == 1
    assert _same_params(reg.load("demand").params, make_params(1))
    loaded = reg.load("demand", 2)
    assert _same_params(loaded.params, make_params(2))
    assert loaded.manifest.data_fingerprint == "fp2"
    assert A.load_model(reg.path("demand", 2)).manifest == loaded.manifest
    info = reg.describe("demand")
    assert info["aliases"] == {"production": 1}
    assert [v["version"] for v in info["versions"]] == [1, 2]
    assert info["versions"][0]["metrics"] == {"val_mase": 0.9}
    assert info["versions"][0]["config"] == CFG.to_dict()
    json.dumps(info)  # the CLI prints it as JSON


def test_publish_with_promote_and_extra_files(reg: R.Registry) -> None:
    version = reg.publish(
        "m", CFG, make_params(1), promote=True, extra_files={"report.json": b'{"ok": true}'}
    )
    assert reg.alias("m") == version == 1
    assert (Path(reg.path("m", 1)) / "report.json").read_bytes() == b'{"ok": true}'


@pytest.mark.parametrize("name", ["", "../x", "..", ".hidden", "a/b", "a\\b", "x" * 65, "a\n", 7])
def test_invalid_names_are_refused(reg: R.Registry, name: object) -> None:
    with pytest.raises(R.InvalidNameError):
        reg.versions(name)  # type: ignore[arg-type]
    with pytest.raises(R.InvalidNameError):
        reg.publish(name, CFG, make_params(0))  # type: ignore[arg-type]


@pytest.mark.parametrize("version", [0, -1, True, "1", 1.0])
def test_invalid_versions_are_refused(reg: R.Registry, version: object) -> None:
    reg.publish("m", CFG, make_params(0))
    with pytest.raises(R.InvalidNameError, match="positive integers"):
        reg.load("m", version)  # type: ignore[arg-type]
    with pytest.raises(R.InvalidNameError):
        reg.promote("m", version)  # type: ignore[arg-type]


def test_unknown_model_and_version(reg: R.Registry) -> None:
    with pytest.raises(R.ModelNotFoundError, match="no model named 'nope'") as info:
        reg.versions("nope")
    assert isinstance(info.value, KeyError) and "'no model" not in str(info.value)
    reg.publish("m", CFG, make_params(0))
    with pytest.raises(R.VersionNotFoundError, match="no version 5"):
        reg.load("m", 5)
    with pytest.raises(R.VersionNotFoundError):
        reg.promote("m", 5)


# ------------------------------------------------------------------------------ aliases


def test_promote_refuses_corrupted_version(reg: R.Registry) -> None:
    reg.publish("m", CFG, make_params(1), promote=True)
    reg.publish("m", CFG, make_params(2))
    _corrupt_weights(reg, "m", 2)
    aliases = Path(reg.path("m", 1)).parent / "aliases.json"
    before = aliases.read_bytes()
    with pytest.raises(A.IntegrityError):
        reg.promote("m", 2)
    assert reg.alias("m") == 1 and aliases.read_bytes() == before


def test_promote_refuses_model_with_non_finite_forecast(reg: R.Registry) -> None:
    params = make_params(1)
    params["members"]["encoder"]["layer_0"]["bias"][:] = 1.0  # so the hidden state is not 0
    params["members"]["head"]["kernel"][:] = 3e38  # finite, but the output overflows
    reg.publish("m", CFG, params)
    with pytest.raises(A.NonFiniteWeightsError, match="forecast"):
        reg.promote("m", 1)
    assert reg.alias("m") is None


def test_rollback_walks_back_the_alias_history(reg: R.Registry) -> None:
    for seed in (1, 2, 3):
        reg.publish("m", CFG, make_params(seed), promote=True)
    reg.promote("m", 3)  # promoting the current target again is a no-op
    assert reg.rollback("m") == 2 and reg.alias("m") == 2
    assert reg.rollback("m") == 1 and reg.alias("m") == 1
    with pytest.raises(R.RegistryError, match="no previous version"):
        reg.rollback("m")
    reg.promote("m", 3)
    assert reg.rollback("m") == 1
    log = reg.describe("m")["alias_log"]
    assert [(e["action"], e["version"]) for e in log][-3:] == [
        ("rollback", 1),
        ("promote", 3),
        ("rollback", 1),
    ]


def test_rollback_refuses_a_corrupted_previous_version(reg: R.Registry) -> None:
    reg.publish("m", CFG, make_params(1), promote=True)
    reg.publish("m", CFG, make_params(2), promote=True)
    _corrupt_weights(reg, "m", 1)
    with pytest.raises(A.IntegrityError):
        reg.rollback("m")
    assert reg.alias("m") == 2


def test_corrupt_alias_file_is_reported(reg: R.Registry) -> None:
    reg.publish("m", CFG, make_params(1), promote=True)
    (Path(reg.path("m", 1)).parent / "aliases.json").write_text("{not json")
    with pytest.raises(R.RegistryError, match=r"aliases\.json is corrupt"):
        reg.alias("m")
    assert _same_params(reg.load("m", 1).params, make_params(1))


def test_separate_aliases(reg: R.Registry) -> None:
    reg.publish("m", CFG, make_params(1), promote=True)
    reg.publish("m", CFG, make_params(2))
    reg.promote("m", 2, alias="staging")
    assert (reg.alias("m"), reg.alias("m", "staging")) == (1, 2)


# ------------------------------------------------------------------------------ storage


def test_fsspec_memory_registry() -> None:
    reg = R.Registry(f"memory://registry-{uuid.uuid4().hex}")
    assert reg.publish("m", CFG, make_params(1), promote=True) == 1
    assert reg.publish("m", CFG, make_params(2)) == 2
    assert reg.path("m", 2).startswith("memory://")
    assert _same_params(reg.load("m").params, make_params(1))
    assert _same_params(A.load_model(reg.path("m", 2)).params, make_params(2))
    reg.promote("m", 2)
    assert reg.rollback("m") == 1
    # a crashed object-store publish leaves a version without manifest: unlisted, then removed
    fs = reg._fs
    fs.pipe_file(f"{reg._base}/m/3/weights.safetensors", b"partial")
    assert reg.versions("m") == [1, 2]
    assert reg.publish("m", CFG, make_params(4)) == 3
    assert A.verify(reg.path("m", 3)).format_version == A.FORMAT_VERSION
    assert reg.names() == ["m"]


def test_next_publish_cleans_leftovers(reg: R.Registry) -> None:
    reg.publish("m", CFG, make_params(1))
    model_dir = Path(reg.path("m", 1)).parent
    (model_dir / ".tmp-deadbeef").mkdir()
    (model_dir / ".tmp-deadbeef" / "weights.safetensors").write_bytes(b"half")
    (model_dir / ".tmp-aliases-0.json").write_text("{")
    assert reg.versions("m") == [1]
    reg.publish("m", CFG, make_params(2))
    assert sorted(p.name for p in model_dir.iterdir()) == [".lock", "1", "2"]


# ------------------------------------------------------------------------------ locking


def test_lock_is_reentrant_and_excludes_other_threads(reg: R.Registry) -> None:
    errors: list[BaseException] = []

    def try_lock() -> None:
        try:
            with reg.lock("m", blocking=False):
                pass
        except BaseException as err:
            errors.append(err)

    with reg.lock("m"):
        assert reg.publish("m", CFG, make_params(1)) == 1  # a job holding the lock may publish
        thread = threading.Thread(target=try_lock)
        thread.start()
        thread.join()
    assert len(errors) == 1 and isinstance(errors[0], R.PublishLockedError)
    with reg.lock("m", blocking=False):  # released afterwards
        pass


def test_lock_excludes_other_processes(reg: R.Registry, tmp_path: Path) -> None:
    lock_file = tmp_path / "models" / "m" / ".lock"
    lock_file.parent.mkdir(parents=True)
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import fcntl, os, sys, time\n"
            f"f = open({str(lock_file)!r}, 'a+')\n"
            "fcntl.flock(f, fcntl.LOCK_EX); f.write(str(os.getpid())); f.flush()\n"
            "print('held', flush=True); sys.stdin.read()",
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        locked = pytest.raises(R.PublishLockedError, match=f"process {holder.pid}")
        with locked, reg.lock("m", blocking=False):
            pass
        with pytest.raises(R.PublishLockedError, match="retry"), reg.lock("m", timeout=0.2):
            pass
    finally:
        holder.communicate("")
    with reg.lock("m", timeout=5):
        pass


# ------------------------------------------------------------------------------ crashes


WORKER = r"""
import json, os, signal, sys, time, traceback
import jax
import numpy as np
from forecaster.model import ModelConfig, init_params
from forecaster.registry import Registry

CFG = ModelConfig(ensemble=1, cell="gru", hidden=8, input_size=48, step=24, horizon=4)
SHAPES = jax.eval_shape(lambda: init_params(CFG))

def params(seed):
    rng = np.random.default_rng(seed)
    return jax.tree.map(lambda s: (0.1 * rng.standard_normal(s.shape)).astype(np.float32), SHAPES)

def child(cmd, seed):
    if cmd.get("failpoint"):
        os.environ["FORECASTER_FAILPOINT"] = cmd["failpoint"]
    registry = Registry(cmd["root"])
    for _ in range(cmd.get("count", 1)):
        registry.publish(cmd["name"], CFG, params(seed), promote=cmd.get("promote", False),
                         data_fingerprint=f"seed-{seed}")

for line in sys.stdin:
    cmd = json.loads(line)
    pids = []
    for index in range(cmd.get("parallel", 1)):
        pid = os.fork()
        if pid == 0:
            try:
                child(cmd, cmd["seed"] + index)
                code = 0
            except BaseException:
                traceback.print_exc()
                code = 3
            os._exit(code)
        pids.append(pid)
    if cmd.get("kill_after") is not None:
        time.sleep(cmd["kill_after"])  # the behaviour under test: a kill at a drawn moment
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    print(json.dumps([os.waitstatus_to_exitcode(os.waitpid(p, 0)[1]) for p in pids]), flush=True)
"""


class Worker:
    """Runs publish commands in forked children of one long-lived interpreter."""

    def __init__(self) -> None:
        env = {**os.environ, "JAX_PLATFORMS": "cpu", "PYTHONPATH": str(REPO)}
        env.pop(A.FAILPOINT_ENV, None)
        self.proc = subprocess.Popen(
            [sys.executable, "-c", WORKER],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=env,
            cwd=REPO,
        )

    def run(self, **cmd: object) -> list[int]:
        self.proc.stdin.write(json.dumps(cmd) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        assert line, "worker died"
        return json.loads(line)

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait(timeout=30)


@pytest.fixture(scope="module")
def worker() -> Iterator[Worker]:
    w = Worker()
    yield w
    w.close()


def _check_invariants(reg: R.Registry, name: str) -> tuple[set[int], int | None, set[str]]:
    """Every version directory is complete and verifies; the alias file parses."""
    model_dir = Path(reg._base) / name
    numbered = {int(p.name) for p in model_dir.iterdir() if p.name.isdigit()}
    for version in numbered:
        assert (model_dir / str(version) / "manifest.json").exists(), f"v{version} lacks manifest"
        A.verify(model_dir / str(version))
    assert set(reg.versions(name)) == numbered
    aliases = model_dir / "aliases.json"
    if aliases.exists():
        json.loads(aliases.read_text())
    alias = reg.alias(name)
    assert alias is None or alias in numbered
    for version in reg.describe(name)["alias_history"].get("production", []):
        assert version in numbered
    leftovers = {p.name for p in model_dir.iterdir() if p.name.startswith(".tmp-")}
    return numbered, alias, leftovers


FAILPOINTS = {
    # failpoint: (a new version appears, the alias moves to it)
    "save:after-weights": (False, False),
    "publish:after-save": (False, False),
    "publish:after-rename": (True, False),
    "alias:after-temp": (True, False),
    "alias:after-replace": (True, True),
}


def test_crash_at_any_point_leaves_old_or_new_complete_version(
    worker: Worker, tmp_path: Path
) -> None:
    root = tmp_path / "models"
    reg = R.Registry(root)
    assert worker.run(root=str(root), name="m", seed=0, promote=True) == [0]
    versions, alias, _ = _check_invariants(reg, "m")
    rng = random.Random(20240611)
    plan = [*FAILPOINTS, *FAILPOINTS] + ["kill"] * 10 + [None] * 3
    rng.shuffle(plan)
    for seed, step in enumerate(plan, start=1):
        cmd: dict[str, object] = {"root": str(root), "name": "m", "seed": seed, "promote": True}
        if step == "kill":
            # Writing takes ~0.1 s after the fork and validating for the alias ~0.5 s more:
            # aim half the kills at the writes, half anywhere.
            cmd["kill_after"] = (
                rng.uniform(0.03, 0.12) if rng.random() < 0.5 else rng.uniform(0, 0.8)
            )
        elif step is not None:
            cmd["failpoint"] = step
        [code] = worker.run(**cmd)
        new_versions, new_alias, leftovers = _check_invariants(reg, "m")
        added = new_versions - versions
        assert versions <= new_versions and len(added) <= 1, step
        assert new_alias in (alias, *added), step
        if step in FAILPOINTS:
            assert code == -9, f"failpoint {step} did not fire"
            appears, moves = FAILPOINTS[step]
            assert bool(added) == appears, step
            assert (new_alias != alias) == moves, step
        if code == 0:
            assert added and new_alias == max(added) and not leftovers, step
        else:
            assert code == -9, f"publish failed rather than crashed ({step})"
        versions, alias = new_versions, new_alias
    assert worker.run(root=str(root), name="m", seed=99, promote=True) == [0]
    _, alias, leftovers = _check_invariants(reg, "m")
    assert not leftovers and alias == max(reg.versions("m"))
    assert _same_params(reg.load("m").params, make_params(99))


def test_concurrent_publishers_get_distinct_complete_versions(
    worker: Worker, tmp_path: Path
) -> None:
    root = tmp_path / "models"
    assert worker.run(root=str(root), name="m", seed=10, count=4, parallel=2) == [0, 0]
    reg = R.Registry(root)
    assert reg.versions("m") == list(range(1, 9))
    by_seed: dict[int, int] = {}
    for version in reg.versions("m"):
        loaded = reg.load("m", version)
        seed = int(loaded.manifest.data_fingerprint.removeprefix("seed-"))
        assert _same_params(loaded.params, make_params(seed)), f"v{version} mixes publishers"
        by_seed[seed] = by_seed.get(seed, 0) + 1
    assert by_seed == {10: 4, 11: 4}


# ------------------------------------------------------------------------------ CLI


@pytest.fixture
def cli_registry(reg: R.Registry, monkeypatch: pytest.MonkeyPatch) -> R.Registry:
    monkeypatch.setenv("FORECASTER_REGISTRY", reg.root)
    reg.publish("demand", CFG, make_params(1), promote=True, metrics={"val_mase": 0.91})
    reg.publish("demand", CFG, make_params(2), metrics={"val_mase": 0.87})
    reg.publish("energy", CFG, make_params(3), metrics={"val_smape": 12.5})
    return reg


def test_cli_list_and_show(cli_registry: R.Registry, capsys: pytest.CaptureFixture) -> None:
    assert cli_main(["models", "list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[:4] == ["NAME", "VERSIONS", "LATEST", "PRODUCTION"]
    assert lines[1].split()[:4] == ["demand", "2", "2", "1"] and "val_mase=0.91" in lines[1]
    assert lines[2].split()[:4] == ["energy", "1", "1", "-"]
    assert cli_main(["models", "show", "demand", "--registry", cli_registry.root]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["aliases"] == {"production": 1} and len(shown["versions"]) == 2


def test_cli_list_names_the_forecast_method(
    cli_registry: R.Registry, capsys: pytest.CaptureFixture
) -> None:
    """The method label of the shown version (production, else the latest), as the service's
    models routes have it: a blend shows its classical share, a share of 1 is ``classical``."""
    blend = dataclasses.replace(CFG, theta_weight=0.25, damped_weight=0.1, theta_season=24)
    cli_registry.publish("blend", blend, make_params(4), promote=True)
    whole = dataclasses.replace(CFG, theta_weight=0.6, damped_weight=0.4)
    cli_registry.publish("whole", whole, make_params(5))
    pulled = dataclasses.replace(blend, theta_weight=0.4, damped_weight=0.4, naive_shrink=4.0)
    cli_registry.publish("pulled", pulled, make_params(6))
    assert cli_main(["models", "list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["NAME", "VERSIONS", "LATEST", "PRODUCTION", "CREATED", "(UTC)",
                                "METHOD", "METRICS"]  # fmt: skip
    rows = {line.split()[0]: line.split() for line in lines[1:]}
    assert rows["blend"][6] == "model+classical(0.35)"
    assert rows["demand"][6] == "model" and rows["demand"][7] == "val_mase=0.91"
    assert rows["whole"][6] == "classical"
    assert rows["pulled"][6] == "model+classical(0.8)+naive"
    shown = cli_registry.describe("blend")["versions"][0]
    assert (shown["method"], shown["classical_share"]) == ("model+classical", 0.35)
    assert cli_registry.describe("demand")["versions"][0]["classical_share"] is None


def test_cli_promote_and_rollback(cli_registry: R.Registry, capsys: pytest.CaptureFixture) -> None:
    assert cli_main(["models", "promote", "demand", "2"]) == 0
    assert "production -> version 2 (was 1)" in capsys.readouterr().out
    assert cli_registry.alias("demand") == 2
    assert cli_main(["models", "rollback", "demand"]) == 0
    assert "rolled back to version 1" in capsys.readouterr().out
    assert cli_registry.alias("demand") == 1


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["show", "nope"], "no model named 'nope'"),
        (["show", "../etc"], "invalid model name"),
        (["promote", "demand", "9"], "no version 9"),
        (["promote", "demand", "0"], "positive integers"),
        (["rollback", "energy"], "no 'production' alias"),
        (["promote", "demand", "2"], "sha256 differs"),
    ],
)
def test_cli_errors_are_one_line(
    cli_registry: R.Registry, capsys: pytest.CaptureFixture, argv: list[str], message: str
) -> None:
    _corrupt_weights(cli_registry, "demand", 2)
    assert cli_main(["models", *argv]) == 1
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert cli_registry.alias("demand") == 1


def test_cli_empty_registry(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert cli_main(["models", "--registry", str(tmp_path / "none"), "list"]) == 0
    assert "no models" in capsys.readouterr().out


def test_cli_subprocess(cli_registry: R.Registry) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    out = subprocess.run(
        [sys.executable, "-m", "forecaster.cli", "models", "list", "--registry", cli_registry.root],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    assert "demand" in out.stdout and "energy" in out.stdout
    bad = subprocess.run(
        [sys.executable, "-m", "forecaster.cli", "models", "show", "nope"],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
        timeout=120,
    )
    assert bad.returncode == 1 and bad.stderr.startswith("forecaster models: error: ")
    assert "Traceback" not in bad.stderr


# ------------------------------------------------------------------------------ hardening


def _sparse(path: Path, size: int = 3 * 1024**3) -> None:
    path.unlink(missing_ok=True)
    with open(path, "wb") as f:
        f.truncate(size)  # 3 GB that take no disk space, and would take 3 GB to read


def _deep_manifest(path: Path) -> None:
    text = path.read_text()
    path.write_text(
        text.replace(
            '"metrics": {', '"deep": ' + "[" * 100_000 + "]" * 100_000 + ', "metrics": {', 1
        )
    )


@pytest.fixture
def damaged(cli_registry: R.Registry) -> R.Registry:
    """demand: v1 production and fine, v2 deep manifest, v3 FIFO manifest, v4 3 GB manifest,
    v5 fine."""
    for seed in (3, 4, 5):
        cli_registry.publish("demand", CFG, make_params(seed), metrics={"val_mase": 0.5})
    _deep_manifest(Path(cli_registry.path("demand", 2)) / "manifest.json")
    fifo = Path(cli_registry.path("demand", 3)) / "manifest.json"
    fifo.unlink()
    os.mkfifo(fifo)
    _sparse(Path(cli_registry.path("demand", 4)) / "manifest.json")
    return cli_registry


def test_files_removed_while_listing_hide_nothing(
    reg: R.Registry, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SQLite's journal beside the models (the monitoring database lives in the registry
    root) and a publish's temp directory come and go; one that vanishes between the listing
    and its stat once made the whole registry list empty (a served model went missing)."""
    reg.publish("demand", CFG, make_params(1))
    root = Path(reg.root)
    journal = root / "monitoring.sqlite3-journal"
    temp = root / "demand" / ".tmp-5ca1ab1e"
    real_scandir = os.scandir

    class Vanishing:
        """os.scandir whose journal and temp directory are removed just after they are read."""

        def __init__(self, path: str) -> None:
            self.entries = real_scandir(path)

        def __enter__(self) -> Vanishing:
            return self

        def __exit__(self, *exc: object) -> None:
            self.entries.close()

        def __iter__(self) -> Iterator[os.DirEntry]:
            for entry in self.entries:
                if entry.path == str(journal):
                    journal.unlink()
                elif entry.path == str(temp):
                    temp.rmdir()
                yield entry

    journal.write_bytes(b"")
    temp.mkdir()
    monkeypatch.setattr(os, "scandir", Vanishing)
    assert reg.names() == ["demand"]
    assert reg.versions("demand") == [1]
    assert not journal.exists() and not temp.exists()  # both were listed, then removed


def test_one_bad_version_does_not_hide_the_others(damaged: R.Registry) -> None:
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.monotonic()
    info = damaged.describe("demand")
    assert time.monotonic() - start < 10
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 256 * 1024  # KiB
    versions = {v["version"]: v for v in info["versions"]}
    assert sorted(versions) == [1, 2, 3, 4, 5]
    assert versions[1]["metrics"] == {"val_mase": 0.91} and "error" not in versions[5]
    assert "more than 64 levels" in versions[2]["error"]
    assert "FIFO" in versions[3]["error"]
    assert "too large" in versions[4]["error"]
    with pytest.raises(A.ManifestError):
        damaged.promote("demand", 2)
    damaged.promote("demand", 5)
    assert damaged.rollback("demand") == 1


def test_cli_with_one_bad_version(damaged: R.Registry, capsys: pytest.CaptureFixture) -> None:
    assert cli_main(["models", "list"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[1].split()[:4] == ["demand", "5", "5", "1"] and "val_mase=0.91" in out[1]
    assert out[2].split()[0] == "energy"
    assert cli_main(["models", "show", "demand"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert ["error" in v for v in shown["versions"]] == [False, True, True, True, False]
    assert cli_main(["models", "promote", "demand", "3"]) == 1
    err = capsys.readouterr().err
    assert "FIFO" in err and len(err.strip().splitlines()) == 1
    assert cli_main(["models", "promote", "demand", "5"]) == 0
    assert damaged.alias("demand") == 5


def test_huge_or_special_weights_are_refused_before_reading(reg: R.Registry) -> None:
    reg.publish("m", CFG, make_params(1))
    reg.publish("m", CFG, make_params(2))
    _sparse(Path(reg.path("m", 1)) / "weights.safetensors")
    weights = Path(reg.path("m", 2)) / "weights.safetensors"
    weights.unlink()
    os.mkfifo(weights)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(A.IntegrityError, match="more than"):
        reg.promote("m", 1)
    with pytest.raises(A.IntegrityError, match="FIFO"):
        reg.promote("m", 2)
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 256 * 1024
    assert reg.alias("m") is None


def test_symlinked_weights_are_reported_as_a_symlink(reg: R.Registry, tmp_path: Path) -> None:
    reg.publish("m", CFG, make_params(1))
    weights = Path(reg.path("m", 1)) / "weights.safetensors"
    weights.rename(tmp_path / "outside.safetensors")
    weights.symlink_to(tmp_path / "outside.safetensors")
    with pytest.raises(A.IntegrityError, match="symlink") as info:
        reg.promote("m", 1)
    assert "missing" not in str(info.value)


def test_edited_manifest_is_not_promoted(reg: R.Registry) -> None:
    reg.publish("m", CFG, make_params(1))
    manifest = Path(reg.path("m", 1)) / "manifest.json"
    raw = json.loads(manifest.read_text())
    raw["config"]["input_size"] = 24
    manifest.write_text(json.dumps(raw))
    with pytest.raises(A.ManifestMismatchError, match="edited"):
        reg.promote("m", 1)
    assert reg.alias("m") is None


def test_list_says_when_production_points_at_a_missing_version(
    cli_registry: R.Registry, capsys: pytest.CaptureFixture
) -> None:
    shutil.rmtree(cli_registry.path("demand", 1))  # production is 1; 2 (val_mase 0.87) remains
    assert cli_main(["models", "list"]) == 0
    row = capsys.readouterr().out.splitlines()[1]
    assert row.split()[:5] == ["demand", "1", "2", "1", "(missing)"]
    assert "production version 1 does not exist" in row and "0.87" not in row


@pytest.mark.parametrize("call", ["rollback", "promote"])
def test_unknown_model_is_not_found_and_nothing_is_created(
    reg: R.Registry, tmp_path: Path, call: str
) -> None:
    reg.publish("m", CFG, make_params(1), promote=True)
    with pytest.raises(R.ModelNotFoundError, match="no model named 'nope'"):
        reg.rollback("nope") if call == "rollback" else reg.promote("nope", 1)
    assert not (tmp_path / "models" / "nope").exists()
    empty = R.Registry(tmp_path / "empty")
    with pytest.raises(R.ModelNotFoundError):
        empty.rollback("nope") if call == "rollback" else empty.promote("nope", 1)
    assert not (tmp_path / "empty").exists()


def _fifo(path: Path) -> None:
    path.unlink()
    os.mkfifo(path)


def _directory(path: Path) -> None:
    path.unlink()
    path.mkdir()


def _symlink(path: Path) -> None:
    path.rename(path.with_name("elsewhere.json"))
    path.symlink_to(path.with_name("elsewhere.json"))


ALIAS_DAMAGE = {
    "not JSON": (lambda p: p.write_text("{not json"), "corrupt"),
    "wrong schema": (lambda p: p.write_text('{"aliases": {"production": "x"}}'), "corrupt"),
    "deeply nested": (
        lambda p: p.write_text('{"log": ' + "[" * 100_000 + "]" * 100_000 + "}"),
        "corrupt",
    ),
    "FIFO": (_fifo, "FIFO"),
    "directory": (_directory, "directory"),
    "symlink": (_symlink, "symlink"),
    "3 GB": (_sparse, "too large"),
}


@pytest.mark.parametrize("damage", list(ALIAS_DAMAGE))
def test_bad_alias_file_affects_only_its_model(
    reg: R.Registry, capsys: pytest.CaptureFixture, damage: str
) -> None:
    reg.publish("a", CFG, make_params(1), promote=True)
    reg.publish("b", CFG, make_params(2), promote=True)
    path = Path(reg.path("a", 1)).parent / "aliases.json"
    corrupt, reason = ALIAS_DAMAGE[damage]
    corrupt(path)
    start = time.monotonic()
    with pytest.raises(R.AliasFileError, match=reason) as info:
        reg.alias("a")
    assert time.monotonic() - start < 10
    assert info.value.model == "a" and info.value.path == str(path) and reason in info.value.reason
    assert "'a'" in str(info.value) and str(path) in str(info.value)
    assert reg.names() == ["a", "b"] and reg.alias("b") == 1
    assert _same_params(reg.load("a", 1).params, make_params(1))
    assert "aliases_error" in reg.describe("a") and "aliases_error" not in reg.describe("b")
    assert cli_main(["models", "--registry", reg.root, "list"]) == 0
    rows = capsys.readouterr().out.splitlines()[1:]
    assert "aliases.json unreadable" in rows[0] and rows[1].split()[:4] == ["b", "1", "1", "1"]


def test_unknown_url_protocol_is_one_line(capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(R.RegistryError, match="Protocol not known"):
        R.Registry("nosuchproto://bucket/models")
    assert cli_main(["models", "list", "--registry", "nosuchproto://x"]) == 1
    err = capsys.readouterr().err
    assert "cannot open 'nosuchproto://x'" in err and len(err.strip().splitlines()) == 1


def test_concurrent_promotes_each_report_their_own_predecessor(reg: R.Registry) -> None:
    for seed in range(1, 7):
        reg.publish("m", CFG, make_params(seed))
    assert reg.promote("m", 1) is None and reg.promote("m", 1) == 1
    pairs: list[tuple[int | None, int]] = []
    threads = [
        threading.Thread(target=lambda v=v: pairs.append((reg.promote("m", v), v)))
        for v in range(2, 7)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # The promotes ran one after another: their (previous, new) pairs form one chain from 1.
    following = dict(pairs)
    chain, current = [], 1
    while current in following:
        current = following.pop(current)
        chain.append(current)
    assert sorted(chain) == [2, 3, 4, 5, 6] and not following
    assert reg.alias("m") == chain[-1]


def test_hide_root_replaces_locations_not_words(tmp_path: Path, monkeypatch) -> None:
    from forecaster.registry import hide_root

    monkeypatch.chdir(tmp_path)
    msg = f"registry models: {tmp_path}/models/a/aliases.json is corrupt; other models are fine"
    assert hide_root(msg, "models") == (
        "the registry: <registry>/a/aliases.json is corrupt; other models are fine"
    )
    assert hide_root("s3://bucket/models/a is gone", "s3://bucket/models") == "<registry>/a is gone"


# ------------------------------------------------------------------------------ symlinks


def test_symlinked_directories_follow_one_rule_everywhere(
    reg: R.Registry, tmp_path: Path, capsys: pytest.CaptureFixture, caplog: pytest.LogCaptureFixture
) -> None:
    """A model or version directory that is a symlink is followed inside the registry root and
    refused (listed, logged, never loaded, published into or promoted) when it leaves it: the
    listing, loading and promoting agree (issue 29)."""
    root = Path(reg.root)
    reg.publish("inside", CFG, make_params(1), promote=True)
    elsewhere = R.Registry(tmp_path / "elsewhere")
    elsewhere.publish("m", CFG, make_params(2), promote=True)
    # A directory replaced by a symlink to where it moved, inside the root: followed.
    (root / "inside").rename(root / ".inside-real")
    (root / "inside").symlink_to(".inside-real")
    # One that leaves the root: refused, and seen.
    (root / "outside").symlink_to(tmp_path / "elsewhere" / "m")
    # A symlink to a file is no model, as a file is none.
    (root / "linked.db").symlink_to(tmp_path / "elsewhere" / "m" / "aliases.json")

    assert reg.names() == ["inside", "outside"]
    assert reg.versions("inside") == [1] and reg.load("inside").manifest.format_version
    assert reg.publish("inside", CFG, make_params(3)) == 2  # through the link
    assert reg.promote("inside", 2) == 1 and reg.alias("inside") == 2
    assert (root / ".inside-real" / "2").is_dir()

    refused = pytest.raises(R.SymlinkRefusedError, match="symlink that the registry does not")
    target = tmp_path / "elsewhere" / "m"
    before = {p.name: p.stat().st_mtime_ns for p in target.iterdir()}
    for use in (
        lambda: reg.versions("outside"),
        lambda: reg.alias("outside"),
        lambda: reg.load("outside"),
        lambda: reg.promote("outside", 1),
        lambda: reg.publish("outside", CFG, make_params(4)),
        lambda: reg.lock("outside").__enter__(),
    ):
        with refused:
            use()
    assert {p.name: p.stat().st_mtime_ns for p in target.iterdir()} == before  # nothing written
    assert "symlink" in reg.describe("outside")["error"]

    # A version directory: followed inside the root, refused (but listed) outside it.
    (root / "inside" / "3").symlink_to(tmp_path / "elsewhere" / "m" / "1")
    (root / "inside" / "4").symlink_to(root / ".inside-real" / "1")
    assert reg.versions("inside") == [1, 2, 3, 4]
    assert _same_params(reg.load("inside", 4).params, reg.load("inside", 1).params)
    with refused:
        reg.load("inside", 3)
    with refused:
        reg.promote("inside", 3)
    assert "symlink" in reg.describe("inside")["versions"][2]["error"]
    assert reg.publish("inside", CFG, make_params(5)) == 5  # numbers never reuse a link's

    # The operator is told where each refused link points, once per link.
    warnings = [r.getMessage() for r in caplog.records if "is a symlink" in r.getMessage()]
    assert len(warnings) == 2
    assert any(str(tmp_path / "elsewhere" / "m") in w and "'outside'" in w for w in warnings)
    assert any(str(tmp_path / "elsewhere" / "m" / "1") in w for w in warnings)
    assert cli_main(["models", "list", "--registry", str(root)]) == 0
    listed = capsys.readouterr().out
    assert "outside" in listed and "refused symlink" in listed
