"""Data-parallel training: 4 fake CPU devices train exactly like 1 (same seed, same batches).

The device count is fixed when JAX starts, so the 4-device run happens in a subprocess with
``XLA_FLAGS=--xla_force_host_platform_device_count=4``; this process (1 device) computes the
reference at the same time.
"""

from __future__ import annotations

import inspect
import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import jax
import numpy as np
import pytest

from forecaster import parallel
from forecaster.data import SeriesSet
from forecaster.model import ModelConfig
from forecaster.train import TrainConfig, WindowSampler, fit

ROOT = Path(__file__).resolve().parents[1]
# Subprocesses share the project's persistent compilation cache (the service's default
# FORECASTER_COMPILATION_CACHE_DIR), so programs compiled by one test's process are reused.
JAX_CACHE_ENV = {
    "JAX_COMPILATION_CACHE_DIR": str(ROOT / ".jax_cache"),
    "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0",
    "JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES": "0",
}
DEVICES = 4


def problem() -> tuple[SeriesSet, ModelConfig, TrainConfig]:
    """The training problem both runs solve (its source is sent to the subprocess)."""
    import numpy as np

    from forecaster.data import SeriesSet
    from forecaster.model import ModelConfig
    from forecaster.train import TrainConfig

    rng = np.random.default_rng(0)
    t = np.arange(150)
    values = [
        40 + 7 * i + 5 * np.sin(2 * np.pi * t / 6) + rng.normal(0, 1, t.size) for i in range(6)
    ]
    series = SeriesSet([f"s{i}" for i in range(6)], values)
    model = ModelConfig(cell="gru", hidden=8, input_size=24, horizon=6, step=6, ensemble=2)
    train = TrainConfig(steps=48, batch_size=16, eval_every=12, warmup_steps=5, seasonality=6)
    return series, model, train


CHILD = textwrap.dedent(
    """
    import json
    import jax
    from forecaster import parallel
    from forecaster.train import WindowSampler, fit

    series, model, train = problem()
    mesh = parallel.default_mesh()
    sampler = WindowSampler.from_series(series.values, 24, 6, mesh)
    batch = sampler.sample(jax.random.key(0), (2, 16))
    try:
        parallel.check_batch_size(18, mesh)
        refused = ""
    except ValueError as err:
        refused = str(err)
    losses = []
    result = fit(series, model, train, progress=False,
                 on_eval=lambda h: losses.append(h["loss"]))
    print(json.dumps({
        "devices": jax.device_count(),
        "batch_devices": len(batch["x"].sharding.device_set),
        "shard_shape": list(batch["x"].addressable_shards[0].data.shape),
        "losses": losses,
        "val_owa": result.val_metrics["owa"],
        "params": jax.tree.map(lambda a: a.tolist(), result.params),
        "refused": refused,
    }))
    """
)


@pytest.fixture(scope="module")
def four_devices() -> Iterator[dict]:
    """The 4-device run, started at once so it overlaps the reference run in this process."""
    env = {
        **os.environ,
        **JAX_CACHE_ENV,
        "XLA_FLAGS": f"--xla_force_host_platform_device_count={DEVICES}",
        "JAX_PLATFORMS": "cpu",
    }
    source = "from __future__ import annotations\n" + inspect.getsource(problem) + CHILD
    proc = subprocess.Popen(
        [sys.executable, "-c", source],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    state = {"proc": proc}
    yield state
    if proc.poll() is None:
        proc.kill()
        proc.communicate()


def _child_result(four_devices: dict) -> dict:
    if "result" not in four_devices:
        out, err = four_devices["proc"].communicate(timeout=240)
        assert four_devices["proc"].returncode == 0, err[-3000:]
        four_devices["result"] = json.loads(out.strip().splitlines()[-1])
    return four_devices["result"]


@pytest.mark.slow  # both tests of the four-device subprocess: it trains in a fresh JAX
def test_four_devices_train_like_one(four_devices: dict) -> None:
    series, model, train = problem()
    losses: list[float] = []
    reference = fit(
        series, model, train, progress=False, on_eval=lambda h: losses.append(h["loss"])
    )
    child = _child_result(four_devices)

    assert child["devices"] == DEVICES
    assert len(child["losses"]) == len(losses) == 4
    np.testing.assert_allclose(child["losses"], losses, rtol=1e-4)
    np.testing.assert_allclose(child["val_owa"], reference.val_metrics["owa"], rtol=1e-3)
    flat_child = jax.tree.leaves(child["params"], is_leaf=lambda x: isinstance(x, list))
    flat_ref = jax.tree.leaves(reference.params)
    for got, want in zip(flat_child, flat_ref, strict=True):
        np.testing.assert_allclose(np.asarray(got), want, rtol=1e-3, atol=1e-5)


@pytest.mark.slow
def test_batches_are_split_over_the_batch_axis(four_devices: dict) -> None:
    child = _child_result(four_devices)
    assert child["batch_devices"] == DEVICES
    # [ensemble, batch, input_size]: each device holds all members, a quarter of the batch.
    assert child["shard_shape"] == [2, 16 // DEVICES, 24]
    assert "does not split evenly over 4 devices" in child["refused"]


def test_one_device_uses_no_mesh() -> None:
    assert jax.device_count() == 1
    assert parallel.default_mesh() is None
    series, _, _ = problem()
    sampler = WindowSampler.from_series(series.values, 24, 6)
    assert sampler.sharding is None
    parallel.check_batch_size(7, parallel.batch_mesh())  # anything splits over one device


def test_initialize_distributed_needs_a_coordinator(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(parallel.COORDINATOR_ENV, raising=False)
    assert parallel.initialize_distributed() is False
    assert parallel.is_primary()
